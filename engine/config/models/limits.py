"""rules/limits.yaml: the portfolio-wide limits (daily loss, position size, correlation, per strategy)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from engine.config.models.base import Fraction, Model, PositiveFraction

BreachAction = Literal["halt_new_positions", "close_all", "alert"]


class DailyLoss(Model):
    """Daily loss limit, as a fraction of the day-start equity, realized and unrealized."""

    max: PositiveFraction = 0.02
    on_breach: Annotated[list[BreachAction], Field(min_length=1)] = Field(["halt_new_positions", "close_all", "alert"])


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
    max_position_size: Annotated[
        MaxPositionSize, BeforeValidator(_position_size), WithJsonSchema(_POSITION_SIZE_SCHEMA)
    ] = MaxPositionSize()
    max_correlation: MaxCorrelation = MaxCorrelation()
    per_strategy: PerStrategy = PerStrategy()
