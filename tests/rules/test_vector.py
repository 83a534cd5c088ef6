"""The vectorised pre-filter agrees with the per-row evaluation, including missing values and negation."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.conditions import AllOf, AnyOf, Compare, In, Not, negation_normal_form
from engine.rules.predicate import holds
from engine.rules.vector import Interval, could_hold, mask

NUM = ["position.profit", "position.age_seconds"]
STR = ["position.side"]

leaf = st.one_of(
    st.builds(Compare, st.sampled_from(NUM), st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), st.sampled_from([-0.01, 0.0, 0.5, 60])),
    st.builds(Compare, st.sampled_from(STR), st.sampled_from(["==", "!="]), st.sampled_from(["long", "short"])),
    st.builds(In, st.sampled_from(STR), st.just(("long",)), st.booleans()),
    st.builds(Compare, st.just("portfolio.halted"), st.sampled_from(["==", "!="]), st.booleans()),
)
conds = st.recursive(leaf, lambda inner: st.one_of(
    st.builds(lambda xs: AllOf(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
    st.builds(lambda xs: AnyOf(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
    st.builds(Not, inner)), max_leaves=8)
values = st.one_of(st.just(math.nan), st.sampled_from([-0.01, 0.0, 0.5, 60.0]), st.floats(-1, 100))


@settings(max_examples=300, deadline=None)
@given(cond=conds, profit=st.lists(values, min_size=1, max_size=6), data=st.data())
def test_mask_equals_row_by_row_evaluation(cond, profit, data) -> None:
    n = len(profit)
    age = data.draw(st.lists(values, min_size=n, max_size=n))
    side = data.draw(st.lists(st.sampled_from(["long", "short"]), min_size=n, max_size=n))
    halted = data.draw(st.booleans())
    columns = {"position.profit": np.array(profit), "position.age_seconds": np.array(age),
               "position.side": np.array(side, dtype=object), "portfolio.halted": halted}
    got = mask(cond, columns, n)
    for i in range(n):
        row = {"position.side": side[i], "portfolio.halted": halted}
        if not math.isnan(profit[i]):
            row["position.profit"] = profit[i]
        if not math.isnan(age[i]):
            row["position.age_seconds"] = age[i]
        assert bool(got[i]) == holds(cond, row), (cond, row)


def test_a_missing_value_satisfies_no_comparison_even_negated() -> None:
    cond = Not(Compare("position.stop_loss", ">", 1.0))
    assert mask(cond, {"position.stop_loss": np.array([np.nan, 0.5, 2.0])}, 3).tolist() == [False, True, False]
    assert holds(cond, {}) is False


numeric_in = st.builds(In, st.sampled_from(NUM), st.sampled_from([(0.0,), (0.5, 60.0), (-0.01, 0.0)]), st.booleans())


@settings(max_examples=300, deadline=None)
@given(cond=conds, data=st.data())
def test_could_hold_never_rules_out_a_row_that_holds_for_values_within_its_bounds(cond, data) -> None:
    cond = AllOf((cond, data.draw(numeric_in))) if data.draw(st.booleans()) else cond
    """could_hold over bounds is False only where mask is False for values inside the bounds."""
    nnf = negation_normal_form(cond)
    n = data.draw(st.integers(1, 5))
    bound = st.one_of(st.sampled_from([-0.01, 0.0, 0.5, 60.0]), st.floats(-0.05, 0.6), st.floats(-1, 100))
    lo = np.array(data.draw(st.lists(bound, min_size=n, max_size=n)))
    width = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.001, 0.5, 70.0]), min_size=n, max_size=n)))
    side = np.array(data.draw(st.lists(st.sampled_from(["long", "short"]), min_size=n, max_size=n)), dtype=object)
    halted = data.draw(st.booleans())
    bounds = {"position.profit": Interval(lo, lo + width), "position.side": side, "portfolio.halted": halted}
    if data.draw(st.booleans()):
        bounds["position.age_seconds"] = Interval(lo[::-1].copy(), (lo + width)[::-1].copy())
    maybe = could_hold(nnf, bounds, n)
    # values inside the bounds: the ends, the middle and the comparison constants that fall inside
    for profit in (lo, lo + width, lo + width / 2, *[np.clip(np.full(n, c), lo, lo + width) for c in (-0.01, 0.0, 0.5, 60.0)]):
        exact = {"position.profit": profit, "position.side": side, "portfolio.halted": halted}
        if "position.age_seconds" in bounds:
            exact["position.age_seconds"] = profit[::-1].copy()
            age = bounds["position.age_seconds"]
            exact["position.age_seconds"] = np.clip(exact["position.age_seconds"], age.lo, age.hi)
        holds_now = mask(nnf, exact, n, normalized=True)
        assert not (holds_now & ~maybe).any(), (cond, profit)


def test_could_hold_rules_out_what_no_value_in_the_bounds_satisfies() -> None:
    cond = negation_normal_form(AllOf((Compare("position.profit", "<", 0.0), Compare("clock.hour", ">=", 20))))
    rows = {"position.profit": Interval(np.array([-0.002, 0.001]), np.array([0.001, 0.003])), "clock.hour": Interval(20, 21)}
    assert could_hold(cond, rows, 2).tolist() == [True, False]
    rows["clock.hour"] = Interval(9, 19)
    assert could_hold(cond, rows, 2).tolist() == [False, False]
    assert could_hold(cond, {"clock.hour": 21}, 2).tolist() == [True, True]  # profit unknown: it may hold
