"""The default script of the weather sample, shipped as package data."""

from __future__ import annotations

from pathlib import Path

from .script import Script, load_script

WEATHER_SCRIPT_PATH: Path = Path(__file__).with_name("scripts") / "weather.json"
"""Rule-based script: weather questions call ``get_weather``, sums call ``calculate``."""


def weather_script() -> Script:
    """Load the weather sample's script (a fresh ``Script`` each call)."""
    return load_script(WEATHER_SCRIPT_PATH)
