"""`--record FILE`: the one-line errors before anything starts, and what it asks of the stack."""

from __future__ import annotations

import pytest

from harness.cli.main import main
from harness.stack import Stack
from tests.cli.test_cli import one_line_error


@pytest.fixture
def live_settings(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "gpt-test")


@pytest.mark.parametrize("command", [["up"], ["chat", "WeatherAgent"]])
def test_record_needs_live(command, tmp_path, capsys):
    assert main([*command, "--record", str(tmp_path / "r.json")]) == 2
    assert one_line_error(capsys).endswith(
        "--record needs --live: it records the real model's answers (replay with --script)"
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("r.toml", "the recording is a JSON script; name it *.json"),
        ("missing/r.json", "does not exist"),
        (".", "name it *.json"),
    ],
)
def test_record_file_is_checked_before_starting(name, problem, tmp_path, capsys, live_settings):
    assert main(["up", "--live", "--record", str(tmp_path / name)]) == 2
    assert problem in one_line_error(capsys)


def test_record_does_not_apply_to_a_running_app(tmp_path, capsys):
    argv = ["chat", "WeatherAgent", "--url", "http://127.0.0.1:1", "--record", str(tmp_path / "r.json")]
    assert main(argv) == 2
    assert "--record" in one_line_error(capsys)


def test_stack_passes_the_recording_to_the_host_and_needs_live(tmp_path):
    with pytest.raises(ValueError, match="recording needs live=True"):
        Stack(record=tmp_path / "r.json", work_dir=tmp_path / "w")
    stack = Stack(live=True, record=tmp_path / "r.json", work_dir=tmp_path / "w", host_mode="local")
    env = stack.host.environment()
    assert env["DURABLEAGENT_CHAT_RECORD_SCRIPT"] == str((tmp_path / "r.json").resolve())
    assert "DURABLEAGENT_CHAT_SCRIPT" not in env


def test_an_inherited_record_variable_does_not_reach_a_replaying_host(tmp_path, monkeypatch):
    monkeypatch.setenv("DURABLEAGENT_CHAT_RECORD_SCRIPT", str(tmp_path / "stale.json"))
    stack = Stack(work_dir=tmp_path / "w", host_mode="local")
    assert "DURABLEAGENT_CHAT_RECORD_SCRIPT" not in stack.host.environment()


def test_live_warns_only_when_the_azure_settings_are_nowhere(tmp_path, capsys, monkeypatch):
    from harness.cli.local_stack import warn_live_settings

    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME"):
        monkeypatch.delenv(name, raising=False)
    warn_live_settings(tmp_path)
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1
    assert "warning: --live: AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_CHAT_DEPLOYMENT_NAME not set" in warning
    (tmp_path / "local.settings.json").write_text(
        '{"Values": {"AZURE_OPENAI_ENDPOINT": "https://x", "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME": "m"}}'
    )
    warn_live_settings(tmp_path)
    assert capsys.readouterr().err == ""


def test_live_refuses_a_sample_placeholder_naming_the_setting(app, tmp_path, monkeypatch):
    """The samples' local.settings.json hold `https://YOUR-RESOURCE.openai.azure.com/`: `--live` says
    so in one line, before a stack starts, instead of a credential error per turn."""
    from tests.cli.cli_process import cli_env, one_line, run_cli

    env = cli_env(tmp_path)
    for name in ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "AZURE_OPENAI_API_KEY"):
        env.pop(name, None)
    done = run_cli("ask", "WeatherAgent", "hi", "--live", "--fresh", cwd=app, env=env, timeout=60)
    assert done.returncode == 2, done
    assert one_line(done.stderr) == (
        f"--live: AZURE_OPENAI_ENDPOINT in {app / 'local.settings.json'} is a placeholder "
        "('https://YOUR-RESOURCE.openai.azure.com/'); set your own value there or in the environment"
    )


def test_live_takes_the_environment_over_a_placeholder_in_the_file(app, capsys, monkeypatch):
    from harness.cli.base import UsageError
    from harness.cli.local_stack import warn_live_settings

    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://mine.openai.azure.com/")
    warn_live_settings(app)  # the file's placeholder is not what the app gets
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "<your-deployment>")
    with pytest.raises(
        UsageError, match="AZURE_OPENAI_CHAT_DEPLOYMENT_NAME in the environment is a placeholder"
    ):
        warn_live_settings(app)
