"""Functions hosts for tests: one per (app folder, mode, environment), started on first use and kept.

A test suite asks for "the host of this app" many times; starting one per test would cost seconds
each. The pool starts each distinct host once, on one storage account and one fake-model script (so
every host's model is steered by the same `ChatScript`), and stops them all at the end. A host that
failed to start fails again at once for the next test instead of making it wait for the same broken
start-up.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.stack import FunctionHost, HostMode

__all__ = ["HostPool"]


class HostPool:
    """The hosts of one test run on storage `storage`; the fake model reads `script` and records to
    `record`; each host logs to `log_dir/NAME.log`.

    Subclasses hook into a host's life (the pytest plugin registers it with pytest-xprocess and shows
    its log in failing reports) through `log_path`, `starting`, `started` and `stopping`.
    """

    def __init__(self, storage: str, script: Path, record: Path, log_dir: Path) -> None:
        self.storage = storage
        self.script = script
        self.record = record
        self.log_dir = log_dir
        self.hosts: dict[tuple[Any, ...], tuple[FunctionHost, str]] = {}
        self.failures: dict[tuple[Any, ...], BaseException] = {}

    def get(
        self,
        app_dir: Path,
        mode: HostMode = "auto",
        env: Mapping[str, str] | None = None,
        virtual_time: str | None = None,
        python: str | None = None,
    ) -> FunctionHost:
        """The running host of `app_dir` (started now if it is the first ask). `virtual_time` (`auto`,
        `manual`) makes a host of its own, on the local host, with a task hub of its own (a hub keeps
        one kind of time, and the real-time host of the same app holds the app's hub). `python`: the
        app's own interpreter (Durable Functions 2.x apps)."""
        env = dict(env or {})
        key = (Path(app_dir).resolve(), mode, tuple(sorted(env.items())), virtual_time, python)
        if key in self.hosts:
            return self.hosts[key][0]
        if key in self.failures:  # fail fast instead of waiting for the same broken start-up again
            raise self.failures[key]
        name = f"durableagent-host-{key[0].name}" + (f"-{virtual_time}-time" if virtual_time else "")
        if name in {taken for _, taken in self.hosts.values()}:
            name = f"{name}-{len(self.hosts) + 1}"
        host = FunctionHost(
            key[0],
            storage=self.storage,
            mode=mode,
            chat_script=self.script,
            chat_record=self.record,
            env=env,
            log_path=self.log_path(name),
            virtual_time=virtual_time,
            python=python,
            task_hub=f"VirtualTime{virtual_time.title()}{len(self.hosts)}" if virtual_time else None,
        )
        self.starting(name, host)
        try:
            host.start()
        except BaseException as exc:
            self.failures[key] = exc
            raise
        self.started(name, host)
        self.hosts[key] = (host, name)
        return host

    def close(self) -> None:
        """Stop every host (each is told first, through `stopping`)."""
        for host, name in self.hosts.values():
            self.stopping(name, host)
            host.stop()
        self.hosts.clear()

    def log_path(self, name: str) -> Path:
        """Where the host called `name` logs."""
        return self.log_dir / f"{name}.log"

    def starting(self, name: str, host: FunctionHost) -> None:
        """Called before a host starts."""

    def started(self, name: str, host: FunctionHost) -> None:
        """Called once a host answers."""

    def stopping(self, name: str, host: FunctionHost) -> None:
        """Called before a host stops."""
