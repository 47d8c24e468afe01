"""Durable entity persistence in Azure Storage (Azurite locally).

Layout (one table and one blob container per task hub):
- table `<hub>Entities` (hub reduced to letters/digits), PartitionKey = instance id `@name@key`;
- row `state`: `exists`, `lastOperationTime`, `name`, `key`, `applied` (see below) and the state's
  JSON text: in `state`, split over `state`, `state1`, ... (`stateParts`) when longer than one
  table property holds, or in a blob (`stateBlob`) when longer than a row holds. A split state is
  rewritten by merging only the parts that changed, so parts past `stateParts` may be left over
  from a longer state: only the first `stateParts` make the text;
- rows `sig-<20-digit sequence>`: accepted signals (`op`, and `input` stored the same way).
A signal row is written before the API answers 202. Applying a batch ends in ONE ETag-checked write
of the state row that also lists the applied signals' row keys in `applied`; those signal rows are
deleted afterwards, off the request path, and dropped from the list by a later commit once they are
gone. A killed host therefore neither loses an accepted signal nor applies one twice: a signal row
whose key the state row lists was applied. (One write instead of a transaction: Azurite answers a
single update several times faster than a batch.)
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableTransactionError, UpdateMode
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

log = logging.getLogger("harness.host")

STATE_ROW = "state"
SIGNAL_PREFIX = "sig-"
# Table string properties hold at most 64 KiB of UTF-16; longer texts are split over several
# properties of the row (a row holds at most 1 MiB), and texts longer than that go to a blob.
INLINE_LIMIT = 60 * 1024
PART_CHARS = INLINE_LIMIT // 4  # a character takes at most 4 bytes of UTF-16
MAX_PARTS = 12
# Signals applied in one batch (their row keys are listed in the state row until deleted).
MAX_BATCH = 50
TRANSACTION_ROWS = 100  # the most operations a table transaction holds
CACHED_STATES = 4096  # committed states kept in memory (least recently used dropped)
_BAD_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


class StorageUnavailable(RuntimeError):
    """Storage could not be reached (the API answers 503; the worker retries later)."""


class ConcurrencyConflict(RuntimeError):
    """The partition changed under us (ETag mismatch): re-read and re-apply."""


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


def instance_id(name: str, key: str) -> str:
    """The Durable instance id: entity names are case-insensitive, keys are not."""
    return f"@{name.lower()}@{key}"


def table_name_for(hub: str) -> str:
    """A valid table name (alphanumeric, starts with a letter, 3-63 chars) derived from the hub."""
    base = re.sub(r"[^A-Za-z0-9]", "", hub) or "hub"
    if not base[0].isalpha():
        base = "h" + base
    return (base[:55] + "Entities")[:63]


def container_name_for(hub: str) -> str:
    """A valid blob container name (lowercase letters, digits, single hyphens, 3-63 chars)."""
    base = re.sub(r"[^a-z0-9]", "", hub.lower()) or "hub"
    return (base[:48] + "-entitystate")[:63]


def _fits_inline(text: str) -> bool:
    """Whether `text` fits a table property; every character takes at least two UTF-16 bytes, so
    long texts are decided without encoding them."""
    return 2 * len(text) <= INLINE_LIMIT and len(text.encode("utf-16-le")) <= INLINE_LIMIT


def _split(text: str) -> list[str] | None:
    """The properties a text too long for one is split over; None when one holds it or a row can't."""
    if _fits_inline(text) or len(text) > PART_CHARS * MAX_PARTS:
        return None
    return [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]


def _part_name(prop: str, index: int) -> str:
    return prop if index == 0 else f"{prop}{index}"


def _row_parts(row: Mapping[str, Any], prop: str) -> list[str]:
    """The parts a text is split over in `row` (see `_put_text`); empty when it is not split."""
    count = row.get(f"{prop}Parts")
    if not isinstance(count, int) or count < 2:
        return []
    return [row.get(_part_name(prop, i)) or "" for i in range(count)]


def _row_text(row: Mapping[str, Any], prop: str) -> str | None:
    """A text stored in one property or split over `prop`, `prop1`, ..."""
    parts = _row_parts(row, prop)
    return "".join(parts) if parts else row.get(prop)


def _applied_keys(row: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(k for k in str(row.get("applied") or "").split(",") if k)


_seq_lock = threading.Lock()
_last_seq = 0


def next_sequence() -> int:
    """Monotonic, roughly wall-clock sequence so rows sort in arrival order across restarts."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


@dataclass
class PendingSignal:
    """An accepted signal waiting to be applied."""

    row_key: str
    operation: str
    input: str | None  # JSON text of the input token (what the entity batch carries)
    input_blob: str | None = None


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


def _translate(exc: Exception) -> Exception:
    """Map transport-level failures to StorageUnavailable; leave the rest alone."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return StorageUnavailable(f"storage unreachable: {type(exc).__name__}")
    if isinstance(exc, HttpResponseError) and (exc.status_code or 0) >= 500:
        return StorageUnavailable(f"storage error {exc.status_code}")
    return exc


class EntityStore:
    """Async access to one task hub's entity table and blob container."""

    def __init__(self, connection_string: str, hub_name: str) -> None:
        self.hub_name = hub_name
        self.table_name = table_name_for(hub_name)
        self.container_name = container_name_for(hub_name)
        options: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.2, "connection_timeout": 5}
        self._tables = TableServiceClient.from_connection_string(connection_string, **options)
        self._blobs = BlobServiceClient.from_connection_string(connection_string, **options)
        self._table: TableClient = self._tables.get_table_client(self.table_name)
        self._container: ContainerClient = self._blobs.get_container_client(self.container_name)
        self._ready = False
        # Write-through cache of committed state rows. This host is the only writer of its task
        # hub, so a committed row is the truth until the next commit; reads (every poll of a
        # waiting run request, every apply) then cost no storage round trip and no blob download.
        # The first storage error drops it, and reads go to storage (answering 503) until
        # storage works again; until an error is seen, committed state is served from memory.
        self._states: OrderedDict[str, EntityRecord | None] = OrderedDict()  # None: no state row
        self._healthy = True
        # Bumped by every write and failure: a read that overlapped one must not cache what it
        # read, since it may be older than what the write left in the cache.
        self._generation = 0
        # Applied signal rows: which were deleted since their keys were listed, which deletions
        # are under way, and the background tasks doing them.
        self._deleted: dict[str, set[str]] = {}
        self._deleting: set[tuple[str, str]] = set()
        self._cleanups: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        """Create the table and container if needed (idempotent; retried lazily when storage was down)."""
        try:
            try:
                await self._tables.create_table(self.table_name)
            except ResourceExistsError:
                pass
            try:
                await self._container.create_container()
            except ResourceExistsError:
                pass
        except AzureError as exc:
            raise self._fail(exc) from exc
        self._ready = True

    def _fail(self, exc: Exception) -> Exception:
        """Translate a storage error; a vanished table/container (fresh Azurite) is recreated next time."""
        self._healthy = False
        self._generation += 1
        self._states.clear()
        code = getattr(exc, "error_code", None)
        if isinstance(exc, ResourceNotFoundError) and str(code) in {"TableNotFound", "ContainerNotFound"}:
            self._ready = False
            return StorageUnavailable(f"{code}; recreating")
        return _translate(exc)

    async def _ensure(self) -> None:
        if not self._ready:
            await self.open()

    async def close(self) -> None:
        """Release the HTTP sessions of both clients (unfinished clean-ups are redone later)."""
        for task in list(self._cleanups):
            task.cancel()
        await asyncio.gather(*self._cleanups, return_exceptions=True)
        await self._table.close()
        await self._tables.close()
        await self._container.close()
        await self._blobs.close()

    # -- blobs ---------------------------------------------------------------------------------
    def _blob_name(self, kind: str, iid: str) -> str:
        digest = hashlib.sha256(iid.encode()).hexdigest()[:32]
        return f"{kind}/{digest}/{uuid.uuid4().hex}"

    async def _put_blob(self, name: str, text: str) -> None:
        await self._container.upload_blob(name, text.encode("utf-8"), overwrite=True)

    async def _put_text(
        self, entity: dict[str, Any], prop: str, kind: str, iid: str, text: str | None
    ) -> str | None:
        """Store `text` in the row (split over properties if need be), or in a new blob when it is
        too long for a row; returns the blob."""
        if text is None:
            return None
        if _fits_inline(text):
            entity[prop] = text
            return None
        if parts := _split(text):
            for index, part in enumerate(parts):
                entity[_part_name(prop, index)] = part
            entity[f"{prop}Parts"] = len(parts)
            return None
        blob = self._blob_name(kind, iid)
        await self._put_blob(blob, text)
        entity[f"{prop}Blob"] = blob
        return blob

    async def _get_blob(self, name: str) -> str:
        downloader = await self._container.download_blob(name)
        return (await downloader.readall()).decode("utf-8")

    async def _delete_blobs(self, names: list[str]) -> None:
        """Best effort: an orphaned blob is harmless, a failed request here must not fail an apply."""
        for name in names:
            try:
                await self._container.delete_blob(name)
            except AzureError:
                log.debug("could not delete blob %s", name)

    # -- signals -------------------------------------------------------------------------------
    async def add_signal(self, name: str, key: str, operation: str, input_text: str | None) -> PendingSignal:
        """Persist an accepted signal; returns it as the worker will apply it."""
        await self._ensure()
        iid = instance_id(name, key)
        row_key = f"{SIGNAL_PREFIX}{next_sequence():020d}"
        entity: dict[str, Any] = {
            "PartitionKey": iid,
            "RowKey": row_key,
            "op": operation,
            "name": name.lower(),
        }
        entity["key"] = key
        try:
            await self._put_text(entity, "input", "signal", iid, input_text)
            await self._table.create_entity(entity)
        except AzureError as exc:
            raise self._fail(exc) from exc
        return PendingSignal(row_key, operation, input_text, entity.get("inputBlob"))

    async def pending(self, iid: str, limit: int = MAX_BATCH) -> list[PendingSignal]:
        """The oldest pending signals of one entity, in arrival order (applied ones skipped)."""
        record = await self.read(iid)
        applied = record.applied if record is not None else frozenset()
        leftover: set[str] = set()
        leftover_blobs: list[str] = []
        result: list[PendingSignal] = []
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi"
        params = {"pk": iid, "lo": SIGNAL_PREFIX, "hi": "sig."}
        try:
            async for row in self._table.query_entities(query, parameters=params, results_per_page=limit):
                if row["RowKey"] in applied:  # applied before a restart, not deleted yet
                    leftover.add(row["RowKey"])
                    leftover_blobs.extend([row["inputBlob"]] if row.get("inputBlob") else [])
                    continue
                text = _row_text(row, "input")
                blob = row.get("inputBlob")
                if blob:
                    text = await self._get_blob(blob)
                result.append(PendingSignal(row["RowKey"], row.get("op", ""), text, blob))
                if len(result) >= limit:
                    break
        except AzureError as exc:
            raise self._fail(exc) from exc
        self._clean_up(iid, leftover, leftover_blobs)
        return result

    async def instances_with_signals(self) -> set[str]:
        """Instance ids that have pending signals (resumed at start-up)."""
        await self._ensure()
        found: set[str] = set()
        query = "RowKey ge @lo and RowKey lt @hi"
        try:
            async for row in self._table.query_entities(
                query, parameters={"lo": SIGNAL_PREFIX, "hi": "sig."}, select=["PartitionKey"]
            ):
                found.add(row["PartitionKey"])
        except AzureError as exc:
            raise self._fail(exc) from exc
        return found

    # -- state ---------------------------------------------------------------------------------
    async def _record(self, row: Any, with_state: bool = True) -> EntityRecord:
        text = _row_text(row, "state")
        blob = row.get("stateBlob")
        if blob and with_state:
            text = await self._get_blob(blob)
        stamp = row.get("lastOperationTime")
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
            state_parts=tuple(len(part) for part in _row_parts(row, "state")),
        )

    async def read(self, iid: str) -> EntityRecord | None:
        """The state row of one entity (state text loaded from its blob when needed)."""
        if iid in self._states and self._healthy:
            self._states.move_to_end(iid)
            return self._states[iid]
        generation = self._generation
        await self._ensure()
        for _ in range(5):
            try:
                row = await self._table.get_entity(iid, STATE_ROW)
            except ResourceNotFoundError as exc:
                if str(getattr(exc, "error_code", "")) == "TableNotFound":
                    raise self._fail(exc) from exc
                if generation == self._generation:
                    self._cache(iid, None)  # absence is cached too: a new session's first reads
                return None
            except AzureError as exc:
                raise self._fail(exc) from exc
            try:
                record = await self._record(row)
            except ResourceNotFoundError:
                continue  # a concurrent commit replaced the state blob: read the row again
            except AzureError as exc:
                raise self._fail(exc) from exc
            self._healthy = True
            if generation == self._generation:
                self._cache(iid, record)
            return record
        raise StorageUnavailable(f"state of {iid} keeps changing; try again")

    async def commit(
        self,
        before: EntityRecord | None,
        name: str,
        key: str,
        exists: bool,
        state: str | None,
        applied: list[PendingSignal],
    ) -> None:
        """Write the new state, listing the applied signals, in one ETag-checked write."""
        iid = instance_id(name, key)
        if not exists and not (before and (before.exists or before.applied)):
            await self._drop_signals(iid, applied)  # nothing to keep: no state, nothing to replay
            return
        listed_before = before.applied if before else frozenset()
        gone = listed_before & self._deleted.get(iid, set())  # deleted since: no longer listed
        listed = listed_before - gone | {s.row_key for s in applied}
        stamp = datetime.now(UTC)
        entity: dict[str, Any] = {
            "PartitionKey": iid,
            "RowKey": STATE_ROW,
            "name": name.lower(),
            "key": key,
            "exists": exists,
            "lastOperationTime": stamp,
            "applied": ",".join(sorted(listed)),
        }
        kept = state if exists else None
        parts = _split(kept) if kept is not None else None
        same = before.unchanged_parts(parts) if before is not None and parts else set()
        new_blob: str | None = None
        try:
            if before is not None and parts and same:
                # A long state mostly changes at its end: send only the parts that differ.
                for index, part in enumerate(parts):
                    if index not in same:
                        entity[_part_name("state", index)] = part
                entity["stateParts"] = len(parts)
                result = await self._table.update_entity(
                    entity, mode=UpdateMode.MERGE, etag=before.etag, match_condition=_IF_MATCH
                )
            else:
                new_blob = await self._put_text(entity, "state", "state", iid, kept)
                if before is None:
                    result = await self._table.create_entity(entity)
                else:
                    result = await self._table.update_entity(
                        entity, mode=UpdateMode.REPLACE, etag=before.etag, match_condition=_IF_MATCH
                    )
        except (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError) as exc:
            if new_blob:
                await self._delete_blobs([new_blob])
            self._states.pop(iid, None)
            self._generation += 1
            raise ConcurrencyConflict(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        except AzureError as exc:
            raise self._fail(exc) from exc
        self._healthy = True
        # Deletions still to report (one may have finished meanwhile); none for a new row.
        remaining = self._deleted.pop(iid, set()) - gone if before is not None else set()
        if remaining:
            self._deleted[iid] = remaining
        sizes = tuple(len(part) for part in parts) if parts else ()
        record = EntityRecord(
            iid, name.lower(), key, exists, kept, stamp, None, new_blob, frozenset(listed), sizes
        )
        self._remember(record, result)
        garbage = [s.input_blob for s in applied if s.input_blob]
        if before is not None and before.state_blob and before.state_blob != new_blob:
            garbage.append(before.state_blob)
        self._clean_up(iid, set(listed), garbage)

    async def _drop_signals(self, iid: str, signals: list[PendingSignal]) -> None:
        """Delete signals whose batch left no entity behind (re-applying them would change nothing)."""
        try:
            await self._delete_rows(iid, [s.row_key for s in signals])
        except AzureError as exc:
            raise self._fail(exc) from exc
        await self._delete_blobs([s.input_blob for s in signals if s.input_blob])

    async def _delete_rows(self, iid: str, row_keys: list[str]) -> None:
        """Delete rows of one partition, in transactions; rows already gone (a clean-up, or a
        retry after a lost answer) are fine, which one failed transaction cannot tell apart."""
        for start in range(0, len(row_keys), TRANSACTION_ROWS):
            chunk = row_keys[start : start + TRANSACTION_ROWS]
            try:
                await self._table.submit_transaction(
                    [("delete", {"PartitionKey": iid, "RowKey": k}) for k in chunk]
                )
            except (TableTransactionError, ResourceNotFoundError):
                for row_key in chunk:
                    await self._delete_row(iid, row_key)

    async def _delete_row(self, iid: str, row_key: str) -> None:
        try:
            await self._table.delete_entity(iid, row_key)
        except ResourceNotFoundError:
            pass

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
                await self._delete_row(iid, row_key)
                if len(self._deleted) > CACHED_STATES and iid not in self._deleted:
                    self._deleted.clear()  # forgetting only costs a repeated (404) delete later
                self._deleted.setdefault(iid, set()).add(row_key)
        except AzureError:
            pass  # still listed as applied: the next commit tries again
        finally:
            self._deleting.difference_update((iid, k) for k in keys)
            await self._delete_blobs(blobs)

    def _cache(self, iid: str, record: EntityRecord | None) -> None:
        self._states[iid] = record
        self._states.move_to_end(iid)
        while len(self._states) > CACHED_STATES:
            self._states.popitem(last=False)

    def _remember(self, record: EntityRecord, result: Any) -> None:
        """Cache what a commit just wrote; without the new ETag the next read goes to storage."""
        self._generation += 1
        etag = result.get("etag") if isinstance(result, Mapping) else None
        if etag:
            record.etag = etag
            self._cache(record.instance_id, record)
        else:
            self._states.pop(record.instance_id, None)

    async def purge(self, iid: str) -> bool:
        """Delete the entity's state and pending signals; True if anything existed."""
        await self._finish_clean_ups(iid)
        self._states.pop(iid, None)
        self._deleted.pop(iid, None)
        self._generation += 1
        await self._ensure()
        blobs: list[str] = []
        keys: list[str] = []
        try:
            async for row in self._table.query_entities("PartitionKey eq @pk", parameters={"pk": iid}):
                keys.append(row["RowKey"])
                blobs.extend(b for b in (row.get("stateBlob"), row.get("inputBlob")) if b)
            await self._delete_rows(iid, keys)
        except AzureError as exc:
            raise self._fail(exc) from exc
        self._states.pop(iid, None)  # a read may have cached the old row meanwhile
        self._generation += 1
        await self._delete_blobs(blobs)
        return bool(keys)

    async def list_entities(
        self, name: str, top: int, after: str | None, fetch_state: bool
    ) -> tuple[list[EntityRecord], str | None]:
        """Existing entities of one name in instance-id order; returns (page, last id if more remain)."""
        await self._ensure()
        prefix = f"@{name.lower()}@"
        upper = f"@{name.lower()}A"  # 'A' follows '@': the end of the prefix range
        lower_op = "gt" if after else "ge"
        query = f"PartitionKey {lower_op} @lo and PartitionKey lt @hi and RowKey eq @rk and exists eq true"
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
                    if fresh is not None and fresh.exists:
                        page.append(fresh)
        except AzureError as exc:
            raise self._fail(exc) from exc
        return page, (page[-1].instance_id if more and page else None)


_IF_MATCH = MatchConditions.IfNotModified
