"""`python -m harness fork` (issue 13, part 4) as a real subprocess against the session's local host
on Azurite: the copy, its JSON, `show`'s turn numbers, and one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.cli.main import main
from harness.client import AgentClient, ClientError, SyncAgentClient

AGENT = "WeatherAgent"


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "COLUMNS": "200"},
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m harness: error: "), result.stderr
    return lines[0]


@pytest.fixture
def three_turns(app_url, unique_session) -> str:
    with SyncAgentClient(app_url) as client:
        for message in ("What's the weather in Paris?", "hello", "What's the weather in Oslo?"):
            client.run(AGENT, message, unique_session)
    return unique_session


def test_fork_copies_the_first_turns(app_url, three_turns):
    target = f"{three_turns}-fork"
    result = harness("fork", AGENT, three_turns, "--turn", "2", "--to", target, "--url", app_url)
    assert result.returncode == 0, result.stderr
    assert f"Forked turns 1-2 of {three_turns} into {target} (4 messages)" in result.stdout
    with SyncAgentClient(app_url) as client:
        source = client.state(AGENT, three_turns)
        fork = client.state(AGENT, target)
    assert source is not None and fork is not None
    assert fork["conversation_history"] == source["conversation_history"][:4]
    assert fork["forked_from"]["session_id"] == three_turns and fork["forked_from"]["turn"] == 2
    assert source["message_count"] == 6


def test_fork_json_and_a_generated_id(app_url, three_turns):
    result = harness("fork", AGENT.lower(), three_turns, "--turn", "1", "--json", "--url", app_url)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["status"] == "forked" and body["source"] == three_turns and body["turn"] == 1
    with SyncAgentClient(app_url) as client:
        fork = client.state(AGENT, body["sessionId"])
    assert fork is not None and fork["message_count"] == 2


def test_a_fork_continues_on_its_own(app_url, three_turns):
    target = f"{three_turns}-branch"
    with SyncAgentClient(app_url) as client:
        client.fork(AGENT, three_turns, 1, target)
        client.run(AGENT, "hello", target)
        fork = client.state(AGENT, target)
        source = client.state(AGENT, three_turns)
    assert fork is not None and source is not None
    assert [e["content"] for e in fork["conversation_history"]][2] == "hello"
    assert source["message_count"] == 6


async def test_the_async_client_forks(app_url, three_turns):
    async with AgentClient(app_url) as client:
        body = await client.fork(AGENT, three_turns, 3, f"{three_turns}-async")
        state = await client.state(AGENT, body["sessionId"])
    assert body["status"] == "forked" and state is not None and state["message_count"] == 6


def test_show_numbers_turns_as_fork_does(app_url, three_turns, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["show", AGENT, three_turns, "--url", app_url]) == 0
    out = capsys.readouterr().out
    cells = [line.split("│") for line in out.splitlines() if line.startswith("│")]
    turns = [row[2].strip() for row in cells if row[1].strip().isdigit()]  # one per message
    assert turns == ["1", "", "2", "", "3", ""], out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--turn", "4"], "turn 4 is out of range"),
        (["--turn", "1", "--to", "a/b"], "invalid 'sessionId'"),
    ],
)
def test_bad_forks_are_one_line_errors(app_url, three_turns, args, needle):
    result = harness("fork", AGENT, three_turns, *args, "--url", app_url)
    assert result.returncode == 2
    assert needle in one_line(result)


def test_fork_never_overwrites_a_session(app_url, three_turns, unique_session):
    taken = f"{unique_session}-taken"
    with SyncAgentClient(app_url) as client:
        client.run(AGENT, "hello", taken)
    result = harness("fork", AGENT, three_turns, "--turn", "1", "--to", taken, "--url", app_url)
    assert result.returncode == 2
    line = one_line(result)
    assert "HTTP 409" in line and f"session '{taken}' already exists with 1 turn(s)" in line
    with SyncAgentClient(app_url) as client:
        state = client.state(AGENT, taken)
        with pytest.raises(ClientError, match="HTTP 404.*not found"):
            client.fork(AGENT, f"{unique_session}-nobody", 1)
    assert state is not None and state["message_count"] == 2


def test_turn_must_be_a_positive_number(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fork", AGENT, "s", "--turn", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "expected at least 1" in err
