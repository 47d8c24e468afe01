"""`python -m harness chat WeatherAgent` end to end: its own Azurite and host, the fake model,
the real TUI in a pseudo-terminal, a typed question, the reply on screen, a clean exit."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

LEAVE_ALTERNATE_SCREEN = b"\x1b[?1049l"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][A-Z0-9]|\x1b[=>]")


class Terminal:
    """A child process on a pty, with its screen output accumulated (escape codes stripped)."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        os.set_blocking(self.master, False)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.raw = b""

    def _pump(self, wait: float) -> None:
        ready, _, _ = select.select([self.master], [], [], wait)
        if ready:
            try:
                while chunk := os.read(self.master, 65536):
                    self.raw += chunk
            except (BlockingIOError, OSError):
                pass

    @property
    def text(self) -> str:
        return ANSI.sub(b"", self.raw).decode("utf-8", "replace")

    def expect(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._pump(0.1)
            if match := re.search(pattern, self.text):
                return match
            if self.proc.poll() is not None:
                self._pump(0)
                break
        raise AssertionError(f"never saw {pattern!r}; screen text ends with:\n{self.text[-3000:]}")

    def wait(self, timeout: float) -> int:
        """Wait for the exit while draining the pty: a child blocked writing a full pty never exits."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"still running after {timeout} s; screen text ends with:\n{self.text[-3000:]}"
                )
            self._pump(0.1)
        return self.proc.returncode

    def send(self, data: str) -> None:
        os.write(self.master, data.encode())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


def _processes_using(path: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if path in line]


def fresh_chat(tmp_path: Path) -> Terminal:
    """`chat WeatherAgent --fresh` on a 160x48 pty, its temp dir `tmp_path`."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160", "LINES": "48", "TMPDIR": str(tmp_path)}
    env.pop("DURABLEAGENT_CHAT_SCRIPT", None)
    argv = [sys.executable, "-m", "harness", "chat", "WeatherAgent", "--host", "local", "--fresh"]
    return Terminal(argv, env)


def test_chat_starts_the_stack_answers_and_leaves_nothing_running(tmp_path: Path):
    term = fresh_chat(tmp_path)
    try:
        term.expect(r"Azurite data", timeout=180)
        # no function_app.py in the current folder (the checkout's root): the bundled sample
        assert re.search(r"samples/weather\s+\(the bundled weather\s+sample", term.text), term.text[-3000:]
        term.expect(r"Message the agent", timeout=60)  # the TUI is up with its input
        term.expect(r"Type a message below", timeout=60)  # and has loaded the (new) session
        term.send("What's the weather in Paris?\r")
        term.expect(r"Here's the latest", timeout=90)
        term.send("\x11")  # ctrl+q
        code = term.wait(60)
        assert code == 0, term.text[-4000:]
    finally:
        term.close()
    leftovers = _processes_using(str(tmp_path))
    assert leftovers == [], leftovers
    assert list(tmp_path.iterdir()) == []  # the --fresh folder went with the stack


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_closes_the_tui_gives_the_terminal_back_and_stops_the_stack(tmp_path: Path, signum: int):
    """SIGTERM, or the terminal closing (SIGHUP), close the TUI as ctrl+q does: the alternate screen
    is left (the TUI no longer drawn over the shell), the stack stops, the --fresh folder goes."""
    term = fresh_chat(tmp_path)
    try:
        term.expect(r"Type a message below", timeout=180)
        drawn = len(term.raw)
        term.proc.send_signal(signum)
        assert term.wait(60) == 128 + signum
        assert LEAVE_ALTERNATE_SCREEN in term.raw[drawn:]
    finally:
        term.close()
    leftovers = _processes_using(str(tmp_path))
    assert leftovers == [], leftovers
    assert list(tmp_path.iterdir()) == []
