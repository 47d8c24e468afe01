"""`replay-check FILE... --app DIR`: replay recorded orchestration histories against the app's current
orchestrator code, offline (no storage, no network), and report the first divergence of each.

Exit 0 when every history replays, 1 when any diverges, 2 when a file is no history (one line
naming it) or the app cannot be loaded. `--json` prints one object per history for CI.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .base import EXIT_USAGE, Command, UsageError, fail, print_json
from .options import default_app

if TYPE_CHECKING:
    from harness.replay import CheckResult

EXIT_DIVERGED = 1


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        type=Path,
        metavar="FILE",
        help="a history as the Durable HTTP API serves it (showHistory=true&showHistoryOutput=true"
        "&showInput=true), a list of them, or an export",
    )
    parser.add_argument(
        "--app",
        type=Path,
        metavar="DIR",
        help="the app folder whose orchestrators to replay (default: the current folder)",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        default=None,
        help="the app's own Python (Durable Functions 2.x apps; default: the app's .venv when it "
        "holds azure-functions-durable 2.x)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON for CI")


def _run(args: argparse.Namespace) -> int:
    # The replay engine loads the Durable SDK and the host's isolated worker: this command only.
    from harness.host.errors import AppLoadError
    from harness.replay import BadHistory, check_run, folder_orchestrators, load_runs

    app = args.app or default_app()[0]
    if app is None or not (app / "function_app.py").is_file():
        raise UsageError(f"no function_app.py in {app or Path.cwd()}: give the app folder with --app")
    runs = []
    for path in args.files:
        try:
            runs.extend(load_runs(path))
        except BadHistory as exc:
            return fail(str(exc), EXIT_USAGE)
    try:
        orchestrators = folder_orchestrators(app, args.python)
    except AppLoadError as exc:
        return fail(f"cannot load the app in {app}: {exc}", EXIT_USAGE)
    results = []
    for run in runs:
        try:
            results.append(check_run(run, orchestrators))
        except Exception as exc:  # a history this check cannot read after all: bad input, one line
            return fail(f"{run.source}: cannot replay it ({type(exc).__name__}: {exc})", EXIT_USAGE)
    if args.json:
        print_json([r.as_json() for r in results])
    else:
        _print(results)
    return 0 if all(r.ok for r in results) else EXIT_DIVERGED


def _print(results: list[CheckResult]) -> None:
    """Plain lines (a CI log shows them as they are): `ok` or `DIVERGED` and a two-line diff."""
    for result in results:
        where = f"{result.source} {result.orchestrator} ({result.instance_id})"
        divergence = result.divergence
        if divergence is None:
            print(f"ok        {where}")
            continue
        at = "at the end" if divergence.index is None else f"at history event {divergence.index}"
        print(f"DIVERGED  {where} {at}: {divergence.reason}")
        print(f"  - history: {divergence.recorded}")
        print(f"  + code:    {divergence.code}")


REPLAY_CHECK = Command(
    "replay-check",
    "replay recorded orchestration histories against the current code",
    _arguments,
    _run,
    description="Replay each orchestration history (as the Durable HTTP API serves it, a list of "
    "them, or an export) against the app's orchestrators through the SDK's own handler, offline, "
    "and report ok or the first divergence. Exit 0: all replay; 1: any diverges; 2: bad input.",
)
