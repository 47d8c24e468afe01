"""Timer triggers: the app's `@app.timer_trigger` functions, run on their schedules by the local host.

Schedules are what Azure accepts: NCRONTAB with six fields (`{second} {minute} {hour} {day}
{month} {day-of-week}`, read by croniter, which wants the seconds last), or a TimeSpan `hh:mm:ss`
for a fixed interval; `%Setting%` is replaced by the app setting, as on Azure. A schedule that is
neither stops the host at start with a one-line error naming the function.

Unlike Azure, nothing about timers is stored: a host that was down does not run the firings it
missed (Azure's `past_due` catch-up needs its schedule monitor), and only one host runs a hub (the
lease), so a firing is never run twice. `run_on_startup` fires once when the host starts. A firing
that runs longer than functionTimeout is abandoned and logged as failed (its sync code runs on in
its thread); the next firing comes on schedule.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from azure.functions.timer import TimerRequest
from croniter import croniter

from ..errors import AppLoadError
from ..loader import TriggeredFunction
from ..settings import expand_setting
from ..workers import FunctionTimeoutError
from .base import Trigger, TriggerServices

log = logging.getLogger(__name__)

_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})$")


@dataclass(frozen=True)
class Schedule:
    """When a timer fires next: a cron expression (croniter's field order) or a fixed interval."""

    text: str
    cron: str | None = None
    interval: timedelta | None = None

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """A schedule from the app's text; ValueError saying what is wrong."""
        expanded = expand_setting(text).strip()
        if "%" in expanded:
            raise ValueError(f"schedule {text!r} names an app setting that is not set")
        span = _TIMESPAN.match(expanded)
        if span:
            days, hours, minutes, seconds = (int(g or 0) for g in span.groups())
            interval = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
            if interval <= timedelta(0):
                raise ValueError(f"schedule {text!r} is an interval of zero")
            return cls(text, interval=interval)
        fields = expanded.split()
        if len(fields) != 6:
            raise ValueError(
                f"schedule {text!r} must be NCRONTAB with six fields "
                "({second} {minute} {hour} {day} {month} {day-of-week}) or a TimeSpan hh:mm:ss"
            )
        cron = " ".join([*fields[1:], fields[0]])  # croniter takes the seconds last
        if not croniter.is_valid(cron):
            raise ValueError(f"schedule {text!r} is not a valid NCRONTAB expression")
        return cls(text, cron=cron)

    def next_after(self, moment: datetime) -> datetime:
        """The first firing after `moment`."""
        if self.interval is not None:
            return moment + self.interval
        assert self.cron is not None
        return croniter(self.cron, moment).get_next(datetime)


@dataclass(frozen=True)
class Timer:
    """One timer-triggered function and its parsed schedule."""

    function: TriggeredFunction
    schedule: Schedule
    run_on_startup: bool


def timer(function: TriggeredFunction) -> Timer:
    """A timer function as the index holds it, its schedule parsed; AppLoadError naming the function."""
    try:
        schedule = Schedule.parse(str(function.trigger.schedule))
    except ValueError as exc:
        raise AppLoadError(f"function {function.name}: {exc}") from None
    return Timer(function, schedule, bool(getattr(function.trigger, "run_on_startup", False)))


PAST_DUE = timedelta(seconds=1)  # later than this after its occurrence, a firing is past due


class TimerTriggers(Trigger):
    """Arms each timer function on the host's scheduler and runs it when due, then arms it again."""

    binding_type = "timerTrigger"

    def __init__(self, timers: list[Timer], services: TriggerServices) -> None:
        super().__init__(services)
        self.scheduler = services.scheduler
        self.timers = {t.function.name: t for t in timers}

    @classmethod
    def create(cls, functions: list[TriggeredFunction], services: TriggerServices) -> TimerTriggers:
        return cls([timer(f) for f in functions], services)

    def start(self) -> None:
        """Arm every timer (and fire those with `run_on_startup` now)."""
        now = self.services.clock.now()
        for name, item in self.timers.items():
            first = now if item.run_on_startup else item.schedule.next_after(now)
            self.scheduler.at(
                first, ("timer", name, first.isoformat()), self._fire, name, first, recurring=True
            )

    async def stop(self) -> None:
        """Disarm every timer."""
        self.scheduler.cancel_prefix(("timer",))

    def next_firing(self, name: str) -> datetime:
        """When `name` fires next, from now (for the banner)."""
        return self.timers[name].schedule.next_after(self.services.clock.now())

    def banner(self) -> list[str]:
        return [
            f"{name}: timerTrigger ({item.schedule.text}; next {self.next_firing(name).isoformat()})"
            for name, item in self.timers.items()
        ]

    async def _fire(self, name: str, due: datetime) -> None:
        item = self.timers[name]
        now = self.services.clock.now()
        # After a jump of a virtual clock over several occurrences, the next is the first after now:
        # the ones passed fire once, past due, as Azure does for a schedule missed while down.
        following = item.schedule.next_after(max(due, now))
        self.scheduler.at(
            following, ("timer", name, following.isoformat()), self._fire, name, following, recurring=True
        )
        log.info("Executing 'Functions.%s' (Reason='Timer fired at %s')", name, due.isoformat())
        try:
            await self.invoke(item.function, TimerRequest(past_due=now - due > PAST_DUE))
        except FunctionTimeoutError as exc:
            log.error("Executed 'Functions.%s' (Failed): %s; abandoned", name, exc)
            return
        except Exception:
            log.exception("Executed 'Functions.%s' (Failed)", name)
            return
        log.info("Executed 'Functions.%s' (Succeeded)", name)
