"""Entity locks (critical sections): the messages an orchestration sends to lock and unlock entities,
as the engine carries them. One lock system, in the entity store and its dispatcher:

- A lock request is an entity call (the engine sends it like any call, records it in the history,
  sends it again after a restart until answered) whose signal row is marked `control=lock`. It goes
  to the first entity of the (sorted) lock set. An entity that is not locked takes it in order with
  its other messages: it records the lock (the critical section's id and the orchestration holding
  it) in its state row, then passes the request on to the next entity of the set, or, the last one,
  answers the orchestration (the grant). Entities are locked one after the other in a fixed order,
  so two orchestrations never deadlock.
- While locked, an entity applies only the messages of the orchestration holding the lock (its
  calls, its unlock) and unlocks; the others wait in its queue, in order, until the unlock.
- An unlock is a signal marked `control=unlock`; the entity releases the lock if that section holds
  it and remembers the section as released (the last `store.RELEASED_KEPT`), so that a lock request of a
  section already over (a copy passed on again after a restart, one still on its way when the
  orchestration was terminated, or one still queued here behind another section's lock when its
  orchestration gave up) is dropped instead of locking the entity for ever. An unlock never waits
  behind another section's lock, so an orchestration that ends is not held by its unlocks.

Everything is in the entity's state row and signal rows, written before the commit that applies
them (at-least-once, each step idempotent), so locks survive a restart.
"""

from __future__ import annotations

import json
from typing import Any

from . import store as _store

LOCK_OPERATION = "<lock>"  # the operation name of a lock request's row (shown as such in the queue)
UNLOCK_OPERATION = "<unlock>"
CONTROLS = {LOCK_OPERATION: "lock", UNLOCK_OPERATION: "unlock"}
GRANTED = json.dumps({"result": "null"})  # the answer a lock request gets (no operation result)


def control_of(operation: str) -> str | None:
    """`lock` or `unlock` for the operations that carry them, None for an entity operation."""
    return CONTROLS.get(operation)


def lock_request(section: str, lock_set: list[str], position: int = 0) -> str:
    """A lock request's input (JSON text): the section, the whole set and where in it this copy is."""
    return json.dumps({"section": section, "lockSet": lock_set, "position": position})


def unlock_request(section: str) -> str:
    """An unlock's input (JSON text)."""
    return json.dumps({"section": section})


def parse(input_text: str | None) -> dict[str, Any]:
    """A lock or unlock message's input, however many times it was JSON-encoded on its way."""
    value: Any = input_text
    for _ in range(3):
        if isinstance(value, dict):
            return value
        if not isinstance(value, str):
            break
        try:
            value = json.loads(value)
        except ValueError:
            break
    return value if isinstance(value, dict) else {}


def unreleased(history: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The critical sections an orchestration's history requested and did not unlock, with their
    lock sets: what a terminate releases (all of the set: how far the request got is not known)."""
    requested: dict[str, list[str]] = {}
    unlocked: set[str] = set()
    for item in history:
        if item.get("LockSet") is not None and item.get("RequestId"):
            requested[str(item["RequestId"])] = [str(e) for e in item["LockSet"]]
        elif item.get("Unlock"):
            unlocked.add(str(item["Unlock"]))
    return {section: targets for section, targets in requested.items() if section not in unlocked}


def entity_of(iid: str) -> tuple[str, str] | None:
    """(name, key) of an entity id `@name@key`, None when it is not one a table can hold."""
    if not iid.startswith("@") or iid.count("@") < 2:
        return None
    _, name, key = iid.split("@", 2)
    return None if _store.invalid_key_reason(name, key) else (name, key)
