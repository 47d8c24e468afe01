"""Local Azure Functions host stand-in: serves an unmodified `function_app.py` and its durable entities.

`func` (Core Tools) cannot be installed everywhere; this host loads the Python v2 programming-model app,
serves its HTTP triggers with aiohttp, runs entities through the SDK's own handler and persists them in
Azure Storage (Azurite). Entry points: `LocalHost` (in-process, async) and `main(argv)` (CLI).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import LocalHost, main

__all__ = ["LocalHost", "main"]


def __getattr__(name: str) -> Any:
    """`LocalHost` and `main` load the server on first use: importing a light submodule (`errors`,
    `settings`) from the CLI then does not pay for the whole host (aiohttp, storage, MCP SDKs)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from . import server

    return getattr(server, name)
