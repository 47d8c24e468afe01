"""samples/concurrency in the session's Functions host: two agents answer in parallel."""

from __future__ import annotations

from pathlib import Path

import pytest

from .orchestrations import SAMPLES, sample_script, session_history, start, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return SAMPLES / "concurrency"


@pytest.fixture(autouse=True)
def _script(chat_script):
    chat_script.set(sample_script("concurrency"))


def test_both_experts_answer_and_the_answers_are_combined(host_client):
    done = wait_for(host_client, start(host_client, "/api/concurrency/start", {"topic": "temperature"}))
    assert done["runtimeStatus"] == "Completed", done
    output = done["output"]
    answers = output["answers"]
    assert answers["PhysicistAgent"].startswith("In physics, temperature")
    assert answers["ChemistAgent"].startswith("In chemistry, temperature")
    assert (
        output["combined"]
        == f"PhysicistAgent: {answers['PhysicistAgent']}\n\nChemistAgent: {answers['ChemistAgent']}"
    )
    for agent, key in output["sessions"].items():
        history = session_history(host_client, agent, key)
        assert [e["role"] for e in history] == ["user", "assistant"]
        assert history[1]["content"] == answers[agent]
