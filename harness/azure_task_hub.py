"""Reading a deployed app's task hub in the Azure Storage provider's own layout (DurableTask.AzureStorage,
the default backend of Durable Functions), read-only, for `python -m harness export --storage --hub`.

What the provider writes, as read from its source (Azure/durabletask at commit 5217032961ab, 2026-06-24;
file paths below are in that repository) and the Durable Functions page "Azure Storage provider"
(`durable-functions-azure-storage-provider`):

- Tables `<hub>History` and `<hub>Instances` (`AzureStorageOrchestrationServiceSettings.cs`:
  `HistoryTableName`, `InstanceTableName`), blob container `<hub lowercased>-largemessages`
  (`AzureStorageOrchestrationService.cs`). The PartitionKey of both tables is the instance id escaped
  by `Tracking/KeySanitation.cs` (`^` -> `^^`, `/` -> `^0`, `\\` -> `^1`, `#` -> `^2`, `?` -> `^3`,
  control characters -> `^` + the character shifted by U+00C0).
- `<hub>History` (`Tracking/AzureTableTrackingStore.cs`, `UpdateStateAsync`, `GetHistoryEventsAsync`):
  one row per DTFx history event, RowKey = the event's sequence number in its execution as 16
  upper-case hex digits (`X16`), plus a row with RowKey `sentinel` whose `ExecutionId` names the
  current execution. Rows are read in RowKey order and only those of the current execution are
  kept: a continue-as-new rewrites the rows from 0 under a new `ExecutionId`, so rows of an older
  (longer) execution may follow; the reader stops at the first row of another execution, as the
  provider does. Each row is the event serialized by `Tracking/TableEntityConverter.cs`: every
  `[DataMember]` of the event class (`src/DurableTask.Core/History/*.cs`) as a column of its name,
  enums by name (`EventType` = "TaskScheduled", `OrchestrationStatus` = "Failed"), strings, ints,
  bools and DateTimes as themselves, anything else (`OrchestrationInstance`, `ParentInstance`,
  `FailureDetails`, `Tags`) as JSON text; the event's `Timestamp` is the column `_Timestamp`
  (Timestamp is reserved by Table storage); `ExecutionId` is added to every row. A string of
  `Name`, `Input`, `Result`, `Output`, `Reason`, `Details`, `Correlation`, `FailureDetails` or
  `Tags` longer than 60 KiB of UTF-16 is gzipped into the largemessages container and the column
  is emptied, with `<Column>BlobName` naming the blob (`CompressLargeMessageAsync`,
  `GetBlobPropertyName`).
- `<hub>Instances` (`SetNewExecutionAsync`, `UpdateStateAsync`, `ConvertFromAsync`,
  `OrchestrationInstanceStatus.cs`): one row per instance, RowKey "", with `Name`, `Version`,
  `ExecutionId`, `RuntimeStatus` (the `OrchestrationStatus` name), `CreatedTime`,
  `LastUpdatedTime`, `CompletedTime`, `Input`, `Output`, `CustomStatus` (the text "null" when
  none), `Generation`, `Tags`, `TaskHubName`. A large `Input`/`Output` here is not a `*BlobName`
  column: the column holds the blob's URL (`SetInstancesTablePropertyFromHistoryProperty`,
  `MessageManager.TryGetLargeMessageReference`); an input URL ending in `ExecutionStarted.json.gz`
  is a whole queue message (`MessageData`) whose `TaskMessage.Event.Input` is the input.
- Entities (`EntityTrackingStoreQueries.cs`, `src/DurableTask.Core/Entities/`): an entity is an
  instance whose id is `@<name lowercased>@<key>`; its `Input` is the scheduler state
  (`StateFormat/SchedulerState.cs`: JSON with `state`, the entity's serialized state, plus
  `queue`, `lockedBy`, `sorter`), `CustomStatus` its `EntityStatus`. An orchestration's entity call
  is an `EventSent` to the entity's id, `Name` "op", `Input` the `RequestMessage` JSON (`op`,
  `signal`, `input`, `id`, `parent`, ...); the answer an `EventRaised` named by the request id with
  the `ResponseMessage` JSON (`result`, `exceptionType`) (`EventFormat/*.cs`).

How the rows become the export's raw history (the local host's shape, which `replay-check`, `import`
and `rewind-to` read): `EventType` becomes the SDK's integer; `_Timestamp` becomes `Timestamp`
(ISO, UTC); DateTimes become ISO text; `*BlobName` payloads are downloaded and put back in their
column; `ExecutionId` and the table keys are dropped; everything else is kept as read. Two local
host conventions are added to an entity call's `EventSent`: `RequestId` (the request message's
`id`, how the host pairs the call with its answer) and `Name` = the operation (the provider stores
"op" there); a signal gets neither (the host then never sends it again). An event type the Python
SDK does not know (`ExecutionRewound`) is kept as a `GenericEvent` (which the SDK skips) with the
provider's name in `AzureEventType`, so event indexes stay those of the table.

Not read, or not known: `Canceled` and other statuses pass through as they are; a retry
(`call_activity_with_retry`) is recorded by the extension as ordinary TaskScheduled / TaskFailed /
TimerCreated / TimerFired events, which the replay check compares as such but the local host's
`rewind-to` does not treat as a retry; older executions of a continued-as-new instance are gone
(the provider overwrote them); the tracking store in a separate account
(`TrackingStoreNamePrefix`) and the partition table are not read. The other backends (Netherite,
MSSQL, the Durable Task Scheduler) keep no such tables: export from those through the HTTP API.
No real Azure deployment was available to check this against: the layout is from the source above.
"""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlparse

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import EntityProperty
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient

from durableagent.replay import events as ev
from durableagent.replay.recorded import MAX_EVENTS, MAX_FILE_BYTES, json_text
from harness.answers import ClientError

AZURE_STORAGE = "azure-storage"  # the provider's layout: <hub>History + <hub>Instances
LOCAL_HOST = "local-host"  # the local host's: <hub>Instances (+ <hub>Entities), no <hub>History
SENTINEL = "sentinel"
LARGE_COLUMNS = (
    "Name",
    "Input",
    "Result",
    "Output",
    "Reason",
    "Details",
    "Correlation",
    "FailureDetails",
    "Tags",
)
# Columns not copied onto an event as they are: the keys, the execution, what is read above, our mark.
_DROPPED = {"PartitionKey", "RowKey", "Timestamp", "ExecutionId", "_Timestamp", "_row_time"}
_DROPPED |= {"EventType", "EventId", "IsPlayed"}
_KINDS = {name: kind for kind, name in ev.NAMES.items()}  # "TaskScheduled" -> 4
_OPTIONS: dict[str, Any] = {"retry_total": 1, "retry_backoff_factor": 0.2, "connection_timeout": 5}


def history_table(hub: str) -> str:
    return f"{hub}History"


def instances_table(hub: str) -> str:
    return f"{hub}Instances"


def large_messages_container(hub: str) -> str:
    return f"{hub.lower()}-largemessages"


def escape_partition_key(key: str) -> str:
    """The PartitionKey the provider files instance `key` under (`KeySanitation.EscapePartitionKey`)."""
    escaped = {"^": "^^", "/": "^0", "\\": "^1", "#": "^2", "?": "^3"}
    out = []
    for c in key:
        if c in escaped:
            out.append(escaped[c])
        elif ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F:
            out.append("^" + chr(0xC0 + ord(c)))
        else:
            out.append(c)
    return "".join(out)


async def _table_exists(service: TableServiceClient, name: str) -> bool:
    try:
        async for _ in service.get_table_client(name).list_entities(results_per_page=1, select=["RowKey"]):
            break
    except ResourceNotFoundError:
        return False
    return True


async def hub_layout(connection: str, hub: str) -> str:
    """Which layout the task hub's tables have: a `<hub>History` table means the Azure Storage
    provider (the local host never makes one; the provider's hub names are letters and digits), else
    the local host's `Instances` or `Entities` table means the local host; neither is a one-line
    `ClientError` naming the tables looked for."""
    from harness.host.storage.tables import table_name_for

    local = [table_name_for(hub, suffix) for suffix in ("Instances", "Entities")]
    async with TableServiceClient.from_connection_string(connection, **_OPTIONS) as service:
        if hub.isascii() and hub.isalnum() and await _table_exists(service, history_table(hub)):
            return AZURE_STORAGE
        for table in local:
            if await _table_exists(service, table):
                return LOCAL_HOST
    raise ClientError(
        f"no task hub {hub!r} in this storage account: no table {history_table(hub)} or "
        f"{instances_table(hub)} (Azure Storage provider) nor {' or '.join(local)} (local host)"
    )


class _Budget:
    """What one export may read: `MAX_EVENTS` events per history and `MAX_FILE_BYTES` of payload text
    in all (the bounds `replay-check` and `import` put on a file), so a huge hub is refused, not
    loaded."""

    def __init__(self) -> None:
        self.chars = 0

    def take(self, text: str, what: str) -> str:
        self.chars += len(text)
        if self.chars > MAX_FILE_BYTES:
            raise ClientError(f"{what}: the export would pass the {MAX_FILE_BYTES} bytes an export may have")
        return text


class AzureStorageHub:
    """Read-only access to one task hub in the Azure Storage provider's layout (nothing is created)."""

    def __init__(self, connection: str, hub: str) -> None:
        self.hub = hub
        self._tables = TableServiceClient.from_connection_string(connection, **_OPTIONS)
        from harness.host.storage.api_version import versioned

        self._blobs = BlobServiceClient.from_connection_string(connection, **versioned(**_OPTIONS))
        self._history = self._tables.get_table_client(history_table(hub))
        self._instances = self._tables.get_table_client(instances_table(hub))
        self._container = self._blobs.get_container_client(large_messages_container(hub))
        self.budget = _Budget()

    async def close(self) -> None:
        await self._history.close()
        await self._instances.close()
        await self._tables.close()
        await self._container.close()
        await self._blobs.close()

    # -- instances ---------------------------------------------------------------------------------
    async def _instance_row(self, iid: str) -> dict[str, Any] | None:
        try:
            return dict(await self._instances.get_entity(escape_partition_key(iid), ""))
        except ResourceNotFoundError:
            return None

    async def instance(self, iid: str) -> dict[str, Any] | None:
        """The export of instance `iid` (status, served history, raw history), or None when the hub
        has no such instance."""
        from harness.host.orchestrations.api import status_json
        from harness.host.orchestrations.history import public_history
        from harness.host.orchestrations.store import InstanceRecord

        row = await self._instance_row(iid)
        if row is None:
            return None
        history = await self.history(iid)
        started = next((e for e in history if e["EventType"] == ev.EXECUTION_STARTED), {})
        input_text = (
            started.get("Input") if "Input" in started else await self._payload(row.get("Input"), iid)
        )
        record = InstanceRecord(
            instance_id=iid,
            name=str(row.get("Name") or started.get("Name") or ""),
            status=str(row.get("RuntimeStatus") or "Pending"),
            execution_id=str(row.get("ExecutionId") or ""),
            input=json_text(input_text),
            output=json_text(await self._payload(row.get("Output"), iid)),
            custom_status=json_text(row.get("CustomStatus")),
            history=history,
            created=_datetime(row.get("CreatedTime")),
            updated=_datetime(row.get("LastUpdatedTime")),
        )
        item = status_json(record)
        item["historyEvents"] = public_history(history, True, True)
        item["history"] = history
        item["inputText"] = record.input
        item["executionId"] = record.execution_id
        parent = _json_value(started.get("ParentInstance"))
        if isinstance(parent, dict) and isinstance(parent.get("OrchestrationInstance"), dict):
            item["parentInstanceId"] = parent["OrchestrationInstance"].get("InstanceId")
        return item

    async def history(self, iid: str) -> list[dict[str, Any]]:
        """The current execution's history events, in the local host's raw shape (see the module
        docstring); `ClientError` past `MAX_EVENTS`."""
        rows: list[dict[str, Any]] = []
        sentinel: dict[str, Any] | None = None
        query = self._history.query_entities(
            "PartitionKey eq @pk", parameters={"pk": escape_partition_key(iid)}
        )
        async for found in query:
            row = dict(found)
            row["_row_time"] = found.metadata.get("timestamp")
            if row.get("RowKey") == SENTINEL:
                sentinel = row
                continue
            rows.append(row)
            if len(rows) > MAX_EVENTS + 1:  # the sentinel row, plus stale rows of an older execution
                break
        if not rows:
            return []
        execution = (sentinel or {}).get("ExecutionId") or rows[0].get("ExecutionId")
        events: list[dict[str, Any]] = []
        for row in sorted(rows, key=lambda r: str(r.get("RowKey"))):
            if row.get("ExecutionId") != execution:
                break  # an older execution's rows (continue-as-new keeps the rows it did not overwrite)
            if len(events) >= MAX_EVENTS:
                raise ClientError(
                    f"instance {iid!r}: its history has more than the {MAX_EVENTS} events an export may hold"
                )
            events.append(await self._event(row, iid))
        return events

    async def _event(self, row: dict[str, Any], iid: str) -> dict[str, Any]:
        where = f"instance {iid!r} history row {row.get('RowKey')}"
        name = row.get("EventType")
        if not isinstance(name, str):
            raise ClientError(
                f"{where}: no EventType (is {self.hub}History a Durable Functions history table?)"
            )
        stamp = row.get("_Timestamp") or row.get("_row_time")
        event: dict[str, Any] = {
            "EventType": _KINDS.get(name, ev.GENERIC_EVENT),
            "EventId": _plain(row.get("EventId", -1)),
            "IsPlayed": bool(row.get("IsPlayed", False)),
            "Timestamp": ev.iso(stamp) if isinstance(stamp, datetime) else str(stamp or ""),
        }
        if name not in _KINDS:
            event["AzureEventType"] = name
        for column, value in row.items():
            if column in _DROPPED or column.endswith("BlobName"):
                continue
            event[column] = self.budget.take(value, where) if isinstance(value, str) else _plain(value)
        for column in LARGE_COLUMNS:
            blob = row.get(f"{column}BlobName")
            if isinstance(blob, str) and blob:
                event[column] = await self._blob_text(blob, where)
        if event["EventType"] == ev.EVENT_SENT and str(event.get("InstanceId") or "").startswith("@"):
            message = _json_value(event.get("Input"))
            if isinstance(message, dict):
                if message.get("op"):
                    event["Name"] = str(message["op"])
                if not message.get("signal") and message.get("id"):
                    event["RequestId"] = str(message["id"])
        return event

    # -- payloads ----------------------------------------------------------------------------------
    async def _payload(self, value: Any, iid: str) -> Any:
        """An Instances column's text: itself, or the large-message blob its URL names."""
        if not isinstance(value, str):
            return value
        blob = self._blob_of_url(value)
        if blob is None:
            return self.budget.take(value, f"instance {iid!r}")
        text = await self._blob_text(blob, f"instance {iid!r}")
        if blob.endswith("ExecutionStarted.json.gz"):  # a whole queue message: its event's input
            message = _json_value(text)
            task = message.get("TaskMessage") if isinstance(message, dict) else None
            started = task.get("Event") if isinstance(task, dict) else None
            if isinstance(started, dict) and "Input" in started:
                return started["Input"]
        return text

    def _blob_of_url(self, text: str) -> str | None:
        """The blob name in the largemessages container a URL names (None: not such a URL)."""
        if not text.startswith(("http://", "https://")) or any(c.isspace() for c in text):
            return None
        parts = urlparse(text).path.split("/")
        container = large_messages_container(self.hub)
        if container not in parts:
            return None
        name = "/".join(parts[parts.index(container) + 1 :])
        return unquote(name) or None

    async def _blob_text(self, name: str, where: str) -> str:
        """A gzipped large-message blob's text, bounded (before and after decompression)."""
        try:
            data = await (await self._container.download_blob(name)).readall()
        except ResourceNotFoundError:
            raise ClientError(
                f"{where}: large-message blob {name!r} is missing from {large_messages_container(self.hub)}"
            ) from None
        room = MAX_FILE_BYTES - self.budget.chars
        if len(data) > room:
            raise ClientError(f"{where}: the export would pass the {MAX_FILE_BYTES} bytes an export may have")
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = inflater.decompress(data, room + 1)
            text = raw.decode("utf-8")
        except (zlib.error, UnicodeDecodeError) as exc:
            raise ClientError(
                f"{where}: large-message blob {name!r} is not gzipped UTF-8 text ({exc})"
            ) from None
        if len(raw) > room or inflater.unconsumed_tail:
            raise ClientError(f"{where}: the export would pass the {MAX_FILE_BYTES} bytes an export may have")
        return self.budget.take(text, where)

    # -- entities ----------------------------------------------------------------------------------
    async def entity_state(self, entity_id: str) -> Any | None:
        """The state of entity `@name@key` (its scheduler state's `state`, decoded), or None when the
        hub has no such entity or it holds no state."""
        row = await self._instance_row(entity_id)
        if row is None:
            return None
        scheduler = _json_value(await self._payload(row.get("Input"), entity_id))
        state = scheduler.get("state") if isinstance(scheduler, dict) else None
        return _json_value(state) if isinstance(state, str) else None


def _plain(value: Any) -> Any:
    """A table value as JSON can hold it."""
    if isinstance(value, EntityProperty):
        value = value.value
    if isinstance(value, datetime):
        return ev.iso(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def _datetime(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _json_value(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return None
