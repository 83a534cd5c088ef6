"""The day and week roll over where the schedules say, and every part of riskrail builds a cron trigger
the same way: the model's validation, the engine's resets and the service's scheduler agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.config import Job, Schedules, load_config
from engine.config.models import Jobs
from engine.rules.resets import ResetClock
from engine.service.scheduler import trigger
from tests.conftest import ROOT

NEW_YORK_CLOSE = Schedules(jobs=Jobs(daily_reset=Job(trigger="cron", hour=17, minute=0, timezone="America/New_York")))
# Across the start and the end of US daylight saving time in 2026 (8 March, 1 November), a weekend and a leap day ahead.
INSTANTS = [datetime(2026, 3, 6, 21, 59, tzinfo=UTC) + timedelta(hours=7 * i) for i in range(40)] + [
    datetime(2026, 10, 30, 12, 0, tzinfo=UTC) + timedelta(hours=5 * i) for i in range(40)] + [
    datetime(2028, 2, 28, 23, 0, tzinfo=UTC)]


def ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def engine_fires(schedules: Schedules, now: datetime) -> tuple[int, int]:
    """The next daily and weekly reset the engine's clock sets for an event at ``now``."""
    clock = ResetClock(schedules)
    clock.advance(ms(now) - 1)  # the first event starts the clock: the next fire after it
    return clock.next_daily, clock.next_weekly


@pytest.mark.parametrize("schedules", [load_config(str(ROOT)).schedules, NEW_YORK_CLOSE], ids=["shipped", "new-york-close"])
def test_the_engine_and_the_scheduler_agree_on_every_reset_time(schedules: Schedules) -> None:
    tz = schedules.timezone
    for now in INSTANTS:
        daily, weekly = engine_fires(schedules, now)
        for job, fire in ((schedules.jobs.daily_reset, daily), (schedules.jobs.weekly_reset, weekly)):
            if job is None:
                continue
            assert ms(trigger(job, tz).get_next_fire_time(None, now)) == fire
            assert ms(job.cron_trigger(tz).get_next_fire_time(None, now)) == fire


def test_a_new_york_close_rolls_the_day_at_17_00_local_in_winter_and_summer() -> None:
    winter, summer = datetime(2026, 3, 6, 12, 0, tzinfo=UTC), datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
    assert engine_fires(NEW_YORK_CLOSE, winter)[0] == ms(datetime(2026, 3, 6, 22, 0, tzinfo=UTC))
    assert engine_fires(NEW_YORK_CLOSE, summer)[0] == ms(datetime(2026, 3, 9, 21, 0, tzinfo=UTC))
    # no weekly_reset job: the week rolls on Monday 00:00 UTC
    assert engine_fires(NEW_YORK_CLOSE, winter)[1] == ms(datetime(2026, 3, 9, 0, 0, tzinfo=UTC))


def test_validation_resets_and_the_scheduler_all_build_cron_triggers_through_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str, str]] = []
    original = Job.cron_trigger

    def counted(self: Job, tz: str = "UTC"):
        built.append((str(self.hour), tz))
        return original(self, tz)

    monkeypatch.setattr(Job, "cron_trigger", counted)
    job = Job(trigger="cron", hour=17, minute=0, timezone="America/New_York")  # validation builds one
    assert built == [("17", "UTC")]
    del built[:]
    ResetClock(NEW_YORK_CLOSE)  # the daily job, and the default weekly one
    assert built == [("17", "UTC"), ("0", "UTC")]
    del built[:]
    trigger(job, "Europe/London")
    assert built == [("17", "Europe/London")]
    assert str(original(job, "Europe/London").timezone) == "America/New_York"  # the job's own timezone wins
