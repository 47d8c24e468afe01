"""harness.azurite: locating/installing Azurite and running it (real Azurite, installed on first use)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.azurite import (
    ACCOUNT_NAME,
    AZURITE_VERSION,
    Azurite,
    AzuriteNotFoundError,
    azurite_install_dir,
    cache_dir,
    ensure_azurite,
    find_azurite,
)
from harness.processes import ensure_port_free, port_is_open
from tests.harness.standins import alive, wait_dead, write_executable


@pytest.fixture(scope="module")
def azurite_exe() -> Path:
    if shutil.which("node") is None and find_azurite() is None:
        pytest.skip("node is not installed")
    return ensure_azurite()


@pytest.fixture
def running(tmp_path: Path, azurite_exe: Path) -> Iterator[Azurite]:
    with Azurite(tmp_path / "data", executable=azurite_exe) as emulator:
        yield emulator


@pytest.mark.integration
def test_three_services_answer(running: Azurite) -> None:
    assert running.is_running()
    assert len(set(running.ports.values())) == 3
    for service in ("blob", "queue", "table"):
        assert port_is_open(running.ports[service])
        response = httpx.get(f"{running.endpoint(service)}?comp=list", timeout=5)
        assert response.status_code < 500
    assert "successfully listening" in running.log_path.read_text()
    assert running.data_dir.is_dir() and running.log_path == running.data_dir / "azurite.log"


@pytest.mark.integration
def test_connection_string_works_with_sdks(running: Azurite) -> None:
    from azure.data.tables import TableServiceClient
    from azure.storage.queue import QueueServiceClient

    conn = running.connection_string
    assert f"AccountName={ACCOUNT_NAME}" in conn
    assert f"TableEndpoint=http://127.0.0.1:{running.table_port}/{ACCOUNT_NAME}" in conn
    tables = TableServiceClient.from_connection_string(conn)
    tables.create_table("harnesstest")
    assert "harnesstest" in [t.name for t in tables.list_tables()]
    queues = QueueServiceClient.from_connection_string(conn)
    queues.create_queue("harness-test")
    assert "harness-test" in [q.name for q in queues.list_queues()]


@pytest.mark.integration
def test_stop_frees_ports(tmp_path: Path, azurite_exe: Path) -> None:
    emulator = Azurite(tmp_path / "data", executable=azurite_exe).start()
    pid, ports = emulator.pid, dict(emulator.ports)
    emulator.stop()
    assert pid is not None and wait_dead(pid) == []
    for port in ports.values():
        ensure_port_free(port)
    emulator.stop()  # idempotent


@pytest.mark.integration
def test_requested_port_taken(tmp_path: Path, azurite_exe: Path, running: Azurite) -> None:
    with pytest.raises(Exception, match=f"port 127.0.0.1:{running.blob_port} is already in use"):
        Azurite(tmp_path / "other", executable=azurite_exe, blob_port=running.blob_port).start()


def test_cache_dir_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLEAGENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DURABLEAGENT_AZURITE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    assert cache_dir() == tmp_path / "cache"
    assert azurite_install_dir() == tmp_path / "cache" / f"azurite-{AZURITE_VERSION}"
    assert find_azurite() is None
    exe = write_executable(azurite_install_dir() / "node_modules" / ".bin" / "azurite", "")
    assert find_azurite() == exe
    assert ensure_azurite() == exe


def test_missing_node_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLEAGENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DURABLEAGENT_AZURITE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(AzuriteNotFoundError, match="node/npm are not on PATH"):
        ensure_azurite()


def test_failed_install_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    write_executable(bin_dir / "node", "")
    write_executable(bin_dir / "npm", "import sys\nprint('npm ERR! 404 Not Found - azurite')\nsys.exit(1)\n")
    monkeypatch.setenv("DURABLEAGENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DURABLEAGENT_AZURITE", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    messages: list[str] = []
    with pytest.raises(AzuriteNotFoundError, match=r"failed \(exit 1\): npm ERR! 404 Not Found - azurite"):
        ensure_azurite(on_progress=messages.append)
    assert messages and "Installing Azurite" in messages[0]
    assert not azurite_install_dir().exists()
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f"azurite-{AZURITE_VERSION}-install.log"]


def test_successful_install_uses_npm_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fake npm that "installs" a bin: the staging folder is renamed into the cache."""
    bin_dir = tmp_path / "bin"
    write_executable(bin_dir / "node", "")
    npm = """
import os, pathlib, sys
args = sys.argv[1:]
assert args[:3] == ["install", "--no-audit", "--no-fund"], args
assert args[-1] == "azurite@3.35.0", args
prefix = pathlib.Path(args[args.index("--prefix") + 1])
exe = prefix / "node_modules" / ".bin" / "azurite"
exe.parent.mkdir(parents=True)
exe.write_text("#!/bin/sh\\n")
exe.chmod(0o755)
print("added 1 package")
"""
    write_executable(bin_dir / "npm", npm)
    monkeypatch.setenv("DURABLEAGENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DURABLEAGENT_AZURITE", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    exe = ensure_azurite(quiet=True)
    assert exe == azurite_install_dir() / "node_modules" / ".bin" / "azurite"
    assert exe.exists()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".log")) == [
        f"azurite-{AZURITE_VERSION}"
    ]


def test_dead_azurite_reports_its_log(tmp_path: Path) -> None:
    exe = write_executable(
        tmp_path / "azurite", "import sys\nprint('azurite: bad flag', sys.argv[1:3])\nsys.exit(2)\n"
    )
    emulator = Azurite(tmp_path / "data", executable=exe)
    with pytest.raises(Exception, match="azurite exited with code 2 during start-up") as info:
        emulator.start()
    assert "azurite: bad flag ['--location'" in str(info.value)
    assert emulator.pid is not None and not alive(emulator.pid)


def test_missing_node_message_recommends_node_20(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DURABLEAGENT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("DURABLEAGENT_AZURITE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(AzuriteNotFoundError) as info:
        ensure_azurite()
    assert "Node.js (20 or newer recommended; 18 works)" in str(info.value)


def test_command_keeps_data_in_the_data_folder(tmp_path: Path) -> None:
    emulator = Azurite(tmp_path / "data")
    emulator.ports = {"blob": 1, "queue": 2, "table": 3}
    args = emulator.command(Path("azurite"))
    assert args[1:3] == ["--location", str(tmp_path / "data")]


def test_azurite_is_a_managed_service(tmp_path: Path) -> None:
    from harness.processes import ManagedService

    emulator = Azurite(tmp_path / "data")
    assert isinstance(emulator, ManagedService)
    assert emulator.process is None and emulator.pid is None and not emulator.is_running()
    emulator.stop()  # never started: nothing to do


def test_one_development_account(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local host's default storage is the emulator's account on Azurite's default ports."""
    from harness.azurite import connection_string
    from harness.host import settings

    assert settings.dev_storage_connection_string() == connection_string(10000, 10001, 10002)
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    assert settings.resolve_storage(None) == connection_string(10000, 10001, 10002)


@pytest.mark.integration
def test_stop_is_graceful_and_keeps_what_was_written_just_before(tmp_path: Path, azurite_exe: Path) -> None:
    """Azurite killed with SIGKILL loses the writes it acknowledged in its last seconds; `stop()` ends
    it with SIGTERM and waits for its clean exit, so a write answered just before is there after."""
    from azure.data.tables import TableServiceClient

    emulator = Azurite(tmp_path / "data", executable=azurite_exe).start()
    table = TableServiceClient.from_connection_string(emulator.connection_string).create_table("laststeps")
    for row in range(20):
        table.create_entity({"PartitionKey": "p", "RowKey": f"{row:03}"})
    emulator.stop()
    assert emulator.process is not None and emulator.process.returncode == 0
    assert "Azurite Table service successfully closed" in emulator.log_path.read_text()
    with Azurite(tmp_path / "data", executable=azurite_exe) as again:
        tables = TableServiceClient.from_connection_string(again.connection_string)
        rows = list(tables.get_table_client("laststeps").list_entities())
    assert len(rows) == 20


SLOW_TO_STOP = """
import signal, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

for service in ("blob", "queue", "table"):
    port = int(sys.argv[sys.argv.index(f"--{service}Port") + 1])
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

def on_term(signum, frame):
    time.sleep(3.5)  # saving a large database takes a while
    print("stand-in azurite: saved and closed", flush=True)
    sys.exit(0)

signal.signal(signal.SIGTERM, on_term)
print("stand-in azurite: listening", flush=True)
while True:
    time.sleep(1)
"""


def test_exit_teardown_waits_for_azurite_to_close(tmp_path: Path) -> None:
    """An Azurite the program never stopped is stopped at interpreter exit: it gets its whole grace,
    not the few seconds an ordinary child gets there, and is not killed while it saves."""
    import subprocess
    import sys

    exe = write_executable(tmp_path / "azurite", SLOW_TO_STOP)
    program = (
        "import sys; from pathlib import Path; from harness.azurite import Azurite; "
        "emulator = Azurite(Path(sys.argv[1]), executable=Path(sys.argv[2])).start(); print(emulator.pid)"
    )
    done = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "data"), str(exe)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert wait_dead(int(done.stdout)) == []
    log = (tmp_path / "data" / "azurite.log").read_text()
    assert "saved and closed" in log and "SIGKILL" not in log
