"""What every store of the local host shares: one table and one blob container per task hub, texts
spread over row properties or a blob, storage errors translated, and a write-through row cache.

Texts (entity state, signal inputs, orchestration history, inputs and outputs) are stored in a row:
- in one string property `P` when it fits (a table property holds 64 KiB of UTF-16);
- split over `P`, `P1`, `P2`, ... with `PParts` = the count, when a row holds it (a row holds 1 MiB).
  Only the first `PParts` properties make the text: a merge that shortened it may leave stale ones;
- in a blob named by `PBlob` beyond that (a new blob name per write, so a reader never sees a
  half-written one; the old blob is deleted after the row that named it was replaced).
Each store documents its own rows and why a crash is safe with them (`entities/store.py`,
`orchestrations/store.py`).
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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, TypeVar

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import TableTransactionError
from azure.data.tables.aio import TableClient, TableServiceClient
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from durableagent._tables import client_options

from .api_version import check_api_version, versioned

log = logging.getLogger(__name__)

# Table string properties hold at most 64 KiB of UTF-16; longer texts are split over several
# properties of the row (a row holds at most 1 MiB), and texts longer than that go to a blob.
INLINE_LIMIT = 60 * 1024
PART_CHARS = INLINE_LIMIT // 4  # a character takes at most 4 bytes of UTF-16
MAX_PARTS = 12
TRANSACTION_ROWS = 100  # the most operations a table transaction holds
CACHED_ROWS = 4096  # rows a cache keeps in memory (least recently used dropped)
_MISSING_CODES = {"TableNotFound", "ContainerNotFound", "ResourceNotFound"}
_GONE_STORE = (
    "TableNotFound",
    "ContainerNotFound",
)  # not a missing row or blob: the whole table or container


class StorageUnavailable(RuntimeError):
    """Storage could not be reached (the API answers 503; workers retry later)."""


class Reread(Exception):
    """Raised by a row's decoder (`HubStorage.read_row`) when what the row names changed between the
    two reads (a history that a continue-as-new replaced): the row is read again."""


class ConcurrencyConflict(RuntimeError):
    """The row changed under us (ETag mismatch): re-read and re-apply."""


RETRIABLE = (StorageUnavailable, AzureError, ConcurrencyConflict)  # a worker tries these again


class Backoff:
    """How a worker waits after a failed step: a storage outage doubles the wait (up to 5 s), a
    concurrent change is retried almost at once."""

    def __init__(self) -> None:
        self.delay = 0.5
        # Set when new work was accepted, which took a storage write that succeeded: storage is
        # back, so the wait ends early instead of leaving that work waiting up to 5 s.
        self.kick = asyncio.Event()

    def reset(self) -> None:
        """A step succeeded."""
        self.delay = 0.5

    async def after(self, exc: Exception, label: str) -> None:
        """Log `exc` for `label` and wait before the next try (or until `kick` is set)."""
        if isinstance(exc, ConcurrencyConflict):
            log.info("%s changed concurrently (%s); running again", label, exc)
            await asyncio.sleep(0.05)
            return
        log.warning("%s: %s; retrying in %.1fs", label, exc, self.delay)
        self.kick.clear()
        try:
            await asyncio.wait_for(self.kick.wait(), self.delay)
            self.delay = 0.5
        except TimeoutError:
            self.delay = min(self.delay * 2, 5.0)


def fits_inline(text: str) -> bool:
    """Whether `text` fits a table property; every character takes at least two UTF-16 bytes, so
    long texts are decided without encoding them."""
    return 2 * len(text) <= INLINE_LIMIT and len(text.encode("utf-16-le")) <= INLINE_LIMIT


def split_text(text: str) -> list[str] | None:
    """The properties a text too long for one is split over; None when one holds it or a row can't."""
    if fits_inline(text) or len(text) > PART_CHARS * MAX_PARTS:
        return None
    return [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)]


def part_name(prop: str, index: int) -> str:
    """The property holding part `index` of a split text."""
    return prop if index == 0 else f"{prop}{index}"


def row_parts(row: Mapping[str, Any], prop: str) -> list[str]:
    """The parts a text is split over in `row`; empty when it is not split."""
    count = row.get(f"{prop}Parts")
    if not isinstance(count, int) or count < 2:
        return []
    return [row.get(part_name(prop, i)) or "" for i in range(count)]


def row_text(row: Mapping[str, Any], prop: str) -> str | None:
    """A text stored in one property or split over `prop`, `prop1`, ... (not the blob case)."""
    parts = row_parts(row, prop)
    return "".join(parts) if parts else row.get(prop)


def table_name_for(hub: str, suffix: str = "Entities") -> str:
    """A valid table name (alphanumeric, starts with a letter, 3-63 chars) derived from the hub."""
    base = re.sub(r"[^A-Za-z0-9]", "", hub) or "hub"
    if not base[0].isalpha():
        base = "h" + base
    return (base[: 63 - len(suffix)] + suffix)[:63]


def container_name_for(hub: str, suffix: str = "entitystate") -> str:
    """A valid blob container name (lowercase letters, digits, single hyphens, 3-63 chars)."""
    base = re.sub(r"[^a-z0-9]", "", hub.lower()) or "hub"
    return (base[: 62 - len(suffix)] + "-" + suffix)[:63]


_seq_lock = threading.Lock()
_last_seq = 0


def next_sequence() -> int:
    """Monotonic, roughly wall-clock sequence so rows sort in arrival order across restarts."""
    global _last_seq
    with _seq_lock:
        _last_seq = max(time.time_ns(), _last_seq + 1)
        return _last_seq


def error_code(exc: BaseException) -> str:
    """The storage error code of `exc` as its plain name ('TableNotFound'), whichever form it has.

    `error_code` may be None (then the code is in the message), a plain string, or an enum whose
    `str()` is 'TableErrorCode.TABLE_NOT_FOUND' on Python 3.11.
    """
    code = getattr(exc, "error_code", None)
    value = getattr(code, "value", code)
    if value:
        return str(value)
    match = re.search(r'ErrorCode:(\w+)|"code"\s*:\s*"(\w+)"', str(exc))
    return (match.group(1) or match.group(2)) if match else ""


def translate(exc: Exception) -> Exception:
    """Map transport-level failures to StorageUnavailable; leave the rest alone."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return StorageUnavailable(f"storage unreachable: {type(exc).__name__}")
    if isinstance(exc, HttpResponseError) and (exc.status_code or 0) >= 500:
        return StorageUnavailable(f"storage error {exc.status_code}")
    return exc


R = TypeVar("R")


class RowCache(Generic[R]):
    """Write-through cache of committed rows, for a host that is the only writer of its task hub.

    A committed row is the truth until the next commit, so reads of it cost no storage round trip.
    The first storage error drops everything (`healthy` goes False) and reads go to storage until it
    works again. `generation` is bumped by every write and failure: a read that overlapped one must
    not cache what it read, since it may be older than what the write left here.
    """

    def __init__(self, size: int = CACHED_ROWS) -> None:
        self._rows: OrderedDict[str, R | None] = OrderedDict()  # None: known to have no row
        self._size = size
        self.healthy = True
        self.generation = 0

    def get(self, key: str) -> tuple[bool, R | None]:
        """(found, row) when the cache may answer, (False, None) when storage must."""
        if self.healthy and key in self._rows:
            self._rows.move_to_end(key)
            return True, self._rows[key]
        return False, None

    def put(self, key: str, row: R | None, generation: int | None = None) -> None:
        """Remember `row` (or its absence); skipped when a write happened since `generation`."""
        if generation is not None and generation != self.generation:
            return
        self._rows[key] = row
        self._rows.move_to_end(key)
        while len(self._rows) > self._size:
            self._rows.popitem(last=False)

    def wrote(self, key: str, row: R | None = None, keep: bool = True) -> None:
        """A write to `key` just happened: cache its result (or forget the key when not `keep`)."""
        self.generation += 1
        if keep:
            self.put(key, row)
        else:
            self._rows.pop(key, None)

    def forget(self, key: str) -> None:
        """Drop one key (after a conflict or a purge) and invalidate overlapping reads."""
        self._rows.pop(key, None)
        self.generation += 1

    def fail(self) -> None:
        """Storage failed: trust nothing cached until a read succeeds again."""
        self.healthy = False
        self.generation += 1
        self._rows.clear()


class RowBudget:
    """What is left of a row's 1 MiB for texts, when one row holds several of them."""

    def __init__(self, size: int = 900 * 1024) -> None:
        self.left = size

    def take(self, text: str) -> bool:
        """Reserve room for `text` in the row; False when it must go to a blob instead."""
        size = 2 * len(text) if text.isascii() else len(text.encode("utf-16-le"))
        if size > self.left:
            return False
        self.left -= size
        return True


class HubStorage:
    """Async access to one table and one blob container of a task hub, created on first use."""

    def __init__(self, connection_string: str, table_name: str, container_name: str) -> None:
        self.table_name = table_name
        self.container_name = container_name
        options: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.2, "connection_timeout": 5}
        options.update(client_options(connection_string))  # Azurite: no proxy look-up per request
        self._tables = TableServiceClient.from_connection_string(connection_string, **options)
        self._blobs = BlobServiceClient.from_connection_string(connection_string, **versioned(**options))
        self._table: TableClient = self._tables.get_table_client(table_name)
        self._container: ContainerClient = self._blobs.get_container_client(container_name)
        self._ready = False
        self.cache_hooks: list[Any] = []  # RowCache objects dropped on a storage failure
        self.gate: Callable[[], str | None] | None = None  # why the hub must not be used (lease lost)

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
            check_api_version(exc)
            raise self.fail(exc) from exc
        self._ready = True

    def fail(self, exc: Exception) -> Exception:
        """Translate a storage error; a vanished table or container (Azurite restarted empty) is
        recreated on the next call, and the caches are dropped since storage no longer holds them."""
        for cache in self.cache_hooks:
            cache.fail()
        if isinstance(exc, ResourceNotFoundError) and error_code(exc) in _MISSING_CODES:
            self._ready = False
            return StorageUnavailable(f"{error_code(exc)}; recreating")
        return translate(exc)

    async def read_row(
        self,
        cache: RowCache[R],
        partition: str,
        row_key: str,
        decode: Callable[[Any], Awaitable[R]],
        what: str,
    ) -> R | None:
        """One row through `cache`, decoded; None when there is none (absence is cached too: a new
        session's or instance's reads). A decoder that finds a blob the row names gone, or raises
        `Reread`, meets a commit that replaced it since: the row is read again, up to 5 times."""
        found, cached = cache.get(partition)
        if found:
            return cached
        generation = cache.generation
        await self.ensure()
        for _ in range(5):
            try:
                row = await self._table.get_entity(partition, row_key)
            except ResourceNotFoundError as exc:
                if error_code(exc) in _GONE_STORE:
                    raise self.fail(exc) from exc
                cache.put(partition, None, generation)
                return None
            except AzureError as exc:
                raise self.fail(exc) from exc
            try:
                record = await decode(row)
            except Reread:
                continue
            except ResourceNotFoundError as exc:
                if error_code(exc) in _GONE_STORE:
                    raise self.fail(exc) from exc
                continue  # a blob the row named was replaced by a commit since
            except AzureError as exc:
                raise self.fail(exc) from exc
            cache.healthy = True
            cache.put(partition, record, generation)
            return record
        raise StorageUnavailable(f"{what} keeps changing; try again")

    async def ensure(self) -> None:
        """Open the table and container when they are not known to exist; refuse while the host
        must not use the hub (`gate`)."""
        if self.gate is not None and (problem := self.gate()):
            raise StorageUnavailable(problem)
        if not self._ready:
            await self.open()

    async def close(self) -> None:
        """Release the HTTP sessions of both clients."""
        await self._table.close()
        await self._tables.close()
        await self._container.close()
        await self._blobs.close()

    # -- texts ---------------------------------------------------------------------------------
    def blob_name(self, kind: str, owner: str) -> str:
        """A new blob name per write, grouped by owner (so one owner's blobs can be listed)."""
        digest = hashlib.sha256(owner.encode()).hexdigest()[:32]
        return f"{kind}/{digest}/{uuid.uuid4().hex}"

    async def put_text(
        self,
        entity: dict[str, Any],
        prop: str,
        kind: str,
        owner: str,
        text: str | None,
        budget: RowBudget | None = None,
    ) -> str | None:
        """Store `text` in the row (split over properties if need be), or in a new blob when it is
        too long for a row (or for what `budget` leaves of it); returns the blob's name."""
        if text is None:
            return None
        in_row = budget is None or budget.take(text)
        if in_row and fits_inline(text):
            entity[prop] = text
            return None
        if in_row and (parts := split_text(text)):
            for index, part in enumerate(parts):
                entity[part_name(prop, index)] = part
            entity[f"{prop}Parts"] = len(parts)
            return None
        blob = self.blob_name(kind, owner)
        await self._container.upload_blob(blob, text.encode("utf-8"), overwrite=True)
        entity[f"{prop}Blob"] = blob
        return blob

    async def get_text(self, row: Mapping[str, Any], prop: str) -> str | None:
        """The text `put_text` stored in `row` (ResourceNotFoundError when its blob was replaced)."""
        blob = row.get(f"{prop}Blob")
        if blob:
            downloader = await self._container.download_blob(blob)
            return (await downloader.readall()).decode("utf-8")
        return row_text(row, prop)

    async def delete_blobs(self, names: list[str]) -> None:
        """Best effort: an orphaned blob is harmless, a failed request here must not fail a commit."""
        for name in names:
            try:
                await self._container.delete_blob(name)
            except AzureError:
                log.debug("could not delete blob %s", name)

    # -- rows ----------------------------------------------------------------------------------
    async def delete_rows(self, partition: str, row_keys: list[str]) -> None:
        """Delete rows of one partition, in transactions; rows already gone (a clean-up, or a
        retry after a lost answer) are fine, which one failed transaction cannot tell apart."""
        for start in range(0, len(row_keys), TRANSACTION_ROWS):
            chunk = row_keys[start : start + TRANSACTION_ROWS]
            try:
                await self._table.submit_transaction(
                    [("delete", {"PartitionKey": partition, "RowKey": k}) for k in chunk]
                )
            except (TableTransactionError, ResourceNotFoundError):
                for row_key in chunk:
                    await self.delete_row(partition, row_key)

    async def delete_row(self, partition: str, row_key: str) -> None:
        """Delete one row; one already gone is fine."""
        try:
            await self._table.delete_entity(partition, row_key)
        except ResourceNotFoundError:
            pass
