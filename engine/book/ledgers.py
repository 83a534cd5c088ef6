"""Ledgers of money over time: the profit-locking buckets of a strategy, the trading day and week.

Profit locking (``rules/profit.yaml``, or a strategy's own ``profit_locking``): every realized PnL of
a strategy, losses too, is split into its buckets by the configured shares; the weekly figure
restarts at the weekly reset. The day holds the equity at the day's start, against which the daily
loss limit is measured, and whether the limit was breached that day; the daily reset starts a new one.
The week holds the equity at the week's start, against which ``weekly_growth_target`` is measured, and
whether it was reached; the weekly reset starts a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass
class Ledger:
    """Profit-locking buckets of one strategy (realized PnL split by the configured shares)."""

    big_trades: float = 0.0
    weekly_target: float = 0.0
    compound: float = 0.0
    week_realized: float = 0.0

    def book(self, pnl: float, split: Any) -> dict[str, float] | None:
        """Split a realized ``pnl`` by ``split`` (shares ``big_trades``, ``weekly_target``, ``compound``)
        into the buckets; return the amounts to lock when it is a gain, None otherwise."""
        self.big_trades += pnl * split.big_trades
        self.weekly_target += pnl * split.weekly_target
        self.compound += pnl * split.compound
        self.week_realized += pnl
        if pnl <= 0:
            return None
        return {"big_trades": pnl * split.big_trades, "weekly_target": pnl * split.weekly_target, "compound": pnl * split.compound}

    def new_week(self) -> None:
        self.week_realized = 0.0


@dataclass
class Day:
    """The trading day: its key (UTC date of its start), the equity it started with, whether the
    daily loss limit was breached in it."""

    key: str = ""
    start_equity: float = 0.0
    breached: bool = False

    @classmethod
    def starting(cls, ts: int, equity: float) -> Day:
        """The day that starts at ``ts`` (epoch ms) with ``equity``."""
        return cls(datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d"), equity, False)


@dataclass
class Week:
    """The trading week: its key (UTC date of its start), the equity it started with, and whether the
    week's PnL reached ``weekly_growth_target`` (when, epoch ms) since."""

    key: str = ""
    start_equity: float = 0.0
    reached: bool = False
    reached_ts: int | None = None

    @classmethod
    def starting(cls, ts: int, equity: float) -> Week:
        """The week that starts at ``ts`` (epoch ms) with ``equity``."""
        return cls(datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d"), equity, False, None)
