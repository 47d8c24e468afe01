"""A repeatable reliability run: kills, storage outages, hostile input and concurrency, with verdicts.

Why this exists: the reliability promises in docs/reliability.md (an answered turn is stored exactly once, a
retry with the same ``Idempotency-Key`` never adds a turn, a SIGKILL loses no accepted work, hostile
input never gets a 500 or a non-JSON error) were first checked by a one-off adversarial session
(issue 14). This module turns that session into a bounded run anyone can repeat (``tox -e chaos`` or
``python -m harness chaos``): it starts its own Azurite and local hosts (real processes, real HTTP,
loopback only), runs each probe for a fixed count and time, prints what was tried, the counts and
whether each claim held, and exits 1 if any claim did not. A failed row is a finding, never hidden.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import json
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.table import Table

from .azurite import Azurite
from .bench import machine
from .processes import ManagedProcess
from .stack import DEFAULT_APP_DIR, FunctionHost

AGENT = "WeatherAgent"
ENTITY = f"dafx-{AGENT}"
DURABLE_API = "/runtime/webhooks/durabletask"
ORCHESTRATION_APP = DEFAULT_APP_DIR.parent / "orchestration_basics"
RUN_TIMEOUT = 3.0
"""``DURABLEAGENT_RUN_TIMEOUT`` of the chaos hosts: short, so outages answer 503/202 quickly."""
ANSWERED = (200, 202)
CHAOS_SCRIPT = {"default": {"text": "ok: {user}", "delay": 0.03}}
"""The fake model's script: each turn takes a little while, so a kill often lands mid-turn."""


# -- results --------------------------------------------------------------------------------------


@dataclass
class Check:
    """One row of a probe's table: what was tried, the counts, the claim, and whether it held."""

    tried: str
    counts: str
    claim: str
    held: bool
    detail: str = ""


@dataclass
class ProbeResult:
    """A probe's rows, plus the evidence behind any row that failed."""

    title: str
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, tried: str, counts: str, claim: str, held: bool, detail: str = "") -> Check:
        row = Check(tried, counts, claim, held, detail)
        self.checks.append(row)
        return row

    def note(self, tried: str, counts: str) -> None:
        """A row that only reports what was done (no claim of its own)."""
        self.checks.append(Check(tried, counts, "", True))

    @property
    def held(self) -> bool:
        return all(c.held for c in self.checks)

    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.held]


def status_counts(statuses: Iterable[int | str | None]) -> str:
    """``"200 x41, 202 x3, no answer x2"`` (``None`` = the connection failed)."""
    counts = Counter("no answer" if s is None else str(s) for s in statuses)
    if not counts:
        return "none"
    return ", ".join(f"{key} x{n}" for key, n in sorted(counts.items()))


def _sample(items: Iterable[str], limit: int = 5) -> str:
    listed = list(items)
    more = f" (+{len(listed) - limit} more)" if len(listed) > limit else ""
    return "; ".join(listed[:limit]) + more


# -- the session histories ------------------------------------------------------------------------


def judge_history(history: list[dict[str, Any]], must: set[str], may: set[str]) -> list[str]:
    """Problems with one session's stored history, given the turns it must and may hold.

    ``must``: correlation ids whose request was answered 200/202 (stored exactly once); ``may``: ids
    sent without a definite answer (stored at most once). Also: each user entry is directly followed
    by its own reply (turns never interleave), and nothing appears that was never sent.
    """
    problems: list[str] = []
    users = [e for e in history if e.get("role") == "user"]
    seen = Counter(e.get("correlation_id") for e in users)
    for cid, n in sorted(seen.items(), key=lambda item: str(item[0])):
        if n > 1:
            problems.append(f"turn {cid} stored {n} times")
        if cid not in must and cid not in may:
            problems.append(f"turn {cid} was never sent")
    for cid in sorted(must - set(seen)):
        problems.append(f"answered turn {cid} is missing")
    if len(history) % 2:
        problems.append(f"odd number of entries ({len(history)})")
    for user, reply in zip(history[::2], history[1::2], strict=False):
        if user.get("role") != "user" or reply.get("correlation_id") != user.get("correlation_id"):
            problems.append(f"turn {user.get('correlation_id')} is not followed by its own reply")
            break
    return problems


@dataclass
class Ledger:
    """Every turn the probes sent: session, and the answers each attempt got."""

    turns: dict[str, tuple[str, list[int | None]]] = field(default_factory=dict)

    def record(self, cid: str, session: str, status: int | None) -> None:
        self.turns.setdefault(cid, (session, []))[1].append(status)

    def answered(self, cid: str) -> bool:
        return any(s in ANSWERED for s in self.turns[cid][1])

    def unanswered(self) -> list[str]:
        return [cid for cid in self.turns if not self.answered(cid)]

    def sessions(self) -> dict[str, tuple[set[str], set[str]]]:
        """session -> (must, may) correlation ids."""
        out: dict[str, tuple[set[str], set[str]]] = {}
        for cid, (session, _) in self.turns.items():
            must, may = out.setdefault(session, (set(), set()))
            (must if self.answered(cid) else may).add(cid)
        return out


async def verify_ledger(client: httpx.AsyncClient, ledger: Ledger, timeout: float = 30.0) -> list[str]:
    """Wait (bounded) until every answered turn is stored, then judge every session's history.

    Accepted turns (202, signals) are applied after the answer, so the wait is part of the claim:
    a turn that is still missing at the deadline is reported as missing.
    """
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    for session, (must, may) in sorted(ledger.sessions().items()):
        history: list[dict[str, Any]] = []
        while True:
            history = await _history(client, session)
            stored = {e.get("correlation_id") for e in history if e.get("role") == "user"}
            if must <= stored or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        problems += [f"{session}: {p}" for p in judge_history(history, must, may)]
    return problems


async def _history(client: httpx.AsyncClient, session: str) -> list[dict[str, Any]]:
    try:
        response = await client.get(f"/api/agents/{AGENT}/{session}")
    except httpx.TransportError:
        return []
    if response.status_code != 200:
        return []
    return list(response.json().get("conversation_history") or [])


async def post_turn(
    client: httpx.AsyncClient, session: str, message: str, key: str, timeout: float = 30.0
) -> tuple[int | None, float]:
    """One ``POST /run`` with an ``Idempotency-Key``; (status or None if the connection failed, seconds)."""
    began = time.monotonic()
    try:
        response = await client.post(
            f"/api/agents/{AGENT}/run",
            json={"message": message, "sessionId": session},
            headers={"Idempotency-Key": key},
            timeout=timeout,
        )
    except httpx.TransportError:
        return None, time.monotonic() - began
    return response.status_code, time.monotonic() - began


async def signal_turn(client: httpx.AsyncClient, session: str, message: str, cid: str) -> int | None:
    """Queue a turn straight through the entity API, as the durable client does (202 = persisted)."""
    body = json.dumps({"message": message, "correlation_id": cid})
    try:
        response = await client.post(f"{DURABLE_API}/entities/{ENTITY}/{session}?op=run_agent", json=body)
    except httpx.TransportError:
        return None
    return response.status_code


async def retry_unanswered(
    client: httpx.AsyncClient, ledger: Ledger, cids: Iterable[str], attempts: int = 5, parallel: int = 8
) -> None:
    """Retry turns without a 200/202 with the same key, as docs/http-api.md tells clients to."""
    gate = asyncio.Semaphore(parallel)

    async def retry(cid: str) -> None:
        session = ledger.turns[cid][0]
        async with gate:
            for attempt in range(attempts):
                status, _ = await post_turn(client, session, f"turn {cid}", cid)
                ledger.record(cid, session, status)
                if status in ANSWERED or status == 500:
                    return
                await asyncio.sleep(0.2 * (attempt + 1))

    await asyncio.gather(*(retry(cid) for cid in list(cids)))


async def _after(delay: float, make: Callable[[], Awaitable[Any]]) -> Any:
    await asyncio.sleep(delay)
    return await make()


def _key(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


# -- probe 1: SIGKILL of the host during agent turns ----------------------------------------------


async def probe_kills(
    url: str,
    host: FunctionHost,
    *,
    rounds: int = 10,
    turns: int = 16,
    signals: int = 4,
    sessions: int = 3,
    window: float = 1.0,
    seed: int = 1,
) -> ProbeResult:
    """Rounds of concurrent turns and entity signals, a SIGKILL at a random moment, a restart,
    retries of unanswered turns with the same key; then every session's history is judged."""
    rng = random.Random(seed)
    result = ProbeResult(f"Kills: {rounds} x SIGKILL of the host during agent turns")
    ledger, signal_ledger = Ledger(), Ledger()
    first: list[int | None] = []
    restarts: list[float] = []
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        for round_no in range(rounds):
            keys = [_key(f"kill{round_no}s{i}") for i in range(sessions)]

            async def turn(session: str) -> None:
                cid = _key("turn")
                status, _ = await post_turn(client, session, f"turn {cid}", cid)
                ledger.record(cid, session, status)
                first.append(status)

            async def signal(session: str) -> None:
                cid = _key("signal")
                signal_ledger.record(cid, session, await signal_turn(client, session, f"turn {cid}", cid))

            async def crash() -> None:
                restarts.append(await asyncio.to_thread(host.restart, kill=True))

            work = [_after(rng.uniform(0, window), lambda s=rng.choice(keys): turn(s)) for _ in range(turns)]
            work += [
                _after(rng.uniform(0, window), lambda s=rng.choice(keys): signal(s)) for _ in range(signals)
            ]
            work.append(_after(rng.uniform(0.4 * window, window), crash))
            await asyncio.gather(*work)
            await retry_unanswered(client, ledger, ledger.unanswered())
        combined = Ledger(dict(ledger.turns))  # signals share the sessions: judge them with the turns
        for cid, entry in signal_ledger.turns.items():
            combined.turns[cid] = entry
        problems = await verify_ledger(client, combined)
    retried = [s[1:] for _, s in ledger.turns.values() if len(s) > 1]
    result.seconds = time.monotonic() - began
    result.note(
        "SIGKILL of the host at a random moment, then restart",
        f"{len(restarts)} kills, restart p50 {statistics.median(restarts or [0]):.2f} s",
    )
    turns_sent = len(first)
    result.check(
        "POST /run, each with its own Idempotency-Key (first attempt)",
        f"{turns_sent} turns: {status_counts(first)}",
        "no 500",
        500 not in first,
    )
    result.check(
        "retry of each unanswered turn with the same key, after the restart",
        f"{len(retried)} retried: {status_counts(s for r in retried for s in r)}",
        "each retry answered 200/202",
        all(any(s in ANSWERED for s in r) for r in retried),
    )
    signal_statuses = [s[0] for _, s in signal_ledger.turns.values()]
    result.note("signals straight to the entity API (run_agent)", status_counts(signal_statuses))
    stored = sum(len(must) for must, _ in combined.sessions().values())
    result.check(
        "every session's history after the last restart",
        f"{len(combined.sessions())} sessions, {stored} answered turns and signals",
        "each answered turn stored once, none twice, none interleaved",
        not problems,
        _sample(problems),
    )
    return result


# -- probe 2: SIGKILL of the host during orchestrations -------------------------------------------


def expected_output(name: str, value: int) -> int:
    """What the orchestration_basics sample returns for ``value`` (its inputs default when falsy)."""
    if name == "one_activity":
        return value * value
    if name == "chain":
        return value**8
    return sum(i * i for i in range(value))


async def probe_orchestration_kills(
    url: str,
    host: FunctionHost,
    *,
    rounds: int = 3,
    instances: int = 30,
    window: float = 0.5,
    seed: int = 2,
    timeout: float = 60.0,
) -> ProbeResult:
    """Many orchestrations started at once, a SIGKILL while they run, a restart; each must complete
    with the output it would have had without the crash."""
    rng = random.Random(seed)
    result = ProbeResult(f"Orchestration kills: {rounds} x SIGKILL of the host during orchestrations")
    started: dict[str, tuple[str, int]] = {}
    unanswered: dict[str, tuple[str, int]] = {}
    unfinished_at_kill: list[int] = []
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def start(iid: str, name: str, value: int) -> None:
            try:
                response = await client.post(f"{DURABLE_API}/orchestrators/{name}/{iid}", json=value)
            except httpx.TransportError:
                unanswered[iid] = (name, value)
                return
            (started if response.status_code == 202 else unanswered)[iid] = (name, value)

        async def crash() -> None:
            running = 0
            with contextlib.suppress(httpx.HTTPError, ValueError):
                listed = await client.get(
                    f"{DURABLE_API}/instances", params={"runtimeStatus": "Pending,Running"}
                )
                running = len(listed.json())
            unfinished_at_kill.append(running)
            await asyncio.to_thread(host.restart, kill=True)

        for round_no in range(rounds):
            work: list[Awaitable[Any]] = []
            for i in range(instances):
                name = rng.choice(["one_activity", "chain", "fan_out_fan_in", "fan_out_fan_in"])
                value = {"one_activity": rng.randint(1, 99), "chain": 2}.get(name, rng.randint(1, 60))
                iid = f"chaos-{round_no}-{i}-{uuid.uuid4().hex[:8]}"
                work.append(_after(rng.uniform(0, window), lambda a=(iid, name, value): start(*a)))
            work.append(_after(rng.uniform(window / 2, window * 1.5), crash))
            await asyncio.gather(*work)
        finals = await _wait_all(client, [*started, *unanswered], timeout)
    wrong: list[str] = []
    for iid, (name, value) in started.items():
        status = finals.get(iid) or {}
        want = expected_output(name, value)
        if status.get("runtimeStatus") != "Completed" or status.get("output") != want:
            got = f"{status.get('runtimeStatus')} {status.get('output')!r}"
            wrong.append(f"{iid} {name}({value}): {got}, expected Completed {want}")
    ghost: list[str] = []
    for iid, (name, value) in unanswered.items():
        status = finals.get(iid)
        if status is not None and status.get("output") != expected_output(name, value):
            ghost.append(f"{iid} {name}({value}): {status.get('runtimeStatus')} {status.get('output')!r}")
    result.seconds = time.monotonic() - began
    names = Counter(name for name, _ in started.values())
    result.note(
        "SIGKILL of the host while instances run, then restart",
        f"{len(unfinished_at_kill)} kills; Pending/Running at each kill: "
        + ", ".join(map(str, unfinished_at_kill)),
    )
    result.check(
        "instances started (202) through the instance API",
        f"{len(started)}: " + ", ".join(f"{n} x{c}" for n, c in sorted(names.items())),
        "each Completed with the right output",
        not wrong,
        _sample(wrong),
    )
    result.check(
        "starts the kill cut off (no 202)",
        f"{len(unanswered)}, of which created: {sum(1 for i in unanswered if finals.get(i) is not None)}",
        "absent, or Completed right",
        not ghost,
        _sample(ghost),
    )
    return result


async def _wait_all(client: httpx.AsyncClient, ids: list[str], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll each instance until it has finished or the deadline passes; 404 -> absent (not in the map)."""
    deadline = time.monotonic() + timeout
    finals: dict[str, dict[str, Any]] = {}
    for iid in ids:
        while True:
            try:
                response = await client.get(f"{DURABLE_API}/instances/{iid}")
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code == 404:
                break
            if response is not None and response.status_code in (200, 202):
                finals[iid] = response.json()
                if finals[iid].get("runtimeStatus") in ("Completed", "Failed", "Terminated"):
                    break
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    return finals


# -- probe: two writers on one task hub -----------------------------------------------------------

_BANNER_URL = re.compile(r"Durable API: (http://[0-9.]+:\d+)/")


async def _hub_host(
    azurite: Azurite, hub: str, port: int, log_path: Path
) -> tuple[ManagedProcess, str | None]:
    """A host of the orchestration sample on ``hub``; its URL once it serves, None if it exited."""
    args = [sys.executable, "-m", "harness.host", str(ORCHESTRATION_APP), "--port", str(port)]
    process = ManagedProcess(
        [*args, "--storage", azurite.connection_string],
        log_path=log_path,
        name=log_path.stem,
        env={"DURABLEAGENT_TASK_HUB": hub, "PYTHONUNBUFFERED": "1"},
    ).start()
    deadline = time.monotonic() + 60
    while process.is_running() and time.monotonic() < deadline:
        if found := _BANNER_URL.search(log_path.read_text(errors="replace")):
            return process, found.group(1)
        await asyncio.sleep(0.05)
    return process, None


async def probe_two_writers(azurite: Azurite, work: Path) -> ProbeResult:
    """Hosts started on one task hub the ways that once gave it two writers (issue 20): a second
    ``--port 0`` start from the same folder, a start on the first host's busy port, a third start
    after that, and a start after a SIGKILL of the holder. The durable API of every host that came
    up is polled throughout: at no time may two of them serve the hub."""
    result = ProbeResult("Two writers: hosts started on one task hub")
    hub = f"chaoswriters{uuid.uuid4().hex[:8]}"
    live: dict[str, str] = {}  # name -> URL of the hosts that came up
    polls, both = 0, 0
    served = False
    done = asyncio.Event()
    began = time.monotonic()

    async def watch(client: httpx.AsyncClient) -> None:
        nonlocal polls, both
        while not done.is_set():
            serving = 0
            for url in list(live.values()):
                with contextlib.suppress(httpx.TransportError):
                    response = await client.get(f"{url}{DURABLE_API}/instances", params={"top": "1"})
                    serving += response.status_code == 200
            polls += 1
            both += serving > 1
            await asyncio.sleep(0.05)

    processes: list[ManagedProcess] = []

    async def start(name: str, port: int) -> tuple[ManagedProcess, str | None]:
        process, url = await _hub_host(azurite, hub, port, work / f"writers-{name}.log")
        processes.append(process)
        if url is not None:
            live[name] = url
        return process, url

    async with httpx.AsyncClient(timeout=5) as client:
        watcher = asyncio.create_task(watch(client))
        try:
            first, url = await start("first", 0)
            if url is None:
                result.check(
                    "a first host on a new hub", "did not come up", "serves", False, first.log_tail()
                )
                return result
            second, _ = await start("second", 0)
            busy, _ = await start("busy-port", int(url.rsplit(":", 1)[1]))
            third, _ = await start("third", 0)
            first.kill()
            live.pop("first")
            took = time.monotonic()
            _, after = await start("after-kill", 0)
            took = time.monotonic() - took
            if after is not None:
                response = await client.get(f"{after}{DURABLE_API}/instances", params={"top": "1"})
                served = response.status_code == 200
        finally:
            done.set()
            await watcher
            for process in processes:
                process.stop()
    result.seconds = time.monotonic() - began
    codes = {"second": second.returncode, "busy-port": busy.returncode, "third": third.returncode}
    result.check(
        "a second --port 0 start, a start on the first's port, then a third start",
        ", ".join(f"{name}: exit {code}" for name, code in codes.items()),
        "each refused (2: hub in use; 1: port in use)",
        codes == {"second": 2, "busy-port": 1, "third": 2},
    )
    result.check(
        "a start after a SIGKILL of the holder",
        f"serving after {took:.1f} s" if served else "not serving",
        "takes the hub over",
        served,
    )
    result.check(
        "durable API of every host that came up, polled every 50 ms",
        f"{polls} polls, {both} with two hosts serving",
        "never two hosts serving the hub",
        both == 0 and polls > 0,
    )
    return result


# -- probe: hung activities ------------------------------------------------------------------------

_HUNG_APP = """
import threading

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="mark")
def hang(mark: str) -> str:
    with open(mark, "a", encoding="utf-8") as file:
        file.write("running\\n")
    threading.Event().wait(3600)
    return "woke up"


@app.activity_trigger(input_name="value")
def quick(value: int) -> int:
    return value + 1


@app.orchestration_trigger(context_name="context")
def fan_hang(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    yield context.task_all([context.call_activity("hang", spec["mark"]) for _ in range(spec["n"])])
    return "all woke up"


@app.orchestration_trigger(context_name="context")
def one_quick(context: df.DurableOrchestrationContext):
    value = yield context.call_activity("quick", context.get_input())
    return value
"""


async def probe_hung_activities(
    azurite: Azurite, *, slots: int = 8, hung: int = 24, later: int = 5, timeout: float = 30.0
) -> ProbeResult:
    """Sync activities that never return fill every activity slot; terminating their instances must
    free the slots (later work completes), and SIGTERM must stop the host within its grace period
    although their threads still hang. Runs its own host on a throw-away app (functionTimeout 1 h,
    so only termination frees anything)."""
    from harness.host.server import STOP_GRACE  # the host's own grace period

    result = ProbeResult(f"Hung activities: {hung} that never return, {slots} activity slots")
    work = Path(tempfile.mkdtemp(prefix="durableagent-hung-"))
    app = work / "app"
    app.mkdir()
    (app / "function_app.py").write_text(_HUNG_APP)
    durable = {"hubName": "HungHub", "maxConcurrentActivityFunctions": slots}
    (app / "host.json").write_text(
        json.dumps({"version": "2.0", "functionTimeout": "01:00:00", "extensions": {"durableTask": durable}})
    )
    mark = work / "running"
    host = FunctionHost(app, mode="local", storage=azurite.connection_string, log_path=work / "host.log")
    began = time.monotonic()

    async def started_hanging(count: int) -> int:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            seen = len(mark.read_text().splitlines()) if mark.is_file() else 0
            if seen >= count:
                break
            await asyncio.sleep(0.05)
        return seen

    try:
        await asyncio.to_thread(host.start)
        async with httpx.AsyncClient(base_url=host.url, timeout=30) as client:

            async def start(name: str, value: Any) -> str:
                response = await client.post(f"{DURABLE_API}/orchestrators/{name}", json=value)
                response.raise_for_status()
                return str(response.json()["id"])

            per = -(-hung // 3)
            stuck = [await start("fan_hang", {"n": per, "mark": str(mark)}) for _ in range(3)]
            running = await started_hanging(slots)
            for iid in stuck:
                await client.post(f"{DURABLE_API}/instances/{iid}/terminate", params={"reason": "hung"})
            terminated = await _wait_all(client, stuck, timeout)
            result.note(
                f"{len(stuck)} instances fan out {per * 3} hung sync activities, then are terminated",
                f"hanging before terminate: {running}; Terminated: "
                f"{sum(1 for s in terminated.values() if s.get('runtimeStatus') == 'Terminated')}",
            )
            later_ids = [await start("one_quick", i) for i in range(later)]
            finals = await _wait_all(client, later_ids, timeout)
            wrong = []
            for value, iid in enumerate(later_ids):
                final = finals.get(iid) or {}
                if final.get("runtimeStatus") != "Completed" or final.get("output") != value + 1:
                    wrong.append(f"{iid}: {final.get('runtimeStatus')} {final.get('output')!r}")
            result.check(
                "instances started after the termination (one activity each)",
                f"{later}, completed: {later - len(wrong)}",
                f"each Completed within {timeout:.0f} s (terminate freed the slots)",
                not wrong,
                _sample(wrong),
            )
            # Each termination let the next instance's queued hung activities start: count them all.
            before = len(mark.read_text().splitlines())
            await start("fan_hang", {"n": slots, "mark": str(mark)})
            hanging = await started_hanging(before + slots)
        process = host.process
        assert process is not None
        sent = time.monotonic()
        code = await asyncio.to_thread(process.stop, STOP_GRACE + 5)
        took = time.monotonic() - sent
        result.check(
            f"SIGTERM while {hanging} activity threads hang",
            f"exit code {code} after {took:.1f} s",
            f"the host exits (code 0) within its {STOP_GRACE:.0f} s grace period",
            code == 0 and took <= STOP_GRACE + 1,
            "" if code == 0 else f"log: {work / 'host.log'}",
        )
    finally:
        host.stop()
    result.seconds = time.monotonic() - began
    if result.held:
        shutil.rmtree(work, ignore_errors=True)
    return result


# -- probe 3: storage outages ---------------------------------------------------------------------


@contextlib.contextmanager
def frozen(azurite: Azurite) -> Iterator[None]:
    """Azurite stopped with SIGSTOP (it hangs: connections open, nothing answers), then SIGCONT."""
    import psutil

    assert azurite.pid is not None
    root = psutil.Process(azurite.pid)
    processes = [root, *root.children(recursive=True)]
    for process in processes:
        process.suspend()
    try:
        yield
    finally:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.resume()


async def probe_outage(
    url: str,
    azurite: Azurite,
    *,
    hang: float = 4.0,
    down: float = 3.0,
    workers: int = 6,
    sessions: int = 4,
    run_timeout: float = RUN_TIMEOUT,
    seed: int = 3,
) -> ProbeResult:
    """Traffic while Azurite hangs (SIGSTOP) and while it is down (stopped, started again on the same
    ports and data); every answered turn must be stored once, retries must not duplicate, and the
    host must recover without a restart."""
    rng = random.Random(seed)
    result = ProbeResult(f"Storage outage: Azurite hung {hang:.0f} s (SIGSTOP), then down {down:.0f} s")
    ledger = Ledger()
    answers: list[tuple[int | None, float, float]] = []  # (status, sent at, answered at)
    keys = [_key("outage") for _ in range(sessions)]
    stop = asyncio.Event()
    windows: dict[str, tuple[float, float]] = {}
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def worker() -> None:
            while not stop.is_set():
                cid, session, sent = _key("out"), rng.choice(keys), time.monotonic()
                status, _ = await post_turn(client, session, f"turn {cid}", cid)
                ledger.record(cid, session, status)
                answers.append((status, sent, time.monotonic()))
                if status not in ANSWERED:
                    await asyncio.sleep(0.25)  # a client backing off, not a flood

        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        await asyncio.sleep(1.0)
        start = time.monotonic()
        with frozen(azurite):
            await asyncio.sleep(hang)
        windows["hang"] = (start, time.monotonic())
        await asyncio.sleep(2.0)
        start = time.monotonic()
        await asyncio.to_thread(azurite.stop)
        await asyncio.sleep(down)
        await asyncio.to_thread(azurite.start)
        windows["down"] = (start, time.monotonic())
        await asyncio.sleep(3.0)
        stop.set()
        await asyncio.gather(*tasks)
        retried = ledger.unanswered()
        await retry_unanswered(client, ledger, retried)
        problems = await verify_ledger(client, ledger)
    result.seconds = time.monotonic() - began
    slack = run_timeout + 2.0
    labels = (("hang", "Azurite is frozen (SIGSTOP)"), ("down", "Azurite stops, is down, starts"))
    for name, label in labels:
        opened, closed = windows[name]
        during = [(s, end - sent) for s, sent, end in answers if sent < closed and end > opened]
        statuses = [s for s, _ in during]
        slowest = max((t for _, t in during), default=0.0)
        result.check(
            f"POST /run in flight while {label}",
            f"{status_counts(statuses)}; slowest {slowest:.1f} s",
            f"only 200/202/503, each within {slack:.0f} s",
            all(s in (200, 202, 503) for s in statuses) and slowest <= slack,
            _sample(f"{s} after {t:.1f} s" for s, t in during if s not in (200, 202, 503) or t > slack),
        )
        until = windows["down"][0] if name == "hang" else float("inf")  # up to the next outage
        later = [(s, end) for s, sent, end in answers if closed <= sent < until]
        recovered = min((end for s, end in later if s == 200), default=None)
        result.check(
            f"POST /run sent after {'SIGCONT' if name == 'hang' else 'Azurite is back'} (no host restart)",
            status_counts(s for s, _ in later)
            + (f"; first 200 {recovered - closed:.1f} s after" if recovered else ""),
            "the host recovers: 200s again",
            recovered is not None,
        )
    result.check(
        "unanswered turns (503, dropped) retried with the same key",
        f"{len(retried)} retried: {status_counts(ledger.turns[c][1][-1] for c in retried)}",
        "each retry answered 200/202",
        all(ledger.answered(c) for c in retried),
    )
    stored = sum(len(must) for must, _ in ledger.sessions().values())
    result.check(
        "every session's history after the outages",
        f"{len(ledger.sessions())} sessions, {stored} answered turns",
        "each answered turn stored once, none twice",
        not problems,
        _sample(problems),
    )
    return result


# -- probe 4: hostile input -----------------------------------------------------------------------


@dataclass
class Hostile:
    """One hostile request: which API it aims at, and what to send."""

    target: str
    method: str
    path: str
    content: bytes | None = None
    headers: Mapping[str, str | bytes] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        body = "" if self.content is None else f" body {self.content[:40]!r}"
        return f"{self.method} {self.path[:80]}{body}"


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def fixed_hostile(canary: str) -> list[Hostile]:
    """The known-bad inputs (issue 14 and the contracts in docs/architecture.md)."""
    run = f"/api/agents/{AGENT}/run"
    ent = f"{DURABLE_API}/entities/{ENTITY}"
    orch, inst = f"{DURABLE_API}/orchestrators", f"{DURABLE_API}/instances"
    other = f"{canary}-x"
    cases = [
        Hostile("run", "POST", run, _nested(100_000)),
        Hostile("run", "POST", run, b'{"message": ' + _nested(5_000) + b"}"),
        Hostile("run", "POST", run, b'{"message": "hi", "response_schema": ' + _nested(20_000) + b"}"),
        Hostile("run", "POST", run, b'{"message": "' + b"x" * (1024 * 1024 + 10) + b'"}'),
        Hostile("run", "POST", run, b"\xff\xfe\x00garbage"),
        Hostile("run", "POST", run, b""),
        Hostile("run", "POST", run, b"null"),
        Hostile("run", "POST", run, b'"just a string"'),
        Hostile("run", "POST", run, b'{"message": "hi", "unknown": 1, "sessionId": "%s"}' % other.encode()),
        Hostile("run", "POST", run, b'{"message": "hi", "sessionId": "."}'),
        Hostile("run", "POST", run, b'{"message": "hi", "sessionId": ".."}'),
        Hostile("run", "POST", run, b'{"message": "hi", "sessionId": "al\\ud800x"}'),
        Hostile("run", "POST", run, json.dumps({"message": "hi", "sessionId": "\U0001f600" * 247}).encode()),
        Hostile("run", "POST", run, b'{"message": "hi", "sessionId": "%s"}' % (b"k" * 300)),
        Hostile("run", "POST", run, b'{"message": 5}'),
        Hostile("run", "POST", run, b'{"message": "hi", "role": "system!"}'),
        Hostile("run", "POST", run, b'{"message": "hi", "correlationId": ""}'),
        Hostile("run", "POST", run, b'{"message": "hi"}', headers={"Idempotency-Key": "has space"}),
        Hostile("run", "POST", run, b'{"message": "hi"}', headers={"Idempotency-Key": "k" * 129}),
        Hostile("run", "POST", run, b'{"message": "hi"}', headers={"Idempotency-Key": "k" * 9000}),
        Hostile("run", "POST", run, b'{"message": "hi"}', headers={"Content-Type": "text/plain"}),
        Hostile("run", "GET", run),
        Hostile("run", "PUT", run, b"{}"),
        Hostile("run", "POST", "/api/agents/NoSuchAgent/run", b'{"message": "hi"}'),
        Hostile("run", "POST", "/api/agents/" + "a" * 9000 + "/run", b'{"message": "hi"}'),
        Hostile("state", "GET", f"/api/agents/{AGENT}/{'%F0%9F%98%80' * 300}"),
        Hostile("state", "GET", f"/api/agents/{AGENT}/%ED%A0%80"),
        Hostile("state", "GET", f"/api/agents/{AGENT}/%2E%2E"),
        Hostile("state", "GET", f"/api/agents/NoSuchAgent/{canary}"),
        # DELETE of a session is a real route now: hostile deletes name bad ids or unknown agents.
        Hostile("state", "DELETE", f"/api/agents/{AGENT}/%2E%2E"),
        Hostile("state", "DELETE", f"/api/agents/NoSuchAgent/{canary}"),
        Hostile("state", "PUT", f"/api/agents/{AGENT}/{canary}"),
        Hostile("entity", "POST", f"{ent}/{canary}", _nested(100_000), params={"op": "run_agent"}),
        Hostile("entity", "POST", f"{ent}/{canary}", b"not json", params={"op": "run_agent"}),
        Hostile("entity", "POST", f"{ent}/{canary}", b'"{\\"message\\": 5}"', params={"op": "nope"}),
        Hostile("entity", "POST", f"{ent}/{canary}", b"x" * (1024 * 1024 + 10), params={"op": "run_agent"}),
        Hostile("entity", "POST", f"{ent}/a%23b", b"{}", params={"op": "run_agent"}),
        Hostile("entity", "POST", f"{DURABLE_API}/entities/no-such-entity/k", b"{}", params={"op": "x"}),
        Hostile("entity", "GET", f"{DURABLE_API}/entities/{ENTITY}", params={"top": "-1"}),
        Hostile(
            "entity", "GET", f"{DURABLE_API}/entities/{ENTITY}", headers={"x-ms-continuation-token": "%%"}
        ),
        Hostile("instance", "POST", f"{orch}/no_such_orchestrator", b"{}"),
        Hostile("instance", "POST", f"{orch}/no_such_orchestrator/id", _nested(100_000)),
        Hostile("instance", "GET", f"{inst}/%ED%A0%80"),
        Hostile("instance", "GET", f"{inst}/" + "i" * 300),
        Hostile("instance", "GET", f"{inst}/", params={"top": "abc"}),
        Hostile("instance", "GET", f"{inst}/", params={"runtimeStatus": "Bogus"}),
        Hostile("instance", "GET", f"{inst}/", params={"createdTimeFrom": "yesterday"}),
        Hostile(
            "instance", "GET", f"{inst}/", headers={"x-ms-continuation-token": "\u00ff".encode("latin-1")}
        ),
        Hostile("instance", "POST", f"{inst}/nope/raiseEvent/Approval", b'{"a": 1}'),
        Hostile("instance", "POST", f"{inst}/nope/terminate", params={"reason": "x" * 5000}),
        Hostile("instance", "POST", f"{inst}/nope/rewind"),
        Hostile("instance", "DELETE", f"{inst}/", params={"createdTimeFrom": "not a time"}),
        Hostile("other", "GET", "/no/such/route"),
        Hostile("other", "POST", "/admin/host/status", b"{}"),
    ]
    return cases


def _random_text(rng: random.Random, size: int) -> str:
    pools = [
        "abcxyz012",
        " \t\n\r\"'\\/#?%&=+.",
        "\x00\x01\x1f\x7f",
        "éß漢字\u200b\ufeff",
        "\U0001f600\U0001f680",
        "\ud800\udfff",  # lone surrogates (sent as JSON escapes)
    ]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(size))


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(8 if depth < 4 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 2**63, 2**80, 1.5, -0.0, 1e308])
    if kind in (3, 4):
        return _random_text(rng, rng.randrange(0, 30))
    if kind == 5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["message", "sessionId", "role", "enable_tool_calls", "response_schema", "correlationId"]
    return {
        rng.choice([*keys, _random_text(rng, 5)]): _random_json(rng, depth + 1)
        for _ in range(rng.randrange(5))
    }


def _random_body(rng: random.Random) -> bytes:
    choice = rng.randrange(4)
    if choice == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
    if choice == 1:
        return _nested(rng.choice([65, 1000, 50_000]))
    return json.dumps(_random_json(rng)).encode()


def fuzz_hostile(seed: int, count: int) -> list[Hostile]:
    """``count`` seeded random requests over the four APIs (no hypothesis: plain ``random``, so the
    same seed sends the same bytes)."""
    rng = random.Random(seed)

    def segment() -> str:
        return quote(_random_text(rng, rng.randrange(1, 40)), safe="", errors="surrogatepass")

    cases: list[Hostile] = []
    for _ in range(count):
        target = rng.choice(["run", "run", "state", "entity", "instance"])
        if target == "run":
            headers: dict[str, str | bytes] = {}
            if rng.random() < 0.3:
                headers["Idempotency-Key"] = bytes(
                    rng.randrange(32, 256) for _ in range(rng.randrange(1, 200))
                )
            body = _random_body(rng)
            if rng.random() < 0.5:  # a run body with random fields in a fresh session
                fields = _random_json(rng, 3)
                fields = fields if isinstance(fields, dict) else {"message": fields}
                fields.setdefault("sessionId", f"fuzz-{rng.getrandbits(64):016x}")
                body = json.dumps(fields).encode()
            agent = AGENT if rng.random() < 0.8 else segment()
            cases.append(Hostile("run", "POST", f"/api/agents/{agent}/run", body, headers))
        elif target == "state":
            cases.append(
                Hostile("state", rng.choice(["GET", "GET", "POST"]), f"/api/agents/{AGENT}/{segment()}")
            )
        elif target == "entity":
            name = rng.choice([ENTITY, ENTITY, segment()])
            params = {"op": rng.choice(["run_agent", "get_state", "reset", _random_text(rng, 8)])}
            method = rng.choice(["POST", "POST", "GET", "DELETE"])
            body = _random_body(rng) if method == "POST" else None
            cases.append(
                Hostile("entity", method, f"{DURABLE_API}/entities/{name}/{segment()}", body, {}, params)
            )
        else:
            inst = f"{DURABLE_API}/instances"
            form = rng.randrange(5)
            if form == 0:
                path, method, body = (
                    f"{DURABLE_API}/orchestrators/{segment()}/{segment()}",
                    "POST",
                    _random_body(rng),
                )
            elif form == 1:
                path, method, body = f"{inst}/{segment()}", "GET", None
            elif form == 2:
                path, method, body = f"{inst}/{segment()}/raiseEvent/{segment()}", "POST", _random_body(rng)
            elif form == 3:
                op = rng.choice(["terminate", "suspend", "resume", "restart", "rewind"])
                path, method, body = f"{inst}/{segment()}/{op}", "POST", None
            else:
                path, method, body = f"{inst}/", "GET", None
            params = {}
            if rng.random() < 0.5:
                params = {
                    rng.choice(
                        [
                            "top",
                            "runtimeStatus",
                            "createdTimeFrom",
                            "showHistory",
                            "instanceIdPrefix",
                            "reason",
                        ]
                    ): _random_text(rng, 10)
                }
            cases.append(Hostile("instance", method, path, body, {}, params))
    return cases


async def send_hostile(client: httpx.AsyncClient, case: Hostile) -> tuple[int | None, bytes, str]:
    """Send one case; (status, body, content type). status None: the client library refused to send
    it (counted, not judged); 0: the connection failed without an answer."""
    try:
        response = await client.request(
            case.method, case.path, content=case.content, headers=dict(case.headers), params=dict(case.params)
        )
    except (httpx.LocalProtocolError, httpx.InvalidURL, httpx.UnsupportedProtocol, UnicodeError, ValueError):
        return None, b"", ""  # the client library would not send it: nothing to judge
    except httpx.TransportError:
        return 0, b"", ""  # the server dropped the connection without an answer: judged as broken
    return response.status_code, response.content, response.headers.get("content-type", "")


def error_is_json(body: bytes) -> bool:
    try:
        return isinstance(json.loads(body), dict)
    except (ValueError, UnicodeDecodeError):
        return False


def _breaks_claim(case: Hostile, code: int, body: bytes) -> bool:
    """A 5xx (but the documented 501 of rewind), or an error whose body is not a JSON object."""
    if code == 0 or code >= 500 and not (code == 501 and case.path.endswith("/rewind")):
        return True
    return code >= 400 and not error_is_json(body)


async def probe_hostile(url: str, *, fuzz: int = 400, seed: int = 4) -> ProbeResult:
    """The fixed list and ``fuzz`` seeded random requests against the run route, the state route, the
    entity API and the instance API; a canary session must be unchanged afterwards."""
    result = ProbeResult(f"Hostile input: fixed list + {fuzz} seeded random requests (seed {seed})")
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        canary = _key("canary")
        status, _ = await post_turn(client, canary, "hello", _key("canary-turn"))
        before = await client.get(f"/api/agents/{AGENT}/{canary}")
        cases = [(c, "fixed") for c in fixed_hostile(canary)] + [
            (c, "fuzz") for c in fuzz_hostile(seed, fuzz)
        ]
        outcomes: list[tuple[Hostile, str, int | None, bytes]] = []
        for case, origin in cases:
            code, body, _ = await send_hostile(client, case)
            outcomes.append((case, origin, code, body))
        after = await client.get(f"/api/agents/{AGENT}/{canary}")
    result.seconds = time.monotonic() - began
    for target in ("run", "state", "entity", "instance", "other"):
        for origin in ("fixed", "fuzz"):
            rows = [(c, code, body) for c, o, code, body in outcomes if c.target == target and o == origin]
            if not rows:
                continue
            broken = [
                f"{code} {body[:60]!r} <- {c.describe()}"
                for c, code, body in rows
                if code is not None and _breaks_claim(c, code, body)
            ]
            result.check(
                f"{target} ({origin}, {len(rows)} requests)",
                status_counts({None: "not sent", 0: "dropped"}.get(code, code) for _, code, _ in rows),
                "no 500; every error body is JSON",
                not broken,
                _sample(broken),
            )
    unchanged = status in ANSWERED and before.status_code == 200 and before.json() == after.json()
    result.check(
        "a canary session, read before and after",
        f"{before.status_code} / {after.status_code}",
        "hostile input never changes it",
        unchanged,
        "" if unchanged else f"before {before.text[:200]} after {after.text[:200]}",
    )
    return result


# -- probe 5: concurrency on one session ----------------------------------------------------------


async def probe_concurrency(url: str, *, posts: int = 30) -> ProbeResult:
    """``posts`` concurrent turns to one session: all answered, serialized (message counts 2, 4, ...
    each once), every turn stored once with its reply right after it."""
    result = ProbeResult(f"Concurrency: {posts} concurrent posts to one session")
    session = _key("concurrent")
    ledger = Ledger()
    began = time.monotonic()
    limits = httpx.Limits(max_connections=posts, max_keepalive_connections=posts)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def one(i: int) -> bool:
            """True when the answer is this turn's own reply (the fake echoes the message)."""
            cid = _key(f"c{i}")
            try:
                response = await client.post(
                    f"/api/agents/{AGENT}/run",
                    json={"message": f"turn {cid}", "sessionId": session},
                    headers={"Idempotency-Key": cid},
                )
            except httpx.TransportError:
                ledger.record(cid, session, None)
                return False
            ledger.record(cid, session, response.status_code)
            return response.status_code == 200 and response.json().get("response") == f"ok: turn {cid}"

        own = await asyncio.gather(*(one(i) for i in range(posts)))
        problems = await verify_ledger(client, ledger)
        history = await _history(client, session)
    result.seconds = time.monotonic() - began
    statuses = [s[-1] for _, s in ledger.turns.values()]
    result.check(
        "concurrent POST /run to one session", status_counts(statuses), "all 200", statuses == [200] * posts
    )
    result.check(
        "the answers",
        f"{sum(own)} of {posts} carry their own turn's reply",
        "each answer is its own turn's reply",
        all(own),
    )
    result.check(
        "the session's history",
        f"{sum(1 for e in history if e.get('role') == 'user')} turns, {len(history)} entries",
        f"{posts} turns, none lost or twice, each followed by its reply",
        not problems and len(history) == 2 * posts,
        _sample(problems),
    )
    return result


# -- the run --------------------------------------------------------------------------------------


def show(results: list[ProbeResult], console: Console | None = None, header: str = "") -> None:
    """One rich table per probe; failed rows in red with their evidence."""
    out = console or Console()
    if header:
        out.print(header)
    for probe in results:
        verdict = "[green]held[/]" if probe.held else "[bold red]FAILED[/]"
        table = Table(title=f"{probe.title} ({probe.seconds:.0f} s): {verdict}", title_justify="left")
        table.add_column("what was tried")
        table.add_column("counts")
        table.add_column("claim")
        table.add_column("held")
        for row in probe.checks:
            mark = "" if not row.claim else ("yes" if row.held else "[bold red]NO[/]")
            table.add_row(row.tried, row.counts, row.claim, mark)
        out.print(table)
    failures = [(p.title, c) for p in results for c in p.failures()]
    if failures:
        out.print(f"[bold red]{len(failures)} claim(s) did not hold:[/]")
        for title, row in failures:
            out.print(f"- {title}: {row.tried}: {row.claim}. {row.detail}", markup=False)
    else:
        out.print("[green]Every claim held.[/]")


def to_markdown(results: list[ProbeResult]) -> str:
    """The rows as one Markdown table (what docs/reliability.md's chaos table shows)."""
    lines = ["| probe | what was tried | counts | claim | held |", "|---|---|---|---|---|"]
    for probe in results:
        for row in probe.checks:
            held = "" if not row.claim else ("yes" if row.held else "**no**")
            cells = [probe.title.split(":")[0], row.tried, row.counts, row.claim, held]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def _to_json(results: list[ProbeResult]) -> dict[str, Any]:
    return {
        "machine": machine(),
        "date": _dt.date.today().isoformat(),
        "probes": [
            {
                "title": p.title,
                "seconds": round(p.seconds, 1),
                "held": p.held,
                "rows": [vars(c) for c in p.checks],
            }
            for p in results
        ],
    }


async def _run_all(
    args: argparse.Namespace, weather: FunctionHost, basics: FunctionHost, azurite: Azurite
) -> list[ProbeResult]:
    progress = Console(stderr=True)
    results: list[ProbeResult] = []
    steps: list[tuple[str, Callable[[], Awaitable[ProbeResult]]]] = [
        ("concurrency", lambda: probe_concurrency(weather.url, posts=args.posts)),
        ("hostile input", lambda: probe_hostile(weather.url, fuzz=args.fuzz, seed=args.seed + 4)),
        ("kills", lambda: probe_kills(weather.url, weather, rounds=args.rounds, seed=args.seed + 1)),
        (
            "orchestration kills",
            lambda: probe_orchestration_kills(
                basics.url, basics, rounds=args.orchestration_rounds, seed=args.seed + 2
            ),
        ),
        ("two writers", lambda: probe_two_writers(azurite, basics.log_path.parent)),
        ("storage outage", lambda: probe_outage(weather.url, azurite, seed=args.seed + 3)),
        ("hung activities", lambda: probe_hung_activities(azurite)),
    ]
    for name, step in steps:
        if args.only and name.split()[0] not in args.only:
            continue
        progress.print(f"[dim]chaos: {name}...[/]")
        results.append(await step())
    return results


def run(args: argparse.Namespace) -> int:
    """The whole run with the options of `python -m harness chaos` (`harness/cli/chaos.py`)."""
    work = Path(tempfile.mkdtemp(prefix="durableagent-chaos-"))
    script = work / "chaos-script.json"
    script.write_text(json.dumps(CHAOS_SCRIPT))
    env = {"DURABLEAGENT_RUN_TIMEOUT": str(RUN_TIMEOUT)}
    azurite = Azurite.on_fixed_ports(work / "azurite-data", log_path=work / "azurite.log")
    weather = FunctionHost(
        DEFAULT_APP_DIR,
        mode="local",
        chat_script=script,
        chat_record=work / "requests.jsonl",
        env=env,
        log_path=work / "weather-host.log",
    )
    basics = FunctionHost(ORCHESTRATION_APP, mode="local", env=env, log_path=work / "basics-host.log")
    began = time.monotonic()
    ok = False
    try:
        with Console(stderr=True).status("Starting Azurite and two local hosts...", spinner="dots"):
            azurite.start()
            for host in (weather, basics):
                host.storage = azurite.connection_string
                host.start()
        results = asyncio.run(_run_all(args, weather, basics, azurite))
        header = (
            f"[bold]durableagent reliability run[/] on {machine()}, {_dt.date.today().isoformat()}, "
            f"seed {args.seed}, {time.monotonic() - began:.0f} s"
        )
        show(results, header=header)
        if args.json:
            args.json.write_text(json.dumps(_to_json(results), indent=2))
        if args.markdown:
            args.markdown.write_text(to_markdown(results))
        ok = all(p.held for p in results)
        return 0 if ok else 1
    finally:
        for service in (weather, basics, azurite):
            service.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}", file=sys.stderr)
