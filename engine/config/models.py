"""The rule files as frozen, strict pydantic models (DESIGN section 3).

One model per file kind: ``Strategy`` (strategies/<name>.yaml), ``Limits`` (rules/limits.yaml),
``AllocationRules`` (rules/allocation.yaml), ``ProfitRules`` (rules/profit.yaml), ``CustomRules``
(rules/custom.yaml), ``Instruments`` (rules/instruments.yaml) and ``Schedules`` (schedules.yaml).
All fractions are fractions (0.005 is 0.5 %). Models are strict: a quoted ``"0.5"`` is a string, not a
number, and every unknown key is an error. Checks that span several fields or files live in
``engine.config.lint``.
"""

from __future__ import annotations

import zoneinfo
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.config import conditions

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger


class Model(BaseModel):
    """Base of every rule-file model: frozen, strict, no unknown keys, no inf/nan."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(ge=0, le=1)]
PositiveFraction = Annotated[float, Field(gt=0, le=1)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=64)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


def _timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError("timezone", "expected an IANA time zone such as 'UTC' or 'America/New_York', found {tz}", {"tz": repr(value)}) from None
    return value


# --- strategies/<name>.yaml ------------------------------------------------------------------------


class Band(Model):
    """A strategy's share of capital: the optimizer's target and hard bounds."""

    target: Fraction = Field(description="target share of capital")
    min: Fraction = Field(description="lowest share the optimizer may allocate")
    max: Fraction = Field(description="highest share the optimizer may allocate")
    rebalance_threshold: PositiveFraction = Field(0.05, description="drift from target that triggers a rebalance")


class StopDefaults(Model):
    """Stop loss and take profit applied to a position that arrives without them."""

    stop_loss: Annotated[float, Field(gt=0, lt=1)] = Field(description="stop distance as a fraction of entry")
    take_profit: Annotated[float, Field(gt=0, le=10)] = Field(description="target distance as a fraction of entry")


class Trailing(Model):
    """A trailing stop: arms at ``activation_threshold`` profit, then follows the best price."""

    trailing_enabled: bool = False
    trailing_distance: PositiveFraction | None = Field(None, description="distance from the best price (fixed mode; floor in volatility mode)")
    activation_threshold: Fraction = Field(0.0, description="profit (fraction of entry) at which the stop starts trailing")
    max_trailing_distance: PositiveFraction | None = Field(None, description="cap on the distance (volatility mode)")
    mode: Literal["fixed", "volatility"] = "fixed"
    volatility_multiple: Annotated[float, Field(gt=0, le=100)] = Field(2.0, description="k in distance = clamp(k * sigma, trailing_distance, max_trailing_distance)")
    volatility_window: Annotated[int, Field(ge=2, le=100_000)] = Field(100, description="ticks in the volatility estimate")

    @model_validator(mode="after")
    def _distance_when_enabled(self) -> Trailing:
        if self.trailing_enabled and self.trailing_distance is None:
            raise PydanticCustomError("trailing", "expected 'trailing_distance' when 'trailing_enabled' is true, found none")
        return self


class ExitLevel(Model):
    """A partial exit: close ``exit_percentage`` of the original volume at a profit target."""

    profit_target: PositiveFraction | None = Field(None, description="profit (fraction of entry) that triggers this level")
    r_multiple: Annotated[float, Field(gt=0, le=100)] | None = Field(None, description="or: profit in multiples of the initial risk (2 = 1:2 risk-reward)")
    exit_percentage: PositiveFraction = Field(description="share of the original volume to close")
    sl_adjustment: Annotated[float, Field(ge=-1, lt=1)] | None = Field(None, description="move the stop to entry * (1 + sl_adjustment) after the exit")

    @model_validator(mode="after")
    def _one_trigger(self) -> ExitLevel:
        if (self.profit_target is None) == (self.r_multiple is None):
            found = "both" if self.profit_target is not None else "neither"
            raise PydanticCustomError("exit_level", "expected exactly one of 'profit_target' or 'r_multiple', found {found}", {"found": found})
        return self


class DynamicSLTP(Model):
    """Stops and targets that follow the symbol's recent volatility."""

    enabled: bool = False
    window: Annotated[int, Field(ge=2, le=100_000)] = Field(100, description="ticks in the volatility estimate")
    stop_multiple: Annotated[float, Field(gt=0, le=100)] = 2.0
    take_profit_multiple: Annotated[float, Field(gt=0, le=100)] = 4.0
    only_tighten: bool = Field(True, description="a new level never loosens the current one")


class ProfitSplit(Model):
    """How realized profit is split into the profit-locking buckets (the shares sum to 1)."""

    big_trades: Fraction = 0.5
    weekly_target: Fraction = 0.3
    compound: Fraction = 0.2


class Strategy(Model):
    """strategies/<name>.yaml: one strategy's allocation band and position-management rules."""

    name: Name = Field(description="unique; positions name it as strategy_type")
    label: str | None = None
    description: str | None = None
    allocation: Band
    max_positions: Annotated[int, Field(ge=1, le=10_000)] | None = Field(None, description="default: limits.per_strategy.max_positions")
    risk_allocation: PositiveFraction | None = Field(None, description="max open risk / equity; default: limits.per_strategy.risk_allocation")
    defaults: StopDefaults
    trailing: Trailing = Trailing()
    exit_levels: Annotated[list[ExitLevel], Field(max_length=20)] = []
    dynamic_sltp: DynamicSLTP = DynamicSLTP()
    profit_locking: ProfitSplit | None = Field(None, description="overrides rules/profit.yaml split for this strategy")


# --- rules/limits.yaml -----------------------------------------------------------------------------

BreachAction = Literal["halt_new_positions", "close_all", "alert"]


class DailyLoss(Model):
    """Daily loss limit, as a fraction of the day-start equity, realized and unrealized."""

    max: PositiveFraction = 0.02
    on_breach: Annotated[list[BreachAction], Field(min_length=1)] = ["halt_new_positions", "close_all", "alert"]


class MaxPositionSize(Model):
    """Largest notional / equity of one position."""

    max: Annotated[float, Field(gt=0, le=100)] = 0.15
    on_breach: Literal["reject", "resize"] = "reject"


def _position_size(value: object) -> object:
    # Shorthand of DESIGN 3.2: ``max_position_size: 0.15`` means ``{max: 0.15}``.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"max": value}
    return value


_POSITION_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
        {
            "type": "object",
            "properties": {
                "max": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                "on_breach": {"enum": ["reject", "resize"]},
            },
            "additionalProperties": False,
        },
    ],
    "description": "notional / equity of one position; a number or {max, on_breach}",
}


class MaxCorrelation(Model):
    """Reject a position whose direction-signed return correlation with an open one is too high."""

    max: Fraction = 0.70
    window: Annotated[int, Field(ge=10, le=100_000)] = Field(240, description="bars in the rolling window")
    timeframe: Annotated[str, Field(pattern=r"^[1-9][0-9]*[smhd]$")] = Field("1m", description="bar size: 30s, 1m, 15m, 1h, 1d")


class PerStrategy(Model):
    """Defaults for strategies that do not set their own."""

    max_positions: Annotated[int, Field(ge=1, le=10_000)] = 5
    risk_allocation: PositiveFraction = 0.15


class Limits(Model):
    """rules/limits.yaml: portfolio-wide limits."""

    daily_loss: DailyLoss = DailyLoss()
    max_position_size: Annotated[MaxPositionSize, BeforeValidator(_position_size), WithJsonSchema(_POSITION_SIZE_SCHEMA)] = MaxPositionSize()
    max_correlation: MaxCorrelation = MaxCorrelation()
    per_strategy: PerStrategy = PerStrategy()


# --- rules/allocation.yaml -------------------------------------------------------------------------

Method = Literal["risk_parity", "hrp", "min_volatility", "max_sharpe", "efficient_risk", "efficient_return", "quadratic_utility"]


class Resample(Model):
    """Bootstrap consensus: average max-Sharpe weights over resampled histories."""

    enabled: bool = False
    samples: Annotated[int, Field(ge=10, le=10_000)] = 200
    seed: Annotated[int, Field(ge=0)] = 7


class Consensus(Model):
    """How the methods' weights are combined."""

    combine: Literal["mean", "median"] = "median"
    resample: Resample = Resample()


class AllocationRules(Model):
    """rules/allocation.yaml: the optimizer run by the optimize_portfolio job."""

    methods: Annotated[list[Method], Field(min_length=1)] = ["risk_parity", "min_volatility", "max_sharpe"]
    consensus: Consensus = Consensus()
    lookback: Annotated[int, Field(ge=20, le=100_000)] = Field(250, description="return observations used")
    expected_returns: Literal["mean", "cagr", "ewma"] = "mean"
    covariance: Literal["sample", "ledoit_wolf", "ewma"] = "ledoit_wolf"
    ewma_span: Annotated[int, Field(ge=2, le=10_000)] = 60
    periods_per_year: Annotated[int, Field(ge=1, le=1_000_000)] = 252
    risk_free_rate: Annotated[float, Field(ge=-0.1, le=1)] = 0.0
    target_volatility: PositiveFraction | None = Field(None, description="for efficient_risk")
    target_return: Annotated[float, Field(ge=-1, le=10)] | None = Field(None, description="for efficient_return")
    risk_aversion: Annotated[float, Field(gt=0, le=1000)] = Field(1.0, description="for quadratic_utility")
    risk_budgets: dict[Name, PositiveFraction] | None = Field(None, description="strategy -> risk budget for risk_parity (default: equal)")
    auto_apply: bool = Field(False, description="apply recommendations to the targets automatically")
    max_transfer_per_step: PositiveFraction = Field(0.05, description="largest transfer in one stage of the plan")


# --- rules/profit.yaml -----------------------------------------------------------------------------


class ProfitRules(Model):
    """rules/profit.yaml: profit locking."""

    enabled: bool = True
    split: ProfitSplit = ProfitSplit()
    weekly_growth_target: PositiveFraction = Field(0.20, description="weekly growth target of equity")


# --- rules/custom.yaml -----------------------------------------------------------------------------


def _condition(value: object) -> conditions.Condition:
    if isinstance(value, (conditions.Compare, conditions.In, conditions.AllOf, conditions.AnyOf, conditions.Not)):
        return value
    tree, errors = conditions.parse_condition(value)
    if errors:
        located = [{"subpath": list(sub), "offset": e.offset, "message": e.message} for sub, e in errors]
        raise PydanticCustomError("condition", "{summary}", {"summary": located[0]["message"], "located": located})
    assert tree is not None
    return tree


_CONDITION_SCHEMA = {
    "description": "an expression such as 'position.profit <= -0.01', or all/any/not of conditions",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {"all": {"type": "array", "minItems": 1}, "any": {"type": "array", "minItems": 1}, "not": {}},
            "additionalProperties": False,
        },
    ],
}

ConditionField = Annotated[
    conditions.Condition,
    PlainValidator(_condition),
    PlainSerializer(lambda c: c.text(), return_type=str),
    WithJsonSchema(_CONDITION_SCHEMA),
]


class CloseParams(Model):
    """Close ``fraction`` of the position's open volume."""

    fraction: PositiveFraction = 1.0


class LevelParams(Model):
    """A stop or target at ``entry * (1 + profit)`` (short: ``1 - profit``); 0 is break-even."""

    profit: Annotated[float, Field(ge=-1, le=10)]


class ReasonParams(Model):
    """An optional human reason carried by the action."""

    reason: str | None = None


class AlertParams(Model):
    """An alert message."""

    message: Annotated[str, Field(min_length=1)]
    level: Literal["info", "warning", "critical"] = "warning"


_ALERT_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "properties": {"message": {"type": "string", "minLength": 1}, "level": {"enum": ["info", "warning", "critical"]}},
            "required": ["message"],
            "additionalProperties": False,
        },
    ]
}


class Action(Model):
    """One ``then:`` item: exactly one action name with its parameters (null for none)."""

    close: CloseParams | None = None
    close_all: ReasonParams | None = None
    set_stop_loss: LevelParams | None = None
    set_take_profit: LevelParams | None = None
    halt_new_positions: ReasonParams | None = None
    resume: ReasonParams | None = None
    reject_position: ReasonParams | None = None
    rebalance: ReasonParams | None = None
    alert: Annotated[AlertParams | None, WithJsonSchema(_ALERT_SCHEMA)] = None

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: object) -> object:
        if isinstance(data, str):
            raise PydanticCustomError("action", "expected an action mapping such as '{name}:' (note the colon), found the string {value}", {"name": data, "value": repr(data)})
        if not isinstance(data, dict):
            return data
        out = {}
        for key, value in data.items():
            if value is None and key in cls.model_fields and key not in ("set_stop_loss", "set_take_profit", "alert"):
                value = {}
            elif key == "alert" and isinstance(value, str):
                value = {"message": value}
            out[key] = value
        return out

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        names = [n for n in type(self).model_fields if getattr(self, n) is not None]
        if len(names) != 1:
            found = ", ".join(names) if names else "none"
            raise PydanticCustomError("action", "expected exactly one action ({choices}), found {found}", {"choices": ", ".join(type(self).model_fields), "found": found})
        return self

    @property
    def kind(self) -> str:
        """The action's name, e.g. ``close``."""
        return next(n for n in type(self).model_fields if getattr(self, n) is not None)

    @property
    def params(self) -> BaseModel:
        """The action's parameters."""
        return getattr(self, self.kind)


class CustomRule(Model):
    """A free rule: when the condition holds, run the actions."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
    description: str | None = None
    enabled: bool = True
    priority: Annotated[int, Field(ge=-1000, le=1000)] = Field(0, description="higher runs first")
    when: ConditionField
    then: Annotated[list[Action], Field(min_length=1, max_length=10)]


class CustomRules(Model):
    """rules/custom.yaml: the desk's own when/then rules."""

    rules: Annotated[list[CustomRule], Field(max_length=200)] = []


# --- rules/instruments.yaml ------------------------------------------------------------------------


class Instrument(Model):
    """Contract specification of one symbol (MT5 symbol_info overrides it when connected)."""

    base_currency: Currency | None = None
    quote_currency: Currency
    contract_size: Annotated[float, Field(gt=0)] = 100_000.0
    pip_size: Annotated[float, Field(gt=0, le=10_000)]
    digits: Annotated[int, Field(ge=0, le=10)] = 5
    volume_step: Annotated[float, Field(gt=0)] = 0.01
    min_volume: Annotated[float, Field(gt=0)] = 0.01
    max_volume: Annotated[float, Field(gt=0)] = 100.0
    stops_level: Annotated[int, Field(ge=0)] = Field(0, description="minimum stop distance in points")


class StrategyMap(Model):
    """How broker positions name their strategy: by magic number, else by the longest matching comment
    prefix, else ``default``; a position that none of them names is not managed (and is reported)."""

    magic: dict[Annotated[int, Field(ge=0)], Name] = Field({}, description="magic number of the opening order -> strategy")
    comment_prefix: dict[Annotated[str, Field(min_length=1, max_length=31)], Name] = Field(
        {}, description="start of the position's comment -> strategy (MetaTrader 5 comments hold 31 characters)")
    default: Name | None = Field(None, description="strategy of broker positions that no magic number or prefix names; none: leave them alone")


class Instruments(Model):
    """rules/instruments.yaml: the account currency, instruments and the broker strategy mapping."""

    account_currency: Currency = "USD"
    instruments: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._#-]{1,32}$")], Instrument] = {}
    strategy_map: StrategyMap = StrategyMap()


# --- schedules.yaml --------------------------------------------------------------------------------

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
                raise PydanticCustomError("job", "expected interval fields ({allowed}) for an interval trigger, found cron field(s) {found}", {"allowed": ", ".join(_INTERVAL), "found": ", ".join(cron)})
            if not any(getattr(self, f) for f in interval):
                raise PydanticCustomError("job", "expected an interval above zero (one of {allowed}), found none", {"allowed": ", ".join(_INTERVAL)})
        else:
            if interval:
                raise PydanticCustomError("job", "expected cron fields ({allowed}) for a cron trigger, found interval field(s) {found}", {"allowed": ", ".join(_CRON), "found": ", ".join(interval)})
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


class Schedules(Model):
    """schedules.yaml: when the engine's jobs run."""

    timezone: str = "UTC"
    jobs: Jobs = Jobs()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        return _timezone(value)


#: The model of each file kind, by the kind's name.
KINDS: dict[str, type[Model]] = {
    "strategy": Strategy,
    "limits": Limits,
    "allocation": AllocationRules,
    "profit": ProfitRules,
    "custom": CustomRules,
    "instruments": Instruments,
    "schedules": Schedules,
}
