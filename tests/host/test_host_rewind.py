"""Rewind on the local host (issue 25): a Failed instance carries on from before the episode that
failed, with the app's code as it is after a fix (a second host on the same task hub, as after a
redeploy); `toEvent=N` rewinds any finished instance to before event N; a code that no longer replays
the kept history is refused with the divergence; a running instance is refused."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from harness.cli.main import main
from harness.host import LocalHost

from .test_host_orchestrations import API, ORCH_APP, start, wait_done


def _version(tmp_path: Path, name: str, *edits: tuple[str, str]) -> Path:
    app = tmp_path / name
    shutil.copytree(ORCH_APP, app)
    code = (app / "function_app.py").read_text()
    for old, new in edits:
        assert old in code
        code = code.replace(old, new)
    (app / "function_app.py").write_text(code)
    return app


async def _rewind(http, host: LocalHost, iid: str, **params: str) -> tuple[int, dict]:
    async with http.post(f"{host.url}{API}/instances/{iid}/rewind", params=params) as resp:
        return resp.status, await resp.json()


async def test_rewind_a_failed_instance_after_a_fix_and_to_an_event(azurite_connstr, hub, http, tmp_path):
    before = _version(tmp_path, "v1")
    fixed = _version(
        tmp_path,
        "v2",
        ("    raise ValueError(message)", '    return f"fixed {message}"'),
        ('context.call_activity("say_hello", city)', 'context.call_activity("say_hello", city.lower())'),
    )
    async with LocalHost(before, port=0, storage=azurite_connstr, hub_name=hub) as host:
        failed = await wait_done(http, await start(http, host, "failing", {}))
        assert failed["runtimeStatus"] == "Failed"
        sequence = await wait_done(http, await start(http, host, "hello_sequence", ["A", "B"]))
        running = await start(http, host, "two_events")
    async with LocalHost(fixed, port=0, storage=azurite_connstr, hub_name=hub) as host:
        code, body = await _rewind(http, host, failed["instanceId"])
        assert code == 202, body
        done = await wait_done(http, body)
        assert (done["runtimeStatus"], done["output"]) == ("Completed", "unreachable")
        # Rewound again to before its activity's completion (events 0-3 are the first episode, which
        # scheduled it): the activity runs again, into a history that keeps that first episode.
        assert host.instances is not None
        first_episode = (await host.instances.read(failed["instanceId"])).history[:4]
        code, body = await _rewind(http, host, failed["instanceId"], toEvent="4")
        assert code == 202, body
        assert (await wait_done(http, body))["output"] == "unreachable"
        again = (await host.instances.read(failed["instanceId"])).history
        assert again[:4] == first_episode
        assert [e["EventType"] for e in again].count(5) == 1  # one TaskCompleted: the run after the cut

        # The fixed code calls say_hello with other inputs: it cannot carry on from that history.
        code, body = await _rewind(http, host, sequence["instanceId"], toEvent="100")
        assert code == 400 and "toEvent must be from 0 to" in body["error"]
        code, body = await _rewind(http, host, sequence["instanceId"], toEvent="9")
        assert code == 409 and "different input" in body["error"], body
        code, body = await _rewind(http, host, sequence["instanceId"])
        assert code == 409 and "only a Failed one" in body["error"]
        code, body = await _rewind(http, host, running["id"])
        assert code == 409 and "terminate it first" in body["error"]
        # To event 0: it starts again from its input, with the new code.
        code, body = await _rewind(http, host, sequence["instanceId"], toEvent="0")
        assert code == 202
        assert (await wait_done(http, body))["output"] == ["Hello a", "Hello b"]


async def test_the_rewind_to_command(azurite_connstr, hub, http, capsys):
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        links = await start(http, host, "hello_sequence", ["A", "B"])
        iid = (await wait_done(http, links))["instanceId"]
        code = await asyncio.to_thread(main, ["rewind-to", iid, "4", "--url", host.url])
        assert code == 0
        assert (
            capsys.readouterr().out
            == f"Rewound {iid} to before history event 4: it runs on with the current code\n"
        )
        assert (await wait_done(http, links))["output"] == ["Hello A", "Hello B"]
        for args, complaint in (
            ([iid], "only a Failed one is rewound"),
            ([iid, "-1"], "expected 0 or more"),
            (["nobody", "1"], "no instance with id 'nobody'"),
        ):
            try:
                code = await asyncio.to_thread(main, ["rewind-to", *args, "--url", host.url])
            except SystemExit as exit_:  # argparse's own refusal (one line, code 2)
                code = exit_.code
            err = capsys.readouterr().err
            assert code == 2 and err.count("\n") == 1 and complaint in err, err
