"""samples/human_in_the_loop's timeout branch, on a host whose clock skips ahead (auto virtual time):
the reviewer never answers, and the default 72-hour timeout ends the review in well under a second."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from .orchestrations import SAMPLES, sample_script, start, status, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.virtual_time("auto")]


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return SAMPLES / "human_in_the_loop"


@pytest.fixture(autouse=True)
def _script(chat_script):
    chat_script.set(sample_script("human_in_the_loop"))


def test_no_answer_within_72_hours_times_the_review_out(host_client, virtual_clock):
    assert virtual_clock.mode == "auto"
    before = virtual_clock.now()
    began = time.monotonic()
    urls = start(host_client, "/api/hitl/start", {"topic": "virtual time"})  # the sample's 72 h default
    done = wait_for(host_client, urls, timeout=30)
    took = time.monotonic() - began
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"]["status"] == "timed_out" and done["output"]["attempts"] == 1
    events = status(host_client, urls, history=True)["historyEvents"]
    created = next(e for e in events if e["EventType"] == "TimerCreated")
    fired = next(e for e in events if e["EventType"] == "TimerFired")
    assert fired["FireAt"] == created["FireAt"]
    assert virtual_clock.now() - before >= timedelta(hours=72)
    fire_at = datetime.fromisoformat(fired["FireAt"].replace("Z", "+00:00"))
    assert fire_at - datetime.fromisoformat(done["createdTime"].replace("Z", "+00:00")) >= timedelta(hours=72)
    assert took < 10, f"the 72-hour review took {took:.1f} s of wall time"
