"""Mean-variance optimizers: PyPortfolioOpt's golden numbers, KKT properties, infeasible inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optdata import factor_model, stock_prices

from engine.errors import OptimizationError
from engine.optimize import (
    cagr_return,
    efficient_frontier,
    efficient_return,
    efficient_risk,
    max_quadratic_utility,
    max_sharpe,
    min_volatility,
    returns_from_prices,
    sample_covariance,
)

RF = 0.02


@pytest.fixture(scope="module")
def stocks():
    _, prices = stock_prices()
    R = returns_from_prices(prices)
    return cagr_return(R), sample_covariance(R)


# Golden numbers: PyPortfolioOpt 1.6.0 on its own tests/resources/stock_prices.csv, computed once with
#   mu = expected_returns.mean_historical_return(df); S = risk_models.sample_cov(df)
#   ef = EfficientFrontier(mu, S[, weight_bounds=...]); ef.<method>(...); ef.portfolio_performance(risk_free_rate=0.02)
# (default cvxpy solver; CLARABEL agrees to 1e-7). (expected return, volatility, Sharpe):
GOLDEN = {
    "min_volatility": (0.15056821399482534, 0.15915084514118683, 0.8204054077060974),
    "max_sharpe": (0.3047768672819917, 0.22165566922402963, 1.2847714127003214),
    "efficient_risk_0.19": (0.2552422845109504, 0.19000000000274472, 1.238117286881853),
    "efficient_return_0.25": (0.25, 0.18723269942026347, 1.2284179030274025),
    "utility_2": (0.36777327117515035, 0.29213421977782783, 1.1904571516463796),
    "max_sharpe_bounded": (0.2351011864877762, 0.20290214440583584, 1.0601227853833834),
    "min_volatility_bounded": (0.1615732668359351, 0.17151992678472353, 0.8254041934942359),
}
# ef.min_volatility() weights, ticker order of the file (GOOG, AAPL, FB, BABA, ...):
GOLDEN_MIN_VOL_WEIGHTS = [0.00305819, 0.01467329, 0.09855758, 0.12558323, 0.0, 0.0, 0.0, 0.17714777, 0.0,
                          0.11682009, 0.17692018, 0.0, 0.0, 0.18860783, 0.0, 0.00062615, 0.0, 0.08778155, 0.0,
                          0.01022413]
GOLDEN_MAX_SHARPE_WEIGHTS = [0.0383539, 0.06889927, 0.206031, 0.07314596, 0.04032884, 0.0, 0.0, 0.0, 0.0, 0.0,
                             0.0, 0.0, 0.0, 0.0, 0.0, 0.01323509, 0.35348735, 0.19570215, 0.0, 0.01081642]


def _perf(result):
    p = result.performance
    return p.expected_return, p.volatility, p.sharpe


@pytest.mark.parametrize(
    ("key", "run"),
    [
        ("min_volatility", lambda mu, S: min_volatility(mu, S, risk_free=RF)),
        ("max_sharpe", lambda mu, S: max_sharpe(mu, S, risk_free=RF)),
        ("efficient_risk_0.19", lambda mu, S: efficient_risk(mu, S, 0.19, risk_free=RF)),
        ("efficient_return_0.25", lambda mu, S: efficient_return(mu, S, 0.25, risk_free=RF)),
        ("utility_2", lambda mu, S: max_quadratic_utility(mu, S, risk_aversion=2.0, risk_free=RF)),
        ("max_sharpe_bounded", lambda mu, S: max_sharpe(mu, S, bounds=(0.02, 0.12), risk_free=RF)),
        ("min_volatility_bounded", lambda mu, S: min_volatility(mu, S, bounds=(0.02, 0.12), risk_free=RF)),
    ],
)
def test_reproduces_pypfopt_performance_on_its_stock_prices(stocks, key, run):
    np.testing.assert_allclose(_perf(run(*stocks)), GOLDEN[key], rtol=1e-6)


def test_reproduces_pypfopt_min_volatility_and_max_sharpe_weights(stocks):
    mu, S = stocks
    np.testing.assert_allclose(min_volatility(mu, S).weights, GOLDEN_MIN_VOL_WEIGHTS, atol=2e-6)
    np.testing.assert_allclose(max_sharpe(mu, S, risk_free=RF).weights, GOLDEN_MAX_SHARPE_WEIGHTS, atol=2e-6)


def _first_order_gap(grad, w, lo, hi, tol=1e-9):
    """Largest gain of moving weight from an asset that can shrink to one that can grow (<= 0 at optimum)."""
    can_grow = w < hi - tol
    can_shrink = w > lo + tol
    if not can_grow.any() or not can_shrink.any():
        return 0.0
    # Moving eps from j to i changes the objective by eps * (grad_i - grad_j).
    return float(np.max(grad[can_shrink]) - np.min(grad[can_grow]))


problems = st.tuples(st.integers(2, 14), st.integers(0, 10_000), st.floats(0.0, 0.05), st.floats(0.25, 1.0))


def _setup(n, seed, lo_frac, hi):
    mu, S = factor_model(n, seed)
    lo = np.full(n, min(lo_frac, 0.9 / n))
    hi = np.full(n, max(hi, 1.2 / n))
    return mu, S, lo, hi


@settings(max_examples=60, deadline=None)
@given(problems)
def test_min_volatility_satisfies_first_order_conditions_inside_bands(p):
    mu, S, lo, hi = _setup(*p)
    w = min_volatility(mu, S, bounds=(lo, hi)).weights
    assert abs(w.sum() - 1) < 1e-9
    assert (w >= lo - 1e-12).all() and (w <= hi + 1e-12).all()
    grad = S @ w
    assert _first_order_gap(grad, w, lo, hi) <= 1e-8 * np.max(np.abs(grad))


@settings(max_examples=60, deadline=None)
@given(problems)
def test_max_sharpe_satisfies_first_order_conditions_and_beats_random_portfolios(p):
    mu, S, lo, hi = _setup(*p)
    from engine.optimize._inputs import max_return_portfolio

    if (mu - RF) @ max_return_portfolio(mu - RF, lo, hi) <= 0:  # nothing on the bands beats the risk-free rate
        with pytest.raises(OptimizationError, match="risk-free rate"):
            max_sharpe(mu, S, bounds=(lo, hi), risk_free=RF)
        return
    res = max_sharpe(mu, S, bounds=(lo, hi), risk_free=RF)
    w = res.weights
    assert abs(w.sum() - 1) < 1e-9 and (w >= lo - 1e-12).all() and (w <= hi + 1e-12).all()
    vol = np.sqrt(w @ S @ w)
    ex = (mu - RF) @ w
    grad = -((mu - RF) / vol - ex * (S @ w) / vol**3)  # gradient of -Sharpe
    assert _first_order_gap(grad, w, lo, hi) <= 1e-8 * np.max(np.abs(mu - RF)) / vol
    rng = np.random.default_rng(p[1])
    from engine.optimize import project_onto_bounds

    for _ in range(20):
        v = project_onto_bounds(rng.dirichlet(np.ones(len(w))), lo, hi)
        assert (mu - RF) @ v / np.sqrt(v @ S @ v) <= res.performance.sharpe + 1e-9


@settings(max_examples=40, deadline=None)
@given(problems, st.floats(0.0, 1.0))
def test_efficient_return_hits_target_and_efficient_risk_inverts_it(p, frac):
    mu, S, lo, hi = _setup(*p)
    mv = min_volatility(mu, S, bounds=(lo, hi))
    from engine.optimize._inputs import max_return_portfolio

    top = mu @ max_return_portfolio(mu, lo, hi)
    target = mv.performance.expected_return + frac * 0.98 * (top - mv.performance.expected_return)
    er = efficient_return(mu, S, target, bounds=(lo, hi))
    assert er.performance.expected_return >= target - 1e-9
    assert er.performance.volatility >= mv.performance.volatility - 1e-12
    ek = efficient_risk(mu, S, er.performance.volatility, bounds=(lo, hi))
    assert ek.performance.volatility <= er.performance.volatility * (1 + 1e-7)
    assert ek.performance.expected_return == pytest.approx(er.performance.expected_return, rel=1e-6, abs=1e-9)


def test_frontier_is_increasing_in_both_risk_and_return(stocks):
    vols, rets = efficient_frontier(*stocks, points=15)
    assert (np.diff(rets) > 0).all()
    assert (np.diff(vols) > -1e-12).all()


def test_large_universe_reaches_kkt_optimum():
    mu, S = factor_model(300, seed=3)
    res = max_sharpe(mu, S, bounds=(0.0, 0.05), risk_free=RF)
    assert res.verification.optimality_residual < 1e-9
    assert res.weights.max() <= 0.05 + 1e-12


def test_infeasible_bounds_name_the_sums():
    mu, S = factor_model(5)
    with pytest.raises(OptimizationError, match=r"minimum weights sum to 1\.5 > 1"):
        min_volatility(mu, S, bounds=(0.3, 1.0))
    with pytest.raises(OptimizationError, match=r"maximum weights sum to 0\.5 < 1"):
        max_sharpe(mu, S, bounds=(0.0, 0.1))


def test_max_sharpe_without_any_excess_return_is_refused():
    mu, S = factor_model(5)
    with pytest.raises(OptimizationError, match="risk-free rate"):
        max_sharpe(mu, S, risk_free=float(mu.max()) + 0.01)


def test_unreachable_targets_are_refused_with_the_limit():
    mu, S = factor_model(6)
    with pytest.raises(OptimizationError, match="highest expected return"):
        efficient_return(mu, S, float(mu.max()) + 0.1)
    vmin = min_volatility(mu, S).performance.volatility
    with pytest.raises(OptimizationError, match="minimum volatility"):
        efficient_risk(mu, S, vmin * 0.5)


def test_bad_inputs_are_refused():
    mu, S = factor_model(4)
    with pytest.raises(OptimizationError, match="square"):
        min_volatility(mu, S[:3])
    with pytest.raises(OptimizationError, match="length 4"):
        max_sharpe(mu[:3], S)
    bad = S.copy()
    bad[0, 1] += 1.0
    with pytest.raises(OptimizationError, match="symmetric"):
        min_volatility(mu, bad)
    with pytest.raises(OptimizationError, match="above upper"):
        min_volatility(mu, S, bounds=([0.5, 0, 0, 0], [0.2, 1, 1, 1]))


def test_results_are_deterministic_and_frozen():
    mu, S = factor_model(30, seed=7)
    a, b = max_sharpe(mu, S), max_sharpe(mu, S)
    assert np.array_equal(a.weights, b.weights)
    with pytest.raises(ValueError, match="read-only"):
        a.weights[0] = 1.0
    with pytest.raises(AttributeError):
        a.method = "x"  # type: ignore[misc]
