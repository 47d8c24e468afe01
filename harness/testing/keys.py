"""Keys a test can read back: derived from the test's name, with a random part so runs never collide."""

from __future__ import annotations

import re
import uuid

__all__ = ["key_stem", "unique_key"]


def key_stem(name: str) -> str:
    """`test_weather[Paris]` -> `test-weather-paris`: lower case, at most 40 characters, never empty."""
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()[:40] or "test"


def unique_key(name: str) -> str:
    """A session (or instance) key no other test uses, readable in logs and the TUI."""
    return f"{key_stem(name)}-{uuid.uuid4().hex[:8]}"
