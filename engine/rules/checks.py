"""Pre-trade checks (DESIGN section 4): every reason a proposal may fail, as one declared result.

The checks compute; the decision is taken by the portfolio ruleset in durable-rules (a halt fact
rejects whatever these say). Each failed check gives one human reason, and every check that can run
does: a proposal wrong in four ways is rejected with four reasons. A check that needs what is missing
is skipped (the strategy's defaults for an unknown strategy, the instrument for an unknown symbol, a
conversion rate for money).

Exact at the instrument: the stop and target a position opens with lie on the symbol's tick grid,
rounded toward profit (``Grid.toward_profit``: a long's up, a short's down), whether they are the
strategy's defaults or the proposal's own; the volume it opens with is a value of the lot grid, and a
resize rounds down to the lot step, so it never lands over the limit it obeys.

Price and quote: the entry is compared with the symbol's current quote (a BUY with the ask, a SELL with
the bid), which must be at most ``max_quote_age`` old (``rules/limits.yaml``).

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
from engine.book.valuation import Converter
from engine.config.load import RuleSet
from engine.config.models.instruments import Instrument
from engine.config.models.limits import Limits
from engine.events import PositionOpened
from engine.rules import capital_checks
from engine.rules.capital_checks import Capacity

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
    """One failed pre-trade check: which (``strategy``, ``symbol``, ``quote_age``, ``entry_deviation``,
    ``stop_side``, ``take_profit_side``, ``volume_step``, ``volume_min``, ``volume_max``,
    ``max_positions``, ``conversion``, ``max_position_size``, ``risk_allocation``, ``max_correlation``)
    and why."""

    check: str
    reason: str


@dataclass(frozen=True)
class PreTrade:
    """The outcome of the pre-trade checks of one proposal: every failed check, in the order checked,
    the volume to open (on the lot grid; resized down to the lot step by ``max_position_size:
    {on_breach: resize}``, else as proposed), the stop and target it opens with (its own, else the
    strategy's defaults, on the tick grid; nan when unknown) and the entry price it opens at (nan: as
    proposed; else re-priced at the quote by ``max_entry_deviation: {on_breach: reprice}``)."""

    failed: tuple[Failed, ...]
    volume: float
    stop_loss: float
    take_profit: float
    resized_from: float | None = None  # the proposed volume, when it was resized
    entry_price: float = math.nan  # the entry when re-priced at the quote, else nan (as proposed)
    resized_by: str | None = None  # the check whose limit set the resized volume
    sizing: dict[str, Any] | None = None  # how a proposal without a volume was sized (the size_position params)

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.failed]


def default_levels(e: PositionOpened, defaults: Any, spec: Instrument | None = None,
                   entry: float | None = None) -> tuple[float, float]:
    """Return the stop and target a position opens with: its own, else the strategy's ``defaults``
    (``stop_loss``/``take_profit`` as fractions of ``entry``; ``None``: no defaults, nan).

    ``entry``: the entry price (default the proposal's own; a re-priced proposal passes the quote).
    With the instrument ``spec`` both levels are put on its tick grid, toward profit (a long's up, a
    short's down), as every level the engine sets; without it they are returned as computed.
    """
    price = e.entry_price if entry is None else entry
    stop = e.stop_loss if e.stop_loss is not None else (
        price * (1 - e.side * defaults.stop_loss) if defaults is not None else math.nan)
    tp = e.take_profit if e.take_profit is not None else (
        price * (1 + e.side * defaults.take_profit) if defaults is not None else math.nan)
    if spec is not None:
        grid = spec.prices
        stop, tp = (x if math.isnan(x) else grid.toward_profit(x, e.side) for x in (stop, tp))
    return stop, tp


def check_proposal(e: PositionOpened, rules: RuleSet, converter: Converter, book: Book, bars: Mapping[str, Bars],
                   equity: float, quotes: Mapping[str, tuple[int, float, float]] | None, capacity: Capacity) -> PreTrade:
    """Run every pre-trade check of DESIGN section 4 on proposal ``e`` against the account's state.

    ``bars``: the correlation bars per symbol; ``equity``: the account's equity now, in the account
    currency; ``quotes``: the last quote of each symbol as ``(ts in epoch ms, bid, ask)`` (``None``: no
    quote checks, neither age nor entry deviation); ``capacity``: the strategies' capital and exposure
    (``engine.rules.capital_checks``). Every failed check is listed, in the order checked: strategy,
    symbol, the quote's age and the entry's distance from it, the stop's and the target's side, the
    volume's step and bounds (or its sizing, for a proposal without one), then max_positions, the
    conversion rate, size, the strategy's open risk and utilization against its capital, the exposure
    caps, correlation. Raises nothing for bad input: a bad proposal is a failed check.
    """
    failed: list[Failed] = []
    strategy = rules.strategies.get(e.strategy_type)
    if strategy is None:
        failed.append(Failed("strategy", f"unknown strategy {e.strategy_type!r}"))
    spec = converter.spec(e.symbol) if converter.known(e.symbol) else None
    if spec is None:
        failed.append(Failed("symbol", f"unknown symbol {e.symbol!r}: add it to rules/instruments.yaml"))
    repriced = quote_checks(e, rules.limits, quotes, failed) if spec is not None else math.nan
    entry = e.entry_price if math.isnan(repriced) else repriced
    stop, tp = default_levels(e, strategy.defaults if strategy is not None else None, spec, entry)
    side_checks(e, entry, stop, tp, failed)
    volume = e.volume
    if spec is not None and not math.isnan(volume):
        volume = volume_checks(e, spec, failed)
    if strategy is None or spec is None:
        return PreTrade(tuple(failed), volume, stop, tp, None, repriced)
    n_open = book.open_count.get(e.strategy_type, 0)
    max_pos = rules.max_positions(e.strategy_type)
    if n_open >= max_pos:
        failed.append(Failed("max_positions",
                             f"strategy {e.strategy_type} already has {n_open} open positions (max_positions {max_pos})"))
    ccy = spec.quote_currency
    if math.isnan(converter.rate(ccy)):
        failed.append(Failed("conversion", f"no quote yet to convert {ccy} to {converter.account}"))
        return PreTrade(tuple(failed), volume, stop, tp, None, repriced)
    sizing = None
    if math.isnan(volume):
        sized = capital_checks.size(e, strategy, capacity, entry, stop, spec, failed)
        if sized is None:
            return PreTrade(tuple(failed), volume, stop, tp, None, repriced)
        volume, sizing = sized
    fit = capital_checks.Fit(volume, spec, sized=sizing is not None)
    limit = rules.limits.max_position_size
    notional = converter.notional(e.symbol, entry, 1.0)
    if not (equity > 0 and math.isfinite(notional)):
        failed.append(Failed("max_position_size", f"cannot size the position: equity {equity:g}, notional {notional * volume:g}"))
        return PreTrade(tuple(failed), volume, stop, tp, None, repriced)
    fit.bound("max_position_size", 0.0, notional, limit.max * equity, limit.on_breach,
              lambda x: f"position size {pct(x / equity)} of equity exceeds max_position_size {pct(limit.max)}")
    capital_checks.capital_checks(e, rules, capacity, entry, stop, fit)
    failed.extend(fit.failed)
    failed.extend(correlation_checks(e, book, bars, rules.limits.max_correlation.max))
    if sizing is not None:
        sizing = {**sizing, "volume": fit.volume, "limited_by": fit.by}
        return PreTrade(tuple(failed), fit.volume, stop, tp, None, repriced, sizing=sizing)
    resized = fit.by is not None
    return PreTrade(tuple(failed), fit.volume, stop, tp, volume if resized else None, repriced, resized_by=fit.by)


def quote_checks(e: PositionOpened, limits: Limits, quotes: Mapping[str, tuple[int, float, float]] | None,
                 failed: list[Failed]) -> float:
    """Check the age of the symbol's last quote and the entry's distance from it (a BUY's from the ask, a
    SELL's from the bid), appending what fails to ``failed``; return the entry to open at when
    ``max_entry_deviation: {on_breach: reprice}`` re-prices it at the quote, else nan (as proposed).

    Without any quote of the symbol the proposal fails ``quote_age`` (when ``max_quote_age`` is set,
    else ``entry_deviation`` when that is set): a price nobody can compare is not accepted.
    """
    if quotes is None:
        return math.nan
    quote = quotes.get(e.symbol)
    max_age, deviation = limits.max_quote_age, limits.max_entry_deviation
    if quote is None:
        if max_age is not None:
            failed.append(Failed("quote_age", f"no {e.symbol} quote yet (max_quote_age {seconds(max_age)})"))
        elif deviation is not None:
            failed.append(Failed("entry_deviation", f"no {e.symbol} quote to check the entry {num(e.entry_price)} against "
                                                    f"(max_entry_deviation {pct(deviation.max)})"))
        return math.nan
    ts, bid, ask = quote
    if max_age is not None and e.ts - ts > max_age:
        failed.append(Failed("quote_age", f"no {e.symbol} quote for {seconds(e.ts - ts)} (max_quote_age {seconds(max_age)})"))
    ref, name = (ask, "ask") if e.side > 0 else (bid, "bid")
    if deviation is None or not ref > 0:
        return math.nan
    distance = abs(e.entry_price - ref) / ref
    if distance <= deviation.max * (1 + 1e-9):  # at the limit is within it, whatever the last bit says
        return math.nan
    if deviation.on_breach == "reprice":
        return ref
    failed.append(Failed("entry_deviation", f"entry {num(e.entry_price)} is {pct(distance)} from the {name} {num(ref)} "
                                            f"(max_entry_deviation {pct(deviation.max)})"))
    return math.nan


def side_checks(e: PositionOpened, entry: float, stop: float, tp: float, failed: list[Failed]) -> None:
    """Refuse a stop at or beyond the entry on the profit side, and a target at or beyond it on the losing
    side (a long's target at or below its entry would open and close at once as ``take_profit``);
    nan levels (none given, no defaults) are not checked."""
    action = "BUY" if e.side > 0 else "SELL"
    if not math.isnan(stop) and (stop - entry) * e.side >= 0:
        failed.append(Failed("stop_side", f"stop_loss {num(stop)} is on the wrong side of the entry {num(entry)} for a {action}"))
    if not math.isnan(tp) and (tp - entry) * e.side <= 0:
        failed.append(Failed("take_profit_side",
                             f"take_profit {num(tp)} is on the losing side of the entry {num(entry)} for a {action}"))


def volume_checks(e: PositionOpened, spec: Instrument, failed: list[Failed]) -> float:
    """Check that the proposed volume lies on the symbol's lot step, between ``volume_min`` and
    ``volume_max``, appending what fails to ``failed``; return the volume as a value of the lot grid
    (a clean decimal) when it is on the step, else as proposed."""
    lots, v = spec.lots, e.volume
    on_step = lots.on(v)
    if not on_step:
        failed.append(Failed("volume_step", f"volume {num(v)} is not a multiple of the volume step {num(lots.step)} of {e.symbol}"))
    if v < spec.volume_min * (1 - 1e-9):
        failed.append(Failed("volume_min", f"volume {num(v)} is below the volume_min {num(spec.volume_min)} of {e.symbol}"))
    if v > spec.volume_max * (1 + 1e-9):
        failed.append(Failed("volume_max", f"volume {num(v)} is above the volume_max {num(spec.volume_max)} of {e.symbol}"))
    return lots.nearest(v) if on_step else v


def correlation_checks(e: PositionOpened, book: Book, bars: Mapping[str, Bars], corr_max: float) -> list[Failed]:
    """Return a ``max_correlation`` failure for each open position on another symbol whose direction-signed
    correlation with the proposal's symbol exceeds ``corr_max``."""
    out: list[Failed] = []
    mine = bars.get(e.symbol)
    if mine is None:
        return out
    for p in book.open_positions():
        if p.symbol == e.symbol or p.symbol not in bars:
            continue
        c = correlation(mine.returns(), bars[p.symbol].returns())
        if c is not None and c * e.side * p.side > corr_max:
            out.append(Failed("max_correlation", f"correlation {c * e.side * p.side:.2f} with open position {p.id} "
                                                 f"({p.symbol}) exceeds max_correlation {corr_max:g}"))
    return out


def pct(x: float) -> str:
    """Format a fraction as a percentage of four significant digits (0.0125 -> ``1.25%``); from 1000 % on,
    whole percents with thousands separators (550 -> ``55,000%``), never a power of ten."""
    return f"{x * 100:.4g}%" if abs(x) < 10 else f"{x * 100:,.0f}%"


def num(x: float) -> str:
    """Format a price or volume for a reason: its shortest decimal up to ten significant digits
    (1.3 -> ``1.3``, 1.0945499999 -> ``1.0945499999``)."""
    return f"{x:.10g}"


def seconds(ms: int) -> str:
    """Format a duration in milliseconds for a reason: seconds up to two minutes (75_000 -> ``75 s``,
    1_500 -> ``1.5 s``), then minutes, hours or days (``3.5 h``, ``2857 days``)."""
    for unit, size, limit in (("s", 1_000, 120_000), ("min", 60_000, 7_200_000), ("h", 3_600_000, 172_800_000)):
        if ms < limit:
            return f"{ms / size:.4g} {unit}"
    return f"{ms / 86_400_000:.0f} days"
