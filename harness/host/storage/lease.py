"""One writer per task hub: the host holds a renewed blob lease on its hub while it serves it.

The stores keep committed rows in memory because the host is the only writer of its hub (see
`tables.RowCache`); a second host on the same hub would serve stale reads and race the first. The
lease is on the blob `owner` in the hub's entity container; its metadata names the holder (host,
pid, URL), so a second host can say which host it found.

Each start of a host takes a lease id of its own: two hosts can never share one, whatever folder and
port they were started with. A lease left by a host that died on this machine (the metadata names a
pid here that no longer runs) is broken at once, on the condition that the metadata is still the one
read (its ETag), so a host that took the lease meanwhile and named itself keeps it. A lease held
elsewhere is never broken: the host refuses to start (`HubInUse`).

While the host runs it renews the lease, and counts it as held only until the lease would expire
since the last renewal that succeeded: a renewal that storage refuses (the lease was broken or
another host took it) loses it at once, one that does not get through loses it when its time is up.
Without the lease the host answers 503 on its durable work (`problem()` says why) and its workers
take no steps; it keeps trying to take the lease back, and once it has it, drops what it cached,
since another host may have written the hub meanwhile.

The lease runs on real time (the loop's monotonic clock, and the wall clock for `since`), never on
the host's `Clock`: storage expires it after 15 real seconds between real processes, whatever a
virtual clock says.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.storage.blob.aio import BlobClient, BlobLeaseClient, BlobServiceClient

from durableagent._tables import client_options
from harness.processes import pid_alive

from ..errors import AppLoadError
from .api_version import check_api_version, versioned
from .tables import container_name_for, error_code

log = logging.getLogger(__name__)

LEASE_SECONDS = 15
RENEW_EVERY = 5.0
RETRY_EVERY = 1.0  # while the lease is not held, or a renewal did not get through
SAFETY = 2.0  # the host stops counting on its lease this long before storage would let it expire
OWNER_BLOB = "owner"


class HubInUse(AppLoadError):
    """Another running host holds the task hub (reported in one line, like a settings error)."""


def new_lease_id() -> str:
    """A lease id for one start of a host: no other host, nor a later start of this one, has it."""
    return str(uuid.uuid4())


class HubLease:
    """Acquire, renew in the background, take back when lost, and release the hub's lease."""

    def __init__(
        self,
        connection_string: str,
        hub: str,
        lease_id: str,
        url: str,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.hub = hub
        self.lease_id = lease_id
        # `start` (new for every start) tells this host's name from that of another host in the same
        # process (tests), or of an earlier start that had the same pid.
        self.owner = {
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "url": url,
            "start": new_lease_id(),
        }
        self.on_change = on_change  # called with the new state when the lease is lost or taken back
        options = {"retry_total": 1, "connection_timeout": 5, "read_timeout": 5}
        options.update(client_options(connection_string))
        self._service = BlobServiceClient.from_connection_string(connection_string, **versioned(**options))
        self._blob: BlobClient = self._service.get_blob_client(container_name_for(hub), OWNER_BLOB)
        self._task: asyncio.Task[None] | None = None
        self._lease: BlobLeaseClient | None = None
        self._valid_until = 0.0  # loop time until which the lease is surely ours
        self._acquired = False  # storage gave us the lease and has not taken it back since
        self._why = "storage has not been reached yet"  # why the lease is not held, for problem()
        self._serving = False  # the state last announced (logged, on_change)

    @property
    def held(self) -> bool:
        """Whether this host may serve the hub now."""
        return self._acquired and asyncio.get_running_loop().time() < self._valid_until

    def problem(self) -> str | None:
        """Why this host must not serve the hub's durable work now (None: it may)."""
        if self.held:
            return None
        return (
            f"this host does not hold the lease on task hub {self.hub!r}: {self._why}; "
            "it serves no durable work until it does"
        )

    async def acquire(self) -> None:
        """Take the lease; HubInUse when a live host holds it. Storage that cannot be reached is not
        an error here (the host starts and answers 503); the renewal loop takes the lease later."""
        for _ in range(5):  # a dead holder's lease is broken, then taken (another host may be quicker)
            try:
                await self._try_acquire(announce=False)
                break
            except _Held as held:
                if not held.dead:
                    raise HubInUse(
                        f"task hub {self.hub!r} is in use by another host ({held.description}); stop it, "
                        "or give this one another hub (host.json extensions.durableTask.hubName or "
                        "DURABLEAGENT_TASK_HUB)"
                    ) from None
                await self._break_dead(held)
            except AzureError as exc:
                check_api_version(exc)
                self._why = f"storage not reachable ({type(exc).__name__})"
                log.warning(
                    "task hub %s: cannot take its lease yet (%s); retrying", self.hub, type(exc).__name__
                )
                break
        self._task = asyncio.get_running_loop().create_task(self._keep(), name=f"lease {self.hub}")

    async def _break_dead(self, held: _Held) -> None:
        """Break the lease of a host that died here, unless someone named itself since we looked."""
        log.info("task hub %s: breaking the lease of a stopped host (%s)", self.hub, held.description)
        try:
            await BlobLeaseClient(self._blob).break_lease(
                lease_break_period=0, etag=held.etag, match_condition=MatchConditions.IfNotModified
            )
        except HttpResponseError as exc:
            if exc.status_code not in (409, 412):  # 412: changed since; 409: no lease any more
                raise

    async def _try_acquire(self, announce: bool = True) -> None:
        try:
            await self._service.create_container(self._blob.container_name)
        except ResourceExistsError:
            pass
        try:
            await self._blob.upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            pass
        except HttpResponseError as exc:
            if error_code(exc) != "LeaseIdMissing":
                raise
        started = asyncio.get_running_loop().time()
        try:
            lease = await self._blob.acquire_lease(lease_duration=LEASE_SECONDS, lease_id=self.lease_id)
            # Named before it counts as ours: a lease broken between these two calls (by a host that
            # read the previous holder's name) is not taken at all.
            await self._blob.set_blob_metadata(
                {**self.owner, "since": datetime.now(UTC).isoformat()}, lease=lease
            )
        except HttpResponseError as exc:
            if exc.status_code not in (409, 412):
                raise
            raise await self._held() from None
        self._lease = lease
        self._renewed(started, announce)

    def _renewed(self, started: float, announce: bool = True) -> None:
        self._acquired = True
        self._valid_until = started + LEASE_SECONDS - SAFETY
        if not self._serving:
            self._serving = True
            if announce:
                log.warning("task hub %s: this host holds the lease again and serves the hub", self.hub)
                if self.on_change is not None:
                    self.on_change(True)

    def _lost(self, why: str) -> None:
        self._acquired = False
        self._why = why
        if self._serving:
            self._serving = False
            log.error(
                "task hub %s: this host lost the lease (%s); durable work answers 503 and its workers "
                "stop until it holds the lease again",
                self.hub,
                why,
            )
            if self.on_change is not None:
                self.on_change(False)

    async def _held(self) -> _Held:
        try:
            props = await self._blob.get_blob_properties()
            meta, etag = props.metadata or {}, props.etag
        except AzureError:
            meta, etag = {}, None
        if meta.get("start") == self.owner["start"]:
            # Our own name, left by a lease broken before the thief named itself: nothing known.
            return _Held("a holder that has not named itself", False, etag)
        description = f"pid {meta.get('pid', '?')} on {meta.get('host', '?')} at {meta.get('url', '?')}"
        dead = meta.get("host") == socket.gethostname() and meta.get("pid", "").isdigit()
        dead = dead and etag is not None and not pid_alive(int(meta["pid"]))
        return _Held(description, dead, etag)

    async def _keep(self) -> None:
        """Renew while held; when a renewal fails, retry often, and take the lease back when free."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(RENEW_EVERY if self.held else RETRY_EVERY)
            if self._serving and loop.time() >= self._valid_until:
                self._lost(f"it could not be renewed for {LEASE_SECONDS - SAFETY:.0f} s")
            started = loop.time()
            why = ""
            try:
                if self._acquired and self._lease is not None:
                    try:
                        await self._lease.renew()
                        self._renewed(started)
                        continue
                    except HttpResponseError as exc:
                        if exc.status_code not in (404, 409, 412):
                            raise
                        # Broken, taken, or gone (storage came back empty): not ours now, whatever
                        # comes next; take it again if it is free.
                        why = f"storage refused its renewal ({error_code(exc) or exc.status_code})"
                        self._acquired = False
                        self._why = why  # problem() says why while the lease is tried again
                await self._try_acquire()
            except _Held as held:
                self._lost(f"another host holds it ({held.description})")
            except AzureError as exc:
                log.warning("task hub %s: lease renewal failed (%s)", self.hub, type(exc).__name__)
                if not self._acquired:
                    self._lost(why or f"storage not reachable ({type(exc).__name__})")
            except Exception:  # the loop must outlive any surprise: without it the hub is lost for good
                log.exception("task hub %s: lease renewal failed", self.hub)

    async def release(self) -> None:
        """Stop renewing and give the lease up (a clean stop frees the hub at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._acquired and self._lease is not None:
            try:
                await self._lease.release()
            except AzureError:
                log.debug("could not release the lease of %s", self.hub)
            self._acquired = False
        await self._blob.close()
        await self._service.close()


class _Held(Exception):
    def __init__(self, description: str, dead: bool, etag: str | None) -> None:
        super().__init__(description)
        self.description = description
        self.dead = dead
        self.etag = etag
