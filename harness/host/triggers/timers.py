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
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.functions.timer import TimerRequest
from croniter import croniter

from ..errors import AppLoadError
from ..loader import TimerFunction
from ..scheduler import Scheduler
from ..settings import expand_setting
from ..workers import FunctionTimeoutError, within
from .outputs import OutputWriter

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


class TimerTriggers:
    """Arms each timer function on the host's scheduler and runs it when due, then arms it again."""

    def __init__(
        self,
        timers: list[TimerFunction],
        scheduler: Scheduler,
        executor: Executor,
        client_binding: Any,
        outputs: OutputWriter,
        timeout: float | None = None,
    ) -> None:
        """`timeout`: host.json's functionTimeout in seconds (None: unbounded)."""
        self.timeout = timeout
        self.scheduler = scheduler
        self.outputs = outputs
        self.executor = executor
        self.client_binding = client_binding
        self.schedules: dict[str, tuple[TimerFunction, Schedule]] = {}
        for timer in timers:
            try:
                self.schedules[timer.name] = (timer, Schedule.parse(timer.schedule))
            except ValueError as exc:
                raise AppLoadError(f"function {timer.name}: {exc}") from None

    def start(self) -> None:
        """Arm every timer (and fire those with `run_on_startup` now)."""
        now = datetime.now(UTC)
        for name, (timer, schedule) in self.schedules.items():
            first = now if timer.run_on_startup else schedule.next_after(now)
            self.scheduler.at(first, ("timer", name, first.isoformat()), self._fire, name, first)

    def next_firing(self, name: str) -> datetime:
        """When `name` fires next, from now (for the banner)."""
        return self.schedules[name][1].next_after(datetime.now(UTC))

    async def _fire(self, name: str, due: datetime) -> None:
        timer, schedule = self.schedules[name]
        following = schedule.next_after(max(due, datetime.now(UTC)))
        self.scheduler.at(following, ("timer", name, following.isoformat()), self._fire, name, following)
        kwargs: dict[str, Any] = {timer.trigger_param: TimerRequest(past_due=False)}
        for param in timer.client_params:
            kwargs[param] = self.client_binding()
        log.info("Executing 'Functions.%s' (Reason='Timer fired at %s')", name, due.isoformat())
        try:
            call = self.outputs.call(timer.fn, kwargs, timer.is_async, self.executor, timer.outputs)
            await within(self.timeout, call, name)
        except FunctionTimeoutError as exc:
            log.error("Executed 'Functions.%s' (Failed): %s; abandoned", name, exc)
            return
        except Exception:
            log.exception("Executed 'Functions.%s' (Failed)", name)
            return
        log.info("Executed 'Functions.%s' (Succeeded)", name)
