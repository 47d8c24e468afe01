"""harness.stack: FunctionHost with a stand-in ``func`` on PATH, and the whole Stack on real Azurite."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.processes import PortInUseError, StartupError, free_port
from harness.stack import DEFAULT_APP_DIR, FunctionHost, Stack, resolve_host_mode
from tests.harness.standins import alive, path_with, wait_dead, write_fake_func


@pytest.fixture
def fake_func(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A stand-in ``func`` first on PATH."""
    path = write_fake_func(tmp_path / "bin")
    monkeypatch.setenv("PATH", path_with(path.parent))
    return path


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    app.mkdir()
    (app / "host.json").write_text("{}")
    return app


def child_pid(log: str) -> int:
    match = re.search(r"child (\d+)", log)
    assert match, log
    return int(match.group(1))


def test_default_app_dir_is_the_weather_sample() -> None:
    assert DEFAULT_APP_DIR == Path(__file__).resolve().parents[2] / "samples" / "weather"


def test_auto_picks_func_on_path(fake_func: Path, app_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text("{}")
    host = FunctionHost(
        app_dir,
        storage="UseDevelopmentStorage=true",
        mode="auto",
        chat_script=script,
        chat_record=tmp_path / "rec.jsonl",
        task_hub="hub1",
        env={"FAKE_FUNC_EXTRA": "yes"},
        log_path=tmp_path / "logs" / "host.log",
    )
    assert host.mode == "func"
    with host:
        assert host.command() == [str(fake_func), "start", "--port", str(host.port)]
        env = httpx.get(f"{host.url}/env").json()
        assert env["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
        assert env["DURABLEAGENT_CHAT_SCRIPT"] == str(script)
        assert env["DURABLEAGENT_CHAT_RECORD"] == str(tmp_path / "rec.jsonl")
        assert env["DURABLEAGENT_TASK_HUB"] == "hub1"
        assert env["FAKE_FUNC_EXTRA"] == "yes"
        log = host.log_path.read_text()
        assert f"fake func: app {app_dir} port {host.port}" in log
        pids = [env["pid"], env["child"]]
        assert all(alive(pid) for pid in pids)
    assert wait_dead(*pids) == []
    assert "GET /env" in host.log_path.read_text()


def test_live_host_does_not_inherit_a_chat_script(
    fake_func: Path, app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLEAGENT_CHAT_SCRIPT", "/somewhere/else.json")
    with FunctionHost(app_dir, mode="func", log_path=tmp_path / "host.log") as host:
        env = httpx.get(f"{host.url}/env").json()
    assert env["DURABLEAGENT_CHAT_SCRIPT"] is None and env["AzureWebJobsStorage"] is None


def test_crash_during_startup(fake_func: Path, app_dir: Path, tmp_path: Path) -> None:
    host = FunctionHost(app_dir, mode="func", env={"FAKE_FUNC_CRASH": "1"}, log_path=tmp_path / "host.log")
    with pytest.raises(StartupError) as info:
        host.start(timeout=20)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("func exited with code 3 during start-up; log: ")
    assert lines[-1] == "fake func: boom, cannot load the app"
    assert not host.is_running()


def test_slow_host_times_out(fake_func: Path, app_dir: Path, tmp_path: Path) -> None:
    host = FunctionHost(app_dir, mode="func", env={"FAKE_FUNC_DELAY": "30"}, log_path=tmp_path / "host.log")
    with pytest.raises(StartupError, match=r"func was not ready after 0.5 s"):
        host.start(timeout=0.5)
    pid = host.pid
    assert pid is not None and wait_dead(pid) == []
    assert wait_dead(child_pid(host.log_path.read_text())) == []


def test_restart_keeps_port(fake_func: Path, app_dir: Path, tmp_path: Path) -> None:
    with FunctionHost(app_dir, mode="func", log_path=tmp_path / "host.log") as host:
        port, first = host.port, host.pid
        for kill in (True, False):
            assert host.restart(kill=kill) < 10
            assert host.port == port and host.pid != first and host.ready()
            assert first is not None and not alive(first)
            first = host.pid
    assert host.log_path.read_text().count("start:") == 3


def test_requested_port_taken(fake_func: Path, app_dir: Path, tmp_path: Path) -> None:
    with FunctionHost(app_dir, mode="func", log_path=tmp_path / "a.log") as first:
        other = FunctionHost(app_dir, mode="func", port=first.port, log_path=tmp_path / "b.log")
        with pytest.raises(PortInUseError, match=f"Functions host \\(func\\): port 127.0.0.1:{first.port}"):
            other.start()


def test_preferred_port_when_free_else_any(fake_func: Path, app_dir: Path, tmp_path: Path) -> None:
    """The CLI prefers 7071, as `func` does; taken, another port serves instead of a failed start."""
    wanted = free_port()
    with FunctionHost(app_dir, mode="func", preferred_port=wanted, log_path=tmp_path / "a.log") as first:
        assert first.port == wanted and first.ready()
        second = FunctionHost(app_dir, mode="func", preferred_port=wanted, log_path=tmp_path / "b.log")
        with second:
            assert second.port != wanted and second.ready()


def test_modes(tmp_path: Path, app_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert resolve_host_mode("auto") == "local"
    with pytest.raises(StartupError, match="needs Azure Functions Core Tools"):
        resolve_host_mode("func")
    with pytest.raises(ValueError, match="host mode must be one of"):
        resolve_host_mode("docker")
    host = FunctionHost(app_dir, mode="local", storage="conn", port=7999, log_path=tmp_path / "h.log")
    assert host.command() == [
        sys.executable,
        "-m",
        "harness.host",
        str(app_dir),
        "--port",
        "7999",
        "--storage",
        "conn",
    ]
    with pytest.raises(StartupError, match="does not exist"):
        FunctionHost(tmp_path / "missing")


@pytest.mark.integration
def test_stack_with_func_and_real_azurite(fake_func: Path, app_dir: Path, tmp_path: Path) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": ["hi"]}))
    messages: list[str] = []
    stack = Stack(
        app_dir, host_mode="auto", script=script, work_dir=tmp_path / "work", on_progress=messages.append
    )
    with stack:
        assert stack.is_running()
        assert stack.url == stack.host.url
        env = httpx.get(f"{stack.url}/env").json()
        assert env["AzureWebJobsStorage"] == stack.azurite.connection_string
        assert env["DURABLEAGENT_CHAT_SCRIPT"] == str(script)
        assert env["DURABLEAGENT_CHAT_RECORD"] == str(tmp_path / "work" / "logs" / "chat-requests.jsonl")
        assert stack.log_paths == {
            "azurite": tmp_path / "work" / "logs" / "azurite.log",
            "host": tmp_path / "work" / "logs" / "host.log",
        }
        pids = [stack.azurite.pid, stack.host.pid, env["child"]]
    assert wait_dead(*[p for p in pids if p]) == []
    assert messages[0] == "Starting Azurite..."
    assert messages[-1].startswith(f"Stack ready at {stack.url} in ")


@pytest.mark.integration
def test_stack_failure_leaves_nothing_running(
    fake_func: Path, app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a failed start keeps its folder (logs)
    stack = Stack(
        app_dir, host_mode="func", script=tmp_path / "s.json", env={"FAKE_FUNC_CRASH": "1"}, progress=False
    )
    with pytest.raises(StartupError, match="func exited with code 3"):
        stack.start()
    assert not stack.azurite.is_running() and not stack.host.is_running()


def test_stack_live_has_no_script(app_dir: Path, tmp_path: Path) -> None:
    stack = Stack(app_dir, host_mode="local", live=True, work_dir=tmp_path)
    assert stack.script_path is None and stack.record_path is None
    assert "DURABLEAGENT_CHAT_SCRIPT" not in stack.host.environment()
    with pytest.raises(ValueError):
        Stack(app_dir, live=True, script=tmp_path / "x.json")


def test_free_port_host_is_not_started_twice(fake_func: Path, app_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    with FunctionHost(app_dir, mode="func", port=port, log_path=tmp_path / "h.log") as host:
        pid = host.pid
        assert host.start() is host and host.pid == pid


@pytest.mark.integration
def test_stack_local_host_on_weather_sample(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real pieces together: Azurite + ``python -m harness.host`` + the default weather script."""
    import importlib.util

    if shutil.which("node") is None or importlib.util.find_spec("harness.host.__main__") is None:
        pytest.skip("needs node and harness.host")
    node_dir = Path(shutil.which("node") or "").parent
    monkeypatch.setenv("PATH", str(node_dir))  # no `func`: auto must fall back to the local host
    if shutil.which("func"):
        pytest.skip("func is installed next to node")
    with Stack(host_mode="auto", work_dir=tmp_path / "work", progress=False) as stack:
        assert stack.host.mode == "local"
        body = {"message": "weather in Paris?", "sessionId": "harness-local"}
        reply = httpx.post(f"{stack.url}/api/agents/WeatherAgent/run", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
        assert stack.record_path is not None and stack.record_path.read_text().strip()
        stack.restart_host(kill=True)
        state = httpx.get(f"{stack.url}/api/agents/WeatherAgent/harness-local", timeout=30).json()
        assert state["message_count"] == 2  # durable state survived a crash of the host


def test_host_modes_are_defined_once(capsys: pytest.CaptureFixture[str]) -> None:
    from typing import get_args

    import harness.cli.main
    import harness.cli.options
    import harness.pytest_plugin
    from harness.processes import ManagedService, StartStop
    from harness.stack import HOST_MODES, HostMode

    assert HOST_MODES == get_args(HostMode) == ("func", "local", "auto")
    assert harness.cli.options.HOST_MODES is HOST_MODES
    assert harness.pytest_plugin.HOST_MODES is HOST_MODES
    parser = harness.cli.main.build_parser()
    for mode in HOST_MODES:
        assert parser.parse_args(["chat", "WeatherAgent", "--host", mode]).host_mode == mode
    with pytest.raises(SystemExit):
        parser.parse_args(["chat", "WeatherAgent", "--host", "docker"])
    assert "invalid choice: 'docker'" in capsys.readouterr().err
    assert issubclass(FunctionHost, ManagedService) and issubclass(Stack, StartStop)


def test_stack_context_manager_starts_and_stops(
    monkeypatch: pytest.MonkeyPatch, app_dir: Path, tmp_path: Path
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(Stack, "start", lambda self, timeout=120.0: calls.append("start") or 0.1)
    monkeypatch.setattr(Stack, "stop", lambda self: calls.append("stop"))
    with Stack(app_dir, host_mode="local", work_dir=tmp_path / "work", progress=False) as stack:
        assert isinstance(stack, Stack)
    assert calls == ["start", "stop"]


def test_host_with_a_script_records_beside_its_log_by_default(app_dir: Path, tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text("{}")
    host = FunctionHost(app_dir, mode="local", chat_script=script, log_path=tmp_path / "logs" / "host.log")
    assert host.environment()["DURABLEAGENT_CHAT_RECORD"] == str(tmp_path / "logs" / "chat-requests.jsonl")


def _needs_node() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")


@pytest.mark.integration
def test_stack_removes_the_work_folder_it_made_on_a_clean_stop(
    fake_func: Path, app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs_node()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": ["hi"]}))
    with Stack(app_dir, host_mode="func", script=script, progress=False) as stack:
        assert stack.work_dir.parent == tmp_path / "tmp" and stack.work_dir.name.startswith(
            "durableagent-stack-"
        )
        assert (stack.work_dir / "logs" / "host.log").is_file()
        pids = [stack.azurite.pid, stack.host.pid]
    assert wait_dead(*[p for p in pids if p]) == []
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.integration
def test_failed_start_keeps_the_work_folder_with_its_logs(
    fake_func: Path, app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs_node()
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stack = Stack(app_dir, host_mode="func", env={"FAKE_FUNC_CRASH": "1"}, progress=False)
    with pytest.raises(StartupError) as info:
        stack.start()
    assert str(stack.host.log_path) in str(info.value)
    assert "boom" in stack.host.log_path.read_text()  # the log the error names is still there


@pytest.mark.integration
def test_stop_interrupted_in_the_host_still_stops_azurite_gracefully(
    fake_func: Path, app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second Ctrl-C while the host stops must not leave Azurite to be killed later (SIGKILL loses
    its last acknowledged writes): it is stopped, by SIGTERM, before the interrupt goes on."""
    _needs_node()
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": ["hi"]}))
    stack = Stack(app_dir, host_mode="func", script=script, work_dir=tmp_path / "work", progress=False)
    stack.start()
    real_stop = stack.host.stop

    def interrupted(timeout: float | None = None) -> None:
        real_stop(timeout)
        raise KeyboardInterrupt

    monkeypatch.setattr(stack.host, "stop", interrupted)
    with pytest.raises(KeyboardInterrupt):
        stack.stop()
    assert stack.azurite.process is not None and stack.azurite.process.returncode == 0
    assert "Azurite Blob service successfully closed" in stack.azurite.log_path.read_text()


def test_named_work_folder_is_kept(app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Stack, "start", lambda self, timeout=120.0: 0.1)
    with Stack(app_dir, host_mode="local", work_dir=tmp_path / "mine", progress=False):
        pass
    assert (tmp_path / "mine").is_dir()


SIGTERM_RUNNER = """
import sys, time
from pathlib import Path
from harness.stack import Stack
stack = Stack(Path(sys.argv[1]), host_mode="func", script=Path(sys.argv[2]), progress=False)
try:
    stack.start()
    print(stack.work_dir, stack.azurite.pid, stack.host.pid, flush=True)
    while stack.is_running():
        time.sleep(0.1)
finally:
    stack.stop()
"""


def _end_runner(runner: subprocess.Popen[str], groups: list[int]) -> None:
    """Whatever the test's outcome, leave nothing running: the runner, then the groups of the stack's
    processes (a killed runner's host leaves its own children behind). Azurite's group gets SIGTERM:
    SIGKILL can lose its last acknowledged writes."""
    if runner.poll() is None:
        runner.terminate()
        try:
            runner.wait(timeout=15)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait()
    for group, sig in zip(groups, (signal.SIGTERM, signal.SIGKILL), strict=False):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)


@pytest.mark.integration
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_sigterm_stops_the_stack_and_removes_its_work_folder(
    fake_func: Path, app_dir: Path, tmp_path: Path, signum: signal.Signals
) -> None:
    """`harness up` killed with SIGTERM, or its terminal closed (SIGHUP): Python's default would skip
    every finally and leave the folder."""
    _needs_node()
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"steps": ["hi"]}))
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    runner = subprocess.Popen(
        [sys.executable, "-c", SIGTERM_RUNNER, str(app_dir), str(script)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        # The default disposition is what a shell gives `harness up`; under `nohup` the test itself
        # runs with SIGHUP ignored, which a child would inherit (and rightly keep ignoring).
        preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL),
    )
    pids: list[str] = []
    try:
        assert runner.stdout is not None
        work_dir, *pids = runner.stdout.readline().split()
        assert Path(work_dir).is_dir(), work_dir
        runner.send_signal(signum)
        assert runner.wait(timeout=30) == -signum
    finally:
        _end_runner(runner, [int(p) for p in pids])
    assert wait_dead(*[int(p) for p in pids]) == []
    assert not Path(work_dir).exists()
    assert list((tmp_path / "tmp").iterdir()) == []
