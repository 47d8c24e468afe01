"""The local stack: Azurite plus a Functions host (real ``func`` or the Python stand-in) for one app.

The TUI, the CLI, benchmarks and the pytest plugin all start the same two processes the same way, so
a green test run means the interactive stack works too.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Literal, Self, cast, get_args

from harness.azurite import Azurite
from harness.processes import (
    ManagedProcess,
    ManagedService,
    PortInUseError,
    StartStop,
    StartupError,
    ensure_port_free,
    free_port,
    port_is_open,
    wait_port_free,
)
from harness.workspace import Workspace

__all__ = [
    "CHAT_ENV_VARS",
    "DEFAULT_APP_DIR",
    "HOST_MODES",
    "FunctionHost",
    "HostMode",
    "Stack",
    "app_agents",
    "resolve_host_mode",
]

HostMode = Literal["func", "local", "auto"]


def _default_app_dir() -> Path:
    """The weather sample: beside the package in a checkout, else under the working directory."""
    for base in (Path(__file__).resolve().parents[1], Path.cwd()):
        candidate = base / "samples" / "weather"
        if (candidate / "function_app.py").is_file():
            return candidate
    return Path(__file__).resolve().parents[1] / "samples" / "weather"


DEFAULT_APP_DIR = _default_app_dir()
CHAT_ENV_VARS = ("DURABLEAGENT_CHAT_SCRIPT", "DURABLEAGENT_CHAT_RECORD", "DURABLEAGENT_CHAT_RECORD_SCRIPT")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end a stack the way Ctrl-C does: processes stopped, a throw-away folder removed."""
HOST_MODES: tuple[str, ...] = get_args(HostMode)
"""The host modes every entry point accepts (CLI ``--host``, pytest ``--durableagent-host``, ``Stack``)."""


def resolve_host_mode(mode: str) -> Literal["func", "local"]:
    """``auto`` means the real Functions Core Tools when ``func`` is on PATH, else the local host."""
    if mode not in HOST_MODES:
        raise ValueError(f"host mode must be one of {', '.join(HOST_MODES)}, not {mode!r}")
    if mode == "auto":
        return "func" if shutil.which("func") else "local"
    if mode == "func" and not shutil.which("func"):
        raise StartupError(
            "host mode 'func' needs Azure Functions Core Tools (`func`) on PATH; "
            "install them or use host mode 'local'"
        )
    return cast(Literal["func", "local"], mode)


class FunctionHost(ManagedService):
    """A Functions host serving ``app_dir`` on ``port``: ``func start`` or ``python -m harness.host``.

    Both variants get the same environment, readiness check (``GET /admin/host/status`` -> 200),
    log capture and teardown, so callers do not care which one runs.
    """

    def __init__(
        self,
        app_dir: Path = DEFAULT_APP_DIR,
        *,
        storage: str | None = None,
        mode: HostMode = "auto",
        port: int | None = None,
        preferred_port: int | None = None,
        chat_script: Path | None = None,
        chat_record: Path | None = None,
        task_hub: str | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        host: str = "127.0.0.1",
        virtual_time: str | None = None,
        python: str | Path | None = None,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        if not self.app_dir.is_dir():
            raise StartupError(f"app folder {self.app_dir} does not exist")
        # The app's own Python (Durable Functions 2.x needs 3.13): the local host runs the app in it;
        # `func` is told through the Python worker's own setting.
        given = str(python) if python is not None else None
        # Absolute for the host process, whose folder is not the caller's (links kept: see
        # `harness/host/isolated/interpreter.py`); a bare name (`python3.13`) is left to PATH.
        self.python = os.path.abspath(given) if given and "/" in given else given
        self.storage = storage
        self.requested_mode: HostMode = mode
        # Virtual time (`auto`/`manual`, None: real) is the local host's: `func` runs on the wall clock.
        self.virtual_time = virtual_time
        if virtual_time is not None and mode == "func":
            raise StartupError("virtual time needs the local host (host mode local): func runs on real time")
        self.mode: Literal["func", "local"] = "local" if virtual_time else resolve_host_mode(mode)
        self.port = port
        self._port_requested = port is not None
        self.preferred_port = preferred_port
        """Without ``port``: this one when it is free (7071 for the CLI, as ``func``), else any."""
        self.chat_script = Path(chat_script).resolve() if chat_script is not None else None
        self.chat_record = Path(chat_record).resolve() if chat_record is not None else None
        self.task_hub = task_hub
        self.extra_env = dict(env or {})
        self.log_path = (
            Path(log_path) if log_path else Path(tempfile.mkdtemp(prefix="durableagent-")) / "host.log"
        )
        if self.chat_script is not None and self.chat_record is None:
            # The harness chooses where the fake's requests go (beside the host's log): left to
            # the app, they would be written beside the script, in a checkout or a package.
            self.chat_record = self.log_path.parent / "chat-requests.jsonl"
        self.host = host
        self._proc: ManagedProcess | None = None

    def __repr__(self) -> str:
        return f"<FunctionHost {self.mode} {self.app_dir.name} url={self.url if self.port else None}>"

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:7071`` (routes live under ``/api``)."""
        if self.port is None:
            raise RuntimeError("the host has not been started")
        return f"http://{self.host}:{self.port}"

    def environment(self) -> dict[str, str]:
        """The child's full environment: ours, minus any inherited fake-model settings, plus the stack's."""
        env = {k: v for k, v in os.environ.items() if k not in CHAT_ENV_VARS}
        env["PYTHONUNBUFFERED"] = "1"
        if self.storage:
            env["AzureWebJobsStorage"] = self.storage
        if self.chat_script is not None:
            env["DURABLEAGENT_CHAT_SCRIPT"] = str(self.chat_script)
            if self.chat_record is not None:
                env["DURABLEAGENT_CHAT_RECORD"] = str(self.chat_record)
        if self.task_hub:
            env["DURABLEAGENT_TASK_HUB"] = self.task_hub
        if self.mode == "func":  # as `func start` sets it; durableagent's model swap needs it
            env.setdefault("AZURE_FUNCTIONS_ENVIRONMENT", "Development")
            if self.python:
                env["languageWorkers__python__defaultExecutablePath"] = self.python
        env.update(self.extra_env)
        return env

    def command(self) -> list[str]:
        """The command line for the chosen mode."""
        assert self.port is not None
        if self.mode == "func":
            func = shutil.which("func")
            if func is None:
                raise StartupError("`func` is no longer on PATH")
            return [func, "start", "--port", str(self.port)]
        args = [sys.executable, "-m", "harness.host", str(self.app_dir), "--port", str(self.port)]
        if self.storage:
            args += ["--storage", self.storage]
        if self.virtual_time:
            args += ["--virtual-time", self.virtual_time]
        if self.python:
            args += ["--python", self.python]
        return args

    def start(self, timeout: float = 120.0) -> Self:
        """Start the host and wait until ``/admin/host/status`` answers 200."""
        if self.is_running():
            return self
        if self.port is None:
            self.port = self._unrequested_port()
        else:
            ensure_port_free(self.port, self.host, what=f"the Functions host ({self.mode})")
        try:
            self._spawn(timeout)
        except StartupError:
            # The preferred port was free when looked at, and taken before the host bound it (another
            # stack starting at the same moment): any free port does, as when it was taken already.
            if self._port_requested or self.port != self.preferred_port or not port_is_open(self.port):
                raise
            self.port = free_port(self.host)
            self._spawn(timeout)
        return self

    def _unrequested_port(self) -> int:
        if self.preferred_port is not None:
            try:
                ensure_port_free(self.preferred_port, self.host)
                return self.preferred_port
            except PortInUseError:
                pass
        return free_port(self.host)

    def _spawn(self, timeout: float) -> float:
        name = "func" if self.mode == "func" else "local host"
        self._proc = ManagedProcess(
            self.command(),
            log_path=self.log_path,
            name=name,
            env=self.environment(),
            inherit_env=False,
            cwd=self.app_dir,
        )
        self._proc.start()
        try:
            return self._proc.wait_ready(self.ready, timeout)
        except StartupError as exc:
            reason = host_error(self._proc.log_tail(40))
            if reason is None:
                raise
            details = str(exc).partition("\n")[2]
            raise StartupError(f"{name} did not start: {reason}; log: {self.log_path}\n{details}") from None

    def ready(self) -> bool:
        """``GET /admin/host/status`` is 200 (and, when it says, the state is Running)."""
        import httpx

        response = httpx.get(f"{self.url}/admin/host/status", timeout=2.0)
        if response.status_code != 200:
            return False
        try:
            state = response.json().get("state")
        except (ValueError, AttributeError):
            return True
        return state in (None, "Running")

    def restart(self, *, kill: bool = False, timeout: float = 120.0) -> float:
        """Stop (``kill=True``: SIGKILL, like a crash) and start again on the same port; returns seconds.

        Durable state lives in Azurite, so this is how tests check that sessions survive a host restart.
        """
        if self.port is None:
            raise RuntimeError("the host has not been started")
        began = time.monotonic()
        if self._proc is not None:
            if kill:
                self._proc.kill()
            else:
                self._proc.stop()
        wait_port_free(self.port, self.host, timeout=10.0, what=f"the Functions host ({self.mode})")
        self._spawn(timeout)
        return time.monotonic() - began


_ERROR_LINE = re.compile(r"\bERROR [\w.]+: (.+)$")


def host_error(log: str) -> str | None:
    """The last error the local host logged (one line, as its ``main`` reports a failed start).

    A start that failed for a reason the host knows (a broken app, storage refusing its API version)
    is then told in the user's terms instead of "exited with code 2".
    """
    for line in reversed(log.splitlines()):
        match = _ERROR_LINE.search(line)
        if match:
            return match.group(1).strip()
    return None


_APP_INDEX = """
import contextlib, json, os, sys
from pathlib import Path

app = Path(sys.argv[1])
found = {"agents": None, "workflows": None}
try:
    from harness.host.loader import import_app
    from harness.host.settings import apply_local_settings, export_storage

    apply_local_settings(app)
    export_storage(None)
    with contextlib.redirect_stdout(sys.stderr):
        module = import_app(app)
    from durableagent import AgentFunctionApp

    apps = [value for value in vars(module).values() if isinstance(value, AgentFunctionApp)]
    if apps:
        found["agents"] = [{"name": n} for value in apps for n in value.agents]
    try:
        from harness.workflow_graph import graph_of

        if apps:
            found["workflows"] = {
                name: graph_of(workflow, name).to_json()
                for value in apps
                for name, workflow in value.workflows.items()
            }
    except BaseException:
        pass  # a graph that cannot be drawn leaves the agents known
except BaseException:
    found = {"agents": None, "workflows": None}
print(json.dumps(found))
"""


def app_index(app_dir: Path, *, script: Path | None = None, timeout: float = 60.0) -> dict[str, Any]:
    """What the app defines (`agents`: [{"name"}], `workflows`: {name: graph JSON}), read by importing
    it in a child as the local host would (its local settings applied, the fake model's `script` set),
    before any stack process starts; `{}` when that cannot say (the import fails: the host reports
    why; too slow), a key None when it is not a durableagent app."""
    import json
    import subprocess

    from durableagent.scripting import LOCAL_HOST_ENV

    env = {k: v for k, v in os.environ.items() if k not in CHAT_ENV_VARS}
    env[LOCAL_HOST_ENV] = "1"  # imported as the local host would: the model swap is honoured there
    if script is not None:
        env["DURABLEAGENT_CHAT_SCRIPT"] = str(script)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _APP_INDEX, str(app_dir)],
            cwd=app_dir,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        lines = done.stdout.strip().splitlines()
        found = json.loads(lines[-1]) if lines else {}
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}
    return found if isinstance(found, dict) else {}


def app_agents(app_dir: Path, *, script: Path | None = None, timeout: float = 60.0) -> list[str] | None:
    """The agents the app defines (`app_index`); None when that cannot say (the import fails: the
    host reports why; not a durableagent app; too slow).

    `chat` and `ask` check the agent's name with it, so a mistyped one costs an import, not a stack.
    """
    agents = app_index(app_dir, script=script, timeout=timeout).get("agents")
    if not isinstance(agents, list):
        return None
    from harness.client import agent_names

    return agent_names({"agents": agents})


APP_SCRIPT_NAME = "fake_model.json"
"""An app folder's own fake-model script, used when no script is given (samples ship one)."""


def default_script_path(app_dir: Path | None = None) -> Path:
    """The app folder's ``fake_model.json`` if it has one, else the rule-based weather script."""
    if app_dir is not None and (Path(app_dir) / APP_SCRIPT_NAME).is_file():
        return Path(app_dir) / APP_SCRIPT_NAME
    from fakes import WEATHER_SCRIPT_PATH  # imported lazily: optional at import

    return Path(WEATHER_SCRIPT_PATH)


class Stack(StartStop):
    """Azurite + a Functions host for one app folder, started and stopped together.

    ``script`` scripts the fake model (default: the app folder's ``fake_model.json``, else the weather
    script); ``live=True`` uses the app's real model client instead, and ``record`` (with ``live``) names
    a ``.json`` file that every model exchange of the run is recorded to, as a script that ``script=``
    replays offline (emptied when the stack starts). Progress goes to ``on_progress``
    or, when stderr is a terminal (or ``progress=True``), to a rich spinner.

    Its folder holds ``azurite/`` (Azurite's data) and ``logs/`` (both logs, the fake's request
    record). By default that is a new temporary folder, removed on a clean stop or SIGTERM, so tests,
    benchmarks and ``--fresh`` keep their data apart and leave nothing behind; ``work_dir`` names a
    folder that is kept; ``workspace`` is one kept across runs and locked while this stack uses it.
    ``virtual_time`` (``auto`` or ``manual``) runs the local host on a virtual clock
    (``docs/virtual-time.md``); None is real time. ``python`` runs the app in that interpreter
    (Durable Functions 2.x apps: ``docs/durable-2x.md``).
    """

    def __init__(
        self,
        app_dir: Path = DEFAULT_APP_DIR,
        *,
        host_mode: HostMode = "auto",
        script: Path | None = None,
        live: bool = False,
        record: Path | None = None,
        work_dir: Path | None = None,
        workspace: Workspace | None = None,
        port: int | None = None,
        preferred_port: int | None = None,
        task_hub: str | None = None,
        env: Mapping[str, str] | None = None,
        on_progress: Callable[[str], None] | None = None,
        progress: bool | None = None,
        virtual_time: str | None = None,
        python: str | Path | None = None,
    ) -> None:
        self.app_dir = Path(app_dir).resolve()
        self.host_mode = host_mode
        self.live = live
        if live and script is not None:
            raise ValueError("a chat script and live=True exclude each other")
        if record is not None and not live:
            raise ValueError("recording needs live=True: it records the real model's answers")
        self.record_script = Path(record).resolve() if record is not None else None
        if self.record_script is not None:
            env = {**(env or {}), "DURABLEAGENT_CHAT_RECORD_SCRIPT": str(self.record_script)}
        self.script_path: Path | None = (
            None if live else Path(script or default_script_path(self.app_dir)).resolve()
        )
        if workspace is not None and work_dir is not None:
            raise ValueError("a workspace and a work_dir exclude each other")
        # A folder made here is the run's scratch space and is removed when the stack stops cleanly;
        # one the caller names is theirs and is kept; a workspace is kept, and locked while in use.
        self.workspace = workspace
        self.owns_work_dir = work_dir is None and workspace is None
        if workspace is not None:
            self.work_dir = workspace.root
        else:
            self.work_dir = (
                Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="durableagent-stack-"))
            )
            self.work_dir.mkdir(parents=True, exist_ok=True)
        logs = self.work_dir / "logs"
        self._replaced_handlers: dict[int, Any] = {}
        self.record_path: Path | None = None if live else logs / "chat-requests.jsonl"
        self.on_progress = on_progress
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.azurite = Azurite(
            self.work_dir / "azurite", log_path=logs / "azurite.log", on_progress=self._announce
        )
        self.host = FunctionHost(
            self.app_dir,
            mode=host_mode,
            port=port,
            preferred_port=preferred_port,
            chat_script=self.script_path,
            chat_record=self.record_path,
            task_hub=task_hub,
            env=env,
            log_path=logs / "host.log",
            virtual_time=virtual_time,
            python=python,
        )
        self._status: object | None = None

    def __repr__(self) -> str:
        return f"<Stack {self.app_dir.name} host={self.host.mode} running={self.is_running()}>"

    @property
    def url(self) -> str:
        return self.host.url

    @property
    def connection_string(self) -> str:
        return self.azurite.connection_string

    @property
    def log_paths(self) -> dict[str, Path]:
        return {"azurite": self.azurite.log_path, "host": self.host.log_path}

    def is_running(self) -> bool:
        return self.azurite.is_running() and self.host.is_running()

    def _report(self, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(message)
        elif self._status is not None:
            self._status.update(message)  # type: ignore[attr-defined]

    def _announce(self, message: str) -> None:
        """Progress that must be seen even without a terminal (installing Azurite: a first run would
        otherwise be silent for half a minute): a plain line on stderr when nothing else shows it."""
        if self.on_progress is None and self._status is None:
            print(message, file=sys.stderr, flush=True)
        else:
            self._report(message)

    @contextmanager
    def _progress_display(self) -> Iterator[None]:
        if self.on_progress is not None or not self.progress:
            yield
            return
        from rich.console import Console

        with Console(stderr=True).status("Starting the local stack...", spinner="dots") as status:
            self._status = status
            try:
                yield
            finally:
                self._status = None

    def start(self, timeout: float = 120.0) -> float:
        """Start Azurite, then the host; return the seconds taken. On failure nothing is left running."""
        began = time.monotonic()
        if self.workspace is None:
            self.work_dir.mkdir(parents=True, exist_ok=True)  # a clean stop removed it
        self._handle_sigterm()
        try:
            if self.workspace is not None:
                self.workspace.acquire()  # before Azurite opens the data folder another stack may use
            with self._progress_display():
                if self.record_script is not None:
                    from fakes import start_recording

                    start_recording(self.record_script)
                self._report("Starting Azurite...")
                self.azurite.start()
                self.host.storage = self.azurite.connection_string
                self._report(f"Starting the Functions host ({self.host.mode}) for {self.app_dir.name}...")
                self.host.start(timeout)
            if self.workspace is not None:
                self.workspace.describe(self.url, self.azurite.connection_string)
        except BaseException:
            self.stop()
            raise
        elapsed = time.monotonic() - began
        self._report(f"Stack ready at {self.url} in {elapsed:.1f} s")
        return elapsed

    def restart_host(self, *, kill: bool = False) -> float:
        """Restart only the host (state in Azurite survives); returns seconds taken."""
        return self.host.restart(kill=kill)

    def stop(self) -> None:
        """Stop the host first (it talks to Azurite while shutting down), then Azurite; then remove the
        work folder this stack made, unless the error on its way names its logs.
        """
        keep = _error_names(self.work_dir)
        try:
            self._stop_processes()
        finally:
            self._restore_sigterm()
            if self.workspace is not None:
                self.workspace.release()
            if self.owns_work_dir and not keep:
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def _stop_processes(self) -> None:
        """The host first (it finishes the turn in progress and talks to Azurite while shutting down),
        then Azurite, gracefully, always: Azurite killed loses writes it acknowledged.

        Interrupted while the host finishes (a second Ctrl-C: the user will not wait), the host is
        killed, a crash its durable state survives, and Azurite still gets its clean stop.
        """
        try:
            self.host.stop()
        except KeyboardInterrupt:
            if self.host.process is not None:
                self.host.process.kill()
            raise
        finally:
            self.azurite.stop()

    def _handle_sigterm(self) -> None:
        """On SIGTERM or SIGHUP (the terminal closed), stop and clean up, then die of that signal.

        Python's default is to die at once, skipping every ``finally``: the children still go (they
        get SIGTERM when we die), but the work folder would be left in the temp dir on every run.
        Installed only from the main thread over the default handlers, so an embedding program's own
        handling is never replaced.
        """
        if threading.current_thread() is not threading.main_thread():
            return

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._restore_sigterm()
            signal.signal(signum, signal.SIG_DFL)
            try:
                self._stop_processes()
            finally:
                if self.owns_work_dir:
                    shutil.rmtree(self.work_dir, ignore_errors=True)
                os.kill(os.getpid(), signum)

        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, on_signal)
                self._replaced_handlers[signum] = signal.SIG_DFL

    def _restore_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        replaced, self._replaced_handlers = self._replaced_handlers, {}
        for signum, handler in replaced.items():
            signal.signal(signum, handler)


def _error_names(folder: Path) -> bool:
    """Whether the error on its way names something in `folder` (a failed start names its log there),
    so the folder must outlive the stack; any other error says nothing about it, and the folder would
    be left in the temp dir on every such run (an unknown agent, a failed turn, a port in use)."""
    exc = sys.exc_info()[1]
    return exc is not None and not isinstance(exc, KeyboardInterrupt) and str(folder) in str(exc)
