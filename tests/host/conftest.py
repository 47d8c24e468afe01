"""Fixtures for the local host tests: the plugin's session Azurite, a task hub per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from harness.azurite import Azurite
from harness.host import LocalHost

COUNTER_APP = Path(__file__).resolve().parents[2] / "samples" / "counter"


@pytest.fixture(scope="session")
def azurite_connstr(azurite: Azurite) -> str:
    """Connection string of the session-wide Azurite (tests isolate by task hub)."""
    return azurite.connection_string


@pytest.fixture
def hub() -> str:
    """A task hub of its own for every test."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    """The counter sample served in-process on a free port."""
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
