"""The storage service version the local host speaks, and the refusal that means storage is too old.

The blob and queue SDKs send the newest service version they know (2026-06-06 for the ones pinned
today), and Azurite refuses any version newer than itself unless it was started with
`--skipApiVersionCheck`: the harness's own Azurite is, but the one the editor extension or a user
starts is not. So the host pins blob and queue clients to `STORAGE_API_VERSION`, old enough for every
Azurite of the last years and for Azure itself, and new enough for all it uses (containers, block
blobs, leases with a proposed id, metadata, queue messages). Tables already send 2019-02-02.
`DURABLEAGENT_STORAGE_API_VERSION` chooses another version (one the SDKs know).

Should storage still refuse the version, the host stops at start-up with one line that says how to
fix it, instead of retrying a request that can never succeed.
"""

from __future__ import annotations

import os
from typing import Any

from azure.core.exceptions import HttpResponseError

from ..errors import AppLoadError

__all__ = [
    "API_VERSION_ENV",
    "STORAGE_API_VERSION",
    "UnsupportedApiVersion",
    "api_version",
    "check_api_version",
    "versioned",
]

STORAGE_API_VERSION = "2021-12-02"
API_VERSION_ENV = "DURABLEAGENT_STORAGE_API_VERSION"


class UnsupportedApiVersion(AppLoadError):
    """Storage refuses the service version the host sends; retrying cannot help."""


def api_version() -> str:
    """The blob and queue service version to send: the environment's choice, else the pinned one."""
    return os.environ.get(API_VERSION_ENV, "").strip() or STORAGE_API_VERSION


def versioned(**options: Any) -> dict[str, Any]:
    """Client options for a blob or queue client, with the service version added."""
    return {**options, "api_version": api_version()}


def check_api_version(exc: BaseException) -> None:
    """Raise `UnsupportedApiVersion` when `exc` is storage refusing the service version."""
    if not isinstance(exc, HttpResponseError) or exc.status_code != 400:
        return
    text = str(exc.message or exc)
    if "API version" not in text or "not supported" not in text:
        return
    version = api_version()
    raise UnsupportedApiVersion(
        f"storage refuses the API version the host sends ({version}): update Azurite, or start it with "
        "--skipApiVersionCheck (VS Code: setting 'Azurite: Skip Api Version Check'), or set "
        f"{API_VERSION_ENV} to a version it accepts"
    ) from None
