"""Orchestration instances in Azure Storage (Azurite locally).

Layout (one table and one blob container per task hub, beside the entity ones):
- table `<hub>Instances`, PartitionKey = the instance id;
- row `instance`: `name`, `status`, `executionId`, `createdTime`, `lastUpdatedTime`, `parent`,
  `parentTask`, `parentExecution`, `actionsSeen`, `scheduledStart` (a scheduled start's time: the
  first episode waits for it), `historyLength` (the committed length of the
  current execution's history, in entries, see below), and the texts `input`, `output`,
  `customStatus`, `waits` (wait-for-event actions per name, JSON), `finishing` (how an instance whose
  last episode signalled entities ends once they acknowledged) and `applied` (see below), each stored
  as `storage/tables.py` describes (one property, split, or a blob);
- rows `h-<executionId>-<10-digit start>`: the current execution's history, append-only. Each row
  holds `events` (a JSON list of the entries one commit appended, from entry `start` on); an entry
  is a DTFx event, or `{"Amend": i, "Event": e}` replacing event `i` (how an episode marks a timer
  it cancelled, since stored events are never rewritten). A reader takes the rows of the row's
  `executionId` whose start is below `historyRows` and ignores anything past it; the entries after
  those, up to `historyLength`, are the instance row's text `tail` (a row without `historyRows`
  has them all in rows). A commit appends its entries to the tail while the tail stays within
  `TAIL_CHARS` of JSON, so a short orchestration's episode is one write; past that, the tail and
  the new entries go to a history row (upserted, under the key its start gives) written just before
  the ETag-checked write of the instance row that counts it, with an empty tail: a crash or a
  refused write between the two leaves a row past the committed rows, which nothing reads and the
  next commit overwrites. So one step writes what it appended plus at most the tail, whatever the
  history's length. A continue-as-new starts the next
  execution with no history rows; the old execution's rows are deleted after the commit (a crash
  before that leaves rows nothing reads, deleted with the instance by a purge). Rows written before
  this layout keep the whole history in the text `history` of the instance row (no
  `historyLength`): they load as before, and their first commit moves it into a history row;
- rows `msg-<20-digit sequence>`: the inbox, one row per event waiting for the instance (an external
  event, an entity's answer or acknowledgement, a child's completion, a terminate, suspend or
  resume), with `event` (the DTFx event JSON) and `execution` (the execution it is for; empty for
  events that outlive a continue-as-new, such as external events). Activity results and fired
  timers get no row: the engine hands them over in memory, and after a crash the history (work
  scheduled, not completed) has the activity run again or the timer re-armed. An episode reads the
  inbox a page (`INBOX_PAGE` rows) at a time (`inbox_page`).
A message row is written before anything acknowledges it. An episode ends in ONE ETag-checked write
of the instance row (after the history row it appends, if any): the new history length,
status and output, and the keys of the messages it consumed (`applied`); the consumed rows are
deleted afterwards and dropped from `applied` by a later commit.
`commit` is that write and its clean-up, the one way an episode ends.
A killed host therefore neither loses a message nor applies one twice: a message row that the
instance row lists was applied, and completions already in the history are recognised and dropped.
A write refused on its ETag (412/409) or for a missing row certainly did not land, so the blobs
written for it are deleted; a write with no answer (a timeout, a reset, a 5xx) may have landed, so
they stay (an orphan blob is harmless, a row naming a deleted one is not).
What an episode starts (activities, timers, children, entity operations) is written after its commit
and recovered from the history at start-up: work scheduled in the history with no completion is
started again (activities are at-least-once, as on Azure), and entity calls and signals with no
answer or acknowledgement in the history or the inbox are sent again under the row key the history
recorded (the entity answers before it commits, so an applied operation always has its answer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import UpdateMode

from ..changes import KeyedChanges
from ..clock import Clock
from ..storage.tables import (
    ConcurrencyConflict,
    HubStorage,
    Reread,
    RowBudget,
    RowCache,
    container_name_for,
    error_code,
    next_sequence,
    table_name_for,
)

log = logging.getLogger(__name__)

INSTANCE_ROW = "instance"
MESSAGE_PREFIX = "msg-"
HISTORY_PREFIX = "h-"
INBOX_PAGE = 200  # inbox rows one read takes (an episode takes at most 100 events)
SCAN_ROWS = 20_000  # rows one scan for a purge by filter reads at most
FEW_ROWS = 8  # rows a purge deletes one by one (more go in transactions, costly to build and parse)
TAIL_CHARS = 4096
"""History entries a commit appends stay in the instance row (`tail`) until they pass this many
characters of JSON; then they go to a history row (see the module docstring)."""
TERMINAL = frozenset({"Completed", "Failed", "Terminated"})
RUNTIME_STATUSES = ("Pending", "Running", "Completed", "ContinuedAsNew", "Failed", "Terminated", "Suspended")
_TEXTS = ("input", "output", "customStatus", "waits", "applied", "finishing", "tail")
_LEGACY_HISTORY = "history"  # the whole history as one text of the instance row (the layout before)
# Every property that may name a blob: the instance row's texts, a history row's, a message's.
_BLOB_NAMES = [f"{p}Blob" for p in (*_TEXTS, _LEGACY_HISTORY, "events", "event")]
_IF_MATCH = MatchConditions.IfNotModified
_REFUSED = (ResourceModifiedError, ResourceExistsError, ResourceNotFoundError)  # certainly did not land
MAX_ID = 256
_BAD_ID = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


def invalid_instance_id(iid: str) -> str | None:
    """Why `iid` cannot be an instance id (a table key), or None."""
    if not iid or not iid.strip():
        return "instance id must not be empty"
    if iid in (".", ".."):
        # Clients resolve a '.' or '..' path segment away, so no URL could reach such an instance.
        return f"instance id {iid!r} cannot be used in a URL path (it names a folder)"
    if _BAD_ID.search(iid):
        return "instance id must not contain '/', '\\', '#', '?' or control characters"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in iid):
        return "instance id must not contain lone surrogates"
    if len(iid.encode("utf-16-le")) > 2 * MAX_ID or iid.startswith("@"):
        return f"instance id must be at most {MAX_ID} characters and must not start with '@'"
    return None


class _Moved(Reread):
    """The history rows an instance row named are gone (a continue-as-new replaced them)."""


class InstanceFilter(NamedTuple):
    """What a listing or a purge by filter matches (None: anything)."""

    statuses: set[str] | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    prefix: str | None = None


@dataclass
class Message:
    """An inbox row: one history event waiting for its instance."""

    row_key: str
    event: dict[str, Any]
    execution: str = ""


@dataclass
class InstanceRecord:
    """The instance row."""

    instance_id: str
    name: str
    status: str
    execution_id: str
    input: str | None = None
    output: str | None = None  # JSON text
    custom_status: str | None = None  # JSON text
    history: list[dict[str, Any]] = field(default_factory=list)
    created: datetime | None = None
    updated: datetime | None = None
    parent: str | None = None
    parent_task: int | None = None
    parent_execution: str | None = None
    actions_seen: int = 0
    waits: dict[str, int] = field(default_factory=dict)  # wait_for_external_event actions per name
    # How the instance ends once the entities its last episode signalled acknowledged them:
    # {"status": Completed | Failed | ContinuedAsNew, "output", "input"} (None: not ending).
    finishing: dict[str, Any] | None = None
    applied: frozenset[str] = frozenset()
    etag: str | None = None
    blobs: tuple[str, ...] = ()
    # What of `history` is stored: its first `history_stored` events, in `history_entries` entries
    # (the row's `historyLength`; events plus amendments), of which the history rows hold the first
    # `history_rows` (`historyRows`) and the instance row the rest (`history_tail`, its text `tail`).
    history_stored: int = 0
    history_entries: int = 0
    history_rows: int = 0
    history_tail: list[dict[str, Any]] = field(default_factory=list)
    scheduled_start: datetime | None = None  # a Pending instance's first episode waits until then

    @property
    def terminal(self) -> bool:
        """Completed, Failed or Terminated: nothing runs any more."""
        return self.status in TERMINAL


class InstanceStore(HubStorage):
    """Async access to one task hub's instance table."""

    def __init__(self, connection_string: str, hub_name: str, clock: Clock | None = None) -> None:
        """`clock` stamps `lastUpdatedTime` (default: the wall clock)."""
        self.clock = clock or Clock()
        super().__init__(
            connection_string,
            table_name_for(hub_name, "Instances"),
            container_name_for(hub_name, "instances"),
        )
        self.hub_name = hub_name
        self.records: RowCache[InstanceRecord] = RowCache()
        self.changes = KeyedChanges()  # set when an instance row was written or purged
        self.cache_hooks.append(self.records)
        self._cleanups: set[asyncio.Task[None]] = set()
        # Consumed message rows deleted since an instance row listed them: the next commit unlists them.
        self.deleted: dict[str, set[str]] = {}

    async def close(self) -> None:
        """Stop background clean-ups (they are redone later) and release the clients."""
        for task in list(self._cleanups):
            task.cancel()
        await asyncio.gather(*self._cleanups, return_exceptions=True)
        await super().close()

    # -- reading -------------------------------------------------------------------------------
    async def _decode(self, row: Mapping[str, Any], with_history: bool = True) -> InstanceRecord:
        texts = {prop: await self.get_text(row, prop) for prop in _TEXTS}
        parent_task = row.get("parentTask")
        length = row.get("historyLength")
        in_rows = row.get("historyRows")
        history: list[dict[str, Any]] = []
        stored = entries = rows = 0
        tail: list[dict[str, Any]] = []
        if isinstance(length, int):
            entries = length
            rows = in_rows if isinstance(in_rows, int) else length  # no `historyRows`: all in rows
            tail = json.loads(texts.get("tail") or "[]") if rows < length else []
            if with_history and length:
                history = await self._history(row["PartitionKey"], row.get("executionId", ""), rows, tail)
                stored = len(history)
        elif with_history:  # the layout before: the whole history in the instance row
            legacy = await self.get_text(row, _LEGACY_HISTORY)
            history = json.loads(legacy) if legacy else []
        return InstanceRecord(
            instance_id=row["PartitionKey"],
            name=row.get("name", ""),
            status=row.get("status", "Pending"),
            execution_id=row.get("executionId", ""),
            input=texts.get("input"),
            output=texts.get("output"),
            custom_status=texts.get("customStatus"),
            history=history,
            created=row.get("createdTime"),
            updated=row.get("lastUpdatedTime"),
            parent=row.get("parent") or None,
            parent_task=parent_task if isinstance(parent_task, int) else None,
            parent_execution=row.get("parentExecution") or None,
            actions_seen=int(row.get("actionsSeen") or 0),
            waits=json.loads(texts.get("waits") or "{}"),
            finishing=json.loads(texts["finishing"]) if texts.get("finishing") else None,
            applied=frozenset(k for k in str(texts.get("applied") or "").split(",") if k),
            etag=row.metadata.get("etag") if hasattr(row, "metadata") else None,
            blobs=tuple(str(row[f"{p}Blob"]) for p in (*_TEXTS, _LEGACY_HISTORY) if row.get(f"{p}Blob")),
            history_stored=stored,
            history_entries=entries,
            history_rows=rows,
            history_tail=tail,
            scheduled_start=row.get("scheduledStart") or None,
        )

    async def _history(
        self, iid: str, execution: str, length: int, tail: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The first `length` entries of an execution's history rows, then `tail` (the instance row's
        entries), amendments applied.

        Rows at or past `length` are ignored (nothing committed names them). Fewer entries than
        `length` means a continue-as-new replaced the execution since its instance row was read
        (its rows are being deleted): `_Moved`, and the caller reads again.
        """
        prefix = f"{HISTORY_PREFIX}{execution}-"
        entries: list[Any] = []
        if length:
            async for row in self._rows(iid, prefix):
                start = int(row["RowKey"][len(prefix) :])
                if start != len(entries) or start >= length:
                    break
                entries.extend(json.loads(await self.get_text(row, "events") or "[]"))
            if len(entries) < length:
                raise _Moved(iid)
        history: list[dict[str, Any]] = []
        for entry in [*entries[:length], *tail]:
            if "Amend" in entry and "EventType" not in entry:
                history[int(entry["Amend"])] = entry["Event"]
            else:
                history.append(entry)
        return history

    def _rows(self, iid: str, prefix: str, after: str | None = None, **options: Any) -> AsyncIterator[Any]:
        """The rows of instance `iid` whose keys start with `prefix` (and come after `after`), in key
        order."""
        query = f"PartitionKey eq @pk and RowKey {'gt' if after else 'ge'} @lo and RowKey lt @hi"
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        parameters = {"pk": iid, "lo": after or prefix, "hi": end}
        return self._table.query_entities(query, parameters=parameters, **options)

    async def read(self, iid: str) -> InstanceRecord | None:
        """The instance row (None when there is none)."""
        return await self.read_row(self.records, iid, INSTANCE_ROW, self._decode, f"instance {iid}")

    async def list(
        self, where: InstanceFilter, top: int, after: str | None
    ) -> tuple[list[InstanceRecord], str | None]:
        """Instances matching `where` in instance-id order; (page, last id if more remain)."""
        page: list[InstanceRecord] = []
        last: str | None = None
        async for row in self._matching(where, top, after):
            if row is None:
                last = page[-1].instance_id if page else None
                continue  # the generator ends after it
            page.append(await self._decode(row, with_history=False))
        return page, last

    async def matching_ids(
        self, where: InstanceFilter, top: int, after: str | None
    ) -> tuple[list[tuple[str, str]], str | None]:
        """The ids and statuses of the instances matching the filters (as `list`, reading nothing
        else)."""
        page: list[tuple[str, str]] = []
        last: str | None = None
        select = ["PartitionKey", "status"]
        async for row in self._matching(where, top, after, select):
            if row is None:
                last = page[-1][0] if page else None
                continue  # the generator ends after it
            page.append((row["PartitionKey"], row.get("status") or "Pending"))
        return page, last

    async def rows_of(self, ids: list[str]) -> dict[str, list[Any]]:
        """The keys, ETags and blob names of the rows of instances `ids` (sorted), in one scan of
        their id range; an instance past `SCAN_ROWS` rows read (other instances' rows lie in the
        range too) is left out, for `purge` to read alone."""
        await self.ensure()
        wanted = set(ids)
        found: dict[str, list[Any]] = {}
        read = 0
        query = "PartitionKey ge @lo and PartitionKey le @hi"
        try:
            async for row in self._table.query_entities(
                query,
                parameters={"lo": ids[0], "hi": ids[-1]},
                select=["PartitionKey", "RowKey", *_BLOB_NAMES],
            ):
                read += 1
                if read > SCAN_ROWS:
                    found.pop(row["PartitionKey"], None)  # maybe not whole
                    break
                if row["PartitionKey"] in wanted:
                    found.setdefault(row["PartitionKey"], []).append(row)
        except AzureError as exc:
            raise self.fail(exc) from exc
        return found

    async def purge_rows(self, iid: str, rows: list[Any], if_unchanged: bool = True) -> bool:
        """Delete the rows `rows_of` listed for a finished instance: its instance row first (when
        `if_unchanged`, only if unchanged since: a restart may have replaced it; then nothing is
        deleted, and False), then the rest (see `_delete_rest`). Single deletes, not a transaction:
        building and parsing a transaction's multipart body costs the client several times the CPU
        of a few deletes."""
        await self.ensure()
        instance = next((r for r in rows if r["RowKey"] == INSTANCE_ROW), None)
        if instance is None:
            return False
        condition = (
            {"etag": instance.metadata.get("etag"), "match_condition": _IF_MATCH} if if_unchanged else {}
        )
        self.records.forget(iid)
        try:
            await self._table.delete_entity(iid, INSTANCE_ROW, **condition)
        except _REFUSED:
            return False  # changed (restarted) or gone (purged) meanwhile
        except AzureError as exc:
            raise self.fail(exc) from exc
        finally:
            self.records.forget(iid)
            self.changes.changed(iid)
        await self._delete_rest(iid, rows)
        return True

    async def _delete_rest(self, iid: str, rows: list[Any]) -> None:
        """Delete an instance's rows but its instance row, which is already gone, and their blobs.

        With the instance row gone first, nothing reads what is left if this is cut short (a crash,
        a storage error): history rows are read only through an instance row's `executionId`, and
        inbox rows of an instance with no row are dropped by its next episode (start-up runs one for
        every instance with inbox rows); a later purge of the id deletes them.
        """
        keys = [r["RowKey"] for r in rows if r["RowKey"] != INSTANCE_ROW]
        blobs = [str(r[k]) for r in rows for k in r if k.endswith("Blob") and r[k]]
        try:
            if len(keys) > FEW_ROWS:  # one transaction costs more than a few single deletes
                await self.delete_rows(iid, keys)
            else:
                await asyncio.gather(*(self.delete_row(iid, key) for key in keys))
        except AzureError:
            log.debug("could not delete every row of purged instance %s", iid)
            return
        await self.delete_blobs(blobs)

    async def _matching(
        self, where: InstanceFilter, top: int, after: str | None, select: list[str] | None = None
    ) -> AsyncIterator[Any]:
        """The instance rows matching the filters in instance-id order, at most `top`; then None when
        more remain."""
        await self.ensure()
        statuses, created_from, created_to, prefix = where
        clauses = ["RowKey eq @rk"]
        params: dict[str, Any] = {"rk": INSTANCE_ROW}
        if after:
            clauses.append("PartitionKey gt @after")
            params["after"] = after
        if prefix:
            clauses.append("PartitionKey ge @lo")
            params["lo"] = prefix
        if created_from:
            clauses.append("createdTime ge @cfrom")
            params["cfrom"] = created_from
        if created_to:
            clauses.append("createdTime le @cto")
            params["cto"] = created_to
        if statuses:
            names = sorted(statuses)
            clauses.append("( " + " or ".join(f"status eq @s{i}" for i in range(len(names))) + " )")
            params.update({f"s{i}": name for i, name in enumerate(names)})
        taken = 0
        try:
            async for row in self._table.query_entities(
                " and ".join(clauses),
                parameters=params,
                results_per_page=min(top + 1, 1000),
                select=select,
            ):
                if prefix and not row["PartitionKey"].startswith(prefix):
                    break  # past the prefix range (rows come in PartitionKey order)
                if taken == top:
                    yield None
                    break
                taken += 1
                yield row
        except AzureError as exc:
            raise self.fail(exc) from exc

    async def active(self) -> list[str]:
        """Instances that still run (resumed at start-up), and those with messages waiting."""
        await self.ensure()
        found: set[str] = set()
        query = "RowKey eq @rk and ( status eq @a or status eq @b or status eq @c )"
        params = {"rk": INSTANCE_ROW, "a": "Pending", "b": "Running", "c": "Suspended"}
        try:
            async for row in self._table.query_entities(query, parameters=params, select=["PartitionKey"]):
                found.add(row["PartitionKey"])
            query = "RowKey ge @lo and RowKey lt @hi"
            async for row in self._table.query_entities(
                query, parameters={"lo": MESSAGE_PREFIX, "hi": "msg."}, select=["PartitionKey"]
            ):
                found.add(row["PartitionKey"])
        except AzureError as exc:
            raise self.fail(exc) from exc
        return sorted(found)

    # -- messages ------------------------------------------------------------------------------
    async def add_message(self, iid: str, event: dict[str, Any], execution: str = "") -> Message:
        """Persist one inbox message (before anything acknowledges it)."""
        await self.ensure()
        row_key = f"{MESSAGE_PREFIX}{next_sequence():020d}"
        entity: dict[str, Any] = {"PartitionKey": iid, "RowKey": row_key, "execution": execution}
        try:
            await self.put_text(entity, "event", "message", iid, json.dumps(event))
            await self._table.create_entity(entity)
        except AzureError as exc:
            raise self.fail(exc) from exc
        return Message(row_key, event, execution)

    async def messages(self, iid: str, applied: frozenset[str]) -> list[Message]:
        """The instance's whole inbox in arrival order, without the messages already applied (read
        page by page; start-up recovery wants every answer waiting, episodes read `inbox_page`)."""
        result: list[Message] = []
        after: str | None = None
        while True:
            page, after = await self.inbox_page(iid, applied, after)
            result.extend(page)
            if after is None:
                return result

    async def inbox_page(
        self, iid: str, applied: frozenset[str], after: str | None = None, limit: int = INBOX_PAGE
    ) -> tuple[list[Message], str | None]:
        """The next at most `limit` inbox rows after row key `after`, in arrival order, as messages
        without those already applied; and the last row key read when more rows may follow (None
        when the inbox ends here)."""
        await self.ensure()
        result: list[Message] = []
        leftover: list[str] = []
        read = 0
        last: str | None = None
        try:
            async for row in self._rows(iid, MESSAGE_PREFIX, after, results_per_page=limit):
                read += 1
                last = row["RowKey"]
                if last in applied:
                    leftover.append(last)
                else:
                    text = await self.get_text(row, "event")
                    result.append(Message(last, json.loads(text or "{}"), row.get("execution") or ""))
                if read >= limit:
                    break
        except AzureError as exc:
            raise self.fail(exc) from exc
        if leftover:
            self.clean_up(iid, leftover)
        return result, (last if read >= limit else None)

    def clean_up(self, iid: str, keys: list[str]) -> None:
        """Delete consumed message rows in the background (still listed as applied until then)."""
        if not keys:
            return
        self._spawn(self._delete_quietly(iid, keys), iid)

    def _spawn(self, work: Coroutine[Any, Any, None], iid: str) -> None:
        """Run a clean-up in the background (`close` cancels it; it is redone or harmless later)."""
        task = asyncio.get_running_loop().create_task(work, name=f"clean-up {iid}")
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _delete_quietly(self, iid: str, keys: list[str]) -> None:
        try:
            await self.delete_rows(iid, keys)
        except AzureError:
            log.debug("could not delete consumed messages of %s", iid)
            return
        if len(self.deleted) > 4096 and iid not in self.deleted:
            self.deleted.clear()  # forgetting only leaves a few keys listed a while longer
        self.deleted.setdefault(iid, set()).update(keys)

    def still_listed(self, record: InstanceRecord) -> frozenset[str]:
        """The keys `record` lists as applied whose rows may still exist (`write` forgets the
        deleted ones once a row that no longer lists them is written)."""
        return record.applied - self.deleted.get(record.instance_id, set())

    # -- writing -------------------------------------------------------------------------------
    async def _row(self, record: InstanceRecord) -> tuple[dict[str, Any], list[str]]:
        """The table entity for `record`, and the blobs written for it."""
        entity: dict[str, Any] = {
            "PartitionKey": record.instance_id,
            "RowKey": INSTANCE_ROW,
            "name": record.name,
            "status": record.status,
            "executionId": record.execution_id,
            "createdTime": record.created,
            "lastUpdatedTime": record.updated,
            "parent": record.parent or "",
            "parentExecution": record.parent_execution or "",
            "actionsSeen": record.actions_seen,
            "historyLength": record.history_entries,
            "historyRows": record.history_rows,
        }
        if record.parent_task is not None:
            entity["parentTask"] = record.parent_task
        if record.scheduled_start is not None:
            entity["scheduledStart"] = record.scheduled_start
        blobs: list[str] = []
        texts = {
            "input": record.input,
            "output": record.output,
            "customStatus": record.custom_status,
            "waits": json.dumps(record.waits) if record.waits else None,
            "applied": ",".join(sorted(record.applied)) if record.applied else None,
            "finishing": json.dumps(record.finishing) if record.finishing else None,
            "tail": json.dumps(record.history_tail) if record.history_tail else None,
        }
        budget = RowBudget()  # several texts share the row
        for prop, text in texts.items():
            blob = await self.put_text(entity, prop, prop, record.instance_id, text, budget)
            if blob:
                blobs.append(blob)
        return entity, blobs

    async def _appended(
        self, record: InstanceRecord, before: InstanceRecord | None, blobs: list[str]
    ) -> dict[str, Any] | None:
        """What `record` appends to `before`'s stored history: kept in the instance row's tail while
        the tail stays within TAIL_CHARS (None: no history row to write), else the tail and it as a
        history row (returned); sets `record`'s `history_*` fields to what is stored after it."""
        same = before is not None and before.execution_id == record.execution_id
        base = before.history_stored if same and before is not None else 0
        first = before.history_entries if same and before is not None else 0
        rows = before.history_rows if same and before is not None else 0
        tail = list(before.history_tail) if same and before is not None else []
        old = before.history if before is not None else []
        if len(record.history) < base:
            raise ValueError(f"the history of {record.instance_id} shrank within one execution")
        entries: list[dict[str, Any]] = [
            {"Amend": i, "Event": record.history[i]}
            for i in range(base)
            if record.history[i] is not old[i] and record.history[i] != old[i]
        ]
        entries.extend(record.history[base:])
        record.history_entries = first + len(entries)
        record.history_stored = len(record.history)
        tail.extend(entries)
        text = json.dumps(tail) if tail else ""
        if len(text) <= TAIL_CHARS:
            record.history_rows, record.history_tail = rows, tail
            return None
        record.history_rows, record.history_tail = rows + len(tail), []
        row_key = f"{HISTORY_PREFIX}{record.execution_id}-{rows:010d}"
        chunk: dict[str, Any] = {"PartitionKey": record.instance_id, "RowKey": row_key}
        blob = await self.put_text(chunk, "events", "history", record.instance_id, text)
        if blob:
            blobs.append(blob)
        return chunk

    async def write(
        self, record: InstanceRecord, before: InstanceRecord | None, create: bool = False
    ) -> None:
        """Write the instance row: created when `create`, else replaced if unchanged since `before`;
        what `record.history` appends goes into its tail, or, past TAIL_CHARS, to a history row
        written just before it (two plain writes cost the storage client less than one transaction,
        measured on Azurite; an episode that writes only the instance row costs one)."""
        await self.ensure()
        record.updated = self.clock.now()
        stored = (record.history_stored, record.history_entries, record.history_rows, record.history_tail)
        blobs: list[str] = []  # written for this write: the history row's, then the instance row's
        try:
            chunk = await self._appended(record, before, blobs)
            entity, row_blobs = await self._row(record)
            blobs.extend(row_blobs)
            if create:
                operation: tuple[Any, ...] = ("create", entity)
            else:
                assert before is not None
                condition = {"mode": UpdateMode.REPLACE, "etag": before.etag, "match_condition": _IF_MATCH}
                operation = ("update", entity, condition)
            if chunk is not None:  # first: until the row's committed length covers it, nobody reads it
                await self._table.upsert_entity(chunk, mode=UpdateMode.REPLACE)
            result: Any = await self._single(operation)
        except _REFUSED as exc:
            record.history_stored, record.history_entries, record.history_rows, record.history_tail = stored
            if error_code(exc) in ("TableNotFound",) or (exc.status_code or 0) >= 500:
                raise self.fail(exc) from exc
            await self.delete_blobs(blobs)  # refused: no row names them
            self.records.forget(record.instance_id)
            raise ConcurrencyConflict(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
        except AzureError as exc:
            # No answer (a timeout, a reset, a 5xx): the write may have landed, and the rows would then
            # name these blobs, so they stay (an orphan is harmless; a row naming a deleted blob is not).
            record.history_stored, record.history_entries, record.history_rows, record.history_tail = stored
            raise self.fail(exc) from exc
        self.records.healthy = True
        record.blobs = tuple(row_blobs)
        etag = result.get("etag") if isinstance(result, Mapping) else None
        record.etag = etag
        self.records.wrote(record.instance_id, record, keep=bool(etag))
        self.changes.changed(record.instance_id)
        if before is not None:
            unlisted = before.applied - record.applied
            if unlisted and record.instance_id in self.deleted:
                self.deleted[record.instance_id] -= unlisted
                if not self.deleted[record.instance_id]:
                    del self.deleted[record.instance_id]
            await self.delete_blobs([b for b in before.blobs if b not in row_blobs])
            if before.execution_id != record.execution_id and before.history_rows:
                self._spawn(self._drop_history(record.instance_id, before.execution_id), record.instance_id)

    async def _single(self, operation: tuple[Any, ...]) -> Mapping[str, Any]:
        """The instance-row write: a create, or a replace on the ETag of the row it replaces."""
        if operation[0] == "create":
            return await self._table.create_entity(operation[1])
        return await self._table.update_entity(operation[1], **operation[2])

    async def _drop_history(self, iid: str, execution: str) -> None:
        """Delete the history rows (and their blobs) of an execution a continue-as-new ended."""
        keys: list[str] = []
        blobs: list[str] = []
        try:
            async for row in self._rows(
                iid, f"{HISTORY_PREFIX}{execution}-", select=["RowKey", "eventsBlob"]
            ):
                keys.append(row["RowKey"])
                if row.get("eventsBlob"):
                    blobs.append(str(row["eventsBlob"]))
            await self.delete_rows(iid, keys)
        except AzureError:
            log.debug("could not delete the history of execution %s of %s", execution, iid)
            return
        await self.delete_blobs(blobs)

    async def commit(self, new: InstanceRecord, before: InstanceRecord, consumed: list[str]) -> None:
        """End an episode: ONE ETag-checked write of `new` over `before` that lists the inbox rows it
        consumed (`consumed`: row keys; with those `before` listed whose rows may still exist), then
        the consumed rows deleted in the background. A refused write (`ConcurrencyConflict`) deleted
        the blobs written for it; a write with no answer (`StorageUnavailable`) may have landed, so
        they stay and nothing is cleaned up."""
        new.applied = self.still_listed(before) | frozenset(consumed)
        await self.write(new, before)
        self.clean_up(new.instance_id, consumed)

    async def purge(self, iid: str) -> bool:
        """Delete the instance row, then its history rows, its inbox and its blobs; True when there was
        an instance."""
        await self.ensure()
        self.records.forget(iid)
        try:
            select = ["RowKey", *_BLOB_NAMES]
            query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": iid}, select=select)
            rows = [row async for row in query]
        except AzureError as exc:
            raise self.fail(exc) from exc
        found = await self.purge_rows(iid, rows, if_unchanged=False)
        if not found:
            await self._delete_rest(iid, rows)  # rows an instance row no longer names
        return found
