"""A small managed child process: start, log capture, readiness polling and reliable teardown.

Azurite, the Functions host (``func`` or the local stand-in) and the pytest plugin all need the same
things from a child process: its output in a log file we can point users at, a clear error instead of a
hang when it dies while starting, and a teardown that also takes its children with it, even on Ctrl-C
or when our own process dies.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import ctypes.util
import datetime as _dt
import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = [
    "ManagedProcess",
    "ManagedService",
    "PortInUseError",
    "StartStop",
    "StartupError",
    "ensure_port_free",
    "free_port",
    "port_argument",
    "port_is_open",
    "tail",
    "wait_port_free",
]

_PR_SET_PDEATHSIG = 1
DEFAULT_GRACE = 10.0
"""Seconds a stopped child gets between SIGTERM and SIGKILL, unless it says otherwise."""
EXIT_GRACE = 3.0
"""At interpreter exit, what an ordinary child gets (the user is waiting for the prompt)."""
_LIVE: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()


class StartupError(RuntimeError):
    """A managed process died, or did not become ready in time, while starting."""


class PortInUseError(StartupError):
    """A port that was asked for explicitly is already taken by someone else."""


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (one we may not signal counts as alive). A killed
    child its parent has not waited for yet is a zombie: dead for whoever asks about its locks."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True


def port_argument(text: str, *, allow_zero: bool = False) -> int:
    """argparse type for a TCP port: 1 to 65535 (0, "any free port", too when ``allow_zero``)."""
    lowest = 0 if allow_zero else 1
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not lowest <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a number from {lowest} to 65535")
    return port


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a currently unused TCP port (there is a small race until the child binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_port_free(port: int, host: str = "127.0.0.1", what: str = "process") -> None:
    """Raise :class:`PortInUseError` with a one-line explanation when ``port`` cannot be bound.

    Without this check a child fails with a port error buried in its log (or worse, readiness succeeds
    against whatever else listens there).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option servers use, so a port in TIME_WAIT after a restart does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                raise PortInUseError(
                    f"cannot start {what}: port {host}:{port} is already in use "
                    f"(stop whatever listens there or choose another port)"
                ) from None
            raise


def wait_port_free(port: int, host: str = "127.0.0.1", timeout: float = 5.0, what: str = "process") -> None:
    """Wait until ``port`` can be bound again (e.g. after a kill), then return; raise if it never frees."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ensure_port_free(port, host, what)
            return
        except PortInUseError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


def terminate(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM `process`, and SIGKILL it if it has not exited within `grace` seconds."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail(path: Path, lines: int = 20, *, missing_ok: bool = True) -> str:
    """The last ``lines`` lines of a (possibly binary-ish) log file; ``""`` when it is missing.

    With ``missing_ok=False`` a missing file raises ``FileNotFoundError`` like any other ``OSError``,
    for callers that say why a log cannot be shown (the TUI's log screen).
    """
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines)).rstrip("\n")
    except FileNotFoundError:
        if missing_ok:
            return ""
        raise


def _pdeathsig_preexec(parent_pid: int) -> Callable[[], None] | None:
    """Build a preexec function asking Linux to SIGTERM the child when its parent dies.

    ``PR_SET_PDEATHSIG`` fires when the *thread* that forked the child exits, so it is only armed for
    children started from the main thread (a TUI worker thread ending would otherwise kill the stack);
    those still get the atexit / context-manager teardown.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return None
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
    except OSError:
        return None
    prctl = libc.prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def _live_group_member(pgid: int) -> bool:
    """True if a non-zombie process is in group ``pgid``.

    ``killpg(pgid, 0)`` also counts zombies, and orphaned children that already exited can stay
    zombies for a while where PID 1 reaps lazily (containers), which would stall :meth:`stop`.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ..." - comm may contain spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


class StartStop:
    """Context-manager protocol for things with ``start()`` and ``stop()``: start on enter, stop on exit."""

    def start(self) -> object:
        raise NotImplementedError

    def stop(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ManagedProcess(StartStop):
    """One child process in its own process group, with its output captured to ``log_path``.

    Use as a context manager or call :meth:`start` / :meth:`stop`. Live instances are also stopped at
    interpreter exit, and (Linux, main thread) the child gets SIGTERM if this process dies.
    """

    def __init__(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        log_path: Path,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: Path | None = None,
        grace: float | None = None,
    ) -> None:
        self.args: list[str] = [os.fspath(a) for a in args]
        self.grace = grace
        """Seconds :meth:`stop` waits after SIGTERM before SIGKILL, also at interpreter exit; None: an
        ordinary child, given ``DEFAULT_GRACE`` (``EXIT_GRACE`` at exit, where the user waits)."""
        self.name = name or Path(self.args[0]).name
        self.log_path = Path(log_path)
        self.cwd = Path(cwd) if cwd is not None else None
        base = dict(os.environ) if inherit_env else {}
        self.env: dict[str, str] = {**base, **(env or {})}
        self._popen: subprocess.Popen[bytes] | None = None
        self._pgid: int | None = None

    def __repr__(self) -> str:
        return f"<ManagedProcess {self.name} pid={self.pid} running={self.is_running()}>"

    # -- state -------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        """Pid of the direct child (also its process-group id), None before start."""
        return self._popen.pid if self._popen else None

    @property
    def returncode(self) -> int | None:
        """Exit code once the child has exited (negative = killed by that signal)."""
        return self._popen.poll() if self._popen else None

    def is_running(self) -> bool:
        """True while the direct child has not exited."""
        return self._popen is not None and self._popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log, for error messages."""
        return tail(self.log_path, lines)

    @property
    def command_line(self) -> str:
        """The command as a copy-pasteable shell string."""
        return shlex.join(self.args)

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> Self:
        """Spawn the child (no readiness wait; see :meth:`wait_ready`)."""
        if self.is_running():
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().isoformat(timespec="seconds")
        with open(self.log_path, "ab") as log:
            log.write(f"--- {stamp} start: {self.command_line}\n".encode())
            log.flush()
            try:
                self._popen = subprocess.Popen(
                    self.args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    cwd=self.cwd,
                    start_new_session=True,  # own group: killpg reaches children; no terminal Ctrl-C
                    preexec_fn=_pdeathsig_preexec(os.getpid()),
                    close_fds=True,
                )
            except FileNotFoundError as exc:
                raise StartupError(
                    f"cannot start {self.name}: {exc.filename or self.args[0]} not found"
                ) from None
            except PermissionError as exc:
                raise StartupError(f"cannot start {self.name}: {exc}") from None
        self._pgid = self._popen.pid
        with _LIVE_LOCK:
            _LIVE.add(self)
        return self

    def wait_ready(
        self,
        probe: Callable[[], bool],
        timeout: float = 30.0,
        *,
        interval: float = 0.1,
        stop_on_failure: bool = True,
    ) -> float:
        """Poll ``probe`` until it returns True; return the seconds waited.

        A probe that raises counts as "not ready yet". Raises :class:`StartupError` (one summary line
        followed by the log tail) when the child exits first or ``timeout`` passes; the child is then
        stopped unless ``stop_on_failure`` is False.
        """
        if self._popen is None:
            raise StartupError(f"{self.name} was never started")
        started = time.monotonic()
        deadline = started + timeout
        last_error = ""
        while True:
            code = self._popen.poll()
            if code is not None:
                self.stop(timeout=2)  # the leader is gone; do not leave its children behind
                raise StartupError(self._failure(f"{self.name} exited with code {code} during start-up"))
            try:
                if probe():
                    return time.monotonic() - started
                last_error = ""
            except Exception as exc:  # noqa: BLE001 - any probe failure just means "not ready yet"
                last_error = f"{type(exc).__name__}: {exc}".strip()
            if time.monotonic() >= deadline:
                why = f" (last probe error: {last_error})" if last_error else ""
                message = self._failure(f"{self.name} was not ready after {timeout:g} s{why}")
                if stop_on_failure:
                    self.stop()
                raise StartupError(message)
            time.sleep(interval)

    def _failure(self, summary: str) -> str:
        log = self.log_tail(20)
        body = (
            f"\n--- last lines of {self.log_path} ---\n{log}" if log else f" (log {self.log_path} is empty)"
        )
        return f"{summary}; log: {self.log_path}{body}"

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the whole process group, wait up to ``timeout`` (default: the process's ``grace``),
        then SIGKILL what is left, saying so in the log.

        Returns the child's exit code (None when it was never started). Safe to call repeatedly; an
        exception while waiting (Ctrl-C) leaves the SIGTERM to do its work, never a SIGKILL.
        """
        popen, pgid = self._popen, self._pgid
        if popen is None:
            return None
        if pgid is None:  # already stopped
            return popen.wait()
        if timeout is None:
            timeout = DEFAULT_GRACE if self.grace is None else self.grace
        self._signal_group(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        try:
            popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        # Children may outlive the leader; give them the rest of the grace period, then kill them all.
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._group_alive():
            self._note(f"still running {timeout:g} s after SIGTERM: killed (SIGKILL)")
        self._signal_group(signal.SIGKILL)
        code = popen.wait()
        self._forget()
        return code

    def kill(self) -> int | None:
        """SIGKILL the whole process group right away (simulates a crash); returns the exit code."""
        popen = self._popen
        if popen is None:
            return None
        self._signal_group(signal.SIGKILL)
        code = popen.wait()
        self._forget()
        return code

    def _note(self, text: str) -> None:
        """A line of the harness's own in the child's log (why it ended the way it did)."""
        with contextlib.suppress(OSError), open(self.log_path, "a", encoding="utf-8") as log:
            log.write(f"--- {_dt.datetime.now().isoformat(timespec='seconds')} harness: {self.name} {text}\n")

    def _signal_group(self, sig: int) -> None:
        if self._pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._pgid, sig)

    def _group_alive(self) -> bool:
        if self._pgid is None:
            return False
        try:
            os.killpg(self._pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return _live_group_member(self._pgid)

    def _forget(self) -> None:
        # Keep _popen for pid/returncode; only drop the group and the atexit registration.
        self._pgid = None
        with _LIVE_LOCK:
            _LIVE.discard(self)


class ManagedService(StartStop):
    """A service (Azurite, a Functions host) run as one :class:`ManagedProcess` that ``start()`` creates."""

    _proc: ManagedProcess | None = None

    @property
    def process(self) -> ManagedProcess | None:
        """The current child process, None before the first start."""
        return self._proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.is_running()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the process (and anything it spawned): SIGTERM to its group, then (after ``timeout``,
        default the process's grace) SIGKILL; logs are kept."""
        if self._proc is not None:
            self._proc.stop(timeout)


@atexit.register
def _stop_all() -> None:
    """Last-resort teardown for processes the caller forgot (or could not) stop."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        with contextlib.suppress(Exception):
            proc.stop(timeout=EXIT_GRACE if proc.grace is None else proc.grace)
