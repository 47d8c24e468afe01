"""The durable entity behind each session: runs turns and keeps their history."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import azure.durable_functions as df
from agent_framework import Agent, AgentResponse, FunctionTool, Message, SupportsAgentRun

from . import clock, fork
from ._run_request import RequestError, RunRequest, validate_run_request
from ._session_index import activity_of
from ._storage import LazyIndex, LazyStore
from .callbacks import AgentCallbackContext, AgentResponseCallbackProtocol, notify
from .loop import run_coroutine
from .session import entity_name_for
from .state import AgentState, tool_failures
from .streams import STREAM_FIELD, StreamId, TurnStreamWriter

logger = logging.getLogger(__name__)

OPERATIONS = ("run_agent", "run", "get_state", "reset", "delete", "expire", *fork.FORK_OPERATIONS)
RUN_OPERATIONS = ("run_agent", "run")
"""`run` is Microsoft's name for a turn (agent-framework-azurefunctions signals and calls it), so an
orchestration or client written for that package reaches the same turn logic."""
PEER_METADATA_FIELDS = ("request_response_format", "wait_for_response", "created_at", "orchestration_id")
"""Fields of Microsoft's `RunRequest` that describe the request rather than the turn: accepted in an
entity input and not acted on (the entity always stores and answers the whole reply)."""
HISTORY_CACHE_SESSIONS = 256
STATE_CACHE_SESSIONS = 128


class StoredStates:
    """The state each session's last operation here stored, as its text and as the object it was
    made from: the next operation on the session is handed that same text back (the host gives an
    entity the state it committed), and then takes the object instead of decoding the text again,
    a cost that grows with the conversation. The text decides: one that differs by a character (a
    commit made elsewhere, a retry after a failed one) is decoded as before.

    An entry is taken out by the operation that uses it and put back with the new text once the
    operation has made it, so an operation that fails half-way leaves none to reuse."""

    def __init__(self, limit: int = STATE_CACHE_SESSIONS) -> None:
        self.limit = limit
        self._states: OrderedDict[str, tuple[str, AgentState]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str, text: str | None) -> AgentState | None:
        with self._lock:
            found = self._states.pop(key, None)
        return found[1] if found is not None and text is not None and found[0] == text else None

    def put(self, key: str, text: str, state: AgentState) -> None:
        with self._lock:
            self._states[key] = (text, state)
            while len(self._states) > self.limit:
                self._states.popitem(last=False)


def stored_text(context: df.DurableEntityContext) -> str | None:
    """The state's JSON text as the batch brought it (or as an earlier operation of the batch left
    it), before the SDK decodes it; None when it is already decoded or there is none."""
    text = getattr(context, "_state", None)
    return text if isinstance(text, str) and getattr(context, "_state_is_raw", False) else None


def store_text(context: df.DurableEntityContext, text: str) -> None:
    """Set the entity's state to the JSON `text` as is: the SDK passes a raw state through
    (`EntityState.to_json`), where it would encode a value itself (`tests/library/test_sdk_pins.py`
    pins both)."""
    context.set_state(text)
    context._state_is_raw = True  # noqa: SLF001  # the SDK's own flag for a state kept as text


def _fingerprint(state: AgentState, *, skip_last: bool = False) -> tuple[Any, ...]:
    """Identifies a history version: it only ever grows by appending, or is reset."""
    skipped = 1 if skip_last else 0
    last = state.entry_from_end(1 + skipped) or {}
    count = state.message_count - skipped
    return (count, last.get("correlation_id"), last.get("timestamp"), last.get("status"))


def _session_factory(agent: SupportsAgentRun) -> Callable[[], Any] | None:
    """`agent.create_session` for the agents a per-turn session cannot change; None for the rest.

    Given a session, agent-framework's `Agent` takes the messages as that session's own; run
    without one, it re-derives tool-approval bookkeeping by copying every message on each model
    call, which at 1000 stored messages was 40% of a turn. Each turn gets a new session with a
    random id, like one the framework would otherwise create, so history or memory providers
    keyed by session id load nothing into the turn: the entity state is the conversation.

    The session does change what the framework does with calls it pauses (approval-required or
    declaration-only tools, whose siblings it would keep in the session) and, given one, it adds
    its in-memory history provider to the agent, which `require_per_service_call_history_persistence`
    would act on. Agents with those, tools other than plain local functions, and agents that are
    not an `Agent` therefore run without one, exactly as before.
    """
    if not isinstance(agent, Agent) or agent.require_per_service_call_history_persistence:
        return None
    tools = agent.default_options.get("tools") or []
    for tool in tools:
        if (
            not isinstance(tool, FunctionTool)
            or tool.declaration_only
            or tool.approval_mode != "never_require"
        ):
            return None
    return agent.create_session


def agent_type_of(agent: SupportsAgentRun) -> str:
    return type(agent).__name__


def _run_options(request: RunRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if not request.enable_tool_calls:
        options["tool_choice"] = "none"
    if request.response_schema:
        options["response_format"] = request.response_schema
    return options


def _check_structured(response: AgentResponse, schema: dict[str, Any] | None) -> None:
    """Raise when a reply asked to follow a JSON schema does not."""
    if not schema:
        return
    import jsonschema

    try:
        value = json.loads(response.text)
    except ValueError:
        raise ValueError(f"structured reply is not JSON: {response.text[:200]!r}") from None
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        raise ValueError(f"structured reply does not match response_schema: {exc.message}") from None


def turn_result(entry: dict[str, Any], message_count: int, schema: dict[str, Any] | None) -> dict[str, Any]:
    """What `run_agent` returns for a finished turn, from its stored reply entry.

    An orchestration's `call_entity` gets only this result (as JSON), not the state, so it carries
    everything the orchestration-side agent builds its `AgentResponse` from: the reply text, the
    messages the run produced, token usage and, when a schema was given, the parsed value. A
    failed turn is a result with `status: "error"` rather than a raised exception, so the failure
    is stored in the session like any other turn; the orchestration side raises it.
    """
    correlation_id = entry.get("correlation_id")
    if entry.get("status") == "error":
        return {
            "status": "error",
            "error": entry.get("error") or "agent run failed",
            "correlation_id": correlation_id,
        }
    reply = entry.get("agent_response") or {}
    result: dict[str, Any] = {
        "status": "success",
        "response": entry.get("content") or "",
        "correlation_id": correlation_id,
        "message_count": message_count,
        "messages": reply.get("messages") or [],
        "usage": reply.get("usage") or {},
    }
    if schema:
        try:
            result["value"] = json.loads(result["response"])  # checked against the schema in the turn
        except ValueError:
            return {
                "status": "error",
                "error": f"structured reply is not JSON: {result['response'][:200]!r}",
                "correlation_id": correlation_id,
            }
    return result


class ToolCallError(RuntimeError):
    """A tool the agent called raised; the turn is recorded as failed."""


class AgentEntity:
    """Operation logic, kept apart from the Durable context so it is easy to reason about."""

    def __init__(
        self,
        agent: SupportsAgentRun,
        agent_name: str,
        callback: AgentResponseCallbackProtocol | None = None,
        streams: LazyStore | None = None,
    ) -> None:
        self.agent = agent
        self.agent_name = agent_name
        self.callback = callback
        self.streams = streams
        # Parsed history per session, so a turn does not rebuild every earlier message from its
        # stored dict (the cost that grows with the conversation). Checked against the stored
        # state each turn, so a stale entry is never used.
        self._histories: OrderedDict[str, tuple[tuple[Any, ...], list[Message]]] = OrderedDict()
        self._histories_lock = threading.Lock()
        self._create_session = _session_factory(agent)

    def _history(self, session_key: str, state: AgentState, *, skip_last: bool = False) -> list[Message]:
        """Messages of the earlier turns (`skip_last`: the newest entry is this turn's own message)."""
        fingerprint = _fingerprint(state, skip_last=skip_last)
        with self._histories_lock:
            hit = self._histories.get(session_key)
            if hit is not None and hit[0] == fingerprint:
                self._histories.move_to_end(session_key)
                return list(hit[1])
        return state.to_messages(skip_last=skip_last)

    def _remember(self, session_key: str, state: AgentState, messages: list[Message]) -> None:
        with self._histories_lock:
            self._histories[session_key] = (_fingerprint(state), messages)
            self._histories.move_to_end(session_key)
            while len(self._histories) > HISTORY_CACHE_SESSIONS:
                self._histories.popitem(last=False)

    async def _invoke(
        self,
        messages: list[Message],
        options: dict[str, Any],
        context: AgentCallbackContext,
        stream_id: StreamId | None = None,
    ) -> AgentResponse:
        run: Any = self.agent.run
        kwargs: dict[str, Any] = {"options": options} if options else {}
        if self._create_session is not None:
            kwargs["session"] = self._create_session()
        store = self.streams.get() if self.streams is not None and stream_id is not None else None
        if self.callback is None and store is None:
            return await run(messages, **kwargs)
        writer = TurnStreamWriter(store, stream_id) if store is not None and stream_id is not None else None
        status = "error"
        try:
            stream = run(messages, stream=True, **kwargs)
            async for update in stream:
                if writer is not None:
                    writer.add_update(update)
                await notify(self.callback, "on_streaming_response_update", update, context)
            response = await stream.get_final_response()
            status = "success"
        finally:
            if writer is not None:
                writer.finish(status)
        await notify(self.callback, "on_agent_response", response, context)
        return response

    def run_agent(self, state: AgentState, raw_input: object, session_key: str) -> dict[str, Any]:
        """One turn. Errors become a failed turn in the history, never a broken entity."""
        if isinstance(raw_input, str):
            raw_input = {"message": raw_input}
        if not isinstance(raw_input, dict):
            return {"status": "error", "error": "run_agent input must be a JSON object with a 'message'"}
        correlation_id = str(raw_input.get("correlation_id") or uuid.uuid4().hex)
        skipped = ("correlation_id", STREAM_FIELD, *PEER_METADATA_FIELDS)
        try:
            if raw_input.get("options"):
                raise RequestError("'options' (agent run options) are not supported; use the request fields")
            turn = {k: v for k, v in raw_input.items() if k not in skipped and k != "options"}
            request = validate_run_request(turn)
        except RequestError as exc:
            return {"status": "error", "error": f"invalid run_agent input: {exc}"}
        if state.has_correlation(correlation_id):
            # A redelivered signal or call: the turn already happened, keep history free of
            # duplicates and answer with what that turn produced.
            entry = state.reply_for(correlation_id)
            if entry is None:
                return {"status": "pending", "correlation_id": correlation_id}
            return turn_result(entry, state.message_count, request.response_schema)

        history: list[Message] | None = None
        state.add_user_message(request.message, correlation_id, role=request.role)
        context = AgentCallbackContext(self.agent_name, correlation_id, session_key, request.message)
        options = _run_options(request)
        try:
            history = self._history(session_key, state, skip_last=True)
            messages = [*history, Message(role=request.role, contents=[request.message])]
            stream_id = (
                StreamId(entity_name_for(self.agent_name), session_key, correlation_id)
                if raw_input.get(STREAM_FIELD) is True
                else None
            )
            response = run_coroutine(self._invoke(messages, options, context, stream_id))
            if failures := tool_failures(response.messages):
                raise ToolCallError("; ".join(failures))
            _check_structured(response, request.response_schema)
        except Exception as exc:  # stored history, the model, a tool or the schema check failed
            logger.warning("agent %s turn %s failed: %s", self.agent_name, correlation_id, exc)
            state.add_error(correlation_id, f"{type(exc).__name__}: {exc}")
            if history is not None:
                self._remember(session_key, state, history)  # failed turns are not replayed
            return {
                "status": "error",
                "error": f"{type(exc).__name__}: {exc}",
                "correlation_id": correlation_id,
            }
        entry = state.add_assistant_message(response.text, response, correlation_id)
        self._remember(session_key, state, [*messages, *response.messages])
        return turn_result(entry, state.message_count, request.response_schema)


def _operation_input(context: df.DurableEntityContext) -> object:
    """The operation's input, or None when it has none (the SDK raises on a missing input)."""
    try:
        return context.get_input()
    except (TypeError, ValueError):
        return None


def is_idle(state: AgentState, raw_input: object) -> bool:
    """Whether the session's last turn is older than `idle_seconds` (the `expire` operation).

    Decided inside the entity, between turns, from the newest entry's own timestamp: a session used
    since a sweep listed it is kept, whatever the listing said."""
    seconds = raw_input.get("idle_seconds") if isinstance(raw_input, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        return False
    newest = state.entry_from_end(1)
    if newest is None:
        return True
    try:
        stamp = datetime.fromisoformat(str(newest.get("timestamp")))
    except ValueError:
        return False  # cannot tell: keep it
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return (clock.utc_now() - stamp).total_seconds() > seconds


def _update_index(
    index: LazyIndex | None,
    entity_name: str,
    key: str,
    before: datetime | None,
    after: datetime | None,
    *,
    removed: bool = False,
) -> None:
    """Keep the session index (`_session_index.py`) up to date, off the operation's path: the write
    is queued here and made once the turn is committed (`TableSessionIndex.write_later`)."""
    table = index.get() if index is not None else None
    if table is None:
        return
    table.write_later(entity_name, key, None if removed else after, before)


def create_entity_function(
    agent: SupportsAgentRun,
    agent_name: str,
    callback: AgentResponseCallbackProtocol | None = None,
    streams: LazyStore | None = None,
    index: LazyIndex | None = None,
) -> Callable[[df.DurableEntityContext], None]:
    """Entity body for the Durable SDK (`Entity.create` wraps it)."""
    logic = AgentEntity(agent, agent_name, callback, streams)
    agent_type = agent_type_of(agent)
    entity_name = entity_name_for(agent_name)
    states = StoredStates()

    def entity_function(context: df.DurableEntityContext) -> None:
        text = stored_text(context)
        state = states.take(context.entity_key, text)
        stored: object = text if state is not None else context.get_state(lambda: None)
        try:
            if state is None:
                state = AgentState.from_dict(stored, agent_type=agent_type)
        except ValueError as exc:
            # Never overwrite state we cannot read: report and leave it as stored.
            logger.error("session %s has unreadable state: %s", context.entity_key, exc)
            context.set_result({"status": "error", "error": f"stored state is unreadable: {exc}"})
            return
        operation = context.operation_name
        remove = False
        before = activity_of(state)
        if operation in RUN_OPERATIONS:
            result = logic.run_agent(state, _operation_input(context), context.entity_key)
        elif operation == "get_state":
            result = state.get_state()  # the whole history, as the HTTP API shows it
        elif operation == "reset":
            state.reset()
            result = {"status": "reset"}
        elif operation == "delete":
            result = {"status": "deleted", "message_count": state.message_count}
            remove = True
        elif operation == "expire":
            remove = is_idle(state, _operation_input(context))
            result = {"status": "expired" if remove else "active"}
        elif operation == "fork":
            result = fork.fork(state, _operation_input(context), context)
        elif operation == "seed":
            result = fork.seed(state, _operation_input(context))
        else:
            result = {"status": "error", "error": f"unknown operation {operation!r}"}
        context.set_result(result)
        if remove or (stored is None and not state.message_count):
            # `delete`, and `expire` of an idle session, remove the session (the entity no longer
            # exists, so listings drop it); they run between turns like any operation, so a turn in
            # flight is never cut in half.
            # Otherwise nothing happened: reading or a bad call creates no session. (After
            # set_result, which marks the entity as existing.)
            context.destruct_on_exit()
            if stored is not None:
                _update_index(index, entity_name, context.entity_key, before, None, removed=True)
        else:
            # A reset session has no history left to date it: it is as new as the reset.
            after = activity_of(state) or (clock.utc_now() if operation == "reset" else None)
            if after is not None and after != before:
                _update_index(index, entity_name, context.entity_key, before, after)
            text = state.to_json()
            store_text(context, text)
            states.put(context.entity_key, text, state)

    entity_function.__name__ = f"{agent_name}_entity"
    return entity_function
