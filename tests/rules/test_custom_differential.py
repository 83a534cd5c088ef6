"""The pre-filter against durable-rules over random rules, contexts and facts (hypothesis).

durable-rules decides every custom rule; the pre-filter (``predicate.may_hold`` per subject, and the
vectorised ``vector.mask`` over positions) only skips contexts. With the facts given, it must agree with
durable-rules exactly; without them (a rule may change them later in the event), it must never skip a
context durable-rules would fire on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import load_config
from engine.config.conditions import AllOf, AnyOf, Compare, Condition, In, Not, negation_normal_form
from engine.config.load import rules_version
from engine.config.models import CustomRules
from engine.config.scopes import alternatives
from engine.rules.chaining import PortfolioRules
from engine.rules.predicate import may_hold
from engine.rules.vector import mask

ROOT = Path(__file__).resolve().parents[2]
T = 1_709_546_400_000
OPS = ["<", "<=", ">", ">=", "==", "!="]

leaf = st.one_of(
    st.builds(Compare, st.just("position.profit"), st.sampled_from(OPS), st.sampled_from([-0.01, 0.0, 0.01])),
    st.builds(Compare, st.just("clock.hour"), st.sampled_from(OPS), st.sampled_from([0, 12, 23])),
    st.builds(Compare, st.just("clock.weekday"), st.sampled_from(["==", "!="]), st.sampled_from(["mon", "fri"])),
    st.builds(In, st.just("clock.weekday"), st.just(("mon", "tue")), st.booleans()),
    st.builds(Compare, st.just("portfolio.halted"), st.sampled_from(["==", "!="]), st.booleans()),
    st.builds(Compare, st.just("fact.f.active"), st.sampled_from(["==", "!="]), st.booleans()),
)
conditions = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda xs: AllOf(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(lambda xs: AnyOf(tuple(xs)), st.lists(inner, min_size=2, max_size=3)),
        st.builds(Not, inner),
    ),
    max_leaves=6,
)
contexts = st.fixed_dictionaries({
    "position.profit": st.sampled_from([-0.02, -0.01, 0.0, 0.01, 0.02, None]),
    "clock.hour": st.sampled_from([0, 11, 12, 23]),
    "clock.weekday": st.sampled_from(["mon", "tue", "fri"]),
})


@pytest.fixture(scope="module")
def shipped():
    return load_config(str(ROOT))


def _ruleset(shipped, cond: Condition):
    custom = CustomRules.model_validate({"facts": {"f": {}}, "rules": [{"name": "probe", "when": cond.text(), "then": [{"alert": "a"}]}]})
    changed = dataclasses.replace(shipped, custom=custom)
    return dataclasses.replace(changed, version=rules_version(changed))


def _durable_fires(shipped, cond: Condition, ctx: dict, halted: bool, fact: bool) -> bool:
    rules = PortfolioRules()
    v = rules.load(_ruleset(shipped, cond))
    facts = []
    if halted:
        facts.append({"t": "halt", "source": "custom:x", "reason": "r"})
    if fact:
        facts.append({"t": "fact", "name": "f", "strategy": "", "symbol": "", "since": T, "until": T + 1, "blocks": "nothing",
                      "rule": "x", "reason": "r"})
    rules.restore_facts(v, facts)
    context = {"position.id": "p1", "position.strategy_type": "arbitrage", "position.symbol": "EURUSD", "ts": T,
               **{k: x for k, x in ctx.items() if x is not None}}
    fired = rules.post_position(v, context) if any(f.startswith("position.") for f in _fields(cond)) \
        else rules.post_portfolio(v, {k: x for k, x in context.items() if not k.startswith("position.")})
    rules.drop(v)
    return bool(fired)


def _fields(cond: Condition) -> set[str]:
    from engine.config.conditions import fields_of
    return fields_of(cond)


def _mask_holds(cond: Condition, ctx: dict, facts: dict[str, bool] | None) -> bool:
    """The vectorised pre-filter of position rules on one row, for the given facts (None: any)."""
    columns = {k: np.array([np.nan if x is None else x], dtype=np.float64) if k == "position.profit" else x
               for k, x in ctx.items()}
    held = False
    for state, residual in alternatives(cond):
        if facts is not None and any(facts[k] != x for k, x in state.items()):
            continue
        held |= residual if isinstance(residual, bool) else bool(mask(negation_normal_form(residual), columns, 1)[0])
    return held


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cond=conditions, ctx=contexts, halted=st.booleans(), fact=st.booleans())
def test_the_pre_filter_agrees_with_durable_rules(shipped, cond: Condition, ctx: dict, halted: bool, fact: bool) -> None:
    known = {"portfolio.halted": halted, "fact.f.active": fact}
    fires = _durable_fires(shipped, cond, ctx, halted, fact)
    values = {k: x for k, x in ctx.items() if x is not None}
    assert may_hold(cond, values, known) == fires, (cond.text(), ctx, known)
    assert _mask_holds(cond, ctx, known) == fires, (cond.text(), ctx, known)
    if fires:  # not knowing the facts, the pre-filter never skips what durable-rules fires on
        assert may_hold(cond, values) and _mask_holds(cond, ctx, None)
