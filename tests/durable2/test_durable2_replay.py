"""`replay-check` of a Durable Functions 2.x app: histories served by the Durable HTTP API replayed
against the app's orchestrators in its own Python 3.13, through the 2.x SDK's handler; the same
verdicts and diffs as for 1.x apps."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from harness.client import SyncAgentClient
from harness.stack import FunctionHost
from harness.testing.orchestrations import OrchestrationRun

from .conftest import SAMPLE

SERVED = "showHistory=true&showHistoryOutput=true&showInput=true"


def recorded(host: FunctionHost, folder: Path) -> list[Path]:
    """A chain and an answered approval run on the host, their served histories written to files."""
    files = []
    for name, body, answer in (("chain", {}, None), ("approval", 72, {"approved": True})):
        started = httpx.post(f"{host.url}/api/orchestrators/{name}", json=body, timeout=30)
        run = OrchestrationRun(SyncAgentClient(host.url), started.json()["id"], timeout=60, interval=0.1)
        if answer is not None:
            run.wait_for(event="TimerCreated")
            httpx.post(f"{host.url}/api/approvals/{run.id}", json=answer, timeout=30)
        assert run.wait()["runtimeStatus"] == "Completed"
        served = httpx.get(f"{host.url}/runtime/webhooks/durabletask/instances/{run.id}?{SERVED}", timeout=30)
        files.append(folder / f"{name}.json")
        files[-1].write_text(served.text)
    return files


def replay_check(files: list[Path], app: Path, python: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness", "replay-check", *map(str, files), "--app", str(app)]
    return subprocess.run(
        [*command, "--python", python, "--json"], capture_output=True, text=True, timeout=180, check=False
    )


def test_histories_replay_and_a_changed_app_diverges_where_it_changed(
    durable2_host: FunctionHost, durable2_python: str, tmp_path: Path
) -> None:
    files = recorded(durable2_host, tmp_path)
    same = replay_check(files, SAMPLE, durable2_python)
    assert same.returncode == 0, same.stdout + same.stderr
    assert [r["ok"] for r in json.loads(same.stdout)] == [True, True]

    changed = tmp_path / "changed"
    shutil.copytree(SAMPLE, changed)
    code = (changed / "function_app.py").read_text()
    code = code.replace(
        'second = yield context.call_activity("greet", first)',
        'second = yield context.call_activity("square", 2)',
    )
    code = code.replace("timedelta(hours=hours)", "timedelta(hours=hours / 2)")
    (changed / "function_app.py").write_text(code)
    diverged = replay_check(files, changed, durable2_python)
    assert diverged.returncode == 1, diverged.stdout + diverged.stderr
    chain, approval = json.loads(diverged.stdout)
    assert chain["divergence"]["reason"] == "different name, different input"
    assert chain["divergence"]["history"] == "activity 'greet' input \"Hello Tokyo\""
    assert chain["divergence"]["code"] == "activity 'square' input 2"
    assert approval["divergence"]["reason"] == "different timer time"
    assert "[app] INFO" not in diverged.stderr  # the app's own chatter is kept out of the verdicts
