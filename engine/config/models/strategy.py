"""strategies/<name>.yaml: one strategy's allocation band, stops, trailing and partial exits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from engine.config.models.base import Fraction, Model, Name, PositiveFraction, duration_between
from engine.config.models.profit import ProfitSplit


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


Measure = Literal["atr", "stdev"]
#: a bar length (``30s``, ``1m``, ``4h``, ``1d``), or ``tick``: every quote is a bar
Timeframe = Annotated[str, Field(pattern=r"^(tick|[1-9][0-9]{0,3}[smhd])$")]
_MEASURE = "atr: average true range of the bars; stdev: standard deviation of bar-to-bar close returns x price"
_TIMEFRAME = "bar length (30s, 1m, 15m, 4h, 1d; bars are built from the quotes by event time), or tick: a bar per quote"


def _window_names_its_bars(model: Model, window: str, timeframe: str, measure: str) -> None:
    """Refuse a window written without its timeframe: before bars, a window counted quotes (ticks), and an
    old file's ``window: 100`` must not silently become 100 bars of the default timeframe."""
    if window in model.model_fields_set and timeframe not in model.model_fields_set:
        raise PydanticCustomError(
            "volatility_horizon",
            "expected '{timeframe}' beside '{window}', found none: the window counts bars of the timeframe "
            "('{measure}: atr, {timeframe}: 1m, {window}: 14' is the average true range of 14 one-minute bars; "
            "'{measure}: stdev, {timeframe}: tick' is the former volatility of tick-to-tick returns)",
            {"window": window, "timeframe": timeframe, "measure": measure})


class Trailing(Model):
    """A trailing stop: arms at ``activation_threshold`` profit, then follows the best price."""

    trailing_enabled: bool = False
    trailing_distance: PositiveFraction | None = Field(
        None, description="distance from the best price (fixed mode; floor in volatility mode)")
    activation_threshold: Fraction = Field(0.0, description="profit (fraction of entry) at which the stop starts trailing")
    max_trailing_distance: PositiveFraction | None = Field(None, description="cap on the distance (volatility mode)")
    mode: Literal["fixed", "volatility"] = "fixed"
    volatility_multiple: Annotated[float, Field(gt=0, le=100)] = Field(
        2.0, description="k in distance = clamp(k * volatility / best price, trailing_distance, max_trailing_distance)")
    volatility_measure: Measure = Field("atr", description=_MEASURE)
    volatility_timeframe: Timeframe = Field("1m", description=_TIMEFRAME)
    volatility_window: Annotated[int, Field(ge=2, le=100_000)] = Field(14, description="bars of volatility_timeframe in the estimate")
    min_step: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        1, description="ticks: the stop moves only when it tightens by this much or more (each move is a broker request)")

    @model_validator(mode="after")
    def _distance_when_enabled(self) -> Trailing:
        if self.trailing_enabled and self.trailing_distance is None:
            raise PydanticCustomError("trailing", "expected 'trailing_distance' when 'trailing_enabled' is true, found none")
        if self.trailing_enabled and self.mode == "volatility":
            _window_names_its_bars(self, "volatility_window", "volatility_timeframe", "volatility_measure")
        return self


class ExitLevel(Model):
    """A partial exit: close ``exit_percentage`` of the original volume at a profit target.

    A level is known to open positions by its ``key``: its ``id`` when it has one, else its trigger
    (``profit_target:0.005``, ``r_multiple:2``). A reload keeps a level taken as long as a level of the
    same key stays in the file, wherever it moves in the list (docs/engine.md, "Reloads and open positions").
    """

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)] | None = Field(
        None, description="names the level across reloads that move its trigger (default: the trigger itself)")

    profit_target: PositiveFraction | None = Field(
        None, description="profit (fraction of entry) that triggers this level")
    r_multiple: Annotated[float, Field(gt=0, le=100)] | None = Field(
        None, description="or: profit in multiples of the initial risk (2 = 1:2 risk-reward)")
    exit_percentage: PositiveFraction = Field(description="share of the original volume to close")
    sl_adjustment: Annotated[float, Field(ge=-1, lt=1)] | None = Field(
        None, description="move the stop to entry * (1 + sl_adjustment) after the exit")

    @property
    def key(self) -> str:
        """The level's identity for positions: its ``id``, else its trigger (``profit_target:0.005``)."""
        if self.id is not None:
            return f"id:{self.id}"
        return f"profit_target:{self.profit_target!r}" if self.profit_target is not None else f"r_multiple:{self.r_multiple!r}"

    @model_validator(mode="after")
    def _one_trigger(self) -> ExitLevel:
        if (self.profit_target is None) == (self.r_multiple is None):
            found = "both" if self.profit_target is not None else "neither"
            raise PydanticCustomError(
                "exit_level", "expected exactly one of 'profit_target' or 'r_multiple', found {found}", {"found": found})
        return self


class DynamicSLTP(Model):
    """Stops and targets that follow the symbol's volatility on a horizon: ``window`` bars of ``timeframe``.

    The stop lies ``max(stop_multiple x volatility, floor ticks)`` from the price, the target
    ``max(take_profit_multiple x volatility, floor ticks x take_profit_multiple / stop_multiple)``: the
    floor keeps the ratio of target to stop. Nothing moves until ``window + 1`` bars have closed.
    """

    enabled: bool = False
    measure: Measure = Field("atr", description=_MEASURE)
    timeframe: Timeframe = Field("1m", description=_TIMEFRAME)
    window: Annotated[int, Field(ge=2, le=100_000)] = Field(14, description="bars of timeframe in the volatility estimate")
    stop_multiple: Annotated[float, Field(gt=0, le=100)] = Field(2.0, description="stop distance = stop_multiple x volatility")
    take_profit_multiple: Annotated[float, Field(gt=0, le=100)] = Field(
        4.0, description="target distance = take_profit_multiple x volatility")
    floor: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        10, description="ticks: the smallest stop distance (the target's is floor x take_profit_multiple / stop_multiple)")
    only_tighten: bool = Field(True, description="a new level never loosens the current one")
    min_step: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        1, description="ticks: a level moves only when it moves by this much or more (each move is a broker request)")

    @model_validator(mode="after")
    def _horizon_stated(self) -> DynamicSLTP:
        if self.enabled:
            _window_names_its_bars(self, "window", "timeframe", "measure")
        return self


if TYPE_CHECKING:  # a duration is held in milliseconds
    HoldingTime = int
else:
    HoldingTime = duration_between(1_000)


class Sizing(Model):
    """Risk-based sizing of a proposal that comes without a volume: the volume whose loss at the stop is
    ``risk_per_trade`` of the strategy's capital, within its free capital, rounded down to the lot step."""

    risk_per_trade: Annotated[float, Field(gt=0, le=0.5)] = Field(description="fraction of the strategy's capital lost at the stop")


class Strategy(Model):
    """strategies/<name>.yaml: one strategy's allocation band and position-management rules."""

    name: Name = Field(description="unique; positions name it as strategy_type")
    label: str | None = None
    description: str | None = None
    allocation: Band
    max_positions: Annotated[int, Field(ge=1, le=10_000)] | None = Field(None, description="default: limits.per_strategy.max_positions")
    risk_allocation: PositiveFraction | None = Field(
        None, description="max open risk / the strategy's capital; default: limits.per_strategy.risk_allocation")
    sizing: Sizing | None = Field(None, description="size proposals that come without a volume from their stop")
    defaults: StopDefaults
    trailing: Trailing = Trailing()
    exit_levels: Annotated[list[ExitLevel], Field(max_length=20)] = Field([])
    dynamic_sltp: DynamicSLTP = DynamicSLTP()
    max_holding_time: HoldingTime | None = Field(
        None, description="close a position whole at the last quote once it has been open this long (30m, 4h; event time)")
    profit_locking: ProfitSplit | None = Field(None, description="overrides rules/profit.yaml split for this strategy")
