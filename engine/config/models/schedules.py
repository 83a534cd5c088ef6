"""schedules.yaml: when the engine's jobs run, as APScheduler interval or cron triggers."""

from __future__ import annotations

import zoneinfo
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from engine.config.models.base import Model, duration_between

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "timezone", "expected an IANA time zone such as 'UTC' or 'America/New_York', found {tz}", {"tz": repr(value)}) from None
    return value


_INTERVAL = ("weeks", "days", "hours", "minutes", "seconds")
_CRON = ("year", "month", "day", "week", "day_of_week", "hour", "minute", "second")
CronValue = Annotated[int | str, Field(union_mode="left_to_right")]


class Job(Model):
    """One APScheduler job: an interval or a cron trigger."""

    enabled: bool = True
    trigger: Literal["interval", "cron"]
    weeks: Annotated[int, Field(ge=0)] | None = None
    days: Annotated[int, Field(ge=0)] | None = None
    hours: Annotated[int, Field(ge=0)] | None = None
    minutes: Annotated[int, Field(ge=0)] | None = None
    seconds: Annotated[float, Field(ge=0)] | None = None
    year: CronValue | None = None
    month: CronValue | None = None
    day: CronValue | None = None
    week: CronValue | None = None
    day_of_week: CronValue | None = None
    hour: CronValue | None = None
    minute: CronValue | None = None
    second: CronValue | None = None
    timezone: str | None = Field(None, description="default: the file's timezone")
    coalesce: bool = True
    max_instances: Annotated[int, Field(ge=1, le=100)] = 1
    misfire_grace_time: Annotated[int, Field(ge=1, le=86_400)] = 120

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str | None) -> str | None:
        return value if value is None else _timezone(value)

    @model_validator(mode="after")
    def _trigger_fields(self) -> Job:
        interval = [f for f in _INTERVAL if getattr(self, f) is not None]
        cron = [f for f in _CRON if getattr(self, f) is not None]
        if self.trigger == "interval":
            if cron:
                raise PydanticCustomError(
                    "job", "expected interval fields ({allowed}) for an interval trigger, found cron field(s) {found}",
                    {"allowed": ", ".join(_INTERVAL), "found": ", ".join(cron)})
            if not any(getattr(self, f) for f in interval):
                raise PydanticCustomError(
                    "job", "expected an interval above zero (one of {allowed}), found none", {"allowed": ", ".join(_INTERVAL)})
        else:
            if interval:
                raise PydanticCustomError(
                    "job", "expected cron fields ({allowed}) for a cron trigger, found interval field(s) {found}",
                    {"allowed": ", ".join(_CRON), "found": ", ".join(interval)})
            if not cron:
                raise PydanticCustomError("job", "expected at least one cron field ({allowed}), found none", {"allowed": ", ".join(_CRON)})
            try:
                self.cron_trigger()
            except (ValueError, TypeError) as exc:
                raise PydanticCustomError("job", "expected a valid cron schedule, found {error}", {"error": str(exc)}) from None
        return self

    def cron_trigger(self, timezone: str = "UTC") -> CronTrigger:
        """Return the APScheduler cron trigger of this job, in its own timezone, else in ``timezone``.

        The one place a cron trigger is built: this model's validation, the engine's day and week
        resets (``engine.rules.resets``) and the service's scheduler all ask for it here, so they agree
        on every fire time. Building it reads no clock; ask ``get_next_fire_time(None, now)`` with the
        time in hand. Raises ``ValueError`` for an interval job or fields APScheduler refuses.
        """
        from apscheduler.triggers.cron import CronTrigger

        if self.trigger != "cron":
            raise ValueError(f"expected a cron job, found a {self.trigger} job")
        fields = {f: getattr(self, f) for f in _CRON if getattr(self, f) is not None}
        return CronTrigger(**fields, timezone=self.timezone or timezone)

    def interval_seconds(self) -> float | None:
        """Return the interval in seconds (interval trigger), else None."""
        if self.trigger != "interval":
            return None
        scale = {"weeks": 604_800, "days": 86_400, "hours": 3_600, "minutes": 60, "seconds": 1}
        return float(sum((getattr(self, f) or 0) * s for f, s in scale.items()))


class Jobs(Model):
    """The engine's jobs, by name."""

    optimize_portfolio: Job | None = None
    daily_reset: Job | None = None
    weekly_reset: Job | None = None
    snapshot_metrics: Job | None = None


if TYPE_CHECKING:  # a duration is held in milliseconds
    UpdateFrequency = int
else:
    UpdateFrequency = duration_between(100, 3_600_000)


class Schedules(Model):
    """schedules.yaml: when the engine's jobs run."""

    timezone: str = "UTC"
    # how often time passes for the rules when no event arrives: the service sends an idle account a clock
    # event this often, and a replay fills the gaps of its history with clock events on this grid (event
    # time), whenever some rule depends on time (max holding time, a condition on clock.* or position.age)
    risk_update_frequency: UpdateFrequency = Field("500ms", validate_default=True)
    jobs: Jobs = Jobs()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _timezone(value)
