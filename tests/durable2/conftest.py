"""Fixtures for Durable Functions 2.x apps: a Python 3.13 venv with the 2.x sample's requirements,
and the local host running `samples/durable2` in it (a subprocess, as `python -m harness host
samples/durable2 --python ...` runs it) on the session's Azurite, on a task hub of its own.

The venv is made once per machine (`harness/host/isolated/venvs.py`) from the Python the sample's
`.python-version` names (pyenv's file). Without that Python the tests skip, saying so, except under
CI, where they fail: CI must run them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.azurite import Azurite
from harness.host.isolated.venvs import NoPython, app_venv
from harness.stack import FunctionHost

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "durable2"


@pytest.fixture(scope="session")
def durable2_python() -> str:
    """A Python 3.13 with the 2.x sample's requirements (azure-functions-durable 2.x) installed."""
    try:
        return app_venv(SAMPLE)
    except NoPython as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@contextmanager
def app_host(app: Path, azurite: Azurite, python: str, logs: Path, **options: Any) -> Iterator[FunctionHost]:
    """The local host serving `app` in `python` (a subprocess), on a task hub of its own; `options` go
    to `FunctionHost` (`virtual_time`, `env`)."""
    host = FunctionHost(
        app,
        storage=azurite.connection_string,
        mode="local",
        python=python,
        task_hub=app.name.replace("_", "") + uuid.uuid4().hex[:10],
        log_path=logs / "host.log",
        **options,
    )
    host.start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def durable2_host(
    azurite: Azurite, durable2_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FunctionHost]:
    """The local host serving the 2.x sample in its Python 3.13, on a task hub of this module's own."""
    with app_host(SAMPLE, azurite, durable2_python, tmp_path_factory.mktemp("durable2")) as host:
        yield host


@pytest.fixture
def http(durable2_host: FunctionHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=durable2_host.url, timeout=30) as client:
        yield client
