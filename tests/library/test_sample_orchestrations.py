"""The four orchestration samples, unmodified, run in-process with their own fake-model scripts.

Each sample's `function_app.py` is imported with `DURABLEAGENT_CHAT_SCRIPT` pointing at its
`fake_model.json` (as the harness starts it), and its orchestration is played to the end by the
test driver: the Durable SDK runs the orchestrator, the app's real entity functions run the turns,
activities run as written, approval events and timers are delivered as a host would.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from fakes import WEATHER_SCRIPT_PATH, load_script
from harness.stack import default_script_path

from .conftest import DurableClientDouble
from .orchestrations import Driver

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
ORCHESTRATION_SAMPLES = ("chaining", "concurrency", "conditionals", "human_in_the_loop")


@pytest.fixture
def load_sample(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, local_development: None):
    def _load(name: str) -> tuple[Any, DurableClientDouble]:
        monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://example.invalid/")
        monkeypatch.setenv("DURABLEAGENT_CHAT_SCRIPT", str(SAMPLES / name / "fake_model.json"))
        monkeypatch.setenv("DURABLEAGENT_CHAT_RECORD", str(tmp_path / f"{name}.requests.jsonl"))
        spec = importlib.util.spec_from_file_location(
            f"sample_{name}_function_app", SAMPLES / name / "function_app.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.app, DurableClientDouble(module.app)

    return _load


async def history_of(host: DurableClientDouble, agent: str, session: str) -> list[dict[str, Any]]:
    status, body = await host.state(agent, session)
    assert status == 200, body
    return body["conversation_history"]


@pytest.mark.parametrize("name", ORCHESTRATION_SAMPLES)
def test_sample_folder_is_deployable_and_its_script_loads(name):
    folder = SAMPLES / name
    for file in (
        "function_app.py",
        "host.json",
        "requirements.txt",
        "local.settings.json",
        "fake_model.json",
    ):
        assert (folder / file).is_file(), file
    settings = json.loads((folder / "local.settings.json").read_text())["Values"]
    assert "AZURE_OPENAI_ENDPOINT" in settings
    assert "durableagent" in (folder / "requirements.txt").read_text().split()
    assert load_script(folder / "fake_model.json").rules
    # The harness (`python -m harness up --app samples/NAME`) uses it when no --script is given.
    assert default_script_path(folder) == folder / "fake_model.json"


def test_apps_without_a_script_get_the_weather_script():
    assert default_script_path(SAMPLES / "weather") == Path(WEATHER_SCRIPT_PATH)


async def test_chaining_refines_its_own_answer_in_one_session(load_sample):
    app, host = load_sample("chaining")
    state = Driver(app, host, "tagline_chain", input_={"topic": "Acme Coffee"}).run()
    assert state["isDone"] and "error" not in state, state
    output = state["output"]
    assert output["draft"] == "Acme Coffee: they remember every conversation, and never lose their place."
    assert output["tagline"] == "Acme Coffee. Always remembered."
    history = await history_of(host, "WriterAgent", output["sessionId"])
    assert [e["content"] for e in history] == [
        "Write a one-line tagline for Acme Coffee.",
        output["draft"],
        f"Improve this tagline, keep it under ten words: {output['draft']}",
        output["tagline"],
    ]


async def test_concurrency_asks_both_agents_and_combines_the_answers(load_sample):
    app, host = load_sample("concurrency")
    driver = Driver(app, host, "expert_panel", input_={"topic": "temperature"})
    state = driver.run()
    output = state["output"]
    assert output["answers"]["PhysicistAgent"].startswith("In physics, temperature")
    assert output["answers"]["ChemistAgent"].startswith("In chemistry, temperature")
    assert output["combined"].index("PhysicistAgent:") < output["combined"].index("ChemistAgent:")
    # Both turns were scheduled in the same episode (one task_all), each on its own session.
    assert driver.episodes == 2
    for agent, key in output["sessions"].items():
        history = await history_of(host, agent, key)
        assert [e["content"] for e in history][1] == output["answers"][agent]


async def test_conditionals_spam_goes_to_the_spam_activity(load_sample):
    app, host = load_sample("conditionals")
    email = {"email_id": "e1", "email_content": "Congratulations, you are a WINNER! Click here to claim."}
    driver = Driver(app, host, "spam_check", input_=email)
    output = driver.run()["output"]
    assert output["is_spam"] is True and "winner" in output["reason"].lower()
    assert output["outcome"].startswith("Email e1 marked as spam")
    assert list(driver.activities) == ["handle_spam_email"]
    assert [c["entity"] for c in driver.entity_calls] == ["dafx-spamdetectoragent"]
    assert driver.entity_calls[0]["input"]["response_schema"]["required"] == ["is_spam", "reason"]


async def test_conditionals_legitimate_mail_gets_a_reply_sent(load_sample):
    app, host = load_sample("conditionals")
    email = {"email_id": "e2", "email_content": "Hi, are we still on for lunch tomorrow?"}
    driver = Driver(app, host, "spam_check", input_=email)
    output = driver.run()["output"]
    assert output["is_spam"] is False
    assert output["reply"].startswith("Thank you for your e-mail")
    assert driver.activities["send_email"] == [{"email_id": "e2", "reply": output["reply"]}]
    assert "handle_spam_email" not in driver.activities
    history = await history_of(host, "EmailAssistantAgent", output["sessionId"])
    assert history[-1]["content"] == output["reply"]


async def test_human_in_the_loop_revises_on_feedback_then_publishes(load_sample):
    app, host = load_sample("human_in_the_loop")
    driver = Driver(
        app,
        host,
        "content_review",
        input_={"topic": "durable agents"},
        events=[
            ("ApprovalResponse", {"approved": False, "feedback": "make it shorter"}),
            ("ApprovalResponse", json.dumps({"approved": True})),  # as Azure delivers the SDK client's event
        ],
    )
    output = driver.run()["output"]
    assert output["status"] == "published" and output["attempts"] == 2
    assert "make it shorter" in output["content"]
    assert [a["attempt"] for a in driver.activities["notify_for_approval"]] == [1, 2]
    assert driver.activities["publish_content"] == [{"topic": "durable agents", "content": output["content"]}]
    awaiting = [s for s in driver.custom_statuses if s and s.get("step") == "awaiting_approval"]
    assert awaiting[0]["content"].startswith("On durable agents")
    history = await history_of(host, "WriterAgent", output["sessionId"])
    assert len(history) == 4 and history[2]["content"].endswith("make it shorter")


def test_human_in_the_loop_times_out_without_an_answer(load_sample):
    app, host = load_sample("human_in_the_loop")
    driver = Driver(
        app, host, "content_review", input_={"topic": "x", "approval_timeout_hours": 1}, fire_timers=True
    )
    output = driver.run()["output"]
    assert output["status"] == "timed_out" and output["attempts"] == 1
    assert driver.fired == [2] and "publish_content" not in driver.activities


def test_human_in_the_loop_gives_up_after_the_last_rejection(load_sample):
    app, host = load_sample("human_in_the_loop")
    rejections = [("ApprovalResponse", {"approved": False, "feedback": f"try {n}"}) for n in (1, 2)]
    driver = Driver(
        app, host, "content_review", input_={"topic": "x", "max_review_attempts": 2}, events=rejections
    )
    output = driver.run()["output"]
    assert output["status"] == "rejected" and output["attempts"] == 2
    assert "try 1" in output["content"]  # revised once; the last rejection ends it
    assert "publish_content" not in driver.activities
