"""`python -m harness sessions|show|chat` against the real local stack, and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.cli import main
from harness.client import SyncAgentClient

AGENT = "WeatherAgent"


def one_line_error(capsys) -> str:
    """stderr must be exactly one `prog: error: ...` line, never a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("python -m harness")
    assert ": error: " in lines[0]
    return lines[0]


@pytest.fixture
def two_turns(app_url, unique_session) -> str:
    """A session with a tool-call turn and a plain turn."""
    with SyncAgentClient(app_url) as client:
        client.run(AGENT, "What's the weather in Paris?", unique_session)
        client.run(AGENT, "hello", unique_session)
    return unique_session


def test_sessions_json(app_url, two_turns, capsys):
    assert main(["sessions", AGENT, "--url", app_url, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    mine = [row for row in rows if row["sessionId"] == two_turns]
    assert len(mine) == 1
    assert mine[0]["messageCount"] == 4
    assert mine[0]["lastMessage"].startswith("Hello!")
    times = [row["lastOperationTime"] for row in rows]
    assert times == sorted(times, reverse=True)


def test_sessions_table(app_url, two_turns, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["sessions", AGENT, "--url", app_url]) == 0
    out = capsys.readouterr().out
    assert f"Sessions of {AGENT}" in out
    line = next(line for line in out.splitlines() if two_turns in line)
    assert " 4 " in line


def test_show_json_is_the_stored_state(app_url, two_turns, capsys):
    assert main(["show", AGENT, two_turns, "--url", app_url, "--json"]) == 0
    state = json.loads(capsys.readouterr().out)
    history = state["conversation_history"]
    assert [entry["role"] for entry in history] == ["user", "assistant", "user", "assistant"]
    assert history[1]["agent_response"]["tool_calls"][0]["name"] == "get_weather"


def test_show_table(app_url, two_turns, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["show", AGENT, two_turns, "--url", app_url]) == 0
    out = capsys.readouterr().out
    assert f"{AGENT} / {two_turns}: 4 messages" in out
    assert '🔧 get_weather(location="Paris")' in out
    assert "What's the weather in Paris?" in out


def test_unknown_agent_lists_the_agents(app_url, capsys):
    assert main(["sessions", "Nope", "--url", app_url]) == 2
    assert one_line_error(capsys).endswith(f"unknown agent 'Nope'; available agents: {AGENT}")


def test_unknown_session(app_url, capsys):
    assert main(["show", AGENT, "no-such-session", "--url", app_url]) == 2
    assert "not found" in one_line_error(capsys)


def test_chat_unknown_agent_on_url_starts_nothing(app_url, capsys):
    assert main(["chat", "Nope", "--url", app_url]) == 2
    assert "available agents: WeatherAgent" in one_line_error(capsys)


def test_unreachable_url(dead_url, capsys):
    assert main(["sessions", AGENT, "--url", dead_url]) == 2
    assert f"cannot connect to {dead_url}" in one_line_error(capsys)


@pytest.mark.parametrize("url", ["not a url", "ftp://example.com"])
def test_invalid_url(url, capsys):
    assert main(["show", AGENT, "s1", "--url", url]) == 2
    assert "invalid URL" in one_line_error(capsys)


def test_live_needs_model_settings(monkeypatch, capsys):
    monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", raising=False)
    assert main(["chat", AGENT, "--live"]) == 2
    assert "AZURE_OPENAI_ENDPOINT, AZURE_OPENAI_CHAT_DEPLOYMENT_NAME" in one_line_error(capsys)


def test_bad_stack_arguments(tmp_path, capsys):
    assert main(["up", "--script", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in one_line_error(capsys)
    assert main(["chat", AGENT, "--app", str(tmp_path / "nope")]) == 2
    assert "does not exist" in one_line_error(capsys)
    assert main(["chat", AGENT, "--url", "http://127.0.0.1:1", "--live"]) == 2
    assert "--url attaches to a running app" in one_line_error(capsys)


def test_argparse_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sessions"])
    assert exc.value.code == 2
    assert "required: AGENT" in one_line_error(capsys)


def test_module_entry_point(dead_url):
    result = subprocess.run(
        [sys.executable, "-m", "harness", "sessions", AGENT, "--url", dead_url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("python -m harness: error: cannot connect")
    assert len(result.stderr.strip().splitlines()) == 1
