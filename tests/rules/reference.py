"""The plain, per-position reference of DESIGN section 4, written for reading, not for speed.

Every rule is spelled out for one position at a time. The vectorised kernel
(engine/rules/kernel.py) must produce exactly the same hits; tests/rules/test_kernel.py checks that
on random price paths, positions and parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.rules.kernel import Hit
from engine.rules.params import StrategyParams


@dataclass
class RefPosition:
    position_id: str
    params: StrategyParams
    side: int
    entry: float
    volume0: float
    stop: float
    take_profit: float
    volume: float = field(init=False)
    best: float = field(init=False)
    armed: bool = False
    trailed: bool = False
    levels_taken: int = 0
    risk: float = field(init=False)

    def __post_init__(self) -> None:
        self.volume = self.volume0
        self.best = self.entry
        self.risk = abs(self.entry - self.stop) / self.entry if not math.isnan(self.stop) else math.nan


def tighter(side: int, candidate: float, current: float) -> bool:
    """A stop is tighter when it is nearer the price: higher for a long, lower for a short."""
    if math.isnan(current):
        return True
    return candidate > current if side > 0 else candidate < current


def on_tick(p: RefPosition, bid: float, ask: float, sigma: dict[int, float], point: float = 0.0) -> tuple[list[Hit], bool]:
    """Apply one quote to one position; return its hits and whether it is now closed.

    ``point`` is the symbol's price step: a dynamic SL/TP move smaller than it is not made.
    """
    hits: list[Hit] = []
    s = p.side
    price = bid if s > 0 else ask
    # 1. stop
    stop_hit = (bid <= p.stop) if s > 0 else (ask >= p.stop)
    if stop_hit:
        hits.append(Hit(p.position_id, "close", "trailing_stop" if p.trailed else "stop_loss", price, p.volume, p.volume / p.volume0))
        return hits, True
    # 2. take profit
    tp_hit = (bid >= p.take_profit) if s > 0 else (ask <= p.take_profit)
    if tp_hit:
        hits.append(Hit(p.position_id, "close", "take_profit", price, p.volume, p.volume / p.volume0))
        return hits, True
    profit = s * (price - p.entry) / p.entry
    # 4 (first half). best price and arming happen whatever the levels do
    p.best = max(p.best, bid) if s > 0 else min(p.best, ask)
    if p.params.trail_on and profit >= p.params.trail_activation:
        p.armed = True
    # 3. exit levels, lowest first, each at most once
    prm = p.params
    for j in range(p.levels_taken, len(prm.level_trigger)):
        trigger = prm.level_trigger[j] * p.risk if prm.level_is_r else prm.level_trigger[j]
        if not profit >= trigger:
            break
        if prm.level_all[j]:
            volume = p.volume
        else:
            volume = min(prm.level_pct[j] * p.volume0, p.volume)
        left = p.volume - volume
        if left <= p.volume0 * 1e-9:
            volume, left = p.volume, 0.0
        p.volume = left
        p.levels_taken = j + 1
        hits.append(Hit(p.position_id, "close_partial", f"exit_levels.{j}", price, volume, volume / p.volume0))
        if left == 0.0:
            return hits, True
        if not math.isnan(prm.level_sl[j]):
            candidate = p.entry * (1 + s * prm.level_sl[j])
            if tighter(s, candidate, p.stop):
                hits.append(Hit(p.position_id, "set_stop_loss", f"exit_levels.{j}", candidate, previous=p.stop))
                p.stop = candidate
    # 4. trailing
    if p.armed:
        d = prm.trail_distance
        if prm.trail_volatility and prm.trail_window in sigma:
            d = min(max(prm.trail_k * sigma[prm.trail_window], prm.trail_distance), prm.trail_max)
        candidate = p.best * (1 - s * d)
        if tighter(s, candidate, p.stop):
            hits.append(Hit(p.position_id, "set_stop_loss", "trailing", candidate, previous=p.stop))
            p.stop = candidate
            p.trailed = True
    # 5. dynamic SL/TP
    if prm.dyn_on and prm.dyn_window in sigma:
        sig = sigma[prm.dyn_window]
        cand_stop = price * (1 - s * prm.dyn_stop_k * sig)
        cand_tp = price * (1 + s * prm.dyn_tp_k * sig)
        # signed distances: > 0 is a tighter stop, a target nearer the price
        d_stop = s * cand_stop - s * p.stop
        d_tp = s * p.take_profit - s * cand_tp
        if prm.dyn_only_tighten:
            move_stop = math.isnan(d_stop) or (d_stop > 0 and d_stop >= point)
            move_tp = math.isnan(d_tp) or (d_tp > 0 and d_tp >= point)
        else:
            move_stop = math.isnan(d_stop) or (d_stop != 0 and abs(d_stop) >= point)
            move_tp = math.isnan(d_tp) or (d_tp != 0 and abs(d_tp) >= point)
        if move_stop:
            hits.append(Hit(p.position_id, "set_stop_loss", "dynamic_sltp", cand_stop, previous=p.stop))
            p.stop = cand_stop
        if move_tp:
            hits.append(Hit(p.position_id, "set_take_profit", "dynamic_sltp", cand_tp, previous=p.take_profit))
            p.take_profit = cand_tp
    return hits, False
