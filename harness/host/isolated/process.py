"""The app's own interpreter as a child process of the host, and calls into it.

`AppProcess` starts `bridge.py` (by path) with the app's Python, reads the description of the app's
functions it answers with, and then sends calls and matches their answers by id (many in flight at
once: activities fan out, HTTP requests overlap). The child keeps nothing durable, so when it exits
(the app called `os._exit`, it was killed, it crashed) the calls it had are failed with
`AppProcessExited` and the next call starts a new child: the host's callers decide what a lost call
means (an episode or an entity batch runs again from storage; an activity is run again, at least
once, as on Azure after a worker recycle).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AppLoadError

log = logging.getLogger(__name__)

BRIDGE = Path(__file__).with_name("bridge.py")
START_TIMEOUT = 120.0  # seconds the app's import may take (agent-framework imports are slow)
LINE_LIMIT = 256 * 1024 * 1024  # bytes one answer may have (a long history's protobuf, base64)


class AppProcessExited(Exception):
    """The app's process ended while a call was in flight (the call's effect is unknown)."""


@dataclass
class AppFunctionError(Exception):
    """The app's function raised: its exception's type, message and formatted stack."""

    type: str
    message: str
    stack: str

    def __str__(self) -> str:
        return f"{self.type}: {self.message}"

    def as_raised(self) -> Exception:
        """The failure as the host reports an in-process function's: an exception named as the app's
        was (`ValueError: ...`, not `AppFunctionError: ValueError: ...`), the app's stack as a note."""
        named = type(self.type if self.type.isidentifier() else "AppError", (Exception,), {})
        raised = named(self.message)
        if self.stack:
            raised.add_note(f"in the app's process:\n{self.stack.rstrip()}")
        return raised


class AppProcess:
    """One child interpreter running the app (see the module docstring)."""

    def __init__(self, python: str, app_dir: Path, env: dict[str, str] | None = None) -> None:
        """`env`: settings for the child beside the host's own environment (which it inherits)."""
        self.python = python
        self.app_dir = app_dir
        self.description: dict[str, Any] = {}
        self.env: dict[str, str] = dict(env or {})  # given to every child at its start (`set_env`)
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock = asyncio.Lock()
        self._closing = False
        self.starts = 0  # children started (1 unless one exited)

    @property
    def pid(self) -> int | None:
        """The running child's pid (tests kill it), None when none runs."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def start(self) -> dict[str, Any]:
        """Start the child and return the app's description; AppLoadError when the app cannot load."""
        await self._ensure()
        return self.description

    async def _ensure(self) -> asyncio.subprocess.Process:
        async with self._starting:
            if self._proc is not None and self._proc.returncode is None and self._reader is not None:
                if not self._reader.done():
                    return self._proc
            if self._closing:
                raise AppProcessExited("the host is stopping")
            return await self._spawn()

    async def _spawn(self) -> asyncio.subprocess.Process:
        try:
            proc = await asyncio.create_subprocess_exec(
                self.python,
                str(BRIDGE),
                str(self.app_dir),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=self.app_dir,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                limit=LINE_LIMIT,
            )
        except OSError as exc:
            raise AppLoadError(f"cannot run the app's Python {self.python}: {exc}") from exc
        try:
            first = await asyncio.wait_for(_first_message(proc), START_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise AppLoadError(
                f"the app did not load within {START_TIMEOUT:.0f} s in {self.python}"
            ) from None
        if first is None or "ready" not in first:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()  # a `fatal` bridge exits by itself; anything else must not be waited for
            await proc.wait()
            reason = (first or {}).get("fatal") or f"the app's Python exited with code {proc.returncode}"
            raise AppLoadError(f"{reason} (Python: {self.python})")
        description = first["ready"]
        if self.description and _names(description) != _names(self.description):
            log.warning("the app's functions changed since the host started; restart the host to serve them")
        self.description = self.description or description
        self._proc = proc
        self.starts += 1
        self._reader = asyncio.get_running_loop().create_task(self._read(proc), name="app process")
        return proc

    def set_env(self, values: dict[str, str]) -> None:
        """Settings the app sees from now on: sent to the running child, given to every later one at
        its start (e.g. the host's URL, known only once the app is loaded)."""
        self.env.update(values)
        if self._proc is not None and self._proc.returncode is None:
            self._write(self._proc, {"env": values})

    async def call(self, function: str, args: dict[str, Any]) -> Any:
        """Call `function` with `args` (see bridge.py); its result, AppFunctionError, AppProcessExited."""
        proc = await self._ensure()
        self._next_id += 1
        call_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        try:
            self._write(proc, {"id": call_id, "call": function, "args": args})
            return await future
        finally:
            self._pending.pop(call_id, None)

    def _write(self, proc: asyncio.subprocess.Process, message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        if proc.stdin.is_closing():
            raise AppProcessExited("the app's process has exited")
        proc.stdin.write((json.dumps(message) + "\n").encode())

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        try:
            while line := await proc.stdout.readline():
                message = _parse(line)
                if message is None:
                    continue
                future = self._pending.get(message.get("id", -1))
                if future is None or future.done():
                    continue
                if "error" in message:
                    error = message["error"]
                    future.set_exception(
                        AppFunctionError(
                            str(error.get("type")), str(error.get("message")), error.get("stack", "")
                        )
                    )
                else:
                    future.set_result(message.get("result"))
        except (ValueError, asyncio.LimitOverrunError) as exc:
            log.error("the app's process sent an answer the host cannot read (%s); restarting it", exc)
            proc.kill()
        except asyncio.CancelledError:
            # The host's loop is ending without `stop` (a stop that outran its grace): the child waits
            # for its stdin to close, so it is killed, or both would wait for each other forever.
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise
        finally:
            code = await proc.wait()
            if not self._closing:
                log.warning("the app's process exited (code %s); it is started again on the next call", code)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(AppProcessExited(f"the app's process exited with code {code}"))

    async def stop(self) -> None:
        """End the child (stdin closed; killed if it does not exit within 5 s)."""
        self._closing = True
        proc = self._proc
        if proc is not None and proc.returncode is None:
            assert proc.stdin is not None
            proc.stdin.close()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader


async def _first_message(proc: asyncio.subprocess.Process) -> dict[str, Any] | None:
    """The bridge's first message (None when the process ends without one). Lines before it that are
    not the bridge's are logged and skipped: a wrapper (an env activation, a shim) may print to stdout
    before it runs the app's Python."""
    assert proc.stdout is not None
    while line := await proc.stdout.readline():
        message = _parse(line)
        if message is not None and ("ready" in message or "fatal" in message):
            return message
        log.warning(
            "the app's Python printed before the bridge started: %s", line.decode(errors="replace").rstrip()
        )
    return None


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _names(description: dict[str, Any]) -> list[str]:
    return sorted(f["name"] for f in description.get("functions", []))
