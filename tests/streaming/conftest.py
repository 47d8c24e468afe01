"""The streaming sample (`http_streams=True`) in a host of its own, on the session's Azurite."""

from __future__ import annotations

from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


@pytest.fixture(scope="session")
def function_host_app_dir() -> Path:
    return SAMPLES / "streaming"
