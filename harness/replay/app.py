"""An app's orchestrators, as the replay check looks them up: from the app's folder (what the CLI
has) or from its `FunctionApp` object (what a test has), indexed the way the local host indexes them
(a function under its Python name and its `orchestration=` binding name)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.host.loader import index_functions, load_app
from harness.host.settings import apply_local_settings

from .check import Orchestrators

_BY_APP: dict[int, tuple[Any, Orchestrators]] = {}


def folder_orchestrators(app_dir: Path) -> Orchestrators:
    """The orchestrators of the app in `app_dir` (its local.settings.json applied first, as `func`
    does); `AppLoadError` when it cannot be imported."""
    apply_local_settings(app_dir)
    index = load_app(app_dir)
    return lambda name: found.fn if (found := index.orchestrators.get(name.lower())) else None


def app_orchestrators(app: Any) -> Orchestrators:
    """The orchestrators of a `FunctionApp` (`df.DFApp`, `AgentFunctionApp`) object; indexed once per
    app, since the SDK lets `get_functions()` run only once."""
    cached = _BY_APP.get(id(app))
    if cached is not None and cached[0] is app:
        return cached[1]
    index = index_functions(app.get_functions())
    lookup: Orchestrators = lambda name: (  # noqa: E731 - a closure over this app's index
        found.fn if (found := index.orchestrators.get(name.lower())) else None
    )
    _BY_APP[id(app)] = (app, lookup)
    return lookup
