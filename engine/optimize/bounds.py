"""Per-asset weight bands: normalise them, check they admit a portfolio, project onto them.

The feasible set of every optimizer here is ``{w : sum(w) = 1, lo <= w <= hi}`` (long-only means
``lo >= 0``). ``project_onto_bounds`` is the exact Euclidean projection onto that set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.errors import OptimizationError

BoundsLike = tuple[float | Sequence[float] | np.ndarray, float | Sequence[float] | np.ndarray] | np.ndarray | None

# Slack allowed when comparing sums of bounds with 1: bands from YAML files such as 0.15 + 0.10 + ...
# are decimal fractions that do not add up exactly in binary.
_SUM_SLACK = 1e-9


def resolve_bounds(bounds: BoundsLike, n: int, *, long_only: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(lo, hi)`` arrays of length ``n`` from scalars, a pair of arrays or an ``(n, 2)`` array.

    Raise ``OptimizationError`` when a bound is not finite, ``lo > hi``, a lower bound is negative
    (long-only), or the bands cannot hold a portfolio summing to 1 (sum of mins > 1 or sum of maxes < 1).
    ``None`` means ``(0, 1)`` for every asset.
    """
    if n < 1:
        raise OptimizationError("need at least one asset")
    if bounds is None:
        bounds = (0.0, 1.0)
    lo_raw: float | Sequence[float] | np.ndarray
    hi_raw: float | Sequence[float] | np.ndarray
    if isinstance(bounds, np.ndarray) and bounds.ndim == 2:
        if bounds.shape != (n, 2):
            raise OptimizationError(f"bounds array must have shape ({n}, 2), got {bounds.shape}")
        lo_raw, hi_raw = bounds[:, 0], bounds[:, 1]
    else:
        try:
            lo_raw, hi_raw = bounds
        except (TypeError, ValueError):
            raise OptimizationError("bounds must be a (lower, upper) pair or an (n, 2) array") from None
    lo = _broadcast(lo_raw, n, "lower")
    hi = _broadcast(hi_raw, n, "upper")
    bad = np.flatnonzero(lo > hi)
    if bad.size:
        i = int(bad[0])
        raise OptimizationError(f"asset {i}: lower bound {lo[i]:g} is above upper bound {hi[i]:g}")
    if long_only and (lo < 0).any():
        i = int(np.flatnonzero(lo < 0)[0])
        raise OptimizationError(f"asset {i}: lower bound {lo[i]:g} is negative, but portfolios are long-only")
    check_feasible(lo, hi)
    return lo, hi


def check_feasible(lo: np.ndarray, hi: np.ndarray) -> None:
    """Raise ``OptimizationError`` unless ``sum(lo) <= 1 <= sum(hi)``."""
    if lo.sum() > 1.0 + _SUM_SLACK:
        raise OptimizationError(
            f"infeasible bounds: the minimum weights sum to {lo.sum():.6g} > 1; lower some minimums"
        )
    if hi.sum() < 1.0 - _SUM_SLACK:
        raise OptimizationError(
            f"infeasible bounds: the maximum weights sum to {hi.sum():.6g} < 1; raise some maximums"
        )


def project_onto_bounds(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, tol: float = 1e-15) -> np.ndarray:
    """Return the point of ``{w : sum(w) = 1, lo <= w <= hi}`` nearest to ``v`` in Euclidean distance.

    The projection is ``clip(v - tau, lo, hi)`` for the unique shift ``tau`` that makes the weights sum
    to 1; ``tau`` is found by bisection (the sum is non-increasing in ``tau``), then the last rounding
    error is put on an asset strictly inside its band.
    """
    v = np.asarray(v, dtype=float)
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    check_feasible(lo, hi)
    if lo.sum() >= 1.0:
        return lo.copy()
    if hi.sum() <= 1.0:
        return hi.copy()
    # At tau_lo every weight is at its max (sum >= 1); at tau_hi every weight is at its min (sum <= 1).
    tau_lo = float(np.min(v - hi))
    tau_hi = float(np.max(v - lo))
    for _ in range(200):
        tau = 0.5 * (tau_lo + tau_hi)
        s = np.clip(v - tau, lo, hi).sum()
        if s > 1.0:
            tau_lo = tau
        else:
            tau_hi = tau
        if tau_hi - tau_lo <= tol * max(1.0, abs(tau)):
            break
    w = np.clip(v - 0.5 * (tau_lo + tau_hi), lo, hi)
    return _fix_sum(w, lo, hi)


def _fix_sum(w: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Put the residual ``1 - sum(w)`` (rounding only) on the asset with the most room for it."""
    r = 1.0 - w.sum()
    if r == 0.0:
        return w
    room = (hi - w) if r > 0 else (w - lo)
    i = int(np.argmax(room))
    w = w.copy()
    w[i] = min(max(w[i] + r, lo[i]), hi[i])
    return w


def _broadcast(x: float | Sequence[float] | np.ndarray, n: int, which: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise OptimizationError(f"{which} bounds must be a scalar or have length {n}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise OptimizationError(f"{which} bounds must be finite numbers")
    return arr.copy()
