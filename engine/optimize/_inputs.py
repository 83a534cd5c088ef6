"""Validate the arrays handed to the optimizers."""

from __future__ import annotations

from typing import Literal, overload

import numpy as np

from engine.errors import OptimizationError
from engine.optimize.bounds import BoundsLike, resolve_bounds


def covariance_matrix(covariance: np.ndarray) -> np.ndarray:
    """Return ``covariance`` as a finite symmetric float matrix, or raise ``OptimizationError``."""
    S: np.ndarray = np.array(covariance, dtype=float)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] == 0:
        raise OptimizationError(f"covariance must be a non-empty square matrix, got shape {S.shape}")
    if not np.isfinite(S).all():
        raise OptimizationError("covariance has missing or infinite entries")
    scale = max(float(np.max(np.abs(S))), 1e-300)
    if np.max(np.abs(S - S.T)) > 1e-8 * scale:
        raise OptimizationError("covariance is not symmetric")
    if (np.diag(S) < 0).any():
        raise OptimizationError("covariance has a negative variance on its diagonal")
    S = 0.5 * (S + S.T)
    return S


@overload
def returns_vector(expected_returns: np.ndarray | None, n: int, *, required: Literal[True]) -> np.ndarray: ...
@overload
def returns_vector(expected_returns: np.ndarray | None, n: int, *, required: bool) -> np.ndarray | None: ...
def returns_vector(expected_returns: np.ndarray | None, n: int, *, required: bool) -> np.ndarray | None:
    """Return ``expected_returns`` as a finite vector of length ``n`` (None allowed unless required)."""
    if expected_returns is None:
        if required:
            raise OptimizationError("this method needs expected returns")
        return None
    mu = np.array(expected_returns, dtype=float).reshape(-1)
    if mu.shape != (n,):
        raise OptimizationError(f"expected returns must have length {n} (the covariance's size), got {mu.size}")
    if not np.isfinite(mu).all():
        raise OptimizationError("expected returns have missing or infinite entries")
    return mu


@overload
def prepare(expected_returns: np.ndarray | None, covariance: np.ndarray, bounds: BoundsLike, *,
            returns_required: Literal[True]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...
@overload
def prepare(expected_returns: np.ndarray | None, covariance: np.ndarray, bounds: BoundsLike, *,
            returns_required: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]: ...
def prepare(expected_returns: np.ndarray | None, covariance: np.ndarray, bounds: BoundsLike, *,
            returns_required: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]:
    """Validate the inputs of one optimization; return ``(mu, Sigma, lo, hi)``."""
    S = covariance_matrix(covariance)
    n = S.shape[0]
    mu = returns_vector(expected_returns, n, required=returns_required)
    lo, hi = resolve_bounds(bounds, n)
    return mu, S, lo, hi


def max_return_portfolio(mu: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Return the weights of highest expected return on the bands (fill the best assets first)."""
    w = lo.copy()
    left = 1.0 - w.sum()
    for i in np.argsort(-mu, kind="stable"):
        if left <= 0:
            break
        add = min(hi[i] - lo[i], left)
        w[i] += add
        left -= add
    return w
