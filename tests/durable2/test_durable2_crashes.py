"""A 2.x app's promises on the local host: its process killed mid-activity, the host SIGKILLed
mid-wait, an activity that fails; and the start refused with one line for a bad `--python`.

The app (`crashapp/`) runs in its own Python 3.13 as the sample does; the host is a subprocess, so
it can be SIGKILLed (with the app's process: they share the process group) and started again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from harness.azurite import Azurite
from harness.client import SyncAgentClient
from harness.stack import FunctionHost
from harness.testing.orchestrations import OrchestrationRun

from .conftest import app_host

APP = Path(__file__).resolve().parent / "crashapp"


@pytest.fixture(scope="module")
def tick_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ticks")


@pytest.fixture(scope="module")
def crash_host(
    azurite: Azurite, durable2_python: str, tmp_path_factory: pytest.TempPathFactory, tick_dir: Path
) -> Iterator[FunctionHost]:
    logs = tmp_path_factory.mktemp("crash2")
    with app_host(APP, azurite, durable2_python, logs, env={"TICK_DIR": str(tick_dir)}) as host:
        yield host


def start(host: FunctionHost, name: str, body: Any) -> OrchestrationRun:
    answer = httpx.post(f"{host.url}/api/start/{name}", json=body, timeout=30)
    assert answer.status_code == 202, answer.text
    return OrchestrationRun(SyncAgentClient(host.url), answer.json()["id"], timeout=90, interval=0.1)


def app_pid(host: FunctionHost) -> int:
    return int(httpx.get(f"{host.url}/api/pid", timeout=30).text)


def wait_for_file(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_app_process_killed_mid_activity_runs_it_again(crash_host: FunctionHost, tmp_path: Path) -> None:
    run = start(crash_host, "slow_then_done", {"folder": str(tmp_path), "seconds": 60})
    wait_for_file(tmp_path / "attempt-1")
    first = app_pid(crash_host)
    assert int((tmp_path / "attempt-1").read_text()) == first
    os.kill(first, signal.SIGKILL)
    status = run.wait()
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == "done after 2 attempts"
    assert app_pid(crash_host) != first  # a new process serves the app


def test_an_app_functions_failure_is_reported_as_its_own(crash_host: FunctionHost) -> None:
    answer = httpx.post(f"{crash_host.url}/api/start/waits", content=b"not json", timeout=30)
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error.startswith("Exception while executing function start: JSONDecodeError: Expecting value"), (
        error
    )


def test_a_queue_trigger_starts_an_orchestration(crash_host: FunctionHost, azurite: Azurite) -> None:
    iid = "from-queue-" + uuid.uuid4().hex[:8]
    queue = QueueClient.from_connection_string(
        azurite.connection_string, "starts2", message_encode_policy=TextBase64EncodePolicy()
    )
    with queue:
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        queue.send_message(iid)
    client = SyncAgentClient(crash_host.url)
    deadline = time.monotonic() + 60
    while (client.instance(iid) or {}).get("runtimeStatus") != "Running":
        assert time.monotonic() < deadline, "the queue message started no orchestration"
        time.sleep(0.1)
    run = OrchestrationRun(client, iid, timeout=60, interval=0.1)
    run.client.raise_event(iid, "Go", 1)
    assert run.wait()["output"] == {"go": 1}


def test_a_timer_trigger_fires_in_the_apps_process(crash_host: FunctionHost, tick_dir: Path) -> None:
    ticks = tick_dir / "ticks"
    wait_for_file(ticks)
    pid, past_due, function = ticks.read_text().splitlines()[0].split()
    assert past_due in ("past_due=False", "past_due=True")
    assert function == "tick"  # the invocation context the function asked for
    assert int(pid) != crash_host.pid  # the app's own process, not the host's


def test_critical_sections_over_two_accounts_lose_no_update(crash_host: FunctionHost) -> None:
    """Entity locks (the sidecar's, on the same engine) for a 2.x app's durabletask-native orchestrator:
    transfers that run at once each see and leave consistent balances."""
    names = {"source": "a-" + uuid.uuid4().hex[:6], "target": "b-" + uuid.uuid4().hex[:6]}
    runs = [start(crash_host, "transfer", {**names, "amount": 10}) for _ in range(4)]
    seen = sorted(run.wait()["output"] for run in runs)
    assert seen == [-30, -20, -10, 0]  # each section read the balance the one before left
    for key, balance in ((names["source"], -40), (names["target"], 40)):
        answer = httpx.get(
            f"{crash_host.url}/runtime/webhooks/durabletask/entities/Account/{key}", timeout=30
        )
        assert answer.status_code == 200 and answer.json() == balance, answer.text


def test_function_timeout_fails_a_hung_activity_and_a_hung_orchestrator(crash_host: FunctionHost) -> None:
    """host.json's functionTimeout (5 s in this app) bounds an activity and an episode in the app's
    process as in the host's: the activity fails with the Functions host's words, the blocking
    orchestrator fails its instance; the app's process goes on serving."""
    activity = start(crash_host, "catches_a_hang", 30)
    orchestrator = start(crash_host, "hangs_itself", 30)
    words = "Timeout value of 00:00:05 was exceeded by function: Functions."
    status = activity.wait()
    assert status["runtimeStatus"] == "Completed" and words + "hangs" in status["output"], status
    status = orchestrator.wait()
    assert status["runtimeStatus"] == "Failed" and words + "hangs_itself" in str(status["output"]), status
    assert app_pid(crash_host) > 0


def test_failed_activity_reaches_the_orchestrator(crash_host: FunctionHost) -> None:
    run = start(crash_host, "catches", "xyz")
    status = run.wait()
    assert status["runtimeStatus"] == "Completed", status
    assert "bad input 'xyz'" in status["output"]


def test_host_sigkill_while_waiting_loses_nothing(crash_host: FunctionHost) -> None:
    run = start(crash_host, "waits", {})
    run.wait_for(status="Running")
    crash_host.restart(kill=True)
    run = OrchestrationRun(SyncAgentClient(crash_host.url), run.id, timeout=90, interval=0.1)
    run.client.raise_event(run.id, "Go", {"after": "restart"})
    status = run.wait()
    assert status["output"] == {"go": {"after": "restart"}}, status


def host_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "host", *args, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_a_python_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    done = host_command(str(APP), "--python", str(tmp_path / "nope" / "python"))
    assert done.returncode == 2
    errors = [line for line in done.stdout.splitlines() if "ERROR" in line]
    assert len(errors) == 1 and "no such file" in errors[0], done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_2x_app_without_its_python_says_what_to_do() -> None:
    done = host_command(str(APP))
    assert done.returncode == 2
    assert "--python" in done.stdout and "azure-functions-durable 2.x" in done.stdout, done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_an_import_error_is_one_line_naming_where(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n\nraise KeyError('MY_SETTING')\n"
    )
    done = host_command(str(tmp_path), "--python", sys.executable)
    assert done.returncode == 2
    errors = [line for line in done.stdout.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stdout
    assert "KeyError: 'MY_SETTING' (at function_app.py:3)" in errors[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_python_without_the_2x_sdk_is_refused(tmp_path: Path, azurite: Azurite) -> None:
    (tmp_path / "function_app.py").write_text(
        "import azure.functions as func\n\napp = func.FunctionApp()\n\n\n"
        "@app.route(route='hello')\ndef hello(req: func.HttpRequest) -> str:\n    return 'hi'\n"
    )
    done = host_command(str(tmp_path), "--python", sys.executable, "--storage", azurite.connection_string)
    assert done.returncode == 2
    assert "an app runs in its own interpreter only on Durable Functions 2.x" in done.stdout, done.stdout
