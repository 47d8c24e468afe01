"""Fixtures for the CLI tests: the real session stack of harness.pytest_plugin."""

from __future__ import annotations

import pytest

from harness.processes import free_port


@pytest.fixture
def app_url(function_host) -> str:
    """Base URL of the app under test (the plugin's session Functions host, on Azurite)."""
    return function_host.url


@pytest.fixture
def dead_url() -> str:
    """A URL nothing listens on (for connection-error paths)."""
    return f"http://127.0.0.1:{free_port()}"
