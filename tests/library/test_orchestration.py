"""Agents inside orchestrations: real orchestrator functions run by the Durable SDK's own handler.

The first group feeds hand-built history JSON (the protocol the extension speaks) and checks the
actions the orchestrator emits and the values it returns. The second group plays the host for
whole orchestrations (tests/library/orchestrations.py) and answers each `call_entity` by running
the app's real entity function, so the turns land in session state like the HTTP route's.
"""

from __future__ import annotations

import json
import uuid

import azure.durable_functions as df
import pytest
from agent_framework import Agent, AgentResponse, Message
from pydantic import BaseModel

from durableagent import AgentFunctionApp, AgentSessionId
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble, make_agent
from .orchestrations import (
    Driver,
    entity_response,
    event_sent,
    execution_started,
    orchestrator_started,
    run_episode,
)

T0, T1, T2 = "2024-01-01T00:00:00.000Z", "2024-01-01T00:00:01.000Z", "2024-01-01T00:00:02.000Z"


def new_uuid_hex(instance_id: str, timestamp: str, counter: int) -> str:
    """`context.new_uuid()` as the SDK computes it (orchestration-protocol.md 7.11), as hex."""
    namespace = uuid.uuid5(uuid.NAMESPACE_OID, "9e952958-5e33-4daf-827f-2fa12937b875")
    return uuid.uuid5(namespace, f"{instance_id}_{timestamp}_{counter}").hex


KEY0 = new_uuid_hex("inst1", "2024-01-01T00:00:00.000000Z", 0)


class SpamResult(BaseModel):
    is_spam: bool
    reason: str


def writer(client: ScriptedChatClient | None = None, name: str = "WriterAgent") -> Agent:
    return Agent(client=client or ScriptedChatClient(), name=name, instructions="You write taglines.")


def success(text: str, **extra: object) -> str:
    """A `run_agent` result as the entity returns it, as JSON text."""
    message = Message(role="assistant", contents=[text]).to_dict()
    return json.dumps(
        {
            "status": "success",
            "response": text,
            "correlation_id": "c",
            "message_count": 2,
            "messages": [message],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
            **extra,
        }
    )


def build_app(*agents: Agent) -> AgentFunctionApp:
    app = AgentFunctionApp(agents=list(agents) or [writer()])

    @app.orchestration_trigger(context_name="context")
    def chain(context: df.DurableOrchestrationContext):
        agent = app.get_agent(context, "WriterAgent")
        session = agent.create_session()
        first = yield agent.run("Write a tagline", session=session)
        second = yield agent.run(f"Improve: {first.text}", session=session)
        return {"text": second.text, "type": type(second).__name__, "first": first.text}

    @app.orchestration_trigger(context_name="context")
    def fan_out(context: df.DurableOrchestrationContext):
        a = app.get_agent(context, "WriterAgent")
        b = app.get_agent(context, "EditorAgent")
        results = yield context.task_all([a.run("one"), b.run("two")])
        return [[type(r).__name__, r.text] for r in results]

    @app.orchestration_trigger(context_name="context")
    def spam(context: df.DurableOrchestrationContext):
        agent = app.get_agent(context, "WriterAgent")
        result = yield agent.run("Is this spam?", options={"response_format": SpamResult})
        return {"is_spam": result.value.is_spam, "reason": result.value.reason}

    @app.orchestration_trigger(context_name="context")
    def schema_dict(context: df.DurableOrchestrationContext):
        agent = app.get_agent(context, "WriterAgent")
        schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
        result = yield agent.run(
            Message(role="user", contents=["count"]), options={"response_format": schema}
        )
        return result.value

    @app.orchestration_trigger(context_name="context")
    def fire_and_forget(context: df.DurableOrchestrationContext):
        agent = app.get_agent(context, "WriterAgent")
        accepted = yield agent.run("later", options={"wait_for_response": False})
        return [accepted.text, accepted.additional_properties["status"]]

    @app.orchestration_trigger(context_name="context")
    def unknown(context: df.DurableOrchestrationContext):
        app.get_agent(context, "NoSuchAgent")
        yield context.task_all([])

    @app.orchestration_trigger(context_name="context")
    def caught(context: df.DurableOrchestrationContext):
        agent = app.get_agent(context, "WriterAgent")
        try:
            yield agent.run("fail please")
        except Exception as exc:
            return f"caught: {exc}"
        return "no error"

    return app


def first_action(state: dict) -> dict:
    (actions,) = state["actions"]
    return actions[0]


# -- hand-built history ------------------------------------------------------------------------


def test_first_turn_calls_the_session_entity_with_a_replay_safe_key():
    app = build_app()
    state = run_episode(app, "chain", [orchestrator_started(T0), execution_started("chain")])
    assert state["isDone"] is False
    action = first_action(state)
    assert action["actionType"] == 7
    assert action["instanceId"] == f"@dafx-writeragent@{KEY0}"
    assert action["operation"] == "run_agent"
    assert json.loads(action["input"]) == {
        "message": "Write a tagline",
        "role": "user",
        "correlation_id": new_uuid_hex("inst1", "2024-01-01T00:00:00.000000Z", 1),
        "enable_tool_calls": True,
        "response_schema": None,
    }
    # The same history gives the same action: nothing random.
    again = run_episode(app, "chain", [orchestrator_started(T0), execution_started("chain")])
    assert again["actions"] == state["actions"]


def test_entity_result_becomes_an_agent_response_and_the_session_is_reused():
    app = build_app()
    history = [
        orchestrator_started(T0),
        execution_started("chain"),
        event_sent(0, "req-0"),
        orchestrator_started(T1),
        entity_response("req-0", success("Durable by design.")),
    ]
    state = run_episode(app, "chain", history)
    (actions,) = state["actions"]
    assert len(actions) == 2
    second = actions[1]
    assert second["instanceId"] == f"@dafx-writeragent@{KEY0}"
    assert json.loads(second["input"])["message"] == "Improve: Durable by design."

    history += [
        event_sent(1, "req-1"),
        orchestrator_started(T2),
        entity_response("req-1", success("Better.")),
    ]
    done = run_episode(app, "chain", history)
    assert done["isDone"] is True
    assert done["output"] == {"text": "Better.", "type": "AgentResponse", "first": "Durable by design."}


def test_failed_turn_raises_in_the_orchestrator_with_the_model_error():
    app = build_app()
    history = [
        orchestrator_started(T0),
        execution_started("caught"),
        event_sent(0, "req-0"),
        orchestrator_started(T1),
        entity_response(
            "req-0", json.dumps({"status": "error", "error": "ChatClientException: model exploded"})
        ),
    ]
    assert run_episode(app, "caught", history)["output"] == "caught: ChatClientException: model exploded"
    # Uncaught, it fails the orchestration with that text.
    history[1] = execution_started("chain")
    state = run_episode(app, "chain", history)
    assert "ChatClientException: model exploded" in state["error"]


def test_entity_operation_exception_also_raises():
    app = build_app()
    history = [
        orchestrator_started(T0),
        execution_started("caught"),
        event_sent(0, "req-0"),
        orchestrator_started(T1),
        entity_response("req-0", json.dumps("ValueError: kaboom"), error=True),
    ]
    assert run_episode(app, "caught", history)["output"] == "caught: ValueError: kaboom"


def test_unknown_agent_fails_at_once_naming_the_registered_agents():
    app = build_app(writer(), writer(name="EditorAgent"))
    state = run_episode(app, "unknown", [orchestrator_started(T0), execution_started("unknown")])
    assert "unknown agent 'NoSuchAgent'" in state["error"]
    assert "WriterAgent" in state["error"] and "EditorAgent" in state["error"]
    assert state["actions"] == [[]]


def test_task_all_gives_agent_responses_in_argument_order():
    app = build_app(writer(), writer(name="EditorAgent"))
    history = [orchestrator_started(T0), execution_started("fan_out")]
    state = run_episode(app, "fan_out", history)
    (when_all,) = state["actions"][0]
    assert when_all["actionType"] == 12
    calls = when_all["compoundActions"]
    assert [c["instanceId"].split("@")[1] for c in calls] == ["dafx-writeragent", "dafx-editoragent"]
    assert [json.loads(c["input"])["message"] for c in calls] == ["one", "two"]
    # Replies arrive in the other order; results keep argument order.
    history += [
        event_sent(0, "req-0"),
        event_sent(1, "req-1"),
        orchestrator_started(T1),
        entity_response("req-1", success("from editor")),
        entity_response("req-0", success("from writer")),
    ]
    done = run_episode(app, "fan_out", history)
    assert done["output"] == [["AgentResponse", "from writer"], ["AgentResponse", "from editor"]]


def test_task_all_fails_with_the_failed_turn():
    app = build_app(writer(), writer(name="EditorAgent"))
    history = [
        orchestrator_started(T0),
        execution_started("fan_out"),
        event_sent(0, "req-0"),
        event_sent(1, "req-1"),
        orchestrator_started(T1),
        entity_response("req-0", success("fine")),
        entity_response("req-1", json.dumps({"status": "error", "error": "ToolCallError: lookup: down"})),
    ]
    assert "ToolCallError: lookup: down" in run_episode(app, "fan_out", history)["error"]


def test_pydantic_response_format_sends_its_schema_and_parses_the_value():
    app = build_app()
    history = [orchestrator_started(T0), execution_started("spam")]
    request = json.loads(first_action(run_episode(app, "spam", history))["input"])
    assert request["response_schema"] == SpamResult.model_json_schema()
    value = {"is_spam": True, "reason": "prize"}
    history += [
        event_sent(0, "req-0"),
        orchestrator_started(T1),
        entity_response("req-0", success(json.dumps(value), value=value)),
    ]
    assert run_episode(app, "spam", history)["output"] == value


def test_reply_that_does_not_fit_the_model_fails_the_turn():
    app = build_app()
    history = [
        orchestrator_started(T0),
        execution_started("spam"),
        event_sent(0, "req-0"),
        orchestrator_started(T1),
        entity_response("req-0", success('{"is_spam": "maybe"}', value={"is_spam": "maybe"})),
    ]
    assert "does not fit SpamResult" in run_episode(app, "spam", history)["error"]


def test_schema_dict_response_format_and_message_input():
    app = build_app()
    history = [orchestrator_started(T0), execution_started("schema_dict")]
    request = json.loads(first_action(run_episode(app, "schema_dict", history))["input"])
    assert request["message"] == "count" and request["response_schema"]["required"] == ["n"]
    history += [
        event_sent(0, "r"),
        orchestrator_started(T1),
        entity_response("r", success('{"n": 3}', value={"n": 3})),
    ]
    assert run_episode(app, "schema_dict", history)["output"] == {"n": 3}


def test_not_waiting_signals_the_entity_and_goes_on():
    app = build_app()
    state = run_episode(
        app, "fire_and_forget", [orchestrator_started(T0), execution_started("fire_and_forget")]
    )
    assert state["isDone"] is True
    assert state["output"] == ["Agent request accepted", "accepted"]
    (signal,) = state["actions"][0]
    assert signal["actionType"] == 9 and signal["operation"] == "run_agent"
    assert signal["instanceId"].startswith("@dafx-writeragent@")
    assert json.loads(signal["input"])["message"] == "later"


class _Context:
    """Just enough of an orchestration context for the proxy's argument checks."""

    def __init__(self) -> None:
        self.count = 0

    def new_uuid(self) -> str:
        self.count += 1
        return str(uuid.UUID(int=self.count))

    def call_entity(self, *args: object) -> None:  # marks it as an orchestration context
        raise AssertionError("not reached")


def test_argument_checks_happen_before_anything_is_scheduled():
    app = build_app()
    agent = app.get_agent(_Context(), "writeragent")  # case-insensitive, like the routes
    assert agent.name == "WriterAgent"
    with pytest.raises(ValueError, match="unsupported option"):
        agent.run("hi", options={"temperature": 0.2})
    with pytest.raises(ValueError, match="share a role"):
        agent.run([Message(role="system", contents=["a"]), Message(role="user", contents=["b"])])
    with pytest.raises(ValueError, match="needs a message"):
        agent.run([])
    with pytest.raises(TypeError, match="response_format"):
        agent.run("hi", options={"response_format": 42})
    with pytest.raises(ValueError, match="stream"):
        agent.run("hi", stream=True)
    session = agent.create_session()
    assert isinstance(session, AgentSessionId) and session.name == "WriterAgent"
    assert agent.get_session(str(session)) == session
    with pytest.raises(TypeError, match="orchestration context"):
        app.get_agent(None, "WriterAgent")


# -- whole orchestrations against the real entity --------------------------------------------


def test_chain_runs_both_turns_in_one_session_visible_over_http():
    fake = ScriptedChatClient(steps=[{"text": "Durable by design."}, {"text": "Durable. By design. Always."}])
    app = build_app(writer(fake))
    host = DurableClientDouble(app)
    driver = Driver(app, host, "chain")
    state = driver.run()
    assert state["isDone"] is True and "error" not in state, state
    assert state["output"]["text"] == "Durable. By design. Always."
    keys = {call["key"] for call in driver.entity_calls}
    assert keys == {KEY0}  # both turns, replayed many times, used one session key
    # The second turn's model request carried the first turn (same session history).
    assert [m.text for m in fake.requests[1].messages][-3:] == [
        "Write a tagline",
        "Durable by design.",
        "Improve: Durable by design.",
    ]


async def test_session_state_of_an_orchestrated_chain_is_served_by_the_state_route():
    app = build_app(writer(ScriptedChatClient(steps=[{"text": "one"}, {"text": "two"}])))
    host = DurableClientDouble(app)
    driver = Driver(app, host, "chain")
    driver.run()
    status, body = await host.state("WriterAgent", KEY0)
    assert status == 200
    history = body["conversation_history"]
    assert [e["content"] for e in history] == ["Write a tagline", "one", "Improve: one", "two"]
    correlation_ids = [call["input"]["correlation_id"] for call in driver.entity_calls]
    assert [e["correlation_id"] for e in history] == [correlation_ids[0]] * 2 + [correlation_ids[1]] * 2


def test_model_failure_fails_the_orchestration_and_is_stored_as_a_failed_turn():
    app = build_app(writer(ScriptedChatClient(steps=[{"error": "model overloaded"}])))
    host = DurableClientDouble(app)
    state = Driver(app, host, "chain").run()
    assert "model overloaded" in state["error"]
    stored = json.loads(host.states[("dafx-writeragent", KEY0)])
    assert stored["recent_history"][-1]["status"] == "error"


def test_tool_failure_reaches_the_orchestrator_with_the_tool_error():
    def lookup(city: str) -> str:
        """Look a city up."""
        raise RuntimeError("geo service down")

    fake = ScriptedChatClient(
        steps=[{"tool_calls": [{"name": "lookup", "arguments": {"city": "Oslo"}}]}, {"text": "sorry"}]
    )
    agent = Agent(client=fake, name="WriterAgent", instructions="x", tools=[lookup])
    app = build_app(agent)
    state = Driver(app, DurableClientDouble(app), "caught").run()
    assert state["output"].startswith("caught: ToolCallError: lookup")
    assert "geo service down" in state["output"]


def test_structured_output_end_to_end_through_the_entity():
    fake = ScriptedChatClient(steps=[{"text": '{{"is_spam": true, "reason": "asks for money"}}'}])
    app = build_app(writer(fake))
    state = Driver(app, DurableClientDouble(app), "spam").run()
    assert state["output"] == {"is_spam": True, "reason": "asks for money"}


def test_structured_reply_failing_the_schema_fails_in_the_entity():
    fake = ScriptedChatClient(steps=[{"text": '{{"is_spam": "no idea"}}'}])
    app = build_app(writer(fake))
    state = Driver(app, DurableClientDouble(app), "spam").run()
    assert "does not match response_schema" in state["error"]


# -- what run_agent returns (the entity JSON protocol) -----------------------------------------


def _result(output: dict) -> tuple[bool, dict]:
    last = output["results"][-1]
    return last["isError"], json.loads(last["result"])


def test_run_agent_returns_reply_messages_usage_and_count(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[{"text": "hello"}])))
    is_error, result = _result(
        host.run_batch("dafx-weatheragent", "k", [("run_agent", {"message": "hi", "correlation_id": "c1"})])
    )
    assert not is_error
    assert result["status"] == "success" and result["response"] == "hello"
    assert result["correlation_id"] == "c1" and result["message_count"] == 2
    assert result["usage"]["total_tokens"] > 0
    assert AgentResponse(messages=result["messages"]).text == "hello"
    assert "value" not in result


def test_run_agent_returns_the_error_of_a_failed_turn(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[{"error": "model exploded"}])))
    _, result = _result(host.run_batch("dafx-weatheragent", "k", [("run_agent", {"message": "hi"})]))
    assert result["status"] == "error" and "model exploded" in result["error"]


def test_run_agent_returns_the_structured_value(build):
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    _, host = build(make_agent(ScriptedChatClient(steps=[{"text": '{{"n": 5}}'}])))
    request = {"message": "count", "correlation_id": "c", "response_schema": schema}
    _, result = _result(host.run_batch("dafx-weatheragent", "k", [("run_agent", request)]))
    assert result["value"] == {"n": 5}
    # A redelivered call answers with the same turn, without running it again.
    _, again = _result(host.run_batch("dafx-weatheragent", "k", [("run_agent", request)]))
    assert again["value"] == {"n": 5} and again["response"] == '{"n": 5}' and again["message_count"] == 2
