"""The pytest plugin's `function_host` serves a Durable Functions 2.x app in its own Python
(`--durableagent-python`), as a user's test suite for such an app would run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import SAMPLE

pytest_plugins = ["pytester"]

TESTS = """
import time

import httpx


def test_the_chain_completes(function_host):
    started = httpx.post(f"{function_host.url}/api/orchestrators/chain", json={}, timeout=30)
    assert started.status_code == 202
    status_url = started.json()["statusQueryGetUri"]
    for _ in range(300):
        status = httpx.get(status_url, timeout=30).json()
        if status["runtimeStatus"] == "Completed":
            break
        time.sleep(0.1)
    assert status["output"][-1] == "Hello Hello Hello Tokyo"
"""


@pytest.mark.integration
def test_function_host_serves_a_2x_app(
    azurite_exe: Path, pytester: pytest.Pytester, durable2_python: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLEAGENT_AZURITE", str(azurite_exe))
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # the inner run is not an xdist worker
    pytester.makepyfile(test_app=TESTS)
    result = pytester.runpytest_subprocess(
        "--durableagent-app",
        str(SAMPLE),
        "--durableagent-host",
        "local",
        "--durableagent-python",
        durable2_python,
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=1)
