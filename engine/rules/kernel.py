"""The hot path: one symbol's open positions in numpy arrays, updated by a tick in a few vector operations.

``SymbolBook.on_tick`` applies DESIGN section 4 to every open position of the symbol, in this order:
stop, take profit, exit levels (lowest first, each at most once, several on one tick), trailing, dynamic
SL/TP. Only the positions where something happens produce ``Hit`` records (sparse), which the
evaluator turns into actions. ``tests/rules/reference.py`` holds the plain per-position version of the
same semantics; a property test checks both give identical hits.

Prices are kept signed (``side * price``: a long's stop is hit when ``side * bid <= side * stop``, a
short's when ``side * ask <= side * stop`` reversed the same way), which turns every long/short pair
of comparisons into one. Multiplying by +-1 is exact, so the arithmetic rounds exactly as the
reference's: profit = side * (price - entry) / entry, trailing candidate = best * (1 - side * d).
Masks computed for all positions pick the few that need the ordered, per-position steps; those run in
Python, re-checking each step against the stop as the previous step left it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from engine.rules.params import StrategyParams
from engine.rules.vector import LazyColumns

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

    _COLUMNS = ("side", "entry", "vol0", "vol", "sstop", "stp", "sbest", "risk", "armed", "trailed", "hits", "next_thr",
                "code", "opened", "tip", "inprof", "trail_d", "trail_act", "trail_max", "trail_vol", "trail_k", "trail_w",
                "dyn_on", "dyn_w", "dyn_sk", "dyn_tk", "dyn_tight")

    def __init__(self, symbol: str, params: Mapping[str, StrategyParams], capacity: int = 16,
                 codes: dict[str, int] | None = None, point: float = 0.0) -> None:
        self.symbol = symbol
        # the smallest price step of the symbol: dynamic SL/TP moves by less than this are not made
        self.point = point
        self._params = dict(params)
        # strategy name -> small int, for per-strategy sums (np.bincount); shared with the evaluator
        self.codes = codes if codes is not None else {name: i for i, name in enumerate(sorted(params))}
        self.n = 0
        self.ids: list[str] = []
        self.strategies: list[str] = []
        self.removed_time_in_profit: dict[str, int] = {}
        self.bid = self.ask = math.nan
        self._last_ts: int | None = None
        self._cap = 0
        self._alloc(capacity)

    # --- storage --------------------------------------------------------------------------------

    def _alloc(self, cap: int) -> None:
        old = self._cap
        self._cap = cap
        f = lambda fill: np.full(cap, fill, dtype=np.float64)  # noqa: E731
        b = lambda: np.zeros(cap, dtype=bool)  # noqa: E731
        i = lambda: np.zeros(cap, dtype=np.int64)  # noqa: E731
        cols = {
            "side": f(0.0), "entry": f(1.0), "vol0": f(0.0), "vol": f(0.0), "sstop": f(np.nan), "stp": f(np.nan),
            "sbest": f(np.nan), "risk": f(np.nan), "armed": b(), "trailed": b(), "hits": i(), "next_thr": f(np.inf),
            "code": i(), "opened": i(), "tip": i(), "inprof": b(),
            # parameters, copied from the position's strategy (refilled on reload)
            "trail_d": f(np.nan), "trail_act": f(np.inf), "trail_max": f(np.inf), "trail_vol": b(), "trail_k": f(0.0),
            "trail_w": i(), "dyn_on": b(), "dyn_w": i(), "dyn_sk": f(0.0), "dyn_tk": f(0.0), "dyn_tight": b(),
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
        self.trail_d[i] = p.trail_distance
        # a disabled trail never arms: its activation is out of reach
        self.trail_act[i] = p.trail_activation if p.trail_on else math.inf
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
        self._set_next(i)

    def _set_next(self, i: int) -> None:
        h = int(self.hits[i])
        self.next_thr[i] = self.thr[i, h] if h < self.thr.shape[1] else math.inf

    def add(self, position_id: str, strategy: str, side: int, entry: float, volume: float,
            stop: float, take_profit: float, ts: int = 0) -> None:
        """Start managing a position (``side`` +1 long, -1 short; ``stop``/``take_profit`` nan for none)."""
        if self.n == self._cap:
            self._alloc(self._cap * 2)
        i = self.n
        self.ids.append(position_id)
        self.strategies.append(strategy)
        self.codes.setdefault(strategy, len(self.codes))
        self.code[i] = self.codes[strategy]
        self.opened[i] = ts
        self.tip[i] = 0
        self.inprof[i] = False
        self.side[i] = side
        self.entry[i] = entry
        self.vol0[i] = volume
        self.vol[i] = volume
        self.sstop[i] = side * stop
        self.stp[i] = side * take_profit
        self.sbest[i] = side * entry
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
        self.sbest[i] = state.side * state.best
        self.armed[i] = state.armed
        self.trailed[i] = state.trailed
        self.hits[i] = state.hits
        self.risk[i] = state.risk
        self._fill_params(i)

    def remove(self, position_id: str) -> None:
        """Stop managing a position (closed or taken over)."""
        self._remove_index(self.ids.index(position_id))

    def _remove_index(self, i: int) -> None:
        self.removed_time_in_profit[self.ids[i]] = int(self.tip[i])
        last = self.n - 1
        if i != last:
            for name in self._COLUMNS:
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
        s = float(self.side[i])
        return PositionState(self.ids[i], self.strategies[i], int(s), float(self.entry[i]), float(self.vol0[i]),
                             float(self.vol[i]), s * float(self.sstop[i]), s * float(self.stp[i]), s * float(self.sbest[i]),
                             bool(self.armed[i]), bool(self.trailed[i]), int(self.hits[i]), float(self.risk[i]))

    def reduce(self, position_id: str, volume: float) -> None:
        """Take ``volume`` off a position closed partly from outside the kernel (its original volume stays)."""
        i = self.ids.index(position_id)
        self.vol[i] = max(float(self.vol[i]) - volume, 0.0)

    def set_levels(self, position_id: str, stop: float | None = None, take_profit: float | None = None) -> None:
        """Set a position's stop or target from outside the kernel (a custom rule, a broker update)."""
        i = self.ids.index(position_id)
        if stop is not None:
            self.sstop[i] = self.side[i] * stop
        if take_profit is not None:
            self.stp[i] = self.side[i] * take_profit

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
            self._last_ts = ts
            return []
        sigma = sigma or {}
        side = self.side[:n]
        entry = self.entry[:n]
        sstop = self.sstop[:n]
        px = np.where(side > 0, bid, ask)
        spx = side * px
        # 1. stop, 2. take profit, with the levels as they stood before this tick
        closed = (spx <= sstop) | (spx >= self.stp[:n])
        profit = (spx - side * entry) / entry
        if ts is not None:
            if self._last_ts is not None:
                self.tip[:n] += (ts - self._last_ts) * self.inprof[:n]
            np.copyto(self.inprof[:n], profit > 0)
            self._last_ts = ts
        # 3. exit levels: only the next untaken level can be the first one crossed
        level = (profit >= self.next_thr[:n]) & ~closed
        # 4. trailing: best price includes this tick; arms once and stays armed
        sbest = self.sbest[:n]
        np.maximum(sbest, spx, out=sbest)
        armed = self.armed[:n]
        armed |= profit >= self.trail_act[:n]
        active = closed | level
        d = None
        if armed.any():
            d = self._distances(n, sigma)
            scand = sbest * (1 - side * d)
            with np.errstate(invalid="ignore"):
                active |= armed & ((scand > sstop) | np.isnan(sstop))
        dyn = None
        if sigma and self.dyn_on[:n].any():
            dyn = self._dynamic_candidates(n, px, sigma)
            if dyn is not None:
                active |= dyn[2]
        idx = np.flatnonzero(active)
        if idx.size == 0:
            return []
        hits: list[Hit] = []
        gone: list[int] = []
        for i in idx.tolist():
            pid = self.ids[i]
            s = float(side[i])
            price = float(px[i])
            if closed[i]:
                stop_hit = s * price <= float(sstop[i])
                rule = ("trailing_stop" if self.trailed[i] else "stop_loss") if stop_hit else "take_profit"
                v = float(self.vol[i])
                hits.append(Hit(pid, "close", rule, price, v, v / float(self.vol0[i])))
                self.vol[i] = 0.0
                gone.append(i)
                continue
            if level[i] and self._take_levels(i, float(profit[i]), price, hits):
                gone.append(i)
                continue
            if armed[i] and d is not None:
                cand = s * float(sbest[i]) * (1 - s * float(d[i]))
                cur = s * float(sstop[i])
                if math.isnan(cur) or (cand > cur if s > 0 else cand < cur):
                    hits.append(Hit(pid, "set_stop_loss", "trailing", cand, previous=cur))
                    sstop[i] = s * cand
                    self.trailed[i] = True
            if dyn is not None and dyn[3][i]:
                self._dynamic(i, float(dyn[0][i]), float(dyn[1][i]), hits)
        for i in sorted(gone, reverse=True):
            self._remove_index(i)
        return hits

    def _distances(self, n: int, sigma: Mapping[int, float]) -> np.ndarray:
        d = self.trail_d[:n]
        vol = self.trail_vol[:n]
        if not (sigma and vol.any()):
            return d
        d = d.copy()
        for w, sig in sigma.items():
            rows = vol & (self.trail_w[:n] == w)
            if rows.any():
                # volatility mode: clamp(k * sigma, trailing_distance, max_trailing_distance)
                d[rows] = np.minimum(np.maximum(self.trail_k[:n][rows] * sig, self.trail_d[:n][rows]), self.trail_max[:n][rows])
        return d

    def _dynamic_candidates(self, n: int, px: np.ndarray, sigma: Mapping[int, float]):
        """Return (stop candidates, target candidates, rows that may move, rows with a volatility)."""
        sig = np.full(n, np.nan)
        on = self.dyn_on[:n]
        for w, value in sigma.items():
            sig[on & (self.dyn_w[:n] == w)] = value
        avail = on & ~np.isnan(sig)
        if not avail.any():
            return None
        side = self.side[:n]
        cand_stop = px * (1 - side * self.dyn_sk[:n] * sig)
        cand_tp = px * (1 + side * self.dyn_tk[:n] * sig)
        tight = self.dyn_tight[:n]
        sstop, stp = self.sstop[:n], self.stp[:n]
        pt = self.point
        with np.errstate(invalid="ignore"):
            ds = side * cand_stop - sstop  # > 0: tighter stop
            dt = stp - side * cand_tp  # > 0: nearer target (lower for a long, higher for a short)
            stop_move = np.isnan(sstop) | np.where(tight, (ds > 0) & (ds >= pt), (ds != 0) & (np.abs(ds) >= pt))
            tp_move = np.isnan(stp) | np.where(tight, (dt > 0) & (dt >= pt), (dt != 0) & (np.abs(dt) >= pt))
        # without only_tighten an earlier step may move the stop away from the candidate: re-check those
        may = avail & (stop_move | tp_move | ~tight)
        return cand_stop, cand_tp, may, avail

    def _take_levels(self, i: int, profit: float, price: float, hits: list[Hit]) -> bool:
        """Fire every level the profit reached, lowest first; return True when the position is fully closed."""
        pid = self.ids[i]
        s = float(self.side[i])
        vol0 = float(self.vol0[i])
        levels = self.thr.shape[1]
        j = int(self.hits[i])
        while j < levels and profit >= float(self.thr[i, j]):
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
                cur = s * float(self.sstop[i])
                if math.isnan(cur) or (cand > cur if s > 0 else cand < cur):
                    hits.append(Hit(pid, "set_stop_loss", f"exit_levels.{j}", cand, previous=cur))
                    self.sstop[i] = s * cand
            j += 1
        self._set_next(i)
        return False

    def _dynamic(self, i: int, cand_stop: float, cand_tp: float, hits: list[Hit]) -> None:
        pid = self.ids[i]
        s = float(self.side[i])
        cur_stop, cur_tp = s * float(self.sstop[i]), s * float(self.stp[i])
        tighten = bool(self.dyn_tight[i])
        if _moves(s * cand_stop - s * cur_stop, tighten, self.point):
            hits.append(Hit(pid, "set_stop_loss", "dynamic_sltp", cand_stop, previous=cur_stop))
            self.sstop[i] = s * cand_stop
        if _moves(s * cur_tp - s * cand_tp, tighten, self.point):
            hits.append(Hit(pid, "set_take_profit", "dynamic_sltp", cand_tp, previous=cur_tp))
            self.stp[i] = s * cand_tp

    def unrealized(self, ncodes: int) -> np.ndarray:
        """Return the open PnL at the last quote per strategy code, in quote currency per unit of volume."""
        n = self.n
        if n == 0 or math.isnan(self.bid):
            return np.zeros(ncodes)
        side = self.side[:n]
        px = np.where(side > 0, self.bid, self.ask)
        return np.bincount(self.code[:n], weights=side * (px - self.entry[:n]) * self.vol[:n], minlength=ncodes)

    def columns(self, ts: int, fields: frozenset[str] | set[str] | None = None, pnl_scale: float = 1.0) -> LazyColumns:
        """Return the ``position.*`` condition fields of every open position as arrays (the pre-filter's input).

        ``fields`` limits the work to the fields some rule reads; ``pnl_scale`` turns price x volume
        into account currency (contract size x conversion rate) for ``position.pnl``.
        """
        n = self.n
        side = self.side[:n]
        px = np.where(side > 0, self.bid, self.ask)

        def profit() -> np.ndarray:
            return (side * px - side * self.entry[:n]) / self.entry[:n]

        makers = {
            "position.symbol": lambda: self.symbol,
            "position.id": lambda: np.array(self.ids, dtype=object),
            "position.strategy_type": lambda: np.array(self.strategies, dtype=object),
            "position.side": lambda: np.where(side > 0, "long", "short").astype(object),
            "position.volume": lambda: self.vol[:n].copy(),
            "position.entry_price": lambda: self.entry[:n].copy(),
            "position.stop_loss": lambda: side * self.sstop[:n],
            "position.take_profit": lambda: side * self.stp[:n],
            "position.profit": profit,
            "position.pnl": lambda: side * (px - self.entry[:n]) * self.vol[:n] * pnl_scale,
            "position.r_multiple": lambda: _div(profit(), self.risk[:n]),
            "position.age_seconds": lambda: (ts - self.opened[:n]) / 1000,
            "position.levels_hit": lambda: self.hits[:n].copy(),
            "position.trailing_armed": lambda: self.armed[:n].copy(),
        }
        wanted = makers.keys() if fields is None else [f for f in fields if f in makers]
        return LazyColumns({}, {f: makers[f] for f in wanted})


def _moves(delta: float, tighten: bool, point: float) -> bool:
    """Whether a dynamic level moves: ``delta`` > 0 means tighter; nan (no level yet) always moves."""
    if math.isnan(delta):
        return True
    if tighten:
        return delta > 0 and delta >= point
    return delta != 0 and abs(delta) >= point


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return a / b
