"""The fields a condition may read: each one's type, its allowed values (for enums), and what it means.

The catalogue of custom rules' vocabulary (``when:`` in rules/custom.yaml): the parser checks names
and types against it, the portfolio layer checks a context's keys against it, and the docs list it.

Besides the fixed fields, ``fact.<name>.active`` (a boolean) reads the desk's own facts: whether a fact
``<name>`` (declared under ``facts:`` of rules/custom.yaml) is live for the subject being evaluated.
It and ``portfolio.halted`` are *fact atoms*: durable-rules reads them from its facts while it matches,
so a fact asserted by one rule is seen by the others on the same event (``FACT_ATOMS``, ``is_fact_atom``).
"""

from __future__ import annotations

import re
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

#: counters over the positions closed in a trailing window of event time (per strategy and per symbol)
_WINDOWED: dict[str, FieldSpec] = {
    **{f"stop_outs_{w}": FieldSpec("integer", f"positions closed by their stop (fixed or trailed) at a loss in the last {w}")
       for w in ("1h", "4h", "24h")},
    "trades_24h": FieldSpec("integer", "positions closed in the last 24h"),
    "profit_24h": FieldSpec("number", "sum of the returns (realized PnL / entry notional) of the positions closed in the last 24h"),
}

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
    "position.age": FieldSpec("number", "seconds since the position opened (the same as position.age_seconds)"),
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
    **{f"strategy.{k}": v for k, v in _WINDOWED.items()},
    # the instrument (a symbol rule is evaluated once per symbol with open positions or a quote)
    "symbol.name": FieldSpec("string", "instrument, e.g. EURUSD"),
    "symbol.open_positions": FieldSpec("integer", "open positions on the symbol"),
    **{f"symbol.{k}": v for k, v in _WINDOWED.items()},
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
    "clock.session": FieldSpec("string", "the first session of rules/instruments.yaml open at the event's time, closed when none"),
}
NAMESPACES = ("position", "strategy", "symbol", "portfolio", "tick", "clock", "fact")

#: the scopes a condition is evaluated at, narrowest first: a rule's scope is the narrowest its fields need
SCOPES = ("position", "strategy", "symbol", "portfolio")

#: the fields that read facts rather than a context: ``portfolio.halted`` (any halt fact)
FACT_ATOMS = ("portfolio.halted",)

_FACT_FIELD = re.compile(r"^fact\.([a-z][a-z0-9_]*)\.active$")
_FACT_SPEC = FieldSpec("bool", "a fact of that name is live for the subject")


def fact_name(field: str) -> str | None:
    """Return ``cooldown`` for ``fact.cooldown.active``, None for any other field."""
    m = _FACT_FIELD.match(field)
    return m.group(1) if m else None


def is_fact_atom(field: str) -> bool:
    """Tell whether a field is read from durable-rules' facts (``portfolio.halted``, ``fact.<name>.active``)."""
    return field in FACT_ATOMS or fact_name(field) is not None


def field_spec(field: str) -> FieldSpec | None:
    """Return the spec of a fixed field or of ``fact.<name>.active`` (any name: the lint checks it is declared)."""
    return FIELDS.get(field) or (_FACT_SPEC if fact_name(field) is not None else None)
