"""`export` and `import`: a portable file of orchestration instances (status, history) and agent
sessions (stored state), from a running app (its HTTP API) or a task hub's tables, and back into a
local one (see `harness/transfer.py`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import httpx

from harness.workspace import running_storage, running_url

from .base import Command, UsageError
from .options import default_app, remote_options


def _session(text: str) -> tuple[str, str]:
    agent, slash, session_id = text.partition("/")
    if not slash or not agent or not session_id:
        raise argparse.ArgumentTypeError(f"expected AGENT/SESSION_ID, got {text!r}")
    return agent, session_id


def _storage_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--storage", metavar="CONNECTION_STRING", help=what)
    parser.add_argument("--hub", metavar="NAME", help="the task hub (with --storage)")


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--instance", action="append", default=[], metavar="ID", help="an orchestration instance (repeat)"
    )
    parser.add_argument(
        "--session", action="append", default=[], type=_session, metavar="AGENT/ID", help="an agent session"
    )
    parser.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)")
    remote_options(parser, True)
    _storage_options(
        parser,
        "read the task hub's tables directly (a deployed app's Azure Storage hub, or the local host's)",
    )


def _storage(args: argparse.Namespace) -> tuple[str, str] | None:
    """The task hub to read or write directly: --storage/--hub, else the local stack's (when the
    command talks to the stack running for the app: its Azurite and hub), else None."""
    if bool(args.storage) != bool(args.hub):
        raise UsageError("--storage and --hub go together")
    if args.storage:
        return args.storage, args.hub
    app = args.app or default_app()[0]
    if app is None or running_url(app) != args.url:
        return None
    storage = running_storage(app)
    if storage is None:
        return None
    try:  # the host's readiness probe names its task hub
        answer = httpx.get(f"{args.url.rstrip('/')}/admin/host/status", timeout=10.0).json()
    except (httpx.HTTPError, ValueError):
        return None
    hub = answer.get("taskHub") if isinstance(answer, dict) else None
    return (storage, hub) if isinstance(hub, str) and hub else None


def _export(args: argparse.Namespace) -> int:
    # harness.transfer loads the Durable SDK (history events): these two commands only.
    from harness.transfer import export_from_storage, export_over_http

    if not args.instance and not args.session:
        raise UsageError("nothing to export: give --instance ID and/or --session AGENT/ID")
    storage = _storage(args)
    if storage is not None:
        bundle = export_from_storage(*storage, args.instance, args.session)
    else:
        bundle = export_over_http(args.url, args.key, args.instance, args.session)
    text = json.dumps(bundle, indent=1, ensure_ascii=False, default=str)
    if args.output is None:
        print(text)
        return 0
    try:
        args.output.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    counts = f"{len(bundle['instances'])} instance(s), {len(bundle['sessions'])} session(s)"
    missing = bundle.get("missingSessions") or []
    if missing:
        counts += f" ({len(missing)} session(s) the instances called no longer exist: see missingSessions)"
    print(f"exported {counts} to {args.output}", file=sys.stderr)
    return 0


def _import_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE", help="an export")
    clash = parser.add_mutually_exclusive_group()
    clash.add_argument("--replace", action="store_true", help="replace an instance or session of the same id")
    clash.add_argument("--new-id", action="store_true", help="import under a new id when the id exists")
    remote_options(parser, True)
    _storage_options(parser, "write instances into the task hub's tables directly")


def _import(args: argparse.Namespace) -> int:
    from durableagent.replay import BadHistory
    from harness.transfer import check_bundle, import_instances, import_sessions

    try:
        from durableagent.replay.recorded import MAX_FILE_BYTES

        if args.file.stat().st_size > MAX_FILE_BYTES:
            raise UsageError(f"{args.file}: larger than the {MAX_FILE_BYTES} bytes an export may have")
        data = json.loads(args.file.read_bytes())
    except OSError as exc:
        raise UsageError(f"{args.file}: cannot read it ({exc.strerror or exc})") from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{args.file}: not JSON ({exc})") from None
    try:
        bundle = check_bundle(data, str(args.file))
    except BadHistory as exc:
        raise UsageError(str(exc)) from None
    storage = _storage(args)
    if bundle["instances"] and storage is None:
        raise UsageError(
            f"{args.file} holds orchestration instances: give the task hub to write them into "
            "(--storage CONNECTION_STRING --hub NAME)"
        )
    if storage is not None and bundle["instances"]:
        for iid in import_instances(*storage, bundle["instances"], args.replace, args.new_id):
            print(f"imported instance {iid}")
    if bundle["sessions"]:
        for agent, session_id in import_sessions(
            args.url, args.key, bundle["sessions"], args.replace, args.new_id
        ):
            print(f"imported session {agent}/{session_id}")
    return 0


EXPORT = Command(
    "export",
    "write orchestration instances and agent sessions to a portable file",
    _export_arguments,
    _export,
    description="Export orchestration instances (status, input, output, custom status, history, and "
    "the sessions of the agents they called) and agent sessions (stored state) from a running app "
    "(--url/--key, or the app's local stack) or a task hub's tables (--storage/--hub: a deployed app's "
    "hub in the Azure Storage provider's layout, or the local host's).",
    finds_app=True,
)
IMPORT = Command(
    "import",
    "bring an export into a local app (instances into a task hub, sessions through the app)",
    _import_arguments,
    _import,
    description="Import an export: its instances into a task hub (--storage/--hub), its sessions into "
    "the running app (seeded as `fork` does). An id that exists is refused unless --replace or --new-id.",
    finds_app=True,
)
