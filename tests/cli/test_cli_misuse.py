"""Misuse of `python -m harness` as a new user would try it, as real subprocesses: each mistake is one
line on stderr and a non-zero exit, nothing is made where it was not asked for, and a throw-away
(`--fresh`) stack leaves nothing in the temp dir even when the command fails after the stack started."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from harness.workspace import WORKSPACE_DIR
from tests.cli.cli_process import cli_env, one_line, run_cli


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["ask", "WeatherAgent", "hi", "--key", "k"],
            "--key is sent to the app at --url; a local stack needs no key",
        ),
        (
            ["chat", "WeatherAgent", "--key", "k"],
            "--key is sent to the app at --url; a local stack needs no key",
        ),
        (
            ["ask", "WeatherAgent", "hi", "--session", ""],
            "argument --session: a session id must not be empty",
        ),
        (["show", "WeatherAgent", " "], "argument SESSION: a session id must not be empty"),
        (["fork", "WeatherAgent", "", "--turn", "1"], "argument SESSION: a session id must not be empty"),
        (
            ["fork", "WeatherAgent", "s", "--turn", "1", "--to", ""],
            "argument --to: a session id must not be empty",
        ),
        (["ask", "WeatherAgent", "hi", "--script", "."], "script . is not a file"),
        (["bench", "--turns", "many"], "argument --turns: invalid int value: 'many'"),
        (["chaos", "--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_options_that_make_no_sense_are_refused_before_anything_starts(
    app: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    done = run_cli(*args, cwd=app, env=cli_env(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(
        done.stderr.replace(f"python -m harness {args[0]}: error:", "python -m harness: error:")
    ) == (expected)
    assert not (app / WORKSPACE_DIR).exists()


def test_an_app_folder_without_function_app_is_refused_and_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "notanapp"
    folder.mkdir()
    done = run_cli("ask", "WeatherAgent", "hi", "--app", str(folder), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2
    assert one_line(done.stderr) == f"{folder} is not a Functions app folder: it has no function_app.py"
    assert list(folder.iterdir()) == []


def test_ctrl_c_while_the_cli_loads_exits_130_without_a_traceback(tmp_path: Path) -> None:
    """Ctrl-C in the first moments lands in the imports; a start-up hook raises it there every time."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'harness.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
    )
    done = run_cli("sessions", "WeatherAgent", cwd=tmp_path, env=cli_env(tmp_path, PYTHONPATH=str(hooks)))
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "")


@pytest.mark.integration
def test_a_fresh_stack_leaves_nothing_behind_when_the_command_fails_after_it_started(
    app: Path, tmp_path: Path
) -> None:
    env = cli_env(tmp_path)
    unknown = run_cli("ask", "NoSuchAgent", "hi", "--fresh", "--host", "local", cwd=app, env=env)
    assert unknown.returncode == 2
    assert one_line(unknown.stderr) == "unknown agent 'NoSuchAgent'; available agents: WeatherAgent"
    assert list((tmp_path / "tmp").iterdir()) == []

    down = tmp_path / "down.json"
    down.write_text(json.dumps({"steps": [{"error": "the model is down"}]}))
    failed = run_cli(
        "ask", "WeatherAgent", "hi", "--fresh", "--host", "local", "--script", str(down), cwd=app, env=env
    )
    assert failed.returncode == 1
    assert "the model is down" in one_line(failed.stderr)
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not (app / WORKSPACE_DIR).exists()


@pytest.mark.integration
def test_a_fresh_stack_that_cannot_start_on_a_taken_port_leaves_nothing_behind(
    app: Path, tmp_path: Path
) -> None:
    """The message does not name the folder (no log of it to read), so the folder goes too."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(
            "up", "--fresh", "--host", "local", "--port", str(port), cwd=app, env=cli_env(tmp_path)
        )
    assert done.returncode == 1
    assert f"port 127.0.0.1:{port} is already in use" in one_line(done.stderr)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_data_that_names_a_folder_of_other_files_is_refused_and_left_untouched(
    app: Path, tmp_path: Path
) -> None:
    """`--data .` in a project would write a `.gitignore` of `*` there, hiding the project from git."""
    done = run_cli("ask", "WeatherAgent", "hi", "--data", ".", cwd=app, env=cli_env(tmp_path))
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        "--data . holds files that are not a workspace's (function_app.py, host.json, local.settings.json, "
        "...); name a new or empty folder"
    )
    assert not (app / ".gitignore").exists() and not (app / "lock").exists()


def test_a_reader_that_leaves_ends_ask_quietly(app_url: str, unique_session: str, tmp_path: Path) -> None:
    """`ask ... | head -1`: the pipe closes under the streamed reply; no traceback, the shell's 141."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # gone before the first write, so the write fails every time
    try:
        done = subprocess.run(
            [sys.executable, "-m", "harness", "ask", "WeatherAgent", "weather in Oslo?", "--url", app_url,
             "--session", unique_session],
            stdout=write_end, stderr=subprocess.PIPE, text=True, env=cli_env(tmp_path), timeout=120,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_a_session_id_that_names_no_session_is_said_to_be_new(
    app_url: str, unique_session: str, tmp_path: Path
) -> None:
    """A mistyped `--session` starts a conversation; the session line says so, a known one does not."""
    env = cli_env(tmp_path)
    lines = []
    for _ in range(2):
        done = run_cli(
            "ask", "WeatherAgent", "hi", "--session", unique_session, "--url", app_url, cwd=tmp_path, env=env
        )
        assert done.returncode == 0, done.stderr
        lines.append(done.stderr.strip())
    assert lines == [
        f"session {unique_session} (new: no session had this id; continue with --session {unique_session})",
        f"session {unique_session} (continue with --session {unique_session})",
    ]


class NotFound(BaseHTTPRequestHandler):
    """Some other web server: an HTML 404 page for every GET."""

    def do_GET(self) -> None:
        self.send_error(404)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize(
    "args",
    [["chat", "WeatherAgent"], ["ask", "WeatherAgent", "hi"], ["fork", "WeatherAgent", "s1", "--turn", "1"]],
    ids=["chat", "ask", "fork"],
)
def test_a_url_that_is_not_a_durableagent_app_is_named_so(tmp_path: Path, args: list[str]) -> None:
    """Another server on the port answers its own 404 page; the line says what that means instead."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        done = run_cli(*args, "--url", url, cwd=tmp_path, env=cli_env(tmp_path))
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 2
    assert (
        one_line(done.stderr)
        == f"{url} is not a durableagent app (GET /api/health answered 404); check the URL"
    )
