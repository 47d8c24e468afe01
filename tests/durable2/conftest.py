"""Fixtures for Durable Functions 2.x apps: a Python 3.13 venv with the 2.x sample's requirements,
and the local host running `samples/durable2` in it (a subprocess, as `python -m harness host
samples/durable2 --python ...` runs it) on the session's Azurite, on a task hub of its own.

The venv is made once per machine under `~/.cache/durableagent/` (keyed by the requirements) from
the Python the sample's `.python-version` names (pyenv's file), found on PATH or under pyenv. Without
that Python the tests skip, saying so, except under CI, where they fail: CI must run them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.azurite import Azurite
from harness.stack import FunctionHost

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "durable2"


def find_python(version: str) -> str | None:
    """The newest pyenv install of Python `version`, else a `pythonX.Y` on PATH that runs (pyenv's
    shim is on PATH for versions that are installed but not enabled, and fails)."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))
    if pyenv:
        return str(pyenv[-1])
    found = shutil.which(f"python{version}")
    if found and subprocess.run([found, "--version"], capture_output=True, timeout=30).returncode == 0:
        return found
    return None


@pytest.fixture(scope="session")
def durable2_python() -> str:
    """A Python 3.13 with the 2.x sample's requirements (azure-functions-durable 2.x) installed."""
    version = (SAMPLE / ".python-version").read_text(encoding="utf-8").split()[0]
    base = find_python(version)
    if base is None:
        message = f"Durable Functions 2.x needs Python {version}, which this machine does not have"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    requirements = (SAMPLE / "requirements.txt").read_bytes()
    key = hashlib.sha256(requirements + base.encode()).hexdigest()[:12]
    venv = Path.home() / ".cache" / "durableagent" / f"durable2-venv-{key}"
    python = venv / "bin" / "python"
    done = venv / ".installed"
    if not done.is_file():
        subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(SAMPLE / "requirements.txt")],
            check=True,
            timeout=900,
        )
        done.write_text("ok\n")
    return str(python)


@pytest.fixture(scope="module")
def durable2_host(
    azurite: Azurite, durable2_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FunctionHost]:
    """The local host serving the 2.x sample in its Python 3.13, on a task hub of this module's own."""
    logs = tmp_path_factory.mktemp("durable2")
    host = FunctionHost(
        SAMPLE,
        storage=azurite.connection_string,
        mode="local",
        python=durable2_python,
        task_hub="Durable2" + uuid.uuid4().hex[:10],
        log_path=logs / "host.log",
    )
    host.start()
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def http(durable2_host: FunctionHost) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=durable2_host.url, timeout=30) as client:
        yield client
