"""`up` and `ask` on a workspace, as real subprocesses on real Azurite: sessions survive a restart,
one stack at a time, `--fresh` leaves the workspace alone, and nothing is left in the temp dir."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import httpx
import pytest

from harness.cli.main import main
from harness.processes import free_port
from harness.workspace import WORKSPACE_DIR
from tests.cli.cli_process import UpProcess, cli_env, one_line, run_cli

pytestmark = pytest.mark.integration


def test_up_keeps_sessions_in_the_app_folder_across_restarts(app: Path, tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    port = free_port()
    up = UpProcess("--host", "local", "--port", str(port), cwd=app, env=env, log=tmp_path / "up.log")
    try:
        banner = " ".join(up.wait_banner().split())
        assert f"App {app} (the current folder)" in banner
        assert f"Workspace {app / WORKSPACE_DIR} (in the app folder)" in banner
        assert f"Azurite data {app / WORKSPACE_DIR / 'azurite'}" in banner
        assert (app / WORKSPACE_DIR / ".gitignore").read_text().splitlines()[-1] == "*"
        body = {"message": "What's the weather in Paris?", "sessionId": "kept-1"}
        assert httpx.post(f"{up.url}/api/agents/WeatherAgent/run", json=body, timeout=60).status_code == 200

        # A second stack on the same workspace is refused, naming the running one.
        refused = run_cli("ask", "WeatherAgent", "hi", "--host", "local", cwd=app, env=env)
        assert refused.returncode == 1, refused
        line = one_line(refused.stderr)
        assert f"workspace {app / WORKSPACE_DIR} is in use by another stack" in line
        assert "--data DIR" in line and "--fresh" in line and f"--url {up.url}" in line

        # --fresh runs beside it, empty, and leaves neither the workspace nor the temp dir touched.
        fresh = run_cli("ask", "WeatherAgent", "hi", "--host", "local", "--fresh", "--json", cwd=app, env=env)
        assert fresh.returncode == 0, fresh.stderr
        assert json.loads(fresh.stdout)["messageCount"] == 2
        assert list((tmp_path / "tmp").iterdir()) == []
        assert up.stop(signal.SIGTERM) == -signal.SIGTERM
    finally:
        up.close()
    assert list((tmp_path / "tmp").iterdir()) == []

    # The next run on the workspace sees the session of the last one.
    again = run_cli(
        "ask",
        "WeatherAgent",
        "And in Rome?",
        "--session",
        "kept-1",
        "--host",
        "local",
        "--json",
        cwd=app,
        env=env,
    )
    assert again.returncode == 0, again.stderr
    reply = json.loads(again.stdout)
    assert reply["sessionId"] == "kept-1" and reply["messageCount"] == 4
    assert list((tmp_path / "tmp").iterdir()) == []
    assert (app / WORKSPACE_DIR / "logs" / "host.log").is_file()


def test_an_app_folder_that_cannot_hold_a_workspace_uses_a_per_user_one(app: Path, tmp_path: Path) -> None:
    (app / WORKSPACE_DIR).write_text("a file in the way")
    env = cli_env(tmp_path)
    up = UpProcess("--host", "local", "--app", str(app), cwd=tmp_path, env=env, log=tmp_path / "up.log")
    try:
        banner = " ".join(up.wait_banner().split())
        match = re.search(r"Workspace (\S+) \(per-user: the app folder cannot be written \(", banner)
        assert match, banner
        workspace = Path(match.group(1))
        assert workspace.parent == tmp_path / "xdg" / "durableagent" / "workspaces"
        assert (workspace / "azurite").is_dir()
        assert f"App {app}" in banner and "(the current folder)" not in banner
        up.stop(signal.SIGINT)
    finally:
        up.close()
    assert up.proc.returncode == 0, up.text
    assert list((tmp_path / "tmp").iterdir()) == []


def test_data_and_fresh_are_checked_before_anything_starts(tmp_path: Path, capsys) -> None:
    (tmp_path / "afile").write_text("x")
    assert main(["up", "--data", str(tmp_path / "afile")]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"python -m harness: error: --data {tmp_path / 'afile'} is not a folder"
    )
    with pytest.raises(SystemExit) as info:
        main(["up", "--data", str(tmp_path), "--fresh"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
