"""`up` takes 7071 when it is free (as `func`), and the client commands find the app's running stack
through its workspace whatever port it got, before falling back to 7071."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.client import DEFAULT_PORT
from harness.processes import free_port, port_is_open
from harness.workspace import WORKSPACE_DIR, running_url
from tests.cli.cli_process import UpProcess, cli_env, one_line, run_cli


@pytest.fixture
def default_port_taken() -> Iterator[socket.socket]:
    """Something listening on 7071 (this socket, unless someone else on this machine has the port
    already, which is the same for the test); close it to free the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past earlier stacks' TIME_WAIT
    with contextlib.suppress(OSError):
        sock.bind(("127.0.0.1", DEFAULT_PORT))
        sock.listen()
    try:
        yield sock
    finally:
        sock.close()


@pytest.mark.integration
def test_commands_find_the_running_stack_whatever_its_port(
    app: Path, tmp_path: Path, default_port_taken: socket.socket
) -> None:
    env = cli_env(tmp_path)
    up = UpProcess("--host", "local", cwd=app, env=env, log=tmp_path / "up.log")
    try:
        text = up.wait_banner()
        port = int(up.url.rsplit(":", 1)[1])
        assert port != DEFAULT_PORT
        notes = [line for line in text.splitlines() if "is in use" in line]
        assert notes == [
            f"python -m harness: port {DEFAULT_PORT} is in use; the host listens on port {port} instead "
            "(python -m harness sessions/show/... find it through the app's workspace)"
        ]
        assert running_url(app) == up.url

        # ask with no stack options talks to the running stack instead of being refused its workspace.
        asked = run_cli("ask", "WeatherAgent", "Weather in Paris?", "--json", cwd=app, env=env)
        assert asked.returncode == 0, asked.stderr
        assert f"using the stack already running for this app at {up.url}" in asked.stderr
        session = json.loads(asked.stdout)["sessionId"]

        listed = run_cli("sessions", "WeatherAgent", "--json", cwd=app, env=env)
        assert listed.returncode == 0, listed.stderr
        assert [row["sessionId"] for row in json.loads(listed.stdout)] == [session]
        elsewhere = run_cli("instances", "--app", str(app), "--json", cwd=tmp_path, env=env)
        assert elsewhere.returncode == 0, elsewhere.stderr
        both = run_cli("sessions", "WeatherAgent", "--app", str(app), "--url", up.url, cwd=app, env=env)
        assert both.returncode == 2
        assert both.stderr.endswith("error: argument --url: not allowed with argument --app\n")
        assert up.stop(signal.SIGTERM) == -signal.SIGTERM
    finally:
        up.close()
    # Stopped: nothing names it any more, and the commands fall back to 7071.
    assert running_url(app) is None
    default_port_taken.close()
    if not port_is_open(DEFAULT_PORT):  # else another stack on this machine has it: it would answer
        after = run_cli("sessions", "WeatherAgent", cwd=app, env=env)
        assert after.returncode == 2
        assert one_line(after.stderr).startswith(f"cannot connect to http://127.0.0.1:{DEFAULT_PORT}")


def test_a_stack_that_died_without_stopping_is_not_found(app: Path) -> None:
    """A killed stack leaves its pid and URL in the lock file: a dead pid, or a port nobody listens on,
    is not a running stack."""
    (app / WORKSPACE_DIR).mkdir()
    lock = app / WORKSPACE_DIR / "lock"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    lock.write_text(json.dumps({"pid": int(dead.stdout), "url": f"http://127.0.0.1:{free_port()}"}))
    assert running_url(app) is None
    lock.write_text(json.dumps({"pid": os.getpid(), "url": f"http://127.0.0.1:{free_port()}"}))
    assert running_url(app) is None
    with socket.create_server(("127.0.0.1", 0)) as server:
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        lock.write_text(json.dumps({"pid": os.getpid(), "url": url}))
        assert running_url(app) == url
