"""Run an optimizer by name: the registry the consensus, the CLI and the scheduler share."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

import numpy as np

from engine.errors import OptimizationError
from engine.names import unknown
from engine.optimize.bounds import BoundsLike
from engine.optimize.hrp import hierarchical_risk_parity
from engine.optimize.mean_variance import (
    efficient_return,
    efficient_risk,
    max_quadratic_utility,
    max_sharpe,
    min_volatility,
)
from engine.optimize.results import OptimizationResult
from engine.optimize.risk_parity import risk_parity

__all__ = ["METHODS", "run_method"]


def _returns(mu: np.ndarray | None) -> np.ndarray:
    # the optimizers' own validation rejects None with the message users see; only the type is narrowed here
    return cast(np.ndarray, mu)


def _max_sharpe(mu: np.ndarray | None, S: np.ndarray, bounds: BoundsLike, rf: float, opts: Mapping[str, Any]) -> OptimizationResult:
    return max_sharpe(_returns(mu), S, bounds=bounds, risk_free=rf)


def _min_volatility(mu: np.ndarray | None, S: np.ndarray, bounds: BoundsLike, rf: float, opts: Mapping[str, Any]) -> OptimizationResult:
    return min_volatility(mu, S, bounds=bounds, risk_free=rf)


def _risk_parity(mu: np.ndarray | None, S: np.ndarray, bounds: BoundsLike, rf: float, opts: Mapping[str, Any]) -> OptimizationResult:
    return risk_parity(S, opts.get("risk_budgets"), bounds=bounds, expected_returns=mu, risk_free=rf)


def _hrp(mu: np.ndarray | None, S: np.ndarray, bounds: BoundsLike, rf: float, opts: Mapping[str, Any]) -> OptimizationResult:
    return hierarchical_risk_parity(S, bounds=bounds, linkage_method=opts.get("linkage", "single"),
                                    expected_returns=mu, risk_free=rf)


def _efficient_risk(mu: np.ndarray | None, S: np.ndarray, bounds: BoundsLike, rf: float, opts: Mapping[str, Any]) -> OptimizationResult:
    if "target_volatility" not in opts:
        raise OptimizationError("efficient_risk needs a target volatility")
    return efficient_risk(_returns(mu), S, float(opts["target_volatility"]), bounds=bounds, risk_free=rf)


def _efficient_return(mu: np.ndarray | None, S: np.ndarray, bounds: BoundsLike, rf: float, opts: Mapping[str, Any]) -> OptimizationResult:
    if "target_return" not in opts:
        raise OptimizationError("efficient_return needs a target return")
    return efficient_return(_returns(mu), S, float(opts["target_return"]), bounds=bounds, risk_free=rf)


def _utility(mu: np.ndarray | None, S: np.ndarray, bounds: BoundsLike, rf: float, opts: Mapping[str, Any]) -> OptimizationResult:
    return max_quadratic_utility(_returns(mu), S, risk_aversion=float(opts.get("risk_aversion", 1.0)), bounds=bounds,
                                 risk_free=rf)


Runner = Callable[[np.ndarray | None, np.ndarray, BoundsLike, float, Mapping[str, Any]], OptimizationResult]

METHODS: dict[str, Runner] = {
    "max_sharpe": _max_sharpe,
    "min_volatility": _min_volatility,
    "risk_parity": _risk_parity,
    "hrp": _hrp,
    "efficient_risk": _efficient_risk,
    "efficient_return": _efficient_return,
    "max_quadratic_utility": _utility,
}


def run_method(name: str, expected_returns: np.ndarray | None, covariance: np.ndarray, *,
               bounds: BoundsLike = None, risk_free: float = 0.0,
               options: Mapping[str, Any] | None = None) -> OptimizationResult:
    """Run the optimizer called ``name`` (a key of ``METHODS``, spelled as ``engine.names.METHODS``; an old
    spelling such as ``max-sharpe`` raises ``OptimizationError`` naming the new one).

    ``options`` carries method parameters: ``target_volatility``, ``target_return``, ``risk_aversion``,
    ``risk_budgets``, ``linkage``.
    """
    if name not in METHODS:
        raise OptimizationError(unknown(name, tuple(METHODS), "method"))
    return METHODS[name](expected_returns, covariance, bounds, risk_free, dict(options or {}))
