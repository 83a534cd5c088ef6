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

``scan`` runs the same per-position step over a run of quotes of one symbol and stops before the
first quote on which anything would happen (see engine/rules/batch.py).
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
_EMPTY = 1e-9

# rows of SymbolBook's float, int and bool matrices (kept in step with SymbolBook._FLOATS, _INTS, _BOOLS)
_SIDE, _ENTRY, _VOL0, _VOL, _STOP, _TP, _BEST = 0, 1, 2, 3, 4, 5, 6
_TRAIL_D, _TRAIL_ACT, _TRAIL_MAX, _TRAIL_K, _DYN_SK, _DYN_TK = 8, 9, 10, 11, 12, 13
_HITS, _TIP, _CODE, _TRAIL_W, _DYN_W = 0, 1, 2, 4, 5
_ARMED, _TRAILED, _INPROF, _TRAIL_VOL, _DYN_ON, _DYN_TIGHT = 0, 1, 2, 3, 4, 5
# rows of the exit levels array (SymbolBook._alloc_levels)
_TRIGGER, _PERCENT, _ADJUST, _CLOSES_ALL = 0, 1, 2, 3

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


_compiled = _numba()
# The per-position helpers are inlined by numba into ``_sweep`` before it is typed: the split step costs no call.
# ``_sweep`` runs without reference counting (numba's ``_nrt=False``, as numba's own hot helpers do): it allocates nothing
# and only reads and writes arrays its caller holds. With counting on, each array an inlined helper takes gains an incref
# and a decref per position that LLVM cannot prune across the helper's branches (numba #2350): seven times slower.
_inlined = _numba(inline="always")
_uncounted = _numba(_nrt=False)


@_compiled
def _moves(delta: float, tighten: bool, point: float) -> bool:
    if math.isnan(delta):
        return True
    if tighten:
        return delta > 0 and delta >= point
    return delta != 0 and abs(delta) >= point


@_compiled
def _tighter(s: float, cand: float, cur: float) -> bool:
    if math.isnan(cur):
        return True
    return cand > cur if s > 0 else cand < cur


@_compiled
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
def _stop_or_target(i: int, s: float, bid: float, ask: float, price: float, floats: Floats, bools: Bools,
                    out: Floats, k: int) -> tuple[int, bool]:
    """Close position ``i`` whole at its stop (1.) or else its take profit (2.); return (hits written, whether it closed)."""
    st = floats[_STOP, i]
    tp = floats[_TP, i]
    if (bid <= st) if s > 0 else (ask >= st):
        kind = K_TRAIL_STOP if bools[_TRAILED, i] else K_STOP
    elif (bid >= tp) if s > 0 else (ask <= tp):
        kind = K_TP
    else:
        return k, False
    vol = floats[_VOL, i]
    k = _hit(out, k, i, kind, -1, price, vol, vol / floats[_VOL0, i], np.nan)
    floats[_VOL, i] = 0.0
    return k, True


@_inlined
def _best_and_arming(i: int, s: float, bid: float, ask: float, profit: float, floats: Floats, bools: Bools) -> None:
    """Record a new best price; arm the trail once the profit reaches its activation (4., first half, whatever the levels do)."""
    if s > 0:
        if bid > floats[_BEST, i]:
            floats[_BEST, i] = bid
    elif ask < floats[_BEST, i]:
        floats[_BEST, i] = ask
    if profit >= floats[_TRAIL_ACT, i]:
        bools[_ARMED, i] = True


@_inlined
def _exit_levels(i: int, s: float, price: float, profit: float, floats: Floats, ints: Ints, levels: Floats,
                 out: Floats, k: int) -> tuple[int, bool]:
    """Take the exit levels ``profit`` reaches, lowest first, each at most once (3.); a level may then
    tighten the stop. Return (hits written, whether the position closed)."""
    vol0 = floats[_VOL0, i]
    j = ints[_HITS, i]
    while j < levels.shape[2] and profit >= levels[_TRIGGER, i, j]:
        remaining = floats[_VOL, i]
        if levels[_CLOSES_ALL, i, j] != 0.0:
            volume = remaining
        else:
            volume = min(levels[_PERCENT, i, j] * vol0, remaining)
        left = remaining - volume
        if left <= vol0 * _EMPTY:
            volume = remaining
            left = 0.0
        floats[_VOL, i] = left
        ints[_HITS, i] = j + 1
        k = _hit(out, k, i, K_PARTIAL, j, price, volume, volume / vol0, np.nan)
        if left == 0.0:
            return k, True
        adj = levels[_ADJUST, i, j]
        if not math.isnan(adj):
            cand = floats[_ENTRY, i] * (1 + s * adj)
            if _tighter(s, cand, floats[_STOP, i]):
                k = _hit(out, k, i, K_LEVEL_STOP, j, cand, 0.0, 0.0, floats[_STOP, i])
                floats[_STOP, i] = cand
        j += 1
    return k, False


@_inlined
def _trail(i: int, s: float, floats: Floats, ints: Ints, bools: Bools, sig_windows: Ints, sig_values: Floats, out: Floats,
           k: int) -> int:
    """Pull an armed trailing stop up to its distance behind the best price (fixed, or its multiple of the
    volatility within bounds) when that tightens it (4.); return hits written."""
    if not bools[_ARMED, i]:
        return k
    d: float = floats[_TRAIL_D, i]
    if bools[_TRAIL_VOL, i]:
        for w in range(sig_windows.shape[0]):
            if sig_windows[w] == ints[_TRAIL_W, i]:
                d = min(max(floats[_TRAIL_K, i] * sig_values[w], floats[_TRAIL_D, i]), floats[_TRAIL_MAX, i])
    cand = floats[_BEST, i] * (1 - s * d)
    if _tighter(s, cand, floats[_STOP, i]):
        k = _hit(out, k, i, K_TRAIL, -1, cand, 0.0, 0.0, floats[_STOP, i])
        floats[_STOP, i] = cand
        bools[_TRAILED, i] = True
    return k


@_inlined
def _dynamic(i: int, s: float, price: float, point: float, floats: Floats, ints: Ints, bools: Bools,
             sig_windows: Ints, sig_values: Floats, out: Floats, k: int) -> int:
    """Move the stop and take profit to their multiples of the volatility from the price (5.), each when it
    moves by a point or more (only tighter if so configured); return hits written."""
    if not bools[_DYN_ON, i]:
        return k
    for w in range(sig_windows.shape[0]):
        if sig_windows[w] == ints[_DYN_W, i]:
            sig = sig_values[w]
            cand_stop = price * (1 - s * floats[_DYN_SK, i] * sig)
            cand_tp = price * (1 + s * floats[_DYN_TK, i] * sig)
            if _moves(s * cand_stop - s * floats[_STOP, i], bools[_DYN_TIGHT, i], point):
                k = _hit(out, k, i, K_DYN_STOP, -1, cand_stop, 0.0, 0.0, floats[_STOP, i])
                floats[_STOP, i] = cand_stop
            if _moves(s * floats[_TP, i] - s * cand_tp, bools[_DYN_TIGHT, i], point):
                k = _hit(out, k, i, K_DYN_TP, -1, cand_tp, 0.0, 0.0, floats[_TP, i])
                floats[_TP, i] = cand_tp
    return k


@_inlined
def _step(i: int, bid: float, ask: float, elapsed: int, point: float, floats: Floats, ints: Ints, bools: Bools,
          levels: Floats, sig_windows: Ints, sig_values: Floats, out: Floats, k: int) -> tuple[int, bool]:
    """Apply one quote to position ``i``, DESIGN section 4 in order; return (hits written, whether it closed)."""
    s = floats[_SIDE, i]
    price = bid if s > 0 else ask
    e = floats[_ENTRY, i]
    profit = s * (price - e) / e
    if elapsed >= 0:
        if bools[_INPROF, i]:
            ints[_TIP, i] += elapsed
        bools[_INPROF, i] = profit > 0
    k, gone = _stop_or_target(i, s, bid, ask, price, floats, bools, out, k)
    if gone:
        return k, True
    _best_and_arming(i, s, bid, ask, profit, floats, bools)
    k, gone = _exit_levels(i, s, price, profit, floats, ints, levels, out, k)
    if gone:
        return k, True
    k = _trail(i, s, floats, ints, bools, sig_windows, sig_values, out, k)
    k = _dynamic(i, s, price, point, floats, ints, bools, sig_windows, sig_values, out, k)
    return k, False


@_uncounted
def _sweep(n: int, bid: float, ask: float, elapsed: int, point: float, floats: Floats, ints: Ints, bools: Bools, levels: Floats,
           sig_windows: Ints, sig_values: Floats, out: Floats, gone_out: Ints, probe: bool, idx: Ints, use_idx: bool) -> tuple[int, int]:
    """Apply one quote to positions 0..n-1 (``use_idx``: to positions ``idx[:n]``); return (hits
    written, positions closed).

    With ``probe`` the sweep stops at the first hit (the caller, ``scan``, then restores the state it
    saved before the quote).
    """
    k = 0
    c = 0
    for t in range(n):
        i = idx[t] if use_idx else t
        k, gone = _step(i, bid, ask, elapsed, point, floats, ints, bools, levels, sig_windows, sig_values, out, k)
        if probe and k > 0:
            return k, c
        if gone:
            gone_out[c] = i
            c += 1
    return k, c


@_compiled
def tick(n: int, bid: float, ask: float, elapsed: int, point: float, floats: Floats, ints: Ints, bools: Bools,
         levels: Floats, sig_windows: Ints, sig_values: Floats, out: Floats, gone: Ints) -> tuple[int, int]:
    """Apply one quote to positions 0..n-1; return (hits written, positions closed).

    ``floats``, ``ints``, ``bools``: the columns, in the row order of ``SymbolBook``; the indices of the
    closed positions are in ``gone[:closed]``.
    """
    return _sweep(n, bid, ask, elapsed, point, floats, ints, bools, levels, sig_windows, sig_values, out, gone, False, gone, False)


@_compiled
def quote(n: int, bid: float, ask: float, elapsed: int, point: float, floats: Floats, ints: Ints, bools: Bools,
          levels: Floats, sizes: Ints, bufs: Floats, S: Floats, out: Floats, gone: Ints) -> tuple[int, int]:
    """Add the quote to the symbol's volatility (``Volatility``'s arrays), then apply it as ``tick`` does."""
    volatility.update(bid, ask, sizes, bufs, S)
    ready = int(S[6, 1])
    sig_windows, sig_values = sizes[:ready], S[5, :ready]
    return _sweep(n, bid, ask, elapsed, point, floats, ints, bools, levels, sig_windows, sig_values, out, gone, False, gone, False)


@_compiled
def _copy_state(n: int, idx: Ints, use_idx: bool, floats: Floats, ints: Ints, bools: Bools, floats_save: Floats, ints_save: Ints,
                bools_save: Bools, back: bool) -> None:
    """Copy the mutable columns (vol, stop, tp, best; hits, tip; armed, trailed, inprof) of positions 0..n-1
    (``use_idx``: of positions ``idx[:n]``) to the first n columns of the save arrays, or ``back`` from them."""
    for q in range(n):
        i = idx[q] if use_idx else q
        for r in range(4):
            if back:
                floats[3 + r, i] = floats_save[r, q]
            else:
                floats_save[r, q] = floats[3 + r, i]
        for r in range(2):
            if back:
                ints[r, i] = ints_save[r, q]
            else:
                ints_save[r, q] = ints[r, i]
        for r in range(3):
            if back:
                bools[r, i] = bools_save[r, q]
            else:
                bools_save[r, q] = bools[r, i]


@_compiled
def _copy_volatility(sizes: Ints, bufs: Floats, S: Floats, S_save: Floats, slot_save: Floats, back: bool) -> None:
    """Save what adding a quote changes in ``Volatility``'s arrays (the sums, and the ring slot each
    window overwrites), or put it ``back``."""
    if back:
        for w in range(sizes.shape[0]):
            bufs[w, int(S_save[0, w])] = slot_save[w]
        S[:, :] = S_save
    else:
        S_save[:, :] = S
        for w in range(sizes.shape[0]):
            slot_save[w] = bufs[w, int(S[0, w])]


@_compiled
def np_sum(a: Floats, n: int) -> float:
    """``float(a[:n].sum())`` bit for bit, for n <= 128: numpy's pairwise summation (eight accumulators
    from eight values on, a plain loop below). ``engine.rules.batch`` checks it against numpy at import."""
    if n < 8:
        res: float = 0.0
        for i in range(n):
            res += a[i]
        return res
    r0, r1, r2, r3, r4, r5, r6, r7 = a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]
    i = 8
    while i < n - (n % 8):
        r0 += a[i]
        r1 += a[i + 1]
        r2 += a[i + 2]
        r3 += a[i + 3]
        r4 += a[i + 4]
        r5 += a[i + 5]
        r6 += a[i + 6]
        r7 += a[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[i]
        i += 1
    return res


@_compiled
def _bands(n: int, floats: Floats, ints: Ints, bools: Bools, levels: Floats, band: Floats, full: Ints) -> int:
    """Sort the positions for ``scan``: return the number of positions needing the whole step on every
    quote (listed in ``full``) and fill ``band``, the prices between which a quote changes nothing on
    any other position but its time in profit.

    ``band``: longs need ``band[0] < bid < band[1]`` and ``bid <= band[2]`` (no new best price);
    shorts ``band[3] < ask < band[4]`` and ``ask >= band[5]``. A position needs the whole step when
    its stops move with the volatility (dynamic SL/TP, volatility trailing once armed) or its armed
    trail would tighten the stop now. Thresholds on profit (arming, the next exit level) become prices
    with a margin of 1e-9, far above rounding, so a quote near one takes the whole step.
    """
    side, entry, stop, tp, best = floats[_SIDE], floats[_ENTRY], floats[_STOP], floats[_TP], floats[_BEST]
    trail_d, trail_act = floats[_TRAIL_D], floats[_TRAIL_ACT]
    hits = ints[_HITS]
    armed, trail_vol, dyn_on = bools[_ARMED], bools[_TRAIL_VOL], bools[_DYN_ON]
    nlev = levels.shape[2]
    band[0], band[1], band[2] = -np.inf, np.inf, np.inf
    band[3], band[4], band[5] = -np.inf, np.inf, -np.inf
    m = 0
    for i in range(n):
        s = side[i]
        e = entry[i]
        if dyn_on[i] or (armed[i] and trail_vol[i]):
            full[m] = i
            m += 1
            continue
        if armed[i] and _tighter(s, best[i] * (1 - s * trail_d[i]), stop[i]):
            full[m] = i
            m += 1
            continue
        # profit >= x, as a price: long bid >= e (1 + x), short ask <= e (1 - x)
        reach = np.inf if s > 0 else -np.inf
        if not armed[i] and not math.isnan(trail_act[i]):
            x = trail_act[i]
            reach = min(reach, e * (1 + x) * (1 - 1e-9)) if s > 0 else max(reach, e * (1 - x) * (1 + 1e-9))
        j = hits[i]
        if j < nlev and not math.isnan(levels[_TRIGGER, i, j]):
            x = levels[_TRIGGER, i, j]
            reach = min(reach, e * (1 + x) * (1 - 1e-9)) if s > 0 else max(reach, e * (1 - x) * (1 + 1e-9))
        st = stop[i]
        t = tp[i]
        if s > 0:
            if not math.isnan(st):
                band[0] = max(band[0], st)
            if not math.isnan(t):
                band[1] = min(band[1], t)
            band[1] = min(band[1], reach)
            band[2] = min(band[2], best[i])
        else:
            if not math.isnan(t):
                band[3] = max(band[3], t)
            band[3] = max(band[3], reach)
            if not math.isnan(st):
                band[4] = min(band[4], st)
            band[5] = max(band[5], best[i])
    return m


@_compiled
def _equity_stays_inside(n: int, bid: float, ask: float, floats: Floats, ints: Ints, scale: float, old: Floats, total: Floats,
                         new: Floats, totals: Floats, base: float, peak: float, start: float, limit_loss: float, breached: bool,
                         exact: bool) -> bool:
    """Put the open PnL per strategy code at this quote in ``new`` (this symbol's) and ``totals`` (all
    symbols'); return whether the equity stays below the ``peak`` and above the daily loss limit (see
    ``scan``)."""
    ncodes = old.shape[0]
    for q in range(ncodes):
        new[q] = 0.0
    for i in range(n):
        s = floats[_SIDE, i]
        px = bid if s > 0 else ask
        new[ints[_CODE, i]] += s * (px - floats[_ENTRY, i]) * floats[_VOL, i]
    mag = abs(base)
    for q in range(ncodes):
        new[q] = new[q] * scale
        totals[q] = (total[q] - old[q]) + new[q]
        mag += abs(totals[q])
    equity = base + np_sum(totals, ncodes)
    margin = 0.0 if exact else 1e-9 * mag + 1e-9
    if equity > peak - margin or math.isnan(equity):
        return False
    if breached:
        return True
    # not "loss > limit": a nan limit (a nan start) stops nothing
    return not (equity - start) / start <= -limit_loss + margin / start


@_compiled
def _time_in_profit(n: int, m: int, full: Ints, bid: float, ask: float, elapsed: int, floats: Floats, ints: Ints,
                    bools: Bools) -> None:
    """Count the time in profit of positions 0..n-1 but those in ``full[:m]`` (ascending), as the whole
    step does."""
    if elapsed < 0:
        return
    q = 0
    for i in range(n):
        if q < m and full[q] == i:
            q += 1
            continue
        if bools[_INPROF, i]:
            ints[_TIP, i] += elapsed
        s = floats[_SIDE, i]
        price = bid if s > 0 else ask
        e = floats[_ENTRY, i]
        bools[_INPROF, i] = s * (price - e) / e > 0


@_compiled
def scan(lo: int, hi: int, ts: Ints, bids: Floats, asks: Floats, last_ts: int, limit_ts: int, minute_ms: int, minute: int,
         bar_ms: int, bar: int, n: int, point: float, floats: Floats, ints: Ints, bools: Bools, levels: Floats, sizes: Ints,
         bufs: Floats, S: Floats, out: Floats, gone: Ints, floats_save: Floats, ints_save: Ints, bools_save: Bools, S_save: Floats,
         slot_save: Floats, scale: float, old: Floats, total: Floats, new: Floats, totals: Floats, base: float, peak: float,
         start: float, limit_loss: float, breached: bool, exact: bool, full: Ints, band: Floats) -> tuple[int, int, bool]:
    """Apply quotes ``lo..hi-1`` of one symbol while nothing happens on them; return (the end of the
    quotes applied, the time of the last one, whether the last one opened a sampling period or bar).

    A quote is not applied, and leaves no trace, when it falls at or after ``limit_ts`` (a reset),
    when any position would produce a hit, or when the equity after it would pass the ``peak`` or
    the daily loss limit (``limit_loss`` of the day's ``start`` equity, unless ``breached``). With
    ``exact`` the equity is the evaluator's to the bit (``np_sum``); without, a quote within a margin
    far above rounding of either threshold stops the run, and the evaluator decides it. A quote in
    another sampling period (``minute``) or bar is applied and ends the run, so the caller can sample
    the equity and close the bar. Each quote applied updates the volatility, the positions (best
    price, arming, time in profit) and the open PnL per strategy code (``old``: this symbol's,
    ``total``: all symbols', as the evaluator keeps them) exactly as the per-quote path does.

    Most quotes fall inside every position's band (``_bands``): then only the few positions listed
    in ``full`` take the whole step, and the others gain their time in profit; any other quote takes
    the whole step on every position, after which the bands are drawn again.
    """
    m = _bands(n, floats, ints, bools, levels, band, full)
    for j in range(lo, hi):
        t = ts[j]
        if t >= limit_ts:
            return j, last_ts, False
        bid = bids[j]
        ask = asks[j]
        elapsed = t - last_ts
        _copy_volatility(sizes, bufs, S, S_save, slot_save, False)
        volatility.update(bid, ask, sizes, bufs, S)
        ready = int(S[6, 1])
        inside = band[0] < bid < band[1] and bid <= band[2] and band[3] < ask < band[4] and ask >= band[5]
        count = m if inside else n  # inside: the whole step on the listed positions only
        _copy_state(count, full, inside, floats, ints, bools, floats_save, ints_save, bools_save, False)
        k, _ = _sweep(count, bid, ask, elapsed, point, floats, ints, bools, levels, sizes[:ready], S[5, :ready], out, gone, True,
                      full, inside)
        if k > 0 or not _equity_stays_inside(n, bid, ask, floats, ints, scale, old, total, new, totals, base, peak, start,
                                             limit_loss, breached, exact):
            _copy_state(count, full, inside, floats, ints, bools, floats_save, ints_save, bools_save, True)
            _copy_volatility(sizes, bufs, S, S_save, slot_save, True)
            return j, last_ts, False
        if inside:
            _time_in_profit(n, m, full, bid, ask, elapsed, floats, ints, bools)
        else:
            m = _bands(n, floats, ints, bools, levels, band, full)
        for q in range(old.shape[0]):
            total[q] = totals[q]
            old[q] = new[q]
        last_ts = t
        if t // minute_ms != minute or t // bar_ms != bar:
            return j + 1, last_ts, True
    return hi, last_ts, False
