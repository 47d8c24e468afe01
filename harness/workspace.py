"""Where `chat`, `up` and `ask` keep a local stack's state between runs: the app's workspace.

A workspace folder (by default `.durableagent/` in the app folder) holds:
- `azurite/`: Azurite's data (its `--location`): sessions, orchestration instances, the task hub;
- `logs/`: `host.log`, `azurite.log` and the fake model's request record `chat-requests.jsonl`;
- `.gitignore`: `*`, so none of it is ever committed;
- `lock`: locked (an advisory `flock`) by the one stack using the workspace, and naming it (pid and
  URL), which is how `sessions`, `show`, `instances`... find the app's running stack (`running_url`).

Two stacks on one Azurite data folder would each run their own Azurite over the same files and
corrupt them, so a second stack on a locked workspace is refused with a message naming the first.
The kernel drops a `flock` when its process dies, however it dies, so a crashed or killed stack never
leaves the workspace locked; the file's text only names the holder for that message. Azurite saves
its data on a clean stop, which every way out of the harness (Ctrl-C, SIGTERM, an error) takes.

Where the app folder cannot be written (a sample inside an installed package), the workspace goes to
a per-user folder, `$XDG_DATA_HOME/durableagent/workspaces/NAME-HASH` (default `~/.local/share`),
named by the app folder's path so each app keeps its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from urllib.parse import urlsplit

from harness.processes import StartupError, pid_alive, port_is_open

__all__ = [
    "WORKSPACE_DIR",
    "Workspace",
    "WorkspaceBusy",
    "app_workspace",
    "foreign_entries",
    "running_storage",
    "running_url",
    "user_data_dir",
]

WORKSPACE_DIR = ".durableagent"
ENTRIES = ("azurite", "logs", ".gitignore", "lock")
"""What a workspace folder holds; anything else means the folder is someone else's."""
GITIGNORE = "# Local state of durableagent's harness (Azurite data, logs): never committed.\n*\n"


class WorkspaceBusy(StartupError):
    """Another stack holds the workspace's lock."""

    def __init__(self, message: str, url: str | None) -> None:
        super().__init__(message)
        self.url = url


class Workspace:
    """A folder that keeps one app's Azurite data and logs across runs; one stack at a time uses it.

    ``where`` says, for the start-up banner, why the workspace is where it is.
    """

    def __init__(self, root: Path, where: str = "") -> None:
        self.root = Path(root).resolve()
        self.where = where
        self._fd: int | None = None

    def __repr__(self) -> str:
        return f"<Workspace {self.root} locked={self.locked}>"

    @property
    def azurite_dir(self) -> Path:
        return self.root / "azurite"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def locked(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def prepare(self) -> None:
        """Create the folder and its `.gitignore` (first use); OSError when it cannot be written."""
        self.root.mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.is_file():
            ignore.write_text(GITIGNORE)

    def acquire(self) -> None:
        """Create the folder if needed and take its lock; `WorkspaceBusy` when another stack has it."""
        if self._fd is not None:
            return
        try:
            self.prepare()
            fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StartupError(f"cannot use {self.root} as the workspace: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            url = holder.get("url") if isinstance(holder.get("url"), str) else None
            who = f"pid {holder.get('pid', '?')}" + (f" at {url}" if url else "")
            hint = f"; talk to it with --url {url}" if url else ""
            raise WorkspaceBusy(
                f"workspace {self.root} is in use by another stack ({who}): stop it, or give this one "
                f"another place with --data DIR or a throw-away one with --fresh{hint}",
                url,
            ) from None
        self._fd = fd
        self.describe(None)

    def describe(self, url: str | None, storage: str | None = None) -> None:
        """Name this process (and, once known, its URL and Azurite's connection string) in the lock
        file, for a refused second stack and for the commands that read the stack's task hub
        (`export`, `import`: `running_storage`)."""
        if self._fd is None:
            return
        text = json.dumps({"pid": os.getpid(), "url": url, "storage": storage}).encode()
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, text, 0)

    def release(self) -> None:
        """Give the lock up (safe to call twice); the folder and its data stay."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def _read_holder(fd: int) -> dict[str, object]:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def foreign_entries(folder: Path) -> list[str]:
    """Names in `folder` that no workspace makes: a folder holding any is not to be made one (its
    `.gitignore` of `*` would hide the user's own files from git)."""
    return sorted(entry.name for entry in Path(folder).iterdir() if entry.name not in ENTRIES)


def user_data_dir() -> Path:
    """durableagent's per-user data folder: ``$XDG_DATA_HOME/durableagent`` or ``~/.local/share/...``."""
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "durableagent"


def _per_user_root(app_dir: Path) -> Path:
    digest = hashlib.sha256(str(app_dir).encode()).hexdigest()[:10]
    return user_data_dir() / "workspaces" / f"{app_dir.name}-{digest}"


def app_workspace(app_dir: Path) -> Workspace:
    """The app folder's `.durableagent/` (created now), else a per-user folder for that app."""
    app_dir = Path(app_dir).resolve()
    workspace = Workspace(app_dir / WORKSPACE_DIR, "in the app folder")
    try:
        workspace.prepare()
        return workspace
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        return Workspace(_per_user_root(app_dir), f"per-user: the app folder cannot be written ({why})")


def running_storage(app_dir: Path) -> str | None:
    """The storage connection string of the stack running on the app's workspace (its Azurite), None
    when none runs (or it is older than this and did not name its storage)."""
    holder = _running_holder(Path(app_dir).resolve())
    storage = holder.get("storage") if holder else None
    return storage if isinstance(storage, str) else None


def running_url(app_dir: Path) -> str | None:
    """The URL of the stack running on the app's workspace, None when there is none (nothing is made).

    A running stack names itself (pid and URL) in its workspace's lock file and empties it when it
    stops; a stack that died without stopping leaves its text behind, so the pid must be alive and
    the URL's port open. `sessions`, `show`, `instances`... find the app's stack this way, whatever
    port it got, before falling back to 7071.
    """
    holder = _running_holder(Path(app_dir).resolve())
    return str(holder["url"]) if holder else None


def _running_holder(app_dir: Path) -> dict[str, object] | None:
    """What the live stack on the app's workspace wrote in its lock file (its pid alive, its URL's
    port open), None when no stack runs there."""
    for root in (app_dir / WORKSPACE_DIR, _per_user_root(app_dir)):
        try:
            holder = json.loads((root / "lock").read_bytes() or b"{}")
        except (OSError, ValueError):
            continue
        if not isinstance(holder, dict):
            continue
        pid, url = holder.get("pid"), holder.get("url")
        if isinstance(pid, int) and isinstance(url, str) and pid_alive(pid) and _answers(url):
            return holder
    return None


def _answers(url: str) -> bool:
    """Whether something listens at the URL's host and port (a dead stack's port is closed)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return False
    return parts.hostname is not None and port is not None and port_is_open(port, parts.hostname)
