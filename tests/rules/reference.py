"""The plain, per-position reference of DESIGN section 4, written for reading, not for speed.

Every rule is spelled out for one position at a time, every level computed from the rule where it is
used (the kernel precomputes them when a position opens). The vectorised kernel
(engine/rules/kernel.py) must produce exactly the same hits; tests/rules/test_kernel.py checks that
on random instruments, price paths, positions and parameters.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from engine.config.models import Instrument
from engine.rules.kernel import FIVE_DIGITS, Hit
from engine.rules.params import StrategyParams
from engine.rules.volatility import Horizon


@dataclass
class RefPosition:
    position_id: str
    params: StrategyParams
    side: int
    entry: float
    volume0: float
    stop: float
    take_profit: float
    instrument: Instrument = FIVE_DIGITS
    volume: float = field(init=False)
    best: float = field(init=False)
    armed: bool = False
    trailed: bool = False
    taken: set[str] = field(default_factory=set)  # the keys of the exit levels taken (ExitLevel.key)
    risk: float = field(init=False)

    def __post_init__(self) -> None:
        self.volume = self.volume0
        self.best = self.entry
        self.risk = abs(self.entry - self.stop) / self.entry if not math.isnan(self.stop) else math.nan

    def level(self, profit: float) -> float:
        """The price at ``profit`` (a fraction of entry) from the entry, on the tick grid: a long's levels
        round up, a short's down (docs/engine.md)."""
        return self.instrument.prices.toward_profit(self.entry * (1 + self.side * profit), self.side)

    def level_targets(self) -> list[float]:
        """What each exit level leaves open: the opened volume less its cumulative share, that share
        rounded down to the lot step."""
        lots = self.instrument.lots
        out, cumulative = [], 0.0
        for share in self.params.level_pct:
            cumulative += share
            out.append(lots.nearest(self.volume0 - lots.down(min(cumulative, 1.0) * self.volume0)))
        return out


def moves(delta: float, tighten: bool, step: float, half: float) -> bool:
    """Whether a level moves by ``delta`` (> 0: tighter; nan: none yet): by ``step`` or more, on the grid."""
    if math.isnan(delta):
        return True
    return delta >= step - half if tighten else abs(delta) >= step - half


def on_tick(p: RefPosition, bid: float, ask: float, sigma: dict[int, float]) -> tuple[list[Hit], bool]:
    """Apply one quote to one position; return its hits and whether it is now closed.

    ``sigma``: the symbol's volatility (a price distance) on each horizon that is ready, by ``Horizon.key``.

    A quote reaches a level when it is at the level or beyond it, read on the tick grid (within half a
    tick of the level counts as at it).
    """
    hits: list[Hit] = []
    s = p.side
    price = bid if s > 0 else ask
    prices, lots = p.instrument.prices, p.instrument.lots
    tick = prices.step
    half = tick / 2

    def reached(level: float) -> bool:  # a target or threshold: at it or beyond, toward profit
        return s * price > s * level - half

    # 1. stop
    if s * price < s * p.stop + half:
        hits.append(Hit(p.position_id, "close", "trailing_stop" if p.trailed else "stop_loss", price, p.volume, p.volume / p.volume0))
        return hits, True
    # 2. take profit
    if reached(p.take_profit):
        hits.append(Hit(p.position_id, "close", "take_profit", price, p.volume, p.volume / p.volume0))
        return hits, True
    prm = p.params
    # 4 (first half). best price and arming happen whatever the levels do
    p.best = max(p.best, bid) if s > 0 else min(p.best, ask)
    if prm.trail_on and reached(p.level(prm.trail_activation)):
        p.armed = True
    # 3. exit levels, lowest first, each at most once (by key: a reload keeps a level taken wherever it moved)
    targets = p.level_targets()
    minimum = p.instrument.volume_min * (1 - 1e-6)
    for j in range(len(prm.level_trigger)):
        if prm.level_keys[j] in p.taken:
            continue
        profit = prm.level_trigger[j] * p.risk if prm.level_is_r else prm.level_trigger[j]
        if math.isnan(profit) or not reached(p.level(profit)):
            break
        if prm.level_all[j]:
            volume = p.volume
        else:  # down to what the level leaves open; a close below the minimum waits for the next level
            volume = lots.nearest(max(p.volume - targets[j], 0.0))
            volume = 0.0 if volume < minimum else volume
        left = lots.nearest(p.volume - volume)
        if left <= 0.0 or left < minimum:
            volume, left = p.volume, 0.0
        p.volume = left
        p.taken.add(prm.level_keys[j])
        if volume > 0.0:
            hits.append(Hit(p.position_id, "close_partial", f"exit_levels.{j}", price, volume, volume / p.volume0))
        if left == 0.0:
            return hits, True
        if not math.isnan(prm.level_sl[j]):
            candidate = p.level(prm.level_sl[j])
            if moves(s * candidate - s * p.stop, True, tick, half):
                hits.append(Hit(p.position_id, "set_stop_loss", f"exit_levels.{j}", candidate, previous=p.stop))
                p.stop = candidate
    # 4. trailing
    if p.armed:
        d = prm.trail_distance
        if prm.trail_volatility and prm.trail_horizon.key in sigma:  # k x volatility, as a fraction of the best price
            d = min(max(prm.trail_k * sigma[prm.trail_horizon.key] / p.best, prm.trail_distance), prm.trail_max)
        candidate = prices.toward_profit(p.best * (1 - s * d), s)
        if moves(s * candidate - s * p.stop, True, prm.trail_min_step * tick, half):
            hits.append(Hit(p.position_id, "set_stop_loss", "trailing", candidate, previous=p.stop))
            p.stop = candidate
            p.trailed = True
    # 5. dynamic SL/TP
    if prm.dyn_on and prm.dyn_horizon.key in sigma:
        sig = sigma[prm.dyn_horizon.key]
        floor = prm.dyn_floor * tick  # the smallest stop distance; the target's keeps the ratio of the multiples
        tp_floor = prm.dyn_floor * tick * prm.dyn_tp_k / prm.dyn_stop_k
        cand_stop = prices.toward_profit(price - s * max(prm.dyn_stop_k * sig, floor), s)
        cand_tp = prices.toward_profit(price + s * max(prm.dyn_tp_k * sig, tp_floor), s)
        # signed distances: > 0 is a tighter stop, a target nearer the price
        step = prm.dyn_min_step * tick
        if moves(s * cand_stop - s * p.stop, prm.dyn_only_tighten, step, half):
            hits.append(Hit(p.position_id, "set_stop_loss", "dynamic_sltp", cand_stop, previous=p.stop))
            p.stop = cand_stop
        if moves(s * p.take_profit - s * cand_tp, prm.dyn_only_tighten, step, half):
            hits.append(Hit(p.position_id, "set_take_profit", "dynamic_sltp", cand_tp, previous=p.take_profit))
            p.take_profit = cand_tp
    return hits, False


def bar_volatility(quotes: list[tuple[int, float, float]], horizon: Horizon) -> float | None:
    """The volatility of ``horizon`` after ``quotes`` ((ts, bid, ask), in order), from scratch: the bars of
    the mids (a bar per quote for ``bar_ms`` 0), the true range or return of each closed bar against the
    close before it, then the mean (atr) or the population standard deviation times the last mid (stdev)
    of the last ``window``; None until ``window + 1`` bars have closed. The bar still forming does not count."""
    bars: list[list[float]] = []  # [bar, high, low, close]
    for ts, bid, ask in quotes:
        mid = (bid + ask) / 2
        bar = float(len(bars)) if horizon.bar_ms == 0 else float(ts // horizon.bar_ms)
        if bars and bar <= bars[-1][0]:
            bars[-1][1:] = [max(bars[-1][1], mid), min(bars[-1][2], mid), mid]
        else:
            bars.append([bar, mid, mid, mid])
    closed = bars if horizon.bar_ms == 0 else bars[:-1]
    values = []
    for (_, _, _, prev), (_, high, low, close) in itertools.pairwise(closed):
        values.append(max(high, prev) - min(low, prev) if horizon.measure == "atr" else close / prev - 1)
    if len(values) < horizon.window:
        return None
    last = values[-horizon.window:]
    if horizon.measure == "atr":
        return sum(last) / len(last)
    mean = sum(last) / len(last)
    mid = (quotes[-1][1] + quotes[-1][2]) / 2
    return math.sqrt(sum((x - mean) ** 2 for x in last) / len(last)) * mid
