"""`durableagent.testing` with no host and no harness: `run_orchestrator` runs real orchestrators
(tests/host/orchestration_app) through the SDK's handler against a script (activity results,
retries, timers, external events, entity answers, sub-orchestrations, continue-as-new), and
`replay` replays recorded histories against an app object, failing with the diff when one diverges."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import timedelta
from pathlib import Path

import azure.durable_functions as df
import pytest

from durableagent.testing import MissingScript, ReplayDivergence, each_call, replay, run_orchestrator

ROOT = Path(__file__).resolve().parents[2]
APP_FILE = ROOT / "tests" / "host" / "orchestration_app" / "function_app.py"
HISTORIES = ROOT / "tests" / "replay" / "histories"


@pytest.fixture(scope="module")
def app():
    spec = importlib.util.spec_from_file_location("orchestration_app_under_test", APP_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module.app
    sys.modules.pop(spec.name, None)


def test_activities_from_the_script_with_custom_status(app):
    result = run_orchestrator(
        app, "hello_sequence", ["A", "B"], activities={"say_hello": lambda n: f"Hi {n}"}
    )
    assert (result.status, result.output, result.custom_status) == (
        "Completed",
        ["Hi A", "Hi B"],
        {"done": 2},
    )
    assert result.activity_calls("say_hello") == ["A", "B"]


def test_retries_take_one_scripted_result_per_attempt(app):
    spec = {"key": "k", "failures": 0, "attempts": 3}
    result = run_orchestrator(
        app,
        "with_retry",
        spec,
        activities={"flaky": each_call(RuntimeError("one"), RuntimeError("two"), "ok"), "say_hello": "hey"},
    )
    assert result.output == {"result": "ok", "after": "hey"}
    assert result.activity_calls("flaky") == [spec] * 3
    spec = {"key": "k", "failures": 0, "attempts": 2}
    result = run_orchestrator(app, "with_retry", spec, activities={"flaky": RuntimeError("never")})
    # The SDK raises "<Reason> \n <Details>": the orchestrator's first line keeps the space.
    assert result.output == {"failed": "Activity function 'flaky' failed: RuntimeError: never "}


def test_an_event_wins_when_scripted_and_the_timer_fires_when_not(app):
    approved = run_orchestrator(
        app, "approval", {"timeout": 86_400}, events=[("Approval", {"ok": True})], activities={"notify": {}}
    )
    assert approved.output == {"approved": {"ok": True}}
    assert approved.activity_calls("notify") == [{"ok": True}]
    timed_out = run_orchestrator(app, "approval", {"timeout": 86_400})  # a day, fired at once
    assert timed_out.output == {"timed_out": True}
    timer = next(c for c in timed_out.calls if c["kind"] == "timer")
    assert timer["fire_at"] - timed_out_start(timed_out) == timedelta(days=1)


def timed_out_start(result):
    from durableagent.replay.events import parse_time

    return parse_time(result.history[0]["Timestamp"])


def test_entity_answers_and_errors_and_signals(app):
    result = run_orchestrator(
        app,
        "entities",
        "k1",
        entities={"counter.add": lambda entity, n: 15, "get": 15, "fail": ValueError("counter refuses")},
    )
    assert result.output == {"after_add": 15, "current": 15, "error": "counter refuses"}
    assert result.signals == [{"entity": "@counter@k1", "operation": "add", "input": 5}]


def test_sub_orchestrators_run_from_the_app_with_the_same_script_or_are_scripted(app):
    result = run_orchestrator(
        app,
        "parent",
        {"child_id": "c1"},
        activities={"say_hello": lambda n: n.lower(), "explode": ValueError("x")},
    )
    assert result.status == "Completed", result.error
    assert result.output == {
        "first": ["a", "b"],
        "named": ["c"],
        "child_failed": "Sub-orchestration 'failing' failed",
    }
    scripted = run_orchestrator(
        app, "parent", {}, sub_orchestrators={"hello_sequence": ["x"], "failing": RuntimeError("no")}
    )
    assert scripted.output["first"] == ["x"] and scripted.output["child_failed"].startswith(
        "Sub-orchestration"
    )


def test_continue_as_new_runs_the_next_executions(app):
    result = run_orchestrator(app, "counting", None, events=[("Item", "a"), ("Item", "b"), ("Item", "c")])
    assert result.output == {"n": 3, "seen": ["a", "b", "c"]} and result.executions == 4


def test_what_the_script_lacks_is_named_and_a_wait_it_cannot_end_leaves_it_running(app):
    with pytest.raises(MissingScript, match="activity 'say_hello' was called with \"A\""):
        run_orchestrator(app, "hello_sequence", ["A"])
    waiting = run_orchestrator(app, "two_events", None, events=[("Step", 1), ("Other", 2)])
    assert waiting.status == "Running" and waiting.unused_events == [("Other", 2)]
    failed = run_orchestrator(app, "failing", {}, activities={"explode": ValueError("boom")})
    assert failed.status == "Failed" and "ValueError: boom" in failed.error


def test_a_scripted_run_is_a_golden_history_that_catches_a_changed_orchestrator(app, tmp_path):
    run = run_orchestrator(app, "hello_sequence", ["A", "B"], activities={"say_hello": "hi"})
    golden = tmp_path / "hello.json"
    golden.write_text(json.dumps(run.as_history()))
    (result,) = replay(golden, app)
    assert result.ok

    def changed(context: df.DurableOrchestrationContext):
        for city in context.get_input():
            yield context.call_activity("say_hello", city + "!")
        return None

    with pytest.raises(ReplayDivergence) as caught:
        replay(golden, {"hello_sequence": df.Orchestrator.create(changed)})
    assert "different input" in str(caught.value)
    assert "  - history: activity 'say_hello' input \"A\"" in str(caught.value)
    assert "  + code:    activity 'say_hello' input \"A!\"" in str(caught.value)


def test_replay_a_folder_against_the_app_object_leaves_it_indexable(app):
    results = replay(HISTORIES, app)
    assert len(results) == 3 and all(r.ok for r in results)
    assert app.get_functions()  # the host can still index the app after the check did
