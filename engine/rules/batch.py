"""Replay recorded events fast: runs of quiet quotes in compiled code, every other event as live.

A replay (``riskrail plan``) knows its whole history in advance, and on most
quotes nothing happens: no position is touched, no rule can fire, no period begins. ``replay_events``
hands each run of consecutive quotes of one symbol to the compiled kernel (``_scan.scan``), which
applies them while they stay quiet and stops before the first quote on which anything could happen:

- a hit of any position (stop, target, exit level, trailing or dynamic stop move);
- a daily or weekly reset;
- an equity above the peak or beyond the daily-loss limit (the equity computed to the bit as the
  evaluator does, numpy's pairwise sum included; with a margin if numpy ever adds up otherwise);
- a custom rule that could hold: ``vector.could_hold`` over the bounds of the next quotes (prices,
  PnL, equity, age, clock), every other field exact or unknown.

That quote, and every event that is not a quote, goes through ``Engine.process`` as in a live run.
A quote opening a sampling period or bar ends the run after it is applied, and the evaluator's own
``_sample`` records the equity (``Engine.advance_quiet``). The quiet quotes change exactly what they change there: the symbol's
volatility, each position's best price, arming and time in profit, the open PnL per strategy (same
operations in the same order), the last quote, the bar close, the counters and the sequence
numbers. So the actions, their ids and the engine's state are those of the per-event replay;
``tests/rules/test_batch.py`` checks it on the shipped EURUSD ticks and on generated histories.
This module reads the engine's public state and mirrors ``Engine._on_tick``; what a quiet quote
changes outside the kernel is ``Engine.advance_quiet``, beside ``_on_tick``: a change of one needs its
counterpart in the other (the differential tests fail otherwise).

Runs interleaving several symbols quote by quote are not batched (each run is one quote), nor are
symbols whose conversion rate moves with their own quotes (a JPY-quoted pair in a USD account).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
from numpy.typing import DTypeLike

from engine.actions import Action
from engine.config.models import Instruments
from engine.events import Event, Tick
from engine.rules import _scan, allocation
from engine.rules.contexts import WEEKDAYS
from engine.rules.evaluator import SAMPLE_MS, Engine
from engine.rules.kernel import SymbolBook
from engine.rules.levels import levels_hit
from engine.rules.vector import Bound, Interval, LazyColumns, could_hold
from engine.rules.volatility import Volatility

_PAD = 1e-9  # relative margin on the bounds of prices, PnL and equity: far above rounding
_WINDOW = 2048  # quotes one proof that no custom rule can fire covers (wider: fewer proofs, looser bounds)

# what a proof that no custom rule can fire reads and a quiet quote may still change: the actions so
# far, the events that are not quotes, the peak equity, the day and its starting equity
_ProofState = tuple[int, int, float, str, float]


@dataclass
class TickColumns:
    """The quotes of a history as arrays, decoded once and shared by the replays of a plan."""

    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    sym: np.ndarray  # symbol index per event, -1 for events that are not quotes
    symbols: list[str]
    run_end: np.ndarray = field(init=False)  # per event, the end of its run of consecutive quotes of one symbol

    def __post_init__(self) -> None:
        n = self.ts.size
        change = np.ones(n, dtype=bool)
        if n > 1:
            change[1:] = (self.sym[1:] != self.sym[:-1]) | (self.sym[1:] < 0) | (self.sym[:-1] < 0)
        starts = np.flatnonzero(change)
        self.run_end = np.repeat(np.append(starts[1:], n), np.diff(np.append(starts, n)))


def tick_columns(events: Sequence[Event]) -> TickColumns:
    """Decode the quotes of ``events`` into arrays."""
    n = len(events)
    ts = np.zeros(n, dtype=np.int64)
    bid = np.full(n, np.nan)
    ask = np.full(n, np.nan)
    sym = np.full(n, -1, dtype=np.int64)
    index: dict[str, int] = {}
    for k, e in enumerate(events):
        if isinstance(e, Tick):
            ts[k], bid[k], ask[k] = e.ts, e.bid, e.ask
            sym[k] = index.setdefault(e.symbol, len(index))
    return TickColumns(ts, bid, ask, sym, list(index))


def replay_events(engine: Engine, events: Sequence[Event], columns: TickColumns | None = None,
                  progress: Callable[[int], None] | None = None) -> list[Action]:
    """Process ``events`` through ``engine``, quiet quotes in batches; return every action, in order.

    The result and the engine's state are those of calling ``engine.process`` on each event.
    """
    return _Batch(engine, events, columns or tick_columns(events)).run(progress)


class _Batch:
    def __init__(self, engine: Engine, events: Sequence[Event], columns: TickColumns) -> None:
        self.engine = engine
        self.events = events
        self.cols = columns
        self._silent: tuple[int, int, _ProofState] | None = None  # (window start, window end, what the proof read): no rule can fire
        self._work: dict[str, dict[str, np.ndarray]] = {}

    def run(self, progress: Callable[[int], None] | None) -> list[Action]:
        engine, events, cols = self.engine, self.events, self.cols
        out: list[Action] = []
        run_end = cols.run_end
        sym = cols.sym
        n = len(events)
        i = 0
        next_report = 10_000
        while i < n:
            if sym[i] >= 0:
                j = self._quiet(i, int(run_end[i]))
                if j > i:
                    i = j
                    while progress is not None and i >= next_report:  # once per 10 000 events, as event by event
                        progress(next_report)
                        next_report += 10_000
                    continue
            out.extend(engine.process(events[i]))
            i += 1
            while progress is not None and i >= next_report:
                progress(next_report)
                next_report += 10_000
        return out

    # --- a run of quiet quotes ------------------------------------------------------------------

    def _quiet(self, lo: int, end: int) -> int:
        """Apply quotes ``lo..`` of one run while they are quiet; return the first one not applied."""
        engine = self.engine
        symbol = self.cols.symbols[self.cols.sym[lo]]
        kernel = engine.kernels.get(symbol)
        if kernel is None or (quoted := kernel.last_ts) is None or engine.last_ts is None or not engine.curve:
            return lo
        daily, weekly = engine.resets.next_daily, engine.resets.next_weekly
        if daily is None or weekly is None or not engine.day.key or engine.day.start_equity <= 0:
            return lo
        bars = engine.bars.get(symbol)
        old = engine.open_pnl.by_symbol.get(symbol)
        ncodes = len(engine.codes)
        if bars is None or not bars.closes or old is None or old.size != ncodes or engine.open_pnl.total.size != ncodes:
            return lo
        scale = self._scale(symbol)
        if scale is None:
            return lo
        hi = self._rules_silent(symbol, lo, min(end, lo + _WINDOW))
        if hi <= lo:
            return lo
        limit = min(daily, weekly)
        vol = engine.vols[symbol]
        w = self._buffers(symbol, kernel, vol)
        unreal = old.copy()
        j, last_ts, boundary = _scan.scan(
            lo, hi, self.cols.ts, self.cols.bid, self.cols.ask, quoted, limit, SAMPLE_MS,
            engine.curve[-1][0] // SAMPLE_MS, bars.bar_ms, bars.closes[-1][0],
            kernel.n, kernel.grid, kernel.F, kernel.I, kernel.B, kernel.L, vol.sizes, vol.bufs, vol.S,
            *kernel.scratch(), w["F"], w["I"], w["B"], w["S"], w["slots"],
            float(scale), unreal, engine.open_pnl.total, w["new"], w["totals"],
            engine.equity0 + engine.book.realized(), engine.peak_equity, engine.day.start_equity,
            engine.rules.limits.daily_loss.max, engine.day.breached, _EXACT_SUM and ncodes <= 128, w["full"], w["band"])
        if j > lo:
            self._commit(symbol, kernel, lo, j, int(last_ts), unreal, boundary)
        return j

    def _commit(self, symbol: str, kernel: SymbolBook, lo: int, hi: int, last_ts: int, unreal: np.ndarray, boundary: bool) -> None:
        """What quotes ``lo..hi-1`` leave besides the kernel and volatility arrays (scan wrote those);
        ``boundary``: the last one opened a sampling period or bar."""
        # the events of a run are quotes (``TickColumns.sym`` marks them)
        last = cast(Tick, self.events[hi - 1])
        before = cast(Tick, self.events[hi - 2]) if boundary and hi - 2 >= lo else None
        kernel.quoted(last.bid, last.ask, last_ts)
        self.engine.advance_quiet(symbol, hi - lo, last, before, unreal, boundary)

    def _scale(self, symbol: str) -> float | None:
        """The factor from price x volume to account currency, when the quotes of ``symbol`` leave it fixed."""
        conv = self.engine.converter
        spec = conv.spec(symbol)
        ccy = spec.quote_currency
        if ccy != conv.account and symbol in (ccy + conv.account, conv.account + ccy):
            return None
        rate = conv.rate(ccy)
        return spec.contract_size * (rate if not math.isnan(rate) else 0.0)

    def _buffers(self, symbol: str, kernel: SymbolBook, vol: Volatility) -> dict[str, np.ndarray]:
        w = self._work.get(symbol)
        cap = kernel.F.shape[1]
        ncodes = len(self.engine.codes)
        if w is None or w["F"].shape[1] < cap or w["new"].size != ncodes or w["S"].shape != vol.S.shape:
            w = {"F": np.zeros((4, cap)), "I": np.zeros((2, cap), dtype=np.int64), "B": np.zeros((3, cap), dtype=bool),
                 "S": np.zeros_like(vol.S), "slots": np.zeros(max(vol.sizes.size, 1)),
                 "new": np.zeros(ncodes), "totals": np.zeros(ncodes), "full": np.zeros(cap, dtype=np.int64), "band": np.zeros(6)}
            self._work[symbol] = w
        return w

    # --- custom rules -----------------------------------------------------------------------------

    def _rules_silent(self, symbol: str, lo: int, hi: int) -> int:
        """Return the end of the quotes from ``lo`` on which no custom rule, no band watch and no weekly
        target can fire (``lo``: none)."""
        engine = self.engine
        if not self._capital_silent(symbol, lo, hi):
            return lo
        if not engine.custom:
            return hi
        state: _ProofState = (engine.counts["actions"], engine.counts["events"] - engine.counts["ticks"], engine.peak_equity,
                              engine.day.key, engine.day.start_equity)
        known = self._silent
        if known is not None and known[0] <= lo < known[1] and known[2] == state:
            return known[1]  # a window found silent, nothing its proof read has moved since
        if self._prove_silent(symbol, lo, hi):
            self._silent = (lo, hi, state)
            return hi
        self._silent = None
        return lo

    def _capital_silent(self, symbol: str, lo: int, hi: int) -> bool:
        """Whether the capital watches (``engine.rules.allocation.watch``) stay as they are over quotes
        ``lo..hi-1``: every strategy's capital share bounded on the side of its band it is on now (inside,
        or outside where it was alerted), and the equity below the weekly target while not reached."""
        engine = self.engine
        kernel = engine.kernels[symbol]
        bids, asks = self.cols.bid[lo:hi], self.cols.ask[lo:hi]
        n, scale = kernel.n, self._scale(symbol) or 0.0
        side, entry, vol = kernel.side[:n], kernel.entry[:n], kernel.vol[:n]
        ends = [side * (np.where(side > 0, b, a) - entry) * vol * scale
                for b, a in ((float(bids.min()), float(asks.max())), (float(bids.max()), float(asks.min())))]
        u_lo, u_hi = np.minimum(*ends), np.maximum(*ends)
        now = engine.open_pnl.by_symbol[symbol]
        equity = engine.equity
        moved = (equity + float(u_lo.sum() - now.sum()), equity + float(u_hi.sum() - now.sum()))
        pad = _PAD * abs(equity) + _PAD
        eq_lo, eq_hi = moved[0] - pad, moved[1] + pad
        week = engine.week
        if not week.reached and eq_hi >= week.start_equity * (1 + engine.rules.profit.weekly_growth_target):
            return False
        if eq_lo <= 0:
            return False
        names = kernel.strategies[:n]
        for name, s in engine.rules.strategies.items():
            mine = np.array([x == name for x in names], dtype=bool)
            code = engine.codes.get(name)
            fixed = allocation.capital(engine, name) - (float(now[code]) if code is not None and code < now.size else 0.0)
            c_lo, c_hi = fixed + float(u_lo[mine].sum()) - pad, fixed + float(u_hi[mine].sum()) + pad
            shares = (min(c_lo / eq_lo, c_lo / eq_hi), max(c_hi / eq_lo, c_hi / eq_hi))
            band, out = s.allocation, name in engine.outside
            inside = band.min - 1e-12 <= shares[0] and shares[1] <= band.max + 1e-12
            below, above = shares[1] < band.min - 1e-12, shares[0] > band.max + 1e-12
            if (not out and not inside) or (out and not (below or above)):
                return False
        return True

    def _prove_silent(self, symbol: str, lo: int, hi: int) -> bool:
        """Whether ``could_hold`` rules out every custom rule over the bounds of quotes ``lo..hi-1``.

        Fields are built lazily, only those the rules read: exact where a quiet quote cannot change
        them, bounds where it can (prices, PnL, equity, age), absent (anything) otherwise.
        """
        engine = self.engine
        cols = self.cols
        kernel = engine.kernels[symbol]
        bids, asks, ts = cols.bid[lo:hi], cols.ask[lo:hi], cols.ts[lo:hi]
        blo, bhi, alo, ahi = float(bids.min()), float(bids.max()), float(asks.min()), float(asks.max())
        t0, t1 = int(ts.min()), int(ts.max())
        n = kernel.n
        scale = self._scale(symbol) or 0.0
        side, entry, vol = kernel.side[:n], kernel.entry[:n], kernel.vol[:n]
        p1 = np.where(side > 0, blo, ahi)  # the worst and the best exit price of each position
        p2 = np.where(side > 0, bhi, alo)

        @functools.cache
        def pnl() -> tuple[np.ndarray, np.ndarray]:
            u1, u2 = side * (p1 - entry) * vol * scale, side * (p2 - entry) * vol * scale
            return np.minimum(u1, u2), np.maximum(u1, u2)

        @functools.cache
        def profit() -> tuple[np.ndarray, np.ndarray]:
            q1, q2 = side * (p1 - entry) / entry, side * (p2 - entry) / entry
            return np.minimum(q1, q2), np.maximum(q1, q2)

        @functools.cache
        def equity() -> tuple[float, float]:
            # the other symbols' open PnL is fixed, this symbol's moves with its quotes
            others = float(engine.open_pnl.total.sum() - engine.open_pnl.by_symbol[symbol].sum())
            base = engine.equity0 + engine.book.realized() + others
            lo_u, hi_u = float(pnl()[0].sum()), float(pnl()[1].sum())
            pad = _PAD * (abs(base) + abs(lo_u) + abs(hi_u)) + _PAD
            return base + lo_u - pad, base + hi_u + pad

        def exposure() -> Interval | None:
            eq_lo, eq_hi = equity()
            if eq_lo <= 0:
                return None
            gross = sum(engine.converter.notional(p.symbol, p.entry, p.volume) for p in engine.book.open_positions())
            return Interval(gross / eq_hi * (1 - _PAD), gross / eq_lo * (1 + _PAD))

        start, peak = engine.day.start_equity, engine.peak_equity
        scalars: dict[str, Any] = {"portfolio.open_positions": engine.book.n_open, "tick.symbol": symbol,
                                   **_clock(t0, t1, engine.rules.instruments)}
        makers: dict[str, Callable[[], Any]] = {
            "portfolio.equity": lambda: Interval(*equity()),
            "portfolio.daily_pnl": lambda: Interval(equity()[0] - start, equity()[1] - start),
            "portfolio.daily_return": lambda: Interval((equity()[0] - start) / start, (equity()[1] - start) / start),
            "portfolio.drawdown": lambda: Interval((peak - equity()[1]) / peak, (peak - equity()[0]) / peak) if peak > 0 else 0.0,
            "portfolio.halted": lambda: engine.portfolio.halted(engine.version) is not None,
            "portfolio.exposure": exposure,
            "tick.bid": lambda: _interval(blo, bhi), "tick.ask": lambda: _interval(alo, ahi),
            "tick.mid": lambda: _interval(float(((bids + asks) / 2).min()), float(((bids + asks) / 2).max())),
            "tick.spread": lambda: _interval(float((asks - bids).min()), float((asks - bids).max())),
        }
        shared = _Known(scalars, makers)
        if engine.custom.may_act(engine, shared, t0, t1):  # a rule that may fire, or a latch that may re-arm
            return False
        if not engine.custom.position or n == 0:
            return True
        return self._positions_silent(symbol, scalars, makers, (t0, t1), pnl, profit)

    def _positions_silent(self, symbol: str, scalars: dict[str, Any], makers: dict[str, Callable[[], Any]],
                          times: tuple[int, int], pnl: Callable[[], tuple[np.ndarray, np.ndarray]],
                          profit: Callable[[], tuple[np.ndarray, np.ndarray]]) -> bool:
        """Whether ``could_hold`` rules out every custom position rule over the window ``_prove_silent``
        bounded: ``scalars`` and ``makers`` its portfolio fields, ``times`` its first and last quote time,
        ``pnl`` and ``profit`` the bounds of each position's."""
        engine = self.engine
        kernel = engine.kernels[symbol]
        n = kernel.n
        t0, t1 = times
        side, entry, vol = kernel.side[:n], kernel.entry[:n], kernel.vol[:n]
        names = kernel.strategies
        per_strategy = functools.cache(lambda f: {name: f(name) for name in set(names)})

        def by_strategy(f: Callable[[str], float], dtype: DTypeLike = np.float64) -> Callable[[], np.ndarray]:
            return lambda: np.array([per_strategy(f)[name] for name in names], dtype=dtype)

        def r_multiple() -> Interval:
            with np.errstate(divide="ignore", invalid="ignore"):
                risk = kernel.risk[:n]
                return Interval(*_padded(profit()[0] / risk, profit()[1] / risk))

        opened = kernel.opened[:n]
        rows = _Known({**scalars, "position.symbol": symbol}, {
            **makers,
            "position.id": lambda: np.array(kernel.ids, dtype=object),
            "position.strategy_type": lambda: np.array(names, dtype=object),
            "position.strategy_name": lambda: np.array([engine.book.positions[pid].strategy_name for pid in kernel.ids], dtype=object),
            "position.side": lambda: np.where(side > 0, "long", "short").astype(object),
            "position.volume": lambda: vol.copy(), "position.entry_price": lambda: entry.copy(),
            "position.stop_loss": lambda: kernel.stop[:n].copy(), "position.take_profit": lambda: kernel.tp[:n].copy(),
            "position.levels_hit": lambda: levels_hit(kernel.taken[:n]),
            "position.profit": lambda: Interval(*_padded(*profit())),
            "position.pnl": lambda: Interval(*_padded(*pnl())),
            "position.r_multiple": r_multiple,
            "position.age_seconds": lambda: Interval((t0 - opened) / 1000 - _PAD, (t1 - opened) / 1000 + _PAD),
            "position.age": lambda: Interval((t0 - opened) / 1000 - _PAD, (t1 - opened) / 1000 + _PAD),
            "strategy.name": lambda: np.array(names, dtype=object),
            "strategy.open_positions": by_strategy(lambda s: engine.book.open_count.get(s, 0)),
            "strategy.realized_pnl": by_strategy(engine.book.realized),
            "strategy.allocation": by_strategy(lambda s: engine.rules.strategies[s].allocation.target
                                               if s in engine.rules.strategies else 0.0),
            # strategy.drawdown (from the peak to the strategy's equity now) moves with every quote: unknown
        })
        for rule in engine.custom.position:
            maybe = could_hold(engine.custom.nnf[rule.name], rows, n)
            if maybe.any() and any((rule.name, kernel.ids[i]) not in engine.custom.posted for i in np.flatnonzero(maybe).tolist()):
                return False
        return True


class _Known(LazyColumns):
    """Fields built on first read; a maker returning None leaves its field unknown."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key) and self[key] is not None


def _exact_sum() -> bool:
    """Whether ``_scan.np_sum`` adds up as this numpy does (then the scan decides equity thresholds exactly)."""
    rng = np.random.default_rng(0)
    for n in [*range(1, 20), 31, 64, 127, 128]:
        for _ in range(20):
            a = rng.normal(0, 1, n) * 10.0 ** rng.integers(-6, 8, n)
            if _scan.np_sum(a, n) != float(a.sum()):
                return False
    return True


_EXACT_SUM = _exact_sum()


def _clock(t0: int, t1: int, instruments: Instruments) -> dict[str, Any]:
    """The clock fields over times ``t0..t1`` (ms): exact, or bounds, or unknown across midnight; the session
    when it is the same at every minute of a run shorter than an hour (sessions open and close on the minute)."""
    d0 = datetime.fromtimestamp((t0 // 60_000) * 60, tz=UTC)
    d1 = datetime.fromtimestamp((t1 // 60_000) * 60, tz=UTC)
    if d0.date() != d1.date():
        return {}
    out: dict[str, Any] = {"clock.weekday": WEEKDAYS[d0.weekday()], "clock.hour": Interval(d0.hour, d1.hour)}
    out["clock.minute"] = Interval(d0.minute, d1.minute) if d0.hour == d1.hour else Interval(0, 59)
    first, last = t0 // 60_000, t1 // 60_000
    sessions = {instruments.session_at(m * 60_000) for m in range(first, last + 1)} if last - first < 60 else set()
    if len(sessions) == 1:
        out["clock.session"] = sessions.pop()
    return out


def _interval(lo: float, hi: float) -> Interval:
    return Interval(*_padded(lo, hi))


def _padded(lo: Bound, hi: Bound) -> tuple[Bound, Bound]:
    with np.errstate(invalid="ignore"):
        return lo - _PAD * np.abs(lo) - 1e-15, hi + _PAD * np.abs(hi) + 1e-15
