"""Benchmarks of the local stack: figures printed, never asserted (speed goals live here, not in tests)."""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console
from rich.table import Table

from .processes import free_port, terminate
from .stack import DEFAULT_APP_DIR, Stack

console = Console(stderr=True)
AGENT = "WeatherAgent"
HISTORY_PREPARATION = 1000  # messages stored ahead of the timed turns, per history size
FLOOR_ROW_BYTES = 4 * 1024  # an entity state row after a few turns: the size one turn writes


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(pct / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Figures:
    """One benchmark's results: rows of (figure, value, goal) for the table."""

    title: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: float | str, unit: str = "", goal: str = "") -> None:
        shown = f"{value:.1f}" if isinstance(value, float) else str(value)
        self.rows.append((name, f"{shown} {unit}".strip(), goal))
        self.data[name] = value


async def _timed(call: Callable[[], Awaitable[Any]]) -> float:
    began = time.perf_counter()
    await call()
    return (time.perf_counter() - began) * 1000


async def _post_run(client: httpx.AsyncClient, message: str, session: str) -> dict[str, Any]:
    response = await client.post(f"/api/agents/{AGENT}/run", json={"message": message, "sessionId": session})
    if response.status_code != 200:
        raise RuntimeError(f"POST /run answered {response.status_code}: {response.text[:200]}")
    return response.json()


def _direct_turn(agent: Any, messages: Any) -> Awaitable[Any]:
    """One in-process turn, called as the entity calls it: with a framework session for the turn."""
    return agent.run(messages, session=agent.create_session())


async def bench_latency(url: str, script: Path, turns: int) -> Figures:
    """Same fake, same message: in-process `agent.run()` against `POST /run` through the stack."""
    from agent_framework import Agent

    from fakes import ScriptedChatClient

    agent = Agent(client=ScriptedChatClient.from_file(script), name=AGENT)
    direct = [await _timed(lambda i=i: _direct_turn(agent, f"hello number {i}")) for i in range(turns)]
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await _post_run(client, "warm up", uuid.uuid4().hex)
        http = [
            await _timed(lambda i=i: _post_run(client, f"hello number {i}", uuid.uuid4().hex))
            for i in range(turns)
        ]
    figures = Figures("Turn latency (fake model, state in Azurite)")
    d50, h50 = percentile(direct, 50), percentile(http, 50)
    figures.add("in-process agent.run() p50", d50, "ms")
    figures.add("in-process agent.run() p95", percentile(direct, 95), "ms")
    figures.add("POST /run p50", h50, "ms")
    figures.add("POST /run p95", percentile(http, 95), "ms")
    figures.add("p50 overhead", h50 - d50, "ms", "< 15 ms")
    figures.add("p50 ratio", _ratio(h50, d50))
    return figures


async def bench_throughput(url: str, sessions: int, turns: int) -> Figures:
    """Many sessions at once; then check every history holds each turn once, in order."""
    keys = [f"tp-{uuid.uuid4().hex[:12]}" for _ in range(sessions)]
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=sessions, max_keepalive_connections=sessions)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def one_session(key: str) -> None:
            for turn in range(turns):
                latencies.append(await _timed(lambda t=turn: _post_run(client, f"turn {t} of {key}", key)))

        began = time.perf_counter()
        await asyncio.gather(*(one_session(key) for key in keys))
        elapsed = time.perf_counter() - began
        bad = 0
        for key in keys:
            state = (await client.get(f"/api/agents/{AGENT}/{key}")).json()
            users = [e["content"] for e in state["conversation_history"] if e["role"] == "user"]
            if users != [f"turn {t} of {key}" for t in range(turns)] or state["message_count"] != 2 * turns:
                bad += 1
    figures = Figures(f"Throughput ({sessions} sessions x {turns} turns, {os.cpu_count()} cores)")
    figures.add("turns per second", sessions * turns / elapsed, "turns/s")
    figures.add("p50 latency", percentile(latencies, 50), "ms")
    figures.add("p95 latency", percentile(latencies, 95), "ms")
    figures.add("sessions with a wrong history", str(bad), "", "0")
    return figures


def get_weather(location: str) -> str:
    """Get the weather for a city (the bench's stand-in for the sample's tool: same name, so the
    weather script calls it in-process as it does in the app)."""
    return f"sunny, 21 C in {location}"


async def _in_process_turns(script: Path, sizes: tuple[int, ...]) -> dict[int, Callable[[], Awaitable[Any]]]:
    """By history size: one weather turn through `agent.run()` alone, on a history of that length."""
    from agent_framework import Agent, Message

    from fakes import ScriptedChatClient

    agent = Agent(client=ScriptedChatClient.from_file(script), name=AGENT, tools=[get_weather])
    history: list[Message] = []
    turns: dict[int, Callable[[], Awaitable[Any]]] = {}
    for size in sizes:
        while len(history) // 2 < size:  # 4 messages per weather turn, 2 stored entries
            question = Message(role="user", contents=[f"What's the weather in City{len(history)}?"])
            history += [question, *(await agent.run([*history, question])).messages]
        turn = [*history, Message(role="user", contents=["What's the weather in Paris?"])]
        turns[size] = lambda turn=turn: _direct_turn(agent, turn)
    return turns


async def _in_process_history(script: Path, sizes: tuple[int, ...], samples: int) -> dict[int, float]:
    """The same weather turns through `agent.run()` alone, with the same history lengths (medians)."""
    turns = await _in_process_turns(script, sizes)
    return {size: statistics.median([await _timed(turns[size]) for _ in range(samples)]) for size in sizes}


async def _grow(client: httpx.AsyncClient, key: str, size: int) -> None:
    """Weather turns into session `key` until it stores at least `size` messages."""
    count = 0
    while count < size:
        count = (await _post_run(client, f"What's the weather in City{count}?", key))["message_count"]


async def bench_history(url: str, script: Path, sizes: tuple[int, ...], samples: int) -> Figures:
    """Per-turn latency as the stored history grows (weather turns, so tool calls are stored).

    Each timed turn adds two messages, so small sizes are timed over several sessions of that
    size (one turn or a few each) and only large ones over consecutive turns of one session:
    every sample stays within a few percent of its size.
    """
    figures = Figures("History scaling (per-turn latency by stored messages)")
    medians: dict[int, float] = {}
    direct = await _in_process_history(script, sizes, samples)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for size in sizes:
            sessions = max(1, min(samples, HISTORY_PREPARATION // max(size, 1)))
            times: list[float] = []
            for index in range(sessions):
                key = f"hist-{size}-{uuid.uuid4().hex[:12]}"
                await _grow(client, key, size)
                turns = len(range(index, samples, sessions))  # samples spread over the sessions
                for _ in range(turns):
                    times.append(
                        await _timed(lambda key=key: _post_run(client, "What's the weather in Paris?", key))
                    )
            medians[size] = statistics.median(times)
            figures.add(f"POST /run p50 at {size} messages", medians[size], "ms")
            figures.add(f"in-process p50 at {size} messages", direct[size], "ms")
            figures.add(f"stack overhead at {size} messages", medians[size] - direct[size], "ms")
    if len(sizes) > 1 and medians[sizes[0]]:
        first, last = sizes[0], sizes[-1]
        figures.add(f"POST /run ratio {last} / {first}", _ratio(medians[last], medians[first]), goal="<= 3x")
        figures.add(f"in-process ratio {last} / {first}", _ratio(direct[last], direct[first]))
        # What the stack itself adds, without the agent framework's own per-message work.
        overhead = _ratio(medians[last] - direct[last], medians[first] - direct[first])
        figures.add(f"stack overhead ratio {last} / {first}", overhead)
    return figures


async def _turns_of(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get(f"/api/agents/{AGENT}/{key}")).json()["message_count"] // 2


async def _fork(client: httpx.AsyncClient, key: str, turns: int) -> str:
    """A new session holding the first `turns` turns of session `key`; its id."""
    response = await client.post(f"/api/agents/{AGENT}/{key}/fork", json={"turn": turns})
    if response.status_code != 201:
        raise RuntimeError(f"POST /fork answered {response.status_code}: {response.text[:200]}")
    return str(response.json()["sessionId"])


async def _forks(client: httpx.AsyncClient, key: str, count: int) -> list[str]:
    """`count` new sessions holding every turn of session `key` (a fork is far quicker than the turns)."""
    turns = await _turns_of(client, key)
    return [await _fork(client, key, turns) for _ in range(count)]


async def bench_stack_added(url: str, script: Path, sizes: tuple[int, int], samples: int) -> Figures:
    """What the stack adds to one turn, at a small and a large stored history, as a ratio.

    Every sample is a session of exactly that size (a fork of one seeded session): its first turn,
    then a second one, each timed right after the same turn in-process on a history of the same
    length. The figures are medians of those paired differences, so a load spike on the shared machine
    moves both sides of a pair instead of one side of the ratio. The second turn is the steady state
    (what a conversation pays turn after turn); the first is a session the host has not served yet.
    """
    direct = await _in_process_turns(script, sizes)
    figures = Figures("What the stack adds per turn, by stored messages (paired with in-process turns)")
    added: dict[tuple[int, str], float] = {}
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:

        async def paired(size: int, session: str) -> tuple[float, float]:
            alone = await _timed(direct[size])
            http = await _timed(lambda: _post_run(client, "What's the weather in Paris?", session))
            return http, http - alone

        for size in sizes:
            seed = f"added-{size}-{uuid.uuid4().hex[:12]}"
            await _grow(client, seed, size)
            first: list[tuple[float, float]] = []
            steady: list[tuple[float, float]] = []
            for session in await _forks(client, seed, samples):
                first.append(await paired(size, session))
                steady.append(await paired(size, session))
            for kind, pairs in (("", steady), (", first turn on the session", first)):
                added[size, kind] = statistics.median(difference for _, difference in pairs)
                figures.add(
                    f"POST /run p50 at {size} messages{kind}", statistics.median(t for t, _ in pairs), "ms"
                )
                figures.add(f"stack adds p50 at {size} messages{kind}", added[size, kind], "ms")
    small, large = sizes
    for kind in ("", ", first turn on the session"):
        figures.add(
            f"stack adds ratio {large} / {small}{kind}", _ratio(added[large, kind], added[small, kind])
        )
    return figures


async def bench_fork(url: str, sizes: tuple[int, ...], samples: int) -> Figures:
    """`POST .../fork` of a whole session by stored messages: the source entity copies its turns and
    signals the target's seed, and the route answers once the target holds them."""
    figures = Figures("Fork (copy every turn into a new session, by stored messages)")
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for size in sizes:
            key = f"fork-{size}-{uuid.uuid4().hex[:12]}"
            await _grow(client, key, size)
            turns = await _turns_of(client, key)
            times = [
                await _timed(lambda key=key, turns=turns: _fork(client, key, turns)) for _ in range(samples)
            ]
            figures.add(f"POST /fork p50 at {size} messages", statistics.median(times), "ms")
    return figures


DURABLE_API = "/runtime/webhooks/durabletask"
ORCHESTRATION_APP = DEFAULT_APP_DIR.parent / "orchestration_basics"


async def _run_orchestration(client: httpx.AsyncClient, name: str, payload: Any) -> dict[str, Any]:
    """Start through the instance API and poll its status every millisecond until it has finished."""
    started = await client.post(f"{DURABLE_API}/orchestrators/{name}", json=payload)
    started.raise_for_status()
    url = started.json()["statusQueryGetUri"]
    while True:
        status = (await client.get(url)).json()
        if status["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return status
        await asyncio.sleep(0.001)


async def bench_orchestrations(url: str, runs: int, fan_out: int, concurrent: int, each: int) -> Figures:
    """Start to Completed of one activity, of a fan-out/fan-in, and of many orchestrations at once."""
    figures = Figures(f"Orchestrations (local host, {runs} runs each)")
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        await _run_orchestration(client, "one_activity", 2)  # warm-up
        one: list[float] = []
        for _ in range(runs):
            one.append(await _timed(lambda: _run_orchestration(client, "one_activity", 2)))
        figures.add("one activity, start to Completed p50", percentile(one, 50), "ms", "< 30 ms")
        figures.add("one activity, start to Completed p95", percentile(one, 95), "ms")
        fans: list[float] = []
        for _ in range(max(1, runs // 10)):
            fans.append(await _timed(lambda: _run_orchestration(client, "fan_out_fan_in", fan_out)))
        figures.add(f"{fan_out}-activity fan-out/fan-in p50", percentile(fans, 50), "ms", "< 1 s")
        began = time.perf_counter()
        results = await asyncio.gather(
            *(_run_orchestration(client, "fan_out_fan_in", each) for _ in range(concurrent))
        )
        elapsed = time.perf_counter() - began
        expected = sum(i * i for i in range(each))
        wrong = sum(1 for r in results if r["runtimeStatus"] != "Completed" or r["output"] != expected)
        figures.add(
            f"{concurrent} orchestrations x {each} activities at once", concurrent / elapsed, "instances/s"
        )
        figures.add("of which lost or wrong", str(wrong), goal="0")
    return figures


DURABLE2_APP = Path(__file__).resolve().parent / "benchapps" / "durable2"


def bench_durable2(runs: int, one_x: Figures) -> Figures:
    """The same orchestrations on a Durable Functions 2.x app (in its own Python 3.13, driven over the
    Durable Task protocol) as on the 1.x sample (`one_x`): each figure and its ratio to 1.x's."""
    from .host.isolated.venvs import NoPython, app_venv

    title = f"Orchestrations on a Durable Functions 2.x app (own Python 3.13 process), {runs} runs each"
    figures = Figures(title)
    try:
        python = app_venv(DURABLE2_APP)
    except NoPython as exc:
        figures.add("not measured", str(exc))
        return figures
    with Stack(DURABLE2_APP, host_mode="local", progress=True, python=python) as stack:
        two_x = asyncio.run(bench_orchestrations(stack.url, runs, 100, 50, 10))
    for name, value in two_x.data.items():
        before = one_x.data.get(name)
        if isinstance(value, float):
            unit = "instances/s" if "at once" in name else "ms"
            figures.add(name, value, unit)
            if isinstance(before, float) and before:
                figures.add(f"  as a multiple of 1.x's ({before:.1f} {unit})", value / before, "x")
        else:
            figures.add(name, value, goal="0")
    return figures


def bench_sidecar(connection_string: str, runs: int) -> Figures:
    """The sidecar against durabletask.testing's in-memory backend (`bench_sidecar.py`), each figure
    with its ratio, and a one-activity orchestration as a multiple of its three writes (the start and
    two commits), the floor measured in the same run."""
    from .bench_sidecar import measure_sidecar, ratio

    durable, memory = measure_sidecar(connection_string, runs)
    floor = asyncio.run(bench_storage_floor(connection_string, 50, 1024))
    figures = Figures(
        f"The sidecar (durabletask worker and client), {runs} runs; in memory: durabletask.testing"
    )
    for name, value in durable.items():
        unit = "instances/s" if "at once" in name else "ms"
        figures.add(name, value, unit)
        figures.add(
            f"  as a multiple of in memory ({memory[name]:.1f} {unit})", ratio(name, value, memory), "x"
        )
    write = float(floor.data["one write p50"])
    figures.add(
        "one activity p50 as a multiple of three writes (start, two commits)",
        durable["one activity, start to completion p50"] / (3 * write),
        "x",
        f"one write p50 {write:.1f} ms",
    )
    return figures


STREAMING_APP = DEFAULT_APP_DIR.parent / "streaming"
STREAM_CHUNKS = 20
CHUNK_DELAY = 0.005  # the sample script's bench rule: the fake makes its chunks 5 ms apart


class _FirstChunkProbe:
    """Notes when each streamed turn hands its first text to its stream (the moment the model made
    it, as far as the host can tell), so the bench can time the hop to the client. Works only with
    the host in this process (same clock); measurement only, the app is not changed."""

    def __init__(self) -> None:
        from durableagent import streams

        self.made: dict[str, float] = {}
        self._streams = streams
        self._original = streams.TurnStreamWriter.add_update
        probe = self

        def add_update(writer: Any, update: Any) -> None:
            if update.text and writer.stream.correlation_id not in probe.made:
                probe.made[writer.stream.correlation_id] = time.perf_counter()
            probe._original(writer, update)

        streams.TurnStreamWriter.add_update = add_update  # type: ignore[method-assign]

    def close(self) -> None:
        self._streams.TurnStreamWriter.add_update = self._original  # type: ignore[method-assign]


async def _sse_turn(
    client: httpx.AsyncClient, session: str, probe: _FirstChunkProbe
) -> tuple[float, float, float]:
    """(ms from the model's first text to the client, ms to the first text event, ms to the final
    event) of one streamed turn."""
    from httpx_sse import aconnect_sse

    began = time.perf_counter()
    hop = first = math.nan
    correlation = ""
    body = {"message": "stream please", "sessionId": session}
    async with aconnect_sse(client, "POST", f"/api/agents/{AGENT}/run", json=body) as source:
        async for event in source.aiter_sse():
            now = time.perf_counter()
            if event.event == "accepted":
                correlation = json.loads(event.data)["correlationId"]
            elif event.event == "text" and math.isnan(first):
                first = (now - began) * 1000
                hop = (now - probe.made.get(correlation, math.nan)) * 1000
            elif event.event == "final":
                if json.loads(event.data).get("status") != "success":
                    raise RuntimeError(f"streamed turn failed: {event.data[:200]}")
                break
    if math.isnan(first):
        raise RuntimeError("a streamed turn had no text event")
    return hop, first, (time.perf_counter() - began) * 1000


async def bench_streaming(turns: int) -> Figures:
    """The streaming sample on an in-process local host (and its own Azurite): the same turn of
    STREAM_CHUNKS text chunks as JSON and as SSE."""
    import tempfile

    from .azurite import Azurite
    from .host import LocalHost

    os.environ["DURABLEAGENT_CHAT_SCRIPT"] = str(STREAMING_APP / "fake_model.json")
    probe = _FirstChunkProbe()
    with tempfile.TemporaryDirectory() as work:
        azurite = Azurite(Path(work)).start()
        try:
            async with LocalHost(STREAMING_APP, port=0, storage=azurite.connection_string) as host:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{host.port}", timeout=60) as client:
                    await _post_run(client, "warm up", uuid.uuid4().hex)
                    await _sse_turn(client, uuid.uuid4().hex, probe)
                    whole = [
                        await _timed(lambda: _post_run(client, "whole please", uuid.uuid4().hex))
                        for _ in range(turns)
                    ]
                    streamed = [await _sse_turn(client, uuid.uuid4().hex, probe) for _ in range(turns)]
        finally:
            probe.close()
            azurite.stop()
    hop, first, total = ([s[i] for s in streamed] for i in range(3))
    figures = Figures(f"Streaming replies (SSE, {STREAM_CHUNKS} chunks, fake model, streams in Azurite)")
    w50, t50 = percentile(whole, 50), percentile(total, 50)
    figures.add("model's first chunk to the client, p50", percentile(hop, 50), "ms", "< 20 ms")
    figures.add("model's first chunk to the client, p95", percentile(hop, 95), "ms")
    figures.add("request to the first text event, p50", percentile(first, 50), "ms")
    figures.add("POST /run as JSON, p50", w50, "ms")
    figures.add("same turn as SSE to the final event, p50", t50, "ms")
    # A JSON turn gets the chunks at once; a streamed one waits for the model between them.
    added = t50 - w50 - (STREAM_CHUNKS - 1) * CHUNK_DELAY * 1000
    figures.add("what streaming adds to the turn (SSE final - JSON - model's pauses), p50", added, "ms")
    figures.add("  per chunk", added / STREAM_CHUNKS, "ms")
    return figures


MCP_APP_SOURCE = """\
from agent_framework import Agent

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient

agent = Agent(client=ScriptedChatClient(default="Sunny."), name="WeatherAgent")
app = AgentFunctionApp(agents=[agent], enable_mcp_tool_trigger=True)
"""


async def bench_mcp(turns: int) -> Figures:
    """One agent turn as an MCP `tools/call` (the agent's `mcptool-` function, one MCP session for all
    calls, as an editor keeps one) against the same turn over `POST /run`, each in a new session, on
    an in-process local host (and its own Azurite)."""
    import tempfile

    from .azurite import Azurite
    from .host import LocalHost
    from .mcp_client import McpTarget

    with tempfile.TemporaryDirectory() as work:
        app_dir = Path(work) / "app"
        app_dir.mkdir()
        (app_dir / "function_app.py").write_text(MCP_APP_SOURCE, encoding="utf-8")
        (app_dir / "host.json").write_text('{"version": "2.0"}', encoding="utf-8")
        azurite = Azurite(Path(work)).start()
        try:
            async with LocalHost(app_dir, port=0, storage=azurite.connection_string) as host:
                async with (
                    httpx.AsyncClient(base_url=host.url, timeout=60) as client,
                    McpTarget(host.url).session() as mcp,
                ):

                    async def mcp_turn(message: str) -> None:
                        result = await mcp.call_tool(AGENT, {"query": message, "sessionId": uuid.uuid4().hex})
                        if result.is_error:
                            raise RuntimeError(f"MCP turn failed: {result.content}")

                    await _post_run(client, "warm up", uuid.uuid4().hex)
                    await mcp_turn("warm up")
                    http, over_mcp = [], []
                    for i in range(turns):  # interleaved: both see the same load
                        http.append(
                            await _timed(lambda i=i: _post_run(client, f"hello {i}", uuid.uuid4().hex))
                        )
                        over_mcp.append(await _timed(lambda i=i: mcp_turn(f"hello {i}")))
        finally:
            azurite.stop()
    figures = Figures("Agent turn as an MCP tool call (fake model, state in Azurite)")
    h50, m50 = percentile(http, 50), percentile(over_mcp, 50)
    figures.add("POST /run p50", h50, "ms")
    figures.add("POST /run p95", percentile(http, 95), "ms")
    figures.add("MCP tools/call p50", m50, "ms")
    figures.add("MCP tools/call p95", percentile(over_mcp, 95), "ms")
    figures.add("p50 ratio (MCP / POST /run)", _ratio(m50, h50), "", "<= 1.3x")
    return figures


# -- workflows: what hosting an agent-framework Workflow as an orchestration adds, against the same
# steps written as a hand-made orchestrator (harness/benchapps/workflows), on one local host and its
# own Azurite. Both start through the Durable instance API and are polled the same way, so the ratio
# is the workflow engine's own cost (routing, the activity envelope, custom status).
WORKFLOW_APP = Path(__file__).resolve().parent / "benchapps" / "workflows"


async def _run_workflow_case(
    client: httpx.AsyncClient, name: str, payload: Any, workflow: bool
) -> dict[str, Any]:
    status = await _run_orchestration(client, f"dafx-{name}" if workflow else name, payload)
    if status["runtimeStatus"] != "Completed":
        raise RuntimeError(f"{name} ended {status['runtimeStatus']}: {status.get('output')}")
    return status


async def bench_workflows(runs: int) -> Figures:
    import tempfile

    from .azurite import Azurite
    from .host import LocalHost

    figures = Figures(f"Workflows vs hand-made orchestrators (local host, {runs} runs each)")
    with tempfile.TemporaryDirectory() as work:
        azurite = Azurite(Path(work)).start()
        try:
            async with LocalHost(WORKFLOW_APP, port=0, storage=azurite.connection_string) as host:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{host.port}", timeout=120) as client:
                    cases = [
                        ("5-executor sequential workflow", "chain5", "hand_chain5", {"input": "go"}, "go"),
                        ("20-way fan-out/fan-in workflow", "fan20", "hand_fan20", {"input": 3}, 3),
                    ]
                    for title, workflow, hand, wf_input, hand_input in cases:
                        await _run_workflow_case(client, workflow, wf_input, True)  # warm-up
                        await _run_workflow_case(client, hand, hand_input, False)
                        made: list[float] = []
                        written: list[float] = []
                        for _ in range(runs):  # interleaved, so load drifts hit both alike
                            made.append(
                                await _timed(
                                    lambda w=workflow, i=wf_input: _run_workflow_case(client, w, i, True)
                                )
                            )
                            written.append(
                                await _timed(
                                    lambda h=hand, i=hand_input: _run_workflow_case(client, h, i, False)
                                )
                            )
                        wf50, hand50 = percentile(made, 50), percentile(written, 50)
                        figures.add(f"{title}, start to Completed p50", wf50, "ms")
                        figures.add("  same steps, hand-made orchestrator p50", hand50, "ms")
                        figures.add("  workflow / hand-made", _ratio(wf50, hand50), goal="<= 1.5x")
        finally:
            azurite.stop()
    return figures


HITL_APP = DEFAULT_APP_DIR.parent / "human_in_the_loop"
_TTL_APP = """
from datetime import timedelta

from agent_framework import Agent

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient

memo = Agent(client=ScriptedChatClient(default={"text": "noted"}), name="Memo", instructions="Take notes.")
app = AgentFunctionApp(agents=[memo], session_ttl=timedelta(days=7))
"""


async def _until(check: Callable[[], Awaitable[bool]], limit: float = 60.0) -> None:
    """Poll `check` every 5 ms (a status read: it does not hold off an auto clock) until it holds."""
    deadline = time.perf_counter() + limit
    while not await check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the virtual-time benchmark did not finish within a minute")
        await asyncio.sleep(0.005)


async def bench_virtual_time(runs: int) -> Figures:
    """Wall time of waits that virtual time skips, on an in-process local host in auto mode (its
    own Azurite): the human-in-the-loop sample's 72-hour approval timeout, start to Completed, and a
    7-day `session_ttl` expiry: one turn, then `POST /admin/clock {"advance": "P8D"}` until the
    session is gone (auto mode jumps only to durable timers; the TTL sweep is a schedule)."""
    import tempfile

    from .azurite import Azurite
    from .host import LocalHost
    from .host.clock import VirtualClock

    figures = Figures("Virtual time (auto mode, fake model, Azurite)")
    with tempfile.TemporaryDirectory() as work:
        azurite = Azurite(Path(work) / "azurite").start()
        ttl_app = Path(work) / "ttl_app"
        ttl_app.mkdir()
        (ttl_app / "function_app.py").write_text(_TTL_APP)
        (ttl_app / "host.json").write_text('{"version": "2.0"}')
        os.environ["DURABLEAGENT_CHAT_SCRIPT"] = str(HITL_APP / "fake_model.json")
        try:
            storage = azurite.connection_string
            async with LocalHost(HITL_APP, port=0, storage=storage, clock=VirtualClock("auto")) as host:
                async with httpx.AsyncClient(base_url=host.url, timeout=60) as client:
                    outcomes = [await _hitl_timeout(client, f"bench {i}") for i in range(runs)]
            timeouts = [seconds * 1000 for seconds, _ in outcomes]
            wrong = [output for _, output in outcomes if (output or {}).get("status") != "timed_out"]
            p50 = percentile(timeouts, 50)
            figures.add("72-hour approval timeout, start to end, p50", p50, "ms", "< 1 s")
            figures.add("72-hour approval timeout, start to end, max", max(timeouts), "ms")
            figures.add("of which not timed out", str(len(wrong)), goal="0")
            del os.environ["DURABLEAGENT_CHAT_SCRIPT"]
            async with LocalHost(ttl_app, port=0, storage=storage, clock=VirtualClock("auto")) as host:
                async with httpx.AsyncClient(base_url=host.url, timeout=60) as client:
                    expiries: list[float] = []
                    for _ in range(runs):
                        session = (await _post_run_to(client, "Memo", "remember milk"))["sessionId"]
                        began = time.perf_counter()
                        (await client.post("/admin/clock", json={"advance": "P8D"})).raise_for_status()

                        async def gone(session: str = session) -> bool:
                            return (await client.get(f"/api/agents/Memo/{session}")).status_code == 404

                        await _until(gone)
                        expiries.append((time.perf_counter() - began) * 1000)
            figures.add(
                "7-day session TTL: advance P8D to session gone, p50", percentile(expiries, 50), "ms", "< 1 s"
            )
            figures.add("7-day session TTL: advance P8D to session gone, max", max(expiries), "ms")
        finally:
            os.environ.pop("DURABLEAGENT_CHAT_SCRIPT", None)
            azurite.stop()
    return figures


async def _hitl_timeout(client: httpx.AsyncClient, topic: str) -> tuple[float, Any]:
    """Seconds from starting a review nobody answers to its end, and its output."""
    began = time.perf_counter()
    started = await client.post("/api/hitl/start", json={"topic": topic})
    url = started.json()["statusQueryGetUri"]
    last: dict[str, Any] = {}

    async def finished() -> bool:
        last.update((await client.get(url)).json())
        return last.get("runtimeStatus") in ("Completed", "Failed", "Terminated")

    await _until(finished)
    return time.perf_counter() - began, last.get("output")


async def _post_run_to(client: httpx.AsyncClient, agent: str, message: str) -> dict[str, Any]:
    response = await client.post(f"/api/agents/{agent}/run", json={"message": message})
    response.raise_for_status()
    return response.json()


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator > 0 else "n/a"


async def bench_storage_floor(
    connection_string: str, writes: int, row_bytes: int = FLOOR_ROW_BYTES
) -> Figures:
    """One Azurite table write of a turn-sized row, as the host's stores write one (a whole-row
    replace through the same SDK): the floor under a turn, which stores its request and its reply.

    A turn cannot cost less than its writes, so `POST /run` is judged against this (see
    `turn_cost`), not against an absolute number that moves with the machine. The client has the
    host's options (`client_options`: on Azurite, no proxy look-up per request), so the floor is
    what the host's own writes cost at best.
    """
    from azure.data.tables import UpdateMode
    from azure.data.tables.aio import TableServiceClient

    from durableagent._tables import client_options

    table_name = f"benchfloor{uuid.uuid4().hex[:12]}"
    text = "x" * row_bytes
    options = client_options(connection_string)
    async with TableServiceClient.from_connection_string(connection_string, **options) as service:
        table = await service.create_table(table_name)
        try:
            row = {"PartitionKey": "floor", "RowKey": "state", "P": text}
            await table.upsert_entity(row, mode=UpdateMode.REPLACE)  # warm-up: connection and row exist
            times = [
                await _timed(lambda i=i: table.upsert_entity({**row, "N": i}, mode=UpdateMode.REPLACE))
                for i in range(writes)
            ]
        finally:
            await service.delete_table(table_name)
    figures = Figures(f"Storage floor (Azurite table write of a {row_bytes // 1024} KiB row)")
    figures.add("one write p50", percentile(times, 50), "ms")
    figures.add("one write p95", percentile(times, 95), "ms")
    return figures


def turn_cost(latency: Figures, floor: Figures, added: Figures) -> Figures:
    """The two figures the stack's speed work tracks, from one run: a turn against the storage it
    cannot avoid (two writes: the request and the reply), and what the stack adds per turn at a
    large stored history against a small one (`bench_stack_added`)."""
    figures = Figures("Turn cost against its floor (same run)")
    run50, write50 = latency.data["POST /run p50"], floor.data["one write p50"]
    figures.add("POST /run p50", run50, "ms")
    figures.add("two Azurite writes p50", 2 * write50, "ms")
    figures.add("POST /run p50 / two writes", _ratio(run50, 2 * write50), goal="<= 2x")
    for name, value in added.data.items():
        if name.startswith("stack adds"):
            figures.add(name, value, "ms" if isinstance(value, float) else "")
    return figures


async def _instance_rows(connection_string: str) -> int:
    """Rows in every `<hub>Instances` table of the account (instance, history and inbox rows)."""
    from azure.data.tables.aio import TableServiceClient

    count = 0
    async with TableServiceClient.from_connection_string(connection_string) as service:
        async for table in service.list_tables():
            if table.name.endswith("Instances"):
                client = service.get_table_client(table.name)
                count += sum([1 async for _ in client.list_entities(select=["RowKey"])])
    return count


async def _delete_floor(connection_string: str, rows: int = 600, in_flight: int = 32) -> float:
    """Rows per second Azurite deletes, one request per row, `in_flight` at once (as a purge does),
    through a client with the host's options."""
    from azure.data.tables.aio import TableServiceClient

    from durableagent._tables import client_options

    table_name = f"benchdel{uuid.uuid4().hex[:12]}"
    options = client_options(connection_string)
    async with TableServiceClient.from_connection_string(connection_string, **options) as service:
        table = await service.create_table(table_name)
        try:
            keys = [(f"p{i % 200:04d}", f"r{i:06d}") for i in range(rows)]
            for part in sorted({p for p, _ in keys}):
                await table.submit_transaction(
                    [
                        ("upsert", {"PartitionKey": p, "RowKey": r, "x": "y" * 500})
                        for p, r in keys
                        if p == part
                    ]
                )
            slots = asyncio.Semaphore(in_flight)

            async def delete(partition: str, row: str) -> None:
                async with slots:
                    await table.delete_entity(partition, row)

            began = time.perf_counter()
            await asyncio.gather(*(delete(p, r) for p, r in keys))
            return rows / (time.perf_counter() - began)
        finally:
            await service.delete_table(table_name)


async def bench_purge(url: str, instances: int, connection_string: str, at_once: int = 50) -> Figures:
    """Purge by filter (`DELETE /instances?createdTimeFrom=...`) of `instances` finished one-activity
    orchestrations, started just before (so the filter matches exactly those), each run to its end
    through a start with `timeout` (the host answers when the instance has ended). Against the
    floor: the rows it deletes at the rate Azurite deletes rows (one request each, as many in flight)."""
    from datetime import UTC, datetime, timedelta

    figures = Figures(f"Purge by filter ({instances} finished instances)")
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        since = datetime.now(UTC) - timedelta(milliseconds=1)
        slots = asyncio.Semaphore(at_once)

        async def one() -> None:
            async with slots:
                started = await client.post(
                    f"{DURABLE_API}/orchestrators/one_activity", params={"timeout": "120"}, json=2
                )
                if started.status_code != 200:
                    raise RuntimeError(f"start answered {started.status_code}: {started.text[:200]}")

        began = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(instances)))
        figures.add("instances made (start to Completed)", instances / (time.perf_counter() - began), "/s")
        await asyncio.sleep(1.0)  # the clean-up after each last commit (consumed rows) is done
        rows = await _instance_rows(connection_string)
        began = time.perf_counter()
        purged = await client.delete(
            f"{DURABLE_API}/instances", params={"createdTimeFrom": since.isoformat()}
        )
        seconds = time.perf_counter() - began
        deleted = purged.json().get("instancesDeleted") if purged.status_code == 200 else purged.text[:200]
        rows -= await _instance_rows(connection_string)
    rate = await _delete_floor(connection_string)
    figures.add("purge by filter", seconds, "s", "< 1 s")
    figures.add("instances deleted", str(deleted), "", str(instances))
    figures.add("rows deleted (instance, history, inbox)", str(rows))
    figures.add("Azurite deletes rows at (floor, 32 in flight)", rate, "rows/s")
    figures.add("those rows at that rate (the floor of this purge)", rows / rate if rate else math.nan, "s")
    return figures


async def bench_listing(url: str, connection_string: str, sizes: tuple[int, ...], repeat: int) -> Figures:
    """`GET /api/agents/{name}?top=20` p50 as the session count grows, against one turn's p50.

    The newest sessions are real ones (a turn each, through the run route; their turns give the turn
    figure); the rest are index rows written in bulk straight into the index table (100-row
    transactions), older than every real session, so a page reads what it reads with that many real
    sessions. Azurite scans a table for every request, so each bulk write costs time that grows
    with the table (10,000 rows: about half a minute; 100,000: about an hour).
    """
    from datetime import UTC, datetime, timedelta

    from durableagent._session_index import DEFAULT_TABLE, TableSessionIndex
    from durableagent.session import entity_name_for

    figures = Figures("Session listing (GET /api/agents/{name}?top=20, by sessions)")
    name = entity_name_for(AGENT)
    index = TableSessionIndex(connection_string, DEFAULT_TABLE)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

        async def listing() -> None:
            response = await client.get(f"/api/agents/{AGENT}", params={"top": "20"})
            if response.status_code != 200 or len(response.json().get("sessions", [])) != 20:
                raise RuntimeError(f"listing answered {response.status_code}: {response.text[:200]}")

        turns = [
            await _timed(lambda: _post_run(client, "hello", f"list-{uuid.uuid4().hex[:12]}"))
            for _ in range(40)
        ]
        turn50 = statistics.median(turns)
        figures.add("one turn p50", turn50, "ms")
        await listing()  # a partition's first listing reconciles it with the entity listing
        made = len(await index.keys(name))
        oldest = datetime.now(UTC) - timedelta(days=1)
        for size in sorted(sizes):
            rows = [
                (f"bulk-{uuid.uuid4().hex}", oldest - timedelta(seconds=made + i)) for i in range(size - made)
            ]
            for start in range(0, len(rows), 1000):
                await index.put_many(name, rows[start : start + 1000])
            made = max(made, size)
            times = [await _timed(listing) for _ in range(repeat)]
            query = [await _timed(lambda: index.page(name, None, 21)) for _ in range(repeat)]
            p50 = statistics.median(times)
            figures.add(f"listing p50 at {made} sessions", p50, "ms")
            figures.add(f"  index page query alone at {made}", statistics.median(query), "ms")
            figures.add(f"  listing / one turn at {made}", _ratio(p50, turn50), goal="<= 3x at 10,000")
    await index.close()
    return figures


AZURITE_TABLE_DB = "__azurite_db_table__.json"
REAL_SESSIONS = 40  # sessions the listing bench makes through turns (the newest; a page lists them)


def seed_index_rows(azurite_dir: Path, entity_name: str, sessions: list[tuple[str, datetime]]) -> None:
    """Bench only: add session index rows (as `TableSessionIndex.put_many` writes them) straight into
    the table database of a stopped Azurite whose index table exists.

    Why: Azurite checks every insert against the rows of its partition one by one, so writing
    100,000 index rows through the API takes about an hour; this takes seconds. The rows are the
    API's rows (same properties, keys and Timestamp), and the listing then reads them through the
    API like any others. Azurite's own files, not the host's code: nothing on the turn or listing
    path is bypassed, only the seeding. A head row of the partition (`{entity}~head`) is removed:
    it does not hold the seeded rows, so the first write leaves a placeholder and the first listing
    makes the head from the index, as after a head dropped."""
    from durableagent._session_index import DEFAULT_TABLE, HEAD_SUFFIX, _row

    path = azurite_dir / AZURITE_TABLE_DB
    db = json.loads(path.read_text(encoding="utf-8"))
    name = f"devstoreaccount1${DEFAULT_TABLE}"
    collection = next(c for c in db["collections"] if c["name"] == name)
    docs = [doc for doc in collection["data"] if doc["PartitionKey"] != entity_name + HEAD_SUFFIX]
    collection["data"] = docs
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    created = int(time.time() * 1000)
    next_id = int(collection["maxId"])
    for key, when in sessions:
        next_id += 1
        row = _row(entity_name, key, when)
        properties = {**row, "Timestamp": stamp, "Timestamp@odata.type": "Edm.DateTime"}
        docs.append(
            {
                "PartitionKey": row["PartitionKey"],
                "RowKey": row["RowKey"],
                "properties": properties,
                "lastModifiedTime": stamp,
                "eTag": f"W/\"datetime'{quote(stamp, safe='')}'\"",
                "meta": {"revision": 0, "created": created, "version": 0},
                "$loki": next_id,
            }
        )
    collection["maxId"] = next_id
    collection["idIndex"] = None  # rebuilt by LokiJS on first use
    for field_name in ("PartitionKey", "RowKey"):  # LokiJS binary indices: positions sorted by value
        order = sorted(range(len(docs)), key=lambda i, f=field_name: docs[i][f])
        collection["binaryIndices"][field_name] = {"name": field_name, "dirty": False, "values": order}
    path.write_text(json.dumps(db), encoding="utf-8")


async def _prepare_index(connection_string: str, entity_name: str) -> None:
    """The index table, reconciled just now (so no listing reconciles the seeded rows while timed)."""
    from durableagent._session_index import DEFAULT_TABLE, TableSessionIndex

    index = TableSessionIndex(connection_string, DEFAULT_TABLE)
    try:
        await index.mark_reconciled(entity_name, datetime.now(UTC))
    finally:
        await index.close()


def bench_listing_seeded(app_dir: Path, sizes: tuple[int, ...], repeat: int) -> Figures:
    """`GET /api/agents/{name}?top=20` p50 by session count, each count on a stack of its own whose
    Azurite starts with the index rows seeded (`seed_index_rows`): REAL_SESSIONS real sessions (a
    turn each, the newest), the rest index rows older than them. Also, through the SDK on the same
    stack: the head read alone (what a first page reads of the index), the range query alone (what
    a page past the head reads), one turn's p50, and a new session's index write as the entity makes
    it after the turn (its row alone; its row and the head)."""
    import shutil
    import tempfile

    from durableagent._session_index import DEFAULT_TABLE, TableSessionIndex, row_key
    from durableagent.session import entity_name_for

    from .azurite import Azurite

    figures = Figures("Session listing, index rows seeded into Azurite (GET /api/agents/{name}?top=20)")
    name = entity_name_for(AGENT)
    for size in sorted(sizes):
        work = Path(tempfile.mkdtemp(prefix="durableagent-listing-"))
        try:
            azurite = Azurite(work / "azurite").start()
            try:
                asyncio.run(_prepare_index(azurite.connection_string, name))
            finally:
                azurite.stop()
            oldest = datetime.now(UTC) - timedelta(days=1)
            bulk = max(0, size - REAL_SESSIONS)
            began = time.perf_counter()
            seed_index_rows(
                work / "azurite",
                name,
                [(f"bulk-{i:07d}", oldest - timedelta(seconds=i)) for i in range(bulk)],
            )
            figures.add(f"seeding {bulk} index rows", time.perf_counter() - began, "s")
            with Stack(app_dir, host_mode="local", progress=False, work_dir=work) as stack:

                async def measure(
                    url: str = stack.url,
                    connection: str = stack.connection_string,
                    held: int = size,
                    bulk: int = bulk,
                    oldest: datetime = oldest,
                ) -> None:
                    index = TableSessionIndex(connection, DEFAULT_TABLE)
                    rows_only: list[float] = []
                    with_head: list[float] = []
                    async with httpx.AsyncClient(base_url=url, timeout=300) as client:

                        async def listing() -> None:
                            response = await client.get(f"/api/agents/{AGENT}", params={"top": "20"})
                            if response.status_code != 200 or len(response.json().get("sessions", [])) != 20:
                                raise RuntimeError(
                                    f"listing answered {response.status_code}: {response.text[:200]}"
                                )

                        turns = [
                            await _timed(lambda: _post_run(client, "hello", f"list-{uuid.uuid4().hex[:12]}"))
                            for _ in range(REAL_SESSIONS)
                        ]
                        await listing()
                        times = [await _timed(listing) for _ in range(repeat)]
                        query = [await _timed(lambda: index.page(name, None, 21)) for _ in range(repeat)]
                        head = [await _timed(lambda: index.read_head(name)) for _ in range(repeat)]
                        if bulk and not await index.has(name, row_key("bulk-0000000", oldest)):
                            raise RuntimeError("the seeded index rows are not in the table")
                        # A new session's index write as the entity's drain makes it (off the turn's
                        # path): its row alone, then its row and the head. Last: the probes have no
                        # state, so a listing would drop them rather than list 20 sessions.
                        now = datetime.now(UTC)
                        for number in range(repeat):
                            when = now + timedelta(milliseconds=number)
                            rows_only.append(
                                await _timed(
                                    lambda k=f"probe-{number}", w=when: index._put_rows(name, k, w, None)
                                )
                            )
                            with_head.append(
                                await _timed(lambda k=f"probe+{number}", w=when: index.put(name, k, w, None))
                            )
                    await index.close()
                    p50, turn50 = statistics.median(times), statistics.median(turns)
                    figures.add(f"listing p50 at {held} sessions", p50, "ms")
                    figures.add(
                        f"  head read alone (a first page's) at {held}", statistics.median(head), "ms"
                    )
                    figures.add(
                        f"  range query alone (a page past the head) at {held}",
                        statistics.median(query),
                        "ms",
                    )
                    figures.add(f"  one turn p50 at {held}", turn50, "ms")
                    figures.add(
                        f"  listing / one turn at {held}", _ratio(p50, turn50), goal="<= 3x at 10,000"
                    )
                    figures.add(
                        f"  a session's index row write at {held}", statistics.median(rows_only), "ms"
                    )
                    figures.add(
                        f"  a session's index row and head write at {held}",
                        statistics.median(with_head),
                        "ms",
                    )

                asyncio.run(measure())
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return figures


def bench_start(app_dir: Path) -> Figures:
    """Seconds from launching `python -m harness up` to the first answered `/run`."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "up", "--app", str(app_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    figures = Figures("Stack start (Azurite already installed)")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            while time.perf_counter() - began < 120:
                if proc.poll() is not None:
                    figures.add("start to first /run", "failed (harness up exited)")
                    return figures
                try:
                    if client.post(f"/api/agents/{AGENT}/run", json={"message": "hi"}).status_code == 200:
                        figures.add("start to first /run", time.perf_counter() - began, "s", "< 3 s")
                        return figures
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        figures.add("start to first /run", "timed out after 120 s")
        return figures
    finally:
        terminate(proc, 15)


def bench_suite() -> Figures:
    began = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], capture_output=True
    )
    figures = Figures("Test suite")
    figures.add("wall time", time.perf_counter() - began, "s", "~5 min")
    figures.add("exit code", str(result.returncode))
    return figures


def machine() -> str:
    system = f"{platform.system()} {platform.machine()}"
    return f"{system}, {os.cpu_count()} cores, Python {platform.python_version()}"


def show(results: list[Figures]) -> None:
    out = Console()
    out.print(f"[bold]durableagent benchmarks[/] on {machine()}")
    for figures in results:
        table = Table(title=figures.title, title_justify="left")
        table.add_column("figure")
        table.add_column("value", justify="right")
        table.add_column("goal")
        for row in figures.rows:
            table.add_row(*row)
        out.print(table)


async def _stack_benchmarks(stack: Stack, args: argparse.Namespace) -> list[Figures]:
    assert stack.script_path is not None
    latency = await bench_latency(stack.url, stack.script_path, args.turns)
    floor = await bench_storage_floor(stack.connection_string, args.floor_writes)
    throughput = await bench_throughput(stack.url, args.sessions, args.session_turns)
    history = await bench_history(stack.url, stack.script_path, tuple(args.history), args.samples)
    fork = await bench_fork(stack.url, tuple(args.history), args.samples)
    sizes = (min(args.history), max(args.history))
    added = await bench_stack_added(stack.url, stack.script_path, sizes, args.samples)
    listing = await bench_listing(stack.url, stack.connection_string, tuple(args.listing), args.samples)
    return [latency, floor, throughput, history, fork, added, turn_cost(latency, floor, added), listing]


def run(args: argparse.Namespace) -> int:
    """Run every benchmark with the options of `python -m harness bench` (`harness/cli/bench.py`)."""
    results: list[Figures] = []
    with Stack(args.app, host_mode="local", progress=True) as stack:
        results.extend(asyncio.run(_stack_benchmarks(stack, args)))
    if args.listing_seeded:
        results.append(bench_listing_seeded(args.app, tuple(args.listing_seeded), args.samples))
    with Stack(ORCHESTRATION_APP, host_mode="local", progress=True) as stack:
        one_x = asyncio.run(bench_orchestrations(stack.url, args.orchestration_runs, 100, 50, 10))
        results.append(one_x)
        results.append(asyncio.run(bench_purge(stack.url, args.purge, stack.connection_string)))
    results.append(bench_durable2(args.orchestration_runs, one_x))
    with Stack(ORCHESTRATION_APP, host_mode="local", progress=True) as stack:  # for its Azurite
        results.append(bench_sidecar(stack.connection_string, args.orchestration_runs))
    results.append(asyncio.run(bench_streaming(args.stream_turns)))
    results.append(asyncio.run(bench_virtual_time(args.virtual_time_runs)))
    results.append(asyncio.run(bench_mcp(args.mcp_turns)))
    results.append(asyncio.run(bench_workflows(args.orchestration_runs)))
    results.append(bench_start(args.app))
    if args.suite:
        results.append(bench_suite())
    show(results)
    if args.json:
        args.json.write_text(
            json.dumps({"machine": machine(), **{f.title: f.data for f in results}}, indent=2)
        )
    return 0
