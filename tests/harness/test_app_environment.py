"""The app's environment under the local host: what `func` gives a worker, the app reads at import."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from harness.processes import ManagedProcess, free_port

APP = """
import os

import azure.functions as func

STORAGE = os.environ["AzureWebJobsStorage"]  # read at import, as apps building clients do

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="storage")
def storage(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(STORAGE)
"""


def _host(app: Path, tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[ManagedProcess, str]:
    """`python -m harness host APP` on a free port, ready; its process and its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = ManagedProcess(
        [sys.executable, "-m", "harness", "host", str(app), "--port", str(port), *args],
        log_path=tmp_path / "host.log",
        env=env,
        inherit_env=False,
        cwd=app,
    )
    proc.start()
    proc.wait_ready(lambda: httpx.get(f"{url}/admin/host/status").status_code == 200, 60)
    return proc, url


@pytest.fixture
def env_app(tmp_path: Path) -> Path:
    """An app with no local.settings.json that reads AzureWebJobsStorage from os.environ at import."""
    app = tmp_path / "envapp"
    app.mkdir()
    (app / "host.json").write_text('{"version": "2.0"}')
    (app / "function_app.py").write_text(APP)
    return app


def _environment(**extra: str) -> dict[str, str]:
    """The test's environment for the host: no storage setting of its own, a task hub of its own
    (the session's Azurite is shared: another host may serve the default hub)."""
    env = {k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"}
    hub = "env" + uuid.uuid4().hex[:12]
    return {**env, "PYTHONUNBUFFERED": "1", "DURABLEAGENT_TASK_HUB": hub, **extra}


@pytest.mark.integration
def test_app_reads_the_storage_the_host_uses_at_import(env_app: Path, tmp_path: Path, azurite) -> None:
    """No local.settings.json, storage given with --storage: the app finds it in os.environ at import,
    as under `func`, instead of failing to load with a KeyError."""
    proc, url = _host(env_app, tmp_path, "--storage", azurite.connection_string, env=_environment())
    try:
        answer = httpx.get(f"{url}/api/storage", timeout=10)
        assert answer.status_code == 200, proc.log_tail()
        assert answer.text == azurite.connection_string
    finally:
        proc.stop()


@pytest.mark.integration
def test_a_storage_setting_the_user_made_is_kept(env_app: Path, tmp_path: Path, azurite) -> None:
    """The user's own AzureWebJobsStorage is what the host uses and what the app reads: never replaced."""
    mine = azurite.connection_string + "Marker=mine;"
    proc, url = _host(env_app, tmp_path, env=_environment(AzureWebJobsStorage=mine))
    try:
        answer = httpx.get(f"{url}/api/storage", timeout=10)
        assert answer.text == mine
    finally:
        proc.stop()
