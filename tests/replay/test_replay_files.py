"""`replay-check` on files, with no host: a history in the shape Azure serves (written by hand from
the extension's documented and coded format: tests/replay/histories/azure_served.json says so), an
in-flight instance, a failed one; divergences against a changed app; and the refusal of files that
are no history (malformed, no history, huge), each as one line naming the file and exit code 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from durableagent.replay import recorded
from harness.cli.main import main

REPO = Path(__file__).resolve().parents[2]
ORCH_APP = REPO / "tests" / "host" / "orchestration_app"
AZURE = Path(__file__).resolve().parent / "histories" / "azure_served.json"


def _check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["replay-check", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _changed_app(tmp_path: Path, old: str, new: str) -> Path:
    app = tmp_path / "changed_app"
    shutil.copytree(ORCH_APP, app)
    code = (app / "function_app.py").read_text()
    assert old in code
    (app / "function_app.py").write_text(code.replace(old, new))
    return app


def test_histories_in_the_shape_azure_serves_replay(capsys):
    code, out, _ = _check(capsys, str(AZURE), "--app", str(ORCH_APP), "--json")
    assert code == 0, out
    results = json.loads(out)
    assert [(r["orchestrator"], r["ok"]) for r in results] == [
        ("approval", True),
        ("hello_sequence", True),
        ("failing", True),
    ]


def test_a_changed_activity_of_an_in_flight_instance_is_caught_at_its_scheduled_event(tmp_path, capsys):
    app = _changed_app(
        tmp_path,
        'results.append((yield context.call_activity("say_hello", city)))',
        'results.append((yield context.call_activity("say_hello", city.lower())))',
    )
    code, out, _ = _check(capsys, str(AZURE), "--app", str(app))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("ok ") and lines[-1].startswith("ok ")
    diverged = lines.index(next(line for line in lines if line.startswith("DIVERGED")))
    # The first activity's input is on its completion (event 1): that is where the code differs.
    assert "hello_sequence" in lines[diverged] and "at history event 1: different input" in lines[diverged]
    assert lines[diverged + 1] == "  - history: activity 'say_hello' input \"A\""
    assert lines[diverged + 2] == "  + code:    activity 'say_hello' input \"a\""


def test_a_timer_moved_by_more_than_the_slack_of_served_times_is_caught(tmp_path, capsys):
    app = _changed_app(tmp_path, 'seconds=spec.get("timeout", 30)', 'seconds=spec.get("timeout", 30) * 2')
    code, out, _ = _check(capsys, str(AZURE), "--app", str(app), "--json")
    assert code == 1
    approval = json.loads(out)[0]["divergence"]
    assert approval["reason"] == "different timer time" and approval["event"] == 1
    assert "10:00:30" in approval["history"] and "10:01:00" in approval["code"]


def test_a_fixed_failure_is_reported_as_a_different_end(tmp_path, capsys):
    app = _changed_app(
        tmp_path, 'yield context.call_activity(spec.get("activity", "explode"), "uncaught boom")', "pass"
    )
    code, out, _ = _check(capsys, str(AZURE), "--app", str(app), "--json")
    assert code == 1
    failing = json.loads(out)[2]["divergence"]
    assert failing["reason"] == "fewer actions than recorded" and "explode" in failing["history"]


def test_an_orchestrator_the_app_no_longer_has_diverges(tmp_path, capsys):
    item = json.loads(AZURE.read_text())[1]
    item["name"] = "gone"
    path = tmp_path / "gone.json"
    path.write_text(json.dumps(item))
    code, out, _ = _check(capsys, str(path), "--app", str(ORCH_APP), "--json")
    assert code == 1
    assert json.loads(out)[0]["divergence"]["reason"] == "orchestrator missing"


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        (b"{not json", "not JSON"),
        (b'{"runtimeStatus": "Completed"}', "no `historyEvents`"),
        (b"[]", "holds no orchestration history"),
        (b'{"historyEvents": [{"Timestamp": "x"}]}', "history event 0 is not an object with an EventType"),
        (b'{"historyEvents": [{"EventType": "TaskCompleted"}]}', "no ExecutionStarted event"),
        (b'{"format": "durableagent-export", "instances": 3}', "no `instances` list"),
        (b'{"a": "\x80"}', "cannot read it"),
        (b"[" * 100_000, "nested too deeply"),
        (
            b'{"history": [{"EventType": 12}, {"EventType": "TaskCompleted"}]}',
            "event 1: EventType must be an integer",
        ),
        (
            b'{"history": [{"EventType": 12}, {"EventType": 5, "TaskScheduledId": "0"}]}',
            "event 1: TaskScheduledId must be an integer",
        ),
        (b'{"historyEvents": [{"EventType": 0}]}', "event 0: EventType must be a name"),
    ],
)
def test_a_file_that_is_no_history_is_one_line_naming_it(tmp_path, capsys, content, complaint):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    code, out, err = _check(capsys, str(AZURE), str(bad), "--app", str(ORCH_APP))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and str(bad) in err and complaint in err, err


def test_huge_files_and_histories_are_refused_before_replaying(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(recorded, "MAX_FILE_BYTES", AZURE.stat().st_size - 1)
    code, _, err = _check(capsys, str(AZURE), "--app", str(ORCH_APP))
    assert code == 2 and "more than the" in err and str(AZURE) in err
    monkeypatch.undo()
    monkeypatch.setattr(recorded, "MAX_EVENTS", 4)
    code, _, err = _check(capsys, str(AZURE), "--app", str(ORCH_APP))
    assert code == 2 and "5 events, more than the 4" in err


def test_a_missing_file_or_app_is_one_line(tmp_path, capsys):
    code, _, err = _check(capsys, str(tmp_path / "nope.json"), "--app", str(ORCH_APP))
    assert code == 2 and "nope.json" in err and err.count("\n") == 1
    code, _, err = _check(capsys, str(AZURE), "--app", str(tmp_path))
    assert code == 2 and "function_app.py" in err and err.count("\n") == 1


def _raw(kind: int, at: str, event_id: int = -1, **fields: object) -> dict:
    return {"EventType": kind, "EventId": event_id, "IsPlayed": False, "Timestamp": at, **fields}


def test_a_raw_retry_history_without_the_local_hosts_retry_marks_replays(capsys, tmp_path):
    """A raw history as DTFx records a retried activity (written by hand from the protocol notes,
    section 7.8: attempt, retry timer, attempt, each taking the next id; no host-only marks)."""
    spec = '{"key": "k", "failures": 1, "attempts": 3}'
    t = [f"2026-12-01T10:00:0{n}.000000Z" for n in range(6)]
    history = [
        _raw(12, t[0]),
        _raw(0, t[0], Name="with_retry", Input=spec, Version=""),
        _raw(4, t[0], 0, Name="flaky", Input=spec),
        _raw(13, t[0]),
        _raw(12, t[1]),
        _raw(6, t[1], TaskScheduledId=0, Reason="RuntimeError: attempt 1 failed", Details=""),
        _raw(10, t[1], 1, FireAt=t[2]),
        _raw(13, t[1]),
        _raw(12, t[2]),
        _raw(11, t[2], TimerId=1, FireAt=t[2]),
        _raw(4, t[2], 2, Name="flaky", Input=spec),
        _raw(13, t[2]),
        _raw(12, t[3]),
        _raw(5, t[3], TaskScheduledId=2, Result='"ok after 2"'),
        _raw(4, t[3], 3, Name="say_hello", Input='"after retry"'),
        _raw(13, t[3]),
        _raw(12, t[4]),
        _raw(5, t[4], TaskScheduledId=3, Result='"Hello after retry"'),
        _raw(13, t[4]),
        _raw(1, t[4], OrchestrationStatus="Completed", Result='{"result": "ok after 2"}'),
    ]
    path = tmp_path / "raw.json"
    path.write_text(json.dumps({"name": "with_retry", "instanceId": "r1", "history": history}))
    code, out, _ = _check(capsys, str(path), "--app", str(ORCH_APP))
    assert code == 0, out
    history[10]["Name"] = "flakier"  # the second attempt of another activity: not what the code retries
    path.write_text(json.dumps({"name": "with_retry", "instanceId": "r1", "history": history}))
    code, out, _ = _check(capsys, str(path), "--app", str(ORCH_APP))
    assert code == 1 and "fewer actions than recorded" in out and "flakier" in out, out
