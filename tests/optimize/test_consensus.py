"""Consensus of methods, agreement measures, resampled max Sharpe."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optdata import factor_model

from engine.errors import OptimizationError
from engine.optimize import (
    agreement,
    combine,
    consensus,
    max_sharpe,
    min_volatility,
    resampled_max_sharpe,
)


def test_consensus_mean_is_the_average_of_the_methods_inside_bands():
    mu, S = factor_model(8, 2)
    res = consensus(mu, S, methods=["max_sharpe", "min_volatility", "risk_parity", "hrp"], bounds=(0.02, 0.4),
                    risk_free=0.02)
    W = np.array([r.weights for r in res.results])
    np.testing.assert_allclose(res.weights, W.mean(axis=0), atol=1e-12)  # feasible already: unchanged
    assert [r.method for r in res.results] == ["max_sharpe", "min_volatility", "equal_risk_contribution", "hrp"]
    assert res.agreement.max_pairwise_l1 >= res.agreement.mean_pairwise_l1 > 0
    np.testing.assert_allclose(res.agreement.max_deviation, np.abs(W - res.weights).max(axis=0))


def test_consensus_median_is_projected_back_onto_the_bands():
    W = np.array([[0.6, 0.4, 0.0], [0.0, 0.5, 0.5], [0.1, 0.1, 0.8]])
    lo, hi = np.zeros(3), np.ones(3)
    w = combine(W, lo, hi, "median")  # raw median (0.1, 0.4, 0.5) sums to 1.0 here
    np.testing.assert_allclose(w, [0.1, 0.4, 0.5], atol=1e-15)
    w = combine(W, np.full(3, 0.2), np.full(3, 0.45), "median")
    assert w.sum() == pytest.approx(1.0, abs=1e-15)
    assert (w >= 0.2).all() and (w <= 0.45).all()


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 8), st.integers(1, 5), st.integers(0, 1000))
def test_combined_weights_are_feasible_and_agreement_is_zero_only_for_identical_methods(n, k, seed):
    rng = np.random.default_rng(seed)
    W = rng.dirichlet(np.ones(n), size=k)
    lo, hi = np.zeros(n), np.full(n, max(0.6, 1.5 / n))
    for rule in ("mean", "median"):
        w = combine(W, lo, hi, rule)
        assert w.sum() == pytest.approx(1.0, abs=1e-12) and (w >= lo).all() and (w <= hi).all()
    same = agreement(np.repeat(W[:1], 3, axis=0), W[0])
    assert same.mean_pairwise_l1 == 0.0 and same.max_deviation.max() == 0.0


def test_unknown_rule_and_empty_method_list_are_refused():
    mu, S = factor_model(3)
    with pytest.raises(OptimizationError, match="mean or median"):
        combine(np.eye(3), np.zeros(3), np.ones(3), "mode")
    with pytest.raises(OptimizationError, match="at least one method"):
        consensus(mu, S, methods=[])


def test_resampled_max_sharpe_is_deterministic_for_a_seed():
    mu, S = factor_model(6, 4)
    a = resampled_max_sharpe(mu, S, 500, samples=20, seed=11, risk_free=0.02)
    b = resampled_max_sharpe(mu, S, 500, samples=20, seed=11, risk_free=0.02)
    c = resampled_max_sharpe(mu, S, 500, samples=20, seed=12, risk_free=0.02)
    assert np.array_equal(a.weights, b.weights)
    assert not np.array_equal(a.weights, c.weights)
    assert a.weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_resampling_damps_turnover_caused_by_estimation_noise():
    """Re-estimate (mu, Sigma) on 6 independent two-year histories of the same market; rebalance each time."""
    mu, S = factor_model(8, 5)
    rng = np.random.default_rng(2024)
    T = 504
    root = np.linalg.cholesky(S / 252)
    plain, resampled = [], []
    for _ in range(6):
        X = mu / 252 + rng.standard_normal((T, 8)) @ root.T
        mu_hat, S_hat = X.mean(axis=0) * 252, np.cov(X, rowvar=False) * 252
        plain.append(max_sharpe(mu_hat, S_hat, risk_free=0.0).weights)
        resampled.append(resampled_max_sharpe(mu_hat, S_hat, T, samples=60, seed=7).weights)

    def turnover(ws):
        return np.mean([0.5 * np.abs(a - b).sum() for a, b in itertools.pairwise(ws)])

    assert turnover(resampled) < 0.8 * turnover(plain)  # measured: 0.53 vs 0.75


def test_min_volatility_needs_no_expected_returns_in_consensus():
    _, S = factor_model(5)
    res = consensus(None, S, methods=["min_volatility", "risk_parity"])
    assert np.isnan(res.performance.expected_return)
    np.testing.assert_allclose(res.results[0].weights, min_volatility(None, S).weights)
