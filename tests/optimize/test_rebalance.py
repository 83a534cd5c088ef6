"""Rebalancing recommendations: actions, priorities, staged transfers and impact."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optdata import factor_model

from engine.errors import OptimizationError
from engine.optimize import recommend

NAMES = ["arbitrage", "trend_following", "market_making", "htf", "news_driven", "statistical_arbitrage"]
TARGET = [0.25, 0.20, 0.15, 0.15, 0.15, 0.10]


def test_actions_and_priorities_follow_drift_against_threshold():
    current = [0.10, 0.27, 0.16, 0.12, 0.25, 0.10]  # drifts +0.15, -0.07, -0.01, +0.03, -0.10, 0
    rec = recommend(NAMES, current, TARGET, 0.05)
    by = {s.name: s for s in rec.strategies}
    assert (by["arbitrage"].action, by["arbitrage"].priority) == ("increase", "high")
    assert (by["trend_following"].action, by["trend_following"].priority) == ("decrease", "medium")
    assert (by["market_making"].action, by["market_making"].priority) == ("hold", "low")
    assert (by["htf"].action, by["htf"].priority) == ("hold", "low")
    assert (by["news_driven"].action, by["news_driven"].priority) == ("decrease", "high")  # exactly 2x
    assert by["arbitrage"].drift == pytest.approx(0.15)


def test_drift_equal_to_threshold_is_held_despite_binary_rounding():
    rec = recommend(["a", "b"], [0.55, 0.45], [0.5, 0.5], 0.05)
    assert [s.action for s in rec.strategies] == ["hold", "hold"]
    assert rec.transfers == ()


def test_transfers_go_from_decreases_to_increases_in_steps_of_at_most_max_step():
    current = [0.10, 0.27, 0.16, 0.12, 0.25, 0.10]
    rec = recommend(NAMES, current, TARGET, 0.05, max_step=0.05)
    assert rec.transfers, "a plan was expected"
    for t in rec.transfers:  # decreases fund the increase; what is left goes to a hold drifting up (htf, +0.03)
        assert t.source in ("trend_following", "news_driven") and t.destination in ("arbitrage", "htf")
    steps = {}
    for t in rec.transfers:
        steps[t.step] = steps.get(t.step, 0.0) + t.amount
    assert max(steps.values()) <= 0.05 + 1e-12
    assert sorted(steps) == list(range(1, len(steps) + 1))
    # The largest decrease funds first; every strategy to move reaches its target; the 0.02 the decreases
    # free beyond arbitrage's need goes to htf (a hold drifting up), market_making (drifting down) stays
    assert rec.transfers[0].source == "news_driven"
    assert rec.after["market_making"] == 0.16 and rec.after["htf"] == pytest.approx(0.14)
    assert [rec.after[n] for n in ("arbitrage", "trend_following", "news_driven")] == pytest.approx([0.25, 0.20, 0.15])
    assert sum(rec.after.values()) == pytest.approx(1.0, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 8), st.integers(0, 10_000), st.floats(0.0, 0.1), st.floats(0.01, 0.2))
def test_plan_keeps_the_allocation_summing_to_one_and_moves_towards_targets(k, seed, thr, step):
    rng = np.random.default_rng(seed)
    cur, tgt = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k))
    names = [f"s{i}" for i in range(k)]
    rec = recommend(names, cur, tgt, thr, max_step=step)
    after = np.array([rec.after[n] for n in names])
    assert after.sum() == pytest.approx(1.0, abs=1e-12)
    assert (np.abs(after - tgt) <= np.abs(cur - tgt) + 1e-12).all()
    assert all(t.amount <= step + 1e-12 for t in rec.transfers)
    for s, a, t in zip(rec.strategies, after, tgt, strict=True):
        if s.action == "hold":  # a hold moves only toward its target, never past it
            assert min(s.current, t) - 1e-12 <= a <= max(s.current, t) + 1e-12
        else:  # a strategy to move reaches its target: a plan never leaves a recommendation half done
            assert a == pytest.approx(t, abs=1e-9)


def test_impact_reports_performance_and_risk_contributions_before_and_after():
    mu, S = factor_model(6, 3)
    current = [0.10, 0.27, 0.16, 0.12, 0.25, 0.10]
    rec = recommend(NAMES, current, TARGET, 0.05, covariance=S, expected_returns=mu, risk_free=0.01)
    w0 = np.array(current)
    w1 = np.array([rec.after[n] for n in NAMES])
    assert rec.impact.before.volatility == pytest.approx(np.sqrt(w0 @ S @ w0))
    assert rec.impact.after.expected_return == pytest.approx(mu @ w1)
    assert sum(rec.impact.risk_contributions_after.values()) == pytest.approx(1.0)
    assert rec.impact.risk_contributions_before != rec.impact.risk_contributions_after


def test_invalid_inputs_are_refused():
    with pytest.raises(OptimizationError, match="sums to"):
        recommend(["a", "b"], [0.5, 0.6], [0.5, 0.5], 0.05)
    with pytest.raises(OptimizationError, match="unique"):
        recommend(["a", "a"], [0.5, 0.5], [0.5, 0.5], 0.05)
    with pytest.raises(OptimizationError, match="max step"):
        recommend(["a", "b"], [0.5, 0.5], [0.5, 0.5], 0.05, max_step=0)


def test_a_decrease_with_no_increase_to_fund_is_given_to_the_holds_drifting_up():
    # a is 0.10 over its target (decrease, high); b and c are each 0.05 under (hold: exactly their threshold)
    rec = recommend(["a", "b", "c"], [0.50, 0.25, 0.25], [0.40, 0.30, 0.30], 0.05)
    assert [s.action for s in rec.strategies] == ["decrease", "hold", "hold"]
    assert [(t.source, t.destination, t.amount) for t in rec.transfers] == [("a", "b", pytest.approx(0.05)),
                                                                          ("a", "c", pytest.approx(0.05))]
    assert rec.after == pytest.approx({"a": 0.40, "b": 0.30, "c": 0.30})
