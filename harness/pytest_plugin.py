"""pytest plugin (entry point ``durableagent_harness``): one Azurite per session, one host per app.

Fixtures are lazy: a test run that never asks for ``azurite``/``function_host``/``host_client`` starts
nothing. Tests share the session's host (one per app folder, see ``_HostPool``) and isolate
themselves with ``unique_session`` keys.

``orchestration`` makes a test of an orchestration a few lines (start, wait for a status, raise an
event, read output and history). It talks to the Durable instance HTTP API through
``harness.client`` like the CLI and TUI, so overriding ``orchestration_client`` points the same
tests at ``func`` or a deployed app; a timeout fails the test with the instance's last status, which
is what one needs to see to tell a slow orchestration from a stuck one.

About pytest-xprocess: we use its ``xprocess`` fixture for its bookkeeping - a pid file per process
under ``.pytest_cache/d/.xprocess``, so ``pytest --xshow`` lists our processes and ``pytest --xkill``
kills leftovers. Logs stay in the run's own temp folder instead of xprocess's ``xprocess.log``: that
folder is shared by every pytest run of the checkout and truncated when a run starts, which loses
lines when two runs overlap (several people/agents testing one checkout). Its hook that attaches
process logs to failing reports does ``report = yield`` in an old-style hookwrapper (it gets a pluggy
Result, not the report), so it never attaches anything; we do that ourselves (see
``pytest_runtest_makereport`` below).

Starting and stopping stays with ``harness.processes`` because ``XProcess.ensure`` does not fit:
it reuses a still-running process from an earlier run whose (random) ports we cannot know, it hard-codes
``preexec_fn=os.setpgrp`` so the child cannot get ``PR_SET_PDEATHSIG``, its startup check keeps polling
a child that already died instead of failing with its log, and the TUI/CLI start the very same processes
without pytest - one code path means the same teardown everywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pytest

from harness.stack import HOST_MODES

if TYPE_CHECKING:
    import httpx

    from harness.azurite import Azurite
    from harness.client import SyncAgentClient
    from harness.stack import FunctionHost

STACK_FIXTURES = frozenset({"azurite", "function_host", "host_client"})


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--durableagent-app`` / ``--durableagent-host`` and their ini equivalents."""
    group = parser.getgroup("durableagent", "durableagent local stack (Azurite + Functions host)")
    group.addoption(
        "--durableagent-app",
        dest="durableagent_app",
        default=None,
        metavar="DIR",
        help="app folder the session host serves (default: ini durableagent_app, else samples/weather)",
    )
    group.addoption(
        "--durableagent-host",
        dest="durableagent_host",
        default=None,
        choices=HOST_MODES,
        help="func = Azure Functions Core Tools, local = python -m harness.host, auto = func if on PATH",
    )
    parser.addini("durableagent_app", "Functions app folder for the function_host fixture", default="")
    parser.addini(
        "durableagent_host", "host mode for the function_host fixture: func|local|auto", default="auto"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: needs Azurite and a Functions host (started by the harness plugin)"
    )
    config.addinivalue_line(
        "markers",
        "fake_script(file, require_all_used=False): the fake model replays FILE (e.g. one recorded with "
        "--live --record), in the session host and in the fake_script fixture; require_all_used fails "
        "the test when a step of it was never used",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests using the stack fixtures are integration tests: ``-m 'not integration'`` skips them."""
    for item in items:
        if STACK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


_LOG_HANDLES = pytest.StashKey[dict[str, TextIO]]()
_LOG_PATHS = pytest.StashKey[dict[str, Path]]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """After a failing run, say where the Azurite and host logs are."""
    paths = config.stash.get(_LOG_PATHS, {})
    if paths and exitstatus != 0:
        terminalreporter.section("durableagent process logs")
        for name, path in paths.items():
            terminalreporter.write_line(f"{name}: {path}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Add what Azurite/the host logged during a failing test phase to its report."""
    report = yield
    for name, handle in item.config.stash.get(_LOG_HANDLES, {}).items():
        content = handle.read()  # always read, so the next report only shows its own lines
        if content.strip() and report.failed:
            report.sections.append((f"{name} log ({call.when})", content))
    return report


# -- helpers -------------------------------------------------------------------------------------


def _reporter(config: pytest.Config) -> Callable[[str], None]:
    """Write a progress line to the terminal even while output is captured (e.g. the npm install)."""
    capman = config.pluginmanager.getplugin("capturemanager")
    terminal = config.pluginmanager.getplugin("terminalreporter")

    def report(message: str) -> None:
        if terminal is None:
            return
        suspended = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with suspended:
            terminal.write_line(f"[durableagent] {message}")

    return report


class _XprocessSlot:
    """Our process's place in xprocess's bookkeeping: log path, pid file, and the failing-report hook."""

    def __init__(self, config: pytest.Config, xprocess: Any, name: str, log_dir: Path) -> None:
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        self.name = f"{name}-{worker}" if worker else name
        self.config = config
        self._handle: TextIO | None = None
        self.log_path = log_dir / f"{self.name}.log"
        self.pid_path: Path | None = Path(str(xprocess.getinfo(self.name).pidpath)) if xprocess else None
        config.stash.setdefault(_LOG_PATHS, {})[self.name] = self.log_path

    def attach(self, pid: int | None) -> None:
        """Record the pid (for --xshow/--xkill) and stream new log lines into failing test reports."""
        if self.pid_path is not None and pid is not None:
            self.pid_path.write_text(str(pid))
        handle = open(self.log_path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed in detach
        handle.seek(0, os.SEEK_END)
        self._handle = handle
        self.config.stash.setdefault(_LOG_HANDLES, {})[self.name] = handle

    def detach(self) -> None:
        self.config.stash.get(_LOG_HANDLES, {}).pop(self.name, None)
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.pid_path is not None:
            with contextlib.suppress(OSError):
                self.pid_path.unlink()  # a stale pid could be reused; never let --xkill hit it


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def durableagent_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Session folder for Azurite data, the chat script and the request record."""
    return tmp_path_factory.mktemp("durableagent")


@pytest.fixture(scope="session")
def _durableagent_xprocess(request: pytest.FixtureRequest) -> Any:
    """pytest-xprocess's helper, or None when that plugin or the cache provider is disabled."""
    try:
        return request.getfixturevalue("xprocess")
    except (pytest.FixtureLookupError, AttributeError, OSError):
        return None


@pytest.fixture(scope="session")
def azurite(
    request: pytest.FixtureRequest, durableagent_dir: Path, _durableagent_xprocess: Any
) -> Iterator[Azurite]:
    """A session-wide Azurite on free ports; ``azurite.connection_string`` for storage clients."""
    from harness.azurite import Azurite

    slot = _XprocessSlot(
        request.config, _durableagent_xprocess, "durableagent-azurite", durableagent_dir / "logs"
    )
    emulator = Azurite(
        durableagent_dir / "azurite-data", log_path=slot.log_path, on_progress=_reporter(request.config)
    )
    emulator.start()
    slot.attach(emulator.pid)
    try:
        yield emulator
    finally:
        try:
            emulator.stop()  # SIGTERM and a wait for its clean exit: SIGKILL loses acknowledged writes
        finally:
            slot.detach()


@pytest.fixture(scope="session")
def function_host_app_dir(request: pytest.FixtureRequest) -> Path:
    """App folder for ``function_host``: ``--durableagent-app``, ini ``durableagent_app``, else the sample.

    Override this fixture in a conftest to test another app.
    """
    from harness.stack import DEFAULT_APP_DIR

    config = request.config
    cli = config.getoption("durableagent_app")
    if cli:
        return (Path(config.invocation_params.dir) / cli).resolve()
    ini = config.getini("durableagent_app")
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return (Path(base) / str(ini)).resolve()
    return DEFAULT_APP_DIR


@pytest.fixture(scope="session")
def function_host_mode(request: pytest.FixtureRequest) -> str:
    """``func``, ``local`` or ``auto`` from ``--durableagent-host`` / ini ``durableagent_host``."""
    mode = (
        request.config.getoption("durableagent_host") or request.config.getini("durableagent_host") or "auto"
    )
    if mode not in HOST_MODES:
        raise pytest.UsageError(f"durableagent_host must be one of {', '.join(HOST_MODES)}, not {mode!r}")
    return str(mode)


@pytest.fixture(scope="session")
def function_host_env() -> dict[str, str]:
    """Extra environment for the host process (override to set app settings)."""
    return {}


@pytest.fixture(scope="session")
def chat_script_default() -> dict[str, Any]:
    """The script every test starts from: the rule-based weather script (override for another baseline)."""
    from fakes import WEATHER_SCRIPT_PATH, load_script_data

    return load_script_data(WEATHER_SCRIPT_PATH)


class ChatScript:
    """The chat script file the session host's fake model reads, plus the requests it recorded.

    ``set()`` replaces the file atomically (the fake re-reads it on its next request and starts its
    steps from the beginning); ``requests()`` returns what the fake received since this test began.
    """

    def __init__(self, path: Path, record_path: Path, default: Mapping[str, Any]) -> None:
        self.path = path
        self.record_path = record_path
        self.default = dict(default)
        self._offset = self._record_size()
        self._dirty = False

    def _record_size(self) -> int:
        try:
            return self.record_path.stat().st_size
        except FileNotFoundError:
            return 0

    def set(self, script: Mapping[str, Any] | Sequence[Any]) -> None:
        """Use ``script``: a whole script object, or a list of steps (shorthand for ``{"steps": [...]}``)."""
        if isinstance(script, Mapping):
            data: dict[str, Any] = dict(script)
        elif isinstance(script, Sequence) and not isinstance(script, str | bytes):
            data = {"steps": list(script)}
        else:
            raise TypeError(
                f"chat_script.set() takes a script dict or a list of steps, not {type(script).__name__}"
            )
        write_script(self.path, data)
        self._dirty = True

    def reset(self) -> None:
        """Back to the default script (done automatically after each test that changed it)."""
        write_script(self.path, self.default)
        self._dirty = False

    def requests(self) -> list[dict[str, Any]]:
        """Requests the fake model received since the test started, oldest first (parsed JSON lines)."""
        try:
            with open(self.record_path, "rb") as fh:
                fh.seek(self._offset)
                raw = fh.read()
        except FileNotFoundError:
            return []
        complete = raw[: raw.rfind(b"\n") + 1]  # ignore a line still being written
        return [json.loads(line) for line in complete.splitlines() if line.strip()]

    def clear(self) -> None:
        """Forget the requests recorded so far (``requests()`` then starts from now)."""
        self._offset = self._record_size()

    def used_steps(self) -> set[int]:
        """Indexes of the script's steps that answered a request since the test started."""
        found = (STEP_ANSWER.fullmatch(str(r.get("answered_by") or "")) for r in self.requests())
        return {int(match.group(1)) for match in found if match}

    def failures(self) -> list[str]:
        """Why requests since the test started got no answer (e.g. a replay's departure, with its diff)."""
        return [str(r["error"]) for r in self.requests() if r.get("error")]


STEP_ANSWER = re.compile(r"steps\[(\d+)\]")


def write_script(path: Path, data: Mapping[str, Any]) -> None:
    """Atomically replace ``path`` with ``data`` as JSON, with a strictly newer mtime.

    The fake detects changes by (mtime_ns, size); two same-sized writes within the clock resolution
    would otherwise look unchanged.
    """
    try:
        previous = path.stat().st_mtime_ns
    except FileNotFoundError:
        previous = 0
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
        stat = os.stat(tmp)
        mtime = max(stat.st_mtime_ns, previous + 1_000_000)
        os.utime(tmp, ns=(mtime, mtime))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@pytest.fixture(scope="session")
def _durableagent_chat_files(
    durableagent_dir: Path, chat_script_default: dict[str, Any]
) -> tuple[Path, Path]:
    """(script, record) paths of the session; the script starts as ``chat_script_default``."""
    script = durableagent_dir / "chat-script.json"
    record = durableagent_dir / "chat-requests.jsonl"
    write_script(script, chat_script_default)
    return script, record


class _HostPool:
    """The session's Functions hosts, one per (app folder, mode, env), all stopped at session end.

    ``function_host`` is not itself session-scoped: pytest caches a session fixture once, so a
    ``function_host_app_dir`` override in a sub-folder's conftest would silently get the first app's
    host. Resolving through this pool gives each app its own host while still starting it only once.
    """

    def __init__(
        self, config: pytest.Config, xprocess: Any, storage: str, chat_files: tuple[Path, Path]
    ) -> None:
        self.config = config
        self.xprocess = xprocess
        self.storage = storage
        self.script, self.record = chat_files
        self.hosts: dict[tuple[Any, ...], tuple[FunctionHost, _XprocessSlot]] = {}
        self.failures: dict[tuple[Any, ...], BaseException] = {}

    def get(self, app_dir: Path, mode: str, env: Mapping[str, str]) -> FunctionHost:
        from harness.stack import FunctionHost

        key = (Path(app_dir).resolve(), mode, tuple(sorted(env.items())))
        if key in self.hosts:
            return self.hosts[key][0]
        if key in self.failures:  # fail fast instead of waiting for the same broken start-up again
            raise self.failures[key]
        name = f"durableagent-host-{key[0].name}"
        taken = {slot.name for _, slot in self.hosts.values()}
        if name in taken:
            name = f"{name}-{len(self.hosts) + 1}"
        slot = _XprocessSlot(self.config, self.xprocess, name, self.script.parent / "logs")
        host = FunctionHost(
            key[0],
            storage=self.storage,
            mode=mode,  # type: ignore[arg-type]
            chat_script=self.script,
            chat_record=self.record,
            env=env,
            log_path=slot.log_path,
        )
        if self.config.getoption("verbose") > 0:
            _reporter(self.config)(
                f"starting the Functions host ({host.mode}) for {host.app_dir}; log: {host.log_path}"
            )
        try:
            host.start()
        except BaseException as exc:
            self.failures[key] = exc
            raise
        slot.attach(host.pid)
        self.hosts[key] = (host, slot)
        return host

    def close(self) -> None:
        for host, slot in self.hosts.values():
            slot.detach()
            host.stop()
        self.hosts.clear()


@pytest.fixture(scope="session")
def _durableagent_hosts(
    request: pytest.FixtureRequest,
    azurite: Azurite,
    _durableagent_xprocess: Any,
    _durableagent_chat_files: tuple[Path, Path],
) -> Iterator[_HostPool]:
    pool = _HostPool(
        request.config, _durableagent_xprocess, azurite.connection_string, _durableagent_chat_files
    )
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="module")
def function_host(
    _durableagent_hosts: _HostPool,
    function_host_app_dir: Path,
    function_host_mode: str,
    function_host_env: dict[str, str],
) -> FunctionHost:
    """The Functions host for the app (started once per session), on Azurite, with the scripted fake model.

    ``function_host.url`` is its base URL; ``function_host.restart(kill=True)`` simulates a crash.
    """
    return _durableagent_hosts.get(function_host_app_dir, function_host_mode, function_host_env)


@pytest.fixture
def host_client(function_host: FunctionHost) -> Iterator[httpx.Client]:
    """An ``httpx.Client`` for the session host (``base_url`` = host URL, 30 s timeout)."""
    import httpx

    with httpx.Client(base_url=function_host.url, timeout=30.0) as client:
        yield client


@pytest.fixture
def chat_script(
    _durableagent_chat_files: tuple[Path, Path], chat_script_default: dict[str, Any]
) -> Iterator[ChatScript]:
    """Set this test's model script and read the requests the fake received; default restored after."""
    script, record = _durableagent_chat_files
    helper = ChatScript(script, record, chat_script_default)
    yield helper
    if helper._dirty:
        helper.reset()


# -- cassettes: @pytest.mark.fake_script -----------------------------------------------------------


def _fake_script_marker(request: pytest.FixtureRequest) -> tuple[Path, bool] | None:
    """(script path, require_all_used) of the test's ``fake_script`` marker; relative to the test file."""
    marker = request.node.get_closest_marker("fake_script")
    if marker is None:
        return None
    if len(marker.args) != 1:
        raise pytest.UsageError(
            f"{request.node.nodeid}: @pytest.mark.fake_script takes one script file, got {marker.args!r}"
        )
    unknown = set(marker.kwargs) - {"require_all_used"}
    if unknown:
        raise pytest.UsageError(
            f"{request.node.nodeid}: @pytest.mark.fake_script got unknown options {sorted(unknown)}; "
            "it takes require_all_used"
        )
    path = Path(marker.args[0])
    if not path.is_absolute():
        path = Path(request.node.path).parent / path
    return path, bool(marker.kwargs.get("require_all_used", False))


def _load_marked_script(path: Path) -> dict[str, Any]:
    from fakes import ScriptError, load_script_data

    try:
        return load_script_data(path)
    except ScriptError as exc:
        pytest.fail(f"@pytest.mark.fake_script: {exc}", pytrace=False)


def _unused_message(path: Path, data: Mapping[str, Any], used: set[int]) -> str | None:
    """The failure text for steps never used, or None when every step was."""
    from fakes import parse_script
    from fakes.script import unused_steps_message

    script = parse_script(data, source=str(path))
    return unused_steps_message(script, [i for i in range(len(script.steps)) if i not in used])


@pytest.fixture(autouse=True)
def _durableagent_fake_script(request: pytest.FixtureRequest) -> Iterator[None]:
    """A ``fake_script`` marker on a test that uses the session host: its fake replays the file.

    After the test, a replay that departed from the recording fails it with the diff (even when the
    test only looked at a status code), and ``require_all_used`` fails it for steps never used.
    """
    marked = _fake_script_marker(request)
    uses_host = bool((STACK_FIXTURES | {"chat_script"}) & set(request.fixturenames))
    if marked is None or not uses_host:
        yield
        return
    path, require_all_used = marked
    data = _load_marked_script(path)
    chat_script: ChatScript = request.getfixturevalue("chat_script")
    chat_script.set(data)
    chat_script.clear()
    yield
    departures = [failure for failure in chat_script.failures() if "ReplayMismatchError" in failure]
    if departures:
        pytest.fail(departures[0], pytrace=False)
    if require_all_used:
        message = _unused_message(path, data, chat_script.used_steps())
        if message:
            pytest.fail(f"require_all_used: {message}", pytrace=False)


@pytest.fixture
def fake_script(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A ``ScriptedChatClient`` replaying the test's ``@pytest.mark.fake_script`` file, for agents built
    in the test itself (``Agent(client=fake_script, ...)``); ``require_all_used`` is checked after."""
    from fakes import ScriptedChatClient

    marked = _fake_script_marker(request)
    if marked is None:
        raise pytest.UsageError(
            f"{request.node.nodeid}: the fake_script fixture replays the file of "
            '@pytest.mark.fake_script("recorded.json"); the test has no such marker'
        )
    path, require_all_used = marked
    _load_marked_script(path)
    client = ScriptedChatClient.from_file(path)
    yield client
    if require_all_used:
        try:
            client.assert_complete()
        except AssertionError as exc:
            pytest.fail(f"require_all_used: {exc}", pytrace=False)


@pytest.fixture
def unique_session(request: pytest.FixtureRequest) -> str:
    """A session key no other test uses (readable: derived from the test name)."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-").lower()[:40] or "test"
    return f"{stem}-{uuid.uuid4().hex[:8]}"


# -- orchestrations ------------------------------------------------------------------------------

_ANY: Any = object()
DEFAULT_ORCHESTRATION_TIMEOUT = 30.0


class OrchestrationTimeout(AssertionError):
    """An instance did not reach the awaited state in time (or finished without reaching it)."""


def _describe_status(status: Mapping[str, Any]) -> str:
    """The last status seen, in a few lines, for a failing test's message."""
    from harness.formatting import format_value, timeline

    lines = [f"runtimeStatus={status.get('runtimeStatus')!r}"]
    for key in ("customStatus", "output"):
        if status.get(key) is not None:
            lines.append(f"{key}={format_value(status[key], 300)}")
    rows = timeline(status.get("historyEvents"))
    if rows:
        lines.append("history (newest last): " + "; ".join(f"{r.kind} {r.title}" for r in rows[-8:]))
    return "\n  ".join(lines)


class OrchestrationRun:
    """One started instance: wait for states, raise events, read status, output and history."""

    def __init__(self, client: SyncAgentClient, instance_id: str, timeout: float, interval: float) -> None:
        self.client = client
        self.id = instance_id
        self.timeout = timeout
        self.interval = interval
        self.last: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"OrchestrationRun({self.id!r}, {self.last.get('runtimeStatus', 'not read yet')})"

    def status(self, history: bool = True) -> dict[str, Any]:
        """The instance's status now (with ``historyEvents`` by default)."""
        from harness.client import ClientError

        status = self.client.instance(self.id, history=history)
        if status is None:
            raise ClientError(f"no instance {self.id!r}", status=404)
        self.last = status
        return status

    @property
    def output(self) -> Any:
        """``output`` of the last status read (a Failed instance's output is its error text)."""
        return self.last.get("output")

    @property
    def history(self) -> list[dict[str, Any]]:
        """``historyEvents`` of the last status read (oldest first)."""
        return list(self.last.get("historyEvents") or [])

    def history_types(self) -> list[str]:
        """The ``EventType`` of each history event of the last status read, e.g. to assert an order."""
        return [str(event.get("EventType")) for event in self.history]

    def wait_until(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float | None = None,
        what: str = "condition",
    ) -> dict[str, Any]:
        """Poll (with history) until ``predicate(status)``; fail the test with the last status if late."""
        from harness.client import InstanceTimeout

        limit = self.timeout if timeout is None else timeout
        try:
            self.last = self.client.wait(
                self.id, until=predicate, timeout=limit, interval=self.interval, history=True, describe=what
            )
        except InstanceTimeout as exc:
            self.last = exc.last
            raise OrchestrationTimeout(f"{exc}\n  {_describe_status(exc.last)}") from None
        return self.last

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the instance is Completed, Failed or Terminated; returns that status."""
        from harness.client import is_finished

        return self.wait_until(is_finished, timeout, "to finish")

    def wait_for(
        self,
        *,
        status: str | Sequence[str] | None = None,
        custom_status: Any = _ANY,
        event: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Wait until every given condition holds.

        ``status``: a runtime status or several; ``custom_status``: a value to equal, or a callable
        taking the custom status; ``event``: a history ``EventType`` (e.g. ``"TimerCreated"``) or the
        name of a raised event that must appear in the history.
        """
        wanted = {status} if isinstance(status, str) else set(status or ())

        def matches(current: dict[str, Any]) -> bool:
            if wanted and current.get("runtimeStatus") not in wanted:
                return False
            if custom_status is not _ANY:
                value = current.get("customStatus")
                ok = custom_status(value) if callable(custom_status) else value == custom_status
                if not ok:
                    return False
            if event is not None:
                events = current.get("historyEvents") or []
                if not any(e.get("EventType") == event or e.get("Name") == event for e in events):
                    return False
            return True

        parts = [f"status in {sorted(wanted)}" if wanted else "", f"event {event!r}" if event else ""]
        if custom_status is not _ANY:
            parts.append(
                "custom status " + ("to match" if callable(custom_status) else f"== {custom_status!r}")
            )
        return self.wait_until(
            matches, timeout, "for " + (" and ".join(p for p in parts if p) or "any status")
        )

    def wait_for_idle(self, quiet: float = 0.5, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the instance is Running and its status has not changed for ``quiet`` seconds.

        The Durable API does not say what an instance waits for; an instance that stopped changing is
        (usually) waiting for an external event or a timer. Raising an event before the wait starts is
        fine too: events are buffered until the orchestrator asks for them.
        """
        seen: dict[str, Any] = {"key": None, "since": 0.0}

        def idle(current: dict[str, Any]) -> bool:
            key = (
                current.get("runtimeStatus"),
                current.get("lastUpdatedTime"),
                len(current.get("historyEvents") or []),
            )
            now = time.monotonic()
            if key != seen["key"]:
                seen["key"], seen["since"] = key, now
            return current.get("runtimeStatus") == "Running" and now - seen["since"] >= quiet

        return self.wait_until(idle, timeout, f"to be Running and unchanged for {quiet:g} s")

    def raise_event(self, name: str, data: Any = None) -> None:
        """Send the external event ``name`` with JSON ``data``."""
        self.client.raise_event(self.id, name, data)

    def terminate(self, reason: str | None = None) -> None:
        """Terminate the instance (asynchronous; ``wait()`` then sees Terminated)."""
        self.client.terminate(self.id, reason)

    def purge(self) -> None:
        """Delete the instance and its history."""
        self.client.purge(self.id)


class Orchestrations:
    """The ``orchestration`` fixture: start instances and get ``OrchestrationRun`` handles."""

    def __init__(
        self,
        client: SyncAgentClient,
        timeout: float = DEFAULT_ORCHESTRATION_TIMEOUT,
        interval: float = 0.1,
        id_prefix: str = "",
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.interval = interval
        self.id_prefix = id_prefix
        self.started: list[OrchestrationRun] = []

    def start(self, orchestrator: str, input: Any = None, instance_id: str | None = None) -> OrchestrationRun:
        """Start ``orchestrator`` with JSON ``input`` (default id: this test's name plus a random part)."""
        chosen = instance_id or f"{self.id_prefix}{uuid.uuid4().hex[:12]}"
        started = self.client.start(orchestrator, input, chosen)
        run = OrchestrationRun(self.client, str(started.get("id") or chosen), self.timeout, self.interval)
        self.started.append(run)
        return run

    def run(self, orchestrator: str, input: Any = None, timeout: float | None = None) -> OrchestrationRun:
        """Start and wait until it finishes; ``run.last`` is the final status."""
        run = self.start(orchestrator, input)
        run.wait(timeout)
        return run

    def get(self, instance_id: str) -> OrchestrationRun:
        """A handle on an instance started elsewhere (e.g. by an HTTP trigger)."""
        return OrchestrationRun(self.client, instance_id, self.timeout, self.interval)

    def terminate_unfinished(self) -> None:
        """Terminate the instances this test started that still run (done after each test)."""
        from harness.client import ClientError, is_finished

        for run in self.started:
            with contextlib.suppress(ClientError):
                status = self.client.instance(run.id)
                if status is not None and not is_finished(status):
                    self.client.terminate(run.id, "test ended")


@pytest.fixture
def orchestration_client(function_host: FunctionHost) -> Iterator[SyncAgentClient]:
    """The client ``orchestration`` uses: the session host (override to test ``func`` or a deployed app)."""
    from harness.client import SyncAgentClient

    with SyncAgentClient(function_host.url) as client:
        yield client


@pytest.fixture
def orchestration(
    orchestration_client: SyncAgentClient, request: pytest.FixtureRequest
) -> Iterator[Orchestrations]:
    """Start orchestrations and wait on them; instances still running when the test ends are terminated.

    ``run = orchestration.start("name", {"x": 1})``; ``run.wait_for(custom_status=...)``;
    ``run.raise_event("Approval", {...})``; ``status = run.wait(timeout=10)``; ``run.output``,
    ``run.history``. Waits time out after 30 s unless given ``timeout``; a timeout fails the test
    with the last status and the end of the history.
    """
    stem = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-").lower()[:40] or "test"
    helper = Orchestrations(orchestration_client, id_prefix=f"{stem}-")
    yield helper
    helper.terminate_unfinished()
