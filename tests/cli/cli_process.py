"""`python -m harness ...` as a real subprocess: one-shot commands and a background `up`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment whose temp dir and per-user data folder are the test's own (both start empty)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLEAGENT_CHAT_")}
    for name in ("tmp", "xdg"):
        (tmp_path / name).mkdir(exist_ok=True)
    env.update(
        TMPDIR=str(tmp_path / "tmp"),
        XDG_DATA_HOME=str(tmp_path / "xdg"),
        PYTHONUNBUFFERED="1",
        COLUMNS="250",
        **extra,
    )
    return env


def run_cli(
    *args: str, cwd: Path, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """Run one command to its end; stdout and stderr captured apart."""
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def one_line(stderr: str) -> str:
    """The message of stderr's one `python -m harness: error: ...` line (never a traceback)."""
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("python -m harness: error: "), stderr
    return lines[0].removeprefix("python -m harness: error: ")


class UpProcess:
    """`python -m harness up ...` in the background, its output in a log file."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "harness", "up", *args],
            cwd=cwd,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_banner(self, timeout: float = 180) -> str:
        """The banner, once `up` says it is ready (it prints "Press Ctrl-C" last)."""
        deadline = time.monotonic() + timeout
        while "Press Ctrl-C" not in self.text:
            assert self.proc.poll() is None, self.text
            assert time.monotonic() < deadline, self.text
            time.sleep(0.1)
        return self.text

    @property
    def url(self) -> str:
        match = re.search(r"^URL\s+(\S+)", self.text, re.MULTILINE)
        assert match, self.text
        return match.group(1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._out.close()
