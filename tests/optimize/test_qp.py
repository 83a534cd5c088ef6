"""The active-set QP core: the primal-dual iteration, its primal fallback, singular covariances."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optdata import factor_model

from engine.errors import OptimizationError
from engine.optimize import _qp, _verify, make_psd, max_sharpe, min_volatility


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 25), st.integers(0, 10_000), st.floats(0.0, 5.0))
def test_primal_fallback_reaches_the_same_optimum_as_the_primal_dual_iteration(n, seed, lam):
    mu, S = factor_model(n, seed)
    lo, hi = np.zeros(n), np.full(n, max(0.3, 1.5 / n))
    fast = _qp.solve_qp(S, np.zeros(n), lo, hi, c1=mu, lam=lam)
    # max_iter=1 stops the primal-dual iteration at once, so the primal active-set method finishes.
    slow = _qp.solve_qp(S, np.zeros(n), lo, hi, c1=mu, lam=lam, max_iter=1)
    for sol in (fast, slow):
        assert _verify.kkt_residual(S, lam * mu, lo, hi, sol.w) < 1e-9
    obj = lambda w: 0.5 * w @ S @ w - lam * mu @ w  # noqa: E731
    assert obj(slow.w) == pytest.approx(obj(fast.w), rel=1e-10, abs=1e-14)


def test_rank_deficient_covariance_from_few_observations_still_solves():
    rng = np.random.default_rng(1)
    X = rng.normal(0, 0.01, (15, 40))  # fewer observations than assets: covariance of rank 14
    S = np.cov(X, rowvar=False) * 252
    mu = rng.normal(0.08, 0.05, 40)
    S = make_psd(S)  # eigenvalues of -1e-17 are rounding, within tolerance: returned unchanged
    mv = min_volatility(mu, S, bounds=(0.0, 0.2))
    assert mv.weights.sum() == pytest.approx(1.0, abs=1e-9)
    assert mv.performance.volatility < 1e-8  # a riskless long-only combination exists in this sample
    # ...so the Sharpe ratio has no maximum, and saying so beats returning a meaningless portfolio.
    with pytest.raises(OptimizationError, match=r"singular covariance|unbounded"):
        max_sharpe(mu, S, bounds=(0.0, 0.2))


def test_fixed_weights_stay_fixed():
    mu, S = factor_model(6, 2)
    lo = np.array([0.2, 0.0, 0.0, 0.0, 0.0, 0.0])
    hi = np.array([0.2, 1.0, 1.0, 1.0, 1.0, 1.0])
    for r in (min_volatility(mu, S, bounds=(lo, hi)), max_sharpe(mu, S, bounds=(lo, hi))):
        assert r.weights[0] == 0.2
