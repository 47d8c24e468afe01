"""The local host on an Azurite started as users start theirs (the editor extension's defaults: API
versions checked, not loose): it works, and a version storage refuses stops it with one line."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.azurite import STRICT_FLAGS, Azurite, ensure_azurite, find_azurite
from harness.host.storage.api_version import API_VERSION_ENV
from harness.processes import StartupError
from harness.stack import DEFAULT_APP_DIR, FunctionHost, default_script_path

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def strict_azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    if shutil.which("node") is None and find_azurite() is None:
        pytest.skip("node is not installed")
    data = tmp_path_factory.mktemp("strict-azurite")
    with Azurite(data, executable=ensure_azurite(), flags=STRICT_FLAGS) as emulator:
        yield emulator


def _host(azurite: Azurite, tmp_path: Path, env: dict[str, str] | None = None) -> FunctionHost:
    return FunctionHost(
        DEFAULT_APP_DIR,
        mode="local",
        storage=azurite.connection_string,
        chat_script=default_script_path(DEFAULT_APP_DIR),
        task_hub=f"strict{uuid.uuid4().hex[:8]}",
        env=env,
        log_path=tmp_path / "host.log",
    )


def test_this_azurite_refuses_the_sdks_newest_version(strict_azurite: Azurite) -> None:
    """The premise: without the pin, the blob SDK's default version is refused."""
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(strict_azurite.connection_string, retry_total=0)
    with pytest.raises(HttpResponseError, match="API version .* is not supported by Azurite"):
        client.create_container(f"c{uuid.uuid4().hex[:8]}")


def test_local_host_runs_turns_on_an_azurite_that_checks_versions(
    strict_azurite: Azurite, tmp_path: Path
) -> None:
    with _host(strict_azurite, tmp_path) as host:
        body = {"message": "weather in Paris?", "sessionId": "strict-1"}
        reply = httpx.post(f"{host.url}/api/agents/WeatherAgent/run", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        state = httpx.get(f"{host.url}/api/agents/WeatherAgent/strict-1", timeout=30).json()
        assert state["message_count"] == 2
    assert "not supported by Azurite" not in host.log_path.read_text()


def test_a_refused_version_stops_the_host_with_a_line_that_says_how_to_fix_it(
    strict_azurite: Azurite, tmp_path: Path
) -> None:
    host = _host(strict_azurite, tmp_path, env={API_VERSION_ENV: "2026-06-06"})
    with pytest.raises(StartupError) as info:
        host.start(timeout=120)
    first = str(info.value).splitlines()[0]
    assert first.startswith(
        "local host did not start: storage refuses the API version the host sends (2026-06-06)"
    )
    assert "--skipApiVersionCheck" in first and API_VERSION_ENV in first
    assert f"log: {host.log_path}" in first
    assert not host.is_running()
