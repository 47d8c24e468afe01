"""Fixtures for the CLI tests: the real session stack of harness.pytest_plugin."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.processes import free_port
from harness.workspace import WORKSPACE_DIR


@pytest.fixture
def app_url(function_host) -> str:
    """Base URL of the app under test (the plugin's session Functions host, on Azurite)."""
    return function_host.url


@pytest.fixture
def dead_url() -> str:
    """A URL nothing listens on (for connection-error paths)."""
    return f"http://127.0.0.1:{free_port()}"


CHECKOUT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A copy of the weather sample: a user's own app folder, with function_app.py."""
    target = tmp_path / "myapp"
    shutil.copytree(
        CHECKOUT / "samples" / "weather", target, ignore=shutil.ignore_patterns("__pycache__", WORKSPACE_DIR)
    )
    return target


def _sample_workspaces() -> set[Path]:
    """Workspaces in the checkout's app folders (samples and the tests' own apps)."""
    return {*CHECKOUT.glob(f"samples/*/{WORKSPACE_DIR}"), *CHECKOUT.glob(f"tests/**/{WORKSPACE_DIR}")}


@pytest.fixture(autouse=True)
def _no_workspace_in_samples() -> Iterator[None]:
    """The CLI tests start stacks on the samples and test apps: each must use --fresh or --data, never
    leave a workspace in the checkout (where it would outlive the test run)."""
    before = _sample_workspaces()
    yield
    added = _sample_workspaces() - before
    assert not added, f"a test left a workspace in the checkout: {sorted(map(str, added))}"
