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


# mutable columns a probe saves before touching a position: (matrix, row) pairs, in this order
_SAVED_F = (3, 4, 5, 6)  # vol, stop, tp, best
_SAVED_I = (0, 1)  # hits, tip
_SAVED_B = (0, 1, 2)  # armed, trailed, inprof


@njit(cache=True)
def _sweep(n, bid, ask, elapsed, point, F, I, B, L, sig_windows, sig_values, out, gone_out, save, probe):
    """Apply one quote to positions 0..n-1; return (hits written, positions closed).

    With ``probe`` the quote is only tried: each position's mutable state is saved in ``save`` before
    it is touched, and on the first hit the positions touched so far are restored and the sweep stops
    (returning a hit count > 0), so a quote on which something happens leaves no trace.
    """
    side, entry, vol0, vol, stop, tp, best = F[0], F[1], F[2], F[3], F[4], F[5], F[6]
    trail_d, trail_act, trail_max, trail_k, dyn_sk, dyn_tk = F[8], F[9], F[10], F[11], F[12], F[13]
    hits, tip, trail_w, dyn_w = I[0], I[1], I[4], I[5]
    armed, trailed, inprof, trail_vol, dyn_on, dyn_tight = B[0], B[1], B[2], B[3], B[4], B[5]
    k = 0
    c = 0
    nlev = L.shape[2]
    nsig = sig_windows.shape[0]
    for i in range(n):
        if probe:
            save[0, i] = vol[i]
            save[1, i] = stop[i]
            save[2, i] = tp[i]
            save[3, i] = best[i]
            save[4, i] = hits[i]
            save[5, i] = tip[i]
            save[6, i] = armed[i]
            save[7, i] = trailed[i]
            save[8, i] = inprof[i]
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
            for r in range(i + 1):
                vol[r] = save[0, r]
                stop[r] = save[1, r]
                tp[r] = save[2, r]
                best[r] = save[3, r]
                hits[r] = np.int64(save[4, r])
                tip[r] = np.int64(save[5, r])
                armed[r] = save[6, r] != 0.0
                trailed[r] = save[7, r] != 0.0
                inprof[r] = save[8, r] != 0.0
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
    return _sweep(n, bid, ask, elapsed, point, F, I, B, L, sig_windows, sig_values, out, gone, out, False)  # no probe: nothing is saved


@njit(cache=True)
def quote(n, bid, ask, elapsed, point, F, I, B, L, sizes, bufs, S, out, gone):
    """Add the quote to the symbol's volatility (``Volatility``'s arrays), then apply it as ``tick`` does."""
    volatility.update(bid, ask, sizes, bufs, S)
    ready = int(S[6, 1])
    return _sweep(n, bid, ask, elapsed, point, F, I, B, L, sizes[:ready], S[5, :ready], out, gone, out, False)
