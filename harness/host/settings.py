"""App settings: local.settings.json, host.json and the storage connection string.

Kept apart from the server so the loader and the tests can resolve settings without starting anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("harness.host")

DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_HUB_NAME = "TestHubName"
HUB_ENV = "DURABLEAGENT_TASK_HUB"
KEY_ENV = "DURABLEAGENT_FUNCTION_KEY"

DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def dev_storage_connection_string(
    blob_port: int = 10000, queue_port: int = 10001, table_port: int = 10002
) -> str:
    """Azurite's well-known account, spelled out (the table SDK does not understand UseDevelopmentStorage)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{blob_port}/{DEV_ACCOUNT};"
        f"QueueEndpoint=http://127.0.0.1:{queue_port}/{DEV_ACCOUNT};"
        f"TableEndpoint=http://127.0.0.1:{table_port}/{DEV_ACCOUNT};"
    )


def _read_json(path: Path) -> dict[str, Any]:
    """Read a JSON settings file; a missing file is an empty one, a broken one is an error worth showing."""
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def apply_local_settings(app_dir: Path) -> dict[str, str]:
    """Copy local.settings.json `Values` into os.environ, like `func start`.

    Variables already present in the environment win (so a test or a shell can override a setting),
    which matches Core Tools' behaviour. Returns the values that were applied.
    """
    values = _read_json(app_dir / "local.settings.json").get("Values") or {}
    applied: dict[str, str] = {}
    for name, value in values.items():
        if name in os.environ or value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        os.environ[name] = text
        applied[name] = text
    return applied


@dataclass(frozen=True)
class HostConfig:
    """What host.json (and its env overrides) tell the host."""

    route_prefix: str = DEFAULT_ROUTE_PREFIX
    hub_name: str = DEFAULT_HUB_NAME

    @classmethod
    def load(cls, app_dir: Path) -> HostConfig:
        """Read host.json; `DURABLEAGENT_TASK_HUB` overrides the hub so tests can isolate task hubs."""
        data = _read_json(app_dir / "host.json")
        extensions = data.get("extensions") or {}
        http = extensions.get("http") or {}
        prefix = http.get("routePrefix", DEFAULT_ROUTE_PREFIX)
        prefix = DEFAULT_ROUTE_PREFIX if prefix is None else str(prefix).strip("/")
        hub = (extensions.get("durableTask") or {}).get("hubName") or DEFAULT_HUB_NAME
        hub = _expand_setting(str(hub))
        hub = os.environ.get(HUB_ENV) or hub
        return cls(route_prefix=prefix, hub_name=hub)


def _expand_setting(value: str) -> str:
    """host.json may reference app settings as `%NAME%`."""
    return re.sub(r"%([^%]+)%", lambda m: os.environ.get(m.group(1), m.group(0)), value)


def resolve_storage(explicit: str | None) -> str:
    """Pick the storage connection string: `--storage`, else AzureWebJobsStorage, else Azurite defaults."""
    conn = explicit or os.environ.get("AzureWebJobsStorage") or "UseDevelopmentStorage=true"
    if conn.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return dev_storage_connection_string()
    return conn
