"""`workflow run|status|respond|watch`: hosted agent-framework Workflows through Microsoft's three
routes and the status route's event stream (harness/workflow_api.py), so they work the same on the
local host, `func` and Azure.

An instance is named by its id alone: the status and respond routes need the workflow's name too,
which the Durable instance API gives (the orchestrator of workflow W is `dafx-W`). `--json` prints
what the routes answered (`watch --json`: one event per line), for scripts.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from harness.client import SyncAgentClient
from harness.formatting import STATUS_STYLES, format_value, time_text
from harness.workflow_api import (
    EXECUTOR_STYLES,
    FINISHED,
    describe_event,
    executor_states,
    parse_input,
)

from .base import (
    EXIT_NOT_COMPLETED,
    PROG,
    Command,
    OneLineParser,
    UsageError,
    fail,
    print_json,
    stdout_console,
)
from .options import remote_options, seconds

DEFAULT_WAIT = 60.0
POLL_SECONDS = 0.2


def _common(parser: argparse.ArgumentParser) -> None:
    remote_options(parser, True)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=OneLineParser)
    actions.required = True
    run = actions.add_parser("run", help="start a workflow (INPUT: JSON if it parses, else text)")
    run.add_argument("workflow", metavar="NAME")
    run.add_argument("input", metavar="INPUT", nargs="?", default=None)
    run.add_argument("--id", dest="run_id", metavar="ID", help="instance id (Microsoft's runId)")
    run.add_argument(
        "--wait",
        nargs="?",
        type=seconds,
        const=DEFAULT_WAIT,
        default=None,
        metavar="SECONDS",
        help=f"wait until it finishes or asks a person (default {DEFAULT_WAIT:g} s); "
        "exit 1 if it failed or is still running",
    )
    _common(run)
    status = actions.add_parser("status", help="a workflow instance: executors, output, open requests")
    status.add_argument("instance", metavar="ID")
    _common(status)
    respond = actions.add_parser("respond", help="answer an open request of a workflow instance")
    respond.add_argument("instance", metavar="ID")
    respond.add_argument("request", metavar="REQUEST_ID")
    respond.add_argument("answer", metavar="JSON", help="the answer, e.g. '{\"approved\": true}'")
    _common(respond)
    watch = actions.add_parser("watch", help="stream an instance's events until it ends")
    watch.add_argument("instance", metavar="ID")
    watch.add_argument(
        "--after", type=int, default=-1, metavar="N", help="start after event N (as Last-Event-ID)"
    )
    _common(watch)


def _answer_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the answer is not valid JSON ({exc}); e.g. '{{\"approved\": true}}'") from None


def _respond_hint(instance_id: str, request: dict[str, Any]) -> str:
    return f"{PROG} workflow respond {instance_id} {request.get('requestId')} JSON"


def _status_text(runtime: Any) -> Text:
    return Text(str(runtime or "?"), style=STATUS_STYLES.get(str(runtime), ""))


def status_table(name: str, status: dict[str, Any]) -> Table:
    """A workflow instance as a two-column grid: status, executors coloured by state, output."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    instance_id = str(status.get("instanceId") or "")
    table.add_row("Workflow", name)
    table.add_row("Instance", instance_id)
    table.add_row("Status", _status_text(status.get("runtimeStatus")))
    table.add_row("Created", time_text(status.get("createdTime")))
    table.add_row("Updated", time_text(status.get("lastUpdatedTime")))
    custom = status.get("customStatus") if isinstance(status.get("customStatus"), dict) else {}
    if custom.get("superstep") is not None:
        table.add_row("Superstep", str(custom["superstep"]))
    states = executor_states(status)
    if states:
        line = Text()
        for index, (executor, state) in enumerate(states.items()):
            if index:
                line.append("  ")
            line.append(executor, style="bold")
            line.append(f" {state}", style=EXECUTOR_STYLES.get(state, ""))
        table.add_row("Executors", line)
    if status.get("output") is not None:
        table.add_row("Output", format_value(status["output"], 2000))
    if status.get("error") is not None:
        table.add_row("Error", Text(format_value(status["error"], 2000), style="red"))
    for request in status.get("pendingHumanInputRequests") or []:
        text = Text()
        text.append(str(request.get("requestId")), style="bold")
        text.append(f" from {request.get('sourceExecutor')}: {format_value(request.get('requestData'), 400)}")
        text.append(f"\nanswer ({request.get('responseType')}): ", style="dim")
        text.append(_respond_hint(instance_id, request), style="italic")
        table.add_row("Waiting for", text)
    return table


def _find(client: SyncAgentClient, instance_id: str) -> tuple[str, dict[str, Any]]:
    """The instance's workflow and its status-route body; one line when unknown."""
    name = client.workflow_of(instance_id)
    status = client.workflow_status(name, instance_id)
    if status is None:
        raise UsageError(f"no instance {instance_id!r} of workflow {name!r}")
    return name, status


def _show(console: Console, name: str, status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(status)
    else:
        console.print(status_table(name, status))


def _ended(status: dict[str, Any]) -> int:
    """Exit code of a status reached by --wait: 0 completed or waiting for a person, else 1."""
    runtime = status.get("runtimeStatus")
    if runtime == "Completed" or (runtime not in FINISHED and status.get("pendingHumanInputRequests")):
        return 0
    if runtime in FINISHED:
        return fail(f"instance {status.get('instanceId')!r} ended {runtime}", EXIT_NOT_COMPLETED)
    return fail(
        f"instance {status.get('instanceId')!r} is still {runtime}; "
        f"see `{PROG} workflow watch {status.get('instanceId')}`",
        EXIT_NOT_COMPLETED,
    )


def _wait(client: SyncAgentClient, name: str, instance_id: str, limit: float) -> dict[str, Any]:
    """Poll the status route until the instance ended or asks a person, or `limit` seconds passed."""
    deadline = time.monotonic() + limit
    while True:
        status = client.workflow_status(name, instance_id)
        if status is None:
            raise UsageError(f"no instance {instance_id!r} of workflow {name!r}")
        if status.get("runtimeStatus") in FINISHED or status.get("pendingHumanInputRequests"):
            return status
        if time.monotonic() >= deadline:
            return status
        time.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def run_run(args: argparse.Namespace) -> int:
    """Start a workflow; with --wait, show how it ended (or what it asks)."""
    console = stdout_console()
    value = parse_input(args.input) if args.input is not None else ""  # no INPUT: an empty text body
    with SyncAgentClient(args.url, key=args.key) as client:
        started = client.workflow_run(args.workflow, value, args.run_id)
        instance_id = str(started["instanceId"])
        if args.wait is None:
            if args.json:
                print_json(started)
            else:
                console.print(
                    f"Started workflow [bold]{escape(args.workflow)}[/bold] "
                    f"instance [bold]{escape(instance_id)}[/bold]"
                )
                console.print(f"Watch: {PROG} workflow watch {escape(instance_id)}", soft_wrap=True)
            return 0
        status = _wait(client, args.workflow, instance_id, args.wait)
    _show(console, args.workflow, status, args.json)
    return _ended(status)


def run_status(args: argparse.Namespace) -> int:
    console = stdout_console()
    with SyncAgentClient(args.url, key=args.key) as client:
        name, status = _find(client, args.instance)
    _show(console, name, status, args.json)
    return 0


def run_respond(args: argparse.Namespace) -> int:
    answer = _answer_json(args.answer)
    with SyncAgentClient(args.url, key=args.key) as client:
        name = client.workflow_of(args.instance)
        result = client.workflow_respond(name, args.instance, args.request, answer)
    if args.json:
        print_json(result)
    else:
        stdout_console().print(
            f"Answered [bold]{escape(args.request)}[/bold] of {escape(name)} "
            f"instance [bold]{escape(args.instance)}[/bold]"
        )
    return 0


def event_line(event: Any, instance_id: str) -> Text:
    """One event as one terminal line: its number, a mark, what it is about and the detail."""
    line = describe_event(event)
    text = Text()
    text.append(f"{event.id:>3} " if event.numbered else "    ", style="dim")
    text.append(f"{line.mark} ", style=line.style)
    text.append(line.subject, style=line.style or "bold")
    if line.detail:
        text.append(f"  {line.detail}")
    if event.kind == "request_info":
        text.append(f"  -> {_respond_hint(instance_id, event.data)}", style="italic dim")
    return text


def run_watch(args: argparse.Namespace) -> int:
    """Print the instance's events as they happen, one line each, until its `status` event."""
    if args.after < -1:
        raise UsageError(f"--after must be an event number (-1 for all), got {args.after}")
    console = stdout_console()
    last: Any = None
    with SyncAgentClient(args.url, key=args.key) as client:
        name = client.workflow_of(args.instance)
        for event in client.workflow_events(name, args.instance, after=args.after):
            last = event
            if args.json:
                number = event.id if event.numbered else event.cursor  # an agent_update's is N:M:A.S
                print(json.dumps({"id": number, "event": event.kind, "data": event.data}, ensure_ascii=False))
            else:
                console.print(event_line(event, args.instance), soft_wrap=True)
    if last is not None and last.kind == "status" and last.data.get("runtimeStatus") != "Completed":
        return EXIT_NOT_COMPLETED
    return 0


ACTIONS = {"run": run_run, "status": run_status, "respond": run_respond, "watch": run_watch}


def run_workflow(args: argparse.Namespace) -> int:
    return ACTIONS[args.action](args)


WORKFLOW = Command(
    "workflow",
    "run hosted workflows, read their status, answer their requests, watch their events",
    _arguments,
    run_workflow,
    description="Workflows hosted with AgentFunctionApp(workflows=...): `run NAME [INPUT]`, `status ID`, "
    "`respond ID REQUEST_ID JSON`, `watch ID`.",
    finds_app=True,
)
