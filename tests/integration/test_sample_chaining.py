"""samples/chaining in the session's Functions host: started over HTTP, run to completion."""

from __future__ import annotations

from pathlib import Path

import pytest

from .orchestrations import SAMPLES, entity_calls, sample_script, session_history, start, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return SAMPLES / "chaining"


@pytest.fixture(autouse=True)
def _script(chat_script):
    chat_script.set(sample_script("chaining"))


def test_chain_refines_the_draft_in_one_session(host_client):
    urls = start(host_client, "/api/chaining/start", {"topic": "Acme Coffee"})
    done = wait_for(host_client, urls)
    assert done["runtimeStatus"] == "Completed", done
    output = done["output"]
    assert output["draft"] == "Acme Coffee: they remember every conversation, and never lose their place."
    assert output["tagline"] == "Acme Coffee. Always remembered."
    history = session_history(host_client, "WriterAgent", output["sessionId"])
    assert [e["content"] for e in history] == [
        "Write a one-line tagline for Acme Coffee.",
        output["draft"],
        f"Improve this tagline, keep it under ten words: {output['draft']}",
        output["tagline"],
    ]
    calls = entity_calls(host_client, urls)
    assert [c["InstanceId"] for c in calls] == [f"@dafx-writeragent@{output['sessionId']}"] * 2
    assert {c["Operation"] for c in calls} == {"run_agent"}


def test_start_without_a_body_uses_the_default_topic(host_client):
    done = wait_for(host_client, start(host_client, "/api/chaining/start", {}))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"]["tagline"] == "durable AI agents. Always remembered."
