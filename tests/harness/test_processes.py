"""harness.processes: start, readiness, log capture, start-up failures, teardown, ports."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from harness.processes import (
    ManagedProcess,
    PortInUseError,
    StartupError,
    ensure_port_free,
    free_port,
    port_is_open,
    tail,
)
from tests.harness.standins import alive, wait_dead


def py(code: str) -> list[str]:
    return [sys.executable, "-u", "-c", textwrap.dedent(code)]


def test_start_ready_and_log_capture(tmp_path: Path) -> None:
    marker = tmp_path / "ready"
    code = f"""
        import sys, time, pathlib
        print("hello stdout")
        print("hello stderr", file=sys.stderr)
        time.sleep(0.2)
        pathlib.Path({str(marker)!r}).write_text("ok")
        time.sleep(60)
    """
    with ManagedProcess(py(code), log_path=tmp_path / "logs" / "p.log", name="sleeper") as proc:
        waited = proc.wait_ready(marker.exists, timeout=10)
        assert waited >= 0.1
        assert proc.is_running()
        log = proc.log_path.read_text()
        assert "hello stdout" in log and "hello stderr" in log
        assert log.startswith("--- ") and "start:" in log.splitlines()[0]
        pid = proc.pid
    assert pid is not None and not alive(pid)
    assert proc.returncode is not None


def test_env_and_cwd(tmp_path: Path) -> None:
    code = "import os; print('X=' + os.environ['X_TEST'], 'CWD=' + os.getcwd())"
    proc = ManagedProcess(py(code), log_path=tmp_path / "p.log", env={"X_TEST": "42"}, cwd=tmp_path).start()
    deadline = time.monotonic() + 10
    while proc.returncode is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.returncode == 0
    assert f"X=42 CWD={tmp_path}" in proc.log_path.read_text()
    proc.stop()


def test_death_during_startup_reports_last_log_lines(tmp_path: Path) -> None:
    code = """
        import sys
        for i in range(40):
            print(f"line {i}")
        sys.exit(3)
    """
    proc = ManagedProcess(py(code), log_path=tmp_path / "p.log", name="crasher").start()
    with pytest.raises(StartupError) as info:
        proc.wait_ready(lambda: False, timeout=20)
    message = str(info.value)
    first = message.splitlines()[0]
    assert "crasher exited with code 3 during start-up" in first
    assert str(proc.log_path) in first
    assert "line 39" in message and "line 20" in message
    assert "line 19" not in message  # only the last 20 lines
    assert not proc.is_running()


def test_not_ready_in_time_stops_process(tmp_path: Path) -> None:
    def probe() -> bool:
        raise ConnectionError("nobody home")

    proc = ManagedProcess(
        py("import time; print('waiting'); time.sleep(60)"), log_path=tmp_path / "p.log"
    ).start()
    with pytest.raises(
        StartupError, match=r"not ready after 0.5 s \(last probe error: ConnectionError: nobody home\)"
    ):
        proc.wait_ready(probe, timeout=0.5)
    assert not proc.is_running()


def test_missing_executable_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="not found"):
        ManagedProcess([str(tmp_path / "nope")], log_path=tmp_path / "p.log").start()


def written_pid(path: Path) -> int | None:
    """The PID another process wrote to `path` (one line), or None while it is missing or half written:
    the file exists before its content does."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") and text.strip().isdigit() else None


def test_stop_kills_children_and_stubborn_processes(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = f"""
        import signal, subprocess, sys, time, pathlib
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # ignore the polite request
        child = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
        pathlib.Path({str(pidfile)!r}).write_text(f"{{child.pid}}\\n")
        time.sleep(60)
    """
    proc = ManagedProcess(py(code), log_path=tmp_path / "p.log").start()
    proc.wait_ready(lambda: written_pid(pidfile) is not None, timeout=10)
    child = written_pid(pidfile)
    assert child is not None
    assert alive(child)
    code_ = proc.stop(timeout=0.5)
    assert code_ == -9
    assert wait_dead(proc.pid or 0, child) == []
    assert proc.stop() is not None  # idempotent


def test_kill_is_immediate(tmp_path: Path) -> None:
    proc = ManagedProcess(py("import time; time.sleep(60)"), log_path=tmp_path / "p.log").start()
    assert proc.kill() == -9
    assert not proc.is_running()
    proc.start()  # can be started again, appending to the same log
    assert proc.is_running()
    proc.stop()
    assert proc.log_path.read_text().count("start:") == 2


@pytest.mark.parametrize("how", ["parent-killed", "parent-exits"])
def test_child_dies_with_its_parent(tmp_path: Path, how: str) -> None:
    """PR_SET_PDEATHSIG covers a SIGKILLed parent; atexit covers a parent that just forgets to stop."""
    ending = "os.kill(os.getpid(), signal.SIGKILL)" if how == "parent-killed" else "sys.exit(0)"
    code = f"""
        import os, signal, sys, time
        from pathlib import Path
        from harness.processes import ManagedProcess
        proc = ManagedProcess([sys.executable, "-c", "import time; time.sleep(60)"],
                              log_path=Path({str(tmp_path / "child.log")!r})).start()
        print(proc.pid, flush=True)
        time.sleep(0.2)
        {ending}
    """
    out = subprocess.run(py(code), capture_output=True, text=True, timeout=30)
    child = int(out.stdout.split()[0])
    assert wait_dead(child) == [], f"child {child} outlived its parent ({how})"


def test_free_port_and_port_taken() -> None:
    port = free_port()
    ensure_port_free(port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert port_is_open(port)
        with pytest.raises(
            PortInUseError, match=rf"cannot start Azurite blob: port 127.0.0.1:{port} is already in use"
        ):
            ensure_port_free(port, what="Azurite blob")
    assert not port_is_open(port)


def test_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert tail(log) == ""
    log.write_text("".join(f"{i}\n" for i in range(100)))
    assert tail(log, 3) == "97\n98\n99"


def test_port_argument() -> None:
    import argparse

    from harness.processes import port_argument

    assert port_argument("1") == 1 and port_argument("65535") == 65535
    assert port_argument("0", allow_zero=True) == 0
    for bad in ["0", "-5", "65536", "99999", "http", ""]:
        with pytest.raises(argparse.ArgumentTypeError, match="expected a number from 1 to 65535"):
            port_argument(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a number from 0 to 65535"):
        port_argument("-1", allow_zero=True)


def test_managed_service_lifecycle_and_context_manager(tmp_path: Path) -> None:
    from harness.processes import ManagedService, StartStop

    class Sleeper(ManagedService):
        def start(self) -> Sleeper:
            self._proc = ManagedProcess(py("import time; time.sleep(60)"), log_path=tmp_path / "s.log")
            self._proc.start()
            return self

    service = Sleeper()
    assert service.process is None and service.pid is None and not service.is_running()
    service.stop()  # before start: a no-op
    with service as entered:
        assert entered is service
        assert service.is_running() and service.pid == service.process.pid
        pid = service.pid
    assert not service.is_running() and wait_dead(pid) == []

    events: list[str] = []

    class Recorder(StartStop):
        def start(self) -> float:  # what start() returns does not matter: `with` yields the object
            events.append("start")
            return 1.5

        def stop(self) -> None:
            events.append("stop")

    with pytest.raises(RuntimeError), Recorder() as recorder:
        assert isinstance(recorder, Recorder)
        raise RuntimeError("boom")
    assert events == ["start", "stop"]
