"""The compiled tick loop: DESIGN section 4 for every open position of one symbol, in one call.

numpy's per-operation overhead (about a microsecond per array operation, some twenty-five of them per
tick) bounded the vectorised kernel at ~14 M position evaluations per second at 500 positions per
tick; this loop, compiled by numba, does the same arithmetic in the same order as the per-position
reference (tests/rules/reference.py), so results are bit-identical (no fast-math, no fused
multiply-add), at a few nanoseconds per position.

numba checks the type of every argument on every call (a few hundred nanoseconds for thirty
arguments, as much as the loop itself at a few hundred positions), so the columns travel bundled:
floats, ints and bools as three matrices, the exit levels as one ``(4, capacity, levels)`` array
(trigger, percentage, stop adjustment, closes-all flag) and the outputs as two matrices.

Hits are written to ``out``, one row each: position index, kind, level, price, volume, fraction,
previous level (all as floats, so Python reads them with one ``tolist``); the indices of the positions
closed go to ``gone``. Kinds are the ``K_*`` constants.

Prices and volumes are exact at the instrument (docs/engine.md, "Exact at the instrument"): the
symbol's grids travel as ``grid`` (``G_*`` entries: the tick and the lot step as units over a power of
ten, half a tick, the minimum volume). Every level a position holds (stop, target, exit-level triggers
and stop adjustments, trailing activation) is a price on the tick grid, set by ``SymbolBook`` with
``engine.config.grid.Grid.toward_profit``; the levels computed here (trailing and dynamic stops) round
the same way (``snap``). A quote triggers a level when it is on the level's side of it or within half
a tick of it: the quote read on the grid, so a quote equal to a level triggers it.

``engine/rules/_scan.py`` runs the same per-position step over a run of quotes of one symbol and stops
before the first quote on which anything would happen (see engine/rules/batch.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np
from numba import njit
from numpy.typing import NDArray

from engine.rules import volatility

K_STOP, K_TRAIL_STOP, K_TP, K_PARTIAL, K_LEVEL_STOP, K_TRAIL, K_DYN_STOP, K_DYN_TP = range(8)

# rows of SymbolBook's float, int and bool matrices (kept in step with SymbolBook._FLOATS, _INTS, _BOOLS)
SIDE, ENTRY, VOL0, VOL, STOP, TP, BEST = 0, 1, 2, 3, 4, 5, 6
TRAIL_D, TRAIL_ACT, TRAIL_MAX, TRAIL_K, DYN_SK, DYN_TK, TRAIL_MOVE, DYN_MOVE, DYN_FLOOR, DYN_TP_FLOOR = range(8, 18)
TAKEN, TIP, CODE, TRAIL_W, DYN_W = 0, 1, 2, 4, 5
ARMED, TRAILED, INPROF, TRAIL_VOL, DYN_ON, DYN_TIGHT = 0, 1, 2, 3, 4, 5
# rows of the exit levels array (SymbolBook._alloc_levels): trigger price, the volume the level leaves
# open (lots), stop adjustment (a price), closes-all flag
TRIGGER, TARGET, ADJUST, CLOSES_ALL = 0, 1, 2, 3
# entries of the ``grid`` array (SymbolBook.grid): tick units and scale, half a tick, lot units and
# scale, minimum volume
G_TICK_UNITS, G_TICK_SCALE, G_HALF_TICK, G_LOT_UNITS, G_LOT_SCALE, G_VOLUME_MIN = 0, 1, 2, 3, 4, 5
#: what ``engine.config.grid`` forgives of a step when rounding a computed value (the same constants)
_NOISE, _REL_NOISE = 1e-6, 1e-12

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]

_Fn = TypeVar("_Fn", bound=Callable[..., Any])
_njit: Callable[..., Callable[[Callable[..., Any]], Any]] = njit  # numba's decorator carries no annotations


def _numba(**options: Any) -> Callable[[_Fn], _Fn]:
    """numba's ``njit`` with ``options``, cached on disk; to a type checker the compiled function keeps its signature."""
    def compile_(fn: _Fn) -> _Fn:
        return cast(_Fn, _njit(cache=True, **options)(fn))
    return compile_


compiled = _numba()
# The per-position helpers are inlined by numba into ``_sweep`` before it is typed: the split step costs no call.
# ``_sweep`` runs without reference counting (numba's ``_nrt=False``, as numba's own hot helpers do): it allocates nothing
# and only reads and writes arrays its caller holds. With counting on, each array an inlined helper takes gains an incref
# and a decref per position that LLVM cannot prune across the helper's branches (numba #2350): seven times slower.
_inlined = _numba(inline="always")
_uncounted = _numba(_nrt=False)


@compiled
def snap(x: float, s: float, units: float, scale: float) -> float:
    """``x`` on the grid of ``units / scale``, rounded toward a position's profit: up for a long (``s`` > 0),
    down for a short; ``engine.config.grid.Grid.toward_profit`` to the bit."""
    q = x * scale / units
    tol = max(_NOISE, abs(q) * _REL_NOISE)
    k = math.ceil(q - tol) if s > 0 else math.floor(q + tol)
    return (k * units) / scale


@compiled
def _lots(x: float, grid: Floats) -> float:
    """A volume (>= 0) on the nearest lot step: a difference of two volumes on the grid, without its noise."""
    k = math.floor(x * grid[G_LOT_SCALE] / grid[G_LOT_UNITS] + 0.5)
    volume: float = (k * grid[G_LOT_UNITS]) / grid[G_LOT_SCALE]
    return volume


@compiled
def moves(delta: float, tighten: bool, step: float, half: float) -> bool:
    """Whether a stop or target moves by ``delta`` (signed, > 0 tighter; nan: none set yet): by at
    least ``step`` (a whole number of ticks), tighter only if ``tighten``."""
    if math.isnan(delta):
        return True
    if tighten:
        return delta >= step - half
    return abs(delta) >= step - half


@compiled
def _hit(out: Floats, k: int, i: int, kind: int, level: int, price: float, volume: float, fraction: float, prev: float) -> int:
    """Write hit ``k``: position, kind, level, price, volume, fraction, previous level. Return k + 1."""
    out[k, 0] = i
    out[k, 1] = kind
    out[k, 2] = level
    out[k, 3] = price
    out[k, 4] = volume
    out[k, 5] = fraction
    out[k, 6] = prev
    return k + 1


@_inlined
def _stop_or_target(i: int, s: float, price: float, half: float, floats: Floats, bools: Bools, out: Floats,
                    k: int) -> tuple[int, bool]:
    """Close position ``i`` whole at its stop (1.) or else its take profit (2.), each reached by a quote at
    the level or beyond, read on the grid; return (hits written, whether it closed)."""
    if s * price < s * floats[STOP, i] + half:
        kind = K_TRAIL_STOP if bools[TRAILED, i] else K_STOP
    elif s * price > s * floats[TP, i] - half:
        kind = K_TP
    else:
        return k, False
    vol = floats[VOL, i]
    k = _hit(out, k, i, kind, -1, price, vol, vol / floats[VOL0, i], np.nan)
    floats[VOL, i] = 0.0
    return k, True


@_inlined
def _best_and_arming(i: int, s: float, bid: float, ask: float, price: float, half: float, floats: Floats, bools: Bools) -> None:
    """Record a new best price; arm the trail once the price reaches its activation (4., first half, whatever the levels do)."""
    if s > 0:
        if bid > floats[BEST, i]:
            floats[BEST, i] = bid
    elif ask < floats[BEST, i]:
        floats[BEST, i] = ask
    if s * price > s * floats[TRAIL_ACT, i] - half:
        bools[ARMED, i] = True


@_inlined
def _exit_levels(i: int, s: float, price: float, grid: Floats, floats: Floats, ints: Ints, levels: Floats,
                 out: Floats, k: int) -> tuple[int, bool]:
    """Take the exit levels the price reaches and not taken yet (``TAKEN``, a bit per level), lowest
    first, each at most once (3.): close down to the volume the level leaves open (its ``TARGET``; a
    close below the minimum volume waits for the next level), or all that remains when less than the
    minimum would be left; a level may then tighten the stop. Return (hits written, whether the position
    closed)."""
    half = grid[G_HALF_TICK]
    vmin = grid[G_VOLUME_MIN] * (1 - _NOISE)
    vol0 = floats[VOL0, i]
    taken = ints[TAKEN, i]
    for j in range(levels.shape[2]):
        if (taken >> j) & 1:
            continue
        if not s * price > s * levels[TRIGGER, i, j] - half:
            break
        remaining = floats[VOL, i]
        if levels[CLOSES_ALL, i, j] != 0.0:
            volume = remaining
        else:
            volume = _lots(max(remaining - levels[TARGET, i, j], 0.0), grid)
            if volume < vmin:
                volume = 0.0
        left = _lots(remaining - volume, grid)
        if left < vmin or left <= 0.0:
            volume = remaining
            left = 0.0
        floats[VOL, i] = left
        taken |= 1 << j
        ints[TAKEN, i] = taken
        if volume > 0.0:
            k = _hit(out, k, i, K_PARTIAL, j, price, volume, volume / vol0, np.nan)
        if left == 0.0:
            return k, True
        cand = levels[ADJUST, i, j]
        if not math.isnan(cand) and moves(s * cand - s * floats[STOP, i], True, 2 * half, half):
            k = _hit(out, k, i, K_LEVEL_STOP, j, cand, 0.0, 0.0, floats[STOP, i])
            floats[STOP, i] = cand
    return k, False


@_inlined
def trail_candidate(i: int, s: float, grid: Floats, floats: Floats, ints: Ints, bools: Bools, sig_windows: Ints,
                    sig_values: Floats) -> float:
    """The stop an armed trail asks for now: its distance behind the best price (fixed, or its multiple
    of the volatility as a fraction of the best price, within bounds), on the tick grid.

    ``sig_windows``: the symbol's volatility horizons (``Horizon.key``); ``sig_values``: their volatility
    (a price; nan while not ready: the trail then keeps its floor distance)."""
    d: float = floats[TRAIL_D, i]
    if bools[TRAIL_VOL, i]:
        for w in range(sig_windows.shape[0]):
            if sig_windows[w] == ints[TRAIL_W, i] and not math.isnan(sig_values[w]):
                d = min(max(floats[TRAIL_K, i] * sig_values[w] / floats[BEST, i], floats[TRAIL_D, i]), floats[TRAIL_MAX, i])
    return snap(floats[BEST, i] * (1 - s * d), s, grid[G_TICK_UNITS], grid[G_TICK_SCALE])


@_inlined
def _trail(i: int, s: float, grid: Floats, floats: Floats, ints: Ints, bools: Bools, sig_windows: Ints, sig_values: Floats,
           out: Floats, k: int) -> int:
    """Pull an armed trailing stop up to ``trail_candidate`` when that tightens it by its ``min_step`` or
    more (4.); return hits written."""
    if not bools[ARMED, i]:
        return k
    cand = trail_candidate(i, s, grid, floats, ints, bools, sig_windows, sig_values)
    if moves(s * cand - s * floats[STOP, i], True, floats[TRAIL_MOVE, i], grid[G_HALF_TICK]):
        k = _hit(out, k, i, K_TRAIL, -1, cand, 0.0, 0.0, floats[STOP, i])
        floats[STOP, i] = cand
        bools[TRAILED, i] = True
    return k


@_inlined
def _dynamic(i: int, s: float, price: float, grid: Floats, floats: Floats, ints: Ints, bools: Bools,
             sig_windows: Ints, sig_values: Floats, out: Floats, k: int) -> int:
    """Move the stop and take profit to their multiples of the volatility (a price) from the price, at
    least their floors (5.), on the tick grid, each when it moves by its ``min_step`` or more (only
    tighter if so configured); nothing while the volatility is not ready (nan). Return hits written."""
    if not bools[DYN_ON, i]:
        return k
    half = grid[G_HALF_TICK]
    for w in range(sig_windows.shape[0]):
        if sig_windows[w] == ints[DYN_W, i] and not math.isnan(sig_values[w]):
            sig = sig_values[w]
            cand_stop = snap(price - s * max(floats[DYN_SK, i] * sig, floats[DYN_FLOOR, i]), s, grid[G_TICK_UNITS],
                             grid[G_TICK_SCALE])
            cand_tp = snap(price + s * max(floats[DYN_TK, i] * sig, floats[DYN_TP_FLOOR, i]), s, grid[G_TICK_UNITS],
                           grid[G_TICK_SCALE])
            if moves(s * cand_stop - s * floats[STOP, i], bools[DYN_TIGHT, i], floats[DYN_MOVE, i], half):
                k = _hit(out, k, i, K_DYN_STOP, -1, cand_stop, 0.0, 0.0, floats[STOP, i])
                floats[STOP, i] = cand_stop
            if moves(s * floats[TP, i] - s * cand_tp, bools[DYN_TIGHT, i], floats[DYN_MOVE, i], half):
                k = _hit(out, k, i, K_DYN_TP, -1, cand_tp, 0.0, 0.0, floats[TP, i])
                floats[TP, i] = cand_tp
    return k


@_inlined
def _step(i: int, bid: float, ask: float, elapsed: int, grid: Floats, floats: Floats, ints: Ints, bools: Bools,
          levels: Floats, sig_windows: Ints, sig_values: Floats, out: Floats, k: int) -> tuple[int, bool]:
    """Apply one quote to position ``i``, DESIGN section 4 in order; return (hits written, whether it closed)."""
    s = floats[SIDE, i]
    price = bid if s > 0 else ask
    if elapsed >= 0:
        if bools[INPROF, i]:
            ints[TIP, i] += elapsed
        e = floats[ENTRY, i]
        bools[INPROF, i] = s * (price - e) / e > 0
    half = grid[G_HALF_TICK]
    k, gone = _stop_or_target(i, s, price, half, floats, bools, out, k)
    if gone:
        return k, True
    _best_and_arming(i, s, bid, ask, price, half, floats, bools)
    k, gone = _exit_levels(i, s, price, grid, floats, ints, levels, out, k)
    if gone:
        return k, True
    k = _trail(i, s, grid, floats, ints, bools, sig_windows, sig_values, out, k)
    k = _dynamic(i, s, price, grid, floats, ints, bools, sig_windows, sig_values, out, k)
    return k, False


@_uncounted
def sweep(n: int, bid: float, ask: float, elapsed: int, grid: Floats, floats: Floats, ints: Ints, bools: Bools, levels: Floats,
          sig_windows: Ints, sig_values: Floats, out: Floats, gone_out: Ints, probe: bool, idx: Ints, use_idx: bool) -> tuple[int, int]:
    """Apply one quote to positions 0..n-1 (``use_idx``: to positions ``idx[:n]``); return (hits
    written, positions closed).

    With ``probe`` the sweep stops at the first hit (the caller, ``_scan.scan``, then restores the state
    it saved before the quote).
    """
    k = 0
    c = 0
    for t in range(n):
        i = idx[t] if use_idx else t
        k, gone = _step(i, bid, ask, elapsed, grid, floats, ints, bools, levels, sig_windows, sig_values, out, k)
        if probe and k > 0:
            return k, c
        if gone:
            gone_out[c] = i
            c += 1
    return k, c


@compiled
def tick(n: int, bid: float, ask: float, elapsed: int, grid: Floats, floats: Floats, ints: Ints, bools: Bools,
         levels: Floats, sig_windows: Ints, sig_values: Floats, out: Floats, gone: Ints) -> tuple[int, int]:
    """Apply one quote to positions 0..n-1; return (hits written, positions closed).

    ``grid``: the symbol's grids (``G_*``); ``floats``, ``ints``, ``bools``: the columns, in the row
    order of ``SymbolBook``; the indices of the closed positions are in ``gone[:closed]``.
    """
    return sweep(n, bid, ask, elapsed, grid, floats, ints, bools, levels, sig_windows, sig_values, out, gone, False, gone, False)


@compiled
def quote(n: int, bid: float, ask: float, ts: int, elapsed: int, grid: Floats, floats: Floats, ints: Ints, bools: Bools,
          levels: Floats, keys: Ints, bufs: Floats, S: Floats, out: Floats, gone: Ints) -> tuple[int, int]:
    """Add the quote at ``ts`` to the symbol's volatility (``Volatility``'s arrays), then apply it as ``tick`` does."""
    volatility.update(bid, ask, ts, keys, bufs, S)
    values = S[volatility.VALUE, : keys.shape[0]]
    return sweep(n, bid, ask, elapsed, grid, floats, ints, bools, levels, keys, values, out, gone, False, gone, False)
