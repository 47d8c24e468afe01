"""Bringing deployed sessions and orchestration instances home: the export file, and importing it.

An export (`{"format": "durableagent-export", "version": 1, "instances": [...], "sessions": [...]}`)
holds, per orchestration instance, its status as the Durable HTTP API serves it (input, output,
custom status, `historyEvents`) and, when read from the task hub's tables, its raw history (exact
task ids and episode times: what `replay-check` replays best); and per agent session, its stored
state (the session entity's state, as the entity API serves it). An instance's export brings the
sessions of the agents it called (its entity calls to `dafx-*` entities).

Sources: a running app through its HTTP API (`--url/--key`, or the app's local stack), or the task
hub's tables directly (`--storage/--hub`: a deployed app's hub in the Azure Storage provider's layout,
read by `harness/azure_task_hub.py`, or the local host's). Importing writes instances into
a task hub's tables (the local host's layout: `status`, `instances`, the TUI and `replay-check`
see them) and seeds sessions through the app's own entity API (the session's `seed` operation, the
one `fork` uses, which never overwrites a conversation): `chat`, `show` and `fork` then work on them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Coroutine, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from durableagent.replay import events as ev
from durableagent.replay.recorded import EXPORT_FORMAT, BadHistory, run_from
from harness.answers import ClientError, raise_for, transport_error
from harness.client import DURABLE_PREFIX, entity_name

VERSION = 1
T = TypeVar("T")
SESSION_PREFIX = "dafx-"
SEED_WAIT = 30.0  # seconds an import waits for a seeded session to show its turns


def new_bundle(source: str) -> dict[str, Any]:
    """An empty export."""
    return {
        "format": EXPORT_FORMAT,
        "version": VERSION,
        "exportedAt": datetime.now(UTC).isoformat(),
        "source": source,
        "instances": [],
        "sessions": [],
    }


def agent_sessions(instance: dict[str, Any]) -> list[tuple[str, str]]:
    """(agent, session id) of every agent session an instance's history called or signalled."""
    found: list[tuple[str, str]] = []
    targets = [e.get("InstanceId") for e in instance.get("historyEvents") or [] if isinstance(e, dict)]
    targets += [
        e.get("InstanceId")
        for e in instance.get("history") or []
        if isinstance(e, dict) and e.get("EventType") == ev.EVENT_SENT
    ]
    for target in targets:
        if isinstance(target, str) and target.count("@") == 2:
            _, name, key = target.split("@")
            if name.startswith(SESSION_PREFIX) and (name[len(SESSION_PREFIX) :], key) not in found:
                found.append((name[len(SESSION_PREFIX) :], key))
    return found


# -- export over HTTP -------------------------------------------------------------------------------
def export_over_http(
    url: str, key: str | None, instance_ids: Iterable[str], sessions: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    """An export read through the app's Durable HTTP API and routes; `ClientError` when it fails."""
    bundle = new_bundle(url)
    wanted = list(sessions)
    asked = set(wanted)
    headers = {"x-functions-key": key} if key else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30.0) as http:
        for iid in instance_ids:
            status = _get(http, url, f"{DURABLE_PREFIX}/instances/{quote(iid, safe='')}", _SHOW)
            if status is None:
                raise ClientError(f"no orchestration instance {iid!r} at {url}")
            bundle["instances"].append(status)
            wanted += [s for s in agent_sessions(status) if s not in wanted]
        for agent, session_id in wanted:
            state = _get(http, url, _entity_path(agent, session_id), {})
            if state is None and (agent, session_id) in asked:
                raise ClientError(f"no session {session_id!r} of agent {agent!r} at {url}")
            _add_session(bundle, agent, session_id, state)
    return bundle


def _add_session(bundle: dict[str, Any], agent: str, session_id: str, state: Any) -> None:
    """A session into the export; one an instance called that no longer exists (deleted, expired,
    or in another task hub) is listed under `missingSessions` instead."""
    if state is None:
        bundle.setdefault("missingSessions", []).append({"agent": agent, "sessionId": session_id})
    else:
        bundle["sessions"].append({"agent": agent, "sessionId": session_id, "state": state})


_SHOW = {"showHistory": "true", "showHistoryOutput": "true", "showInput": "true"}


def _get(http: httpx.Client, url: str, path: str, params: dict[str, str]) -> Any:
    try:
        response = http.get(path, params=params)
    except httpx.HTTPError as exc:
        raise transport_error(url, exc) from None
    if response.status_code == 404:
        return None
    if response.status_code >= 400:
        raise ClientError(f"GET {path} answered {response.status_code}: {response.text[:200]}")
    try:
        return response.json()
    except ValueError:
        raise ClientError(f"GET {path} did not answer JSON") from None


# -- export from the task hub's tables ----------------------------------------------------------
def export_from_storage(
    connection: str, hub: str, instance_ids: Iterable[str], sessions: Iterable[tuple[str, str]]
) -> dict[str, Any]:
    """An export read from a task hub's tables (raw histories included): a deployed app's, in the
    Azure Storage provider's layout (`harness/azure_task_hub.py`), or the local host's; which one
    is told by the tables the hub has (`hub_layout`)."""
    return _on_storage(hub, _export_from_storage(connection, hub, list(instance_ids), list(sessions)))


def _on_storage(hub: str, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` on a task hub's tables; a connection string that is no such thing, or storage that
    does not answer, is a one-line `ClientError`."""
    from azure.core.exceptions import AzureError

    from harness.host.storage.tables import StorageUnavailable

    try:
        return asyncio.run(work)
    except ValueError as exc:
        raise ClientError(f"--storage: {exc}") from None
    except (AzureError, StorageUnavailable) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ClientError(f"task hub {hub!r}: {first}") from None


async def _export_from_storage(
    connection: str, hub: str, instance_ids: list[str], sessions: list[tuple[str, str]]
) -> dict[str, Any]:
    from harness.azure_task_hub import AZURE_STORAGE, AzureStorageHub, hub_layout

    layout = await hub_layout(connection, hub)
    reader: AzureStorageHub | _LocalHub
    reader = AzureStorageHub(connection, hub) if layout == AZURE_STORAGE else _LocalHub(connection, hub)
    bundle = new_bundle(f"storage:{hub}")
    bundle["storageLayout"] = layout
    asked = set(sessions)
    try:
        for iid in instance_ids:
            item = await reader.instance(iid)
            if item is None:
                raise ClientError(f"no orchestration instance {iid!r} in task hub {hub!r}")
            bundle["instances"].append(item)
            sessions += [s for s in agent_sessions(item) if s not in sessions]
        for agent, session_id in sessions:
            state = await reader.entity_state(_entity_id(agent, session_id))
            if state is None and (agent, session_id) in asked:
                raise ClientError(f"no session {session_id!r} of agent {agent!r} in task hub {hub!r}")
            _add_session(bundle, agent, session_id, state)
    finally:
        await reader.close()
    return bundle


def _entity_id(agent: str, session_id: str) -> str:
    """The Durable instance id of an agent's session entity (entity names are lower-cased)."""
    return f"@{entity_name(agent).lower()}@{session_id}"


class _LocalHub:
    """A task hub in the local host's layout (`harness/host/orchestrations/store.py`): raw
    histories as the host stores them, with its bookkeeping (`actionsSeen`, `waits`)."""

    def __init__(self, connection: str, hub: str) -> None:
        from harness.host.entities.store import EntityStore
        from harness.host.orchestrations.store import InstanceStore

        self.instances, self.entities = InstanceStore(connection, hub), EntityStore(connection, hub)

    async def instance(self, iid: str) -> dict[str, Any] | None:
        from harness.host.orchestrations.api import status_json
        from harness.host.orchestrations.history import public_history

        record = await self.instances.read(iid)
        if record is None:
            return None
        item = status_json(record)
        item["historyEvents"] = public_history(record.history, True, True)
        item["history"] = record.history
        item["inputText"] = record.input
        item["executionId"] = record.execution_id
        item["actionsSeen"] = record.actions_seen
        item["waits"] = record.waits
        return item

    async def entity_state(self, entity_id: str) -> Any | None:
        found = await self.entities.read(entity_id)
        return json.loads(found.state) if found and found.exists and found.state is not None else None

    async def close(self) -> None:
        await self.instances.close()
        await self.entities.close()


# -- reading an export -------------------------------------------------------------------------------
def check_bundle(data: Any, source: str) -> dict[str, Any]:
    """The export in `data`, checked enough to import it; `BadHistory` naming what is wrong."""
    from harness.host.orchestrations.store import invalid_instance_id

    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise BadHistory(f'{source}: not a durableagent export (no "format": "{EXPORT_FORMAT}")')
    if data.get("version") != VERSION:
        raise BadHistory(f"{source}: export version {data.get('version')!r}; this harness reads {VERSION}")
    for part in ("instances", "sessions"):
        if not isinstance(data.get(part, []), list):
            raise BadHistory(f"{source}: `{part}` must be a list")
    for n, session in enumerate(data.get("sessions", [])):
        if not (
            isinstance(session, dict)
            and isinstance(session.get("agent"), str)
            and isinstance(session.get("sessionId"), str)
            and isinstance(session.get("state"), dict)
        ):
            raise BadHistory(f"{source}: session {n} must be {{agent, sessionId, state}}")
    for n, item in enumerate(data.get("instances", [])):
        history = item.get("history") if isinstance(item, dict) else None
        if not (isinstance(history, list) and history and isinstance(history[0], dict)):
            raise BadHistory(
                f"{source}: instance {n} has no raw `history` (export it with --storage to import it)"
            )
        run = run_from(item, f"{source} instance {n}")  # the events the host will replay are readable
        if not run.exact:
            raise BadHistory(f"{source}: instance {n}'s `history` is not a raw history (integer EventTypes)")
        problem = invalid_instance_id(str(item["instanceId"])) if item.get("instanceId") else None
        if problem:
            raise BadHistory(f"{source}: instance {n}: {problem}")
    return data


# -- importing ---------------------------------------------------------------------------------------
def import_instances(
    connection: str, hub: str, instances: list[dict[str, Any]], replace: bool, new_ids: bool
) -> list[str]:
    """Write the exported instances into a task hub; the ids they got. An id that exists is refused
    (`ClientError`) unless `replace` (purged first) or `new_ids` (a fresh id)."""
    return _on_storage(hub, _import_instances(connection, hub, instances, replace, new_ids))


async def _import_instances(
    connection: str, hub: str, instances: list[dict[str, Any]], replace: bool, new_ids: bool
) -> list[str]:
    from harness.host.orchestrations.store import InstanceRecord, InstanceStore

    store = InstanceStore(connection, hub)
    ids: list[str] = []
    try:
        for item in instances:
            iid = str(item.get("instanceId") or uuid.uuid4().hex)
            existing = await store.read(iid)
            if existing is not None and new_ids:
                iid = f"{iid}-imported-{uuid.uuid4().hex[:8]}"
            elif existing is not None and replace:
                await store.purge(iid)
            elif existing is not None:
                raise ClientError(
                    f"instance {iid!r} already exists in task hub {hub!r}: import with --replace "
                    "(it is deleted first) or --new-id"
                )
            status = str(item.get("runtimeStatus") or "Running")
            record = InstanceRecord(
                instance_id=iid,
                name=str(item.get("name") or ""),
                status=status,
                execution_id=str(item.get("executionId") or uuid.uuid4().hex),
                input=item.get("inputText") if "inputText" in item else _text(item.get("input")),
                output=_text(item.get("output")),
                custom_status=_text(item.get("customStatus")),
                history=list(item["history"]),
                created=_time(item.get("createdTime")),
            )
            seen = item.get("actionsSeen")
            record.actions_seen = seen if isinstance(seen, int) else _actions_seen(record.history)
            waits = item.get("waits")
            record.waits = waits if isinstance(waits, dict) else {}
            await store.write(record, None, create=True)
            ids.append(iid)
    finally:
        await store.close()
    return ids


def _actions_seen(history: list[dict[str, Any]]) -> int:
    """The SDK actions a history accounts for, when the export does not say (waits for events leave
    no event: an instance that waits on may then see one again)."""
    return sum(
        1
        for e in history
        if e.get("EventType") in (ev.TASK_SCHEDULED, ev.TIMER_CREATED, ev.SUB_CREATED, ev.EVENT_SENT)
        and not (
            e.get("RetryOf") is not None
            and (e.get("EventType") == ev.TIMER_CREATED or (e.get("Attempt") or 1) > 1)
        )
    )


def _text(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _time(value: Any) -> datetime | None:
    try:
        return ev.parse_time(value) if isinstance(value, str) else None
    except ValueError:
        return None


def import_sessions(
    url: str, key: str | None, sessions: list[dict[str, Any]], replace: bool, new_ids: bool
) -> list[tuple[str, str]]:
    """Seed each exported session into the app at `url` (the session entity's `seed` operation, the
    one `fork` uses); (agent, session id) of each. A session that exists is refused unless `replace`
    (reset first: signals are applied in order, so the seed lands on the reset session) or `new_ids`
    (a fresh id)."""
    from durableagent.state import AgentState, HistoryChunk

    done: list[tuple[str, str]] = []
    headers = {"x-functions-key": key} if key else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=30.0) as http:
        for session in sessions:
            agent, session_id = session["agent"], session["sessionId"]
            try:
                state = AgentState.from_dict(session["state"])
            except ValueError as exc:
                raise ClientError(
                    f"session {session_id!r} of agent {agent!r}: unreadable state ({exc})"
                ) from None
            path = _entity_path(agent, session_id)
            if _get(http, url, path, {}) is not None:
                if new_ids:
                    session_id = f"{session_id}-imported-{uuid.uuid4().hex[:8]}"
                    path = _entity_path(agent, session_id)
                elif replace:
                    _post(http, url, path, "reset", None)
                else:
                    raise ClientError(
                        f"session {session_id!r} of agent {agent!r} already exists at {url}: import with "
                        "--replace (it is reset first) or --new-id"
                    )
            turns = state.turn_count
            if turns:
                fork_id = f"import-{uuid.uuid4().hex}"
                seed = {
                    "fork_id": fork_id,
                    "source": session["sessionId"],
                    "turn": turns,
                    "history": HistoryChunk.pack(state.first_turns(turns)).to_dict(),
                }
                _post(http, url, path, "seed", seed)
                _wait_for_seed(http, url, path, fork_id, f"session {session_id!r} of agent {agent!r}")
            done.append((agent, session_id))
    return done


def _entity_path(agent: str, session_id: str) -> str:
    return f"{DURABLE_PREFIX}/entities/{quote(entity_name(agent), safe='')}/{quote(session_id, safe='')}"


def _post(http: httpx.Client, url: str, path: str, operation: str, value: Any) -> None:
    # As the Durable client sends a signal's input: the JSON text of the value, as a JSON string (the
    # extension decodes the body once and hands the entity that text).
    body = None if value is None else json.dumps(value)
    try:
        response = http.post(path, params={"op": operation}, json=body)
    except httpx.HTTPError as exc:
        raise transport_error(url, exc) from None
    raise_for(response)


def _wait_for_seed(http: httpx.Client, url: str, path: str, fork_id: str, what: str) -> None:
    """Wait (bounded) until the stored state records the seed (a refused seed records nothing)."""
    deadline = time.monotonic() + SEED_WAIT
    while time.monotonic() < deadline:
        state = _get(http, url, path, {})
        if isinstance(state, dict) and (state.get("forked_from") or {}).get("fork_id") == fork_id:
            return
        time.sleep(0.1)
    raise ClientError(f"{what} did not take the import within {SEED_WAIT:g} s")
