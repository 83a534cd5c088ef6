"""Rule unit test files (``rules/tests/*.yaml``) as frozen, strict pydantic models.

A file holds ``tests:``, a list of cases. A case names the strategy under test, optional inline
overrides of that strategy and of the portfolio rules, the positions proposed, a tick sequence and
the actions expected at given ticks (``docs/rule-tests.md``). Checks that relate several fields (a
tick index beyond the ticks, an expectation naming an unknown position) live in
``engine.ruletest.load``, so each is reported at the offending node.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator
from pydantic_core import PydanticCustomError

from engine.actions import ACTION_TYPES
from engine.config.models import Model, Name
from engine.config.models.base import Duration

Price = Annotated[float, Field(gt=0)]
Volume = Annotated[float, Field(gt=0)]
Tolerance = Annotated[float, Field(ge=0, lt=1)]
TickIndex = Annotated[int, Field(ge=0, le=100_000)]
Symbol = Annotated[str, Field(pattern=r"^[A-Za-z0-9._#-]{1,32}$")]
PositionId = Annotated[str, Field(min_length=1, max_length=64)]
ActionType = Literal[ACTION_TYPES]  # type: ignore[valid-type]

#: the default epsilon of price comparisons, relative to the expected value
DEFAULT_TOLERANCE = 1e-9


class Quote(Model):
    """A full quote: bid and ask."""

    bid: Price
    ask: Price

    @model_validator(mode="after")
    def _ask_not_below_bid(self) -> Quote:
        if self.ask < self.bid:
            raise PydanticCustomError("quote", "expected ask >= bid, found ask {ask} below bid {bid}", {"ask": self.ask, "bid": self.bid})
        return self


def _tick_kind(value: Any) -> str:
    return "quote" if isinstance(value, (dict, Quote)) else "bid"


#: one tick: a full quote, or a bare bid (the ask is bid + the case's spread); a mapping is
#: always read as a quote, so its errors are not mixed with those of a number
TickSpec = Annotated[
    Annotated[Price, Tag("bid")] | Annotated[Quote, Tag("quote")],
    Discriminator(_tick_kind),
]


class PositionSpec(Model):
    """A position proposed to the engine (a ``position_opened`` event)."""

    id: PositionId = Field(description="position id, named by expectations")
    side: Literal["long", "short"]
    entry: Price = Field(description="entry price")
    volume: Volume = Field(description="volume in lots")
    stop_loss: Price | None = Field(None, description="initial stop; none: the strategy default")
    take_profit: Price | None = Field(None, description="initial target; none: the strategy default")
    at: TickIndex = Field(0, description="proposed right after this tick (0: before the first tick)")


class Expectation(Model):
    """An action expected at a tick; only the fields given are compared."""

    at: TickIndex = Field(description="1-based tick index; 0 for actions of proposals made before the first tick")
    type: ActionType
    position: PositionId | None = Field(None, description="the position id (close_all: one of the closed positions)")
    rule: str | None = Field(None, description="the rule that fired, e.g. trailing, exit_levels.0, daily_loss")
    fraction: Annotated[float, Field(gt=0, le=1)] | None = Field(None, description="close_partial: share of the original volume")
    volume: Volume | None = Field(None, description="closed volume in lots")
    price: Price | None = Field(None, description="fill price of a close")
    stop_loss: Price | None = Field(None, description="the new stop of a set_stop_loss")
    take_profit: Price | None = Field(None, description="the new target of a set_take_profit")
    reason: Annotated[str, Field(min_length=1)] | None = Field(None, description="text the action's reason must contain")
    tolerance: Tolerance | None = Field(None, description="relative tolerance of numbers (default: the case's)")


class Case(Model):
    """One rule unit test: given positions and ticks, expect actions."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    strategy: Name = Field(description="the strategy under test; positions are proposed under it")
    description: str | None = None
    skip: Annotated[str, Field(min_length=1)] | None = Field(None, description="skip the case, giving the reason")
    # Overrides are checked against the configuration's own models when the case is loaded
    # (engine.ruletest.load): their shape is only known once merged into the strategy or rule file.
    overrides: dict[str, Any] = Field(
        {}, description="deep-merged into the strategy; 'limits', 'allocation', 'profit', 'custom' into those rule files")
    equity: Annotated[float, Field(gt=0)] = Field(100_000.0, description="starting equity in the account currency")
    symbol: Symbol = "EURUSD"
    interval: Duration = Field(1_000, description="time between two ticks (30s, 1m, 1h): tick i comes at the epoch + i intervals")
    spread: Annotated[float, Field(ge=0)] = Field(0.0, description="ask - bid of ticks given as a bare bid")
    tolerance: Tolerance = Field(DEFAULT_TOLERANCE, description="relative tolerance of numbers")
    strict: bool = Field(True, description="every action except lock_profit must be expected")
    positions: Annotated[list[PositionSpec], Field(min_length=1, max_length=100)]
    ticks: Annotated[list[TickSpec], Field(min_length=1, max_length=100_000)]
    expect: Annotated[list[Expectation], Field(max_length=10_000)] = []  # noqa: RUF012 - pydantic copies it; the schema shows it

    def quotes(self) -> list[tuple[float, float]]:
        """Return the ticks as (bid, ask), a bare bid widened by ``spread``."""
        return [(t.bid, t.ask) if isinstance(t, Quote) else (t, t + self.spread) for t in self.ticks]


class TestFile(Model):
    """rules/tests/<name>.yaml: a list of rule unit tests."""

    __test__ = False  # not a pytest class

    tests: Annotated[list[Case], Field(min_length=1, max_length=10_000)]
