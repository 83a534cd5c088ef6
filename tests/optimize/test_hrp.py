"""Hierarchical risk parity: PyPortfolioOpt's weights, bands honoured at every split."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optdata import factor_model, stock_prices

from engine.errors import OptimizationError
from engine.optimize import hierarchical_risk_parity, returns_from_prices, sample_covariance

# PyPortfolioOpt 1.6.0: HRPOpt(cov_matrix=risk_models.sample_cov(df)).optimize() (single linkage), in the
# file's ticker order, rounded to 6 decimals.
PYPFOPT_HRP = [0.048173, 0.044752, 0.0671, 0.070449, 0.018946, 0.055719, 0.020764, 0.104361, 0.01253, 0.072304,
               0.105515, 0.018288, 0.028919, 0.085119, 0.026487, 0.034154, 0.032184, 0.080905, 0.01537, 0.05796]


def test_hrp_matches_pypfopt_on_its_stock_prices():
    _, prices = stock_prices()
    S = sample_covariance(returns_from_prices(prices))
    np.testing.assert_allclose(hierarchical_risk_parity(S).weights, PYPFOPT_HRP, atol=6e-7)


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 20), st.integers(0, 10_000), st.floats(0.0, 0.9), st.floats(1.1, 3.0))
def test_hrp_weights_sum_to_one_inside_bands(n, seed, lo_f, hi_f):
    _, S = factor_model(n, seed)
    lo, hi = np.full(n, lo_f / n), np.full(n, hi_f / n)
    w = hierarchical_risk_parity(S, bounds=(lo, hi)).weights
    assert w.sum() == pytest.approx(1.0, abs=1e-12)
    assert (w >= lo - 1e-15).all() and (w <= hi + 1e-15).all()


def test_unknown_linkage_is_refused():
    _, S = factor_model(3)
    with pytest.raises(OptimizationError, match="linkage"):
        hierarchical_risk_parity(S, linkage_method="centroid-ish")
