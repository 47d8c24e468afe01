"""`chat`/`ask` with an agent the app does not define fail in one line before any stack process starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.workspace import WORKSPACE_DIR
from tests.cli.cli_process import cli_env, one_line, run_cli


@pytest.mark.parametrize(
    "command", [["chat", "NoSuchAgent"], ["ask", "NoSuchAgent", "hi"]], ids=["chat", "ask"]
)
def test_an_unknown_agent_fails_before_the_stack_starts(
    app: Path, tmp_path: Path, command: list[str]
) -> None:
    done = run_cli(*command, "--host", "local", cwd=app, env=cli_env(tmp_path), timeout=120)
    assert done.returncode == 2, done
    assert one_line(done.stderr) == "unknown agent 'NoSuchAgent'; available agents: WeatherAgent"
    assert not (app / WORKSPACE_DIR).exists()  # no workspace made, so no Azurite ever ran on it
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_agent_is_matched_as_the_app_spells_it(app: Path, tmp_path: Path) -> None:
    """Names match ignoring case (Durable entity names do): the check does not refuse `weatheragent`."""
    done = run_cli("ask", "weatheragent", "hi", "--fresh", "--json", cwd=app, env=cli_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert '"agent": "WeatherAgent"' in done.stdout
