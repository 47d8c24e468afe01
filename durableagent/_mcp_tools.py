"""Agents as MCP tools, registered as Microsoft's `AgentFunctionApp(enable_mcp_tool_trigger=True)`
registers them: function `mcptool-{agent}`, an `mcpToolTrigger` named after the agent, described
by the agent's description (or "Interact with {agent} agent"), with the properties `query`
(required) and `sessionId`.

A call is one turn of the session `sessionId` names (Microsoft's older `threadId` is read too; a
session id in the `@dafx-name@key` form gives its key), or of a new session when it names none,
run the way the HTTP run route runs one (`turns.py`): signalled once under a correlation id of its
own, then polled until the reply is stored. The reply text is the tool's result; a turn that
fails, or does not finish within the app's polling timeout, raises, which the Functions MCP
extension returns as an `isError` result. An optional `correlationId` argument (not in the schema,
as it is not in Microsoft's) makes a retry after a lost answer safe: the entity runs a correlation
id once and answers its repeat with the stored reply.

Progress (beyond Microsoft): while a call runs, a host that can send MCP progress notifications
for it sets `MCP_PROGRESS` (the local host does when the client sent a progress token); the turn
then runs with its reply stream (`turns.signal(..., events=True)`, as the run route's Server-Sent
Events) and each text chunk is handed to that callback as it is stored. On Azure nothing sets it:
the extension has no way for a function to send progress.

Workflows as MCP tools are a seam for later: a second registration beside `register_agent_tool`
with the workflow's start-executor input as its properties.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

from ._run_request import RunRequest
from .session import ENTITY_PREFIX, AgentSessionId, validate_key
from .turns import Turn, TurnOutcome, Turns

logger = logging.getLogger(__name__)

FUNCTION_PREFIX = "mcptool"
QUERY, SESSION_ID, THREAD_ID, CORRELATION_ID = "query", "sessionId", "threadId", "correlationId"
TOOL_PROPERTIES = [
    {
        "propertyName": QUERY,
        "propertyType": "string",
        "description": "The query to send to the agent.",
        "isRequired": True,
        "isArray": False,
    },
    {
        "propertyName": SESSION_ID,
        "propertyType": "string",
        "description": "Optional session identifier for conversation continuity.",
        "isRequired": False,
        "isArray": False,
    },
]


Progress = Callable[[str], Awaitable[None]]
MCP_PROGRESS: ContextVar[Progress | None] = ContextVar("durableagent_mcp_progress", default=None)
"""The MCP progress callback of the tool call under way (text chunks of the turn), set by a host that
can send progress notifications for it; None when nobody asked for progress."""
_OUTCOMES = {"success": "success", "error": "error", "accepted": "accepted"}


def function_name(agent_name: str) -> str:
    """`mcptool-{agent}` with the agent name's non-identifier characters as `_` (Microsoft's rule)."""
    sanitized = re.sub(r"[^0-9a-zA-Z_]", "_", agent_name).strip("_") or "agent"
    if sanitized[0].isdigit():
        sanitized = f"agent_{sanitized}"
    return f"{FUNCTION_PREFIX}-{sanitized}"


def tool_description(agent_name: str, agent: Any) -> str:
    """The agent's own description, or Microsoft's stand-in."""
    description = getattr(agent, "description", None)
    if isinstance(description, str) and description.strip():
        return description
    return f"Interact with {agent_name} agent"


def parse_call(agent_name: str, context: str) -> tuple[str, str | None, str | None]:
    """(query, session key, correlation id) of one tool call's invocation context; ValueError naming
    what is wrong with it (Microsoft raises ValueError for a missing query too)."""
    try:
        parsed = json.loads(context)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Invalid MCP context format: {exc}") from exc
    arguments = parsed.get("arguments") if isinstance(parsed, dict) else None
    arguments = arguments if isinstance(arguments, dict) else {}
    query = arguments.get(QUERY)
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"MCP Tool invocation is missing required '{QUERY}' argument of type string.")
    session = arguments.get(SESSION_ID) or arguments.get(THREAD_ID)
    key: str | None = None
    if session is not None:
        if not isinstance(session, str):
            raise ValueError(f"'{SESSION_ID}' must be a string, got {type(session).__name__}")
        key = session.strip() or None
        if key is not None and key.startswith("@"):
            parsed_id = AgentSessionId.parse(key)
            if parsed_id.name.lower() not in (agent_name.lower(), f"{ENTITY_PREFIX}{agent_name}".lower()):
                raise ValueError(f"session id {key!r} names agent {parsed_id.name!r}, not {agent_name!r}")
            key = parsed_id.key
        if key is not None:
            validate_key(key)
    correlation = arguments.get(CORRELATION_ID)
    if correlation is not None and (not isinstance(correlation, str) or not correlation.strip()):
        raise ValueError(f"'{CORRELATION_ID}' must be a non-empty string")
    return query, key, correlation


async def run_tool_call(turns: Turns, client: Any, agent_name: str, context: str) -> str:
    """One tool call: one turn, its reply text; raises when the turn fails or does not finish."""
    query, key, correlation = parse_call(agent_name, context)
    turn = Turn.new(agent_name, RunRequest(message=query, session_key=key), key, correlation)
    progress = MCP_PROGRESS.get()
    if progress is not None and turns.streams is not None:
        outcome = await _streamed(turns, client, turn, progress)
    else:
        outcome = await turns.run(client, turn)
    if outcome.status == "success":
        return str(outcome.reply or "")
    if outcome.status == "accepted":
        raise TimeoutError(
            f"the turn did not finish within {turns.polling.timeout:g} s; it runs on in session "
            f"{turn.session.key} (correlation id {turn.correlation_id}): call again with that "
            f"{SESSION_ID} and {CORRELATION_ID} for its reply"
        )
    error = outcome.body.get("error") or "Unknown error"
    raise RuntimeError(f"Agent execution failed: {error}")


async def _streamed(turns: Turns, client: Any, turn: Turn, progress: Progress) -> TurnOutcome:
    """The turn run with its reply stream: text chunks to `progress` as they come, then the
    outcome its `final` event carries (the run route's JSON body, read from the session state)."""
    signalled = await turns.signal(client, turn, events=True)
    if isinstance(signalled, TurnOutcome):
        return signalled
    final: dict[str, Any] = turns.accepted(turn).body
    async for chunk in turns.events(client, signalled, {}):
        kind, data = _sse_event(chunk)
        if kind == "text" and isinstance(data, dict) and data.get("text"):
            try:
                await progress(str(data["text"]))
            except Exception as exc:  # a client that went away must not fail the turn's answer
                logger.debug("MCP progress for %s not sent: %s", turn.session, exc)
        elif kind == "final" and isinstance(data, dict):
            final = data
    status = _OUTCOMES.get(str(final.get("status")), "error")
    return TurnOutcome(turn, status, final)  # type: ignore[arg-type]


def _sse_event(chunk: str) -> tuple[str, Any]:
    """(event name, parsed data) of one Server-Sent Event as `_sse.sse` writes it."""
    kind, data = "", None
    for line in chunk.splitlines():
        if line.startswith("event: "):
            kind = line[len("event: ") :]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: ") :])
    return kind, data


def register_agent_tool(app: Any, agent_name: str, agent: Any, turns: Callable[[], Turns]) -> None:
    """Register `mcptool-{agent}` on `app` (a `DFApp`): an MCP tool trigger with a durable client."""

    async def mcp_tool(context: str, client: Any) -> str:
        return await run_tool_call(turns(), client, agent_name, context)

    mcp_tool.__name__ = mcp_tool.__qualname__ = function_name(agent_name).replace("-", "_")
    app.function_name(function_name(agent_name))(
        app.mcp_tool_trigger(
            arg_name="context",
            tool_name=agent_name,
            description=tool_description(agent_name, agent),
            tool_properties=json.dumps(TOOL_PROPERTIES),
        )(app.durable_client_input(client_name="client")(mcp_tool))
    )
    logger.info("registered agent %s as MCP tool %s", agent_name, function_name(agent_name))
