"""The vectorised pre-filter agrees with the per-row evaluation, including missing values and negation."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.config.conditions import AllOf, AnyOf, Compare, In, Not
from engine.rules.predicate import holds
from engine.rules.vector import mask

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
