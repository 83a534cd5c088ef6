"""Risk parity: equal contributions, budgets, the constrained-budget definition under bands."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optdata import factor_model, stock_prices

from engine.errors import OptimizationError
from engine.optimize import returns_from_prices, risk_contributions, risk_parity, sample_covariance

# skfolio 1.12.2: RiskBudgeting(risk_measure=RiskMeasure.VARIANCE).fit(X).weights_, X the daily returns of
# the rows of pypfopt_stock_prices.csv where all 20 stocks have a price (df.dropna().pct_change().dropna()).
SKFOLIO_ERC = [0.0506319782, 0.0512481653, 0.0469056857, 0.043690516, 0.0457151853, 0.0561504402, 0.0276330707,
               0.0770566674, 0.0394955084, 0.0472334037, 0.0843545635, 0.0338557027, 0.0275461151, 0.0620672225,
               0.0356356364, 0.0441308729, 0.0508526197, 0.0714193957, 0.0452964371, 0.0590808135]


def test_equal_risk_contribution_matches_skfolio_risk_budgeting():
    _, prices = stock_prices()
    complete = prices[~np.isnan(prices).any(axis=1)]
    S = sample_covariance(returns_from_prices(complete))
    res = risk_parity(S)
    # skfolio's interior-point solution is accurate to about 1e-6; ours to 1e-12.
    np.testing.assert_allclose(res.weights, SKFOLIO_ERC, atol=5e-6)
    np.testing.assert_allclose(res.risk_contributions, 1 / 20, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 15), st.integers(0, 10_000))
def test_unbounded_risk_contributions_are_equal(n, seed):
    _, S = factor_model(n, seed)
    res = risk_parity(S)
    np.testing.assert_allclose(res.risk_contributions, 1.0 / n, rtol=1e-8)
    assert res.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert res.details["bounds_binding"] == 0.0


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 15), st.integers(0, 10_000))
def test_risk_contributions_follow_arbitrary_budgets(n, seed):
    _, S = factor_model(n, seed)
    b = np.random.default_rng(seed).uniform(0.1, 1.0, n)
    res = risk_parity(S, b)
    np.testing.assert_allclose(res.risk_contributions, b / b.sum(), rtol=1e-8)


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 12), st.integers(0, 10_000), st.floats(0.3, 0.95), st.floats(1.05, 2.0))
def test_bounded_risk_parity_meets_the_constrained_budget_conditions(n, seed, lo_f, hi_f):
    _, S = factor_model(n, seed)
    lo, hi = np.full(n, lo_f / n), np.full(n, hi_f / n)
    w = risk_parity(S, bounds=(lo, hi)).weights
    assert abs(w.sum() - 1) <= 1e-12 and (w >= lo).all() and (w <= hi).all()
    rc = risk_contributions(w, S) * n  # ratio to the equal budget
    free = (w > lo + 1e-9) & (w < hi - 1e-9)
    at_max, at_min = rc[w >= hi - 1e-9], rc[w <= lo + 1e-9]
    if free.any():
        theta = np.median(rc[free])
        np.testing.assert_allclose(rc[free], theta, rtol=1e-7)
        assert (at_max <= theta * (1 + 1e-7)).all()  # at its max: no more than its share
        assert (at_min >= theta * (1 - 1e-7)).all()  # at its min: no less
    else:  # every weight on a bound: some common share must separate the two groups
        assert at_max.max(initial=-np.inf) <= at_min.min(initial=np.inf) * (1 + 1e-7)


def test_bands_that_bind_report_the_achieved_contributions():
    _, S = factor_model(6, 1)
    free = risk_parity(S)
    cap = float(free.weights.max()) - 0.03
    res = risk_parity(S, bounds=(0.0, cap))
    assert res.details["bounds_binding"] == 1.0
    assert res.weights.max() == pytest.approx(cap, abs=1e-12)
    capped = int(np.argmax(free.weights))
    assert res.risk_contributions[capped] < 1 / 6  # the capped asset carries less than an equal share
    np.testing.assert_allclose(res.risk_contributions, risk_contributions(res.weights, S), atol=1e-15)


def test_invalid_budgets_and_bands_are_refused():
    _, S = factor_model(4)
    with pytest.raises(OptimizationError, match="positive"):
        risk_parity(S, [1, 0, 1, 1])
    with pytest.raises(OptimizationError, match="minimum weights sum"):
        risk_parity(S, bounds=(0.3, 1.0))
