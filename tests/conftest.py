"""Marks every test that starts real processes as ``integration``, by the fixtures it uses.

The plugin (``harness.pytest_plugin``) already marks users of its stack fixtures; these are this
repository's own fixtures that start Azurite or a host, directly or through the plugin's
(``item.fixturenames`` holds every fixture a test needs, so one used by a fixture counts too).
Tests that start processes themselves, without such a fixture, carry an explicit
``pytest.mark.integration``. ``pytest -m "not integration"`` then starts no Azurite and no host.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# As `python -m harness.host` does: the workers fork processes after gRPC is loaded (the sidecar
# tests), and its fork handlers can leave a child's gRPC threads on closed descriptors.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from harness.azurite import ensure_azurite, find_azurite  # noqa: E402

INTEGRATION_FIXTURES = frozenset(
    {
        # the plugin's session stack
        "azurite",
        "function_host",
        "host_client",
        # tests/host: the session Azurite, a local host in-process or as subprocesses
        "azurite_connstr",
        "host",
        "host_process",
        # tests/host: a task hub of a test's own; only storage gives it a meaning (the outage
        # test in test_host_durability.py takes it and starts an Azurite of its own)
        "hub",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def azurite_exe() -> Path:
    """The Azurite executable for a child pytest (`DURABLEAGENT_AZURITE`), resolved before pytester
    swaps HOME: the child's empty cache would mean another npm install (15 s and the network)."""
    if shutil.which("node") is None and find_azurite() is None:
        pytest.skip("node is not installed")
    return ensure_azurite()
