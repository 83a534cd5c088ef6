"""Mean-variance portfolios: min volatility, quadratic utility, efficient return/risk, max Sharpe.

All are long-only, sum to 1 and respect per-asset bands as hard constraints. Every one is a point of
the efficient frontier ``w(lam) = argmin 1/2 w'Sigma w - lam mu'w`` (``lam >= 0``), solved by the
dedicated active-set solver of ``engine.optimize._qp``; the methods differ in how ``lam`` is chosen:

- min volatility: ``lam = 0``;
- quadratic utility ``max mu'w - delta/2 w'Sigma w``: ``lam = 1/delta``;
- efficient return: the smallest ``lam`` whose return reaches the target (``mu'w >= target``);
- efficient risk: the largest return with ``volatility <= target``;
- max Sharpe: the tangency point, where ``lam = w'Sigma w / (mu - rf)'w`` (the KKT conditions of the
  Sharpe ratio are those of the frontier problem scaled by a positive factor).

Each result is verified: bands and budget within 1e-9, and the KKT conditions of the frontier problem
at the reported ``lam`` within 1e-7 (relative), otherwise ``OptimizationError``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.errors import OptimizationError
from engine.optimize import _qp, _verify
from engine.optimize._inputs import max_return_portfolio, prepare
from engine.optimize.bounds import BoundsLike
from engine.optimize.results import OptimizationResult, portfolio_performance, risk_contributions

__all__ = [
    "efficient_frontier",
    "efficient_return",
    "efficient_risk",
    "max_quadratic_utility",
    "max_sharpe",
    "min_volatility",
]

_LAM_MAX = 1e8


def _result(method: str, w: np.ndarray, mu: np.ndarray | None, S: np.ndarray, lo: np.ndarray,
            hi: np.ndarray, c: np.ndarray, risk_free: float, condition: str,
            details: dict[str, float] | None = None) -> OptimizationResult:
    residual = _verify.kkt_residual(S, c, lo, hi, w)
    ver = _verify.verify(method, w, lo, hi, residual=residual, condition=condition)
    mu_eff = mu if mu is not None else np.full(len(w), np.nan)
    perf = portfolio_performance(w, mu_eff, S, risk_free)
    return OptimizationResult(method, w, perf, risk_contributions(w, S), ver, details or {})


def _top_result(method: str, w: np.ndarray, mu: np.ndarray, S: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                risk_free: float, details: dict[str, float]) -> OptimizationResult:
    """Verify and wrap the highest-return portfolio (the frontier's end, ``lam`` infinite)."""
    # Optimality of the greedy fill: every asset above its minimum earns at least as much as every
    # asset below its maximum.
    above, below = w > lo + 1e-12, w < hi - 1e-12
    gap = float(np.max(mu[below]) - np.min(mu[above])) if above.any() and below.any() else 0.0
    residual = max(gap, 0.0) / max(float(np.max(np.abs(mu))), 1e-300)
    ver = _verify.verify(method, w, lo, hi, residual=residual, condition="maximum return (greedy fill)")
    return OptimizationResult(method, w, portfolio_performance(w, mu, S, risk_free), risk_contributions(w, S), ver,
                              {"lambda": float("inf"), **details})


def min_volatility(expected_returns: np.ndarray | None, covariance: np.ndarray, *, bounds: BoundsLike = None,
                   risk_free: float = 0.0) -> OptimizationResult:
    """Return the minimum-volatility portfolio on the bands (expected returns only for reporting)."""
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=False)
    sol = _qp.solve_qp(S, np.zeros(len(S)), lo, hi)
    return _result("min_volatility", sol.w, mu, S, lo, hi, np.zeros(len(S)), risk_free,
                   "KKT (min variance)", {"iterations": float(sol.iterations)})


def max_quadratic_utility(expected_returns: np.ndarray, covariance: np.ndarray, *, risk_aversion: float = 1.0,
                          bounds: BoundsLike = None, risk_free: float = 0.0) -> OptimizationResult:
    """Return the portfolio maximising ``mu'w - risk_aversion / 2 * w'Sigma w`` on the bands."""
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=True)
    if not (np.isfinite(risk_aversion) and risk_aversion > 0):
        raise OptimizationError(f"risk aversion must be positive, got {risk_aversion}")
    c = mu / risk_aversion
    sol = _qp.solve_qp(S, c, lo, hi)
    return _result("max_quadratic_utility", sol.w, mu, S, lo, hi, c, risk_free, "KKT (quadratic utility)",
                   {"risk_aversion": float(risk_aversion)})


def efficient_return(expected_returns: np.ndarray, covariance: np.ndarray, target_return: float, *,
                     bounds: BoundsLike = None, risk_free: float = 0.0) -> OptimizationResult:
    """Return the minimum-volatility portfolio whose expected return is at least ``target_return``.

    Raise ``OptimizationError`` when no portfolio on the bands reaches the target. A target below the
    return of the minimum-volatility portfolio gives that portfolio (the constraint is not binding).
    """
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=True)
    best = float(mu @ max_return_portfolio(mu, lo, hi))
    tol = 1e-12 * max(1.0, abs(best))
    if target_return > best + tol:
        raise OptimizationError(
            f"target return {target_return:.6g} is unreachable: the highest expected return on these bands is {best:.6g}"
        )
    if target_return >= best - tol:
        return _top_result("efficient_return", max_return_portfolio(mu, lo, hi), mu, S, lo, hi, risk_free,
                           {"target_return": float(target_return)})
    mv = _qp.solve_qp(S, np.zeros(len(S)), lo, hi)
    if mu @ mv.w >= target_return:
        lam, w = 0.0, mv.w
    else:
        lam, sol = _frontier_point(S, mu, lo, hi, lambda seg: _lam_for_return(seg, mu, target_return),
                                   lambda lam, w: float(mu @ w) - target_return)
        w = sol.w
    if mu @ w < target_return - 1e-9 * max(1.0, abs(target_return)):
        raise OptimizationError(f"efficient_return: verification failed, return {mu @ w:.10g} below target")
    return _result("efficient_return", w, mu, S, lo, hi, lam * mu, risk_free, "KKT (frontier)",
                   {"lambda": lam, "target_return": float(target_return)})


def efficient_risk(expected_returns: np.ndarray, covariance: np.ndarray, target_volatility: float, *,
                   bounds: BoundsLike = None, risk_free: float = 0.0) -> OptimizationResult:
    """Return the highest-return portfolio whose volatility is at most ``target_volatility``.

    Raise ``OptimizationError`` when the target is below the minimum volatility on the bands.
    """
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=True)
    mv = _qp.solve_qp(S, np.zeros(len(S)), lo, hi).w
    vmin = float(np.sqrt(max(mv @ S @ mv, 0.0)))
    if not (np.isfinite(target_volatility) and target_volatility >= vmin * (1 - 1e-9)):
        raise OptimizationError(
            f"target volatility {target_volatility:.6g} is unreachable: the minimum volatility on these bands is {vmin:.6g}"
        )
    var_t = float(target_volatility) ** 2
    top = max_return_portfolio(mu, lo, hi)
    if top @ S @ top <= var_t * (1 + 1e-9):
        # The volatility limit does not bind: the answer is the highest-return portfolio itself.
        return _top_result("efficient_risk", top, mu, S, lo, hi, risk_free, {"target_volatility": float(target_volatility)})
    lam, sol = _frontier_point(S, mu, lo, hi, lambda seg: _lam_for_variance(seg, S, var_t),
                               lambda lam, w: float(w @ S @ w) - var_t)
    w = sol.w
    vol = float(np.sqrt(max(w @ S @ w, 0.0)))
    if vol > target_volatility * (1 + 1e-7):
        raise OptimizationError(f"efficient_risk: verification failed, volatility {vol:.10g} above target")
    return _result("efficient_risk", w, mu, S, lo, hi, lam * mu, risk_free, "KKT (frontier)",
                   {"lambda": lam, "target_volatility": float(target_volatility)})


def max_sharpe(expected_returns: np.ndarray, covariance: np.ndarray, *, bounds: BoundsLike = None,
               risk_free: float = 0.0) -> OptimizationResult:
    """Return the portfolio of highest Sharpe ratio ``(mu'w - risk_free) / sqrt(w'Sigma w)`` on the bands.

    Raise ``OptimizationError`` when no portfolio on the bands has an expected return above
    ``risk_free`` (the ratio then has no positive maximum).
    """
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=True)
    m = mu - risk_free
    best = float(m @ max_return_portfolio(m, lo, hi))
    if not best > 0:
        raise OptimizationError(
            f"max Sharpe is undefined: no portfolio on these bands has an expected return above the "
            f"risk-free rate {risk_free:g} (best excess return {best:.6g})"
        )
    try:
        _, sol = _frontier_point(S, m, lo, hi, lambda seg: _lam_for_sharpe(seg, S, m),
                                 lambda lam, w: lam * float(m @ w) - float(w @ S @ w))
    except OptimizationError as exc:
        ev = np.linalg.eigvalsh(S)
        if ev[0] <= 1e-12 * ev[-1]:
            rank = int((ev > 1e-12 * ev[-1]).sum())
            raise OptimizationError(
                f"max Sharpe failed on a singular covariance ({len(S)} assets, rank {rank}): some combination "
                "is riskless, so the ratio may be unbounded; use more observations or Ledoit-Wolf shrinkage"
            ) from exc
        raise
    w = sol.w
    excess = float(m @ w)
    if not excess > 0:
        raise OptimizationError("max_sharpe: verification failed, the tangency portfolio has no excess return")
    var = float(w @ S @ w)
    if var <= (1e-8 ** 2) * float(np.max(np.diag(S))):
        raise OptimizationError(
            "max Sharpe is unbounded: a combination of assets with (numerically) zero variance earns more than "
            "the risk-free rate; the covariance is singular (too few observations for the number of assets?)"
        )
    lam_star = var / excess
    return _result("max_sharpe", w, mu, S, lo, hi, lam_star * m, risk_free, "KKT (tangency)",
                   {"lambda": lam_star})


def efficient_frontier(expected_returns: np.ndarray, covariance: np.ndarray, *, bounds: BoundsLike = None,
                       points: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(volatilities, returns)`` of ``points`` frontier portfolios, min volatility to max return."""
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=True)
    mv = _qp.solve_qp(S, np.zeros(len(S)), lo, hi).w
    r0, r1 = float(mu @ mv), float(mu @ max_return_portfolio(mu, lo, hi))
    vols, rets = [], []
    for target in np.linspace(r0, r1, max(points, 2)):

        def on_segment(seg: _qp.Segment, t: float = target) -> float | None:
            return _lam_for_return(seg, mu, t)

        def residual(lam: float, w: np.ndarray, t: float = target) -> float:
            return float(mu @ w) - t

        _, sol = _frontier_point(S, mu, lo, hi, on_segment, residual)
        vols.append(float(np.sqrt(max(sol.w @ S @ sol.w, 0.0))))
        rets.append(float(mu @ sol.w))
    return np.array(vols), np.array(rets)


def _frontier_point(S: np.ndarray, m: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    on_segment: Callable[[_qp.Segment], float | None],
                    residual: Callable[[float, np.ndarray], float]) -> tuple[float, _qp.QPSolution]:
    n = len(S)
    # lam has units of variance over return; start from the ratio of their typical sizes.
    lam0 = float(np.trace(S)) / n / max(float(np.max(np.abs(m))), 1e-12)
    return _qp.parametric(S, np.zeros(n), m, lo, hi, on_segment=on_segment, residual=residual,
                          lam0=lam0, lam_max=_LAM_MAX * max(lam0, 1e-12))


def _lam_for_return(seg: _qp.Segment, mu: np.ndarray, target: float) -> float | None:
    m0, m1 = float(mu @ seg.A), float(mu @ seg.B)
    if not m1 > 0:
        return None
    return (target - m0) / m1


def _lam_for_variance(seg: _qp.Segment, S: np.ndarray, var_t: float) -> float | None:
    SA, SB = S @ seg.A, S @ seg.B
    v0, v1, v2 = float(seg.A @ SA), float(seg.A @ SB), float(seg.B @ SB)
    if v2 <= 0:
        return None
    disc = v1 * v1 - v2 * (v0 - var_t)
    if disc < 0:
        return None
    return float((-v1 + np.sqrt(disc)) / v2)


def _lam_for_sharpe(seg: _qp.Segment, S: np.ndarray, m: np.ndarray) -> float | None:
    SA, SB = S @ seg.A, S @ seg.B
    m0, m1 = float(m @ seg.A), float(m @ seg.B)
    v0, v1, v2 = float(seg.A @ SA), float(seg.A @ SB), float(seg.B @ SB)
    if np.max(np.abs(seg.B)) <= 1e-14:
        return v0 / m0 if m0 > 0 else None
    den = m0 * v2 - m1 * v1
    if den == 0:
        return None
    lam = (m1 * v0 - m0 * v1) / den
    return lam if m0 + lam * m1 > 0 else None
