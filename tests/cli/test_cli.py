"""`python -m harness sessions|show|chat` against the real local stack, and the one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.cli.main import main
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


@pytest.fixture
def nothing_starts(monkeypatch):
    """Fail the test if any command tries to start Azurite or a Functions host."""
    from harness.azurite import Azurite
    from harness.stack import FunctionHost

    def refuse(self, *args, **kwargs):
        raise AssertionError(f"{type(self).__name__} was started")

    monkeypatch.setattr(Azurite, "start", refuse)
    monkeypatch.setattr(FunctionHost, "start", refuse)


@pytest.mark.parametrize("port", ["99999", "-5", "0", "http"])
@pytest.mark.parametrize("command", [["up"], ["chat", AGENT]])
def test_port_out_of_range_is_one_line_before_anything_starts(command, port, nothing_starts, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--port", port])
    assert exc.value.code == 2
    line = one_line_error(capsys)
    assert f"argument --port: invalid port '{port}': expected a number from 1 to 65535" in line


@pytest.mark.parametrize("url", ["http://[::1", "http://127.0.0.1:99999999"])
def test_unparsable_url_is_one_line(url, capsys):
    assert main(["sessions", "X", "--url", url]) == 2
    assert f"invalid URL '{url}'" in one_line_error(capsys)


@pytest.mark.parametrize("command", [["up"], ["chat", AGENT]])
def test_bad_script_is_reported_before_anything_starts(command, tmp_path, nothing_starts, capsys):
    script = tmp_path / "bad.json"
    script.write_text(json.dumps({"steps": [{"txt": "hello"}]}))
    assert main([*command, "--script", str(script)]) == 2
    line = one_line_error(capsys)
    assert f"bad script: {script}: steps[0]: unknown step key(s) ['txt']" in line
    broken = tmp_path / "broken.toml"
    broken.write_text("steps = [")
    assert main([*command, "--script", str(broken)]) == 2
    assert f"{broken}: not valid TOML" in one_line_error(capsys)


def test_agent_names_match_case_insensitively(app_url, two_turns, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["sessions", AGENT.lower(), "--url", app_url, "--json"]) == 0
    assert two_turns in [row["sessionId"] for row in json.loads(capsys.readouterr().out)]
    assert main(["show", AGENT.upper(), two_turns, "--url", app_url]) == 0
    assert f"{AGENT} / {two_turns}: 4 messages" in capsys.readouterr().out  # the app's spelling


def test_every_registered_command_is_listed_and_has_its_own_help(capsys):
    """The registry is the one list: `--help` names each command, and each answers its own `--help`
    (a passthrough command, the host, with its own parser)."""
    from harness.cli.main import COMMANDS, parse

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    listing = capsys.readouterr().out
    for command in COMMANDS:
        assert f"    {command.name} " in listing or f"    {command.name}\n" in listing, command.name
        if command.passthrough:
            args = parse([command.name, "--help", "x"])
            assert (args.command, args.argv) == (command.name, ["--help", "x"])
            continue
        with pytest.raises(SystemExit) as done:
            main([command.name, "--help"])
        assert done.value.code == 0
        assert capsys.readouterr().out.startswith(f"usage: python -m harness {command.name} ")


def test_the_cli_loads_no_app_stack_before_a_command_runs():
    """Every command parses its arguments without the agent app, the Durable SDK, the host or the
    MCP SDK loaded (1.3 s of every `python -m harness` call when they were): a command that needs
    one loads it when it runs."""
    heavy = ("azure.durable_functions", "harness.host.server", "mcp", "durableagent.app")
    check = f"import sys, harness.cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr
