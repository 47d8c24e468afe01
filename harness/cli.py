"""`python -m harness`: chat with an agent in the TUI, run the local stack, ask one question (`ask`,
in `harness/ask.py`), list and show sessions, and start, inspect and drive orchestration instances.

`chat`, `up` and `ask` start their stack on the app's workspace (`harness/workspace.py`: Azurite's
data and the logs, kept between runs), on `--data DIR`, or with `--fresh` on a throw-away folder;
`up` and `chat` listen on 7071 when it is free, as `func` does. Without `--url`, the commands that
talk to an app find the app's running stack through its workspace, then fall back to 7071.

Every user error ends as one line on stderr and exit code 2 (argparse style); a stack that fails to
start ends as one line and exit code 1. No command prints a traceback for an expected failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from durableagent.state import turn_numbers
from harness.client import (
    DEFAULT_PORT,
    DEFAULT_URL,
    RUNTIME_STATUSES,
    AgentClient,
    ClientError,
    InstanceTimeout,
    SessionSummary,
    SyncAgentClient,
    check_agent,
    message_count,
    parse_time,
)
from harness.formatting import (
    STATUS_STYLES,
    clip,
    duration_text,
    format_arguments,
    format_value,
    local_time,
    status_note,
    timeline,
    total_usage,
    usage_of,
    usage_text,
)
from harness.processes import StartupError, port_argument
from harness.stack import HOST_MODES
from harness.workspace import WORKSPACE_DIR, foreign_entries

if TYPE_CHECKING:
    from harness.stack import Stack
    from harness.tui import ChatApp

PROG = "python -m harness"
LIVE_ENV_VARS = ("AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME")
EXIT_USAGE = 2
EXIT_STARTUP = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
EXIT_NOT_COMPLETED = 1
DEFAULT_WAIT = 60.0


class UsageError(Exception):
    """A user error: reported as one line, exit code 2."""


class StartupFailed(Exception):
    """The local stack did not start: reported as one line, exit code 1."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) so scripts can read them."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands."""
    parser = OneLineParser(prog=PROG, description="Local development tools for durable agents.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    commands.required = True

    def stack_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--app",
            type=Path,
            metavar="DIR",
            help="Functions app folder (default: the current folder if it has function_app.py, "
            "else the bundled weather sample)",
        )
        data = sub.add_mutually_exclusive_group()
        data.add_argument(
            "--data",
            type=Path,
            metavar="DIR",
            help=f"workspace folder for Azurite's data and the logs (default: APP/{WORKSPACE_DIR})",
        )
        data.add_argument(
            "--fresh",
            action="store_true",
            help="start empty in a throw-away folder removed at exit (the workspace is left alone)",
        )
        sub.add_argument(
            "--host", dest="host_mode", choices=HOST_MODES, default="auto", help="Functions host"
        )
        sub.add_argument(
            "--script",
            type=Path,
            metavar="FILE",
            help="fake-model script (default: the app's fake_model.json, else weather)",
        )
        sub.add_argument("--live", action="store_true", help="use the app's real model (AZURE_OPENAI_* env)")
        sub.add_argument(
            "--record",
            type=Path,
            metavar="FILE",
            help="with --live: record every model exchange to FILE (.json), a script --script replays",
        )
        sub.add_argument(
            "--port",
            type=port_argument,
            default=None,
            help=f"host port (default for up and chat: {DEFAULT_PORT} as with func, or a free port when "
            "it is taken; for ask: a free port)",
        )

    def remote_options(sub: argparse.ArgumentParser, find_app: bool) -> None:
        """--url/--key; with `find_app`, also --app: without --url, the command talks to the stack
        running for the app (found through its workspace), else to the default URL."""
        if find_app:
            where = sub.add_mutually_exclusive_group()
            where.add_argument(
                "--url",
                default=None,
                help=f"URL of a running app (default: the stack running for --app, else {DEFAULT_URL})",
            )
            where.add_argument(
                "--app",
                type=Path,
                metavar="DIR",
                help="app folder whose running stack to talk to (default: the current folder if it has "
                "function_app.py, else the bundled weather sample)",
            )
        else:
            sub.add_argument("--url", default=None, help="URL of a running app")
        sub.add_argument("--key", default=None, help="function key (sent as x-functions-key)")

    chat = commands.add_parser(
        "chat", help="chat with an agent in the TUI (starts a local stack unless --url)"
    )
    chat.add_argument("agent", metavar="AGENT")
    stack_options(chat)
    remote_options(chat, False)

    up = commands.add_parser("up", help="start Azurite and a Functions host, print the URLs, wait for Ctrl-C")
    stack_options(up)

    ask = commands.add_parser(
        "ask", help="send one message and print the reply (starts a local stack unless --url)"
    )
    ask.add_argument("agent", metavar="AGENT")
    ask.add_argument("message", metavar="MESSAGE")
    ask.add_argument(
        "--session", type=_session_id, metavar="ID", help="continue this session (default: a new one)"
    )
    ask.add_argument("--json", action="store_true", help="print the reply as JSON")
    stack_options(ask)
    remote_options(ask, False)

    commands.add_parser("host", help="run the local Functions host (see `host --help`)", add_help=False)
    commands.add_parser(
        "bench", help="run the benchmarks and print figures (see `bench --help`)", add_help=False
    )

    sessions = commands.add_parser("sessions", help="list an agent's sessions, newest first")
    sessions.add_argument("agent", metavar="AGENT")
    remote_options(sessions, True)
    sessions.add_argument("--json", action="store_true", help="print JSON instead of a table")

    show = commands.add_parser("show", help="show the stored state of one session")
    show.add_argument("agent", metavar="AGENT")
    show.add_argument("session", type=_session_id, metavar="SESSION")
    remote_options(show, True)
    show.add_argument("--json", action="store_true", help="print the state JSON")
    _fork_command(commands, remote_options)
    _instance_commands(commands, remote_options)
    return parser


def _fork_command(commands: Any, remote_options: Any) -> None:
    """`fork AGENT SESSION --turn N [--to ID]`: a new session holding the first N turns."""
    fork = commands.add_parser(
        "fork", help="copy a session's first N turns (as `show` numbers them) into a new session"
    )
    fork.add_argument("agent", metavar="AGENT")
    fork.add_argument("session", type=_session_id, metavar="SESSION")
    fork.add_argument("--turn", type=_positive_int, required=True, metavar="N", help="turns to copy")
    fork.add_argument(
        "--to",
        type=_session_id,
        metavar="ID",
        default=None,
        help="id of the new session (default: a new one)",
    )
    remote_options(fork, True)
    fork.add_argument("--json", action="store_true", help="print the app's JSON answer")


def _fork(args: argparse.Namespace, console: Console) -> int:
    with _client(args) as client:
        result = client.fork(args.agent, args.session, args.turn, args.to)
    if args.json:
        _print_json(result)
    new = str(result.get("sessionId"))
    if result.get("status") != "forked":
        return _fail(
            f"the fork into {new!r} is accepted but not stored yet; check with "
            f"`{PROG} show {args.agent} {new}`",
            EXIT_NOT_COMPLETED,
        )
    if not args.json:
        console.print(
            f"Forked turns 1-{args.turn} of [bold]{escape(args.session)}[/bold] into "
            f"[bold]{escape(new)}[/bold] ({result.get('message_count')} messages)"
        )
    return 0


def _instance_commands(commands: Any, remote_options: Any) -> None:
    """`instances`, `start`, `status`, `raise`, `terminate`, `purge`: the Durable instance API."""

    def common(sub: argparse.ArgumentParser) -> None:
        remote_options(sub, True)
        sub.add_argument("--json", action="store_true", help="print JSON for scripts")

    listing = commands.add_parser("instances", help="list orchestration instances, newest first")
    listing.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help=f"only these runtime statuses (repeat or comma-separate): {', '.join(RUNTIME_STATUSES)}",
    )
    listing.add_argument("--top", type=_positive_int, default=100, help="page size of the listing")
    common(listing)

    start = commands.add_parser("start", help="start an orchestration instance")
    start.add_argument("orchestrator", metavar="ORCHESTRATOR")
    start.add_argument("--input", metavar="JSON", help="the orchestrator's input, as JSON")
    start.add_argument("--id", dest="instance_id", metavar="ID", help="instance id (default: the host's)")
    start.add_argument(
        "--wait",
        nargs="?",
        type=_seconds,
        const=DEFAULT_WAIT,
        default=None,
        metavar="SECONDS",
        help=f"wait until it finishes (default {DEFAULT_WAIT:g} s); exit 1 unless it completed",
    )
    common(start)

    status = commands.add_parser("status", help="show an instance's status (and history)")
    status.add_argument("instance", metavar="INSTANCE")
    status.add_argument("--history", action="store_true", help="also show the history as a timeline")
    common(status)

    raise_ = commands.add_parser("raise", help="raise an external event on an instance")
    raise_.add_argument("instance", metavar="INSTANCE")
    raise_.add_argument("event", metavar="EVENT")
    raise_.add_argument("--data", metavar="JSON", help="the event's data, as JSON")
    common(raise_)

    terminate = commands.add_parser("terminate", help="terminate a running instance")
    terminate.add_argument("instance", metavar="INSTANCE")
    terminate.add_argument("--reason", default=None, help="reason recorded with the termination")
    common(terminate)

    purge = commands.add_parser("purge", help="delete an instance and its history")
    purge.add_argument("instance", metavar="INSTANCE")
    common(purge)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def _session_id(text: str) -> str:
    """An empty id would name the agent's session list instead of a session (or a new session)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a session id must not be empty")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["host"]:
        return _host(args_list[1:])
    if args_list[:1] == ["bench"]:
        from harness.bench import main as bench_main

        return bench_main(args_list[1:])
    if args_list[:1] == ["chaos"]:
        from harness.chaos import main as chaos_main

        return chaos_main(args_list[1:])
    args = build_parser().parse_args(args_list)
    stdout = Console(soft_wrap=False)
    try:
        if args.command in CLIENT_COMMANDS and not args.url:
            args.url = _running_url(args.app) or DEFAULT_URL
        if args.command == "chat":
            return _chat(args, stdout)
        if args.command == "up":
            return _up(args, stdout)
        if args.command == "ask":
            from harness.ask import ask

            return ask(args)
        if args.command == "sessions":
            return _sessions(args, stdout)
        if args.command == "show":
            return _show(args, stdout)
        if args.command == "fork":
            return _fork(args, stdout)
        if args.command in INSTANCE_COMMANDS:
            return INSTANCE_COMMANDS[args.command](args, stdout)
    except (UsageError, ClientError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except StartupFailed as exc:
        return _fail(str(exc), EXIT_STARTUP)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`ask ... | head -1`): stop quietly, as `cat` does. Python would
        # otherwise fail again flushing stdout at exit, so what is left of it goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return _fail(f"unknown command {args.command!r}", EXIT_USAGE)


CLIENT_COMMANDS = frozenset(
    {"sessions", "show", "fork", "instances", "start", "status", "raise", "terminate", "purge"}
)
"""Commands that talk to a running app: --url, else the app's running stack, else DEFAULT_URL."""


def _running_url(app: Path | None) -> str | None:
    """The URL of the stack running for `app` (default: as `--app` defaults), None when none runs."""
    from harness.workspace import running_url

    if app is None:
        app = _default_app()[0]
    elif not app.is_dir():
        raise UsageError(f"app folder {app} does not exist")
    return running_url(app) if app is not None else None


def _fail(message: str, code: int) -> int:
    """Print one line on stderr (no markup, no traceback) and return the exit code."""
    line = " ".join(message.split())
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return code


# ---- host --------------------------------------------------------------------------------------


def _host(argv: list[str]) -> int:
    """Delegate to the local Functions host's own argument parser."""
    try:
        from harness.host.server import main as host_main
    except ImportError as exc:
        return _fail(f"the local host is not available: {exc}", EXIT_STARTUP)
    return host_main(argv)


# ---- stack commands ----------------------------------------------------------------------------


def _check_stack_args(args: argparse.Namespace) -> None:
    """Validate --app/--script/--live before starting anything."""
    if args.live and args.script is not None:
        raise UsageError("--script and --live exclude each other (live uses the app's real model)")
    _check_record(args)
    if args.script is not None:
        if not args.script.is_file():
            state = "is not a file" if args.script.exists() else "does not exist"
            raise UsageError(f"script {args.script} {state}")
        _check_script(args.script)
    if args.app is not None and not args.app.is_dir():
        raise UsageError(f"app folder {args.app} does not exist")
    args.app_note = ""
    if args.app is None:
        args.app, args.app_note = _default_app()
        if args.app is None:
            raise UsageError(
                "no app given, no function_app.py in the current folder and the weather sample was not "
                "found; pass --app DIR"
            )
    if args.host_mode != "func" and not (args.app / "function_app.py").is_file():
        # Checked before the workspace is made, which would leave a .durableagent/ in any folder.
        raise UsageError(f"{args.app} is not a Functions app folder: it has no function_app.py")
    if args.data is not None and args.data.exists():
        if not args.data.is_dir():
            raise UsageError(f"--data {args.data} is not a folder")
        if foreign := foreign_entries(args.data):
            raise UsageError(
                f"--data {args.data} holds files that are not a workspace's ({', '.join(foreign[:3])}"
                f"{', ...' if len(foreign) > 3 else ''}); name a new or empty folder"
            )
    if getattr(args, "key", None) is not None:
        raise UsageError("--key is sent to the app at --url; a local stack needs no key")
    if args.live:
        _warn_live_settings(args.app)


def _check_agent_first(args: argparse.Namespace) -> None:
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


def _warn_live_settings(app: Path) -> None:
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


def _default_app() -> tuple[Path | None, str]:
    """The app `--app` defaults to, and why: the current folder when it holds an app, else the sample."""
    from harness.stack import DEFAULT_APP_DIR

    here = Path.cwd()
    if (here / "function_app.py").is_file():
        return here, "the current folder"
    if (DEFAULT_APP_DIR / "function_app.py").is_file():
        return DEFAULT_APP_DIR, "the bundled weather sample: no function_app.py in the current folder"
    return None, ""


def _shaping_options(args: argparse.Namespace) -> list[str]:
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
        )
        if value
    ]


def _attach_url(args: argparse.Namespace) -> str | None:
    """For `chat`/`ask` without --url: the stack already running for the app, when no option asks for a
    stack of its own (it would be refused on the running one's workspace); one line says so."""
    if _shaping_options(args) or (args.app is not None and not args.app.is_dir()):
        return None
    url = _running_url(args.app)
    if url is not None:
        print(f"{PROG}: using the stack already running for this app at {url}", file=sys.stderr)
    return url


def _reject_stack_options(args: argparse.Namespace) -> None:
    """--url attaches to a running app: the options that shape a local stack would be ignored."""
    given = ["--app"] * (args.app is not None) + _shaping_options(args)
    if given:
        verb = "does" if len(given) == 1 else "do"
        raise UsageError(f"--url attaches to a running app: {', '.join(given)} {verb} not apply")


def _check_record(args: argparse.Namespace) -> None:
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


def _check_script(path: Path) -> None:
    """Load the fake-model script as the host will, so a bad one is reported here in one line."""
    from fakes import ScriptError, load_script

    try:
        load_script(path)
    except ScriptError as exc:
        raise UsageError(f"bad script: {exc}") from None


def _make_stack(args: argparse.Namespace) -> Stack:
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
        )
    except (StartupError, ValueError) as exc:
        raise StartupFailed(str(exc)) from None


def _start(stack: Stack) -> float:
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


def _banner(
    console: Console, stack: Stack, seconds: float, agents: list[str] | None, app_note: str = ""
) -> None:
    """What runs where: URLs, storage folder, logs and which model answers."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("App", f"{stack.app_dir}" + (f" ({app_note})" if app_note else ""))
    table.add_row("Host", f"{stack.host.mode}, ready in {seconds:.1f} s")
    table.add_row("URL", stack.url)
    if agents is not None:
        table.add_row("Health", f"{stack.url}/api/health")
        for agent in agents:
            table.add_row("", f"{stack.url}/api/agents/{agent}/run")
    table.add_row("Durable API", f"{stack.url}/runtime/webhooks/durabletask/")
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


def _agents_of(url: str, key: str | None = None) -> list[str]:
    with SyncAgentClient(url, key=key) as client:
        return client.agents()


def _agents_if_any(url: str) -> list[str] | None:
    """The app's agents, or None for an app without durableagent's health route (any DF app)."""
    try:
        return _agents_of(url)
    except ClientError as exc:
        if exc.status == 404:
            return None
        raise


def _chat(args: argparse.Namespace, console: Console) -> int:
    """Open the TUI on an agent, on a running app (--url) or on a stack started here."""
    from harness.tui import ChatApp

    if args.url:
        _reject_stack_options(args)
    else:
        args.url = _attach_url(args)
    if args.url:
        agent = check_agent(args.agent, _agents_of(args.url, args.key))
        return _run_tui(ChatApp(AgentClient(args.url, key=args.key), agent, None))
    _check_stack_args(args)
    _check_agent_first(args)
    stack = _make_stack(args)
    try:
        seconds = _start(stack)
        agents = _agents_of(stack.url)
        _banner(console, stack, seconds, agents, args.app_note)
        agent = check_agent(args.agent, agents)
        return _run_tui(ChatApp(AgentClient(stack.url), agent, stack.log_paths))
    finally:
        stack.stop()


def _run_tui(app: ChatApp) -> int:
    """Run the TUI; SIGTERM or a closed terminal (SIGHUP) close it as ctrl+q does, so the terminal
    gets its screen and modes back and the stack stops after it, with the shell's 128+N exit code.

    Left to the stack's own handler, the process would die with the TUI still drawn and the terminal
    in the TUI's modes. A signal while the TUI's loop is not running goes to the handler before.
    """
    import asyncio
    import signal

    from harness.stack import STOP_SIGNALS

    def on_signal(signum: int, frame: object) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            before = previous[signum]
            if callable(before):
                before(signum, frame)
            elif before != signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        loop.call_soon_threadsafe(app.exit, None, 128 + signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        app.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return app.return_code or 0


def _up(args: argparse.Namespace, console: Console) -> int:
    """Start the stack, print the banner, keep it running until Ctrl-C (or until a process dies)."""
    _check_stack_args(args)
    stack = _make_stack(args)
    try:
        seconds = _start(stack)
        _banner(console, stack, seconds, _agents_if_any(stack.url), args.app_note)
        console.print("[dim]Press Ctrl-C to stop.[/dim]")
        while stack.is_running():
            time.sleep(0.5)
        raise StartupFailed(f"a stack process exited; see {stack.host.log_path} and {stack.azurite.log_path}")
    except KeyboardInterrupt:
        console.print("[dim]Stopping...[/dim]")
        return 0
    finally:
        stack.stop()


# ---- read-only commands ------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> SyncAgentClient:
    """A client for --url after checking the agent exists (one-line error listing the agents).

    `args.agent` becomes the app's spelling of the name (names match case-insensitively).
    """
    client = SyncAgentClient(args.url, key=args.key)
    try:
        args.agent = check_agent(args.agent, client.agents())
    except ClientError:
        client.close()
        raise
    return client


def _time(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Local time, to the second; empty when unknown."""
    return local_time(value if isinstance(value, datetime) else parse_time(value), fmt)


def _short_id(value: object, length: int = 8) -> str:
    """Long ids (uuid hex) cut to their first characters for tables; `--json` has them whole."""
    return clip(str(value or ""), length + 1)


def _tokens(usage: dict[str, int] | None) -> str:
    """`19 (12+7)`: total, then prompt + completion."""
    if not usage:
        return ""
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    return f"{usage.get('total_tokens', 0)} ({prompt}+{completion})"


def summary_json(summary: SessionSummary) -> dict[str, Any]:
    """The JSON form of a session summary (camelCase like the app's own JSON)."""
    return {
        "sessionId": summary.session_id,
        "messageCount": summary.message_count,
        "lastOperationTime": summary.last_operation_time.isoformat() if summary.last_operation_time else None,
        "lastMessage": summary.last_message,
    }


def _sessions(args: argparse.Namespace, console: Console) -> int:
    with _client(args) as client:
        rows = client.sessions(args.agent)
    if args.json:
        print(json.dumps([summary_json(row) for row in rows], indent=2))
        return 0
    if not rows:
        console.print(f"No sessions for {escape(args.agent)} yet.")
        return 0
    table = Table(title=f"Sessions of {escape(args.agent)} (newest first)", title_justify="left")
    table.add_column("Session", style="bold", no_wrap=True)
    table.add_column("Messages", justify="right", no_wrap=True)
    table.add_column("Last activity", no_wrap=True)
    table.add_column("Last message")
    for row in rows:
        preview = clip(row.last_message, 48)
        table.add_row(row.session_id, str(row.message_count), _time(row.last_operation_time), preview)
    console.print(table)
    return 0


def _show(args: argparse.Namespace, console: Console) -> int:
    with _client(args) as client:
        state = client.state(args.agent, args.session)
    if state is None:
        raise UsageError(f"session {args.session!r} of agent {args.agent!r} not found")
    if args.json:
        print(json.dumps(state, indent=2, ensure_ascii=False))
        return 0
    console.print(state_table(args.agent, args.session, state))
    return 0


def state_table(agent: str, session_id: str, state: dict[str, Any]) -> Table:
    """The stored history as a table: one row per message with tool calls, status and tokens."""
    history = [e for e in state.get("conversation_history") or [] if isinstance(e, dict)]
    totals = usage_text(total_usage(history))
    table = Table(
        title=f"{escape(agent)} / {escape(session_id)}: {message_count(state)} messages, tokens {totals}",
        title_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("Turn", justify="right")
    table.add_column("Time", no_wrap=True)
    table.add_column("Role", no_wrap=True)
    table.add_column("Content", ratio=1, min_width=20)
    table.add_column("Tokens", no_wrap=True)
    table.add_column("Correlation", style="dim", no_wrap=True)
    turns = turn_numbers(history)
    for index, entry in enumerate(history, start=1):
        content = Text()
        response = entry.get("agent_response") if isinstance(entry.get("agent_response"), dict) else {}
        for call in response.get("tool_calls") or []:
            if isinstance(call, dict):
                content.append(
                    f"🔧 {call.get('name')}({format_arguments(call.get('arguments'))})", style="yellow"
                )
                content.append(f" -> {format_value(call.get('error') or call.get('result', ''), 120)}\n")
        if entry.get("status") == "error":
            content.append(f"error: {entry.get('error') or 'the turn failed'}", style="bold red")
        else:
            content.append(str(entry.get("content") or ""))
        usage = usage_of(entry)
        starts_turn = index == 1 or turns[index - 1] != turns[index - 2]
        table.add_row(
            str(index),
            str(turns[index - 1]) if starts_turn else "",
            _time(entry.get("timestamp"), "%H:%M:%S"),
            str(entry.get("role") or ""),
            content,
            _tokens(usage),
            _short_id(entry.get("correlation_id")),
        )
    return table


# ---- orchestration instances -------------------------------------------------------------------


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


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _status_text(status: dict[str, Any]) -> Text:
    runtime = str(status.get("runtimeStatus") or "?")
    return Text(runtime, style=STATUS_STYLES.get(runtime, ""))


def _instances(args: argparse.Namespace, console: Console) -> int:
    statuses = _statuses(args.status)
    with SyncAgentClient(args.url, key=args.key) as client:
        rows = client.instances(statuses, top=args.top)
    if args.json:
        _print_json(rows)
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
            _time(row.get("createdTime")),
            _time(row.get("lastUpdatedTime")),
            clip(note, 60),
        )
    console.print(table)
    return 0


def _start_instance(args: argparse.Namespace, console: Console) -> int:
    data = _json_argument(args.input, "--input")
    with SyncAgentClient(args.url, key=args.key) as client:
        started = client.start(args.orchestrator, data, args.instance_id)
        instance_id = str(started["id"])
        if args.wait is None:
            if args.json:
                _print_json(started)
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
            return _fail(str(exc), EXIT_NOT_COMPLETED)
    _show_status(status, args.json, console)
    if status.get("runtimeStatus") != "Completed":
        return _fail(f"instance {instance_id!r} ended {status.get('runtimeStatus')}", EXIT_NOT_COMPLETED)
    return 0


def _status(args: argparse.Namespace, console: Console) -> int:
    with SyncAgentClient(args.url, key=args.key) as client:
        status = client.instance(args.instance, history=args.history)
    if status is None:
        raise UsageError(f"no instance {args.instance!r}")
    _show_status(status, args.json, console)
    return 0


def _show_status(status: dict[str, Any], as_json: bool, console: Console) -> None:
    if as_json:
        _print_json(status)
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
    table.add_row("Created", _time(status.get("createdTime")))
    table.add_row("Updated", _time(status.get("lastUpdatedTime")))
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


def _raise_event(args: argparse.Namespace, console: Console) -> int:
    data = _json_argument(args.data, "--data")
    with SyncAgentClient(args.url, key=args.key) as client:
        client.raise_event(args.instance, args.event, data)
    if args.json:
        _print_json({"instanceId": args.instance, "event": args.event, "raised": True})
    else:
        console.print(f"Raised {escape(args.event)} on {escape(args.instance)}")
    return 0


def _terminate(args: argparse.Namespace, console: Console) -> int:
    with SyncAgentClient(args.url, key=args.key) as client:
        client.terminate(args.instance, args.reason)
    if args.json:
        _print_json({"instanceId": args.instance, "terminated": True})
    else:
        console.print(f"Terminating {escape(args.instance)} (the host does it asynchronously)")
    return 0


def _purge(args: argparse.Namespace, console: Console) -> int:
    with SyncAgentClient(args.url, key=args.key) as client:
        deleted = client.purge(args.instance)
    if args.json:
        _print_json({"instanceId": args.instance, "instancesDeleted": deleted})
    else:
        console.print(f"Purged {escape(args.instance)} ({deleted} instance deleted)")
    return 0


INSTANCE_COMMANDS = {
    "instances": _instances,
    "start": _start_instance,
    "status": _status,
    "raise": _raise_event,
    "terminate": _terminate,
    "purge": _purge,
}
