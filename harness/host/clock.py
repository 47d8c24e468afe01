"""The host's one clock: what time it is for everything durable, and waiting for a time.

Durable timers and retry timers (the scheduler), timer triggers (NCRONTAB and TimeSpan schedules),
history timestamps and an episode's `current_utc_datetime`, instance and entity times
(`createdTime`, `lastUpdatedTime`, `lastOperationTime`, which the session TTL sweep compares) all
read `Clock.now()`, and everything that waits for a moment goes through `sleep_until` or `call_at`.
`server.py` makes one and passes it down; the default is the wall clock.

Not on the clock: I/O timeouts and back-off of storage calls, the hub lease (15 s between real
processes), functionTimeout, polling intervals and log durations, which are about real time.

`VirtualClock` skips ahead (virtual time, `docs/virtual-time.md`): `now()` returns its own time,
which stands still between moves, and `call_at` / `sleep_until` keep their sleepers and wake them as
it advances: in `manual` mode only when told (`advance_to`), in `auto` mode also by itself, to the
next durable timer, whenever the host is idle. Alarms armed `recurring` (timer-trigger schedules)
fire on the way but never pull the clock forward by themselves, and one that several occurrences
of came due during one step fires once (as Azure fires a schedule missed while a host was down).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, cast

log = logging.getLogger(__name__)

VirtualMode = Literal["auto", "manual"]
TimeMode = Literal["real", "auto", "manual"]
TIME_MODES: tuple[str, ...] = ("real", "auto", "manual")
VIRTUAL_TIME_ENV = "DURABLEAGENT_VIRTUAL_TIME"
"""How a host process learns its time mode (`--virtual-time` sets it for the host it starts)."""
AUTO_POLL = 0.002  # real seconds between looks at whether the host is idle, while a timer is due
AUTO_POLL_IDLE = 0.02  # the same while no durable timer is armed (nothing to jump to)
SAVE_RETRY = 1.0  # real seconds before an auto clock tries again a move whose save failed
QUIET_LOOKS = 2  # consecutive idle looks before the clock moves (a hand-off between tasks is no idle)


class Alarm(Protocol):
    """A pending `call_at`; `cancel()` drops it (nothing happens if it already ran)."""

    def cancel(self) -> None: ...


class Clock:
    """The wall clock (UTC); the base of any other."""

    def now(self) -> datetime:
        """What time it is (timezone-aware, UTC)."""
        return datetime.now(UTC)

    mode: TimeMode = "real"

    def call_at(
        self, when: datetime, callback: Callable[..., Any], *args: Any, recurring: bool = False
    ) -> Alarm:
        """Run `callback(*args)` on the running loop once it is `when` (at once when past).
        `recurring`: a schedule's next occurrence (a virtual clock never jumps to one by itself)."""
        return asyncio.get_running_loop().call_later(self._delay(when), callback, *args)

    async def sleep_until(self, when: datetime) -> None:
        """Return once it is `when` (at once when past)."""
        await asyncio.sleep(self._delay(when))

    def _delay(self, when: datetime) -> float:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - self.now()).total_seconds())


def aware(when: datetime) -> datetime:
    """`when` in UTC (a naive time is taken as UTC, as the SDK writes them)."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class ClockError(ValueError):
    """A move of the clock that cannot be made (backwards, a bad duration or time); the message
    names the problem, and the admin route answers it as a 400."""


_DURATION = re.compile(
    r"^P(?:(?P<weeks>\d+(?:\.\d+)?)W)?(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: str) -> timedelta:
    """An ISO-8601 duration (`PT72H`, `P8D`, `P1DT30M`, `PT0.5S`, `P2W`); years and months are
    refused (their length depends on the date). ClockError naming the text otherwise."""
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None or text.strip().upper() in {"P", "PT"} or text.strip().upper().endswith("T"):
        raise ClockError(
            f"invalid ISO-8601 duration {text!r}: expected e.g. PT72H, P8D or P1DT30M "
            "(weeks, days, hours, minutes, seconds; no years or months)"
        )
    parts = {name: float(value) for name, value in match.groupdict().items() if value is not None}
    try:
        return timedelta(**parts)
    except OverflowError:
        raise ClockError(f"duration {text!r} is too long") from None


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with an offset or `Z` (`2030-01-01T00:00:00Z`); one without is UTC."""
    if not isinstance(text, str) or not text.strip():
        raise ClockError(f"invalid time {text!r}: expected ISO-8601 such as 2030-01-01T00:00:00Z")
    try:
        return aware(datetime.fromisoformat(text.strip().replace("z", "Z")))
    except ValueError:
        raise ClockError(f"invalid time {text!r}: expected ISO-8601 such as 2030-01-01T00:00:00Z") from None


def iso(when: datetime) -> str:
    """The clock's times as the admin API and the CLI show them: UTC with `Z`."""
    return aware(when).isoformat().replace("+00:00", "Z")


class _VirtualAlarm:
    """One sleeper of a virtual clock; ordered by due time, then by arming order."""

    __slots__ = ("args", "callback", "cancelled", "fired", "recurring", "seq", "when")

    def __init__(
        self, when: datetime, seq: int, callback: Callable[..., Any], args: tuple[Any, ...], recurring: bool
    ) -> None:
        self.when, self.seq, self.callback, self.args, self.recurring = when, seq, callback, args, recurring
        self.cancelled = self.fired = False

    def __lt__(self, other: _VirtualAlarm) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        if self.cancelled or self.fired:
            return
        self.fired = True
        try:
            self.callback(*self.args)
        except Exception:
            log.exception("virtual-time alarm failed")


class VirtualClock(Clock):
    """Time that stands still until moved; monotonic; saved with the hub before each move.

    The host wires `busy` (work queued or running: workers, activities, timer callbacks),
    `requests_busy` (HTTP requests in flight, which only auto mode waits for) and `save` (writes
    the new now to the hub before anything sees it, so a restart, even after SIGKILL, resumes from
    it). `advance_to` steps through the durable timers due up to the target in order: the clock
    stops at each, fires what is due, and waits for the host to be idle before the next step.
    """

    def __init__(self, mode: VirtualMode, start: datetime | None = None) -> None:
        if mode not in ("auto", "manual"):
            raise ValueError(f"virtual time mode must be auto or manual, not {mode!r}")
        self.mode = mode
        # A new hub starts at the wall clock's second (whole seconds read better in `clock` and logs).
        self._now = aware(start) if start is not None else datetime.now(UTC).replace(microsecond=0)
        self._alarms: list[_VirtualAlarm] = []
        self._seq = itertools.count()
        self.busy: Callable[[], bool] = lambda: False
        self.requests_busy: Callable[[], bool] = lambda: False
        self.save: Callable[[datetime], Awaitable[None]] | None = None
        self._moving: asyncio.Lock | None = None
        self._auto: asyncio.Task[None] | None = None
        self.jumps = 0  # moves made (tests and the bench)

    def now(self) -> datetime:
        return self._now

    def set_now(self, when: datetime) -> None:
        """Where the hub's stored clock stood (at start-up, before anything is armed)."""
        self._now = aware(when)

    def call_at(
        self, when: datetime, callback: Callable[..., Any], *args: Any, recurring: bool = False
    ) -> Alarm:
        alarm = _VirtualAlarm(aware(when), next(self._seq), callback, args, recurring)
        if alarm.when <= self._now:
            asyncio.get_running_loop().call_soon(alarm.fire)
        else:
            heapq.heappush(self._alarms, alarm)
        return alarm

    async def sleep_until(self, when: datetime) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        alarm = self.call_at(when, lambda: future.done() or future.set_result(None))
        try:
            await future
        finally:
            alarm.cancel()

    def _pending(self) -> list[_VirtualAlarm]:
        while self._alarms and (self._alarms[0].cancelled or self._alarms[0].fired):
            heapq.heappop(self._alarms)
        return self._alarms

    def next_due(self, durable_only: bool = False) -> datetime | None:
        """When the next alarm is due (`durable_only`: not counting timer-trigger schedules)."""
        pending = self._pending()
        if not durable_only:
            return pending[0].when if pending else None
        due = [a.when for a in pending if not a.recurring and not a.cancelled and not a.fired]
        return min(due) if due else None

    async def advance(self, by: timedelta) -> datetime:
        """Move forward by `by` (see `advance_to`)."""
        if by < timedelta(0):
            raise ClockError(f"cannot move the clock backwards (by {by})")
        return await self.advance_to(self._now + by)

    async def advance_to(self, target: datetime) -> datetime:
        """Move to `target`, stopping at each durable timer due on the way, firing what is due at
        each stop and waiting for the host to be idle before the next; returns the new now.
        ClockError when `target` is before now (the clock is monotonic)."""
        target = aware(target)
        if target < self._now:
            raise ClockError(
                f"cannot move the clock backwards: it is {iso(self._now)}, asked for {iso(target)}"
            )
        if self._moving is None:
            self._moving = asyncio.Lock()
        async with self._moving:
            while True:
                due = self.next_due(durable_only=True)
                step = due if due is not None and self._now < due <= target else target
                await self._move(step)
                await self._settle()
                if step >= target:
                    return self._now

    async def _move(self, when: datetime) -> None:
        if when > self._now:
            if self.save is not None:
                await self.save(when)  # first: what fires must never be ahead of the stored now
            self._now = when
            self.jumps += 1
        while (pending := self._pending()) and pending[0].when <= self._now:
            heapq.heappop(pending).fire()

    async def _settle(self) -> None:
        """Return once the host has been idle for `QUIET_LOOKS` looks in a row (requests aside:
        a move asked for over HTTP is itself one)."""
        quiet = 0
        while quiet < QUIET_LOOKS:
            await asyncio.sleep(AUTO_POLL)
            quiet = 0 if self.busy() else quiet + 1

    def start(self) -> None:
        """In auto mode, begin jumping to the next durable timer whenever the host is idle."""
        if self.mode == "auto" and self._auto is None:
            self._auto = asyncio.get_running_loop().create_task(self._run_auto(), name="virtual clock")

    async def stop(self) -> None:
        """Stop the auto mode's task (the stored now stays)."""
        if self._auto is not None:
            self._auto.cancel()
            await asyncio.gather(self._auto, return_exceptions=True)
            self._auto = None

    async def _run_auto(self) -> None:
        quiet = 0
        while True:
            due = self.next_due(durable_only=True)
            await asyncio.sleep(AUTO_POLL if due is not None else AUTO_POLL_IDLE)
            moving = self._moving is not None and self._moving.locked()
            if due is None or moving or self.busy() or self.requests_busy():
                quiet = 0
                continue
            quiet += 1
            if quiet < QUIET_LOOKS or due <= self._now:
                continue
            quiet = 0
            try:
                await self.advance_to(due)
            except Exception:  # storage refused the save: the clock stays; tried again in a while
                log.warning("virtual clock: could not move to %s; retrying", iso(due), exc_info=True)
                await asyncio.sleep(SAVE_RETRY)


def clock_for(mode: str | None) -> Clock:
    """The clock of a time mode (`real`, `auto`, `manual`; None or empty: real); ValueError naming
    the modes for any other text."""
    mode = (mode or "real").strip().lower()
    if mode not in TIME_MODES:
        raise ValueError(f"virtual time mode must be one of {', '.join(TIME_MODES)}, not {mode!r}")
    return Clock() if mode == "real" else VirtualClock(cast(VirtualMode, mode))
