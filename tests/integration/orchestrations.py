"""Helpers for the orchestration samples' integration tests: start over HTTP, poll, raise events.

Everything goes through the URLs the app's start route answers with
(`create_check_status_response`), as a user with curl would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
FINISHED = ("Completed", "Failed", "Terminated")


def sample_script(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name / "fake_model.json").read_text(encoding="utf-8"))


def start(client: httpx.Client, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST the sample's start route; returns the check-status payload (id and management URLs)."""
    response = client.post(route, json=body)
    assert response.status_code == 202, response.text
    payload = response.json()
    assert response.headers["Location"] == payload["statusQueryGetUri"]
    return payload


def status(client: httpx.Client, urls: dict[str, Any], *, history: bool = False) -> dict[str, Any]:
    url = urls["statusQueryGetUri"]
    params = {"showHistory": "true", "showHistoryOutput": "true"} if history else None
    response = client.get(url, params=params)
    assert response.status_code in (200, 202), response.text
    return response.json()


def wait_for(
    client: httpx.Client,
    urls: dict[str, Any],
    predicate: Callable[[dict[str, Any]], bool] = lambda s: s["runtimeStatus"] in FINISHED,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll the status URL until `predicate(status)` holds (default: the instance finished)."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        last = status(client, urls)
        if predicate(last):
            return last
        if last.get("runtimeStatus") in FINISHED:
            raise AssertionError(f"instance finished without meeting the condition: {last}")
        time.sleep(0.1)
    raise AssertionError(f"instance {urls['id']} never met the condition; last status: {last}")


def raise_event(client: httpx.Client, urls: dict[str, Any], name: str, data: Any) -> None:
    url = urls["sendEventPostUri"].replace("{eventName}", name)
    response = client.post(url, json=data)
    assert response.status_code == 202, response.text


def session_history(client: httpx.Client, agent: str, session: str) -> list[dict[str, Any]]:
    response = client.get(f"/api/agents/{agent}/{session}")
    assert response.status_code == 200, response.text
    return response.json()["conversation_history"]


def entity_calls(client: httpx.Client, urls: dict[str, Any]) -> list[dict[str, Any]]:
    """The instance's agent calls as the local host's condensed history lists them (EntityCalled)."""
    events = status(client, urls, history=True).get("historyEvents") or []
    return [e for e in events if e.get("EventType") == "EntityCalled"]
