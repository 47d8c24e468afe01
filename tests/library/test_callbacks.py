import logging

from durableagent import AgentCallbackContext
from fakes import ScriptedChatClient

from .conftest import make_agent


class Recorder:
    def __init__(self) -> None:
        self.updates: list[str] = []
        self.responses: list[str] = []
        self.contexts: list[AgentCallbackContext] = []

    async def on_streaming_response_update(self, update, context):
        self.updates.append(update.text)
        self.contexts.append(context)

    def on_agent_response(self, response, context):
        self.responses.append(response.text)


class Exploding:
    def on_streaming_response_update(self, update, context):
        raise RuntimeError("callback bug")

    async def on_agent_response(self, response, context):
        raise RuntimeError("callback bug")


async def test_callback_sees_stream_chunks_and_final_response(build):
    recorder = Recorder()
    fake = ScriptedChatClient(steps=[{"chunks": ["Sun", "ny ", "today"]}])
    _, host = build(make_agent(fake), default_callback=recorder)
    status, body = await host.run("WeatherAgent", {"message": "weather?", "sessionId": "cb"})
    assert status == 200 and body["response"] == "Sunny today"
    assert [u for u in recorder.updates if u] == ["Sun", "ny ", "today"]
    assert recorder.responses == ["Sunny today"]
    context = recorder.contexts[0]
    assert (context.agent_name, context.conversation_id, context.request_message) == (
        "WeatherAgent",
        "cb",
        "weather?",
    )
    assert context.correlation_id == body["correlationId"]


async def test_per_agent_callback_overrides_the_default(build):
    default, own = Recorder(), Recorder()
    from durableagent import AgentFunctionApp

    from .conftest import DurableClientDouble

    app = AgentFunctionApp(default_callback=default)
    app.add_agent(make_agent(ScriptedChatClient(steps=[{"text": "a"}]), name="A"), callback=own)
    app.add_agent(make_agent(ScriptedChatClient(steps=[{"text": "b"}]), name="B"))
    host = DurableClientDouble(app)
    await host.run("A", {"message": "hi"})
    await host.run("B", {"message": "hi"})
    assert own.responses == ["a"] and default.responses == ["b"]


async def test_a_raising_callback_is_logged_and_breaks_nothing(build, caplog):
    fake = ScriptedChatClient(steps=[{"chunks": ["o", "k"]}, {"text": "still fine"}])
    _, host = build(make_agent(fake), default_callback=Exploding())
    with caplog.at_level(logging.ERROR, logger="durableagent.callbacks"):
        status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "x"})
    assert status == 200 and body["response"] == "ok"
    assert "callback bug" in caplog.text
    status, body = await host.run("WeatherAgent", {"message": "again", "sessionId": "x"})
    assert (status, body["message_count"]) == (200, 4)
