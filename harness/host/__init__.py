"""Local Azure Functions host stand-in: serves an unmodified `function_app.py` and its durable entities.

`func` (Core Tools) cannot be installed everywhere; this host loads the Python v2 programming-model app,
serves its HTTP triggers with aiohttp, runs entities through the SDK's own handler and persists them in
Azure Storage (Azurite). Entry points: `LocalHost` (in-process, async) and `main(argv)` (CLI).
"""

from .server import LocalHost, main

__all__ = ["LocalHost", "main"]
