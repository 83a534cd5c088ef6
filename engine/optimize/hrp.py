"""Hierarchical risk parity (Lopez de Prado 2016), with per-asset bands.

Assets are clustered on the correlation distance ``sqrt((1 - rho) / 2)`` (single linkage by default,
as PyPortfolioOpt), ordered by the dendrogram's leaves, and the weight is split recursively between the
two halves of each cluster in inverse proportion to their inverse-variance-portfolio variances.

Bands: at each split the left half's share ``alpha`` is clipped to the interval where both halves can
still honour their members' bands (``sum(lo) <= share <= sum(hi)`` of each half), so the leaves end in
their bands and the weights sum to 1 without a final rescaling. Without binding bands this is plain HRP.
"""

from __future__ import annotations

from typing import Literal, TypeGuard

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from engine.errors import OptimizationError
from engine.optimize import _verify
from engine.optimize._inputs import prepare
from engine.optimize.bounds import BoundsLike
from engine.optimize.results import OptimizationResult, portfolio_performance, risk_contributions

__all__ = ["hierarchical_risk_parity"]

_LINKAGES = ("single", "complete", "average", "ward")
_Linkage = Literal["single", "complete", "average", "ward"]


def hierarchical_risk_parity(covariance: np.ndarray, *, bounds: BoundsLike = None, linkage_method: str = "single",
                             expected_returns: np.ndarray | None = None,
                             risk_free: float = 0.0) -> OptimizationResult:
    """Return the HRP portfolio of ``covariance`` on the bands."""
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=False)
    if not _is_linkage(linkage_method):
        raise OptimizationError(f"unknown linkage {linkage_method!r}; expected one of {', '.join(_LINKAGES)}")
    n = len(S)
    sd = np.sqrt(np.diag(S))
    if (sd <= 0).any():
        raise OptimizationError("hierarchical risk parity needs a positive variance for every asset")
    order = _order(S, sd, linkage_method) if n > 1 else np.array([0])
    w = np.ones(n)
    clusters = [order]
    while clusters:
        nxt = []
        for c in clusters:
            if len(c) < 2:
                continue
            half = len(c) // 2
            left, right = c[:half], c[half:]
            v_l, v_r = _cluster_var(S, left), _cluster_var(S, right)
            alpha = 1.0 - v_l / (v_l + v_r)
            total = w[c[0]]  # every member of c carries the cluster's weight so far
            a_min = max(lo[left].sum(), total - hi[right].sum()) / total if total > 0 else 0.0
            a_max = min(hi[left].sum(), total - lo[right].sum()) / total if total > 0 else 1.0
            alpha = min(max(alpha, a_min), a_max)
            w[left] *= alpha
            w[right] *= 1.0 - alpha
            nxt += [left, right]
        clusters = nxt
    residual = abs(w.sum() - 1.0)
    w = np.clip(w, lo, hi)
    ver = _verify.verify("hrp", w, lo, hi, residual=residual, condition="recursive bisection")
    mu_eff = mu if mu is not None else np.full(n, np.nan)
    return OptimizationResult("hrp", w, portfolio_performance(w, mu_eff, S, risk_free), risk_contributions(w, S),
                              ver, {})


def _is_linkage(method: str) -> TypeGuard[_Linkage]:
    return method in _LINKAGES


def _order(S: np.ndarray, sd: np.ndarray, method: _Linkage) -> np.ndarray:
    corr = S / np.outer(sd, sd)
    dist = np.sqrt(np.clip((1.0 - corr) / 2.0, 0.0, 1.0))
    np.fill_diagonal(dist, 0.0)
    link = linkage(squareform(dist, checks=False), method)
    return leaves_list(link)


def _cluster_var(S: np.ndarray, items: np.ndarray) -> float:
    sub = S[np.ix_(items, items)]
    ivp = 1.0 / np.diag(sub)
    ivp /= ivp.sum()
    return float(ivp @ sub @ ivp)
