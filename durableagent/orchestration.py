"""Agents inside orchestrations: `app.get_agent(context, name)` and the task its `run` returns.

Why this exists: an orchestrator cannot await a model call (its code is replayed from history and
must be deterministic), so a turn has to be a durable operation whose result is recorded. Each
turn is a `call_entity` to the agent's session entity (`dafx-{name}`, key = session key) with the
same `run_agent` operation and input as the HTTP run route's turns (`turns.py`), so a turn taken in
an orchestration lands in the same session state that `GET /api/agents/{name}/{sessionId}` shows.

The entity's result arrives in the orchestrator as decoded JSON; `AgentRunTask` turns it into an
agent-framework `AgentResponse` (or an exception, for a failed turn) when the Durable SDK sets the
task's value, so the user gets `AgentResponse` objects from a plain `yield` and from
`context.task_all` / `context.task_any` alike. Nothing in the SDK is patched: the task is an
`AtomicTask` subclass built the way the SDK's own `call_entity` builds its task.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import azure.durable_functions as df
from agent_framework import AgentResponse, AgentSession, Message, normalize_messages
from azure.durable_functions.models.actions.CallEntityAction import CallEntityAction
from azure.durable_functions.models.Task import AtomicTask, TaskBase
from pydantic import BaseModel, ValidationError

from ._run_request import ALLOWED_ROLES, RunRequest
from .session import AgentSessionId, entity_name_for, validate_key
from .streams import STREAM_FIELD
from .turns import ACCEPTED_TEXT, RUN_OPERATION, turn_input

logger = logging.getLogger(__name__)

SUPPORTED_OPTIONS = ("response_format", "enable_tool_calls", "wait_for_response")

ResponseFormat = type[BaseModel] | Mapping[str, Any]
SessionLike = AgentSessionId | AgentSession | str


class AgentRunError(Exception):
    """A turn run from an orchestration failed (model or tool error, or an unusable reply)."""


def response_schema_of(response_format: object) -> dict[str, Any] | None:
    """The JSON schema the entity checks the reply against: from a Pydantic class or a schema dict."""
    if response_format is None:
        return None
    if isinstance(response_format, type) and issubclass(response_format, BaseModel):
        return response_format.model_json_schema()
    if isinstance(response_format, Mapping):
        return dict(response_format)
    raise TypeError(
        "response_format must be a Pydantic model class or a JSON schema dict, "
        f"got {type(response_format).__name__}"
    )


def message_input(messages: object) -> tuple[str, str]:
    """(text, role) of what `run` was given: a str, a `Message`, or a list of them.

    The session entity takes one message per turn, so several messages are joined with newlines;
    they must share a role the entity accepts (user or system).
    """
    normalized = normalize_messages(messages)  # type: ignore[arg-type]
    if not normalized:
        raise ValueError("agent.run needs a message: a str, a Message, or a list of them")
    roles = {str(m.role) for m in normalized}
    if len(roles) > 1:
        raise ValueError(f"messages of one turn must share a role, got {', '.join(sorted(roles))}")
    (role,) = roles
    if role not in ALLOWED_ROLES:
        raise ValueError(f"message role must be one of {', '.join(ALLOWED_ROLES)}, got {role!r}")
    texts = []
    for message in normalized:
        if not message.text:
            raise ValueError("only text messages can be sent to a durable agent")
        texts.append(message.text)
    return "\n".join(texts), role


def session_key_of(session: object) -> str:
    """The entity key of a session given as an `AgentSessionId`, a framework session or a key."""
    if isinstance(session, AgentSessionId):
        return session.key
    if isinstance(session, AgentSession):
        return validate_key(session.session_id)
    if isinstance(session, str):
        return AgentSessionId.parse(session).key if session.startswith("@") else validate_key(session)
    raise TypeError(
        f"session must be an AgentSessionId (from create_session()), a session key or an AgentSession, "
        f"got {type(session).__name__}"
    )


def response_from_result(
    result: object, agent_name: str, response_format: ResponseFormat | None = None
) -> AgentResponse:
    """Turn the `run_agent` operation's result into an `AgentResponse`, or raise `AgentRunError`."""
    if not isinstance(result, Mapping):
        raise AgentRunError(f"agent {agent_name!r} returned an unexpected result: {result!r}")
    if result.get("status") != "success":
        raise AgentRunError(str(result.get("error") or f"agent {agent_name!r} turn failed: {result!r}"))
    raw_messages = result.get("messages")
    if isinstance(raw_messages, list) and raw_messages:
        messages = [Message.from_dict(m) for m in raw_messages]
    else:
        messages = [Message(role="assistant", contents=[str(result.get("response") or "")])]
    usage = result.get("usage") or {}
    value: Any = None
    if response_format is not None:
        raw_value = result.get("value")
        if isinstance(response_format, type) and issubclass(response_format, BaseModel):
            try:
                value = response_format.model_validate(raw_value)
            except ValidationError as exc:
                raise AgentRunError(
                    f"agent {agent_name!r} reply does not fit {response_format.__name__}: {exc}"
                ) from None
        else:
            value = raw_value
    return AgentResponse(
        messages=messages,
        agent_id=agent_name,
        usage_details={
            "input_token_count": int(usage.get("prompt_tokens") or 0),
            "output_token_count": int(usage.get("completion_tokens") or 0),
            "total_token_count": int(usage.get("total_tokens") or 0),
        },
        value=value,
        response_format=response_format,
        additional_properties={
            "correlation_id": result.get("correlation_id"),
            "message_count": result.get("message_count"),
            "status": "success",
        },
    )


class AgentRunTask(AtomicTask):
    """The `call_entity` task of one turn; its value is an `AgentResponse` instead of raw JSON.

    The Durable SDK resolves a task by calling `set_value` with the decoded entity result (or an
    exception); converting there means every path that reads `task.result` (a plain `yield`,
    `task_all`'s list, `task_any`'s winner) sees the converted value.
    """

    agent_name: str = ""
    response_format: ResponseFormat | None = None
    correlation_id: str = ""

    def set_value(self, is_error: bool, value: Any) -> None:
        if not is_error:
            try:
                value = response_from_result(value, self.agent_name, self.response_format)
            except AgentRunError as exc:
                is_error, value = True, exc
        super().set_value(is_error, value)


def _completed_task(value: Any, is_played: bool) -> TaskBase:
    """A task that is already done: yielding it schedules nothing and hands back `value`."""
    task = AtomicTask(-1, [])
    task._set_is_scheduled(True)
    task.set_is_played(is_played)
    task.set_value(is_error=False, value=value)
    return task


class OrchestrationAgent:
    """An agent as an orchestrator sees it: `run` returns a task to `yield`, never a coroutine."""

    def __init__(
        self, context: df.DurableOrchestrationContext, name: str, *, stream_events: bool = False
    ) -> None:
        """`stream_events`: the entity also writes each turn's chunks to the app's reply streams
        (read back by a workflow's event stream); the task's `correlation_id` names the stream."""
        self.context = context
        self.name = name
        self.stream_events = stream_events
        self.id = name
        self.display_name = name
        self.description = f"Durable agent {name} (runs as entity {entity_name_for(name)})"

    def create_session(self) -> AgentSessionId:
        """A new session whose key is the same on every replay (taken from `context.new_uuid()`)."""
        return AgentSessionId(self.name, uuid.UUID(self.context.new_uuid()).hex)

    def get_session(self, session_id: str) -> AgentSessionId:
        """An existing session by key (or `@name@key`), e.g. one the HTTP run route created."""
        return AgentSessionId(self.name, session_key_of(session_id))

    def run(
        self,
        messages: object = None,
        *,
        session: SessionLike | None = None,
        options: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> TaskBase:
        """Run one turn on `session` (a new one if None); `yield` the result to get an `AgentResponse`.

        Options: `response_format` (a Pydantic class or a JSON schema dict; the response's `.value`
        is the parsed reply), `enable_tool_calls` (default True), `wait_for_response` (False: signal
        the turn and go on at once; the response is an "accepted" one with no reply text).
        """
        if stream:
            raise ValueError("agents in orchestrations do not stream; call run() without stream=True")
        options = dict(options or {})
        unknown = sorted(set(options) - set(SUPPORTED_OPTIONS))
        if unknown:
            raise ValueError(
                f"unsupported option(s) {', '.join(map(repr, unknown))}; "
                f"supported: {', '.join(SUPPORTED_OPTIONS)}"
            )
        text, role = message_input(messages)
        response_format = options.get("response_format")
        schema = response_schema_of(response_format)
        enable_tool_calls = options.get("enable_tool_calls", True)
        if not isinstance(enable_tool_calls, bool):
            raise ValueError("option 'enable_tool_calls' must be True or False")
        key = session_key_of(session) if session is not None else self.create_session().key
        entity_id = df.EntityId(entity_name_for(self.name), key)
        correlation_id = uuid.UUID(self.context.new_uuid()).hex
        request = turn_input(RunRequest(text, key, role, enable_tool_calls, schema), correlation_id)
        if self.stream_events:
            request[STREAM_FIELD] = True
        if not options.get("wait_for_response", True):
            self.context.signal_entity(entity_id, RUN_OPERATION, request)
            accepted = AgentResponse(
                messages=[Message(role="assistant", contents=[ACCEPTED_TEXT])],
                agent_id=self.name,
                additional_properties={"status": "accepted", "correlation_id": correlation_id},
            )
            return _completed_task(accepted, self.context.is_replaying)
        action = CallEntityAction(entity_id, RUN_OPERATION, request)
        # Built as the SDK's call_entity builds its task (same action, same id bookkeeping),
        # only with the task class that converts the result.
        task = self.context._generate_task(action, task_constructor=AgentRunTask)
        task.agent_name = self.name
        task.response_format = response_format
        task.correlation_id = correlation_id
        return task

    def __repr__(self) -> str:
        return f"OrchestrationAgent({self.name!r})"


def get_agent(
    context: df.DurableOrchestrationContext,
    name: str,
    resolve: Callable[[str], str | None],
    known: Sequence[str],
) -> OrchestrationAgent:
    """The orchestration-side agent called `name` (case-insensitive), or ValueError naming the known ones."""
    if context is None or not hasattr(context, "call_entity"):
        raise TypeError("get_agent needs the orchestration context (the orchestrator's `context` argument)")
    registered = resolve(name) if isinstance(name, str) else None
    if registered is None:
        raise ValueError(f"unknown agent {name!r}; registered agents: {', '.join(known) or 'none'}")
    return OrchestrationAgent(context, registered)
