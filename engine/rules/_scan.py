"""The compiled scan of a run of quotes (``engine/rules/batch.py``): quiet quotes applied in bulk.

``scan`` runs ``_jit``'s per-position step over a run of quotes of one symbol and stops before the
first quote on which anything would happen; ``_bands`` narrows most quotes to the few positions that
need the whole step. Kept beside ``_jit`` (same row constants, same compiled helpers), in its own module.
"""

from __future__ import annotations

import math

import numpy as np

from engine.rules import volatility
from engine.rules._jit import (
    ARMED,
    BEST,
    CODE,
    DYN_ON,
    ENTRY,
    G_HALF_TICK,
    INPROF,
    SIDE,
    STOP,
    TAKEN,
    TIP,
    TP,
    TRAIL_ACT,
    TRAIL_MOVE,
    TRAIL_VOL,
    TRIGGER,
    VOL,
    Bools,
    Floats,
    Ints,
    compiled,
    moves,
    sweep,
    trail_candidate,
)


@compiled
def _copy_state(n: int, idx: Ints, use_idx: bool, floats: Floats, ints: Ints, bools: Bools, floats_save: Floats, ints_save: Ints,
                bools_save: Bools, back: bool) -> None:
    """Copy the mutable columns (vol, stop, tp, best; taken, tip; armed, trailed, inprof) of positions 0..n-1
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


@compiled
def _copy_volatility(keys: Ints, bufs: Floats, S: Floats, S_save: Floats, slot_save: Floats, back: bool) -> None:
    """Save what adding a quote changes in ``Volatility``'s arrays (the rows of ``S``, and the ring slot
    each horizon overwrites if the quote closes a bar), or put it ``back``."""
    if back:
        for w in range(keys.shape[0]):
            bufs[w, int(S_save[volatility.POS, w])] = slot_save[w]
        S[:, :] = S_save
    else:
        S_save[:, :] = S
        for w in range(keys.shape[0]):
            slot_save[w] = bufs[w, int(S[volatility.POS, w])]


@compiled
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


@compiled
def _bands(n: int, grid: Floats, floats: Floats, ints: Ints, bools: Bools, levels: Floats, band: Floats, full: Ints,
           no_windows: Ints, no_values: Floats) -> int:
    """Sort the positions for ``scan``: return the number of positions needing the whole step on every
    quote (listed in ``full``) and fill ``band``, the prices between which a quote changes nothing on
    any other position but its time in profit.

    ``band``: longs need ``band[0] < bid < band[1]`` and ``bid <= band[2]`` (no new best price);
    shorts ``band[3] < ask < band[4]`` and ``ask >= band[5]``. A position needs the whole step when
    its stops move with the volatility (dynamic SL/TP, volatility trailing once armed) or its armed
    trail would tighten the stop now (``no_windows``/``no_values``: empty volatility, for the step's own
    ``trail_candidate`` of a fixed trail). Every other level is a price the step compares a quote with
    within half a tick (``_jit``): the band's bounds are those same sums, so a quote inside reaches none.
    """
    side, stop, tp, best = floats[SIDE], floats[STOP], floats[TP], floats[BEST]
    trail_act, trail_move = floats[TRAIL_ACT], floats[TRAIL_MOVE]
    taken = ints[TAKEN]
    armed, trail_vol, dyn_on = bools[ARMED], bools[TRAIL_VOL], bools[DYN_ON]
    half = grid[G_HALF_TICK]
    nlev = levels.shape[2]
    band[0], band[1], band[2] = -np.inf, np.inf, np.inf
    band[3], band[4], band[5] = -np.inf, np.inf, -np.inf
    m = 0
    for i in range(n):
        s = side[i]
        if dyn_on[i] or (armed[i] and trail_vol[i]):
            full[m] = i
            m += 1
            continue
        if armed[i]:
            # a fixed trail (a volatility one took the whole step above): the step's own candidate, without volatility
            cand = trail_candidate(i, s, grid, floats, ints, bools, no_windows, no_values)
            if moves(s * cand - s * stop[i], True, trail_move[i], half):
                full[m] = i
                m += 1
                continue
        # the next price threshold: the trail's activation (not armed yet), the next exit level
        reach = np.inf if s > 0 else -np.inf
        if not armed[i]:
            reach = min(reach, trail_act[i]) if s > 0 else max(reach, trail_act[i])
        j = 0
        while j < nlev and (taken[i] >> j) & 1:  # the lowest level not taken
            j += 1
        if j < nlev:
            x = levels[TRIGGER, i, j]
            reach = min(reach, x) if s > 0 else max(reach, x)
        st = stop[i]
        t = tp[i]
        if s > 0:
            if not math.isnan(st):
                band[0] = max(band[0], st + half)
            if not math.isnan(t):
                band[1] = min(band[1], t - half)
            band[1] = min(band[1], reach - half)
            band[2] = min(band[2], best[i])
        else:
            if not math.isnan(t):
                band[3] = max(band[3], t + half)
            band[3] = max(band[3], reach + half)
            if not math.isnan(st):
                band[4] = min(band[4], st - half)
            band[5] = max(band[5], best[i])
    return m


@compiled
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
        s = floats[SIDE, i]
        px = bid if s > 0 else ask
        new[ints[CODE, i]] += s * (px - floats[ENTRY, i]) * floats[VOL, i]
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


@compiled
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
        if bools[INPROF, i]:
            ints[TIP, i] += elapsed
        s = floats[SIDE, i]
        price = bid if s > 0 else ask
        e = floats[ENTRY, i]
        bools[INPROF, i] = s * (price - e) / e > 0


@compiled
def scan(lo: int, hi: int, ts: Ints, bids: Floats, asks: Floats, last_ts: int, limit_ts: int, minute_ms: int, minute: int,
         bar_ms: int, bar: int, n: int, grid: Floats, floats: Floats, ints: Ints, bools: Bools, levels: Floats, keys: Ints,
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
    values = S[volatility.VALUE, : keys.shape[0]]
    m = _bands(n, grid, floats, ints, bools, levels, band, full, keys[:0], values[:0])
    for j in range(lo, hi):
        t = ts[j]
        if t >= limit_ts:
            return j, last_ts, False
        bid = bids[j]
        ask = asks[j]
        elapsed = t - last_ts
        _copy_volatility(keys, bufs, S, S_save, slot_save, False)
        volatility.update(bid, ask, t, keys, bufs, S)
        inside = band[0] < bid < band[1] and bid <= band[2] and band[3] < ask < band[4] and ask >= band[5]
        count = m if inside else n  # inside: the whole step on the listed positions only
        _copy_state(count, full, inside, floats, ints, bools, floats_save, ints_save, bools_save, False)
        k, _ = sweep(count, bid, ask, elapsed, grid, floats, ints, bools, levels, keys, values, out, gone, True, full, inside)
        if k > 0 or not _equity_stays_inside(n, bid, ask, floats, ints, scale, old, total, new, totals, base, peak, start,
                                             limit_loss, breached, exact):
            _copy_state(count, full, inside, floats, ints, bools, floats_save, ints_save, bools_save, True)
            _copy_volatility(keys, bufs, S, S_save, slot_save, True)
            return j, last_ts, False
        if inside:
            _time_in_profit(n, m, full, bid, ask, elapsed, floats, ints, bools)
        else:
            m = _bands(n, grid, floats, ints, bools, levels, band, full, keys[:0], values[:0])
        for q in range(old.shape[0]):
            total[q] = totals[q]
            old[q] = new[q]
        last_ts = t
        if t // minute_ms != minute or t // bar_ms != bar:
            return j + 1, last_ts, True
    return hi, last_ts, False
