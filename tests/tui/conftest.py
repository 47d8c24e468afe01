"""Fixtures for the TUI tests: the app under test is the real session stack of harness.pytest_plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.client import SyncAgentClient
from harness.processes import free_port

AGENT = "WeatherAgent"
"""The weather sample's only agent."""


@pytest.fixture
def app_url(function_host) -> str:
    """Base URL of the app under test (the plugin's session Functions host, on Azurite)."""
    return function_host.url


@pytest.fixture
def sync_client(app_url: str) -> Iterator[SyncAgentClient]:
    """A blocking client to prepare and check sessions outside the app under test."""
    with SyncAgentClient(app_url) as client:
        yield client


@pytest.fixture
def dead_url() -> str:
    """A URL nothing listens on (for connection-error paths)."""
    return f"http://127.0.0.1:{free_port()}"
