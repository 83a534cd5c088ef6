"""Covariance estimators (annualised) and the positive semi-definite repair.

With missing data the sample covariance is pairwise: each pair uses the periods where both assets have
a return, centred on the pair's own means (pandas' ``DataFrame.cov``, which PyPortfolioOpt uses). A
pairwise matrix need not be positive semi-definite; ``make_psd`` repairs it by eigenvalue clipping
and says so with a ``warnings.warn`` naming the fix, because the optimizers need a convex problem.
"""

from __future__ import annotations

import warnings

import numpy as np

from engine.errors import OptimizationError
from engine.names import COVARIANCES, unknown
from engine.optimize.returns import TRADING_DAYS, _returns

__all__ = [
    "NonPSDCovarianceWarning",
    "covariance",
    "ewma_covariance",
    "is_psd",
    "ledoit_wolf",
    "make_psd",
    "sample_covariance",
]


class NonPSDCovarianceWarning(UserWarning):
    """A covariance matrix had negative eigenvalues and was repaired by eigenvalue clipping."""


def sample_covariance(returns: np.ndarray, frequency: int = TRADING_DAYS) -> np.ndarray:
    """Return the pairwise sample covariance (``ddof=1``) of the available returns, times ``frequency``."""
    R = _returns(returns)
    M = (~np.isnan(R)).astype(float)
    X = np.where(M > 0, R, 0.0)
    n_ij = M.T @ M
    if (n_ij < 2).any():
        i, j = np.argwhere(n_ij < 2)[0]
        raise OptimizationError(f"assets {i} and {j} share fewer than two return periods")
    sx = X.T @ M  # sx[i, j]: sum of asset i's returns over the periods both i and j have one
    cross = X.T @ X
    cov = (cross - sx * sx.T / n_ij) / (n_ij - 1.0)
    annual: np.ndarray = 0.5 * (cov + cov.T) * frequency
    return annual


def ledoit_wolf(returns: np.ndarray, frequency: int = TRADING_DAYS) -> tuple[np.ndarray, float]:
    """Return the Ledoit-Wolf shrunk covariance towards ``mu I`` and the shrinkage intensity.

    The estimator of scikit-learn's ``ledoit_wolf`` (Ledoit and Wolf 2004, constant-variance target),
    which PyPortfolioOpt's ``CovarianceShrinkage.ledoit_wolf`` calls. With complete data it is exactly
    theirs. With missing data every sum runs over the periods a pair has in common and is divided by
    that pair's count, so a late-listed asset is estimated from its own history (PyPortfolioOpt instead
    fills blanks with zero returns, which shrinks such an asset's variance).
    """
    R = _returns(returns)
    M = (~np.isnan(R)).astype(float)
    X = np.where(M > 0, R - np.nanmean(R, axis=0), 0.0)
    n = R.shape[1]
    n_ij = M.T @ M
    if (n_ij < 1).any():
        i, j = np.argwhere(n_ij < 1)[0]
        raise OptimizationError(f"assets {i} and {j} share no return period")
    S = (X.T @ X) / n_ij
    X2 = X * X
    mu = float(np.trace(S)) / n
    delta = float(np.sum((S - mu * np.eye(n)) ** 2)) / n
    beta = float(np.sum(((X2.T @ X2) / n_ij - S * S) / n_ij)) / n
    beta = min(max(beta, 0.0), delta)
    shrinkage = 0.0 if delta == 0 else beta / delta
    shrunk = (1.0 - shrinkage) * S + shrinkage * mu * np.eye(n)
    return shrunk * frequency, shrinkage


def ewma_covariance(returns: np.ndarray, span: int = 180, frequency: int = TRADING_DAYS) -> np.ndarray:
    """Return the exponentially weighted covariance, times ``frequency``.

    Deviations are taken from each asset's mean over its available returns; the products of a pair are
    averaged with weights ``(1 - alpha) ** age``, ``alpha = 2 / (span + 1)``, over the periods both
    have (PyPortfolioOpt's ``exp_cov``).
    """
    R = _returns(returns)
    if span < 1:
        raise OptimizationError("span must be at least 1")
    M = (~np.isnan(R)).astype(float)
    D = np.where(M > 0, R - np.nanmean(R, axis=0), 0.0)
    T = R.shape[0]
    alpha = 2.0 / (span + 1.0)
    wt = (1.0 - alpha) ** np.arange(T - 1, -1, -1)
    den = (M * wt[:, None]).T @ M
    if (den <= 0).any():
        i, j = np.argwhere(den <= 0)[0]
        raise OptimizationError(f"assets {i} and {j} share no return period")
    cov = ((D * wt[:, None]).T @ D) / den
    annual: np.ndarray = 0.5 * (cov + cov.T) * frequency
    return annual


def is_psd(matrix: np.ndarray, tol: float = 1e-12) -> bool:
    """Return whether the symmetric ``matrix`` has no eigenvalue below ``-tol * max|eigenvalue|``."""
    ev = np.linalg.eigvalsh(matrix)
    return bool(ev[0] >= -tol * max(float(np.max(np.abs(ev))), 1e-300))


def make_psd(matrix: np.ndarray, *, name: str = "covariance") -> np.ndarray:
    """Return ``matrix`` unchanged if it is PSD, else its eigenvalue-clipped repair (with a warning).

    The repair sets negative eigenvalues to zero, ``V max(L, 0) V'`` (the nearest PSD matrix in
    Frobenius norm), and emits ``NonPSDCovarianceWarning`` naming the fix and the eigenvalue removed.
    """
    S: np.ndarray = np.array(matrix, dtype=float)
    S = 0.5 * (S + S.T)
    ev, V = np.linalg.eigh(S)
    if ev[0] >= -1e-12 * max(float(np.max(np.abs(ev))), 1e-300):
        return S
    warnings.warn(
        f"{name} matrix is not positive semi-definite (smallest eigenvalue {ev[0]:.3g}); "
        "fixed by eigenvalue clipping (negative eigenvalues set to 0)",
        NonPSDCovarianceWarning,
        stacklevel=2,
    )
    fixed = (V * np.clip(ev, 0.0, None)) @ V.T
    symmetric: np.ndarray = 0.5 * (fixed + fixed.T)
    return symmetric


def covariance(returns: np.ndarray, method: str = "sample", *, frequency: int = TRADING_DAYS,
               span: int = 180) -> np.ndarray:
    """Estimate an annualised, PSD covariance with ``method`` in ``sample``, ``ledoit_wolf`` or ``ewma``
    (``engine.names.COVARIANCES``; the old spelling ``ledoit-wolf`` is refused naming the new one)."""
    if method == "sample":
        cov = sample_covariance(returns, frequency)
    elif method == "ledoit_wolf":
        cov = ledoit_wolf(returns, frequency)[0]
    elif method == "ewma":
        cov = ewma_covariance(returns, span, frequency)
    else:
        raise OptimizationError(unknown(method, COVARIANCES, "covariance method"))
    return make_psd(cov, name=f"{method} covariance")
