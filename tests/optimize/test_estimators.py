"""Returns and covariance estimators: PyPortfolioOpt's numbers, missing data, the PSD repair."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from optdata import stock_prices

from engine.errors import OptimizationError
from engine.optimize import (
    NonPSDCovarianceWarning,
    cagr_return,
    covariance,
    ewma_covariance,
    ewma_return,
    expected_returns,
    is_psd,
    ledoit_wolf,
    make_psd,
    mean_return,
    returns_from_prices,
    sample_covariance,
)


@pytest.fixture(scope="module")
def returns():
    names, prices = stock_prices()
    return {n: i for i, n in enumerate(names)}, returns_from_prices(prices)


# Computed once with PyPortfolioOpt 1.6.0 / pandas 3.1 on the same file:
#   expected_returns.mean_historical_return(df)["GOOG"|"AMZN"|"BABA"], compounding=False for the mean,
#   expected_returns.ema_historical_return(df, compounding=False), risk_models.sample_cov(df), risk_models.exp_cov(df)
def test_expected_returns_match_pypfopt(returns):
    idx, R = returns
    cagr = cagr_return(R)
    mean = mean_return(R)
    ewma = ewma_return(R)
    assert cagr[idx["GOOG"]] == pytest.approx(0.2479671394835612, rel=1e-12)
    assert cagr[idx["AMZN"]] == pytest.approx(0.37132788212360524, rel=1e-12)
    assert mean[idx["BABA"]] == pytest.approx(0.22616723023870225, rel=1e-12)
    assert ewma[idx["MA"]] == pytest.approx(0.3397042997937443, rel=1e-12)


def test_sample_and_ewma_covariance_match_pypfopt(returns):
    idx, R = returns
    S = sample_covariance(R)
    E = ewma_covariance(R)
    g, b, f = idx["GOOG"], idx["BABA"], idx["FB"]
    assert S[g, g] == pytest.approx(0.09321113657629149, rel=1e-12)
    assert S[g, b] == pytest.approx(0.029793375981135458, rel=1e-12)
    assert S[f, b] == pytest.approx(0.030073473606999437, rel=1e-12)
    assert E[g, f] == pytest.approx(0.05474061538622629, rel=1e-10)


def test_late_listing_uses_only_its_own_history():
    P = np.array([[np.nan, 10.0], [np.nan, 11.0], [5.0, 12.1], [5.5, 13.31], [6.05, 14.641]])
    R = returns_from_prices(P)
    assert np.isnan(R[:2, 0]).all()  # no back-filling before the listing
    np.testing.assert_allclose(mean_return(R, frequency=1), [0.1, 0.1])
    np.testing.assert_allclose(cagr_return(R, frequency=1), [0.1, 0.1])


def test_gap_inside_history_is_one_return_over_the_gap():
    P = np.array([[10.0, 1.0], [np.nan, 1.0], [12.0, 1.0], [12.0, np.nan]])
    R = returns_from_prices(P)
    assert np.isnan(R[0, 0])
    assert R[1, 0] == pytest.approx(0.2)  # 12 / 10 - 1, not a made-up zero
    assert np.isnan(R[2, 1])  # a trailing blank stays missing


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        (np.array([[1.0, 2.0], [0.0, 2.0]]), "positive"),
        (np.array([[1.0, np.nan], [2.0, 2.0]]), "fewer than two prices"),
        (np.array([[1.0, 2.0]]), "at least 2 rows"),
    ],
)
def test_bad_prices_are_refused(prices, message):
    with pytest.raises(OptimizationError, match=message):
        returns_from_prices(prices)


def test_ledoit_wolf_matches_sklearn_on_complete_data(returns):
    _, R = returns
    complete = R[~np.isnan(R).any(axis=1)]
    shrunk, delta = ledoit_wolf(complete)
    # sklearn.covariance.ledoit_wolf(complete) (scikit-learn 1.9.1), shrinkage and one entry x 252:
    assert delta == pytest.approx(0.03275279306285126, rel=1e-9)
    assert shrunk[0, 1] == pytest.approx(0.023869394258631563, rel=1e-9)
    assert is_psd(shrunk)


def test_ledoit_wolf_shrinks_towards_the_average_variance(returns):
    _, R = returns
    S = sample_covariance(R)
    L, delta = ledoit_wolf(R)
    assert 0 < delta < 1
    off = ~np.eye(len(S), dtype=bool)
    assert np.abs(L[off]).sum() < np.abs(S[off]).sum()
    assert np.trace(L) == pytest.approx(np.trace(S), rel=0.01)


def test_non_psd_matrix_is_repaired_with_a_warning_naming_the_fix():
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert not is_psd(bad)
    with pytest.warns(NonPSDCovarianceWarning, match="eigenvalue clipping"):
        fixed = make_psd(bad)
    assert is_psd(fixed)
    assert np.linalg.norm(fixed - bad) < np.linalg.norm(np.eye(3) - bad)


def test_psd_matrix_passes_without_warning(returns):
    _, R = returns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = covariance(R, "sample")
    assert is_psd(out)


def test_dispatchers_refuse_unknown_methods(returns):
    _, R = returns
    with pytest.raises(OptimizationError, match="ledoit_wolf"):
        covariance(R, "shrunk")
    with pytest.raises(OptimizationError, match="'ledoit-wolf' is now spelled 'ledoit_wolf'"):
        covariance(R, "ledoit-wolf")
    with pytest.raises(OptimizationError, match="cagr"):
        expected_returns(R, "median")
