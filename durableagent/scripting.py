"""Swap agents' model clients for the scripted fake when a script file is configured.

This is how an unmodified `function_app.py` runs offline under the harness: the host is
started with `DURABLEAGENT_CHAT_SCRIPT` set, and no app code changes.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SCRIPT_ENV = "DURABLEAGENT_CHAT_SCRIPT"
RECORD_ENV = "DURABLEAGENT_CHAT_RECORD"
KEPT_REQUESTS = 5  # requests the swapped-in fake keeps in memory (all are in the record file)


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
    _client: Any = field(default=None, init=False)

    @classmethod
    def from_env(cls) -> ScriptSwap:
        raw = os.environ.get(SCRIPT_ENV, "").strip()
        if not raw:
            return cls(None, None)
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
        if self.script is None:
            return
        if not hasattr(agent, "client"):
            logger.warning(
                "agent %s has no 'client' attribute; it keeps its own model", getattr(agent, "name", agent)
            )
            return
        agent.client = self._fake()  # type: ignore[attr-defined]
        logger.warning("agent %s now uses the scripted fake model", getattr(agent, "name", agent))
