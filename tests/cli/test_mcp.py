"""`python -m harness mcp`: list and call an app's MCP functions over the real transport, against the
session's host serving tests/host/mcp_app; every misuse is one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main

pytestmark = pytest.mark.integration

MCP_APP = Path(__file__).resolve().parents[1] / "host" / "mcp_app"


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return MCP_APP


def test_list_shows_tools_resources_and_prompts(app_url, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["mcp", "--url", app_url]) == 0
    out = capsys.readouterr().out
    assert f"{app_url}/runtime/webhooks/mcp" in out
    assert "text*: string" in out and "tags: string[]" in out and "mood: calm|loud" in out
    assert "file://readme.md" in out and "notes://{name}" in out
    assert "greet" in out and "name*" in out
    assert main(["mcp", "list", "--url", app_url, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert "echo" in [tool["name"] for tool in listed["tools"]]


def test_call_read_and_prompt(app_url, capsys):
    assert main(["mcp", "call", "repeat", '{"word": "ab", "times": 2}', "--url", app_url]) == 0
    assert capsys.readouterr().out.strip() == "abab"
    assert main(["mcp", "call", "weather", '{"city": "Oslo"}', "--url", app_url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["structuredContent"] == {"city": "Oslo", "degrees": 21}
    assert main(["mcp", "read", "file://readme.md", "--url", app_url]) == 0
    assert capsys.readouterr().out.strip() == "# Read me"
    assert main(["mcp", "prompt", "greet", '{"name": "Ada"}', "--url", app_url, "--sse"]) == 0
    assert capsys.readouterr().out.strip() == "user: Say hello to Ada (plain)"


def test_a_failing_tool_exits_1_with_its_error(app_url, capsys):
    assert main(["mcp", "call", "explode", '{"reason": "x"}', "--url", app_url]) == 1
    err = capsys.readouterr().err
    assert "tool explode failed" in err and "ValueError: exploded: x" in err


@pytest.mark.parametrize(
    ("words", "named"),
    [
        (["frobnicate"], "unknown mcp action 'frobnicate'"),
        (["call"], "usage:"),
        (["call", "echo", "{not json"], "are not JSON"),
        (["call", "echo", "[1]"], "must be a JSON object"),
        (["list", "extra"], "takes no arguments"),
        (["call", "nope", "{}"], "Unknown tool: 'nope'"),
        (["call", "echo", "{}"], "Please provide: text"),
        (["read", "file://missing"], "Unknown resource"),
        (["prompt", "greet"], "Please provide: name"),
    ],
)
def test_misuse_is_one_line_and_exit_2(app_url, capsys, words, named):
    assert main(["mcp", *words, "--url", app_url]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert len(err.strip().splitlines()) == 1


def test_no_app_is_one_line(dead_url, capsys):
    assert main(["mcp", "--url", dead_url]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the app" in err and len(err.strip().splitlines()) == 1
