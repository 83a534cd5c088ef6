"""The hot path: one symbol's open positions in numpy arrays, updated by a tick in one compiled call.

``SymbolBook.on_tick`` applies DESIGN section 4 to every open position of the symbol, in this order:
stop, take profit, exit levels (lowest first, each at most once, several on one tick), trailing,
dynamic SL/TP. Prices and volumes are exact at the instrument (docs/engine.md): every level a position
holds is a price on the symbol's tick grid, set here when the position is added (or the rules
reloaded) by one rule, ``Grid.toward_profit``; every volume it closes is on the lot step. Only the
positions where something happens produce ``Hit`` records (sparse), which the evaluator turns into
actions. The positions live column by column in numpy arrays; the per-tick loop over them is compiled
(``engine/rules/_jit.py``), because numpy's per-operation overhead, not the arithmetic, bounded the
vectorised version. ``tests/rules/reference.py`` holds the plain per-position version of the same
semantics; a property test checks both give identical hits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import NDArray

from engine.config.models import Instrument
from engine.rules import _jit
from engine.rules.levels import PositionState, levels_hit, remap_taken
from engine.rules.params import StrategyParams, level_targets
from engine.rules.vector import LazyColumns
from engine.rules.volatility import Volatility

_RULES = {
    _jit.K_STOP: ("close", "stop_loss"), _jit.K_TRAIL_STOP: ("close", "trailing_stop"), _jit.K_TP: ("close", "take_profit"),
    _jit.K_TRAIL: ("set_stop_loss", "trailing"), _jit.K_DYN_STOP: ("set_stop_loss", "dynamic_sltp"),
    _jit.K_DYN_TP: ("set_take_profit", "dynamic_sltp"),
}

_LEVEL_KINDS = {_jit.K_PARTIAL: "close_partial", _jit.K_LEVEL_STOP: "set_stop_loss"}
_LEVEL_RULES = [f"exit_levels.{j}" for j in range(64)]
#: the instrument of a book built without one (tests, benchmarks): a five-digit currency pair
FIVE_DIGITS = Instrument(quote_currency="USD", pip_size=0.0001, digits=5)

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]


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


class SymbolBook:
    """Open positions of one symbol, column by column."""

    # Columns live as rows of three matrices (floats, ints, bools), so the compiled loop takes three
    # arguments instead of thirty: numba checks every argument's type on each call. Each name below is
    # a view of its row (writes go to the matrix), bound by ``_bind`` in the order of ``_FLOATS``,
    # ``_INTS`` and ``_BOOLS``, which the compiled loop's row numbers follow too.
    _FLOATS: ClassVar[dict[str, float]] = {
        "side": 0.0, "entry": 1.0, "vol0": 0.0, "vol": 0.0, "stop": np.nan, "tp": np.nan, "best": np.nan, "risk": np.nan,
        "trail_d": np.nan, "trail_act": np.inf, "trail_max": np.inf, "trail_k": 0.0, "dyn_sk": 0.0, "dyn_tk": 0.0,
        "trail_move": 0.0, "dyn_move": 0.0, "dyn_floor": 0.0, "dyn_tp_floor": 0.0}
    _INTS: ClassVar[tuple[str, ...]] = ("taken", "tip", "code", "opened", "trail_w", "dyn_w")
    _BOOLS: ClassVar[tuple[str, ...]] = ("armed", "trailed", "inprof", "trail_vol", "dyn_on", "dyn_tight")

    F: Floats
    I: Ints  # noqa: E741 -- the row names of the compiled loop: F, I, B
    B: Bools
    side: Floats  # +1 long, -1 short
    entry: Floats
    vol0: Floats  # the volume opened
    vol: Floats  # the volume still open
    stop: Floats
    tp: Floats
    best: Floats  # the best exit price since the position opened
    risk: Floats  # the initial risk, a fraction of entry
    # the strategy's trailing and dynamic SL/TP parameters, copied per position (``_fill_params``)
    trail_d: Floats
    trail_act: Floats  # the price that arms the trail (on the grid; +inf long, -inf short: never)
    trail_max: Floats
    trail_k: Floats
    dyn_sk: Floats
    dyn_tk: Floats
    trail_move: Floats  # the smallest trailing stop move, a price (min_step ticks)
    dyn_move: Floats  # the smallest dynamic SL/TP move, a price
    dyn_floor: Floats  # the smallest dynamic stop distance, a price (floor ticks)
    dyn_tp_floor: Floats  # the smallest dynamic target distance: the floor x take profit multiple / stop multiple
    taken: Ints  # exit levels taken, a bit per level of the strategy's list (bit j: level j)
    tip: Ints  # time in profit, ms
    code: Ints  # strategy code
    opened: Ints  # epoch ms
    trail_w: Ints
    dyn_w: Ints
    armed: Bools
    trailed: Bools
    inprof: Bools
    trail_vol: Bools
    dyn_on: Bools
    dyn_tight: Bools
    # the exit levels, (4, capacity, levels): trigger price, the volume the level leaves open (lots), stop
    # adjustment price, closes-all flag
    L: Floats
    thr: Floats
    targets: Floats
    sl: Floats
    closes_all: Floats
    # what the compiled call writes: hits (position, kind, level, price, volume, fraction, previous), closed positions
    _hits: Floats
    _gone: Ints

    def __init__(self, symbol: str, params: Mapping[str, StrategyParams], capacity: int = 16,
                 codes: dict[str, int] | None = None, instrument: Instrument = FIVE_DIGITS) -> None:
        self.symbol = symbol
        self._set_instrument(instrument)
        self._params = dict(params)
        # strategy name -> small int, for per-strategy sums (np.bincount); shared with the evaluator
        self.codes = codes if codes is not None else {name: i for i, name in enumerate(sorted(params))}
        self.n = 0
        self.ids: list[str] = []
        self.strategies: list[str] = []
        self.removed_time_in_profit: dict[str, int] = {}
        # per position, the keys of the exit levels it took that a reload removed from the file: taken still
        # if a later reload brings them back (a level never fires twice)
        self.taken_keys: dict[str, frozenset[str]] = {}
        self.bid = self.ask = math.nan
        self._last_ts: int | None = None
        self._cap = 0
        self._alloc(capacity)
        self._out(64)

    def _set_instrument(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.prices = instrument.prices
        self.volumes = instrument.lots
        # the grids as the compiled loop reads them (``_jit.G_*``)
        self.grid = np.array([self.prices.units, self.prices.scale, self.prices.step / 2, self.volumes.units,
                              self.volumes.scale, instrument.volume_min], dtype=np.float64)

    # --- what a compiled batch pass reads and leaves (engine.rules.batch) ---------------------------

    @property
    def last_ts(self) -> int | None:
        """The time of the last quote applied (epoch ms), None before the first."""
        return self._last_ts

    def scratch(self) -> tuple[Floats, Ints]:
        """The arrays a compiled pass writes its hits and closed positions into: ``on_tick``'s own."""
        return self._hits, self._gone

    def quoted(self, bid: float, ask: float, ts: int) -> None:
        """Record the last quote of a run that a compiled pass applied outside ``on_tick``/``on_quote``."""
        self.bid, self.ask = bid, ask
        self._last_ts = ts

    # --- storage --------------------------------------------------------------------------------

    def _alloc(self, cap: int) -> None:
        old = self._cap
        self._cap = cap
        floats = np.empty((len(self._FLOATS), cap))
        for r, fill in enumerate(self._FLOATS.values()):
            floats[r] = fill
        ints = np.zeros((len(self._INTS), cap), dtype=np.int64)
        bools = np.zeros((len(self._BOOLS), cap), dtype=bool)
        if old:
            floats[:, :old] = self.F[:, :old]
            ints[:, :old] = self.I[:, :old]
            bools[:, :old] = self.B[:, :old]
        self.F, self.I, self.B = floats, ints, bools
        self._bind()
        levels = max([len(p.level_trigger) for p in self._params.values()] + [1])
        self._alloc_levels(cap, levels, old)

    def _bind(self) -> None:
        (self.side, self.entry, self.vol0, self.vol, self.stop, self.tp, self.best, self.risk,
         self.trail_d, self.trail_act, self.trail_max, self.trail_k, self.dyn_sk, self.dyn_tk,
         self.trail_move, self.dyn_move, self.dyn_floor, self.dyn_tp_floor) = self.F
        self.taken, self.tip, self.code, self.opened, self.trail_w, self.dyn_w = self.I
        self.armed, self.trailed, self.inprof, self.trail_vol, self.dyn_on, self.dyn_tight = self.B

    def _alloc_levels(self, cap: int, levels: int, old: int) -> None:
        # one array for the exit levels (the compiled loop's fourth argument): trigger price, the volume
        # left open, stop adjustment price, closes-all flag (1.0 / 0.0); ``_fill_params`` fills a position's row
        L = np.empty((4, cap, levels))
        L[0], L[1], L[2], L[3] = np.inf, 0.0, np.nan, 0.0
        if old:
            keep = min(levels, self.L.shape[2])
            L[:, :old, :keep] = self.L[:, :old, :keep]
        self.L = L
        self.thr, self.targets, self.sl, self.closes_all = L[0], L[1], L[2], L[3]

    def _fill_params(self, i: int) -> None:
        """Copy position ``i``'s strategy parameters into its columns, its thresholds as prices on the
        tick grid (``Grid.toward_profit``) and its exit levels' volumes on the lot step."""
        p = self._params[self.strategies[i]]
        side, entry = int(self.side[i]), float(self.entry[i])
        tick = self.prices.step
        self.trail_d[i] = p.trail_distance
        # a disabled trail never arms: its activation is out of reach
        self.trail_act[i] = self._price(entry * (1 + side * p.trail_activation), side) if p.trail_on else side * math.inf
        self.trail_max[i] = p.trail_max
        self.trail_vol[i] = p.trail_volatility
        self.trail_k[i] = p.trail_k
        self.trail_w[i] = p.trail_horizon.key
        self.trail_move[i] = p.trail_min_step * tick
        self.dyn_on[i] = p.dyn_on
        self.dyn_w[i] = p.dyn_horizon.key
        self.dyn_sk[i] = p.dyn_stop_k
        self.dyn_tk[i] = p.dyn_tp_k
        self.dyn_tight[i] = p.dyn_only_tighten
        self.dyn_move[i] = p.dyn_min_step * tick
        self.dyn_floor[i] = p.dyn_floor * tick
        self.dyn_tp_floor[i] = p.dyn_floor * tick * p.dyn_tp_k / p.dyn_stop_k
        self.thr[i, :] = side * math.inf
        self.targets[i, :] = 0.0
        self.sl[i, :] = np.nan
        self.closes_all[i, :] = 0.0
        risk = float(self.risk[i])
        targets = level_targets(float(self.vol0[i]), p.level_pct, self.volumes)
        for j, trigger in enumerate(p.level_trigger):
            profit = trigger * risk if p.level_is_r else trigger
            if not math.isnan(profit):
                self.thr[i, j] = self._price(entry * (1 + side * profit), side)
            self.targets[i, j] = targets[j]
            adjust = p.level_sl[j]
            if not math.isnan(adjust):
                self.sl[i, j] = self._price(entry * (1 + side * adjust), side)
            self.closes_all[i, j] = p.level_all[j]

    def _price(self, value: float, side: int) -> float:
        return self.prices.toward_profit(value, side) if math.isfinite(value) else value

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
        self.stop[i] = stop
        self.tp[i] = take_profit
        self.best[i] = entry
        self.armed[i] = False
        self.trailed[i] = False
        self.taken[i] = 0
        # initial risk as a fraction of entry: what r_multiple levels are measured in
        self.risk[i] = abs(entry - stop) / entry if not math.isnan(stop) else math.nan
        self.n += 1
        self._fill_params(i)

    def restore(self, state: PositionState) -> None:
        """Add a position with its full managed state (a restart, or a reload that keeps state)."""
        self.add(state.position_id, state.strategy, state.side, state.entry, state.volume0, state.stop, state.take_profit,
                 state.opened)
        i = self.n - 1
        self.tip[i], self.inprof[i] = state.time_in_profit, state.in_profit
        self.vol[i] = state.volume
        self.best[i] = state.best
        self.armed[i] = state.armed
        self.trailed[i] = state.trailed
        self.taken[i] = state.taken
        self.risk[i] = state.risk
        if state.taken_keys:
            self.taken_keys[state.position_id] = state.taken_keys
        self._fill_params(i)

    def remove(self, position_id: str) -> None:
        """Stop managing a position (closed or taken over)."""
        self._remove_index(self.ids.index(position_id))

    def _remove_index(self, i: int) -> None:
        self.removed_time_in_profit[self.ids[i]] = int(self.tip[i])
        self.taken_keys.pop(self.ids[i], None)
        last = self.n - 1
        if i != last:
            for arr in (self.F, self.I, self.B):
                arr[:, i] = arr[:, last]
                self.L[:, i] = self.L[:, last]
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
                             bool(self.armed[i]), bool(self.trailed[i]), int(self.taken[i]), float(self.risk[i]),
                             self.taken_keys.get(self.ids[i], frozenset()), int(self.opened[i]), int(self.tip[i]), bool(self.inprof[i]))

    def reduce(self, position_id: str, volume: float) -> None:
        """Take ``volume`` off a position closed partly from outside the kernel (its original volume stays)."""
        i = self.ids.index(position_id)
        self.vol[i] = self.volumes.nearest(max(float(self.vol[i]) - volume, 0.0))

    def set_levels(self, position_id: str, stop: float | None = None, take_profit: float | None = None) -> None:
        """Set a position's stop or target from outside the kernel (a custom rule, a broker update)."""
        i = self.ids.index(position_id)
        if stop is not None:
            self.stop[i] = stop
        if take_profit is not None:
            self.tp[i] = take_profit

    def reload(self, params: Mapping[str, StrategyParams], instrument: Instrument | None = None) -> None:
        """Swap in new strategy parameters (and the symbol's instrument, when given); positions keep their
        state (best price, stops, the exit levels taken: by key, wherever a level moved in the list) and
        their thresholds are put on the (new) grids again."""
        if instrument is not None and instrument != self.instrument:
            self._set_instrument(instrument)
        old, self._params = self._params, dict(params)
        for i in range(self.n):
            name, pid = self.strategies[i], self.ids[i]
            before = old[name].level_keys if name in old else ()
            taken = int(self.taken[i])
            keys = self.taken_keys.get(pid, frozenset()) | {key for j, key in enumerate(before) if (taken >> j) & 1}
            after = self._params[name].level_keys
            self.taken[i] = remap_taken(taken, before, after) | sum(1 << j for j, key in enumerate(after) if key in keys)
            if keys - set(after):
                self.taken_keys[pid] = frozenset(keys - set(after))
            else:
                self.taken_keys.pop(pid, None)
        levels = max([len(p.level_trigger) for p in self._params.values()] + [1])
        if levels != self.thr.shape[1]:
            self._alloc_levels(self._cap, levels, self._cap)
        for i in range(self.n):
            self._fill_params(i)

    # --- the tick -------------------------------------------------------------------------------

    def on_tick(self, bid: float, ask: float, sigma: Mapping[int, float] | tuple[Ints, Floats] | None = None,
                ts: int | None = None) -> list[Hit]:
        """Apply one quote to every open position; return what happened, position by position in order.

        ``sigma`` maps a volatility horizon (``Horizon.key``) to the symbol's volatility on it, a price
        (or gives both as arrays, ``Volatility.arrays()``, nan for a horizon not ready);
        a missing horizon means not enough bars yet (volatility trailing then uses its floor
        distance, dynamic SL/TP waits). ``ts`` (epoch ms) advances each position's time in profit.
        """
        self.bid, self.ask = bid, ask
        n = self.n
        elapsed = ts - self._last_ts if ts is not None and self._last_ts is not None else -1
        if ts is not None:
            self._last_ts = ts
        if n == 0:
            return []
        need = n * (2 * self.thr.shape[1] + 3)
        if self._gone.shape[0] < need:
            self._out(need)
        if isinstance(sigma, tuple):  # (windows, values) arrays, as Volatility.arrays() gives them
            windows, values = sigma
        elif sigma:
            windows = np.fromiter(sigma.keys(), dtype=np.int64, count=len(sigma))
            values = np.fromiter(sigma.values(), dtype=np.float64, count=len(sigma))
        else:
            windows, values = _NO_WINDOWS, _NO_VALUES
        k, c = _jit.tick(n, float(bid), float(ask), int(elapsed), self.grid, self.F, self.I, self.B, self.L,
                         windows, values, self._hits, self._gone)
        return self._finish(k, c)

    def _finish(self, k: int, c: int) -> list[Hit]:
        """Decode the compiled call's ``k`` hits and drop the ``c`` positions it closed."""
        if k == 0:
            return []
        hits = self._decode(k)
        if c:
            for i in sorted(self._gone[:c].tolist(), reverse=True):
                self._remove_index(i)
        return hits

    def on_quote(self, bid: float, ask: float, vol: Volatility, ts: int | None = None) -> list[Hit]:
        """Add the quote to the symbol's volatility and apply it, in one compiled call.

        The same as ``vol.update(bid, ask, ts)`` then ``on_tick(bid, ask, vol.arrays(), ts)``, without the
        second call's overhead (a fifth of the whole at a few hundred positions). Without ``ts`` the
        volatility's time bars do not advance.
        """
        self.bid, self.ask = bid, ask
        elapsed = ts - self._last_ts if ts is not None and self._last_ts is not None else -1
        if ts is not None:
            self._last_ts = ts
        n = self.n
        if self._gone.shape[0] < n * (2 * self.L.shape[2] + 3):
            self._out(n * (2 * self.L.shape[2] + 3))
        k, c = _jit.quote(n, float(bid), float(ask), -1 if ts is None else int(ts), int(elapsed), self.grid, self.F, self.I,
                          self.B, self.L, vol.keys, vol.bufs, vol.S, self._hits, self._gone)
        return self._finish(k, c)

    def _decode(self, k: int) -> list[Hit]:
        ids = self.ids
        # Hit is frozen: build each through object.__new__ and its __dict__, a third of the cost of __init__
        new = object.__new__
        hits: list[Hit] = []
        for pos, kind, level, price, volume, fraction, prev in self._hits[:k].tolist():
            what, rule = _RULES[kind] if level < 0 else (_LEVEL_KINDS[kind], _LEVEL_RULES[int(level)])
            h = new(Hit)
            h.__dict__.update(position_id=ids[int(pos)], kind=what, rule=rule, price=price, volume=volume,
                              fraction=fraction, previous=prev)
            hits.append(h)
        return hits

    def _out(self, size: int) -> None:
        self._hits = np.zeros((size, 7))  # position, kind, level, price, volume, fraction, previous
        self._gone = np.zeros(size, dtype=np.int64)  # positions closed

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

        def profit() -> Floats:
            return (side * px - side * self.entry[:n]) / self.entry[:n]

        makers = {
            "position.symbol": lambda: self.symbol,
            "position.id": lambda: np.array(self.ids, dtype=object),
            "position.strategy_type": lambda: np.array(self.strategies, dtype=object),
            "position.side": lambda: np.where(side > 0, "long", "short").astype(object),
            "position.volume": lambda: self.vol[:n].copy(),
            "position.entry_price": lambda: self.entry[:n].copy(),
            "position.stop_loss": lambda: self.stop[:n].copy(),
            "position.take_profit": lambda: self.tp[:n].copy(),
            "position.profit": profit,
            "position.pnl": lambda: side * (px - self.entry[:n]) * self.vol[:n] * pnl_scale,
            "position.r_multiple": lambda: _div(profit(), self.risk[:n]),
            "position.age_seconds": lambda: (ts - self.opened[:n]) / 1000,
            "position.age": lambda: (ts - self.opened[:n]) / 1000,
            "position.levels_hit": lambda: levels_hit(self.taken[:n]),
            "position.trailing_armed": lambda: self.armed[:n].copy(),
        }
        wanted = makers.keys() if fields is None else [f for f in fields if f in makers]
        return LazyColumns({}, {f: makers[f] for f in wanted})


def _div(a: Floats, b: Floats) -> Floats:
    with np.errstate(divide="ignore", invalid="ignore"):
        return a / b


_NO_WINDOWS = np.zeros(0, dtype=np.int64)
_NO_VALUES = np.zeros(0, dtype=np.float64)
