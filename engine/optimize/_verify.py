"""Check every result ourselves instead of trusting a solver's success flag."""

from __future__ import annotations

import numpy as np

from engine.errors import OptimizationError
from engine.optimize.results import Verification

FEASIBILITY_TOL = 1e-9
KKT_TOL = 1e-7


def feasibility(w: np.ndarray, lo: np.ndarray, hi: np.ndarray, method: str) -> tuple[float, float]:
    """Return ``(max bound violation, budget error)``; raise when either exceeds the tolerance."""
    if not np.isfinite(w).all():
        raise OptimizationError(f"{method}: the solver returned non-finite weights")
    viol = float(max(np.max(lo - w), np.max(w - hi), 0.0))
    budget = float(abs(w.sum() - 1.0))
    if viol > FEASIBILITY_TOL:
        i = int(np.argmax(np.maximum(lo - w, w - hi)))
        raise OptimizationError(
            f"{method}: verification failed, asset {i} weight {w[i]:.10g} is outside [{lo[i]:g}, {hi[i]:g}]"
        )
    if budget > FEASIBILITY_TOL:
        raise OptimizationError(f"{method}: verification failed, weights sum to {w.sum():.12g}, not 1")
    return viol, budget


def kkt_residual(Q: np.ndarray, c: np.ndarray, lo: np.ndarray, hi: np.ndarray, w: np.ndarray) -> float:
    """Return the relative KKT residual of ``min 1/2 w'Qw - c'w`` on ``{sum(w)=1, lo<=w<=hi}`` at ``w``.

    With ``g = Qw - c``: free weights share one ``g`` (the budget multiplier ``nu``), weights at their
    minimum have ``g >= nu`` and weights at their maximum ``g <= nu``. The residual is the largest
    violation of these, divided by the scale of ``Qw`` and ``c``.
    """
    Qw = Q @ w
    g = Qw - c
    # Near a riskless portfolio Qw is rounding noise; measure it against the matrix's own size then.
    floor = 1e-5 * float(np.max(np.abs(Q))) * float(np.max(np.abs(w)))
    scale = max(float(np.max(np.abs(Qw))), float(np.max(np.abs(c))), floor, 1e-300)
    tol_w = 1e-9
    fixed = lo >= hi
    at_lo = ~fixed & (w <= lo + tol_w)
    at_hi = ~fixed & ~at_lo & (w >= hi - tol_w)
    free = ~(fixed | at_lo | at_hi)
    lower = float(np.max(g[at_hi])) if at_hi.any() else -np.inf  # nu must be >= every g at a maximum
    upper = float(np.min(g[at_lo])) if at_lo.any() else np.inf  # nu must be <= every g at a minimum
    if free.any():
        nu = float(np.median(g[free]))
        stat = float(np.max(np.abs(g[free] - nu)))
    else:
        if not (np.isfinite(lower) or np.isfinite(upper)):
            return 0.0
        nu = lower if not np.isfinite(upper) else upper if not np.isfinite(lower) else 0.5 * (lower + upper)
        stat = 0.0
    sign = max(lower - nu, nu - upper, 0.0)
    return max(stat, sign) / scale


def verify(method: str, w: np.ndarray, lo: np.ndarray, hi: np.ndarray, *, residual: float,
           condition: str, tol: float = KKT_TOL) -> Verification:
    """Check feasibility and an optimality residual; raise ``OptimizationError`` when either fails."""
    viol, budget = feasibility(w, lo, hi, method)
    if not residual <= tol:
        raise OptimizationError(
            f"{method}: verification failed, {condition} residual {residual:.3g} exceeds {tol:g}"
        )
    return Verification(viol, budget, float(residual), condition)
