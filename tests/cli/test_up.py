"""`python -m harness up` on an app that is not a durableagent app: it serves it and stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from harness.processes import free_port

pytestmark = pytest.mark.integration

COUNTER = Path(__file__).resolve().parents[2] / "samples" / "counter"


def test_up_serves_any_durable_functions_app_until_ctrl_c(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "harness",
                "up",
                "--app",
                str(COUNTER),
                "--host",
                "local",
                "--port",
                str(port),
                "--fresh",  # the sample's own workspace is left alone
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            deadline = time.monotonic() + 120
            while "Press Ctrl-C" not in log.read_text() and time.monotonic() < deadline:
                assert proc.poll() is None, log.read_text()
                time.sleep(0.1)
            banner = log.read_text()
            assert "not a durableagent app" in banner and re.search(rf"127\.0\.0\.1:{port}", banner)
            base = f"http://127.0.0.1:{port}"
            assert httpx.post(f"{base}/api/counters/c1/add", content=b"3").status_code == 202
            deadline = time.monotonic() + 20
            while httpx.get(f"{base}/api/counters/c1").json() != {"value": 3}:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
    assert code == 0, log.read_text()
    leftovers = [
        line
        for line in subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
        if str(tmp_path) in line
    ]
    assert leftovers == []


def test_a_first_run_without_a_terminal_says_it_installs_azurite(app: Path, tmp_path: Path) -> None:
    """stderr not a terminal (CI, a pipe): the npm install of Azurite is announced in a line before and
    one after, instead of half a minute of silence."""
    from tests.cli.cli_process import cli_env, run_cli
    from tests.harness.standins import write_executable

    bin_dir = tmp_path / "bin"
    write_executable(bin_dir / "node", "")
    npm = """
import pathlib, sys
prefix = pathlib.Path(sys.argv[sys.argv.index("--prefix") + 1])
exe = prefix / "node_modules" / ".bin" / "azurite"
exe.parent.mkdir(parents=True)
exe.write_text("#!/bin/sh\\necho 'stand-in azurite: cannot serve'\\nexit 3\\n")
exe.chmod(0o755)
"""
    write_executable(bin_dir / "npm", npm)
    env = cli_env(tmp_path, PATH=str(bin_dir), DURABLEAGENT_CACHE=str(tmp_path / "cache"))
    env.pop("DURABLEAGENT_AZURITE", None)
    done = run_cli("up", "--fresh", "--host", "local", cwd=app, env=env, timeout=60)
    assert done.returncode == 1, done
    lines = done.stderr.splitlines()
    assert lines[0].startswith("Installing Azurite ") and "first run only" in lines[0], done.stderr
    assert lines[1].startswith("Azurite ") and lines[1].endswith(" installed"), done.stderr
    assert lines[2].startswith("python -m harness: error: azurite exited with code 3"), done.stderr
    assert len(lines) == 3, done.stderr
