"""Integration tests run the multi-agent sample (WeatherAgent + MathAgent) unmodified in the
session's Functions host, on real Azurite, with the scripted fake model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="session")
def function_host_app_dir() -> Path:
    return SAMPLES / "multi_agent"


def run(client: httpx.Client, agent: str, payload: Any) -> httpx.Response:
    return client.post(f"/api/agents/{agent}/run", json=payload)


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll until `condition()` is truthy and return its value (a readiness probe, not a sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"waited {timeout} s {what}")


def wait_for_state(
    client: httpx.Client, agent: str, session: str, predicate: Any, timeout: float = 20
) -> dict:
    """Poll the state route until `predicate(state)` holds (signals apply asynchronously)."""
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        response = client.get(f"/api/agents/{agent}/{session}")
        if response.status_code == 200:
            state = response.json()
            if predicate(state):
                return state
        time.sleep(0.05)
    raise AssertionError(f"state of {agent}/{session} never satisfied the condition; last: {state}")
