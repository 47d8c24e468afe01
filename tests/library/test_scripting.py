import json
import logging
import time

import pytest

from durableagent import AgentFunctionApp
from durableagent.scripting import ModelSwapRefused
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble, make_agent


class NotAFake(ScriptedChatClient):
    """The 'real' model of the app: must never be asked when a script is configured."""


async def test_script_env_swaps_every_agent_to_the_fake_and_records(
    tmp_path, monkeypatch, caplog, local_development
):
    import os
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
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
    # Not beside the script (that may be an installed package's data folder): in the temp folder.
    assert not script.with_name("script.json.requests.jsonl").exists()
    record = tmp_path / "tmp" / "durableagent-records" / f"script.json.{os.getpid()}.requests.jsonl"
    assert str(record) in caplog.text
    lines = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(lines) == 1 and "hi" in json.dumps(lines[0])


async def test_script_env_records_where_the_record_variable_says(tmp_path, monkeypatch, local_development):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": [{"text": "scripted!"}]}))
    monkeypatch.setenv("DURABLEAGENT_CHAT_SCRIPT", str(script))
    monkeypatch.setenv("DURABLEAGENT_CHAT_RECORD", str(tmp_path / "run" / "chat.jsonl"))
    app = AgentFunctionApp(agents=[make_agent(NotAFake(steps=[]))])
    await DurableClientDouble(app).run("WeatherAgent", {"message": "hi"})
    assert len((tmp_path / "run" / "chat.jsonl").read_text().splitlines()) == 1


def test_missing_script_file_is_a_clear_error(tmp_path, monkeypatch, local_development):
    monkeypatch.setenv("DURABLEAGENT_CHAT_SCRIPT", str(tmp_path / "nope.json"))
    with pytest.raises(FileNotFoundError, match="DURABLEAGENT_CHAT_SCRIPT"):
        AgentFunctionApp()


@pytest.mark.parametrize("variable", ["DURABLEAGENT_CHAT_SCRIPT", "DURABLEAGENT_CHAT_RECORD_SCRIPT"])
@pytest.mark.parametrize("environment", [None, "Production", "Staging"])
def test_a_model_swap_outside_local_development_refuses_to_load(tmp_path, monkeypatch, variable, environment):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": [{"text": "scripted!"}]}))
    monkeypatch.setenv(variable, str(script))
    monkeypatch.delenv("DURABLEAGENT_LOCAL_HOST", raising=False)
    if environment is None:
        monkeypatch.delenv("AZURE_FUNCTIONS_ENVIRONMENT", raising=False)
    else:
        monkeypatch.setenv("AZURE_FUNCTIONS_ENVIRONMENT", environment)
    real = NotAFake(steps=[])
    with pytest.raises(ModelSwapRefused, match=f"{variable} is set.*only in local development") as refused:
        AgentFunctionApp(agents=[make_agent(real)])
    assert "AZURE_FUNCTIONS_ENVIRONMENT" in str(refused.value)


@pytest.mark.parametrize(
    ("variable", "value"), [("AZURE_FUNCTIONS_ENVIRONMENT", "development"), ("DURABLEAGENT_LOCAL_HOST", "1")]
)
def test_a_model_swap_in_local_development_is_honoured_with_a_warning(
    tmp_path, monkeypatch, caplog, variable, value
):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": [{"text": "scripted!"}]}))
    monkeypatch.setenv("DURABLEAGENT_CHAT_SCRIPT", str(script))
    monkeypatch.setenv("DURABLEAGENT_CHAT_RECORD", str(tmp_path / "chat.jsonl"))
    monkeypatch.delenv("AZURE_FUNCTIONS_ENVIRONMENT", raising=False)
    monkeypatch.delenv("DURABLEAGENT_LOCAL_HOST", raising=False)
    monkeypatch.setenv(variable, value)
    real = NotAFake(steps=[])
    with caplog.at_level(logging.WARNING, logger="durableagent.scripting"):
        app = AgentFunctionApp(agents=[make_agent(real)])
    assert app.agents["WeatherAgent"].client is not real
    honoured = [r.getMessage() for r in caplog.records if "is set and honoured" in r.getMessage()]
    assert honoured and "DURABLEAGENT_CHAT_SCRIPT" in honoured[0] and variable in honoured[0]


@pytest.mark.parametrize("value", ["soon", "nan", "-1", "0", "inf"])
def test_run_timeout_must_be_a_positive_number(monkeypatch, value):
    monkeypatch.setenv("DURABLEAGENT_RUN_TIMEOUT", value)
    with pytest.raises(ValueError, match="DURABLEAGENT_RUN_TIMEOUT"):
        AgentFunctionApp()


async def test_run_timeout_from_the_environment(monkeypatch):
    """A turn longer than DURABLEAGENT_RUN_TIMEOUT is answered 202 (accepted) once the timeout passes."""
    monkeypatch.setenv("DURABLEAGENT_RUN_TIMEOUT", "0.3")
    host = DurableClientDouble(
        AgentFunctionApp(agents=[make_agent(ScriptedChatClient([{"text": "late", "delay": 1.5}]))])
    )
    began = time.monotonic()
    status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "slow"})
    waited = time.monotonic() - began
    assert (status, body["status"]) == (202, "accepted"), body
    assert 0.3 <= waited < 1.2, waited
    await host.drain()
    assert (await host.state("WeatherAgent", "slow"))[1]["message_count"] == 2


async def test_record_script_env_wraps_every_agent_in_a_recorder_of_its_real_client(
    tmp_path, monkeypatch, local_development
):
    from fakes import RecordingChatClient, load_script

    path = tmp_path / "recorded.json"
    monkeypatch.delenv("DURABLEAGENT_CHAT_SCRIPT", raising=False)
    monkeypatch.setenv("DURABLEAGENT_CHAT_RECORD_SCRIPT", str(path))
    real = ScriptedChatClient(["from the real model"])  # stands in for the app's own client
    app = AgentFunctionApp(agents=[make_agent(real)])
    client = app.agents["WeatherAgent"].client
    assert isinstance(client, RecordingChatClient) and client.inner is real
    status, body = await DurableClientDouble(app).run("WeatherAgent", {"message": "hi"})
    assert (status, body["response"]) == (200, "from the real model")
    [step] = load_script(path).steps
    assert step.text == "from the real model"
    assert step.request["messages"][-1] == {"role": "user", "contents": [{"type": "text", "text": "hi"}]}


def test_replaying_and_recording_at_once_is_a_clear_error(tmp_path, monkeypatch):
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": ["x"]}))
    monkeypatch.setenv("DURABLEAGENT_CHAT_SCRIPT", str(script))
    monkeypatch.setenv("DURABLEAGENT_CHAT_RECORD_SCRIPT", str(tmp_path / "recorded.json"))
    with pytest.raises(ValueError, match="exclude each other"):
        AgentFunctionApp()
