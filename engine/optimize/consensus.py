"""Combine several optimizers into one allocation and say how much they agree.

The consensus is the element-wise mean (or median) of the methods' weights, projected back onto the
bands with the exact Euclidean projection (a median need not sum to 1; a mean of feasible portfolios
is feasible, and the projection leaves it unchanged).

Agreement: the mean and the largest L1 distance between two methods' weights (0 = identical, 2 =
disjoint portfolios; half the L1 distance is the turnover needed to go from one to the other), and
per asset the largest deviation of a method from the consensus.

``resampled_max_sharpe`` (Michaud resampling) damps the turnover that estimation noise causes in max
Sharpe: it draws return histories of the same length from a normal model of the estimates, re-estimates
mean and covariance on each, solves max Sharpe on each and averages the weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import OptimizationError
from engine.optimize import _verify
from engine.optimize._inputs import prepare
from engine.optimize.bounds import BoundsLike, project_onto_bounds
from engine.optimize.mean_variance import max_sharpe
from engine.optimize.methods import run_method
from engine.optimize.results import OptimizationResult, Performance, portfolio_performance, risk_contributions

__all__ = ["Agreement", "ConsensusResult", "agreement", "combine", "consensus", "consensus_of", "resampled_max_sharpe"]

DEFAULT_METHODS = ("max_sharpe", "min_volatility", "risk_parity", "hrp")


@dataclass(frozen=True)
class Agreement:
    """How close the methods' weights are to each other and to the consensus."""

    mean_pairwise_l1: float
    max_pairwise_l1: float
    max_deviation: np.ndarray

    def __post_init__(self) -> None:
        arr = np.array(self.max_deviation, dtype=float)
        arr.setflags(write=False)
        object.__setattr__(self, "max_deviation", arr)


@dataclass(frozen=True)
class ConsensusResult:
    """The combined weights, the rule used, each method's result and their agreement."""

    weights: np.ndarray
    rule: str
    results: tuple[OptimizationResult, ...]
    agreement: Agreement
    performance: Performance
    risk_contributions: np.ndarray

    def __post_init__(self) -> None:
        for name in ("weights", "risk_contributions"):
            arr = np.array(getattr(self, name), dtype=float)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "results", tuple(self.results))


def combine(weights: Sequence[np.ndarray] | np.ndarray, lo: np.ndarray, hi: np.ndarray,
            rule: str = "mean") -> np.ndarray:
    """Return the mean or median of the rows of ``weights``, projected onto the bands."""
    W = np.atleast_2d(np.asarray(weights, dtype=float))
    if W.shape[0] == 0:
        raise OptimizationError("consensus needs at least one set of weights")
    if rule == "mean":
        v = W.mean(axis=0)
    elif rule == "median":
        v = np.median(W, axis=0)
    else:
        raise OptimizationError(f"unknown consensus rule {rule!r}; expected mean or median")
    return project_onto_bounds(v, lo, hi)


def agreement(weights: Sequence[np.ndarray] | np.ndarray, consensus_weights: np.ndarray) -> Agreement:
    """Return the pairwise L1 distances of the rows of ``weights`` and their deviation from the consensus."""
    W = np.atleast_2d(np.asarray(weights, dtype=float))
    k = W.shape[0]
    dists = [float(np.abs(W[i] - W[j]).sum()) for i in range(k) for j in range(i + 1, k)]
    dev = np.max(np.abs(W - np.asarray(consensus_weights, dtype=float)), axis=0)
    return Agreement(float(np.mean(dists)) if dists else 0.0, float(max(dists)) if dists else 0.0, dev)


def consensus(expected_returns: np.ndarray | None, covariance: np.ndarray, *,
              methods: Sequence[str] = DEFAULT_METHODS, rule: str = "mean", bounds: BoundsLike = None,
              risk_free: float = 0.0, options: Mapping[str, Any] | None = None) -> ConsensusResult:
    """Run ``methods`` on the same inputs and combine them with ``rule`` (``mean`` or ``median``)."""
    if not methods:
        raise OptimizationError("consensus needs at least one method")
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=False)
    results = tuple(run_method(m, mu, S, bounds=(lo, hi), risk_free=risk_free, options=options) for m in methods)
    return consensus_of(results, S, lo, hi, mu=mu, rule=rule, risk_free=risk_free)


def consensus_of(results: Sequence[OptimizationResult], covariance: np.ndarray, lo: np.ndarray, hi: np.ndarray, *,
                 mu: np.ndarray | None = None, rule: str = "mean", risk_free: float = 0.0) -> ConsensusResult:
    """Combine results already computed on the same inputs."""
    W = np.array([r.weights for r in results])
    w = combine(W, lo, hi, rule)
    _verify.feasibility(w, lo, hi, "consensus")
    mu_eff = mu if mu is not None else np.full(len(w), np.nan)
    return ConsensusResult(w, rule, tuple(results), agreement(W, w),
                           portfolio_performance(w, mu_eff, covariance, risk_free), risk_contributions(w, covariance))


def resampled_max_sharpe(expected_returns: np.ndarray, covariance: np.ndarray, n_observations: int, *,
                         bounds: BoundsLike = None, risk_free: float = 0.0, samples: int = 100, seed: int = 0,
                         frequency: int = 252) -> OptimizationResult:
    """Return the average of max-Sharpe portfolios over ``samples`` resampled estimates (seeded).

    Each sample draws ``n_observations`` periodic returns from ``N(mu / frequency, Sigma / frequency)``,
    re-estimates the annualised mean and covariance, and solves max Sharpe on the bands; samples where
    no asset beats ``risk_free`` are skipped (counted in ``details["skipped"]``). The average of feasible
    portfolios is feasible; it is projected onto the bands only to remove rounding.
    """
    mu, S, lo, hi = prepare(expected_returns, covariance, bounds, returns_required=True)
    if n_observations < 2 or samples < 1:
        raise OptimizationError("resampling needs at least 2 observations and 1 sample")
    rng = np.random.default_rng(seed)
    n = len(mu)
    ev, V = np.linalg.eigh(S / frequency)
    root = V * np.sqrt(np.clip(ev, 0.0, None))
    acc = np.zeros(n)
    used = skipped = 0
    for _ in range(samples):
        X = mu / frequency + rng.standard_normal((n_observations, n)) @ root.T
        mu_s = X.mean(axis=0) * frequency
        S_s = np.cov(X, rowvar=False, ddof=1).reshape(n, n) * frequency
        try:
            acc += max_sharpe(mu_s, S_s, bounds=(lo, hi), risk_free=risk_free).weights
            used += 1
        except OptimizationError:
            skipped += 1
    if used == 0:
        raise OptimizationError("resampled max Sharpe: no sample had an expected return above the risk-free rate")
    w = project_onto_bounds(acc / used, lo, hi)
    ver = _verify.verify("resampled_max_sharpe", w, lo, hi, residual=0.0,
                         condition="average of verified max-Sharpe portfolios")
    return OptimizationResult("resampled_max_sharpe", w, portfolio_performance(w, mu, S, risk_free),
                              risk_contributions(w, S), ver,
                              {"samples": float(used), "skipped": float(skipped), "seed": float(seed)})
