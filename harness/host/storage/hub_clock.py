"""Which time a task hub keeps, and where its virtual clock stands: one row beside the hub lease.

A hub's histories, instance times and entity times are all stamped by one clock. Mixing a real and
a virtual clock in one hub would make them disagree (a virtual week ahead, then back to today), so
the first host to use a hub records its kind in the table `<hub>Clock` (row `clock`/`hub`:
`kind` real or virtual, and for virtual time `now`), and a host of the other kind refuses to start
with one line naming `--fresh`. A virtual clock saves its new now here before each move
(`VirtualClock.save`), so a restart, even after SIGKILL, resumes where the clock stood; nothing a
host wrote is ever stamped later than the stored now.

Read after the hub's lease is taken (only the lease holder writes the row). A hub from before this
row (none stored) is taken as new, of whichever kind the host runs.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode
from azure.data.tables.aio import TableServiceClient

from durableagent._tables import client_options

from ..clock import Clock, VirtualClock, iso, parse_time
from ..errors import AppLoadError
from .api_version import check_api_version
from .tables import table_name_for

log = logging.getLogger(__name__)

PARTITION, ROW = "clock", "hub"


class ClockKindMismatch(AppLoadError):
    """The hub keeps the other kind of time (reported in one line, like a settings error)."""


def kind_of(clock: Clock) -> str:
    """`virtual` or `real`: the two kinds a hub never mixes (auto and manual are both virtual)."""
    return "virtual" if isinstance(clock, VirtualClock) else "real"


class HubClock:
    """The hub's clock row: `bind` at start-up, `save` on each move of a virtual clock."""

    def __init__(self, connection_string: str, hub: str) -> None:
        self.hub = hub
        self.table_name = table_name_for(hub, "Clock")
        options: dict[str, Any] = {"retry_total": 2, "retry_backoff_factor": 0.2, "connection_timeout": 5}
        options.update(client_options(connection_string))
        self._service = TableServiceClient.from_connection_string(connection_string, **options)
        self._table = self._service.get_table_client(self.table_name)

    async def bind(self, clock: Clock) -> None:
        """Check the hub's kind of time against `clock`'s (ClockKindMismatch), record it for a new
        hub, and set a virtual clock to the hub's stored now (and have it save each move here)."""
        kind = kind_of(clock)
        try:
            row = await self._read()
            if row is None:
                await self._create(clock)
                row = {"kind": kind}
        except AzureError as exc:
            check_api_version(exc)
            if kind == "real":  # the hub's stamps come from the wall clock either way
                log.warning("task hub %s: cannot read its clock row (%s)", self.hub, type(exc).__name__)
                return
            raise AppLoadError(
                f"task hub {self.hub!r}: cannot read where its virtual clock stands "
                f"({type(exc).__name__}); is storage running?"
            ) from None
        stored = str(row.get("kind") or "real")
        if stored != kind:
            now = f" (its clock stands at {row.get('now')})" if stored == "virtual" else ""
            flag = "--virtual-time auto|manual" if stored == "virtual" else "no --virtual-time"
            raise ClockKindMismatch(
                f"task hub {self.hub!r} keeps {stored} time{now} and this host runs on {kind} time; "
                f"start it with {flag}, or use --fresh (or another task hub) for a hub of its own"
            )
        if isinstance(clock, VirtualClock):
            if row.get("now"):
                clock.set_now(parse_time(str(row["now"])))
            clock.save = self.save
            log.info("virtual time (%s): the clock stands at %s", clock.mode, iso(clock.now()))

    async def _read(self) -> dict[str, Any] | None:
        try:
            return dict(await self._table.get_entity(PARTITION, ROW))
        except ResourceNotFoundError:
            return None

    async def _create(self, clock: Clock) -> None:
        try:
            await self._service.create_table(self.table_name)
        except ResourceExistsError:
            pass
        entity: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": ROW, "kind": kind_of(clock)}
        if isinstance(clock, VirtualClock):
            entity["now"] = iso(clock.now())
        await self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    async def save(self, now: datetime) -> None:
        """Store the virtual clock's new now (before anything is stamped with it)."""
        await self._table.upsert_entity(
            {"PartitionKey": PARTITION, "RowKey": ROW, "kind": "virtual", "now": iso(now)},
            mode=UpdateMode.REPLACE,
        )

    async def close(self) -> None:
        await self._table.close()
        await self._service.close()
