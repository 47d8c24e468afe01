"""`AppEnvironment`: Azurite and a Functions host for one app, with a client, the fake model's script
and the orchestration helper, as a context manager that needs no test framework.

In the spirit of Temporal's `WorkflowEnvironment`: a test (pytest, unittest, a notebook, a script)
writes `with AppEnvironment(app) as env:` (or `async with`), talks to `env.client`, steers the model
with `env.script.set([...])`, reads `env.script.requests()`, and drives orchestrations with
`env.orchestrations.run(...)`; with `virtual_time="auto"` or `"manual"` the host's clock skips
ahead and `env.sleep("PT72H")` moves it (`docs/virtual-time.md`). Leaving the block stops the host
and Azurite and removes their folder (kept, with the logs, when the block raised).
`AppEnvironment.from_url(url)` gives the same client and orchestration helper for an app already
running (`func`, a deployed app), without a script to steer.

The pytest plugin (`harness/pytest_plugin.py`) is built on the same pieces (`HostPool`, `ChatScript`,
`Orchestrations`); it shares one Azurite and one host per app across a whole test session instead.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from harness.azurite import Azurite
from harness.stack import DEFAULT_APP_DIR, FunctionHost, HostMode, default_script_path

from .clock import ClockControl
from .hosts import HostPool
from .orchestrations import DEFAULT_ORCHESTRATION_TIMEOUT, Orchestrations
from .script import ChatScript, load_script, write_script
from .workflows import WorkflowRunner

if TYPE_CHECKING:
    from harness.client import SyncAgentClient

__all__ = ["AppEnvironment"]


class AppEnvironment:
    """Azurite + a host serving `app_dir` (default: the weather sample) with the scripted fake model.

    `mode`: `local` (the harness's own host, the default: no Core Tools needed), `func` or `auto`.
    `script`: the fake model's script to start from, as data (a dict, or a list of steps) or a file
    (default: the app's `fake_model.json`, else the weather script). `env`: app settings for the host.
    `virtual_time`: `auto` or `manual` runs the local host on a virtual clock (None: real time).
    `python`: run the app in that interpreter (Durable Functions 2.x apps, `docs/durable-2x.md`).
    Attributes once started: `url`, `client` (`SyncAgentClient`), `script` (`ChatScript`),
    `orchestrations` (`Orchestrations`), `clock` (`ClockControl`), `host`, `azurite`, `work_dir`.
    """

    def __init__(
        self,
        app_dir: Path | str | None = None,
        *,
        mode: HostMode = "local",
        script: Mapping[str, Any] | Sequence[Any] | Path | str | None = None,
        env: Mapping[str, str] | None = None,
        orchestration_timeout: float = DEFAULT_ORCHESTRATION_TIMEOUT,
        virtual_time: str | None = None,
        python: str | Path | None = None,
    ) -> None:
        self.app_dir = Path(app_dir or DEFAULT_APP_DIR).resolve()
        self.mode: HostMode = mode
        self.virtual_time = virtual_time
        self.python = str(python) if python is not None else None
        self._initial_script = script
        self._env = dict(env or {})
        self._orchestration_timeout = orchestration_timeout
        self._url: str | None = None
        self._key: str | None = None
        self.work_dir: Path | None = None
        self.azurite: Azurite | None = None
        self.host: FunctionHost | None = None
        self._pool: HostPool | None = None
        self._client: SyncAgentClient | None = None
        self._script: ChatScript | None = None
        self._orchestrations: Orchestrations | None = None
        self._workflows: WorkflowRunner | None = None

    @classmethod
    def from_url(cls, url: str, key: str | None = None, **options: Any) -> Self:
        """An environment on an app already running at `url` (nothing is started or stopped; there is
        no `script`: the model is whatever that app uses)."""
        environment = cls(**options)
        environment._url, environment._key = url, key
        return environment

    # -- what a test uses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the app."""
        if self._url is not None:
            return self._url
        return self._started(self.host).url

    @property
    def client(self) -> SyncAgentClient:
        """A blocking client of the app (agents, sessions, instances)."""
        return self._started(self._client)

    @property
    def script(self) -> ChatScript:
        """The fake model's script: `set(...)`, `requests()`, `used_steps()`, `failures()`."""
        if self._url is not None:
            raise RuntimeError("an environment from_url() has no fake-model script: the app runs elsewhere")
        return self._started(self._script)

    @property
    def orchestrations(self) -> Orchestrations:
        """Start orchestrations and wait on them (`start`, `run`, `get`)."""
        return self._started(self._orchestrations)

    @property
    def clock(self) -> ClockControl:
        """The host's clock: `now()`, `state()`, `advance(...)`, `to(...)`, `sleep(...)`."""
        return ClockControl(self.client)

    def sleep(self, duration: str | timedelta | float) -> None:
        """Let `duration` pass (`"PT72H"`, a `timedelta`, seconds): with virtual time the clock moves
        there at once, firing every timer due on the way at its own time, and this returns when the
        work they started has settled; on real time it really waits."""
        self.clock.sleep(duration)

    async def asleep(self, duration: str | timedelta | float) -> None:
        """`sleep` for an `async with` block (the blocking call runs in a thread)."""
        await asyncio.to_thread(self.sleep, duration)

    @property
    def workflows(self) -> WorkflowRunner:
        """Run hosted workflows and answer their requests (`run`, `start`, `get`)."""
        return self._started(self._workflows)

    def _started(self, value: Any) -> Any:
        if value is None:
            raise RuntimeError("the environment is not started: use `with AppEnvironment(...) as env:`")
        return value

    # -- life ---------------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start Azurite and the host (unless `from_url`); returns self. `stop()` undoes it."""
        from harness.client import SyncAgentClient

        if self._client is not None:
            return self
        try:
            if self._url is None:
                self._start_stack()
            self._client = SyncAgentClient(self.url, key=self._key)
            self._orchestrations = Orchestrations(self._client, timeout=self._orchestration_timeout)
            self._workflows = WorkflowRunner(self._client, timeout=self._orchestration_timeout)
        except BaseException:
            self.stop(keep_files=True)
            raise
        return self

    def _start_stack(self) -> None:
        self.work_dir = Path(tempfile.mkdtemp(prefix="durableagent-testing-"))
        logs = self.work_dir / "logs"
        logs.mkdir()
        default = self._script_data()
        script_path, record_path = self.work_dir / "chat-script.json", self.work_dir / "chat-requests.jsonl"
        write_script(script_path, default)
        self.azurite = Azurite(self.work_dir / "azurite-data", log_path=logs / "azurite.log").start()
        self._pool = HostPool(self.azurite.connection_string, script_path, record_path, logs)
        self.host = self._pool.get(
            self.app_dir, self.mode, self._env, virtual_time=self.virtual_time, python=self.python
        )
        self._script = ChatScript(script_path, record_path, default)

    def _script_data(self) -> dict[str, Any]:
        """The script to start from, as data (a file is read and checked as the fake reads it)."""
        given = self._initial_script
        if given is None or isinstance(given, str | Path):
            return load_script(Path(given) if given is not None else default_script_path(self.app_dir))
        if isinstance(given, Mapping):
            return dict(given)
        return {"steps": list(given)}

    def stop(self, keep_files: bool = False) -> None:
        """Terminate the instances this environment started that still run, stop the host and Azurite,
        and remove their folder unless `keep_files` (then its path is in `work_dir`)."""
        try:
            if self._orchestrations is not None:
                self._orchestrations.terminate_unfinished()
            if self._workflows is not None:
                self._workflows.terminate_unfinished()
        finally:
            if self._client is not None:
                self._client.close()
            self._client = self._orchestrations = self._workflows = self._script = None
            if self._pool is not None:
                self._pool.close()
                self._pool = self.host = None
            if self.azurite is not None:
                self.azurite.stop()
                self.azurite = None
            if self.work_dir is not None and not keep_files:
                shutil.rmtree(self.work_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep_files=exc is not None)

    async def __aenter__(self) -> Self:
        """Starting takes seconds of blocking waits: done in a thread, so the event loop runs on."""
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop, exc is not None)
