"""Swap agents' model clients for the scripted fake, or wrap them in a recorder, from the environment.

This is how an unmodified `function_app.py` runs offline under the harness: the host is
started with `DURABLEAGENT_CHAT_SCRIPT` set, and no app code changes. With
`DURABLEAGENT_CHAT_RECORD_SCRIPT` set instead, every agent keeps its real client, wrapped in
`fakes.RecordingChatClient`, which writes each model exchange to that file as a script that
`DURABLEAGENT_CHAT_SCRIPT` replays (the file is replaced whole on each step, so it is always valid).

Only in local development: a variable that swaps every agent's model must never take effect in a
deployed app by accident (a stray app setting would answer every user from a script). So both are
honoured only when `AZURE_FUNCTIONS_ENVIRONMENT=Development` (which `func start` sets) or when the
harness's local host runs the app (it sets `DURABLEAGENT_LOCAL_HOST=1`); anywhere else the app
refuses to load, naming the variable. When honoured, a warning says so.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCRIPT_ENV = "DURABLEAGENT_CHAT_SCRIPT"
RECORD_ENV = "DURABLEAGENT_CHAT_RECORD"
RECORD_SCRIPT_ENV = "DURABLEAGENT_CHAT_RECORD_SCRIPT"
ENVIRONMENT_ENV = "AZURE_FUNCTIONS_ENVIRONMENT"
LOCAL_HOST_ENV = "DURABLEAGENT_LOCAL_HOST"
KEPT_REQUESTS = 5  # requests the swapped-in fake keeps in memory (all are in the record file)


class ModelSwapRefused(RuntimeError):
    """A model-swap variable is set outside local development (see the module docstring)."""


def local_development(environ: Mapping[str, str] | None = None) -> str | None:
    """Why this process counts as local development (for the warning), or None when it does not."""
    env = os.environ if environ is None else environ
    if env.get(ENVIRONMENT_ENV, "").strip().lower() == "development":
        return f"{ENVIRONMENT_ENV}=Development"
    if env.get(LOCAL_HOST_ENV, "").strip() == "1":
        return f"the local host runs the app ({LOCAL_HOST_ENV}=1)"
    return None


def _honoured(name: str, what: str) -> None:
    """Refuse `name` outside local development, warn when it is honoured."""
    why = local_development()
    if why is None:
        found = os.environ.get(ENVIRONMENT_ENV)
        where = f"{ENVIRONMENT_ENV}={found!r}" if found else f"{ENVIRONMENT_ENV} is not set"
        raise ModelSwapRefused(
            f"{name} is set, which would {what}; it is honoured only in local development "
            f"({ENVIRONMENT_ENV}=Development, as `func start` sets, or the harness's local host), and "
            f"here {where}. Remove {name} from this app's settings."
        )
    logger.warning("%s is set and honoured (%s): it will %s", name, why, what)


def default_record_path(script: Path) -> Path:
    """Where requests go when no `DURABLEAGENT_CHAT_RECORD` is set: the temp folder, one file per process.

    Not beside the script: that may be an installed package's data folder (or a checkout, where
    the record showed up as an untracked file), and two hosts on one script would mix their records.
    The harness always sets the variable to a file in its run's workspace.
    """
    return (
        Path(tempfile.gettempdir()) / "durableagent-records" / f"{script.name}.{os.getpid()}.requests.jsonl"
    )


@dataclass
class ScriptSwap:
    script: Path | None
    record: Path | None
    record_script: Path | None = None
    _client: Any = field(default=None, init=False)

    @classmethod
    def from_env(cls) -> ScriptSwap:
        raw = os.environ.get(SCRIPT_ENV, "").strip()
        recording = os.environ.get(RECORD_SCRIPT_ENV, "").strip()
        if raw and recording:
            raise ValueError(
                f"{SCRIPT_ENV} (replay a script) and {RECORD_SCRIPT_ENV} (record the real model) "
                "exclude each other; set one"
            )
        if recording:
            _honoured(RECORD_SCRIPT_ENV, "record every model exchange of every agent to a file")
            return cls(None, None, Path(recording).expanduser().resolve())
        if not raw:
            return cls(None, None)
        _honoured(SCRIPT_ENV, "answer every agent from a scripted fake model instead of its own")
        script = Path(raw).expanduser().resolve()
        if not script.is_file():
            raise FileNotFoundError(f"{SCRIPT_ENV} names {script}, which is not a file")
        record = os.environ.get(RECORD_ENV, "").strip()
        return cls(script, Path(record) if record else default_record_path(script))

    def _fake(self) -> Any:
        if self._client is None:
            from fakes import ScriptedChatClient  # only needed when a script is configured

            # Requests are read back from the record file; memory keeps only the latest few,
            # since each one carries the whole conversation.
            self._client = ScriptedChatClient.from_file(
                self.script, record_path=self.record, keep_requests=KEPT_REQUESTS
            )
            logger.warning(
                "\n%s\n DURABLEAGENT_CHAT_SCRIPT is set: every agent answers from the SCRIPTED FAKE model\n"
                " script: %s\n requests recorded to: %s\n%s",
                "=" * 72,
                self.script,
                self.record,
                "=" * 72,
            )
        return self._client

    def apply(self, agent: object) -> None:
        if self.record_script is not None:
            self._wrap_in_recorder(agent)
            return
        if self.script is None:
            return
        if not hasattr(agent, "client"):
            logger.warning(
                "agent %s has no 'client' attribute; it keeps its own model", getattr(agent, "name", agent)
            )
            return
        agent.client = self._fake()  # type: ignore[attr-defined]
        logger.warning("agent %s now uses the scripted fake model", getattr(agent, "name", agent))

    def _wrap_in_recorder(self, agent: object) -> None:
        from fakes import RecordingChatClient  # only needed when recording

        name = getattr(agent, "name", agent)
        client = getattr(agent, "client", None)
        if client is None:
            logger.warning("agent %s has no 'client' attribute; its model calls are not recorded", name)
            return
        assert self.record_script is not None
        try:
            agent.client = RecordingChatClient(client, self.record_script)  # type: ignore[attr-defined]
        except TypeError as exc:
            logger.warning("agent %s is NOT recorded: %s", name, exc)
            return
        logger.warning("agent %s: every model exchange is recorded to %s", name, self.record_script)
