"""Durable entity persistence in Azure Storage (Azurite locally).

How texts are spread over row properties and blobs, and the committed-row cache, live in
`storage/tables.py` (shared with the orchestration store). Layout (one table and one blob container
per task hub):
- table `<hub>Entities` (hub reduced to letters/digits), PartitionKey = instance id `@name@key`;
- row `state`: `exists`, `lastOperationTime`, `name`, `key`, `applied` (see below) and the state's
  JSON text: in `state`, split over `state`, `state1`, ... (`stateParts`) when longer than one
  table property holds, or in a blob (`stateBlob`) when longer than a row holds. A split state is
  rewritten by merging only the parts that changed, so parts past `stateParts` may be left over
  from a longer state: only the first `stateParts` make the text; and the entity's lock, if an
  orchestration's critical section holds it (`lockedBy`, `lockOwner`, with the sections released
  lately in `released`: see `locks.py`); and the orchestrations the last batch started (`outbox`,
  stored as the state is, and `outboxAt`), started after the commit and again at start-up;
- rows `sig-<20-digit sequence>`: accepted signals (`op`, and `input` stored the same way; one from
  an orchestration also has `requestId`, `parent` (the instance whose inbox gets the answer, or for
  a signal the acknowledgement), `parentExecution` and `call` (and `control` for a critical
  section's lock or unlock), and its row key was recorded in that
  instance's history first, so sending it again is harmless);
- rows `due-<20-digit sequence>`: scheduled signals (the same properties, and `due`), outside the
  queue until their time, when one transaction turns each into the `sig-` row of its sequence.
A signal row is written before the API answers 202. Applying a batch ends in ONE ETag-checked write
of the state row that also lists the applied signals' row keys in `applied`; those signal rows are
deleted afterwards, off the request path, and dropped from the list by a later commit once they are
gone. A killed host therefore neither loses an accepted signal nor applies one twice: a signal row
whose key the state row lists was applied. (One write instead of a transaction: Azurite answers a
single update several times faster than a batch.)

An operation may instead be accepted in the state row itself (`hold`: `held` = its signal key,
`heldOp`, `heldInput`), when it comes while nothing else is queued for the entity (the run route's
turns, `EntityDispatcher.accept_inline`): one write where a signal row costs an insert and, after
its commit, a delete. The commit that applies it clears those properties in the same write. After
a crash the row still holds it: `instances_with_signals` finds such rows and `pending` returns the
held operation first (it came before any signal row of the entity).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableTransactionError, UpdateMode

from ..clock import Clock
from ..storage.tables import (
    CACHED_ROWS,
    PART_CHARS,
    ConcurrencyConflict,
    HubStorage,
    RowBudget,
    RowCache,
    StorageUnavailable,
    container_name_for,
    error_code,
    next_sequence,
    part_name,
    row_parts,
    split_text,
    table_name_for,
)

__all__ = [
    "PART_CHARS",
    "ConcurrencyConflict",
    "EntityRecord",
    "EntityStore",
    "PendingSignal",
    "StorageUnavailable",
    "container_name_for",
    "instance_id",
    "invalid_key_reason",
    "new_signal_key",
    "next_sequence",
    "table_name_for",
]

log = logging.getLogger(__name__)

STATE_ROW = "state"
SIGNAL_PREFIX = "sig-"
DUE_PREFIX = "due-"  # a scheduled signal waiting for its time (moved to a `sig-` row then)
# Signals applied in one batch (their row keys are listed in the state row until deleted).
MAX_BATCH = 50
RELEASED_KEPT = 32  # critical sections an entity remembers as released (see `locks.py`)
HELD_INPUT_CHARS = 16 * 1024
"""Longest input an operation held in the state row may have (`EntityStore.hold`; longer ones are
signals in rows of their own): a table property holds 32K UTF-16 characters."""
_BAD_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def invalid_key_reason(name: str, key: str) -> str | None:
    """Why an entity id cannot be a table PartitionKey, or None if it can."""
    if not name or "@" in name:
        return "entity name must be non-empty and must not contain '@'"
    if key == "":
        return "entity key must be non-empty"
    for label, value in (("name", name), ("key", key)):
        if _BAD_KEY_CHARS.search(value):
            return f"entity {label} must not contain '/', '\\', '#', '?' or control characters"
    if len(instance_id(name, key)) > 512:
        return "entity id too long (max 512 characters)"
    return None


def new_signal_key() -> str:
    """The row key of a new signal: its sequence makes rows sort in arrival order."""
    return f"{SIGNAL_PREFIX}{next_sequence():020d}"


def instance_id(name: str, key: str) -> str:
    """The Durable instance id: entity names are case-insensitive, keys are not."""
    return f"@{name.lower()}@{key}"


def _applied_keys(row: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k for k in str(row.get("applied") or "").split(",") if k)


def _held(row: Mapping[str, Any]) -> PendingSignal | None:
    """The operation a state row holds (`EntityStore.hold`), if any."""
    key = row.get("held")
    if not key:
        return None
    return PendingSignal(str(key), str(row.get("heldOp") or ""), row.get("heldInput"), held=True)


def _held_properties(signal: PendingSignal | None) -> dict[str, Any]:
    """A state row's properties for the operation it holds (None: it holds none; "" clears a merge)."""
    if signal is None:
        return {"held": "", "heldOp": "", "heldInput": ""}
    properties = {"held": signal.row_key, "heldOp": signal.operation}
    if signal.input is not None:
        properties["heldInput"] = signal.input
    return properties


@dataclass
class PendingSignal:
    """An accepted signal waiting to be applied."""

    row_key: str
    operation: str
    input: str | None  # JSON text of the input token (what the entity batch carries)
    input_blob: str | None = None
    request_id: str | None = None  # from an orchestration: its answer or acknowledgement goes to `parent`
    parent: str | None = None
    call: bool = False  # a call (the orchestration waits for the result), not a signal
    parent_execution: str = ""  # the execution of `parent` that sent it (answers to others are dropped)
    control: str | None = None  # `lock` or `unlock` of a critical section (`locks.py`), no operation
    held: bool = False  # stored in the entity's state row (`hold`), not in a row of its own


@dataclass
class EntityRecord:
    """The persisted state row of one entity."""

    instance_id: str
    name: str
    key: str
    exists: bool
    state: str | None
    last_operation_time: datetime | None
    etag: str | None
    state_blob: str | None = None
    applied: frozenset[str] = frozenset()  # signal row keys applied (their rows may still exist)
    state_parts: tuple[int, ...] = ()  # lengths of the properties `state` is split over, if it is
    locked_by: str | None = None  # the critical section holding the entity's lock (`locks.py`)
    lock_owner: str | None = None  # the orchestration instance whose section that is
    released: tuple[str, ...] = ()  # the last critical sections released here, oldest first
    # Orchestrations the last batch started (`{"name", "instanceId", "input", "scheduled",
    # "execution"}`): committed with it, started after it, started again at start-up if need be.
    outbox: tuple[dict[str, Any], ...] = ()
    outbox_blob: str | None = None
    held: PendingSignal | None = None  # an accepted operation stored in this row (`EntityStore.hold`)

    def unchanged_parts(self, parts: list[str]) -> set[int]:
        """Which of a new state's `parts` this record already stores, in the same property."""
        if self.state is None or self.state_blob or not self.state_parts:
            return set()
        same: set[int] = set()
        offset = 0
        for index, (size, part) in enumerate(zip(self.state_parts, parts, strict=False)):
            if size == len(part) and self.state[offset : offset + size] == part:
                same.add(index)
            offset += size
        return same


class EntityStore(HubStorage):
    """Async access to one task hub's entity table and blob container."""

    def __init__(self, connection_string: str, hub_name: str, clock: Clock | None = None) -> None:
        """`clock` stamps `lastOperationTime` (default: the wall clock)."""
        super().__init__(connection_string, table_name_for(hub_name), container_name_for(hub_name))
        self.clock = clock or Clock()
        self.hub_name = hub_name
        # Committed state rows (see RowCache): every poll of a waiting run request and every apply
        # then costs no storage round trip and no blob download.
        self.states: RowCache[EntityRecord] = RowCache(CACHED_ROWS)
        self.cache_hooks.append(self.states)
        # Applied signal rows: which were deleted since their keys were listed, which deletions
        # are under way, and the background tasks doing them.
        self._deleted: dict[str, set[str]] = {}
        self._deleting: set[tuple[str, str]] = set()
        self._cleanups: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        """Release the HTTP sessions of both clients (unfinished clean-ups are redone later)."""
        for task in list(self._cleanups):
            task.cancel()
        await asyncio.gather(*self._cleanups, return_exceptions=True)
        await super().close()

    # -- signals -------------------------------------------------------------------------------
    async def add_signal(
        self,
        name: str,
        key: str,
        operation: str,
        input_text: str | None,
        *,
        row_key: str | None = None,
        request_id: str | None = None,
        parent: str | None = None,
        call: bool = False,
        parent_execution: str = "",
        control: str | None = None,
    ) -> PendingSignal:
        """Persist an accepted signal; returns it as the worker will apply it.

        An orchestration passes the `row_key` it recorded in its history, so sending again after a
        crash finds the row already there (ResourceExistsError) instead of adding a second one, with
        the `request_id` and `parent` instance its answer (for a `call`) or acknowledgement goes to.
        """
        extra: dict[str, Any] = {
            "requestId": request_id,
            "parent": parent,
            "call": call or None,
            "parentExecution": parent_execution,
            "control": control,
        }
        row_key = row_key or new_signal_key()
        entity = await self._add_signal_row(name, key, row_key, operation, input_text, extra)
        return PendingSignal(
            row_key,
            operation,
            input_text,
            entity.get("inputBlob"),
            request_id,
            parent,
            call,
            parent_execution,  # answers to an execution that has ended are then recognised
            control,
        )

    async def add_scheduled_signal(
        self,
        name: str,
        key: str,
        operation: str,
        input_text: str | None,
        due: datetime,
        row_key: str | None = None,
    ) -> str:
        """Persist a signal to apply at `due` (a `due-` row, outside the queue until then); returns
        its row key. `row_key` (an orchestration's, recorded in its history): written once."""
        row_key = row_key or f"{DUE_PREFIX}{next_sequence():020d}"
        try:
            await self._add_signal_row(name, key, row_key, operation, input_text, {"due": due})
        except ResourceExistsError:
            pass  # written before (sent again after a restart)
        return row_key

    async def _add_signal_row(
        self,
        name: str,
        key: str,
        row_key: str,
        operation: str,
        input_text: str | None,
        extra: dict[str, Any],
    ) -> dict[str, Any]:
        """Write one signal row (`extra`: its properties beyond the operation, those that are not
        empty); ResourceExistsError when it is there already. Returns the row as written."""
        await self.ensure()
        iid = instance_id(name, key)
        entity: dict[str, Any] = {
            "PartitionKey": iid,
            "RowKey": row_key,
            "op": operation,
            "name": name.lower(),
            "key": key,
            **{prop: value for prop, value in extra.items() if value},
        }
        try:
            await self.put_text(entity, "input", "signal", iid, input_text)
            await self._table.create_entity(entity)
        except ResourceExistsError:
            raise
        except AzureError as exc:
            raise self.fail(exc) from exc
        return entity

    async def with_outbox(self) -> list[str]:
        """Ids of the entities whose last commit started orchestrations (redone at start-up)."""
        await self.ensure()
        query = "RowKey eq @rk and outboxAt gt @epoch"
        params = {"rk": STATE_ROW, "epoch": datetime(1970, 1, 1, tzinfo=UTC)}
        try:
            return [
                row["PartitionKey"]
                async for row in self._table.query_entities(query, parameters=params, select=["PartitionKey"])
            ]
        except AzureError as exc:
            raise self.fail(exc) from exc

    async def scheduled_signals(self) -> list[tuple[str, str, datetime]]:
        """(entity id, row key, due) of every scheduled signal not in its entity's queue yet."""
        await self.ensure()
        found: list[tuple[str, str, datetime]] = []
        query = "RowKey ge @lo and RowKey lt @hi"
        try:
            async for row in self._table.query_entities(
                query, parameters={"lo": DUE_PREFIX, "hi": "due."}, select=["PartitionKey", "RowKey", "due"]
            ):
                found.append((row["PartitionKey"], row["RowKey"], row["due"]))
        except AzureError as exc:
            raise self.fail(exc) from exc
        return found

    async def release_scheduled(self, iid: str, row_key: str) -> PendingSignal | None:
        """A scheduled signal came due: its row moves into the queue (a `sig-` row with the same
        sequence, so it sorts where it was accepted) in one transaction, so it is neither lost nor
        queued twice. None when it was released already."""
        try:
            row = await self._table.get_entity(iid, row_key)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise self.fail(exc) from exc
        queued = {k: v for k, v in row.items() if k != "due"}
        queued["RowKey"] = SIGNAL_PREFIX + row_key[len(DUE_PREFIX) :]
        try:
            await self._table.submit_transaction(
                [("create", queued), ("delete", {"PartitionKey": iid, "RowKey": row_key})]
            )
        except (TableTransactionError, ResourceExistsError, ResourceNotFoundError):
            await self.delete_row(iid, row_key)  # queued before (the delete's answer was lost)
            return None
        except AzureError as exc:
            raise self.fail(exc) from exc
        text = await self.get_text(queued, "input")
        return PendingSignal(queued["RowKey"], queued.get("op", ""), text, queued.get("inputBlob"))

    async def pending(self, iid: str, limit: int = MAX_BATCH) -> list[PendingSignal]:
        """The oldest pending signals of one entity, in arrival order (applied ones skipped)."""
        record = await self.read(iid)
        applied = record.applied if record is not None else frozenset()
        leftover: set[str] = set()
        leftover_blobs: list[str] = []
        # An operation the state row holds came while nothing else was queued: it is the oldest.
        held = await self._held_now(iid)
        result: list[PendingSignal] = [held] if held is not None else []
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": iid, "lo": SIGNAL_PREFIX, "hi": "sig."}
        try:
            async for row in self._table.query_entities(query, parameters=params, results_per_page=limit):
                if row["RowKey"] in applied:  # applied before a restart, not deleted yet
                    leftover.add(row["RowKey"])
                    leftover_blobs.extend([row["inputBlob"]] if row.get("inputBlob") else [])
                    continue
                text = await self.get_text(row, "input")
                blob = row.get("inputBlob")
                result.append(
                    PendingSignal(
                        row["RowKey"],
                        row.get("op", ""),
                        text,
                        blob,
                        row.get("requestId"),
                        row.get("parent"),
                        bool(row.get("call")),
                        row.get("parentExecution") or "",
                        row.get("control") or None,
                    )
                )
                if len(result) >= limit:
                    break
        except AzureError as exc:
            raise self.fail(exc) from exc
        self._clean_up(iid, leftover, leftover_blobs)
        return sorted(result, key=lambda signal: signal.row_key)[:limit]

    async def _held_now(self, iid: str) -> PendingSignal | None:
        """The operation the entity's state row holds, read from storage (not the cache: this is
        asked after a restart or a failure, and by observers that are not the row's writer)."""
        try:
            row = await self._table.get_entity(iid, STATE_ROW, select=["held", "heldOp", "heldInput"])
        except ResourceNotFoundError as exc:
            if error_code(exc) == "TableNotFound":
                raise self.fail(exc) from exc
            return None
        except AzureError as exc:
            raise self.fail(exc) from exc
        return _held(row)

    async def instances_with_signals(self) -> set[str]:
        """Instance ids that have pending signals (resumed at start-up)."""
        await self.ensure()
        found: set[str] = set()
        query = "RowKey ge @lo and RowKey lt @hi"
        # State rows holding an operation (`hold`); a cleared one holds "", below SIGNAL_PREFIX.
        holding = "RowKey eq @state and held ge @lo"
        try:
            async for row in self._table.query_entities(
                query, parameters={"lo": SIGNAL_PREFIX, "hi": "sig."}, select=["PartitionKey"]
            ):
                found.add(row["PartitionKey"])
            async for row in self._table.query_entities(
                holding, parameters={"state": STATE_ROW, "lo": SIGNAL_PREFIX}, select=["PartitionKey"]
            ):
                found.add(row["PartitionKey"])
        except AzureError as exc:
            raise self.fail(exc) from exc
        return found

    # -- state ---------------------------------------------------------------------------------
    async def _record(self, row: Any, with_state: bool = True) -> EntityRecord:
        blob = row.get("stateBlob")
        text = await self.get_text(row, "state") if with_state or not blob else None
        stamp = row.get("lastOperationTime")
        outbox = await self.get_text(row, "outbox") if row.get("outboxAt") is not None else None
        return EntityRecord(
            instance_id=row["PartitionKey"],
            name=row.get("name", ""),
            key=row.get("key", ""),
            exists=bool(row.get("exists", False)),
            state=text,
            last_operation_time=stamp,
            etag=row.metadata.get("etag") if hasattr(row, "metadata") else None,
            state_blob=blob,
            applied=_applied_keys(row),
            state_parts=tuple(len(part) for part in row_parts(row, "state")),
            locked_by=row.get("lockedBy") or None,
            lock_owner=row.get("lockOwner") or None,
            released=tuple(k for k in str(row.get("released") or "").split(",") if k),
            outbox=tuple(json.loads(outbox)) if outbox else (),
            outbox_blob=row.get("outboxBlob"),
            held=_held(row),
        )

    async def read(self, iid: str) -> EntityRecord | None:
        """The state row of one entity (state text loaded from its blob when needed)."""
        return await self.read_row(self.states, iid, STATE_ROW, self._record, f"state of {iid}")

    async def commit(
        self,
        before: EntityRecord | None,
        name: str,
        key: str,
        exists: bool,
        state: str | None,
        applied: list[PendingSignal],
        lock: tuple[str, str] | None | bool = True,
        released: str | None = None,
        outbox: list[dict[str, Any]] | None = None,
    ) -> None:
        """Write the new state, listing the applied signals, in one ETag-checked write. `lock`: the
        (critical section, orchestration) now holding the entity's lock, None when none does, True
        to keep what `before` had; `released`: a critical section to remember as released;
        `outbox`: the orchestrations the batch starts (JSON values), kept until the next commit."""
        iid = instance_id(name, key)
        held_before = before.held if before is not None else None
        if lock is True:
            lock = (before.locked_by, before.lock_owner or "") if before and before.locked_by else None
        assert lock is not False
        kept_released = list(before.released) if before else []
        if released and released not in kept_released:
            kept_released = [*kept_released, released][-RELEASED_KEPT:]
        keep = bool(
            before and (before.exists or before.applied or before.released or before.outbox or held_before)
        )
        if not exists and not lock and not released and not outbox and not keep:
            await self._drop_signals(iid, applied)  # nothing to keep: no state, nothing to replay
            return
        # An operation the row holds is cleared by the write that commits it (nothing to list or
        # delete); one not applied in this batch stays held.
        keys = {s.row_key for s in applied}
        held = held_before if held_before is not None and held_before.row_key not in keys else None
        listed_before = before.applied if before else frozenset()
        gone = listed_before & self._deleted.get(iid, set())  # deleted since: no longer listed
        listed = listed_before - gone | {s.row_key for s in applied if not s.held}
        stamp = self.clock.now()
        entity: dict[str, Any] = {
            "PartitionKey": iid,
            "RowKey": STATE_ROW,
            "name": name.lower(),
            "key": key,
            "exists": exists,
            "lastOperationTime": stamp,
            "applied": ",".join(sorted(listed)),
            "lockedBy": lock[0] if lock else "",
            "lockOwner": lock[1] if lock else "",
            "released": ",".join(kept_released),
        }
        if held is not None or held_before is not None:
            entity.update(_held_properties(held))
        kept = state if exists else None
        parts = split_text(kept) if kept is not None else None
        same = before.unchanged_parts(parts) if before is not None and parts else set()
        new_blob: str | None = None
        outbox_blob: str | None = None
        had_outbox = before is not None and bool(before.outbox)
        try:
            if before is not None and parts and same and not outbox and not had_outbox:
                # A long state mostly changes at its end: send only the parts that differ.
                for index, part in enumerate(parts):
                    if index not in same:
                        entity[part_name("state", index)] = part
                entity["stateParts"] = len(parts)
                result = await self._table.update_entity(
                    entity, mode=UpdateMode.MERGE, etag=before.etag, match_condition=_IF_MATCH
                )
            else:
                budget = RowBudget() if outbox else None  # two texts share the row
                new_blob = await self.put_text(entity, "state", "state", iid, kept, budget)
                if outbox:
                    entity["outboxAt"] = stamp
                    outbox_text = json.dumps(outbox)
                    outbox_blob = await self.put_text(entity, "outbox", "outbox", iid, outbox_text, budget)
                if before is None:
                    result = await self._table.create_entity(entity)
                else:
                    result = await self._table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=before.etag, match_condition=_IF_MATCH
                    )
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as exc:
            await self.delete_blobs([b for b in (new_blob, outbox_blob) if b])
            self.states.forget(iid)
            raise ConcurrencyConflict(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        except AzureError as exc:
            raise self.fail(exc) from exc
        self.states.healthy = True
        # Deletions still to report (one may have finished meanwhile); none for a new row.
        remaining = self._deleted.pop(iid, set()) - gone if before is not None else set()
        if remaining:
            self._deleted[iid] = remaining
        sizes = tuple(len(part) for part in parts) if parts else ()
        record = EntityRecord(
            iid,
            name.lower(),
            key,
            exists,
            kept,
            stamp,
            None,
            new_blob,
            frozenset(listed),
            sizes,
            lock[0] if lock else None,
            lock[1] if lock else None,
            tuple(kept_released),
            tuple(outbox or ()),
            outbox_blob,
            held,
        )
        self._remember(record, result)
        garbage = [s.input_blob for s in applied if s.input_blob]
        if before is not None and before.state_blob and before.state_blob != new_blob:
            garbage.append(before.state_blob)
        if before is not None and before.outbox_blob:
            garbage.append(before.outbox_blob)
        self._clean_up(iid, set(listed), garbage)

    async def hold(
        self, before: EntityRecord | None, name: str, key: str, signal: PendingSignal
    ) -> EntityRecord:
        """Accept `signal` by storing it in the entity's state row (one ETag-checked write; a new
        row, not existing yet, when `before` is None), for an entity with nothing else queued.

        Why: a signal row costs a write to accept it and a delete after its commit; a held operation
        costs neither, since the commit that applies it clears it in the same write. After a crash
        the row still holds it and it is applied like any stored signal (`pending`,
        `instances_with_signals`). ConcurrencyConflict: the row is not as `before` says (or exists,
        for None); nothing was stored."""
        iid = instance_id(name, key)
        held = replace(signal, held=True)
        try:
            if before is None:
                entity: dict[str, Any] = {
                    "PartitionKey": iid,
                    "RowKey": STATE_ROW,
                    "name": name.lower(),
                    "key": key,
                    "exists": False,
                    "applied": "",
                    **_held_properties(held),
                }
                result = await self._table.create_entity(entity)
                record = EntityRecord(iid, name.lower(), key, False, None, None, None, held=held)
            else:
                if before.etag is None:
                    raise ResourceModifiedError("no ETag for the cached row")
                entity = {"PartitionKey": iid, "RowKey": STATE_ROW, **_held_properties(held)}
                result = await self._table.update_entity(
                    entity, mode=UpdateMode.MERGE, etag=before.etag, match_condition=_IF_MATCH
                )
                record = replace(before, held=held)
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as exc:
            self.states.forget(iid)
            raise ConcurrencyConflict(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        except AzureError as exc:
            raise self.fail(exc) from exc
        self.states.healthy = True
        self._remember(record, result)
        return record

    async def _drop_signals(self, iid: str, signals: list[PendingSignal]) -> None:
        """Delete signals whose batch left no entity behind (re-applying them would change nothing)."""
        try:
            await self.delete_rows(iid, [s.row_key for s in signals if not s.held])
        except AzureError as exc:
            raise self.fail(exc) from exc
        await self.delete_blobs([s.input_blob for s in signals if s.input_blob])

    def _clean_up(self, iid: str, keys: set[str] | frozenset[str], blobs: list[str]) -> None:
        """Delete applied signal rows and unused blobs in the background."""
        keys = {k for k in keys if (iid, k) not in self._deleting}
        if keys or blobs:
            task = asyncio.get_running_loop().create_task(
                self._delete_applied(iid, keys, blobs), name=f"clean-up {iid}"
            )
            self._cleanups.add(task)
            task.add_done_callback(self._cleanups.discard)

    async def _finish_clean_ups(self, iid: str) -> None:
        """Let this entity's clean-ups end (a purge lists rows, which they may be deleting)."""
        mine = [t for t in self._cleanups if t.get_name() == f"clean-up {iid}"]
        await asyncio.gather(*mine, return_exceptions=True)

    async def _delete_applied(self, iid: str, keys: set[str], blobs: list[str]) -> None:
        self._deleting.update((iid, k) for k in keys)
        try:
            for row_key in sorted(keys):
                await self.delete_row(iid, row_key)
                if len(self._deleted) > CACHED_ROWS and iid not in self._deleted:
                    self._deleted.clear()  # forgetting only costs a repeated (404) delete later
                self._deleted.setdefault(iid, set()).add(row_key)
        except AzureError:
            pass  # still listed as applied: the next commit tries again
        finally:
            self._deleting.difference_update((iid, k) for k in keys)
            await self.delete_blobs(blobs)

    def _remember(self, record: EntityRecord, result: Any) -> None:
        """Cache what a commit just wrote; without the new ETag the next read goes to storage."""
        etag = result.get("etag") if isinstance(result, Mapping) else None
        record.etag = etag
        self.states.wrote(record.instance_id, record, keep=bool(etag))

    async def purge(self, iid: str) -> bool:
        """Delete the entity's state and pending signals; True if anything existed."""
        await self._finish_clean_ups(iid)
        self.states.forget(iid)
        self._deleted.pop(iid, None)
        await self.ensure()
        blobs: list[str] = []
        keys: list[str] = []
        try:
            async for row in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": iid}):
                keys.append(row["RowKey"])
                blobs.extend(b for b in (row.get("stateBlob"), row.get("inputBlob")) if b)
            await self.delete_rows(iid, keys)
        except AzureError as exc:
            raise self.fail(exc) from exc
        self.states.forget(iid)  # a read may have cached the old row meanwhile
        await self.delete_blobs(blobs)
        return bool(keys)

    async def list_entities(
        self, name: str, top: int, after: str | None, fetch_state: bool, transient: bool = False
    ) -> tuple[list[EntityRecord], str | None]:
        """Existing entities of one name (every name for "") in instance-id order; returns (page, last
        id if more remain). `transient`: also the rows of entities with no state (a lock, or what
        their last batch applied)."""
        await self.ensure()
        prefix = f"@{name.lower()}@" if name else "@"
        upper = f"@{name.lower()}A" if name else "A"  # 'A' follows '@': the end of the prefix range
        lower_op = "gt" if after else "ge"
        query = f"PartitionKey {lower_op} @lo and PartitionKey lt @hi and RowKey eq @rk"
        if not transient:
            query += " and exists eq true"
        params = {"lo": after or prefix, "hi": upper, "rk": STATE_ROW}
        rows: list[Any] = []
        try:
            async for row in self._table.query_entities(query, parameters=params, results_per_page=top + 1):
                rows.append(row)
                if len(rows) > top:
                    break
            more = len(rows) > top
            page: list[EntityRecord] = []
            for row in rows[:top]:
                try:
                    page.append(await self._record(row, with_state=fetch_state))
                except ResourceNotFoundError:  # state blob replaced meanwhile
                    fresh = await self.read(row["PartitionKey"])
                    if fresh is not None and (fresh.exists or transient):
                        page.append(fresh)
        except AzureError as exc:
            raise self.fail(exc) from exc
        return page, (page[-1].instance_id if more and page else None)


_IF_MATCH = MatchConditions.IfNotModified
