"""A local stack for `chat`, `up` and `ask`: their options checked before anything starts, the stack
built on the app's workspace and started, and the banner saying what runs where.

The checks come first so a mistake is one line and leaves nothing behind (no workspace made, no
process started); `attach_url` lets `chat` and `ask` use the stack already running for the app
instead of refusing to start a second one on its workspace.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.client import DEFAULT_PORT, ClientError, SyncAgentClient, check_agent
from harness.processes import StartupError
from harness.workspace import foreign_entries

from .base import PROG, StartupFailed, UsageError
from .options import default_app, running_url_for

if TYPE_CHECKING:
    from harness.stack import Stack

LIVE_ENV_VARS = ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME")


def check_stack_args(args: argparse.Namespace) -> None:
    """Validate --app/--script/--live before starting anything."""
    if args.live and args.script is not None:
        raise UsageError("--script and --live exclude each other (live uses the app's real model)")
    if getattr(args, "virtual_time", None) and args.host_mode == "func":
        raise UsageError("--virtual-time needs the local host (--host local): func runs on real time")
    check_record(args)
    if args.script is not None:
        if not args.script.is_file():
            state = "is not a file" if args.script.exists() else "does not exist"
            raise UsageError(f"script {args.script} {state}")
        check_script(args.script)
    if args.app is not None and not args.app.is_dir():
        raise UsageError(f"app folder {args.app} does not exist")
    args.app_note = ""
    if args.app is None:
        args.app, args.app_note = default_app()
        if args.app is None:
            raise UsageError(
                "no app given, no function_app.py in the current folder and the weather sample was not "
                "found; pass --app DIR"
            )
    if args.host_mode != "func" and not (args.app / "function_app.py").is_file():
        # Checked before the workspace is made, which would leave a .durableagent/ in any folder.
        raise UsageError(f"{args.app} is not a Functions app folder: it has no function_app.py")
    check_data_dir(args.data)
    if getattr(args, "key", None) is not None:
        raise UsageError("--key is sent to the app at --url; a local stack needs no key")
    if args.live:
        warn_live_settings(args.app)


def check_data_dir(data: Path | None) -> None:
    """`--data DIR` must be a folder a workspace may take: new, empty, or a workspace already."""
    if data is not None and data.exists():
        if not data.is_dir():
            raise UsageError(f"--data {data} is not a folder")
        if foreign := foreign_entries(data):
            raise UsageError(
                f"--data {data} holds files that are not a workspace's ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); name a new or empty folder"
            )


def check_agent_first(args: argparse.Namespace) -> None:
    """`chat`/`ask` on a stack of their own: an unknown agent fails now, listing the app's agents,
    instead of after the whole stack started. `args.agent` becomes the app's spelling."""
    from harness.stack import app_agents, default_script_path

    if args.host_mode == "func" and not (args.app / "function_app.py").is_file():
        return
    script = None if args.live else (args.script or default_script_path(args.app)).resolve()
    names = app_agents(args.app, script=script)
    if names is not None:
        try:
            args.agent = check_agent(args.agent, names)
        except ClientError as exc:
            raise UsageError(str(exc)) from None


PLACEHOLDER = re.compile(r"<[^<>\s]+>|\byour[-_]", re.IGNORECASE)
"""What the samples' settings hold until filled in: `https://YOUR-RESOURCE.openai.azure.com/`, `<key>`."""


def warn_live_settings(app: Path) -> None:
    """Warn (not refuse) when the Azure OpenAI settings the samples read are unset: an app on another
    provider needs none of them, and the host also reads them from the app's local.settings.json.

    A setting that holds a sample's placeholder is refused in one line naming it: it is set, so the
    app uses it, and the model's client would fail every turn with a long credential error.
    """
    from harness.host.settings import SettingsError, local_settings

    try:
        values = local_settings(app)
    except SettingsError:  # the host reports a broken file when it starts
        values = {}
    for name in sorted({*values, *LIVE_ENV_VARS} - {"AzureWebJobsStorage"}):  # the stack sets storage
        value = os.environ.get(name, values.get(name))  # the environment wins, as in the host
        if value and PLACEHOLDER.search(value):
            where = "the environment" if name in os.environ else str(app / "local.settings.json")
            raise UsageError(
                f"--live: {name} in {where} is a placeholder ({value!r}); set your own value there "
                "or in the environment"
            )
    missing = [name for name in LIVE_ENV_VARS if not os.environ.get(name) and not values.get(name)]
    if missing:
        print(
            f"{PROG}: warning: --live: {', '.join(missing)} not set (environment or local.settings.json); "
            "an app on Azure OpenAI will fail its turns",
            file=sys.stderr,
        )


def shaping_options(args: argparse.Namespace) -> list[str]:
    """The options given that shape a local stack (all but --app)."""
    return [
        option
        for option, value in (
            ("--script", args.script),
            ("--live", args.live),
            ("--record", getattr(args, "record", None)),
            ("--host", args.host_mode != "auto"),
            ("--port", args.port is not None),
            ("--data", args.data),
            ("--fresh", args.fresh),
            ("--virtual-time", getattr(args, "virtual_time", None)),
            ("--python", getattr(args, "python", None)),
        )
        if value
    ]


def attach_url(args: argparse.Namespace) -> str | None:
    """For `chat`/`ask` without --url: the stack already running for the app, when no option asks for a
    stack of its own (it would be refused on the running one's workspace); one line says so."""
    if shaping_options(args) or (args.app is not None and not args.app.is_dir()):
        return None
    url = running_url_for(args.app)
    if url is not None:
        print(f"{PROG}: using the stack already running for this app at {url}", file=sys.stderr)
    return url


def reject_stack_options(args: argparse.Namespace) -> None:
    """--url attaches to a running app: the options that shape a local stack would be ignored."""
    given = ["--app"] * (args.app is not None) + shaping_options(args)
    if given:
        verb = "does" if len(given) == 1 else "do"
        raise UsageError(f"--url attaches to a running app: {', '.join(given)} {verb} not apply")


def check_record(args: argparse.Namespace) -> None:
    """`--record FILE` records the real model, so it needs --live and a .json file in a folder that exists."""
    record: Path | None = getattr(args, "record", None)
    if record is None:
        return
    if not args.live:
        raise UsageError("--record needs --live: it records the real model's answers (replay with --script)")
    if record.suffix.lower() != ".json":
        raise UsageError(f"--record {record}: the recording is a JSON script; name it *.json")
    if record.is_dir():
        raise UsageError(f"--record {record} is a folder; name a file")
    if not record.parent.is_dir():
        raise UsageError(f"--record {record}: folder {record.parent} does not exist")


def check_script(path: Path) -> None:
    """Load the fake-model script as the host will, so a bad one is reported here in one line."""
    from fakes import ScriptError, load_script

    try:
        load_script(path)
    except ScriptError as exc:
        raise UsageError(f"bad script: {exc}") from None


def make_stack(args: argparse.Namespace) -> Stack:
    """Build (not start) the stack for the checked app on its workspace (none with --fresh: a
    throw-away folder); StartupError becomes a one-line StartupFailed."""
    from harness.stack import Stack
    from harness.workspace import Workspace, app_workspace

    if args.fresh:
        workspace = None
    elif args.data is not None:
        workspace = Workspace(args.data, "--data")
    else:
        workspace = app_workspace(args.app)
    try:
        return Stack(
            args.app,
            host_mode=args.host_mode,
            script=args.script,
            live=args.live,
            record=getattr(args, "record", None),
            port=args.port,
            # `up` and `chat` keep a stack others talk to: on 7071 when free, as `func`; a one-turn
            # `ask` takes any port, leaving 7071 to them.
            preferred_port=DEFAULT_PORT if args.port is None and args.command in ("up", "chat") else None,
            workspace=workspace,
            virtual_time=getattr(args, "virtual_time", None),
            python=getattr(args, "python", None),
        )
    except (StartupError, ValueError) as exc:
        raise StartupFailed(str(exc)) from None


def start_stack(stack: Stack) -> float:
    """Start the stack; one line on stderr when the default port was taken and another one used."""
    try:
        seconds = stack.start()
    except StartupError as exc:
        raise StartupFailed(
            str(exc).splitlines()[0] if str(exc) else "the local stack did not start"
        ) from None
    preferred = stack.host.preferred_port
    if preferred is not None and stack.host.port != preferred:
        print(
            f"{PROG}: port {preferred} is in use; the host listens on port {stack.host.port} instead "
            f"({PROG} sessions/show/... find it through the app's workspace)",
            file=sys.stderr,
        )
    return seconds


def banner(
    console: Console, stack: Stack, seconds: float, agents: list[str] | None, app_note: str = ""
) -> None:
    """What runs where: URLs, storage folder, logs and which model answers."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("App", f"{stack.app_dir}" + (f" ({app_note})" if app_note else ""))
    table.add_row("Host", f"{stack.host.mode}, ready in {seconds:.1f} s")
    if stack.host.python:
        table.add_row("App's Python", stack.host.python)
    table.add_row("URL", stack.url)
    if agents is not None:
        table.add_row("Health", f"{stack.url}/api/health")
        for agent in agents:
            table.add_row("", f"{stack.url}/api/agents/{agent}/run")
    table.add_row("Durable API", f"{stack.url}/runtime/webhooks/durabletask/")
    if stack.host.virtual_time:
        table.add_row(
            "Clock", f"virtual ({stack.host.virtual_time}): {PROG} clock, {PROG} clock advance PT1H"
        )
    from harness.mcp_client import endpoint_url, serves_mcp  # the MCP SDK: loaded once a stack runs

    if serves_mcp(stack.url):
        table.add_row(
            "MCP", f"{endpoint_url(stack.url)} (Streamable HTTP), {endpoint_url(stack.url, sse=True)} (SSE)"
        )
    where = stack.workspace.where if stack.workspace else "--fresh: throw-away, removed at exit"
    table.add_row("Workspace", f"{stack.work_dir} ({where})")
    table.add_row("Azurite data", str(stack.azurite.data_dir))
    table.add_row("Logs", f"{stack.host.log_path}\n{stack.azurite.log_path}")
    if stack.live:
        model = Text("live: ", style="bold yellow")
        deployment = os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME")
        model.append(f"{deployment} @ {os.environ.get('AZURE_OPENAI_ENDPOINT')}")
    else:
        model = Text("fake: ", style="bold green")
        model.append(str(stack.script_path))
    table.add_row("Model", model)
    if stack.record_script is not None:
        table.add_row("Recording", f"{stack.record_script} (replay: --script {stack.record_script})")
    table.add_row(
        "Agents", "not a durableagent app (no /api/health)" if agents is None else ", ".join(agents) or "none"
    )
    console.print(table)


def agents_of(url: str, key: str | None = None) -> list[str]:
    with SyncAgentClient(url, key=key) as client:
        return client.agents()


def agents_if_any(url: str) -> list[str] | None:
    """The app's agents, or None for an app without durableagent's health route (any DF app)."""
    try:
        return agents_of(url)
    except ClientError as exc:
        if exc.status == 404:
            return None
        raise
