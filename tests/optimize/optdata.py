"""Shared data for the optimizer tests: PyPortfolioOpt's stock prices and a seeded factor model."""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
STOCKS = DATA / "pypfopt_stock_prices.csv"


@cache
def stock_prices() -> tuple[tuple[str, ...], np.ndarray]:
    """Return the tickers and the price table (NaN for blanks) of pypfopt_stock_prices.csv."""
    with STOCKS.open(newline="") as fh:
        rows = list(csv.reader(fh))
    names = tuple(rows[0][1:])
    prices = np.array([[float(x) if x else np.nan for x in r[1:]] for r in rows[1:]])
    prices.setflags(write=False)
    return names, prices


def factor_model(n: int, seed: int = 0, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(mu, Sigma)`` of a seeded k-factor model with realistic equity volatilities."""
    rng = np.random.default_rng(seed)
    beta = np.column_stack([rng.normal(1.0, 0.3, n), rng.normal(0, 0.5, (n, k - 1))])
    fvol = np.array([0.16] + [0.06] * (k - 1))
    idio = rng.uniform(0.15, 0.40, n)
    S = beta @ np.diag(fvol**2) @ beta.T + np.diag(idio**2)
    mu = 0.02 + 0.05 * beta[:, 0] + rng.normal(0, 0.03, n)
    return mu, S
