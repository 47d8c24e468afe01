"""The benchmark code runs against the session stack with tiny sizes; the figures are printed, not
judged here, but they must be measured (numbers, a full history check) and shown."""

from __future__ import annotations

import asyncio

from harness.bench import (
    Figures,
    bench_fork,
    bench_history,
    bench_latency,
    bench_listing_seeded,
    bench_stack_added,
    bench_storage_floor,
    bench_throughput,
    bench_virtual_time,
    show,
    turn_cost,
)


def test_benchmarks_measure_and_check_histories(function_host, azurite, chat_script, capsys):
    url = function_host.url
    latency = asyncio.run(bench_latency(url, chat_script.path, turns=3))
    throughput = asyncio.run(bench_throughput(url, sessions=3, turns=2))
    history = asyncio.run(bench_history(url, chat_script.path, sizes=(2, 6), samples=2))
    assert latency.data["POST /run p50"] > 0 and latency.data["in-process agent.run() p50"] > 0
    assert throughput.data["sessions with a wrong history"] == "0"
    assert throughput.data["turns per second"] > 0
    assert history.data["POST /run p50 at 6 messages"] > 0
    assert history.data["stack overhead ratio 6 / 2"].endswith("x")
    fork = asyncio.run(bench_fork(url, sizes=(4,), samples=2))
    assert fork.data["POST /fork p50 at 4 messages"] > 0
    floor = asyncio.run(bench_storage_floor(azurite.connection_string, writes=3, row_bytes=2048))
    assert floor.data["one write p50"] > 0
    added = asyncio.run(bench_stack_added(url, chat_script.path, sizes=(2, 8), samples=2))
    assert added.data["POST /run p50 at 8 messages"] > 0
    assert added.data["POST /run p50 at 8 messages, first turn on the session"] > 0
    ratio = added.data["stack adds p50 at 8 messages"] / added.data["stack adds p50 at 2 messages"]
    assert added.data["stack adds ratio 8 / 2"] == f"{ratio:.2f}x"
    cost = turn_cost(latency, floor, added)
    assert cost.data["two Azurite writes p50"] == 2 * floor.data["one write p50"]
    multiple = latency.data["POST /run p50"] / (2 * floor.data["one write p50"])
    assert cost.data["POST /run p50 / two writes"] == f"{multiple:.2f}x"
    assert cost.data["stack adds ratio 8 / 2"] == added.data["stack adds ratio 8 / 2"]
    show([latency, throughput, history, cost, Figures("empty")])
    shown = capsys.readouterr().out
    assert "Throughput (3 sessions x 2 turns" in shown and "stack overhead ratio 6 / 2" in shown
    assert "Turn cost against its floor" in shown


def test_the_virtual_time_figures_are_measured_on_their_own_stack():
    figures = asyncio.run(bench_virtual_time(runs=1))
    assert figures.data["of which not timed out"] == "0"
    assert 0 < figures.data["72-hour approval timeout, start to end, p50"] < 30_000  # ms
    assert 0 < figures.data["7-day session TTL: advance P8D to session gone, p50"] < 30_000


def test_the_listing_is_measured_on_index_rows_seeded_into_azurite():
    """The seeded rows are read back through the table API (else the function raises), and the
    listing is timed on a stack of its own."""
    from harness.stack import DEFAULT_APP_DIR

    figures = bench_listing_seeded(DEFAULT_APP_DIR, sizes=(300,), repeat=2)
    assert 0 < figures.data["listing p50 at 300 sessions"]
    assert 0 < figures.data["  head read alone (a first page's) at 300"]
    assert 0 < figures.data["  range query alone (a page past the head) at 300"]
    assert 0 < figures.data["  a session's index row and head write at 300"]
    assert figures.data["  listing / one turn at 300"].endswith("x")
