"""App settings: local.settings.json, host.json and the storage connection string.

Kept apart from the server so the loader and the tests can resolve settings without starting anything.
A broken file or connection string raises `SettingsError` (an `AppLoadError`, so the host reports it in
one line) naming the file or setting and what is wrong with it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.utils import parse_connection_string

from harness.azurite import connection_string

from .errors import AppLoadError

log = logging.getLogger(__name__)

DEFAULT_ROUTE_PREFIX = "api"
DEFAULT_HUB_NAME = "TestHubName"
DEFAULT_CONCURRENCY = 10 * (os.cpu_count() or 1)
HUB_ENV = "DURABLEAGENT_TASK_HUB"
DEFAULT_FUNCTION_TIMEOUT = 30 * 60.0
"""functionTimeout when host.json has none: 30 minutes, the default of Azure's Flex Consumption,
Premium and Dedicated plans (the Consumption plan's is 5 minutes), which also suits local development."""
FUNCTION_TIMEOUT_ENV = "AzureFunctionsJobHost__functionTimeout"  # Azure's app-setting override
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,7}))?$")
KEY_ENV = "DURABLEAGENT_FUNCTION_KEY"


class SettingsError(AppLoadError, ValueError):
    """local.settings.json, host.json or the storage connection string is unusable."""


def dev_storage_connection_string(
    blob_port: int = 10000, queue_port: int = 10001, table_port: int = 10002
) -> str:
    """Azurite's well-known account on its default ports, spelled out (the table SDK does not understand
    UseDevelopmentStorage)."""
    return connection_string(blob_port, queue_port, table_port)


def _read_json(path: Path) -> dict[str, Any]:
    """Read a JSON settings file; a missing file is an empty one, a broken one is an error worth showing."""
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: expected a JSON object, not {_json_type(data)}")
    return data


def _object(value: Any, where: str, what: str) -> dict[str, Any]:
    """`value` when it is a JSON object (None counts as an empty one), else a SettingsError."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: {what} must be a JSON object, not {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    """JSON's name for the type of a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def apply_local_settings(app_dir: Path) -> dict[str, str]:
    """Copy local.settings.json `Values` into os.environ, like `func start`.

    Variables already present in the environment win (so a test or a shell can override a setting),
    which matches Core Tools' behaviour. Returns the values that were applied.
    """
    settings = local_settings(app_dir)
    # Checked first and applied together, so a bad entry leaves the environment untouched.
    applied = {name: text for name, text in settings.items() if name not in os.environ}
    os.environ.update(applied)
    return applied


def local_settings(app_dir: Path) -> dict[str, str]:
    """local.settings.json `Values` as environment variables would hold them ({} without the file);
    SettingsError naming the file when it or an entry is unusable."""
    path = app_dir / "local.settings.json"
    values = _object(_read_json(path).get("Values"), f"{path}", '"Values"')
    settings: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        if not name or "=" in name or "\0" in name or "\0" in text:
            raise SettingsError(
                f'{path}: "Values" entry {name!r} cannot be an environment variable '
                "(names must be non-empty without '=', and neither may contain NUL characters)"
            )
        settings[name] = text
    return settings


@dataclass(frozen=True)
class HostConfig:
    """What host.json (and its env overrides) tell the host."""

    route_prefix: str = DEFAULT_ROUTE_PREFIX
    hub_name: str = DEFAULT_HUB_NAME
    # extensions.durableTask: the Durable extension defaults both to 10 per core.
    max_activities: int = DEFAULT_CONCURRENCY
    max_orchestrators: int = DEFAULT_CONCURRENCY
    # extensions.queues, with the Functions host's defaults.
    max_dequeue: int = 5
    queue_batch: int = 16
    queue_encoding: str = "base64"
    # functionTimeout in seconds; None: unbounded ("-1").
    function_timeout: float | None = DEFAULT_FUNCTION_TIMEOUT

    @classmethod
    def load(cls, app_dir: Path) -> HostConfig:
        """Read host.json; `DURABLEAGENT_TASK_HUB` overrides the hub so tests can isolate task hubs."""
        path = app_dir / "host.json"
        where = f"{path}"
        document = _read_json(path)
        extensions = _object(document.get("extensions"), where, '"extensions"')
        timeout: float | None = DEFAULT_FUNCTION_TIMEOUT
        if FUNCTION_TIMEOUT_ENV in os.environ:
            timeout = parse_timespan(os.environ[FUNCTION_TIMEOUT_ENV], f"app setting {FUNCTION_TIMEOUT_ENV}")
        elif document.get("functionTimeout") is not None:
            text = _string(document["functionTimeout"], where, '"functionTimeout"')
            timeout = parse_timespan(text or "", f'{where}: "functionTimeout"')
        http = _object(extensions.get("http"), where, '"extensions.http"')
        durable = _object(extensions.get("durableTask"), where, '"extensions.durableTask"')
        queues = _object(extensions.get("queues"), where, '"extensions.queues"')
        prefix = _string(http.get("routePrefix"), where, '"extensions.http.routePrefix"')
        prefix = DEFAULT_ROUTE_PREFIX if prefix is None else prefix.strip("/")
        hub = _string(durable.get("hubName"), where, '"extensions.durableTask.hubName"') or DEFAULT_HUB_NAME
        hub = os.environ.get(HUB_ENV) or expand_setting(hub)
        limits = [
            _positive(durable.get(key), where, f'"extensions.durableTask.{key}"')
            for key in ("maxConcurrentActivityFunctions", "maxConcurrentOrchestratorFunctions")
        ]
        dequeue, batch = (
            _positive(queues.get(key), where, f'"extensions.queues.{key}"')
            for key in ("maxDequeueCount", "batchSize")
        )
        if batch is not None and batch > 32:
            raise SettingsError(f'{where}: "extensions.queues.batchSize" must be at most 32, not {batch}')
        encoding = (
            _string(queues.get("messageEncoding"), where, '"extensions.queues.messageEncoding"') or "base64"
        )
        if encoding.lower() not in ("base64", "none"):
            raise SettingsError(
                f'{where}: "extensions.queues.messageEncoding" must be "base64" or "none", not {encoding!r}'
            )
        return cls(
            route_prefix=prefix,
            hub_name=hub,
            max_activities=limits[0] or DEFAULT_CONCURRENCY,
            max_orchestrators=limits[1] or DEFAULT_CONCURRENCY,
            max_dequeue=dequeue or cls.max_dequeue,
            queue_batch=batch or cls.queue_batch,
            queue_encoding=encoding.lower(),
            function_timeout=timeout,
        )


def _string(value: Any, where: str, what: str) -> str | None:
    """`value` when it is a string (None when absent or null), else a SettingsError."""
    if value is not None and not isinstance(value, str):
        raise SettingsError(f"{where}: {what} must be a string, not {_json_type(value)}")
    return value


def parse_timespan(text: str, what: str) -> float | None:
    """functionTimeout's TimeSpan (`hh:mm:ss`, `d.hh:mm:ss`, optional fraction) in seconds; "-1" is
    unbounded (None). Anything else, or zero, is a SettingsError naming `what`."""
    value = text.strip()
    if value == "-1":
        return None
    match = _TIMESPAN.match(value)
    if match:
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups()[:4])
        fraction = float(f"0.{match.group(5)}") if match.group(5) else 0.0
        if hours < 24 and minutes < 60 and seconds < 60:
            total = days * 86400 + hours * 3600 + minutes * 60 + seconds + fraction
            if total > 0:
                return total
    raise SettingsError(
        f'{what} must be a positive TimeSpan "hh:mm:ss" or "d.hh:mm:ss", or "-1" for no limit, not {text!r}'
    )


def _positive(value: Any, where: str, what: str) -> int | None:
    """A positive integer setting (None when absent), else a SettingsError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SettingsError(f"{where}: {what} must be a positive integer, not {value!r}")
    return value


def expand_setting(value: str) -> str:
    """host.json may reference app settings as `%NAME%`."""
    return re.sub(r"%([^%]+)%", lambda m: os.environ.get(m.group(1), m.group(0)), value)


def resolve_storage(explicit: str | None) -> str:
    """Pick the storage connection string: `--storage`, else AzureWebJobsStorage, else Azurite defaults.

    A string that is not `NAME=VALUE;...` pairs raises SettingsError naming where it came from (the
    storage SDKs would only say "blank or malformed", with a traceback).
    """
    source = "--storage" if explicit else "AzureWebJobsStorage (environment or local.settings.json)"
    conn = explicit or os.environ.get("AzureWebJobsStorage") or "UseDevelopmentStorage=true"
    if conn.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return dev_storage_connection_string()
    try:
        parse_connection_string(conn)
    except ValueError:
        raise SettingsError(
            f"storage connection string from {source} is malformed: expected NAME=VALUE pairs separated "
            "by ';', e.g. DefaultEndpointsProtocol=http;AccountName=...;AccountKey=...;TableEndpoint=..."
        ) from None
    return conn


def export_storage(explicit: str | None) -> tuple[str, dict[str, str]]:
    """Resolve the storage the host uses and put it in ``AzureWebJobsStorage`` for the app, like the
    Functions host hands it to its workers; returns it and what was set in the environment.

    Done before the app is imported: an app may read the setting at import (to build a client), and
    a run without local.settings.json has no other source for it. A value the user set is kept (an
    explicit ``--storage`` then only changes what the host itself uses); the development-storage
    shortcut is replaced by the account it stands for, which the SDKs cannot parse.
    """
    storage = resolve_storage(explicit)
    current = os.environ.get("AzureWebJobsStorage", "")
    if current and not current.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return storage, {}
    os.environ["AzureWebJobsStorage"] = storage
    return storage, {"AzureWebJobsStorage": storage}
