"""The chaos run's code, with tiny counts against the session stack: every claim is computed from what
the probes observed, and a violation seeded on purpose shows up as a failed row (never hidden)."""

from __future__ import annotations

import asyncio
import uuid

from aiohttp import web

from harness.chaos import (
    CHAOS_SCRIPT,
    Ledger,
    ProbeResult,
    fixed_hostile,
    fuzz_hostile,
    judge_history,
    probe_concurrency,
    probe_hostile,
    probe_kills,
    show,
    to_markdown,
    verify_ledger,
)


def _turn(cid: str, role: str = "user") -> dict:
    return {"role": role, "content": cid, "correlation_id": cid}


def test_judge_history_finds_duplicates_losses_strangers_and_interleaving():
    good = [_turn("a"), _turn("a", "assistant"), _turn("b"), _turn("b", "assistant")]
    assert judge_history(good, must={"a"}, may={"b", "c"}) == []
    twice = [*good, _turn("a"), _turn("a", "assistant")]
    assert judge_history(twice, must={"a", "b"}, may=set()) == ["turn a stored 2 times"]
    assert judge_history(good, must={"a", "b", "c"}, may=set()) == ["answered turn c is missing"]
    assert judge_history(good, must={"a"}, may=set()) == ["turn b was never sent"]
    interleaved = [_turn("a"), _turn("b"), _turn("a", "assistant"), _turn("b", "assistant")]
    assert judge_history(interleaved, must={"a", "b"}, may=set()) == [
        "turn a is not followed by its own reply"
    ]


def test_the_fuzz_is_repeatable_and_covers_every_api():
    first, again = fuzz_hostile(7, 60), fuzz_hostile(7, 60)
    assert [c.describe() for c in first] == [c.describe() for c in again]
    assert {c.target for c in first} == {"run", "state", "entity", "instance"}
    assert {c.target for c in fixed_hostile("canary")} >= {"run", "state", "entity", "instance"}


async def test_a_seeded_violation_is_reported_as_a_failed_row(capsys):
    """A stand-in server that answers every request with a plain-text 500 and loses every turn."""

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=500, text="Server got itself in trouble")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        result = await probe_hostile(f"http://127.0.0.1:{port}", fuzz=5, seed=1)
    finally:
        await runner.cleanup()
    assert not result.held
    failed = {c.tried.split(" (")[0] for c in result.failures()}
    assert {"run", "state", "entity", "instance", "a canary session, read before and after"} <= failed
    assert "Server got itself in trouble" in result.failures()[0].detail
    show([result])
    shown = capsys.readouterr().out
    assert "FAILED" in shown and "did not hold" in shown
    assert "| **no** |" in to_markdown([result])


def test_probes_against_the_session_stack(function_host, chat_script, capsys):
    chat_script.set(CHAOS_SCRIPT)
    url = function_host.url
    concurrency = asyncio.run(probe_concurrency(url, posts=4))
    assert concurrency.held, [vars(c) for c in concurrency.checks]
    hostile = asyncio.run(probe_hostile(url, fuzz=15, seed=3))
    # Findings of the host itself may fail rows here; the claims must be computed either way.
    targets = {c.tried.split(" (")[0] for c in hostile.checks}
    assert {"run", "state", "entity", "instance"} <= targets
    assert all(isinstance(c.held, bool) and c.counts for c in hostile.checks)
    assert hostile.checks[-1].tried.startswith("a canary session") and hostile.checks[-1].held
    kills = asyncio.run(probe_kills(url, function_host, rounds=1, turns=4, signals=1, sessions=1, seed=5))
    assert kills.held, [vars(c) for c in kills.checks]
    assert kills.checks[0].counts.startswith("1 kills")
    show([concurrency, hostile, kills, ProbeResult("empty")])
    assert "Kills: 1 x SIGKILL" in capsys.readouterr().out


def test_verify_ledger_reports_seeded_violations_in_real_state(function_host):
    """Against stored sessions: a turn the ledger never sent, and an answered turn that is not there."""
    import httpx

    from harness.chaos import post_turn

    async def scenario() -> list[str]:
        async with httpx.AsyncClient(base_url=function_host.url, timeout=30) as client:
            ledger = Ledger()
            session = f"seeded-{uuid.uuid4().hex[:8]}"
            status, _ = await post_turn(client, session, "recorded", "seeded-recorded")
            ledger.record("seeded-recorded", session, status)
            await post_turn(client, session, "a stranger", "seeded-stranger")  # not in the ledger
            ledger.record("seeded-lost", session, 200)  # claimed answered, never sent
            return await verify_ledger(client, ledger, timeout=1)

    problems = asyncio.run(scenario())
    assert len(problems) == 2, problems
    assert "turn seeded-stranger was never sent" in problems[0]
    assert "answered turn seeded-lost is missing" in problems[1]


def test_the_two_writers_probe_holds_against_the_session_azurite(azurite, tmp_path):
    """Issue 20: no start of a host beside a running one (any free port, the busy port, a third)
    ever makes two hosts serve one hub, and a holder's SIGKILL does not keep the hub from the next."""
    from harness.chaos import probe_two_writers

    writers = asyncio.run(probe_two_writers(azurite, tmp_path))
    assert writers.held, [vars(c) for c in writers.checks]
    assert [c.held for c in writers.checks] == [True, True, True]
