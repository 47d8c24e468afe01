"""harness.workspace: the folder a stack keeps between runs, its lock, and where it goes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.processes import StartupError
from harness.stack import Stack
from harness.workspace import WORKSPACE_DIR, Workspace, WorkspaceBusy, app_workspace
from tests.harness.standins import wait_dead


def test_first_use_creates_the_folder_with_a_gitignore(tmp_path: Path) -> None:
    workspace = Workspace(tmp_path / "ws")
    workspace.acquire()
    try:
        assert (tmp_path / "ws" / ".gitignore").read_text().splitlines()[-1] == "*"
        assert workspace.azurite_dir == tmp_path / "ws" / "azurite"
        assert workspace.logs_dir == tmp_path / "ws" / "logs"
    finally:
        workspace.release()
    assert (tmp_path / "ws").is_dir()  # released, not removed


def test_a_second_holder_is_refused_naming_the_first_and_the_ways_out(tmp_path: Path) -> None:
    first, second = Workspace(tmp_path / "ws"), Workspace(tmp_path / "ws")
    first.acquire()
    first.describe("http://127.0.0.1:7071")
    try:
        with pytest.raises(WorkspaceBusy) as info:
            second.acquire()
        message = str(info.value)
        assert f"workspace {tmp_path / 'ws'} is in use by another stack" in message
        assert "--data DIR" in message and "--fresh" in message
        assert "--url http://127.0.0.1:7071" in message and info.value.url == "http://127.0.0.1:7071"
        assert "\n" not in message
        assert not second.locked
    finally:
        first.release()
    second.acquire()  # free again once released
    second.release()


HOLDER = """
import sys, time
from pathlib import Path
from harness.workspace import Workspace
workspace = Workspace(Path(sys.argv[1]))
workspace.acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_killed_holder_leaves_the_workspace_free(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "ws")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkspaceBusy, match=f"pid {holder.pid}"):
            Workspace(tmp_path / "ws").acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert wait_dead(holder.pid) == []
    workspace = Workspace(tmp_path / "ws")
    workspace.acquire()
    workspace.release()


def test_an_unwritable_place_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StartupError, match=r"^cannot use .*file/ws as the workspace: "):
        Workspace(tmp_path / "file" / "ws").acquire()


def test_the_app_folder_holds_the_workspace(tmp_path: Path) -> None:
    workspace = app_workspace(tmp_path)
    assert workspace.root == tmp_path / WORKSPACE_DIR and workspace.where == "in the app folder"
    assert (tmp_path / WORKSPACE_DIR / ".gitignore").is_file()


def test_an_app_folder_that_cannot_hold_one_gets_a_per_user_workspace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    app = tmp_path / "myapp"
    app.mkdir()
    (app / WORKSPACE_DIR).write_text("in the way")  # root ignores permissions; a file does not
    workspace = app_workspace(app)
    assert workspace.root.parent == tmp_path / "xdg" / "durableagent" / "workspaces"
    assert workspace.root.name.startswith("myapp-")
    assert workspace.where.startswith("per-user: the app folder cannot be written")
    other = tmp_path / "other" / "myapp"
    other.mkdir(parents=True)
    (other / WORKSPACE_DIR).write_text("in the way")
    assert app_workspace(other).root != workspace.root  # one per app folder, not per name


def test_stack_on_a_workspace_uses_its_folders_and_excludes_a_work_dir(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    workspace = Workspace(tmp_path / "ws")
    stack = Stack(app, host_mode="local", workspace=workspace, progress=False)
    assert stack.work_dir == workspace.root and not stack.owns_work_dir
    assert stack.azurite.data_dir == workspace.azurite_dir
    assert stack.log_paths == {
        "azurite": workspace.logs_dir / "azurite.log",
        "host": workspace.logs_dir / "host.log",
    }
    assert stack.record_path == workspace.logs_dir / "chat-requests.jsonl"
    assert not (tmp_path / "ws").exists()  # nothing is created before the stack starts
    with pytest.raises(ValueError, match="exclude each other"):
        Stack(app, host_mode="local", workspace=workspace, work_dir=tmp_path / "w")


def test_a_stack_refused_by_a_busy_workspace_starts_nothing(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    holder = Workspace(tmp_path / "ws")
    holder.acquire()
    try:
        stack = Stack(app, host_mode="local", workspace=Workspace(tmp_path / "ws"), progress=False)
        with pytest.raises(WorkspaceBusy):
            stack.start()
        assert stack.azurite.process is None and stack.host.process is None
    finally:
        holder.release()
    assert json.loads((tmp_path / "ws" / "lock").read_text() or "{}") == {}
