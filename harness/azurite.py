"""Find (or install) and run Azurite, the local Azure Storage emulator the Durable backend needs.

Azurite is an npm package; rather than asking users to install it globally we install a pinned version
once into a cache folder and reuse it. A copy already on PATH wins, so CI images can pre-install it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

from harness.processes import (
    ManagedProcess,
    ManagedService,
    StartupError,
    ensure_port_free,
    free_port,
    port_is_open,
)

__all__ = [
    "ACCOUNT_KEY",
    "ACCOUNT_NAME",
    "AZURITE_VERSION",
    "STOP_GRACE",
    "STRICT_FLAGS",
    "Azurite",
    "AzuriteNotFoundError",
    "azurite_install_dir",
    "cache_dir",
    "connection_string",
    "ensure_azurite",
    "find_azurite",
]

AZURITE_VERSION = "3.35.0"
ACCOUNT_NAME = "devstoreaccount1"
# The well-known development storage key (public; documented by Microsoft for the emulator).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
# All exist in 3.35.0 (`azurite --help`): quiet, lenient, offline-friendly.
AZURITE_FLAGS = ("--disableTelemetry", "--skipApiVersionCheck", "--loose", "--silent")
# What an Azurite the user starts has (the editor extension's defaults): versions and headers checked.
STRICT_FLAGS = ("--disableTelemetry", "--silent")
SERVICES = ("blob", "queue", "table")
STOP_GRACE = 30.0
"""Seconds Azurite gets to exit after SIGTERM (it saves its data then, in well under a second) before
SIGKILL. Killed outright, it loses the writes of its last seconds that it had already acknowledged
(measured: about 4.5 s), so the harness never starts with SIGKILL, and waits long before it ends so."""


class AzuriteNotFoundError(StartupError):
    """Azurite is not available and could not be installed (node/npm missing, install failed)."""


def cache_dir() -> Path:
    """Root of durableagent's download cache: ``$DURABLEAGENT_CACHE`` or ``~/.cache/durableagent``."""
    override = os.environ.get("DURABLEAGENT_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "durableagent"


def azurite_install_dir(version: str = AZURITE_VERSION) -> Path:
    """Folder the pinned Azurite version is (or will be) npm-installed into."""
    return cache_dir() / f"azurite-{version}"


def _bin_in(prefix: Path) -> Path:
    name = "azurite.cmd" if os.name == "nt" else "azurite"
    return prefix / "node_modules" / ".bin" / name


def find_azurite(version: str = AZURITE_VERSION) -> Path | None:
    """Azurite executable from ``$DURABLEAGENT_AZURITE``, PATH, or the cache folder; None if absent."""
    explicit = os.environ.get("DURABLEAGENT_AZURITE")
    if explicit:
        return Path(explicit)
    on_path = shutil.which("azurite")
    if on_path:
        return Path(on_path)
    cached = _bin_in(azurite_install_dir(version))
    return cached if cached.exists() else None


def ensure_azurite(
    version: str = AZURITE_VERSION,
    *,
    on_progress: Callable[[str], None] | None = None,
    quiet: bool = False,
) -> Path:
    """Return an Azurite executable, installing ``azurite@version`` into the cache on first use.

    The install takes 30-60 s, so it is announced: through ``on_progress`` when given, else with a rich
    spinner on stderr (unless ``quiet``). Installs into a temporary sibling folder and renames it, so a
    concurrent or interrupted install never leaves a half-populated cache.
    """
    found = find_azurite(version)
    if found is not None:
        return found
    npm = shutil.which("npm")
    if shutil.which("node") is None or npm is None:
        raise AzuriteNotFoundError(
            "Azurite is not installed and node/npm are not on PATH: install Node.js "
            "(20 or newer recommended; 18 works) or `npm install -g azurite`"
        )
    target = azurite_install_dir(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    message = f"Installing Azurite {version} with npm into {target} (first run only, ~30-60 s)..."
    staging = Path(tempfile.mkdtemp(prefix=f".azurite-{version}-", dir=target.parent))
    log_path = target.parent / f"azurite-{version}-install.log"
    cmd = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(staging), f"azurite@{version}"]
    try:
        if on_progress is not None:
            on_progress(message)
            code = _run_logged(cmd, log_path)
        elif quiet:
            code = _run_logged(cmd, log_path)
        else:
            from rich.console import Console

            with Console(stderr=True).status(message, spinner="dots"):
                code = _run_logged(cmd, log_path)
        if code != 0 or not _bin_in(staging).exists():
            last = _last_line(log_path)
            raise AzuriteNotFoundError(
                f"`npm install azurite@{version}` failed (exit {code}): {last} - full log: {log_path}"
            )
        try:
            staging.rename(target)
        except OSError:
            if not _bin_in(target).exists():  # someone else won the race only if they finished
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if on_progress is not None:
        on_progress(f"Azurite {version} installed")
    return _bin_in(target)


def _run_logged(cmd: list[str], log_path: Path) -> int:
    with open(log_path, "wb") as log:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT).returncode


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    errors = [ln for ln in lines if "ERR" in ln]
    return (errors or lines or ["no output"])[-1]


def connection_string(blob_port: int, queue_port: int, table_port: int, host: str = "127.0.0.1") -> str:
    """Connection string with explicit endpoints (any ports work, unlike ``UseDevelopmentStorage``)."""
    base = f"http://{host}"
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint={base}:{blob_port}/{ACCOUNT_NAME};"
        f"QueueEndpoint={base}:{queue_port}/{ACCOUNT_NAME};"
        f"TableEndpoint={base}:{table_port}/{ACCOUNT_NAME};"
    )


class Azurite(ManagedService):
    """A running Azurite (blob, queue, table) on free (or given) ports with its own data folder.
    Its data is kept on disk under ``data_dir``; ``stop()`` keeps the folder and the log, and is the
    one way the harness ends it: SIGTERM, then a wait of up to ``STOP_GRACE`` for its clean exit.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        log_path: Path | None = None,
        executable: Path | None = None,
        host: str = "127.0.0.1",
        blob_port: int | None = None,
        queue_port: int | None = None,
        table_port: int | None = None,
        version: str = AZURITE_VERSION,
        on_progress: Callable[[str], None] | None = None,
        flags: Sequence[str] = AZURITE_FLAGS,
    ) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix="azurite-"))
        self.log_path = Path(log_path) if log_path is not None else self.data_dir / "azurite.log"
        self.executable = executable
        self.host = host
        self._requested = {"blob": blob_port, "queue": queue_port, "table": table_port}
        self.ports: dict[str, int] = {}
        self.version = version
        self.on_progress = on_progress
        self.flags = tuple(flags)
        self._proc: ManagedProcess | None = None

    @classmethod
    def on_fixed_ports(cls, data_dir: Path, *, log_path: Path | None = None) -> Self:
        """An Azurite that keeps its ports across stop/start (outage tests stop and restart it)."""
        return cls(
            data_dir, log_path=log_path, blob_port=free_port(), queue_port=free_port(), table_port=free_port()
        )

    def __repr__(self) -> str:
        return f"<Azurite ports={self.ports} running={self.is_running()}>"

    @property
    def blob_port(self) -> int:
        return self.ports["blob"]

    @property
    def queue_port(self) -> int:
        return self.ports["queue"]

    @property
    def table_port(self) -> int:
        return self.ports["table"]

    @property
    def connection_string(self) -> str:
        """Connection string for ``AzureWebJobsStorage`` and the azure-storage SDKs."""
        if not self.ports:
            raise RuntimeError("Azurite has not been started")
        return connection_string(self.blob_port, self.queue_port, self.table_port, self.host)

    def endpoint(self, service: str) -> str:
        """``http://host:port/devstoreaccount1`` for ``blob``, ``queue`` or ``table``."""
        return f"http://{self.host}:{self.ports[service]}/{ACCOUNT_NAME}"

    def _pick_ports(self) -> dict[str, int]:
        ports: dict[str, int] = {}
        for service in SERVICES:
            wanted = self._requested[service]
            if wanted:
                ensure_port_free(wanted, self.host, what=f"Azurite {service}")
                ports[service] = wanted
            else:
                port = free_port(self.host)
                while port in ports.values():
                    port = free_port(self.host)
                ports[service] = port
        return ports

    def command(self, executable: Path) -> list[str]:
        args = [str(executable), "--location", str(self.data_dir), *self.flags]
        for service in SERVICES:
            args += [f"--{service}Host", self.host, f"--{service}Port", str(self.ports[service])]
        return args

    def start(self, timeout: float = 30.0) -> Self:
        """Start Azurite and wait until all three services answer HTTP."""
        if self.is_running():
            return self
        exe = self.executable or ensure_azurite(self.version, on_progress=self.on_progress)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        attempts = 1 if any(self._requested.values()) else 3
        for attempt in range(attempts):
            self.ports = self._pick_ports()
            self._proc = ManagedProcess(
                self.command(exe), log_path=self.log_path, name="azurite", cwd=self.data_dir, grace=STOP_GRACE
            )
            self._proc.start()
            try:
                self._proc.wait_ready(self.ready, timeout)
                return self
            except StartupError:
                # A free port can be grabbed by someone else before Azurite binds it: pick new ones.
                if attempt + 1 < attempts and "EADDRINUSE" in self._proc.log_tail(40):
                    continue
                raise
        return self

    def ready(self) -> bool:
        """All three services accept TCP and answer an HTTP request (any status: auth errors are fine)."""
        import httpx

        for service in SERVICES:
            port = self.ports[service]
            if not port_is_open(port, self.host):
                return False
            httpx.get(f"http://{self.host}:{port}/{ACCOUNT_NAME}?comp=list", timeout=2.0)
        return True
