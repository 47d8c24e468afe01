"""Ctrl-C during a streamed `ask` on its own stack: one line at once, and a second Ctrl-C leaves."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.cli_process import cli_env

pytestmark = pytest.mark.integration

STREAMING = Path(__file__).resolve().parents[2] / "samples" / "streaming"
SLOW = {"steps": [{"chunks": [f"word{i} " for i in range(30)], "chunk_delay": 1.0}]}


def _wait_for(path: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert proc.poll() is None, path.read_text(errors="replace")
        assert time.monotonic() < deadline, path.read_text(errors="replace")
        time.sleep(0.05)


def test_ctrl_c_says_the_turn_finishes_and_a_second_one_leaves(tmp_path: Path) -> None:
    script = tmp_path / "slow.json"
    script.write_text(json.dumps(SLOW))
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    args = ["ask", "WeatherAgent", "hi", "--app", str(STREAMING), "--host", "local", "--script", str(script)]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness", *args, "--data", str(tmp_path / "ws")],
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=cli_env(tmp_path),
        )
        try:
            _wait_for(out, "word1 ", proc, 180)
            proc.send_signal(signal.SIGINT)
            _wait_for(err, "Ctrl-C again", proc, 5)
            assert err.read_text().splitlines()[-1] == (
                "python -m harness: stopping: the host finishes the turn in progress first "
                "(Ctrl-C again to leave at once)"
            )
            proc.send_signal(signal.SIGINT)
            # At once: long before the turn's 30 chunks, a second apart, would have ended.
            assert proc.wait(timeout=10) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    # Leaving at once kills the host (a crash its durable state survives), never Azurite.
    azurite_log = (tmp_path / "ws" / "logs" / "azurite.log").read_text()
    assert "Azurite Table service successfully closed" in azurite_log
    assert "Traceback" not in err.read_text()
