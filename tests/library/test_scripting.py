import json

import pytest

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble, make_agent


class NotAFake(ScriptedChatClient):
    """The 'real' model of the app: must never be asked when a script is configured."""


async def test_script_env_swaps_every_agent_to_the_fake_and_records(tmp_path, monkeypatch, caplog):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": [{"text": "scripted!"}]}))
    monkeypatch.setenv("DURABLEAGENT_CHAT_SCRIPT", str(script))
    monkeypatch.delenv("DURABLEAGENT_CHAT_RECORD", raising=False)
    real = NotAFake(steps=[])
    app = AgentFunctionApp(agents=[make_agent(real)])
    assert "SCRIPTED FAKE" in caplog.text
    assert app.agents["WeatherAgent"].client is not real
    status, body = await DurableClientDouble(app).run("WeatherAgent", {"message": "hi"})
    assert (status, body["response"]) == (200, "scripted!")
    assert real.requests == []
    record = script.with_name("script.json.requests.jsonl")
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(lines) == 1 and "hi" in json.dumps(lines[0])


def test_missing_script_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DURABLEAGENT_CHAT_SCRIPT", str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match="DURABLEAGENT_CHAT_SCRIPT"):
        AgentFunctionApp()


@pytest.mark.parametrize("value", ["soon", "nan", "-1", "0", "inf"])
def test_run_timeout_must_be_a_positive_number(monkeypatch, value):
    monkeypatch.setenv("DURABLEAGENT_RUN_TIMEOUT", value)
    with pytest.raises(ValueError, match="DURABLEAGENT_RUN_TIMEOUT"):
        AgentFunctionApp()


def test_run_timeout_from_the_environment(monkeypatch):
    monkeypatch.setenv("DURABLEAGENT_RUN_TIMEOUT", "2.5")
    assert AgentFunctionApp()._routes.polling.timeout == 2.5
