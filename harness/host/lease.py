"""One writer per task hub: the host holds a renewed blob lease on its hub while it runs.

The stores keep committed rows in memory because the host is the only writer of its hub (see
`tables.RowCache`); a second host on the same hub would serve stale reads and race the first. The
lease is on the blob `owner` in the hub's entity container; its metadata names the holder (host,
pid, URL), so a second host can say which host it found. The lease id is derived from the hub, the
app folder, the port and the machine: a host restarted after a SIGKILL in the same place takes its
own lease back at once, while a lease left by a dead process elsewhere on this machine is waited out
(it expires LEASE_SECONDS after its last renewal).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import UTC, datetime

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError
from azure.storage.blob.aio import BlobClient, BlobLeaseClient, BlobServiceClient

from .loader import AppLoadError
from .storage_api import check_api_version, versioned
from .tables import container_name_for, error_code

log = logging.getLogger(__name__)

LEASE_SECONDS = 15
RENEW_EVERY = 5.0
OWNER_BLOB = "owner"
_NAMESPACE = uuid.UUID("a4f5d0de-1c0e-4b3f-9d1e-6c2b7f0e9a11")


class HubInUse(AppLoadError):
    """Another running host holds the task hub (reported in one line, like a settings error)."""


def lease_id_for(hub: str, app_dir: str, port: int) -> str:
    """The same host in the same place gets the same lease id (and so its lease back after a crash)."""
    return str(uuid.uuid5(_NAMESPACE, f"{hub.lower()}|{app_dir}|{port}|{socket.gethostname()}"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class HubLease:
    """Acquire, renew in the background, and release the hub's lease."""

    def __init__(self, connection_string: str, hub: str, lease_id: str, url: str) -> None:
        self.hub = hub
        self.lease_id = lease_id
        self.owner = {"host": socket.gethostname(), "pid": str(os.getpid()), "url": url}
        options = {"retry_total": 1, "connection_timeout": 5}
        self._service = BlobServiceClient.from_connection_string(connection_string, **versioned(**options))
        self._blob: BlobClient = self._service.get_blob_client(container_name_for(hub), OWNER_BLOB)
        self._task: asyncio.Task[None] | None = None
        self._lease: BlobLeaseClient | None = None
        self.held = False

    async def acquire(self, wait_for_dead: float = LEASE_SECONDS + 5) -> None:
        """Take the lease; HubInUse when a live host holds it. Storage that cannot be reached is not
        an error here (the host starts and answers 503); the renewal loop takes the lease later."""
        deadline = asyncio.get_running_loop().time() + wait_for_dead
        while True:
            try:
                await self._try_acquire()
                break
            except _Held as held:
                if not held.dead or asyncio.get_running_loop().time() > deadline:
                    raise HubInUse(
                        f"task hub {self.hub!r} is in use by another host ({held.description}); stop it, "
                        "or give this one another hub (host.json extensions.durableTask.hubName or "
                        "DURABLEAGENT_TASK_HUB)"
                    ) from None
                log.info(
                    "task hub %s: waiting for the lease of a stopped host (%s)", self.hub, held.description
                )
                await asyncio.sleep(1.0)
            except AzureError as exc:
                check_api_version(exc)
                log.warning(
                    "task hub %s: cannot take its lease yet (%s); retrying", self.hub, type(exc).__name__
                )
                break
        self._task = asyncio.get_running_loop().create_task(self._renew(), name=f"lease {self.hub}")

    async def _try_acquire(self) -> None:
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
        try:
            self._lease = await self._blob.acquire_lease(lease_duration=LEASE_SECONDS, lease_id=self.lease_id)
        except HttpResponseError as exc:
            if exc.status_code != 409:
                raise
            raise await self._held() from None
        await self._blob.set_blob_metadata(
            {**self.owner, "since": datetime.now(UTC).isoformat()}, lease=self._lease
        )
        self.held = True

    async def describe(self, url: str) -> None:
        """Name the URL the host serves on (known only once its port is bound) in the lease's metadata."""
        self.owner["url"] = url
        if self.held and self._lease is not None:
            try:
                await self._blob.set_blob_metadata(
                    {**self.owner, "since": datetime.now(UTC).isoformat()}, lease=self._lease
                )
            except AzureError:
                log.debug("could not update the lease metadata of %s", self.hub)

    async def _held(self) -> _Held:
        try:
            meta = (await self._blob.get_blob_properties()).metadata or {}
        except AzureError:
            meta = {}
        description = f"pid {meta.get('pid', '?')} on {meta.get('host', '?')} at {meta.get('url', '?')}"
        dead = meta.get("host") == socket.gethostname() and meta.get("pid", "").isdigit()
        dead = dead and not _alive(int(meta["pid"]))
        return _Held(description, dead)

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                if self.held and self._lease is not None:
                    await self._lease.renew()
                else:
                    await self._try_acquire()
            except _Held as held:
                log.error("task hub %s: another host took it (%s)", self.hub, held.description)
                self.held = False
            except AzureError as exc:
                log.warning("task hub %s: lease renewal failed (%s)", self.hub, type(exc).__name__)

    async def release(self) -> None:
        """Stop renewing and give the lease up (a clean stop frees the hub at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.held and self._lease is not None:
            try:
                await self._lease.release()
            except AzureError:
                log.debug("could not release the lease of %s", self.hub)
            self.held = False
        await self._blob.close()
        await self._service.close()


class _Held(Exception):
    def __init__(self, description: str, dead: bool) -> None:
        super().__init__(description)
        self.description = description
        self.dead = dead
