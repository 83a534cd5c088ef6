"""The fields a condition may read: each one's type, its allowed values (for enums), and what it means.

The catalogue of custom rules' vocabulary (``when:`` in rules/custom.yaml): the parser checks names
and types against it, the portfolio layer checks a context's keys against it, and the docs list it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FieldType = Literal["number", "integer", "string", "bool"]


@dataclass(frozen=True)
class FieldSpec:
    """A field a condition may read: its type, its allowed values (for enums), and what it means."""

    type: FieldType
    doc: str
    choices: tuple[str, ...] = ()


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

FIELDS: dict[str, FieldSpec] = {
    # the position the event is about (ticks: every open position of the tick's symbol)
    "position.id": FieldSpec("string", "position id"),
    "position.symbol": FieldSpec("string", "instrument, e.g. EURUSD"),
    "position.strategy_type": FieldSpec("string", "strategy rule set managing the position"),
    "position.strategy_name": FieldSpec("string", "the pipeline's own name of the strategy instance"),
    "position.side": FieldSpec("string", "long or short", ("long", "short")),
    "position.volume": FieldSpec("number", "open volume in lots"),
    "position.entry_price": FieldSpec("number", "entry price"),
    "position.stop_loss": FieldSpec("number", "current stop price"),
    "position.take_profit": FieldSpec("number", "current take-profit price"),
    "position.profit": FieldSpec("number", "profit as a fraction of entry (long (bid-entry)/entry)"),
    "position.pnl": FieldSpec("number", "unrealized PnL in account currency"),
    "position.r_multiple": FieldSpec("number", "profit in multiples of the initial risk"),
    "position.age_seconds": FieldSpec("number", "seconds since the position opened"),
    "position.levels_hit": FieldSpec("integer", "exit levels already taken"),
    "position.trailing_armed": FieldSpec("bool", "the trailing stop is armed"),
    # the strategy of that position (or of the event)
    "strategy.name": FieldSpec("string", "strategy rule set name"),
    "strategy.open_positions": FieldSpec("integer", "open positions of the strategy"),
    "strategy.daily_pnl": FieldSpec("number", "today's PnL of the strategy in account currency"),
    "strategy.daily_return": FieldSpec("number", "today's PnL / day-start equity"),
    "strategy.realized_pnl": FieldSpec("number", "realized PnL of the strategy"),
    "strategy.open_risk": FieldSpec("number", "open risk (entry to stop) / equity"),
    "strategy.allocation": FieldSpec("number", "current share of capital"),
    "strategy.drawdown": FieldSpec("number", "drawdown from the strategy's equity peak, as a fraction"),
    # the whole book
    "portfolio.equity": FieldSpec("number", "equity in account currency"),
    "portfolio.daily_pnl": FieldSpec("number", "equity - equity at day start"),
    "portfolio.daily_return": FieldSpec("number", "daily PnL / equity at day start"),
    "portfolio.open_positions": FieldSpec("integer", "open positions"),
    "portfolio.exposure": FieldSpec("number", "gross notional / equity"),
    "portfolio.drawdown": FieldSpec("number", "drawdown from the equity peak, as a fraction"),
    "portfolio.halted": FieldSpec("bool", "new positions are halted"),
    # the tick being processed
    "tick.symbol": FieldSpec("string", "instrument of the tick"),
    "tick.bid": FieldSpec("number", "bid"),
    "tick.ask": FieldSpec("number", "ask"),
    "tick.mid": FieldSpec("number", "(bid + ask) / 2"),
    "tick.spread": FieldSpec("number", "ask - bid"),
    # the event's own timestamp (UTC), never the wall clock
    "clock.weekday": FieldSpec("string", "day of the week", WEEKDAYS),
    "clock.hour": FieldSpec("integer", "hour 0-23 (UTC)"),
    "clock.minute": FieldSpec("integer", "minute 0-59"),
}
NAMESPACES = ("position", "strategy", "portfolio", "tick", "clock")
