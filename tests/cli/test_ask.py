"""`python -m harness ask` as a real subprocess against a running app (`--url`): the reply with its
tool calls, the session to continue, JSON, and one line and a non-zero exit for each failure."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import ManagedProcess, free_port
from harness.stack import DEFAULT_APP_DIR, default_script_path
from tests.cli.cli_process import cli_env, one_line, run_cli

AGENT = "WeatherAgent"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return cli_env(tmp_path)


def test_ask_prints_tool_calls_then_the_reply_and_the_session_on_stderr(
    app_url: str, unique_session: str, tmp_path: Path, env: dict[str, str]
) -> None:
    done = run_cli(
        "ask", AGENT, "What's the weather in Paris?", "--session", unique_session, "--url", app_url,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        '[tool] get_weather(location="Paris") -> windy, 4 C in Paris',
        "Here's the latest: windy, 4 C in Paris. Anything else you'd like to know?",
    ]
    assert done.stderr.strip() == (
        f"session {unique_session} (new: no session had this id; continue with --session {unique_session})"
    )


def test_ask_json_continues_a_session_it_started(app_url: str, tmp_path: Path, env: dict[str, str]) -> None:
    first = run_cli("ask", AGENT.lower(), "hello", "--url", app_url, "--json", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    started = json.loads(first.stdout)
    assert started["agent"] == AGENT and started["messageCount"] == 2 and started["toolCalls"] == []
    assert started["usage"]["total_tokens"] > 0 and started["correlationId"]
    session = started["sessionId"]
    second = run_cli(
        "ask", AGENT, "weather in Oslo?", "--session", session, "--url", app_url, "--json",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    reply = json.loads(second.stdout)
    assert reply["sessionId"] == session and reply["messageCount"] == 4
    assert [call["name"] for call in reply["toolCalls"]] == ["get_weather"]
    assert reply["toolCalls"][0]["arguments"] == {"location": "Oslo"}
    assert reply["response"].startswith("Here's the latest: ")


def test_a_failed_turn_is_one_line_and_exit_1(
    app_url: str, chat_script, unique_session: str, tmp_path: Path, env: dict[str, str]
) -> None:
    chat_script.set([{"error": "the model is down"}])
    done = run_cli("ask", AGENT, "hi", "--session", unique_session, "--url", app_url, cwd=tmp_path, env=env)
    assert done.returncode == 1 and done.stdout == ""
    line = one_line(done.stderr)
    assert line.startswith(f"the turn failed in session {unique_session}: ")
    assert "the model is down" in line


def test_a_failed_turns_detail_follows_its_one_line_error_indented(
    app_url: str, chat_script, unique_session: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """A replay's diff (or any error with more lines) stays readable under the one-line error."""
    chat_script.set([{"error": "replay departs\n--- recorded\n+++ received"}])
    done = run_cli("ask", AGENT, "hi", "--session", unique_session, "--url", app_url, cwd=tmp_path, env=env)
    assert done.returncode == 1 and done.stdout == ""
    first, *rest = done.stderr.splitlines()
    assert first.startswith("python -m harness: error: the turn failed") and first.endswith("replay departs")
    assert rest == ["    --- recorded", "    +++ received"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["Nope", "hi"], "unknown agent 'Nope'; available agents: WeatherAgent"),
        ([AGENT, "hi", "--data", "somewhere"], "--url attaches to a running app: --data does not apply"),
        ([AGENT, "hi", "--fresh", "--live"], "--url attaches to a running app: --live, --fresh do not apply"),
    ],
)
def test_usage_errors_against_a_running_app(
    app_url: str, args: list[str], expected: str, tmp_path: Path, env: dict[str, str]
) -> None:
    done = run_cli("ask", *args, "--url", app_url, cwd=tmp_path, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert one_line(done.stderr) == expected


def test_unreachable_and_bad_urls(dead_url: str, tmp_path: Path, env: dict[str, str]) -> None:
    done = run_cli("ask", AGENT, "hi", "--url", dead_url, cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert one_line(done.stderr) == f"cannot connect to {dead_url} (is the app running?)"
    done = run_cli("ask", AGENT, "hi", "--url", "localhost:7071", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert one_line(done.stderr).startswith("invalid URL 'localhost:7071'")


@pytest.fixture
def keyed_app_url(azurite, tmp_path: Path) -> Iterator[str]:
    """The weather sample with function-level routes, on a local host that checks keys."""
    app = tmp_path / "keyed"
    shutil.copytree(DEFAULT_APP_DIR, app, ignore=shutil.ignore_patterns("__pycache__", ".durableagent"))
    source = (app / "function_app.py").read_text()
    source = source.replace(
        "app = AgentFunctionApp(agents=[weather_agent])",
        "import azure.functions as func\n\n"
        "app = AgentFunctionApp(agents=[weather_agent], http_auth_level=func.AuthLevel.FUNCTION)",
    )
    assert "AuthLevel.FUNCTION" in source
    (app / "function_app.py").write_text(source)
    port = free_port()
    host = ManagedProcess(
        [sys.executable, "-m", "harness", "host", str(app), "--port", str(port), "--enforce-keys"],
        log_path=tmp_path / "keyed-host.log",
        env={
            "AzureWebJobsStorage": azurite.connection_string,
            "DURABLEAGENT_TASK_HUB": f"keyed{uuid.uuid4().hex[:8]}",
            "DURABLEAGENT_FUNCTION_KEY": "the-right-key",
            "DURABLEAGENT_CHAT_SCRIPT": str(default_script_path(DEFAULT_APP_DIR)),
            "DURABLEAGENT_CHAT_RECORD": str(tmp_path / "keyed-requests.jsonl"),
        },
        cwd=app,
    )
    url = f"http://127.0.0.1:{port}"
    with host:
        host.wait_ready(lambda: httpx.get(f"{url}/admin/host/status", timeout=2).status_code == 200, 120)
        yield url


def test_a_refused_key_says_to_pass_the_right_one(
    keyed_app_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    wrong = run_cli("ask", AGENT, "hi", "--url", keyed_app_url, "--key", "wrong", cwd=tmp_path, env=env)
    assert wrong.returncode == 2
    assert one_line(wrong.stderr) == (
        f"{keyed_app_url} answered HTTP 401: the key given with --key was refused; "
        "pass the app's key with --key"
    )
    missing = run_cli("ask", AGENT, "hi", "--url", keyed_app_url, cwd=tmp_path, env=env)
    assert missing.returncode == 2
    assert "it needs a function key; pass the app's key with --key" in one_line(missing.stderr)
    right = run_cli(
        "ask", AGENT, "hi", "--url", keyed_app_url, "--key", "the-right-key", cwd=tmp_path, env=env
    )
    assert right.returncode == 0, right.stderr


def test_ask_help_lists_the_local_stack_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "ask", "--help"], capture_output=True, text=True, check=True
    )
    for option in (
        "--session",
        "--json",
        "--url",
        "--key",
        "--app",
        "--data",
        "--fresh",
        "--script",
        "--live",
    ):
        assert option in done.stdout


def test_live_printer_shows_text_as_it_grows_and_a_line_per_finished_tool_call():
    import io

    from harness.cli.ask import LivePrinter
    from harness.reply_stream import ReplyEvent

    out = io.StringIO()
    live = LivePrinter(out)
    events = [
        ReplyEvent("accepted", {"streamUrl": "/x"}),
        ReplyEvent("text", {"text": "Let me "}),
        ReplyEvent("text", {"text": "check."}),
        ReplyEvent("tool_call", {"call_id": "c1", "name": "get_weather", "arguments": {"location": "Oslo"}}),
        ReplyEvent("reset"),
        ReplyEvent("tool_call", {"call_id": "c2", "name": "get_weather", "arguments": {"location": "Oslo"}}),
        ReplyEvent("tool_result", {"call_id": "c2", "result": "sunny"}),
        ReplyEvent("text", {"text": "Sunny in Oslo."}),
        ReplyEvent("final", {"status": "success", "response": "Sunny in Oslo."}),
    ]
    seen = []
    for event in events:
        live.show(event)
        seen.append(out.getvalue())
    live.end_line()
    assert seen[1] == "Let me "  # the text shows before the turn ends
    assert out.getvalue() == (
        "Let me check.\n"
        "[the host retried this turn after a crash; its reply starts over]\n"
        '[tool] get_weather(location="Oslo") -> sunny\n'
        "Sunny in Oslo.\n"
    )
    assert live.shown
    quiet = LivePrinter(io.StringIO())
    quiet.show(ReplyEvent("final", {"status": "success", "response": "whole"}))
    assert not quiet.shown  # an app that does not stream: ask prints the whole reply instead
