"""rules/limits.yaml: the portfolio-wide limits (daily loss, position size, correlation, per strategy)
and the pre-trade checks of a proposal's price (its distance from the quote, the quote's age)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, PlainSerializer, WithJsonSchema

from engine.config.models.base import DURATION_PATTERN, Fraction, Model, PositiveFraction, duration_ms, duration_text

BreachAction = Literal["halt_new_positions", "close_all", "alert"]


class DailyLoss(Model):
    """Daily loss limit, as a fraction of the day-start equity, realized and unrealized."""

    max: PositiveFraction = 0.02
    on_breach: Annotated[list[BreachAction], Field(min_length=1)] = Field(["halt_new_positions", "close_all", "alert"])


class MaxPositionSize(Model):
    """Largest notional / equity of one position."""

    max: Annotated[float, Field(gt=0, le=100)] = 0.15
    on_breach: Literal["reject", "resize"] = "reject"


def _max_shorthand(value: object) -> object:
    # Shorthand of DESIGN 3.2 for a limit with a breach rule: ``max_position_size: 0.15`` means ``{max: 0.15}``.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return {"max": value}
    return value


def _max_schema(maximum: float, breaches: list[str], description: str, *, nullable: bool = False) -> dict[str, object]:
    """The JSON Schema of a ``{max, on_breach}`` limit that may be written as its bare ``max`` (and ``null``)."""
    bound = {"type": "number", "exclusiveMinimum": 0, "maximum": maximum}
    forms: list[object] = [bound, {"type": "object", "properties": {"max": bound, "on_breach": {"enum": breaches}},
                                   "additionalProperties": False}]
    return {"anyOf": [*forms, {"type": "null"}] if nullable else forms, "description": description}


_POSITION_SIZE_SCHEMA = _max_schema(100, ["reject", "resize"], "notional / equity of one position; a number or {max, on_breach}")


class MaxCorrelation(Model):
    """Reject a position whose direction-signed return correlation with an open one is too high."""

    max: Fraction = 0.70
    window: Annotated[int, Field(ge=10, le=100_000)] = Field(240, description="bars in the rolling window")
    timeframe: Annotated[str, Field(pattern=r"^[1-9][0-9]*[smhd]$")] = Field("1m", description="bar size: 30s, 1m, 15m, 1h, 1d")


class MaxEntryDeviation(Model):
    """Largest distance of a proposal's entry from the current quote (BUY: the ask, SELL: the bid), as a
    fraction of that quote; beyond it the proposal is rejected, or opened at the quote (``reprice``)."""

    max: PositiveFraction = 0.005
    on_breach: Literal["reject", "reprice"] = "reject"


_ENTRY_DEVIATION_SCHEMA = _max_schema(
    1, ["reject", "reprice"], "|entry - quote| / quote of a proposal (BUY: ask, SELL: bid); a number, {max, on_breach} "
    "(reject | reprice) or null (no check)", nullable=True)

def _quote_age_ms(value: object) -> object:
    try:
        return duration_ms(value)
    except ValueError:
        raise ValueError(f"expected a duration such as 30s, 5m or 1h (or null: no limit), found {value!r}") from None


_QUOTE_AGE_SCHEMA = {
    "anyOf": [{"type": "string", "pattern": DURATION_PATTERN}, {"type": "null"}],
    "description": "oldest quote of its symbol a proposal may be checked against (30s, 5m, 1h); null: no limit",
}


class PerStrategy(Model):
    """Defaults for strategies that do not set their own, and what a proposal past its strategy's
    ``risk_allocation`` (open risk / the strategy's capital) gets: rejected, or resized down to the lot step."""

    max_positions: Annotated[int, Field(ge=1, le=10_000)] = 5
    risk_allocation: PositiveFraction = Field(0.15, description="max open risk / the strategy's capital")
    on_breach: Literal["reject", "resize"] = Field("reject", description="a proposal past risk_allocation")


class ExposureCap(Model):
    """Caps on the net (signed) and gross exposure of a currency or a group of symbols, as fractions of
    equity (null: no cap)."""

    net: Annotated[float, Field(gt=0, le=100)] | None = Field(None, description="|net exposure| / equity")
    gross: Annotated[float, Field(gt=0, le=100)] | None = Field(None, description="gross exposure / equity")


class ExposureGroup(ExposureCap):
    """A named group of symbols whose exposure is capped together."""

    symbols: Annotated[list[Annotated[str, Field(pattern=r"^[A-Za-z0-9._#-]{1,32}$")]], Field(min_length=1, max_length=1000)]


class Exposure(Model):
    """Exposure caps checked on proposals: per currency (a position's base leg and quote leg each count,
    in the account currency) and per named group of symbols (notional, signed by direction)."""

    currencies: dict[Annotated[str, Field(pattern=r"^[A-Z]{3}$")], ExposureCap] = Field({})
    groups: dict[Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$")], ExposureGroup] = Field({})
    on_breach: Literal["reject", "resize"] = Field("reject", description="a proposal past a cap")


class Limits(Model):
    """rules/limits.yaml: portfolio-wide limits."""

    daily_loss: DailyLoss = DailyLoss()
    max_position_size: Annotated[
        MaxPositionSize, BeforeValidator(_max_shorthand), WithJsonSchema(_POSITION_SIZE_SCHEMA)
    ] = MaxPositionSize()
    max_correlation: MaxCorrelation = MaxCorrelation()
    per_strategy: PerStrategy = PerStrategy()
    exposure: Exposure = Exposure()
    max_entry_deviation: Annotated[
        MaxEntryDeviation | None, BeforeValidator(_max_shorthand), WithJsonSchema(_ENTRY_DEVIATION_SCHEMA)
    ] = MaxEntryDeviation()
    # milliseconds, written (and dumped) 30s, 5m, 1h; None: no limit
    max_quote_age: Annotated[
        int | None, BeforeValidator(_quote_age_ms), PlainSerializer(duration_text, when_used="unless-none"),
        WithJsonSchema(_QUOTE_AGE_SCHEMA),
    ] = Field(
        "60s", validate_default=True)
