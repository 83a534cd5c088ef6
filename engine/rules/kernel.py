"""The hot path: one symbol's open positions in numpy arrays, updated by a tick in a few vector operations.

``SymbolBook.on_tick`` applies DESIGN section 4 to every open position of the symbol, in this order:
stop, take profit, exit levels (lowest first, each at most once, several on one tick), trailing, dynamic
SL/TP. Only the positions where something happens produce ``Hit`` records (sparse), which the
evaluator turns into actions. ``tests/rules/reference.py`` holds the plain per-position version of the
same semantics; a property test checks both give identical hits.

Arithmetic is written in the same order as the reference so both round identically:
profit = side * (price - entry) / entry, trailing candidate = best * (1 - side * d).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.rules.params import StrategyParams

_EMPTY = 1e-9  # remaining volume below this fraction of the original is nothing


@dataclass(frozen=True)
class Hit:
    """Something that happened to one position on one tick.

    ``kind``: close, close_partial, set_stop_loss or set_take_profit. ``rule``: stop_loss,
    trailing_stop, take_profit, exit_levels.<j>, trailing or dynamic_sltp. For closes ``price`` is the
    fill (the tick's bid for a long, ask for a short) and ``volume`` the volume closed; for moves
    ``price`` is the new level and ``previous`` the old one.
    """

    position_id: str
    kind: str
    rule: str
    price: float
    volume: float = 0.0
    fraction: float = 0.0
    previous: float = math.nan


@dataclass
class PositionState:
    """A position's managed state, as the kernel holds it (for snapshots and reloads)."""

    position_id: str
    strategy: str
    side: int
    entry: float
    volume0: float
    volume: float
    stop: float
    take_profit: float
    best: float
    armed: bool
    trailed: bool
    hits: int
    risk: float


class SymbolBook:
    """Open positions of one symbol, column by column."""

    def __init__(self, symbol: str, params: Mapping[str, StrategyParams], capacity: int = 16,
                 codes: dict[str, int] | None = None) -> None:
        self.symbol = symbol
        self._params = dict(params)
        # strategy name -> small int, for per-strategy sums (np.bincount)
        self.codes = codes if codes is not None else {name: i for i, name in enumerate(sorted(params))}
        self.n = 0
        self.ids: list[str] = []
        self.strategies: list[str] = []
        self.removed_time_in_profit: dict[str, int] = {}
        self.bid = self.ask = math.nan
        self._alloc(capacity)

    # --- storage --------------------------------------------------------------------------------

    def _alloc(self, cap: int) -> None:
        old = getattr(self, "_cap", 0)
        self._cap = cap
        f = lambda fill: np.full(cap, fill, dtype=np.float64)  # noqa: E731
        b = lambda: np.zeros(cap, dtype=bool)  # noqa: E731
        cols = {
            "side": f(0.0), "entry": f(0.0), "vol0": f(0.0), "vol": f(0.0), "stop": f(np.nan),
            "tp": f(np.nan), "best": f(np.nan), "risk": f(np.nan),
            "armed": b(), "trailed": b(), "hits": np.zeros(cap, dtype=np.int64),
            # bookkeeping for metrics and conditions: strategy code, open time, time in profit
            "code": np.zeros(cap, dtype=np.int64), "opened": np.zeros(cap, dtype=np.int64),
            "tip": np.zeros(cap, dtype=np.int64), "inprof": b(), "last": np.zeros(cap, dtype=np.int64),
            # parameters, copied from the position's strategy (refilled on reload)
            "trail_on": b(), "trail_d": f(np.nan), "trail_act": f(np.inf), "trail_max": f(np.inf),
            "trail_vol": b(), "trail_k": f(0.0), "trail_w": np.zeros(cap, dtype=np.int64),
            "dyn_on": b(), "dyn_w": np.zeros(cap, dtype=np.int64), "dyn_sk": f(0.0), "dyn_tk": f(0.0), "dyn_tight": b(),
        }
        for name, arr in cols.items():
            if old:
                arr[:old] = getattr(self, name)[:old]
            setattr(self, name, arr)
        levels = max([len(p.level_trigger) for p in self._params.values()] + [1])
        self._alloc_levels(cap, levels, old)

    def _alloc_levels(self, cap: int, levels: int, old: int) -> None:
        thr = np.full((cap, levels), np.inf)
        pct = np.zeros((cap, levels))
        sl = np.full((cap, levels), np.nan)
        closes_all = np.zeros((cap, levels), dtype=bool)
        if old:
            keep = min(levels, self.thr.shape[1])
            thr[:old, :keep] = self.thr[:old, :keep]
            pct[:old, :keep] = self.pct[:old, :keep]
            sl[:old, :keep] = self.sl[:old, :keep]
            closes_all[:old, :keep] = self.closes_all[:old, :keep]
        self.thr, self.pct, self.sl, self.closes_all = thr, pct, sl, closes_all

    def _fill_params(self, i: int) -> None:
        p = self._params[self.strategies[i]]
        self.trail_on[i] = p.trail_on
        self.trail_d[i] = p.trail_distance
        self.trail_act[i] = p.trail_activation
        self.trail_max[i] = p.trail_max
        self.trail_vol[i] = p.trail_volatility
        self.trail_k[i] = p.trail_k
        self.trail_w[i] = p.trail_window
        self.dyn_on[i] = p.dyn_on
        self.dyn_w[i] = p.dyn_window
        self.dyn_sk[i] = p.dyn_stop_k
        self.dyn_tk[i] = p.dyn_tp_k
        self.dyn_tight[i] = p.dyn_only_tighten
        k = len(p.level_trigger)
        self.thr[i, :] = np.inf
        self.pct[i, :] = 0.0
        self.sl[i, :] = np.nan
        self.closes_all[i, :] = False
        if k:
            trig = np.asarray(p.level_trigger, dtype=np.float64)
            self.thr[i, :k] = trig * self.risk[i] if p.level_is_r else trig
            self.pct[i, :k] = p.level_pct
            self.sl[i, :k] = p.level_sl
            self.closes_all[i, :k] = p.level_all

    def add(self, position_id: str, strategy: str, side: int, entry: float, volume: float,
            stop: float, take_profit: float, ts: int = 0) -> None:
        """Start managing a position (``side`` +1 long, -1 short; ``stop``/``take_profit`` nan for none)."""
        if self.n == self._cap:
            self._alloc(self._cap * 2)
        i = self.n
        self.codes.setdefault(strategy, len(self.codes))
        self.code[i] = self.codes[strategy]
        self.opened[i] = ts
        self.last[i] = ts
        self.tip[i] = 0
        self.inprof[i] = False
        self.ids.append(position_id)
        self.strategies.append(strategy)
        self.side[i] = side
        self.entry[i] = entry
        self.vol0[i] = volume
        self.vol[i] = volume
        self.stop[i] = stop
        self.tp[i] = take_profit
        self.best[i] = entry
        self.armed[i] = False
        self.trailed[i] = False
        self.hits[i] = 0
        # initial risk as a fraction of entry: what r_multiple levels are measured in
        self.risk[i] = abs(entry - stop) / entry if not math.isnan(stop) else math.nan
        self.n += 1
        self._fill_params(i)

    def restore(self, state: PositionState) -> None:
        """Add a position with its full managed state (a restart, or a reload that keeps state)."""
        self.add(state.position_id, state.strategy, state.side, state.entry, state.volume0, state.stop, state.take_profit)
        i = self.n - 1
        self.vol[i] = state.volume
        self.best[i] = state.best
        self.armed[i] = state.armed
        self.trailed[i] = state.trailed
        self.hits[i] = state.hits
        self.risk[i] = state.risk
        self._fill_params(i)

    def remove(self, position_id: str) -> None:
        """Stop managing a position (closed or taken over)."""
        i = self.ids.index(position_id)
        self._remove_index(i)

    def _remove_index(self, i: int) -> None:
        self.removed_time_in_profit[self.ids[i]] = int(self.tip[i])
        last = self.n - 1
        if i != last:
            for name in ("side", "entry", "vol0", "vol", "stop", "tp", "best", "risk", "armed", "trailed", "hits",
                         "code", "opened", "tip", "inprof", "last",
                         "trail_on", "trail_d", "trail_act", "trail_max", "trail_vol", "trail_k", "trail_w",
                         "dyn_on", "dyn_w", "dyn_sk", "dyn_tk", "dyn_tight"):
                arr = getattr(self, name)
                arr[i] = arr[last]
            for arr in (self.thr, self.pct, self.sl, self.closes_all):
                arr[i] = arr[last]
            self.ids[i] = self.ids[last]
            self.strategies[i] = self.strategies[last]
        self.ids.pop()
        self.strategies.pop()
        self.n -= 1

    def state(self, position_id: str) -> PositionState:
        """Return a position's managed state."""
        i = self.ids.index(position_id)
        return PositionState(self.ids[i], self.strategies[i], int(self.side[i]), float(self.entry[i]), float(self.vol0[i]),
                             float(self.vol[i]), float(self.stop[i]), float(self.tp[i]), float(self.best[i]),
                             bool(self.armed[i]), bool(self.trailed[i]), int(self.hits[i]), float(self.risk[i]))

    def reduce(self, position_id: str, volume: float) -> None:
        """Take ``volume`` off a position closed partly from outside the kernel (its original volume stays)."""
        i = self.ids.index(position_id)
        self.vol[i] = max(float(self.vol[i]) - volume, 0.0)

    def set_levels(self, position_id: str, stop: float | None = None, take_profit: float | None = None) -> None:
        """Set a position's stop or target from outside the kernel (a custom rule, a broker update)."""
        i = self.ids.index(position_id)
        if stop is not None:
            self.stop[i] = stop
        if take_profit is not None:
            self.tp[i] = take_profit

    def reload(self, params: Mapping[str, StrategyParams]) -> None:
        """Swap in new strategy parameters; positions keep their state (best price, levels hit, stops)."""
        self._params = dict(params)
        levels = max([len(p.level_trigger) for p in self._params.values()] + [1])
        if levels != self.thr.shape[1]:
            self._alloc_levels(self._cap, levels, self._cap)
        for i in range(self.n):
            self._fill_params(i)

    # --- the tick -------------------------------------------------------------------------------

    def on_tick(self, bid: float, ask: float, sigma: Mapping[int, float] | None = None, ts: int | None = None) -> list[Hit]:
        """Apply one quote to every open position; return what happened, position by position in order.

        ``sigma`` maps a volatility window (ticks) to the symbol's current volatility of mid returns;
        a missing window means not enough history yet (volatility trailing then uses its floor
        distance, dynamic SL/TP waits). ``ts`` (epoch ms) advances each position's time in profit.
        """
        self.bid, self.ask = bid, ask
        n = self.n
        if n == 0:
            return []
        sigma = sigma or {}
        side = self.side[:n]
        entry = self.entry[:n]
        stop = self.stop[:n]
        tp = self.tp[:n]
        long = side > 0
        px = np.where(long, bid, ask)
        # 1. stop, 2. take profit (with the levels as they stood before this tick)
        stop_hit = np.where(long, bid <= stop, ask >= stop)
        tp_hit = ~stop_hit & np.where(long, bid >= tp, ask <= tp)
        profit = side * (px - entry) / entry
        if ts is not None:
            last = self.last[:n]
            self.tip[:n] += (ts - last) * self.inprof[:n]
            np.copyto(self.inprof[:n], profit > 0)
            last[:] = ts
        # 3. exit levels: triggers increase, so the count of triggers at or below profit is the number crossed
        crossed = (profit[:, None] >= self.thr[:n]).sum(axis=1)
        level_hit = ~(stop_hit | tp_hit) & (crossed > self.hits[:n])
        # 4. trailing: best price includes this tick; arms once and stays armed
        best = self.best[:n]
        np.copyto(best, np.where(long, np.maximum(best, bid), np.minimum(best, ask)))
        self.armed[:n] |= self.trail_on[:n] & (profit >= self.trail_act[:n])
        trail = self.armed[:n] & ~(stop_hit | tp_hit)
        dyn = self.dyn_on[:n] & ~(stop_hit | tp_hit)
        if sigma and self.dyn_on[:n].any():
            dyn &= np.isin(self.dyn_w[:n], list(sigma))
        else:
            dyn[:] = False

        active = np.flatnonzero(stop_hit | tp_hit | level_hit | trail | dyn)
        if active.size == 0:
            return []
        hits: list[Hit] = []
        closed: list[int] = []
        d_all = self._distances(active, sigma)
        for k, i in enumerate(active.tolist()):
            pid = self.ids[i]
            s = float(side[i])
            price = float(px[i])
            if stop_hit[i] or tp_hit[i]:
                rule = ("trailing_stop" if self.trailed[i] else "stop_loss") if stop_hit[i] else "take_profit"
                v = float(self.vol[i])
                hits.append(Hit(pid, "close", rule, price, v, v / float(self.vol0[i])))
                self.vol[i] = 0.0
                closed.append(i)
                continue
            if level_hit[i]:
                if self._take_levels(i, int(crossed[i]), price, hits):
                    closed.append(i)
                    continue
            if trail[i]:
                d = d_all[k]
                cand = float(best[i]) * (1 - s * d)
                cur = float(stop[i])
                if math.isnan(cur) or (cand > cur if s > 0 else cand < cur):
                    hits.append(Hit(pid, "set_stop_loss", "trailing", cand, previous=cur))
                    stop[i] = cand
                    self.trailed[i] = True
            if dyn[i]:
                self._dynamic(i, price, sigma[int(self.dyn_w[i])], hits)
        for i in sorted(closed, reverse=True):
            self._remove_index(i)
        return hits

    def unrealized(self, ncodes: int) -> np.ndarray:
        """Return the open PnL at the last quote per strategy code, in quote currency per unit of volume."""
        n = self.n
        if n == 0 or math.isnan(self.bid):
            return np.zeros(ncodes)
        side = self.side[:n]
        px = np.where(side > 0, self.bid, self.ask)
        return np.bincount(self.code[:n], weights=side * (px - self.entry[:n]) * self.vol[:n], minlength=ncodes)

    def columns(self, ts: int) -> dict[str, object]:
        """Return the ``position.*`` condition fields of every open position, as arrays (the pre-filter's input)."""
        n = self.n
        side = self.side[:n]
        px = np.where(side > 0, self.bid, self.ask)
        profit = side * (px - self.entry[:n]) / self.entry[:n]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = profit / self.risk[:n]
        return {
            "position.symbol": self.symbol,
            "position.strategy_type": np.array(self.strategies, dtype=object),
            "position.side": np.where(side > 0, "long", "short").astype(object),
            "position.volume": self.vol[:n].copy(),
            "position.entry_price": self.entry[:n].copy(),
            "position.stop_loss": self.stop[:n].copy(),
            "position.take_profit": self.tp[:n].copy(),
            "position.profit": profit,
            "position.r_multiple": r,
            "position.age_seconds": (ts - self.opened[:n]) / 1000,
            "position.levels_hit": self.hits[:n].copy(),
            "position.trailing_armed": self.armed[:n].copy(),
        }

    def _distances(self, active: np.ndarray, sigma: Mapping[int, float]) -> list[float]:
        d = self.trail_d[active].copy()
        vol = self.trail_vol[active]
        if vol.any():
            for k in np.flatnonzero(vol).tolist():
                i = int(active[k])
                sig = sigma.get(int(self.trail_w[i]))
                if sig is not None:
                    # volatility mode: clamp(k * sigma, trailing_distance, max_trailing_distance)
                    d[k] = min(max(float(self.trail_k[i]) * sig, float(self.trail_d[i])), float(self.trail_max[i]))
        return d.tolist()

    def _take_levels(self, i: int, crossed: int, price: float, hits: list[Hit]) -> bool:
        """Fire levels hits[i]..crossed-1 in order; return True when the position is fully closed."""
        pid = self.ids[i]
        s = float(self.side[i])
        vol0 = float(self.vol0[i])
        for j in range(int(self.hits[i]), crossed):
            remaining = float(self.vol[i])
            volume = remaining if self.closes_all[i, j] else min(float(self.pct[i, j]) * vol0, remaining)
            left = remaining - volume
            if left <= vol0 * _EMPTY:
                volume, left = remaining, 0.0
            self.vol[i] = left
            self.hits[i] = j + 1
            hits.append(Hit(pid, "close_partial", f"exit_levels.{j}", price, volume, volume / vol0))
            if left == 0.0:
                return True
            adj = float(self.sl[i, j])
            if not math.isnan(adj):
                entry = float(self.entry[i])
                cand = entry * (1 + s * adj)
                cur = float(self.stop[i])
                if math.isnan(cur) or (cand > cur if s > 0 else cand < cur):
                    hits.append(Hit(pid, "set_stop_loss", f"exit_levels.{j}", cand, previous=cur))
                    self.stop[i] = cand
        return False

    def _dynamic(self, i: int, price: float, sig: float, hits: list[Hit]) -> None:
        pid = self.ids[i]
        s = float(self.side[i])
        cand_stop = price * (1 - s * float(self.dyn_sk[i]) * sig)
        cand_tp = price * (1 + s * float(self.dyn_tk[i]) * sig)
        cur_stop, cur_tp = float(self.stop[i]), float(self.tp[i])
        tighten = bool(self.dyn_tight[i])
        if math.isnan(cur_stop) or (not tighten and cand_stop != cur_stop) or (tighten and (cand_stop > cur_stop if s > 0 else cand_stop < cur_stop)):
            hits.append(Hit(pid, "set_stop_loss", "dynamic_sltp", cand_stop, previous=cur_stop))
            self.stop[i] = cand_stop
        # a tighter target is nearer the price: lower for a long, higher for a short
        if math.isnan(cur_tp) or (not tighten and cand_tp != cur_tp) or (tighten and (cand_tp < cur_tp if s > 0 else cand_tp > cur_tp)):
            hits.append(Hit(pid, "set_take_profit", "dynamic_sltp", cand_tp, previous=cur_tp))
            self.tp[i] = cand_tp
