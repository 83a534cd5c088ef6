"""When the trading day and week roll over: the schedules' reset jobs, evaluated on event time.

The engine never reads the wall clock: the daily and weekly resets of schedules.yaml are cron
triggers, and the engine asks them for the next fire time after an event's own timestamp, so a replay
resets exactly where the live run did. Without a daily_reset job the day rolls at 00:00 UTC; without
a weekly_reset job the week rolls on Monday 00:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from engine.config.models import Job, Schedules

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_DAILY = Job(trigger="cron", hour=0, minute=0)
_WEEKLY = Job(trigger="cron", day_of_week="mon", hour=0, minute=0)


def _trigger(job: Job | None, tz: str, default: Job) -> CronTrigger:
    if job is None or job.trigger != "cron" or not job.enabled:
        return default.cron_trigger("UTC")
    return job.cron_trigger(tz)


class ResetClock:
    """Tells, for each event time, whether a daily or weekly reset falls before it."""

    def __init__(self, schedules: Schedules) -> None:
        jobs = schedules.jobs
        self._daily = _trigger(jobs.daily_reset, schedules.timezone, _DAILY)
        self._weekly = _trigger(jobs.weekly_reset, schedules.timezone, _WEEKLY)
        self.next_daily: int | None = None
        self.next_weekly: int | None = None

    @staticmethod
    def _next(trigger: CronTrigger, ts: int) -> int:
        now = datetime.fromtimestamp(ts / 1000, tz=UTC)
        fire = trigger.get_next_fire_time(None, now)
        return int(fire.timestamp() * 1000)

    def advance(self, ts: int) -> tuple[bool, bool]:
        """Return (daily reset due, weekly reset due) for an event at ``ts``; the first event starts the clock."""
        next_daily, next_weekly = self.next_daily, self.next_weekly
        if next_daily is None or next_weekly is None:
            self.next_daily = self._next(self._daily, ts + 1)
            self.next_weekly = self._next(self._weekly, ts + 1)
            return False, False
        if ts < next_daily and ts < next_weekly:
            return False, False  # the common case, decided without building a new result
        daily = weekly = False
        if ts >= next_daily:
            daily = True
            self.next_daily = self._next(self._daily, ts + 1)
        if ts >= next_weekly:
            weekly = True
            self.next_weekly = self._next(self._weekly, ts + 1)
        return daily, weekly
