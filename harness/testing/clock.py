"""`ClockControl`: a test's handle on the host's clock (`docs/virtual-time.md`).

On a host started with virtual time, `advance("PT72H")` / `to(...)` move the clock and return once
what came due on the way has run, and `sleep(duration)` is the same move (in the spirit of Temporal's
`WorkflowEnvironment.sleep`). On real time `sleep` really waits and a move is refused with the host's
message. Durations are ISO-8601 texts or `timedelta`s; times ISO-8601 texts or aware `datetime`s.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.client import SyncAgentClient

__all__ = ["ClockControl", "iso_duration"]


def iso_duration(duration: str | timedelta | float) -> str:
    """An ISO-8601 duration text (`timedelta(hours=72)` -> `PT259200S`; seconds as a number too)."""
    if isinstance(duration, str):
        return duration
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else float(duration)
    if seconds < 0:
        raise ValueError(f"cannot move the clock backwards (by {seconds:g} s)")
    return f"PT{seconds:.6f}".rstrip("0").rstrip(".") + "S"


def _parse(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


class ClockControl:
    """The clock of the host `client` talks to (`GET`/`POST /admin/clock`)."""

    def __init__(self, client: SyncAgentClient) -> None:
        self.client = client

    def state(self) -> dict[str, Any]:
        """`{"now", "mode", "next_due"}` as the host answers."""
        return self.client.clock()

    @property
    def mode(self) -> str:
        """`real`, `auto` or `manual`."""
        return str(self.state()["mode"])

    def now(self) -> datetime:
        """The host's now (aware UTC)."""
        return _parse(self.state()["now"])

    def advance(self, duration: str | timedelta | float) -> datetime:
        """Move a virtual clock ahead (firing what comes due on the way); returns the new now."""
        return _parse(self.client.move_clock(advance=iso_duration(duration))["now"])

    def to(self, when: str | datetime) -> datetime:
        """Move a virtual clock to `when` (never backwards); returns the new now."""
        text = when if isinstance(when, str) else when.astimezone(UTC).isoformat()
        return _parse(self.client.move_clock(to=text)["now"])

    def sleep(self, duration: str | timedelta | float) -> None:
        """Let `duration` pass: a move of a virtual clock, a real wait on real time."""
        if self.mode == "real":
            if isinstance(duration, str):
                from harness.host.clock import parse_duration

                duration = parse_duration(duration)
            time.sleep(duration.total_seconds() if isinstance(duration, timedelta) else float(duration))
            return
        self.advance(duration)
