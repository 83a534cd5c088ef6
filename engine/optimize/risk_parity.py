"""Risk parity: equal risk contributions (ERC) or arbitrary risk budgets, under per-asset bands.

Without binding bands the portfolio is the unique ``w`` with ``rc_i = b_i`` for every asset, where
``rc_i = w_i (Sigma w)_i / w'Sigma w`` is asset i's share of the variance and ``b`` the budgets
(``1/n`` each for ERC). It is found by Newton's method on the strictly convex problem of Spinu (2013),
``min 1/2 y'Sigma y - sum b_i log y_i`` over ``y > 0``, then ``w = y / sum(y)``.

When the bands make those contributions impossible, this module's definition is the *constrained
budget* portfolio: the weights inside their band share the risk in proportion to their budgets, a
weight held at its maximum contributes no more than its proportional share, and a weight held at its
minimum no less. In symbols, there is one ``theta > 0`` with

    rc_i = theta b_i   if lo_i < w_i < hi_i,
    rc_i <= theta b_i  if w_i = hi_i,
    rc_i >= theta b_i  if w_i = lo_i.

It exists and is computed as follows: for a scale ``t`` let ``y(t)`` minimise the same convex function on
the box ``t lo <= y <= t hi`` (projected Newton); ``sum(y(t)) / t`` falls from ``sum(hi) >= 1`` to
``sum(lo) <= 1`` as ``t`` grows, and at the ``t`` where it equals 1 the weights ``w = y / t`` satisfy the
conditions above (they are the box problem's KKT conditions). The achieved contributions are
reported in the result and verified against these conditions; a failure raises ``OptimizationError``.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve
from scipy.optimize import brentq

from engine.errors import OptimizationError
from engine.optimize import _verify
from engine.optimize._inputs import prepare
from engine.optimize.bounds import BoundsLike, project_onto_bounds
from engine.optimize.results import OptimizationResult, portfolio_performance, risk_contributions

__all__ = ["risk_parity"]

RC_TOL = 1e-7


def risk_parity(covariance: np.ndarray, budgets: np.ndarray | None = None, *, bounds: BoundsLike = None,
                expected_returns: np.ndarray | None = None, risk_free: float = 0.0) -> OptimizationResult:
    """Return the risk-budgeting portfolio (ERC when ``budgets`` is None) on the bands.

    ``budgets`` are positive and normalised to sum to 1. ``details`` of the result hold ``theta`` (the
    common ratio of contribution to budget of the weights strictly inside their band) and whether a band
    binds; ``risk_contributions`` are the achieved shares of variance.
    """
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=False)
    n = len(S)
    if (np.diag(S) <= 0).any():
        raise OptimizationError("risk parity needs a positive variance for every asset")
    if budgets is None:
        b = np.full(n, 1.0 / n)
    else:
        b = np.array(budgets, dtype=float).reshape(-1)
        if b.shape != (n,) or not np.isfinite(b).all() or (b <= 0).any():
            raise OptimizationError(f"risk budgets must be {n} positive numbers")
        b = b / b.sum()
    method = "equal_risk_contribution" if budgets is None else "risk_budgeting"

    # An asset whose maximum is 0 is out of the portfolio: it carries no risk, and the others share it.
    live = hi > 0
    Sl, bl, lol, hil = S[np.ix_(live, live)], b[live] / b[live].sum(), lo[live], hi[live]
    y = _spinu(Sl, bl)
    wl = y / y.sum()
    bound = bool((~live).any() or (wl < lol - 1e-12).any() or (wl > hil + 1e-12).any())
    if (wl < lol - 1e-12).any() or (wl > hil + 1e-12).any():
        wl = _bounded(Sl, bl, lol, hil, y)
    w = np.zeros(n)
    w[live] = wl
    w = project_onto_bounds(w, lo, hi) if (w < lo).any() or (w > hi).any() or w.sum() != 1 else w
    rc = risk_contributions(w, S)
    theta, residual = _budget_residual(rc, b, w, lo, hi)
    ver = _verify.verify(method, w, lo, hi, residual=residual, condition="risk contributions vs budgets",
                         tol=RC_TOL)
    mu_eff = mu if mu is not None else np.full(n, np.nan)
    perf = portfolio_performance(w, mu_eff, S, risk_free)
    return OptimizationResult(method, w, perf, rc, ver, {"theta": theta, "bounds_binding": float(bound)})


def _budget_residual(rc: np.ndarray, b: np.ndarray, w: np.ndarray, lo: np.ndarray,
                     hi: np.ndarray) -> tuple[float, float]:
    """Return ``(theta, largest violation of the constrained-budget conditions)``."""
    ratio = rc / b
    tol_w = 1e-9
    at_lo = (w <= lo + tol_w) & (lo < hi)
    at_hi = (w >= hi - tol_w) & ~at_lo & (lo < hi)
    free = ~(at_lo | at_hi) & (lo < hi)
    if free.any():
        theta = float(np.median(ratio[free]))
        stat = float(np.max(np.abs(ratio[free] - theta)))
    else:
        upper = float(np.min(ratio[at_lo])) if at_lo.any() else np.inf
        lower = float(np.max(ratio[at_hi])) if at_hi.any() else 0.0
        theta = lower if not np.isfinite(upper) else 0.5 * (lower + min(upper, max(lower, upper)))
        stat = 0.0
    sign = 0.0
    if at_lo.any():
        sign = max(sign, float(np.max(theta - ratio[at_lo])))
    if at_hi.any():
        sign = max(sign, float(np.max(ratio[at_hi] - theta)))
    return theta, max(stat, sign) / max(theta, 1e-300)


def _objective(S: np.ndarray, b: np.ndarray, y: np.ndarray) -> float:
    if (y <= 0).any():
        return np.inf
    return 0.5 * float(y @ S @ y) - float(b @ np.log(y))


def _spinu(S: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimise ``1/2 y'Sy - b'log(y)`` over ``y > 0`` by damped Newton."""
    x = b / np.sqrt(np.diag(S))
    y: np.ndarray = x * np.sqrt(b.sum() / float(x @ S @ x))
    f = _objective(S, b, y)
    prev = np.inf
    for _ in range(200):
        Sy = S @ y
        g = Sy - b / y
        H = S + np.diag(b / (y * y))
        d = -_solve(H, g)
        dec = -float(g @ d)
        # y_i g_i = y_i (Sigma y)_i - b_i: the distance of the risk contributions from the budgets.
        crit = float(np.max(np.abs(y * g) / b))
        if crit <= 1e-13 or (crit <= 1e-10 and crit > 0.5 * prev):  # converged, or rounding-limited
            return y
        prev = crit
        if dec <= 1e-12 * max(1.0, abs(f)) and (y + d > 0).all():
            # Inside the quadratic-convergence region the objective's decrease is below its rounding,
            # so Armijo cannot judge the step: take the full Newton step.
            y = y + d
            f = _objective(S, b, y)
            continue
        t = 1.0
        # Stay inside y > 0, then backtrack (Armijo).
        neg = d < 0
        if neg.any():
            t = min(1.0, 0.99 * float(np.min(-y[neg] / d[neg])))
        while True:
            y_new = y + t * d
            f_new = _objective(S, b, y_new)
            if f_new <= f - 0.25 * t * dec or t < 1e-20:
                break
            t *= 0.5
        if t < 1e-20:
            return y
        y, f = y_new, f_new
    return y


def _solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    try:
        return cho_solve(cho_factor(H, check_finite=False), g, check_finite=False)
    except (LinAlgError, ValueError):
        x: np.ndarray = np.linalg.lstsq(H, g, rcond=None)[0]
        return x


def _box_newton(S: np.ndarray, b: np.ndarray, lo: np.ndarray, u: np.ndarray, y0: np.ndarray) -> np.ndarray:
    """Minimise ``1/2 y'Sy - b'log(y)`` on the box ``[lo, u]`` (``lo >= 0``) by projected Newton."""
    lo = np.maximum(lo, 1e-300)
    y: np.ndarray = np.clip(y0, lo, u)
    f = _objective(S, b, y)
    for _ in range(500):
        g = S @ y - b / y
        scale = max(float(np.max(np.abs(S @ y))), float(np.max(b / y)), 1e-300)
        eps = 1e-12 * float(np.max(u))
        active = ((y <= lo + eps) & (g > 0)) | ((y >= u - eps) & (g < 0))
        free = ~active
        pg = np.where(free, g, 0.0)
        if float(np.max(np.abs(pg))) <= 1e-13 * scale:
            return y
        idx = np.flatnonzero(free)
        d = np.zeros_like(y)
        H = S[np.ix_(idx, idx)] + np.diag(b[idx] / (y[idx] ** 2))
        d[idx] = -_solve(H, g[idx])
        t = 1.0
        while True:
            y_new = np.clip(y + t * d, lo, u)
            f_new = _objective(S, b, y_new)
            if f_new <= f + 1e-4 * float(g @ (y_new - y)) or t < 1e-20:
                break
            t *= 0.5
        if t < 1e-20 or np.array_equal(y_new, y):
            return y
        y, f = y_new, f_new
    return y


def _bounded(S: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, y_free: np.ndarray) -> np.ndarray:
    """Return the constrained-budget weights (see the module docstring)."""
    if lo.sum() >= 1.0 - 1e-12:
        return lo.copy()
    if hi.sum() <= 1.0 + 1e-12:
        return hi.copy()
    warm = {"y": y_free}

    def phi(s: float) -> float:
        t = float(np.exp(s))
        y = _box_newton(S, b, t * lo, t * hi, warm["y"] * (t / warm["y"].sum()))
        warm["y"] = y
        return float(y.sum()) / t - 1.0

    s0 = float(np.log(y_free.sum()))
    a, fa = s0, phi(s0)
    step = 1.0
    c, fc = a, fa
    for _ in range(80):
        c = a + step if fa > 0 else a - step
        fc = phi(c)
        if np.sign(fc) != np.sign(fa) or fc == 0:
            break
        a, fa, step = c, fc, step * 2
    else:
        raise OptimizationError("risk parity: could not bracket the scale of the bounded problem")
    s = brentq(phi, min(a, c), max(a, c), xtol=1e-15, rtol=4 * np.finfo(float).eps, maxiter=200)
    t = float(np.exp(s))
    y = _box_newton(S, b, t * lo, t * hi, warm["y"] * (t / warm["y"].sum()))
    # Refine: the box solution's weights y/t satisfy the bands exactly; normalise the tiny residual.
    w = np.clip(y / t, lo, hi)
    return project_onto_bounds(w, lo, hi)
