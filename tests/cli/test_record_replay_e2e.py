"""`up --live --record FILE`, then `up --script FILE` offline: the real OpenAI client, a local
OpenAI-compatible server as the live model, real Azurite and host processes, HTTP turns."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.processes import free_port
from tests.openai_server import LocalOpenAI, ModelReply

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parent / "recording_app"
LIVE_VARS = ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME")


@contextmanager
def harness_up(tmp_path: Path, name: str, args: list[str], env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """``python -m harness up`` until its banner; yields (base URL, banner); Ctrl-C and exit 0 after."""
    port = free_port()
    log = tmp_path / f"{name}.log"
    base_env = {k: v for k, v in os.environ.items() if k not in LIVE_VARS}
    full_env = {**base_env, "TMPDIR": str(tmp_path), "PYTHONUNBUFFERED": "1", "COLUMNS": "250", **env}
    argv = [
        sys.executable,
        "-m",
        "harness",
        "up",
        "--app",
        str(APP),
        "--host",
        "local",
        "--port",
        str(port),
        "--fresh",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen([*argv, *args], stdout=out, stderr=subprocess.STDOUT, env=full_env)
        try:
            deadline = time.monotonic() + 120
            while "Press Ctrl-C" not in log.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}", log.read_text()
        finally:
            proc.send_signal(signal.SIGINT)
            code = proc.wait(60)
    assert code == 0, log.read_text()


def turn(base: str, message: str, session: str) -> httpx.Response:
    body = {"message": message, "sessionId": session}
    return httpx.post(f"{base}/api/agents/WeatherAgent/run", json=body, timeout=60)


def history(base: str, session: str) -> list[dict[str, Any]]:
    """What the session stored, without the times and ids that differ between any two runs."""
    state = httpx.get(f"{base}/api/agents/WeatherAgent/{session}", timeout=30).json()
    kept = []
    for entry in state["conversation_history"]:
        reply = entry.get("agent_response") or {}
        kept.append(
            {
                "role": entry.get("role"),
                "content": entry.get("content"),
                "tool_calls": [
                    {k: call.get(k) for k in ("name", "arguments", "result")}
                    for call in reply.get("tool_calls") or []
                ],
                "usage": reply.get("usage"),
            }
        )
    return kept


def test_a_live_chat_recorded_with_up_replays_offline_and_a_departing_turn_shows_the_diff(tmp_path: Path):
    recording = tmp_path / "recorded.json"
    model = LocalOpenAI().start()
    model.queue(
        ModelReply(tool_calls=(("get_weather", {"location": "Bergen"}),), usage=(40, 6)),
        ModelReply(text="Rainy in Bergen: 12 C.", usage=(55, 8)),
        ModelReply(text="Anytime!", usage=(70, 3)),
    )
    live_env = {"AZURE_OPENAI_ENDPOINT": model.base_url, "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME": "gpt-test"}
    try:
        with harness_up(tmp_path, "live", ["--live", "--record", str(recording)], live_env) as (base, banner):
            assert "Recording" in banner and recording.name in banner
            first = turn(base, "Weather in Bergen?", "trip")
            second = turn(base, "thanks", "trip")
            assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
            live_history = history(base, "trip")
    finally:
        model.stop()
    assert len(model.requests) == 3  # the real client really called the local model
    assert [first.json()["response"], second.json()["response"]] == ["Rainy in Bergen: 12 C.", "Anytime!"]
    steps = json.loads(recording.read_text())["steps"]
    assert [list(s.get("tool_calls", [{}])[0].get("arguments", {}).values()) for s in steps] == [
        ["Bergen"],
        [],
        [],
    ]

    with harness_up(tmp_path, "replay", ["--script", str(recording)], {}) as (base, banner):
        assert f"fake: {recording}" in " ".join(banner.split())
        replayed = [turn(base, "Weather in Bergen?", "trip")]
        departing = turn(base, "Weather in Oslo?", "other-trip")
        replayed.append(turn(base, "thanks", "trip"))  # the departed step was not used up
        assert [r.json()["response"] for r in replayed] == ["Rainy in Bergen: 12 C.", "Anytime!"]
        assert history(base, "trip") == live_history  # same text, tool call and result, usage
        assert live_history[1]["usage"]["total_tokens"] == 40 + 6 + 55 + 8
        beyond = turn(base, "one more thing", "trip")
    assert beyond.status_code == 500 and "all 3 step(s) used" in beyond.json()["error"]
    assert departing.status_code == 500
    error = departing.json()["error"]
    assert error.startswith("ReplayMismatchError: replay departs from the recording: request #3 differs")
    assert "--- recorded (steps[2] of" in error and "+++ received (request #3)" in error
    assert '+          "text": "Weather in Oslo?"' in error
