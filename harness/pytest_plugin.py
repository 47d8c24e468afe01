"""pytest plugin (entry point ``durableagent_harness``): one Azurite per session, one host per app.

Fixtures are lazy: a test run that never asks for ``azurite``/``function_host``/``host_client`` starts
nothing. Tests share the session's host (one per app folder, see ``_HostPool``) and isolate
themselves with ``unique_session`` keys.

``orchestration`` makes a test of an orchestration a few lines (start, wait for a status, raise an
event, read output and history). It talks to the Durable instance HTTP API through
``harness.client`` like the CLI and TUI, so overriding ``orchestration_client`` points the same
tests at ``func`` or a deployed app; a timeout fails the test with the instance's last status, which
is what one needs to see to tell a slow orchestration from a stuck one. ``workflow_runner`` does the
same for hosted agent-framework Workflows through their routes: a run's output, its events, and the
answers to what it asks a person.

The engine is ``harness.testing`` (no pytest there): ``HostPool``, ``ChatScript``, ``Orchestrations``;
this module adds what only pytest has: fixtures and their scopes, markers, options, the xprocess
bookkeeping and process logs in failing reports. ``harness.testing.AppEnvironment`` runs the same
stack for a test without fixtures.

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
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import pytest

from harness.stack import HOST_MODES
from harness.testing.clock import ClockControl
from harness.testing.hosts import HostPool
from harness.testing.keys import key_stem, unique_key
from harness.testing.orchestrations import Orchestrations
from harness.testing.script import ChatScript, load_script, unused_message, write_script
from harness.testing.workflows import WorkflowRunner

if TYPE_CHECKING:
    import httpx

    from harness.azurite import Azurite
    from harness.client import SyncAgentClient
    from harness.stack import FunctionHost

STACK_FIXTURES = frozenset({"azurite", "function_host", "host_client"})


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--durableagent-app`` / ``--durableagent-host`` / ``--durableagent-python`` and their ini
    equivalents."""
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
    group.addoption(
        "--durableagent-python",
        dest="durableagent_python",
        default=None,
        metavar="PATH",
        help="the app's own Python (Durable Functions 2.x apps; default: ini durableagent_python, else "
        "the app's .venv when it holds azure-functions-durable 2.x, else the host's)",
    )
    parser.addini("durableagent_app", "Functions app folder for the function_host fixture", default="")
    parser.addini("durableagent_python", "the app's own Python for the function_host fixture", default="")
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
    config.addinivalue_line(
        "markers",
        "virtual_time(mode): the module's function_host runs on a virtual clock, 'auto' (jumps to the "
        "next timer whenever the host is idle) or 'manual' (moved by the virtual_clock fixture); a host "
        "of its own, started once per session and mode (see docs/virtual-time.md)",
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
def function_host_python(request: pytest.FixtureRequest) -> str | None:
    """The app's own Python from ``--durableagent-python`` / ini ``durableagent_python`` (relative
    to where pytest runs / the ini file), None for the default (the app's 2.x ``.venv``, else the
    host's own interpreter)."""
    config = request.config
    cli = config.getoption("durableagent_python")
    if cli:
        return _interpreter_path(Path(config.invocation_params.dir), str(cli))
    ini = str(config.getini("durableagent_python") or "")
    if ini:
        base = config.inipath.parent if config.inipath else config.rootpath
        return _interpreter_path(Path(base), ini)
    return None


def _interpreter_path(base: Path, given: str) -> str:
    """A path relative to `base` made absolute without following links (a venv's `bin/python` is a
    link to its base interpreter, which has none of the venv's packages); a bare name (`python3.13`)
    is left to PATH."""
    if "/" not in given:
        return given
    return os.path.abspath(base / Path(given).expanduser())


@pytest.fixture(scope="session")
def function_host_env() -> dict[str, str]:
    """Extra environment for the host process (override to set app settings)."""
    return {}


@pytest.fixture(scope="session")
def chat_script_default() -> dict[str, Any]:
    """The script every test starts from: the rule-based weather script (override for another baseline)."""
    from fakes import WEATHER_SCRIPT_PATH, load_script_data

    return load_script_data(WEATHER_SCRIPT_PATH)


@pytest.fixture(scope="session")
def _durableagent_chat_files(
    durableagent_dir: Path, chat_script_default: dict[str, Any]
) -> tuple[Path, Path]:
    """(script, record) paths of the session; the script starts as ``chat_script_default``."""
    script = durableagent_dir / "chat-script.json"
    record = durableagent_dir / "chat-requests.jsonl"
    write_script(script, chat_script_default)
    return script, record


class _HostPool(HostPool):
    """The session's Functions hosts (`harness.testing.HostPool`), each registered with pytest-xprocess
    and its log shown in failing reports.

    ``function_host`` is not itself session-scoped: pytest caches a session fixture once, so a
    ``function_host_app_dir`` override in a sub-folder's conftest would silently get the first app's
    host. Resolving through this pool gives each app its own host while still starting it only once.
    """

    def __init__(
        self, config: pytest.Config, xprocess: Any, storage: str, chat_files: tuple[Path, Path]
    ) -> None:
        script, record = chat_files
        super().__init__(storage, script, record, script.parent / "logs")
        self.config = config
        self.xprocess = xprocess
        self.slots: dict[str, _XprocessSlot] = {}

    def log_path(self, name: str) -> Path:
        slot = self.slots[name] = _XprocessSlot(self.config, self.xprocess, name, self.log_dir)
        return slot.log_path

    def starting(self, name: str, host: FunctionHost) -> None:
        if self.config.getoption("verbose") > 0:
            _reporter(self.config)(
                f"starting the Functions host ({host.mode}) for {host.app_dir}; log: {host.log_path}"
            )

    def started(self, name: str, host: FunctionHost) -> None:
        self.slots[name].attach(host.pid)

    def stopping(self, name: str, host: FunctionHost) -> None:
        self.slots[name].detach()


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


VIRTUAL_TIME_MODES = ("auto", "manual")


def _virtual_time_mode(marker: pytest.Mark, where: str) -> str:
    if len(marker.args) != 1 or marker.kwargs or marker.args[0] not in VIRTUAL_TIME_MODES:
        pytest.fail(
            f"{where}: @pytest.mark.virtual_time takes one mode, 'auto' or 'manual'; got "
            f"{marker.args!r}{' ' + repr(marker.kwargs) if marker.kwargs else ''}",
            pytrace=False,
        )
    return str(marker.args[0])


@pytest.fixture(scope="module")
def function_host_virtual_time(request: pytest.FixtureRequest) -> str | None:
    """The module's clock: the mode of its ``virtual_time`` marker (``pytestmark``), else None (real
    time). Override this fixture (returning ``"auto"`` or ``"manual"``) to choose it in a conftest."""
    marker = request.node.get_closest_marker("virtual_time")
    return None if marker is None else _virtual_time_mode(marker, request.node.nodeid)


@pytest.fixture(scope="module")
def function_host(
    _durableagent_hosts: _HostPool,
    function_host_app_dir: Path,
    function_host_mode: str,
    function_host_env: dict[str, str],
    function_host_virtual_time: str | None,
    function_host_python: str | None,
) -> FunctionHost:
    """The Functions host for the app (started once per session), on Azurite, with the scripted fake model.

    ``function_host.url`` is its base URL; ``function_host.restart(kill=True)`` simulates a crash.
    With virtual time (``function_host_virtual_time``) it is a local host of its own, on a task hub
    of its own, started once per session and mode.
    """
    return _durableagent_hosts.get(
        function_host_app_dir,
        function_host_mode,  # type: ignore[arg-type]
        function_host_env,
        virtual_time=function_host_virtual_time,
        python=function_host_python,
    )


@pytest.fixture(autouse=True)
def _durableagent_virtual_time_marker(request: pytest.FixtureRequest) -> None:
    """A ``virtual_time`` marker on one test (not its module) cannot change the module's shared host:
    said at once instead of running the test on a clock it did not ask for."""
    own = request.node.get_closest_marker("virtual_time")
    if own is None or "function_host" not in request.fixturenames:
        return
    module = request.node.getparent(pytest.Module)
    module_marker = module.get_closest_marker("virtual_time") if module is not None else None
    wanted = _virtual_time_mode(own, request.node.nodeid)
    if module_marker is None or _virtual_time_mode(module_marker, module.nodeid) != wanted:
        actual = request.getfixturevalue("function_host_virtual_time") or "real"
        if actual != wanted:
            pytest.fail(
                f"{request.node.nodeid}: @pytest.mark.virtual_time({wanted!r}) must mark the module "
                f"(pytestmark = pytest.mark.virtual_time({wanted!r})): its function_host is shared and "
                f"runs on {actual} time",
                pytrace=False,
            )


@pytest.fixture
def virtual_clock(function_host: FunctionHost) -> Iterator[ClockControl]:
    """The host's clock: ``advance("PT72H")``, ``to("2030-01-01T00:00:00Z")``, ``sleep(timedelta)``,
    ``now()``, ``state()`` (moves need a ``virtual_time`` module)."""
    from harness.client import SyncAgentClient

    with SyncAgentClient(function_host.url) as client:
        yield ClockControl(client)


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
    from fakes import ScriptError

    try:
        return load_script(path)
    except ScriptError as exc:
        pytest.fail(f"@pytest.mark.fake_script: {exc}", pytrace=False)


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
    departures = chat_script.departures()
    if departures:
        pytest.fail(departures[0], pytrace=False)
    if require_all_used:
        message = unused_message(path, data, chat_script.used_steps())
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
    return unique_key(request.node.name)


# -- orchestrations ------------------------------------------------------------------------------


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
    helper = Orchestrations(orchestration_client, id_prefix=f"{key_stem(request.node.name)}-")
    yield helper
    helper.terminate_unfinished()


# -- workflows -----------------------------------------------------------------------------------


@pytest.fixture
def workflow_runner(
    orchestration_client: SyncAgentClient, request: pytest.FixtureRequest
) -> Iterator[WorkflowRunner]:
    """Run hosted workflows on the session host through their routes; instances still running when
    the test ends are terminated.

    ``run = workflow_runner.run("shared_state", {...})`` -> ``run.output``, ``run.events`` (kinds:
    ``run.kinds()``), ``run.status``, ``run.executors``; an approval: ``run = workflow_runner.start(...)``,
    ``run.wait_for_request()``, ``run.respond({"approved": True})``, ``run.wait()``. Waits time out
    after 30 s unless given ``timeout``, failing the test with what the instance waits for.
    """
    helper = WorkflowRunner(orchestration_client, id_prefix=f"{key_stem(request.node.name)}-")
    yield helper
    helper.terminate_unfinished()
