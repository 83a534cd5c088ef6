"""Frozen results of the optimizers and the portfolio measures they report.

Risk contributions are relative: ``rc_i = w_i (Sigma w)_i / (w' Sigma w)``, so they sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Performance:
    """Annualised expected return, volatility and Sharpe ratio of a portfolio."""

    expected_return: float
    volatility: float
    sharpe: float

    def as_dict(self) -> dict[str, float]:
        """Return the three measures keyed by name (the CLI's JSON shape)."""
        return {"expected_return": self.expected_return, "volatility": self.volatility, "sharpe": self.sharpe}


@dataclass(frozen=True)
class Verification:
    """How the result was checked: largest constraint violation and optimality residual found."""

    max_bound_violation: float
    budget_error: float
    optimality_residual: float
    condition: str


@dataclass(frozen=True)
class OptimizationResult:
    """Weights of one method with their performance, risk contributions and verification."""

    method: str
    weights: np.ndarray
    performance: Performance
    risk_contributions: np.ndarray
    verification: Verification
    details: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("weights", "risk_contributions"):
            arr = np.array(getattr(self, name), dtype=float)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "details", dict(self.details))


def portfolio_performance(weights: np.ndarray, expected_returns: np.ndarray, covariance: np.ndarray,
                          risk_free: float = 0.0) -> Performance:
    """Return the expected return, volatility and Sharpe ratio of ``weights``.

    The Sharpe ratio is ``nan`` for a zero-volatility portfolio.
    """
    w = np.asarray(weights, dtype=float)
    ret = float(np.asarray(expected_returns, dtype=float) @ w)
    var = float(w @ np.asarray(covariance, dtype=float) @ w)
    vol = float(np.sqrt(max(var, 0.0)))
    sharpe = (ret - risk_free) / vol if vol > 0 else float("nan")
    return Performance(ret, vol, float(sharpe))


def risk_contributions(weights: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """Return each asset's share of the portfolio variance, ``w_i (Sigma w)_i / (w' Sigma w)``."""
    w = np.asarray(weights, dtype=float)
    m = np.asarray(covariance, dtype=float) @ w
    var = float(w @ m)
    if var <= 0:
        return np.full(len(w), np.nan)
    rc: np.ndarray = w * m / var
    return rc
