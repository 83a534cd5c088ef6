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

import numpy as np
from numba import njit

from engine.rules import volatility

K_STOP, K_TRAIL_STOP, K_TP, K_PARTIAL, K_LEVEL_STOP, K_TRAIL, K_DYN_STOP, K_DYN_TP = range(8)
_EMPTY = 1e-9

# rows of SymbolBook's float, int and bool matrices (kept in step with SymbolBook._FLOATS, _INTS, _BOOLS)
_SIDE, _ENTRY, _VOL0, _VOL, _STOP, _TP, _BEST = 0, 1, 2, 3, 4, 5, 6
_HITS, _TIP, _CODE = 0, 1, 2
_ARMED, _TRAILED, _INPROF = 0, 1, 2


@njit(cache=True)
def _moves(delta: float, tighten: bool, point: float) -> bool:
    if math.isnan(delta):
        return True
    if tighten:
        return delta > 0 and delta >= point
    return delta != 0 and abs(delta) >= point


@njit(cache=True)
def _tighter(s: float, cand: float, cur: float) -> bool:
    if math.isnan(cur):
        return True
    return cand > cur if s > 0 else cand < cur


@njit(cache=True)
def _hit(out, k, i, kind, level, price, volume, fraction, prev):
    """Write hit ``k``: position, kind, level, price, volume, fraction, previous level. Return k + 1."""
    out[k, 0] = i
    out[k, 1] = kind
    out[k, 2] = level
    out[k, 3] = price
    out[k, 4] = volume
    out[k, 5] = fraction
    out[k, 6] = prev
    return k + 1


@njit(cache=True)
def _sweep(n, bid, ask, elapsed, point, F, I, B, L, sig_windows, sig_values, out, gone_out, probe, idx, use_idx):
    """Apply one quote to positions 0..n-1 (``use_idx``: to positions ``idx[:n]``); return (hits
    written, positions closed).

    With ``probe`` the sweep stops at the first hit (the caller, ``scan``, then restores the state it
    saved before the quote).
    """
    side, entry, vol0, vol, stop, tp, best = F[0], F[1], F[2], F[3], F[4], F[5], F[6]
    trail_d, trail_act, trail_max, trail_k, dyn_sk, dyn_tk = F[8], F[9], F[10], F[11], F[12], F[13]
    hits, tip, trail_w, dyn_w = I[0], I[1], I[4], I[5]
    armed, trailed, inprof, trail_vol, dyn_on, dyn_tight = B[0], B[1], B[2], B[3], B[4], B[5]
    k = 0
    c = 0
    nlev = L.shape[2]
    nsig = sig_windows.shape[0]
    for t in range(n):
        i = idx[t] if use_idx else t
        gone = False
        s = side[i]
        price = bid if s > 0 else ask
        e = entry[i]
        profit = s * (price - e) / e
        if elapsed >= 0:
            if inprof[i]:
                tip[i] += elapsed
            inprof[i] = profit > 0
        # 1. stop
        st = stop[i]
        if (bid <= st) if s > 0 else (ask >= st):
            k = _hit(out, k, i, K_TRAIL_STOP if trailed[i] else K_STOP, -1, price, vol[i], vol[i] / vol0[i], np.nan)
            vol[i] = 0.0
            gone = True
        # 2. take profit
        if not gone:
            t = tp[i]
            if (bid >= t) if s > 0 else (ask <= t):
                k = _hit(out, k, i, K_TP, -1, price, vol[i], vol[i] / vol0[i], np.nan)
                vol[i] = 0.0
                gone = True
        if not gone:
            # 4 (first half): best price and arming, whatever the levels do
            if s > 0:
                if bid > best[i]:
                    best[i] = bid
            else:
                if ask < best[i]:
                    best[i] = ask
            if profit >= trail_act[i]:
                armed[i] = True
            # 3. exit levels, lowest first, each at most once
            j = hits[i]
            while j < nlev and profit >= L[0, i, j]:
                remaining = vol[i]
                if L[3, i, j] != 0.0:
                    volume = remaining
                else:
                    volume = min(L[1, i, j] * vol0[i], remaining)
                left = remaining - volume
                if left <= vol0[i] * _EMPTY:
                    volume = remaining
                    left = 0.0
                vol[i] = left
                hits[i] = j + 1
                k = _hit(out, k, i, K_PARTIAL, j, price, volume, volume / vol0[i], np.nan)
                if left == 0.0:
                    gone = True
                    break
                adj = L[2, i, j]
                if not math.isnan(adj):
                    cand = e * (1 + s * adj)
                    if _tighter(s, cand, stop[i]):
                        k = _hit(out, k, i, K_LEVEL_STOP, j, cand, 0.0, 0.0, stop[i])
                        stop[i] = cand
                j += 1
        if not gone:
            # 4. trailing
            if armed[i]:
                d = trail_d[i]
                if trail_vol[i]:
                    for w in range(nsig):
                        if sig_windows[w] == trail_w[i]:
                            d = min(max(trail_k[i] * sig_values[w], trail_d[i]), trail_max[i])
                cand = best[i] * (1 - s * d)
                if _tighter(s, cand, stop[i]):
                    k = _hit(out, k, i, K_TRAIL, -1, cand, 0.0, 0.0, stop[i])
                    stop[i] = cand
                    trailed[i] = True
            # 5. dynamic SL/TP
            if dyn_on[i]:
                for w in range(nsig):
                    if sig_windows[w] == dyn_w[i]:
                        sig = sig_values[w]
                        cand_stop = price * (1 - s * dyn_sk[i] * sig)
                        cand_tp = price * (1 + s * dyn_tk[i] * sig)
                        if _moves(s * cand_stop - s * stop[i], dyn_tight[i], point):
                            k = _hit(out, k, i, K_DYN_STOP, -1, cand_stop, 0.0, 0.0, stop[i])
                            stop[i] = cand_stop
                        if _moves(s * tp[i] - s * cand_tp, dyn_tight[i], point):
                            k = _hit(out, k, i, K_DYN_TP, -1, cand_tp, 0.0, 0.0, tp[i])
                            tp[i] = cand_tp
        if probe and k > 0:
            return k, c
        if gone:
            gone_out[c] = i
            c += 1
    return k, c


@njit(cache=True)
def tick(n, bid, ask, elapsed, point, F, I, B, L, sig_windows, sig_values, out, gone):
    """Apply one quote to positions 0..n-1; return (hits written, positions closed).

    ``F``, ``I``, ``B``: the float, int and bool columns, in the row order of ``SymbolBook``; the
    indices of the closed positions are in ``gone[:closed]``.
    """
    return _sweep(n, bid, ask, elapsed, point, F, I, B, L, sig_windows, sig_values, out, gone, False, gone, False)


@njit(cache=True)
def quote(n, bid, ask, elapsed, point, F, I, B, L, sizes, bufs, S, out, gone):
    """Add the quote to the symbol's volatility (``Volatility``'s arrays), then apply it as ``tick`` does."""
    volatility.update(bid, ask, sizes, bufs, S)
    ready = int(S[6, 1])
    return _sweep(n, bid, ask, elapsed, point, F, I, B, L, sizes[:ready], S[5, :ready], out, gone, False, gone, False)


@njit(cache=True)
def _copy_state(n, F, I, B, F_save, I_save, B_save, back):
    """Copy the mutable columns of positions 0..n-1 (vol, stop, tp, best; hits, tip; armed, trailed,
    inprof) to the save arrays, or ``back`` from them."""
    for r in range(4):
        if back:
            F[3 + r, :n] = F_save[r, :n]
        else:
            F_save[r, :n] = F[3 + r, :n]
    for r in range(2):
        if back:
            I[r, :n] = I_save[r, :n]
        else:
            I_save[r, :n] = I[r, :n]
    for r in range(3):
        if back:
            B[r, :n] = B_save[r, :n]
        else:
            B_save[r, :n] = B[r, :n]


@njit(cache=True)
def np_sum(a, n):
    """``float(a[:n].sum())`` bit for bit, for n <= 128: numpy's pairwise summation (eight accumulators
    from eight values on, a plain loop below). ``engine.rules.batch`` checks it against numpy at import."""
    if n < 8:
        res = 0.0
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


@njit(cache=True)
def _bands(n, F, I, B, L, band, full):
    """Sort the positions for ``scan``: return the number of positions needing the whole step on every
    quote (listed in ``full``) and fill ``band``, the prices between which a quote changes nothing on
    any other position but its time in profit.

    ``band``: longs need ``band[0] < bid < band[1]`` and ``bid <= band[2]`` (no new best price);
    shorts ``band[3] < ask < band[4]`` and ``ask >= band[5]``. A position needs the whole step when
    its stops move with the volatility (dynamic SL/TP, volatility trailing once armed) or its armed
    trail would tighten the stop now. Thresholds on profit (arming, the next exit level) become prices
    with a margin of 1e-9, far above rounding, so a quote near one takes the whole step.
    """
    side, entry, stop, tp, best = F[0], F[1], F[4], F[5], F[6]
    trail_d, trail_act = F[8], F[9]
    hits = I[0]
    armed, trail_vol, dyn_on = B[0], B[3], B[4]
    nlev = L.shape[2]
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
        if j < nlev and not math.isnan(L[0, i, j]):
            x = L[0, i, j]
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


@njit(cache=True)
def scan(lo, hi, ts, bids, asks, last_ts, limit_ts, minute_ms, minute, bar_ms, bar,
         n, point, F, I, B, L, sizes, bufs, S, out, gone, F_save, I_save, B_save, S_save, slot_save,
         scale, old, total, new, totals, base, peak, start, limit_loss, breached, exact, full, band):
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
    nw = sizes.shape[0]
    ncodes = old.shape[0]
    side, entry, vol = F[0], F[1], F[3]
    tip, code = I[1], I[2]
    inprof = B[2]
    m = _bands(n, F, I, B, L, band, full)
    for j in range(lo, hi):
        t = ts[j]
        if t >= limit_ts:
            return j, last_ts, False
        boundary = t // minute_ms != minute or t // bar_ms != bar
        bid = bids[j]
        ask = asks[j]
        elapsed = t - last_ts
        S_save[:, :] = S
        for w in range(nw):
            slot_save[w] = bufs[w, int(S[0, w])]
        volatility.update(bid, ask, sizes, bufs, S)
        ready = int(S[6, 1])
        inside = (band[0] < bid < band[1] and bid <= band[2] and band[3] < ask < band[4] and ask >= band[5])
        if inside:  # the whole step on the listed positions only
            count = m
            for q in range(m):
                i = full[q]
                F_save[0, q], F_save[1, q], F_save[2, q], F_save[3, q] = F[3, i], F[4, i], F[5, i], F[6, i]
                I_save[0, q], I_save[1, q] = I[0, i], I[1, i]
                B_save[0, q], B_save[1, q], B_save[2, q] = B[0, i], B[1, i], B[2, i]
            k, c = _sweep(m, bid, ask, elapsed, point, F, I, B, L, sizes[:ready], S[5, :ready], out, gone, True, full, True)
        else:
            count = n
            _copy_state(n, F, I, B, F_save, I_save, B_save, False)
            k, c = _sweep(n, bid, ask, elapsed, point, F, I, B, L, sizes[:ready], S[5, :ready], out, gone, True, full, False)
        quiet = k == 0
        if quiet:
            for q in range(ncodes):
                new[q] = 0.0
            for i in range(n):
                s = side[i]
                px = bid if s > 0 else ask
                new[code[i]] += s * (px - entry[i]) * vol[i]
            mag = abs(base)
            for q in range(ncodes):
                new[q] = new[q] * scale
                totals[q] = (total[q] - old[q]) + new[q]
                mag += abs(totals[q])
            equity = base + np_sum(totals, ncodes)
            margin = 0.0 if exact else 1e-9 * mag + 1e-9
            if equity > peak - margin or math.isnan(equity):
                quiet = False
            elif not breached and (equity - start) / start <= -limit_loss + margin / start:
                quiet = False
        if not quiet:
            if inside:
                for q in range(count):
                    i = full[q]
                    F[3, i], F[4, i], F[5, i], F[6, i] = F_save[0, q], F_save[1, q], F_save[2, q], F_save[3, q]
                    I[0, i], I[1, i] = I_save[0, q], I_save[1, q]
                    B[0, i], B[1, i], B[2, i] = B_save[0, q], B_save[1, q], B_save[2, q]
            else:
                _copy_state(n, F, I, B, F_save, I_save, B_save, True)
            for w in range(nw):
                bufs[w, int(S_save[0, w])] = slot_save[w]
            S[:, :] = S_save
            return j, last_ts, False
        if inside:  # time in profit of the banded positions, as the whole step computes it
            if elapsed >= 0:
                q = 0
                for i in range(n):
                    if q < m and full[q] == i:
                        q += 1
                        continue
                    if inprof[i]:
                        tip[i] += elapsed
                    s = side[i]
                    price = bid if s > 0 else ask
                    e = entry[i]
                    inprof[i] = s * (price - e) / e > 0
        else:
            m = _bands(n, F, I, B, L, band, full)
        for q in range(ncodes):
            total[q] = totals[q]
            old[q] = new[q]
        last_ts = t
        if boundary:
            return j + 1, last_ts, True
    return hi, last_ts, False
