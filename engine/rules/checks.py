"""Pre-trade checks (DESIGN section 4): every reason a proposal may fail, as one declared result.

The checks compute; the decision is taken by the portfolio ruleset in durable-rules (a halt fact
rejects whatever these say). Each failed check gives one human reason.

Correlation: mid prices are sampled into bars of the configured timeframe; the check compares the
proposal's symbol with the symbol of each open position over the last ``window`` bar returns, signed
by both directions (a long and a short on positively correlated symbols hedge each other). It needs at
least ``MIN_BARS`` common returns, and skips positions on the proposal's own symbol, which
``max_positions``, size and risk already govern.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.book.positions import Book
from engine.book.valuation import Converter, open_risk
from engine.config.load import RuleSet
from engine.events import PositionOpened

MIN_BARS = 30
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def timeframe_ms(timeframe: str) -> int:
    """Return the length of a bar such as ``1m`` or ``15m`` in milliseconds."""
    m = re.fullmatch(r"([1-9][0-9]*)([smhd])", timeframe)
    if m is None:
        raise ValueError(f"bad timeframe {timeframe!r}")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


class Bars:
    """Closing mid prices of one symbol per bar, keeping the last ``window + 1`` bars."""

    def __init__(self, bar_ms: int, window: int) -> None:
        self.bar_ms = bar_ms
        self.closes: deque[tuple[int, float]] = deque(maxlen=window + 1)

    def update(self, ts: int, mid: float) -> None:
        bar = ts // self.bar_ms
        if self.closes and self.closes[-1][0] == bar:
            self.closes[-1] = (bar, mid)
        else:
            self.closes.append((bar, mid))

    def returns(self) -> dict[int, float]:
        """Return bar index -> return from the previous bar, for consecutive bars."""
        out = {}
        for (_, p0), (b1, p1) in itertools.pairwise(self.closes):
            if p0 > 0:
                out[b1] = p1 / p0 - 1
        return out


def correlation(a: dict[int, float], b: dict[int, float]) -> float | None:
    """Return the correlation of two return series over their common bars (None when too few)."""
    common = sorted(a.keys() & b.keys())
    if len(common) < MIN_BARS:
        return None
    x = np.array([a[k] for k in common])
    y = np.array([b[k] for k in common])
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


@dataclass(frozen=True)
class Failed:
    """One failed pre-trade check: which (``strategy``, ``symbol``, ``stop_side``, ``max_positions``,
    ``conversion``, ``max_position_size``, ``risk_allocation``, ``max_correlation``) and why."""

    check: str
    reason: str


@dataclass(frozen=True)
class PreTrade:
    """The outcome of the pre-trade checks of one proposal: every failed check, in the order checked,
    the volume to open (resized by ``max_position_size: {on_breach: resize}``, else as proposed),
    the stop and target it opens with (its own, else the strategy's defaults; nan when unknown) and the
    entry price it opens at (nan: as proposed; else re-priced at the quote)."""

    failed: tuple[Failed, ...]
    volume: float
    stop_loss: float
    take_profit: float
    resized_from: float | None = None  # the proposed volume, when it was resized
    entry_price: float = math.nan  # the entry when re-priced at the quote, else nan (as proposed)

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.failed]


def default_levels(e: PositionOpened, defaults: Any) -> tuple[float, float]:
    """The position's stop and target: its own, else the strategy's ``defaults`` (fractions of entry)."""
    stop = e.stop_loss if e.stop_loss is not None else e.entry_price * (1 - e.side * defaults.stop_loss)
    tp = e.take_profit if e.take_profit is not None else e.entry_price * (1 + e.side * defaults.take_profit)
    return stop, tp


def check_proposal(e: PositionOpened, rules: RuleSet, converter: Converter, book: Book, bars: Mapping[str, Bars],
                   equity: float) -> PreTrade:
    """Run every pre-trade check of DESIGN section 4 on proposal ``e`` against the account's state.

    ``bars``: the correlation bars per symbol; ``equity``: the account's equity now. An unknown strategy
    or symbol fails alone; a quote currency without a rate yet stops the checks that need money.
    """
    failed: list[Failed] = []
    strategy = rules.strategies.get(e.strategy_type)
    if strategy is None:
        return PreTrade((Failed("strategy", f"unknown strategy {e.strategy_type!r}"),), e.volume, math.nan, math.nan)
    if not converter.known(e.symbol):
        return PreTrade((Failed("symbol", f"unknown symbol {e.symbol!r}: add it to rules/instruments.yaml"),), e.volume, math.nan, math.nan)
    stop, tp = default_levels(e, strategy.defaults)
    if (stop - e.entry_price) * e.side >= 0:
        failed.append(Failed("stop_side", f"stop_loss {stop:g} is on the wrong side of the entry {e.entry_price:g}"))
    n_open = book.open_count.get(e.strategy_type, 0)
    max_pos = rules.max_positions(e.strategy_type)
    if n_open >= max_pos:
        failed.append(Failed("max_positions",
                             f"strategy {e.strategy_type} already has {n_open} open positions (max_positions {max_pos})"))
    ccy = converter.spec(e.symbol).quote_currency
    if math.isnan(converter.rate(ccy)):
        failed.append(Failed("conversion", f"no quote yet to convert {ccy} to {converter.account}"))
        return PreTrade(tuple(failed), e.volume, stop, tp)
    limit = rules.limits.max_position_size
    notional = converter.notional(e.symbol, e.entry_price, e.volume)
    reason, volume, resized_from = size_check(notional, equity, limit.max, limit.on_breach, e.volume)
    if reason:
        failed.append(Failed("max_position_size", reason))
    new_risk = converter.risk(e.symbol, e.entry_price, stop, volume)
    allowed = rules.risk_allocation(e.strategy_type)
    total = (open_risk(converter, book.open_positions(e.strategy_type)) + new_risk) / equity if equity > 0 else math.inf
    if total > allowed:
        failed.append(Failed("risk_allocation",
                             f"open risk of {e.strategy_type} would be {pct(total)} of equity (risk_allocation {pct(allowed)})"))
    corr_max = rules.limits.max_correlation.max
    mine = bars.get(e.symbol)
    if mine is not None:
        for p in book.open_positions():
            if p.symbol == e.symbol or p.symbol not in bars:
                continue
            c = correlation(mine.returns(), bars[p.symbol].returns())
            if c is not None and c * e.side * p.side > corr_max:
                failed.append(Failed("max_correlation", f"correlation {c * e.side * p.side:.2f} with open position {p.id} "
                                                        f"({p.symbol}) exceeds max_correlation {corr_max:g}"))
    return PreTrade(tuple(failed), volume, stop, tp, resized_from)


def pct(x: float) -> str:
    """Format a fraction as a percentage of four significant digits (0.0125 -> ``1.25%``)."""
    return f"{x * 100:.4g}%"


def size_check(notional: float, equity: float, limit: float, on_breach: str, volume: float) -> tuple[str | None, float, float | None]:
    """Return (reason or None, volume to open, original volume when resized)."""
    if equity <= 0 or math.isnan(notional):
        return f"cannot size the position: equity {equity:g}, notional {notional:g}", volume, None
    share = notional / equity
    if share <= limit:
        return None, volume, None
    if on_breach == "resize":
        return None, volume * limit / share, volume
    return f"position size {pct(share)} of equity exceeds max_position_size {pct(limit)}", volume, None
