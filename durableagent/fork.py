"""Forking a session: the source entity copies its first N turns into a new session's entity.

Two entity operations, so the copy is of one point in the source's history and never races a turn:
- `fork` (on the source; input `{"turn", "target", "fork_id"}`) runs between the source's turns
  like every operation, takes its first `turn` turns and signals `seed` to the target entity (same
  agent, key `target`) with them, compressed as one history chunk. A fork that cannot be done (turn
  out of range, bad input) is kept in the source's state under `fork_failures` (the newest few) so
  the route waiting on it can say why; a source that does not exist stays nonexistent.
- `seed` (on the target; input `{"fork_id", "source", "turn", "history"}`) stores the turns as the
  session's history, with `forked_from` naming the source, turn and fork id, only when the session
  has no turns: a conversation is never overwritten. A repeat of the same fork id is answered as
  done, so a signal delivered twice (the local host forwards an entity's signals before it commits
  the entity's state, so a crash between the two sends them again) seeds once.

The Python SDK gives entity functions no way to signal another entity, though the entity protocol
has one: the batch result's `signals` list (`{"target": {"name", "key"}, "name", "input"}`), which
the Functions extension sends with the entity's state commit and the local host forwards.
`entity_handler` is the SDK's entity handler plus that list, filled by the operations through an
outbox on the context.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import azure.durable_functions as df

from . import clock
from .session import validate_key
from .state import AgentState, HistoryChunk

FORK_OPERATIONS = ("fork", "seed")
_OUTBOX = "_durableagent_signals"
MAX_FORK_ID = 128


class ForkError(ValueError):
    """A fork or seed that cannot be done; the message says why in the caller's terms."""


def entity_handler(entity_function: Callable[[df.DurableEntityContext], None]) -> Callable[[Any], str]:
    """What `df.Entity.create` builds, plus the signals the operations put in the context's outbox."""

    def handle(context: Any) -> str:
        body = getattr(context, "body", None)
        ctx, batch = df.DurableEntityContext.from_json(context if body is None else body)
        outbox: list[dict[str, Any]] = []
        setattr(ctx, _OUTBOX, outbox)
        text = df.Entity(entity_function).handle(ctx, batch)
        if not outbox:
            return text
        response = json.loads(text)
        response["signals"] = [*(response.get("signals") or []), *outbox]
        return json.dumps(response)

    handle.entity_function = entity_function  # type: ignore[attr-defined]  # as the SDK's handle has
    return handle


def signal(context: df.DurableEntityContext, key: str, operation: str, value: Any) -> None:
    """Queue a signal to the entity of the same name with `key`, sent once this batch is committed."""
    outbox = getattr(context, _OUTBOX, None)
    if outbox is None:
        raise ForkError("this entity runs without durableagent's entity handler, which sends its signals")
    outbox.append(
        {
            "target": {"name": context.entity_name, "key": key},
            "name": operation,
            # Encoded as the Python durable client encodes a signal's input, which the SDK decodes.
            "input": json.dumps(json.dumps(value)),
            "requestTime": int(clock.utc_now().timestamp() * 1000),
        }
    )


def _fork_id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_FORK_ID:
        raise ForkError(f"'fork_id' must be a string of 1 to {MAX_FORK_ID} characters")
    return value


def fork(state: AgentState, raw_input: object, context: df.DurableEntityContext) -> dict[str, Any]:
    """The source's `fork` operation: signal `seed` with the first turns, or record why not."""
    fork_id = raw_input.get("fork_id") if isinstance(raw_input, dict) else None
    try:
        if not isinstance(raw_input, dict):
            raise ForkError("fork input must be a JSON object {turn, target, fork_id}")
        fork_id = _fork_id(fork_id)
        target = raw_input.get("target")
        try:
            validate_key(target)
        except ValueError as exc:
            raise ForkError(f"invalid target session id: {exc}") from None
        if target == context.entity_key:
            raise ForkError("a session cannot be forked into itself")
        try:
            entries = state.first_turns(raw_input.get("turn"))  # type: ignore[arg-type]
        except ValueError as exc:
            raise ForkError(str(exc)) from None
        turn = raw_input["turn"]
        seed_input = {
            "fork_id": fork_id,
            "source": context.entity_key,
            "turn": turn,
            "history": HistoryChunk.pack(entries).to_dict(),
        }
        signal(context, str(target), "seed", seed_input)
    except ForkError as exc:
        if isinstance(fork_id, str):  # kept only if the source exists: the entity drops empty new state
            state.record_fork_failure(fork_id, str(exc))
        return {"status": "error", "error": str(exc)}
    return {"status": "forking", "target": target, "turn": turn, "message_count": len(entries)}


def seed(state: AgentState, raw_input: object) -> dict[str, Any]:
    """The target's `seed` operation: take the copied turns unless the session already has some."""
    try:
        if not isinstance(raw_input, dict):
            raise ForkError("seed input must be a JSON object {fork_id, source, turn, history}")
        fork_id = _fork_id(raw_input.get("fork_id"))
        if (state.forked_from or {}).get("fork_id") == fork_id:
            return {"status": "forked", "message_count": state.message_count, "repeat": True}
        if state.message_count:
            raise ForkError(
                f"the session already has {state.turn_count} turn(s); a fork never overwrites one"
            )
        try:
            entries = HistoryChunk.from_dict(raw_input.get("history")).unpack()
        except ValueError as exc:
            raise ForkError(f"unreadable copied history: {exc}") from None
        origin = {
            "session_id": str(raw_input.get("source")),
            "turn": raw_input.get("turn"),
            "fork_id": fork_id,
            "forked_at": clock.utc_now().isoformat(),
        }
        state.seed(entries, origin)
    except ForkError as exc:
        return {"status": "error", "error": str(exc)}
    return {"status": "forked", "message_count": state.message_count}
