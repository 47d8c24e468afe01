"""An app's orchestrators from its folder, as `replay-check --app DIR` finds them: the app imported
and indexed the way the local host does it (its local.settings.json applied first, as `func` does)."""

from __future__ import annotations

import os
from pathlib import Path

from durableagent.replay import Orchestrators
from harness.host.isolated.interpreter import app_python
from harness.host.loader import load_app
from harness.host.settings import apply_local_settings
from harness.replay.isolated import isolated_orchestrators


def folder_orchestrators(app_dir: Path, python: str | None = None) -> Orchestrators:
    """The orchestrators of the app in `app_dir`; `AppLoadError` when it cannot be imported. An app
    on Durable Functions 2.x (`python`, or its `.venv`: `harness/host/isolated/interpreter.py`) is
    replayed through its own interpreter (`isolated.py`).

    The settings are in the environment while the app is imported, and taken out again after: a
    replay check run in-process (a test) must not leave one app's settings to the next."""
    interpreter = app_python(app_dir, python)
    applied = apply_local_settings(app_dir)
    if interpreter is not None:
        try:
            return isolated_orchestrators(app_dir, interpreter)
        finally:
            for name in applied:
                os.environ.pop(name, None)
    try:
        index = load_app(app_dir)
    finally:
        for name in applied:
            os.environ.pop(name, None)
    return lambda name: found.fn if (found := index.orchestrators.get(name.lower())) else None
