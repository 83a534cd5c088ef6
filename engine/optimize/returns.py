"""Returns from prices and expected-return estimators (annualised).

Missing data, as a user of a price table expects it:

- a column's leading blanks (an asset listed later than the others) stay missing: nothing is
  back-filled, and the asset's estimates use only the periods it traded;
- a blank inside a column's trading life (a halt, a holiday on its exchange) does not invent a zero
  return: the return of the next available price is taken over the whole gap
  (``p_next / p_last - 1``) and the blank periods have no return;
- trailing blanks (a delisting) stay missing.

Every estimator then works on the available observations of each column (pairwise for covariances),
as PyPortfolioOpt does with pandas' NaN-skipping reductions.
"""

from __future__ import annotations

import numpy as np

from engine.errors import OptimizationError

__all__ = [
    "TRADING_DAYS",
    "cagr_return",
    "ewma_return",
    "expected_returns",
    "mean_return",
    "returns_from_prices",
]

TRADING_DAYS = 252


def returns_from_prices(prices: np.ndarray) -> np.ndarray:
    """Return simple period returns ``(T-1, n)`` from a price table ``(T, n)`` with NaN for blanks.

    Raise ``OptimizationError`` for non-positive or infinite prices, or a column with fewer than two prices.
    """
    P = np.array(prices, dtype=float)
    if P.ndim != 2 or P.shape[0] < 2 or P.shape[1] < 1:
        raise OptimizationError(f"prices must be a table of at least 2 rows and 1 column, got shape {P.shape}")
    if np.isinf(P).any():
        raise OptimizationError("prices contain infinite values")
    if (P[~np.isnan(P)] <= 0).any():
        r, c = np.argwhere(~np.isnan(P) & (np.nan_to_num(P, nan=1.0) <= 0))[0]
        raise OptimizationError(f"prices must be positive: row {r}, column {c} is {P[r, c]:g}")
    counts = (~np.isnan(P)).sum(axis=0)
    if (counts < 2).any():
        raise OptimizationError(f"column {int(np.argmax(counts < 2))} has fewer than two prices")
    # Carry the last price forward inside each column so a return after a gap spans the gap.
    T = P.shape[0]
    idx = np.where(~np.isnan(P), np.arange(T)[:, None], -1)
    np.maximum.accumulate(idx, axis=0, out=idx)
    last = np.where(idx >= 0, P[np.clip(idx, 0, None), np.arange(P.shape[1])], np.nan)
    R = P[1:] / last[:-1] - 1.0
    return R  # NaN where today's price is blank or no earlier price exists


def mean_return(returns: np.ndarray, frequency: int = TRADING_DAYS) -> np.ndarray:
    """Return the arithmetic mean of each column's available returns, times ``frequency``."""
    R = _returns(returns)
    mean: np.ndarray = np.nanmean(R, axis=0) * frequency
    return mean


def cagr_return(returns: np.ndarray, frequency: int = TRADING_DAYS) -> np.ndarray:
    """Return each column's compound annual growth rate over its available returns.

    ``prod(1 + r) ** (frequency / count) - 1``, PyPortfolioOpt's ``mean_historical_return`` default.
    """
    R = _returns(returns)
    growth = np.nanprod(1.0 + R, axis=0)
    counts = (~np.isnan(R)).sum(axis=0)
    cagr: np.ndarray = growth ** (frequency / counts) - 1.0
    return cagr


def ewma_return(returns: np.ndarray, span: int = 500, frequency: int = TRADING_DAYS) -> np.ndarray:
    """Return the exponentially weighted mean return of each column, times ``frequency``.

    Weights decay by ``1 - alpha`` per period with ``alpha = 2 / (span + 1)``, counted in periods of the
    table (a blank period still ages older observations), normalised over the available ones; this is
    pandas' ``ewm(span).mean()`` with ``adjust=True`` read at the last row.
    """
    R = _returns(returns)
    if span < 1:
        raise OptimizationError("span must be at least 1")
    alpha = 2.0 / (span + 1.0)
    T = R.shape[0]
    wt = (1.0 - alpha) ** np.arange(T - 1, -1, -1)
    mask = ~np.isnan(R)
    num = (np.where(mask, R, 0.0) * wt[:, None]).sum(axis=0)
    den = (mask * wt[:, None]).sum(axis=0)
    ewma: np.ndarray = num / den * frequency
    return ewma


def expected_returns(returns: np.ndarray, method: str = "mean", *, frequency: int = TRADING_DAYS,
                     span: int = 500) -> np.ndarray:
    """Estimate annualised expected returns with ``method`` in ``mean``, ``cagr`` or ``ewma``."""
    if method == "mean":
        return mean_return(returns, frequency)
    if method == "cagr":
        return cagr_return(returns, frequency)
    if method == "ewma":
        return ewma_return(returns, span, frequency)
    raise OptimizationError(f"unknown expected-returns method {method!r}; expected mean, cagr or ewma")


def _returns(returns: np.ndarray) -> np.ndarray:
    R = np.array(returns, dtype=float)
    if R.ndim != 2 or R.shape[0] < 1:
        raise OptimizationError(f"returns must be a (periods, assets) table, got shape {R.shape}")
    counts = (~np.isnan(R)).sum(axis=0)
    if (counts == 0).any():
        raise OptimizationError(f"column {int(np.argmax(counts == 0))} has no returns")
    if np.isinf(R).any():
        raise OptimizationError("returns contain infinite values")
    return R
