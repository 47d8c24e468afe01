"""Script files: JSON/TOML loading, validation messages, re-reading and the record file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from agent_framework import Agent

from fakes import ScriptedChatClient, ScriptError, load_script, load_script_data, parse_script, read_recorded
from fakes.script import resolve_error_type


def get_weather(location: str) -> str:
    """Return canned weather for a place."""
    return f"Rainy in {location}"


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def bump_mtime(path: Path) -> None:
    """Make sure a rewrite is visible even on filesystems with coarse timestamps."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 2_000_000_000))


async def test_json_script_file(tmp_path: Path):
    path = write_json(
        tmp_path / "script.json",
        {
            "steps": [
                {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Bergen"}}]},
                {
                    "text": "Bring an umbrella: {tool_result}",
                    "usage": {"input_tokens": 1, "output_tokens": 1},
                },
            ],
            "default": {"text": "default"},
        },
    )
    client = ScriptedChatClient.from_file(path)
    agent = Agent(client=client, name="a", tools=[get_weather])

    first = await agent.run("weather?")
    second = await agent.run("more?")

    assert first.text == "Bring an umbrella: Rainy in Bergen"
    assert second.text == "default"
    assert client.script.source == str(path)


async def test_toml_script_file(tmp_path: Path):
    path = tmp_path / "script.toml"
    path.write_text(
        """
[[steps]]
chunks = ["To", "ml"]

[[rules]]
when = { user = "weather (?:in|for) (?P<city>\\\\w+)", after_tool = false }
[[rules.then.tool_calls]]
name = "get_weather"
arguments = { location = "{city}" }

[[rules]]
when = { tool = "get_weather" }
then = { text = "TOML says {tool_result}" }

[default]
text = "fallback"
""",
        encoding="utf-8",
    )
    client = ScriptedChatClient.from_file(path)
    agent = Agent(client=client, name="a", tools=[get_weather])

    assert (await agent.run("hi")).text == "Toml"
    assert (await agent.run("weather for Cork")).text == "TOML says Rainy in Cork"
    assert (await agent.run("bye")).text == "fallback"


async def test_file_is_reread_when_it_changes(tmp_path: Path):
    path = write_json(tmp_path / "script.json", {"steps": ["old 1", "old 2"]})
    client = ScriptedChatClient.from_file(path)
    agent = Agent(client=client, name="a")
    assert (await agent.run("1")).text == "old 1"

    write_json(path, {"steps": ["new 1", "new 2"], "default": "new default"})
    bump_mtime(path)

    texts = [(await agent.run(str(n))).text for n in range(3)]
    assert texts == ["new 1", "new 2", "new default"]


async def test_unchanged_file_is_not_restarted(tmp_path: Path):
    path = write_json(tmp_path / "script.json", {"steps": ["one", "two"]})
    client = ScriptedChatClient.from_file(path)
    agent = Agent(client=client, name="a")

    texts = [(await agent.run("x")).text for _ in range(2)]

    assert texts == ["one", "two"]


async def test_broken_rewrite_raises_then_recovers(tmp_path: Path):
    path = write_json(tmp_path / "script.json", {"steps": ["ok"]})
    client = ScriptedChatClient.from_file(path)
    agent = Agent(client=client, name="a")

    path.write_text('{"steps": [', encoding="utf-8")
    bump_mtime(path)
    with pytest.raises(ScriptError, match="not valid JSON"):
        await agent.run("x")

    write_json(path, {"steps": ["fixed"]})
    bump_mtime(path)
    assert (await agent.run("x")).text == "fixed"


async def test_every_request_is_appended_to_the_record_file(tmp_path: Path):
    script = write_json(
        tmp_path / "script.json",
        {"steps": [{"tool_calls": [{"name": "get_weather", "arguments": {"location": "Nice"}}]}, "done"]},
    )
    record = tmp_path / "out" / "script.requests.jsonl"
    client = ScriptedChatClient.from_file(script, record_path=record)

    await Agent(client=client, name="a", tools=[get_weather]).run("weather in Nice")

    lines = record.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert [json.loads(line) for line in lines] == [
        {**r.to_dict(), "answered_by": f"steps[{i}]"} for i, r in enumerate(client.requests)
    ]
    recorded = read_recorded(record)
    assert recorded[0]["messages"][0]["text"] == "weather in Nice"
    assert recorded[0]["tools"] == ["get_weather"]
    assert recorded[1]["messages"][-1]["contents"][0]["result"] == "Rainy in Nice"
    assert recorded[1]["stream"] is False


async def test_a_lone_surrogate_is_recorded_and_reads_back_unchanged(tmp_path: Path):
    """Valid in a JSON string, not in UTF-8: recording it must not fail the model call."""
    record = tmp_path / "requests.jsonl"
    client = ScriptedChatClient(default="ok", record_path=record)
    message = "al\ud800x and caf\u00e9"

    assert (await Agent(client=client, name="a").run(message)).text == "ok"
    assert (await Agent(client=client, name="a").run("plain caf\u00e9")).text == "ok"

    recorded = read_recorded(record)
    assert [r["messages"][-1]["text"] for r in recorded] == [message, "plain caf\u00e9"]
    assert "caf\u00e9" in record.read_text(encoding="utf-8").splitlines()[1]  # readable when it can be


async def test_waiting_for_a_half_written_script_does_not_block_the_event_loop(tmp_path: Path):
    """Every agent turn of a host shares one loop: the reload wait must yield to it, not sleep in it."""
    import asyncio

    path = write_json(tmp_path / "script.json", {"steps": ["old"]})
    client = ScriptedChatClient.from_file(path)
    agent = Agent(client=client, name="a")
    path.write_text('{"steps": [', encoding="utf-8")  # the writer is mid-way through
    bump_mtime(path)

    def finish_writing() -> None:
        write_json(path, {"steps": ["new"]})
        bump_mtime(path)

    # Lands between the fake's retries only if the loop keeps running while it waits.
    asyncio.get_running_loop().call_later(0.06, finish_writing)
    assert (await agent.run("x")).text == "new"


def test_read_recorded_handles_missing_file_and_partial_last_line(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    assert read_recorded(path) == []

    path.write_text('{"a": 1}\n\n{"b": 2}\n{"c": ', encoding="utf-8")

    assert read_recorded(path) == [{"a": 1}, {"b": 2}]


def test_read_recorded_rejects_corrupt_middle_line(tmp_path: Path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\nnot json\n{"b": 2}\n', encoding="utf-8")

    with pytest.raises(ValueError, match="line 2"):
        read_recorded(path)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"steps": [{"text": "x", "colour": "red"}]}, r"steps\[0\]: unknown step key.*'colour'"),
        ({"steps": [{}]}, r"steps\[0\]: the step does nothing"),
        ({"steps": [{"usage": {"input_tokens": 1}}]}, r"steps\[0\]: the step does nothing"),
        ({"steps": [{"text": "a", "chunks": ["b"]}]}, "either 'text' or 'chunks'"),
        ({"steps": [{"text": 5}]}, r"steps\[0\]\.text: must be a string"),
        ({"steps": [{"chunks": []}]}, "chunks: must be a non-empty list"),
        ({"steps": [{"tool_calls": [{"arguments": {}}]}]}, r"tool_calls\[0\]\.name"),
        ({"steps": [{"tool_calls": [{"name": "f", "arguments": [1]}]}]}, r"arguments: must be an object"),
        ({"steps": [{"tool_calls": [{"name": "f", "args": {}}]}]}, "unknown tool call key.*'args'"),
        ({"steps": [{"text": "x", "usage": {"input_tokens": -1}}]}, r"usage\.input_tokens"),
        ({"steps": [{"text": "x", "usage": {"prompt_tokens": 1}}]}, "unknown usage key"),
        ({"steps": [{"text": "x", "delay": "soon"}]}, "delay: must be a number"),
        ({"steps": [{"chunks": ["x"], "chunk_delay": -1}]}, "chunk_delay: must be a number"),
        (
            {"steps": [{"error": "boom", "error_type": "NoSuchError"}]},
            "'NoSuchError' is not a known exception",
        ),
        ({"steps": [{"error": "boom", "text": "x"}]}, "'error' step cannot also have"),
        ({"steps": [{"text": "hi {name}"}]}, r"unknown placeholder.*\{name\}"),
        ({"steps": "hello"}, "'steps' must be a list"),
        ({"rules": {"when": {}}}, "'rules' must be a list"),
        ({"rules": [{"when": {"user": "("}, "then": "x"}]}, r"rules\[0\]\.when\.user: bad regex"),
        ({"rules": [{"when": {"instructions": "["}, "then": "x"}]}, r"when\.instructions: bad regex"),
        ({"rules": [{"when": {"usr": "x"}, "then": "x"}]}, "unknown condition key.*'usr'"),
        ({"rules": [{"when": {"after_tool": "yes"}, "then": "x"}]}, "after_tool: must be true or false"),
        ({"rules": [{"when": {"user": "x"}}]}, r"rules\[0\]: a rule needs a 'then'"),
        ({"rules": [{"when": {"user": "(?P<a>x)"}, "then": "{b}"}]}, r"unknown placeholder.*\{b\}"),
        (
            {"rules": [{"when": {"tool": "t", "after_tool": False}, "then": "x"}]},
            "contradicts after_tool=false",
        ),
        ({"stepz": []}, "unknown top-level key.*'stepz'"),
        ([1, 2], "a script must be an object"),
    ],
)
def test_malformed_scripts_name_the_file_and_problem(tmp_path: Path, data: object, problem: str):
    path = write_json(tmp_path / "bad.json", data)

    with pytest.raises(ValueError, match=problem) as caught:
        ScriptedChatClient.from_file(path)

    assert isinstance(caught.value, ScriptError)
    assert str(path) in str(caught.value)


def test_placeholders_can_be_escaped():
    script = parse_script({"default": {"text": "use {{name}} literally"}})

    assert script.default is not None
    assert script.default.text == "use {{name}} literally"


async def test_escaped_braces_render_literally():
    client = ScriptedChatClient(default="use {{name}} for {user}")

    assert (await Agent(client=client, name="a").run("me")).text == "use {name} for me"


def test_invalid_json_and_toml_and_suffix(tmp_path: Path):
    bad_json = tmp_path / "s.json"
    bad_json.write_text("{nope", encoding="utf-8")
    bad_toml = tmp_path / "s.toml"
    bad_toml.write_text("steps = [", encoding="utf-8")
    yaml = tmp_path / "s.yaml"
    yaml.write_text("steps: []", encoding="utf-8")

    with pytest.raises(ScriptError, match=r"s\.json: not valid JSON"):
        load_script(bad_json)
    with pytest.raises(ScriptError, match=r"s\.toml: not valid TOML"):
        load_script(bad_toml)
    with pytest.raises(ScriptError, match=r"must end in \.json or \.toml"):
        load_script(yaml)
    with pytest.raises(ScriptError, match="cannot read script"):
        ScriptedChatClient.from_file(tmp_path / "missing.json")


def test_script_data_is_the_file_as_data_checked_like_load_script(tmp_path: Path):
    """``load_script_data`` (what the pytest plugin writes for the host's fake) gives the file's plain
    data, from JSON or TOML, and refuses what ``load_script`` refuses with the same message."""
    data = {"steps": ["hi", {"text": "bye", "delay": 0.5}], "default": "ok", "comment": "kept"}
    assert load_script_data(write_json(tmp_path / "s.json", data)) == data
    toml = tmp_path / "s.toml"
    toml.write_text('default = "ok"\n\n[[steps]]\ntext = "hi"\n', encoding="utf-8")
    assert load_script_data(toml) == {"default": "ok", "steps": [{"text": "hi"}]}

    unknown_key = write_json(tmp_path / "bad.json", {"steps": [{"txet": "typo"}]})
    bad_syntax = tmp_path / "broken.json"
    bad_syntax.write_text("{nope", encoding="utf-8")
    for path in (unknown_key, bad_syntax, tmp_path / "missing.json", tmp_path / "s.yaml"):
        with pytest.raises(ScriptError) as from_data:
            load_script_data(path)
        with pytest.raises(ScriptError) as from_script:
            load_script(path)
        assert str(from_data.value) == str(from_script.value)
        assert str(path) in str(from_data.value)


@pytest.mark.parametrize("name", [".X", "..X", "X.", "os..path", "a b", "", ":X"])
def test_malformed_error_type_names_are_script_errors(name: str):
    with pytest.raises(ScriptError, match="is not a known exception class"):
        resolve_error_type(name)


def test_error_type_messages_name_the_field_once(tmp_path: Path):
    with pytest.raises(ScriptError) as direct:
        resolve_error_type("NoSuchError")
    assert str(direct.value).startswith("error_type: 'NoSuchError'")

    path = write_json(tmp_path / "bad.json", {"steps": [{"error": "boom", "error_type": ".X"}]})
    with pytest.raises(ScriptError) as from_file:
        load_script(path)
    assert f"{path}: steps[0].error_type: '.X' is not a known exception class" in str(from_file.value)
    assert "error_type.error_type" not in str(from_file.value)


def test_dotted_error_types_resolve():
    assert resolve_error_type("json.JSONDecodeError") is json.JSONDecodeError
    assert resolve_error_type("json:JSONDecodeError") is json.JSONDecodeError


def test_unknown_keys_in_python_values_with_odd_keys():
    with pytest.raises(ScriptError, match=r"unknown step key\(s\) \[1, 'x'\]"):
        parse_script({"steps": [{"text": "a", 1: "b", "x": "c"}]})
