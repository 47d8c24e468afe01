"""`python -m harness sidecar` misused: one line on stderr and a non-zero exit, nothing started."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.cli.cli_process import cli_env, one_line, run_cli


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--hub", "a b"], "--hub 'a b': a task hub name is letters and digits"),
        (["--hub", "x"], "--hub 'x': a task hub name is letters and digits"),
        (["--grpc-port", "70000"], "argument --grpc-port"),
        (["--fresh", "--data", "d"], "argument --data: not allowed with argument --fresh"),
        (["--grpc-port", "9123", "--port", "9123"], "--grpc-port and --port must differ"),
    ],
)
def test_bad_options_are_one_line(args: list[str], expected: str, tmp_path: Path) -> None:
    done = run_cli("sidecar", *args, cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()  # argparse's own errors name the subcommand
    assert len(lines) == 1 and "error: " in lines[0] and expected in lines[0], done.stderr
    assert list((tmp_path / "tmp").iterdir()) == [] and list((tmp_path / "xdg").iterdir()) == []


@pytest.mark.parametrize("option", ["--grpc-port", "--port"])
def test_a_busy_port_is_one_line_before_anything_starts(option: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli("sidecar", "--fresh", option, str(port), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 1
    assert f"port 127.0.0.1:{port} is already in use" in one_line(done.stderr)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_data_that_names_a_folder_of_other_files_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("print('mine')\n")
    done = run_cli("sidecar", "--data", str(project), cwd=tmp_path, env=cli_env(tmp_path))
    assert done.returncode == 2
    assert "holds files that are not a workspace's (main.py)" in one_line(done.stderr)
    assert sorted(p.name for p in project.iterdir()) == ["main.py"]
