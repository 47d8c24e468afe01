"""The fake model's script, seen from a test: the file the host's fake reads, replaced at will, and the
requests the fake recorded.

The host's fake model (`fakes`, chosen by `DURABLEAGENT_CHAT_SCRIPT`) re-reads its script file when the
file changes and appends each request it gets, with the step that answered it, to a record file
(`DURABLEAGENT_CHAT_RECORD`). A test therefore steers the model by writing the file and checks what
the model was asked by reading the record: no patching inside the host process, which may be `func`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["ChatScript", "load_script", "unused_message", "write_script"]


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

    def departures(self) -> list[str]:
        """The failures that are a replayed script departing from its recording (each with its diff)."""
        return [failure for failure in self.failures() if "ReplayMismatchError" in failure]


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


def load_script(path: Path) -> dict[str, Any]:
    """A script file's data, checked as the fake checks it (`fakes.ScriptError` names the problem)."""
    from fakes import load_script_data

    return load_script_data(path)


def unused_message(path: Path, data: Mapping[str, Any], used: set[int]) -> str | None:
    """What to say about the steps of the script (`data`, read from `path`) never used, or None when
    every step was (`require_all_used`)."""
    from fakes import parse_script
    from fakes.script import unused_steps_message

    script = parse_script(data, source=str(path))
    return unused_steps_message(script, [i for i in range(len(script.steps)) if i not in used])
