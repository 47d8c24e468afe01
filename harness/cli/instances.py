"""`instances`, `start`, `status`, `raise`, `terminate`, `purge`: orchestration instances through the
Durable HTTP API (`/runtime/webhooks/durabletask/`), so they work the same on the local host, `func`
and Azure; `--json` prints what the API answered, for scripts."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.client import RUNTIME_STATUSES, InstanceTimeout, SyncAgentClient
from harness.formatting import (
    STATUS_STYLES,
    clip,
    duration_text,
    format_value,
    local_time,
    status_note,
    time_text,
    timeline,
)

from .base import EXIT_NOT_COMPLETED, Command, UsageError, fail, print_json, stdout_console
from .options import positive_int, remote_options, seconds

DEFAULT_WAIT = 60.0


def _common(parser: argparse.ArgumentParser) -> None:
    remote_options(parser, True)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _instances_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help=f"only these runtime statuses (repeat or comma-separate): {', '.join(RUNTIME_STATUSES)}",
    )
    parser.add_argument("--top", type=positive_int, default=100, help="page size of the listing")
    _common(parser)


def _start_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("orchestrator", metavar="ORCHESTRATOR")
    parser.add_argument("--input", metavar="JSON", help="the orchestrator's input, as JSON")
    parser.add_argument("--id", dest="instance_id", metavar="ID", help="instance id (default: the host's)")
    parser.add_argument(
        "--wait",
        nargs="?",
        type=seconds,
        const=DEFAULT_WAIT,
        default=None,
        metavar="SECONDS",
        help=f"wait until it finishes (default {DEFAULT_WAIT:g} s); exit 1 unless it completed",
    )
    _common(parser)


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("instance", metavar="INSTANCE")
    parser.add_argument("--history", action="store_true", help="also show the history as a timeline")
    _common(parser)


def _raise_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("instance", metavar="INSTANCE")
    parser.add_argument("event", metavar="EVENT")
    parser.add_argument("--data", metavar="JSON", help="the event's data, as JSON")
    _common(parser)


def _terminate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("instance", metavar="INSTANCE")
    parser.add_argument("--reason", default=None, help="reason recorded with the termination")
    _common(parser)


def _purge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("instance", metavar="INSTANCE")
    _common(parser)


def _json_argument(text: str | None, option: str) -> Any:
    """Parse a `--input`/`--data` value; None when the option was not given."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{option} is not valid JSON ({exc}); quote strings, e.g. '\"text\"'") from None


def _statuses(values: list[str] | None) -> list[str] | None:
    """`--status running,failed --status Completed` -> the API's spellings; unknown names are errors."""
    if not values:
        return None
    known = {name.lower(): name for name in RUNTIME_STATUSES}
    chosen: list[str] = []
    for value in values:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if part.lower() not in known:
                raise UsageError(f"unknown status {part!r}; one of {', '.join(RUNTIME_STATUSES)}")
            if known[part.lower()] not in chosen:
                chosen.append(known[part.lower()])
    return chosen or None


def _status_text(status: dict[str, Any]) -> Text:
    runtime = str(status.get("runtimeStatus") or "?")
    return Text(runtime, style=STATUS_STYLES.get(runtime, ""))


def run_instances(args: argparse.Namespace) -> int:
    """Orchestration instances, newest first, as a table or JSON."""
    console = stdout_console()
    statuses = _statuses(args.status)
    with SyncAgentClient(args.url, key=args.key) as client:
        rows = client.instances(statuses, top=args.top)
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        console.print(
            "No orchestration instances" + (f" with status {', '.join(statuses)}." if statuses else ".")
        )
        return 0
    table = Table(title="Orchestration instances (newest first)", title_justify="left")
    table.add_column("Instance", style="bold", no_wrap=True)
    table.add_column("Orchestrator", no_wrap=True)
    table.add_column("Status", no_wrap=True)
    table.add_column("Created", no_wrap=True)
    table.add_column("Updated", no_wrap=True)
    table.add_column("Custom status / output")
    for row in rows:
        note = status_note(row) or (
            format_value(row.get("output"), 60) if row.get("output") is not None else ""
        )
        table.add_row(
            str(row.get("instanceId") or ""),
            str(row.get("name") or ""),
            _status_text(row),
            time_text(row.get("createdTime")),
            time_text(row.get("lastUpdatedTime")),
            clip(note, 60),
        )
    console.print(table)
    return 0


def run_start(args: argparse.Namespace) -> int:
    """Start an instance; with --wait, show how it ended (exit 1 unless Completed)."""
    console = stdout_console()
    data = _json_argument(args.input, "--input")
    with SyncAgentClient(args.url, key=args.key) as client:
        started = client.start(args.orchestrator, data, args.instance_id)
        instance_id = str(started["id"])
        if args.wait is None:
            if args.json:
                print_json(started)
            else:
                console.print(
                    f"Started [bold]{escape(args.orchestrator)}[/bold] "
                    f"instance [bold]{escape(instance_id)}[/bold]"
                )
                if started.get("statusQueryGetUri"):
                    console.print(f"Status: {escape(str(started['statusQueryGetUri']))}", soft_wrap=True)
            return 0
        try:
            status = client.wait(instance_id, timeout=args.wait)
        except InstanceTimeout as exc:
            _show_status(exc.last, args.json, console)
            return fail(str(exc), EXIT_NOT_COMPLETED)
    _show_status(status, args.json, console)
    if status.get("runtimeStatus") != "Completed":
        return fail(f"instance {instance_id!r} ended {status.get('runtimeStatus')}", EXIT_NOT_COMPLETED)
    return 0


def run_status(args: argparse.Namespace) -> int:
    """One instance's status, and with --history its timeline."""
    console = stdout_console()
    with SyncAgentClient(args.url, key=args.key) as client:
        status = client.instance(args.instance, history=args.history)
    if status is None:
        raise UsageError(f"no instance {args.instance!r}")
    _show_status(status, args.json, console)
    return 0


def _show_status(status: dict[str, Any], as_json: bool, console: Console) -> None:
    if as_json:
        print_json(status)
        return
    console.print(status_table(status))
    if "historyEvents" in status:
        console.print(timeline_table(status.get("historyEvents")))


def status_table(status: dict[str, Any]) -> Table:
    """An instance's status fields as a two-column grid."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("Instance", str(status.get("instanceId") or ""))
    table.add_row("Orchestrator", str(status.get("name") or ""))
    table.add_row("Status", _status_text(status))
    table.add_row("Created", time_text(status.get("createdTime")))
    table.add_row("Updated", time_text(status.get("lastUpdatedTime")))
    for label, key in (("Input", "input"), ("Custom status", "customStatus"), ("Output", "output")):
        if status.get(key) is not None:
            style = "red" if key == "output" and status.get("runtimeStatus") == "Failed" else ""
            table.add_row(label, Text(format_value(status[key], 2000), style=style))
    note = status_note(status)
    if note and status.get("customStatus") is None:
        table.add_row("Waiting", note)
    return table


def timeline_table(history: Any) -> Table:
    """The history as a timeline: time, duration, what, detail; failures in red."""
    table = Table(title="History", title_justify="left")
    table.add_column("Time", no_wrap=True)
    table.add_column("Took", justify="right", no_wrap=True)
    table.add_column("Kind", no_wrap=True)
    table.add_column("What")
    table.add_column("Detail", ratio=1)
    for row in timeline(history):
        style = "red" if row.failed else ""
        table.add_row(
            local_time(row.time, "%H:%M:%S"),
            duration_text(row.duration),
            row.kind,
            Text(row.title, style=style or "bold"),
            Text(row.detail, style=style),
        )
    return table


def _answer(args: argparse.Namespace, answer: dict[str, Any], text: str) -> int:
    """What a one-request command says it did: `answer` with --json, else `text` (rich markup)."""
    if args.json:
        print_json(answer)
    else:
        stdout_console().print(text)
    return 0


def run_raise(args: argparse.Namespace) -> int:
    """Raise an external event on an instance."""
    data = _json_argument(args.data, "--data")
    with SyncAgentClient(args.url, key=args.key) as client:
        client.raise_event(args.instance, args.event, data)
    answer = {"instanceId": args.instance, "event": args.event, "raised": True}
    return _answer(args, answer, f"Raised {escape(args.event)} on {escape(args.instance)}")


def run_terminate(args: argparse.Namespace) -> int:
    """Ask the host to terminate an instance (it does so asynchronously)."""
    with SyncAgentClient(args.url, key=args.key) as client:
        client.terminate(args.instance, args.reason)
    answer = {"instanceId": args.instance, "terminated": True}
    return _answer(args, answer, f"Terminating {escape(args.instance)} (the host does it asynchronously)")


def run_purge(args: argparse.Namespace) -> int:
    """Delete an instance and its history."""
    with SyncAgentClient(args.url, key=args.key) as client:
        deleted = client.purge(args.instance)
    answer = {"instanceId": args.instance, "instancesDeleted": deleted}
    return _answer(args, answer, f"Purged {escape(args.instance)} ({deleted} instance deleted)")


INSTANCE_COMMANDS = (
    Command(
        "instances",
        "list orchestration instances, newest first",
        _instances_arguments,
        run_instances,
        finds_app=True,
    ),
    Command("start", "start an orchestration instance", _start_arguments, run_start, finds_app=True),
    Command(
        "status", "show an instance's status (and history)", _status_arguments, run_status, finds_app=True
    ),
    Command("raise", "raise an external event on an instance", _raise_arguments, run_raise, finds_app=True),
    Command("terminate", "terminate a running instance", _terminate_arguments, run_terminate, finds_app=True),
    Command("purge", "delete an instance and its history", _purge_arguments, run_purge, finds_app=True),
)
