"""YAML rules → durable-rules ruleset definitions: shape, conditions, priorities and the guards of DESIGN 9."""

from __future__ import annotations

import dataclasses
import itertools
import random
import time
from pathlib import Path

import pytest

from engine.config.conditions import AllOf, AnyOf, Compare, In, Not, parse_expression
from engine.config.load import load_config
from engine.config.models import CustomRules
from engine.rules.chaining import PortfolioRules
from engine.rules.compile import (
    MAX_BRANCHES,
    MAX_RULES,
    RulesCompileError,
    branches,
    check_compiles,
    compile_condition,
    compile_ruleset,
    ruleset_name,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped():
    return load_config(str(ROOT))


def with_custom(ruleset, rules: list[dict], version: str = "rv-test"):
    """The shipped rule set with ``rules`` as its custom rules (validated by the models)."""
    custom = CustomRules.model_validate({"rules": rules})
    return dataclasses.replace(ruleset, custom=custom, version=version)


def constructed(ruleset, when, name: str = "r", version: str = "rv-test", **extra):
    """A rule set with one custom rule whose condition tree is built by hand (no validation)."""
    from engine.config.models import Action, CustomRule

    rule = CustomRule.model_construct(name=name, enabled=True, priority=0, when=when, then=[Action.model_validate({"alert": "x"})],
                                      description=None, **extra)
    return dataclasses.replace(ruleset, custom=CustomRules.model_construct(rules=[rule]), version=version)


def cond(text: str):
    tree, errors = parse_expression(text)
    assert not errors, errors
    return tree


# --- shape -----------------------------------------------------------------------------------------


def test_shipped_rules_compile_to_one_ruleset_named_for_the_version(shipped):
    definition = compile_ruleset(shipped)
    (name,) = definition
    assert name == "riskrail_" + shipped.version.replace("-", "_")
    rules = definition[name]
    assert {"daily_loss", "proposal_halted", "proposal_failed", "proposal_accepted"} <= set(rules)
    assert {"custom:flatten-losing-trend-before-weekend", "custom:halt-on-drawdown"} <= set(rules)
    assert all(rule["run"].startswith(name + "/") for rule in rules.values())


def test_daily_loss_rule_tests_the_configured_limit_and_the_days_breach_fact(shipped):
    rule = compile_ruleset(shipped)[ruleset_name(shipped.version)]["daily_loss"]
    assert rule["all"][0] == {"m": {"$and": [{"t": "daily_pnl"}, {"$lte": {"pnl_pct": -0.02}}]}}
    assert rule["all"][1] == {"b$not": {"$and": [{"t": "breach"}, {"day": {"m": "day"}}]}}


def test_two_versions_get_two_ruleset_names(shipped):
    a = compile_ruleset(dataclasses.replace(shipped, version="rv-a"))
    b = compile_ruleset(dataclasses.replace(shipped, version="rv-b"))
    assert set(a) == {"riskrail_rv_a"} and set(b) == {"riskrail_rv_b"}


def test_a_version_that_is_not_a_durable_name_is_refused():
    with pytest.raises(RulesCompileError, match="rules version"):
        ruleset_name("rv/../x")


def test_position_rules_match_position_contexts_and_others_portfolio_contexts(shipped):
    rules = compile_ruleset(shipped)[ruleset_name(shipped.version)]
    position = rules["custom:flatten-losing-trend-before-weekend"]
    portfolio = rules["custom:halt-on-drawdown"]
    assert position["all"][0]["m"]["$and"][0] == {"t": "position"}
    # the latch is of the context's subject: its key is the position id, or "portfolio"
    assert position["all"][1]["l$not"]["$and"][2] == {"key": {"m": "key"}}
    assert portfolio["all"][0]["m"]["$and"][0] == {"t": "portfolio"}
    assert portfolio["all"][1]["l$not"]["$and"][2] == {"key": {"m": "key"}}
    assert "rearm:halt-on-drawdown" in rules and "rearm:flatten-losing-trend-before-weekend" not in rules


def test_disabled_rules_are_not_compiled(shipped):
    rs = with_custom(shipped, [
        {"name": "on", "when": "portfolio.drawdown >= 0.1", "then": [{"alert": "a"}]},
        {"name": "off", "enabled": False, "when": "portfolio.drawdown >= 0.1", "then": [{"alert": "a"}]},
    ])
    rules = compile_ruleset(rs)["riskrail_rv_test"]
    assert "custom:on" in rules and "custom:off" not in rules


def test_higher_priority_maps_to_lower_pri_and_pri_is_never_negative(shipped):
    rs = with_custom(shipped, [
        {"name": "low", "priority": -1000, "when": "portfolio.drawdown >= 0.1", "then": [{"alert": "a"}]},
        {"name": "mid", "priority": 0, "when": "portfolio.drawdown >= 0.1", "then": [{"alert": "a"}]},
        {"name": "high", "priority": 1000, "when": "portfolio.drawdown >= 0.1", "then": [{"alert": "a"}]},
    ])
    rules = compile_ruleset(rs)["riskrail_rv_test"]
    pri = {k: rules[f"custom:{k}"]["pri"] for k in ("low", "mid", "high")}
    assert pri["high"] < pri["mid"] < pri["low"]
    assert min(pri.values()) >= 0  # durable-rules runs a negative pri last


# --- conditions ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("position.profit < 0.1", {"$lt": {"position__profit": 0.1}}),
        ("position.profit <= 0.1", {"$lte": {"position__profit": 0.1}}),
        ("position.profit > 0.1", {"$gt": {"position__profit": 0.1}}),
        ("position.profit >= 0.1", {"$gte": {"position__profit": 0.1}}),
        ("position.side != 'long'", {"$neq": {"position__side": "long"}}),
        ("position.side == 'long'", {"position__side": "long"}),
        ("portfolio.halted", {"portfolio__halted": True}),
        ("clock.weekday in ['fri', 'sat']", {"$or": [{"clock__weekday": "fri"}, {"clock__weekday": "sat"}]}),
        ("clock.weekday not in ['fri', 'sat']", {"$and": [{"$neq": {"clock__weekday": "fri"}}, {"$neq": {"clock__weekday": "sat"}}]}),
        ("not clock.weekday not in ['fri']", {"clock__weekday": "fri"}),
        ("not position.profit < 0.1", {"$gte": {"position__profit": 0.1}}),
        ("not portfolio.halted", {"$neq": {"portfolio__halted": True}}),
        ("not (position.profit < 0 and clock.hour >= 20)", {"$or": [{"$gte": {"position__profit": 0}}, {"$lt": {"clock__hour": 20}}]}),
        ("not (position.profit < 0 or not clock.hour >= 20)", {"$and": [{"$gte": {"position__profit": 0}}, {"$gte": {"clock__hour": 20}}]}),
        ("position.profit < 0 and (clock.hour > 1 and clock.hour < 5)",
         {"$and": [{"$lt": {"position__profit": 0}}, {"$gt": {"clock__hour": 1}}, {"$lt": {"clock__hour": 5}}]}),
    ],
)
def test_conditions_compile_to_durable_expressions_with_negation_pushed_down(text, expected):
    assert compile_condition(cond(text)) == expected


def _evaluate(node, ctx) -> bool:
    """The meaning of a condition tree in Python: the reference for the compiled one."""
    if isinstance(node, Compare):
        v = ctx[node.field]
        return {"==": v == node.value, "!=": v != node.value, "<": v < node.value, "<=": v <= node.value,
                ">": v > node.value, ">=": v >= node.value}[node.op]
    if isinstance(node, In):
        return (ctx[node.field] in node.values) != node.negated
    if isinstance(node, Not):
        return not _evaluate(node.item, ctx)
    if isinstance(node, AllOf):
        return all(_evaluate(i, ctx) for i in node.items)
    return any(_evaluate(i, ctx) for i in node.items)


def _random_tree(rng: random.Random, depth: int):
    if depth == 0 or rng.random() < 0.3:
        kind = rng.choice(["num", "hour", "day", "in"])
        if kind == "num":
            return Compare("portfolio.drawdown", rng.choice(["<", "<=", ">", ">=", "==", "!="]), rng.choice([0.0, 0.05, 0.1]))
        if kind == "hour":
            return Compare("clock.hour", rng.choice(["<", "<=", ">", ">=", "==", "!="]), rng.choice([0, 12, 23]))
        if kind == "day":
            return Compare("clock.weekday", rng.choice(["==", "!="]), rng.choice(["mon", "fri"]))
        return In("clock.weekday", tuple(rng.sample(["mon", "tue", "fri"], 2)), rng.random() < 0.5)
    items = tuple(_random_tree(rng, depth - 1) for _ in range(rng.randint(2, 3)))
    node = rng.choice([AllOf, AnyOf])(items)
    return Not(node) if rng.random() < 0.4 else node


def test_compiled_conditions_fire_exactly_when_the_python_meaning_holds(shipped):
    rng = random.Random(7)
    contexts = [
        {"portfolio.drawdown": d, "clock.hour": h, "clock.weekday": w}
        for d, h, w in itertools.product([0.0, 0.05, 0.1, 0.2], [0, 12, 23], ["mon", "tue", "fri"])
    ]
    trees = [_random_tree(rng, 3) for _ in range(12)]
    rules = PortfolioRules()
    for i, tree in enumerate(trees):
        version = rules.load(constructed(shipped, tree, name=f"r{i}", version=f"rv-tree{i}"))
        before = False
        for ctx in contexts:
            fired = rules.post_portfolio(version, ctx)
            now = _evaluate(tree, ctx)
            # a portfolio rule fires when its condition starts to hold; the latch re-arms when it stops
            assert bool(fired) == (now and not before), (tree.text(), ctx)
            before = now


# --- guards ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_number_is_refused_naming_the_rule(shipped, value):
    with pytest.raises(RulesCompileError, match=r"rule 'bad-number'.*finite"):
        compile_ruleset(constructed(shipped, Compare("portfolio.drawdown", ">=", value), name="bad-number"))


def test_an_operator_outside_the_grammar_is_refused_naming_the_rule(shipped):
    with pytest.raises(RulesCompileError, match=r"rule 'regex'.*unknown operator '=~'"):
        compile_ruleset(constructed(shipped, Compare("position.symbol", "=~", "EUR.*"), name="regex"))


def test_more_rules_than_the_bound_are_refused(shipped):
    rules = [{"name": f"r{i}", "when": f"portfolio.drawdown >= {i / 1000}", "then": [{"alert": "a"}]} for i in range(MAX_RULES)]
    from engine.config.models import CustomRule

    many = CustomRules.model_construct(rules=[CustomRule.model_validate(r) for r in rules])
    with pytest.raises(RulesCompileError, match=r"at most .* enabled custom rules"):
        compile_ruleset(dataclasses.replace(shipped, custom=many, version="rv-many"))


def test_a_rule_with_too_many_comparisons_is_refused(shipped):
    tree = AllOf(tuple(Compare("portfolio.drawdown", ">=", i / 1000) for i in range(257)))
    with pytest.raises(RulesCompileError, match=r"rule 'long'.*at most 256 comparisons, found 257"):
        compile_ruleset(constructed(shipped, tree, name="long"))


def test_conditions_nested_too_deeply_are_refused_before_durable_fails_with_113(shipped):
    tree = Compare("clock.hour", "==", 1)
    for i in range(12):
        tree = (AnyOf if i % 2 else AllOf)((tree, Compare("clock.hour", "!=", i + 2)))
    with pytest.raises(RulesCompileError, match=r"rule 'deep'.*nested at most 10 deep"):
        compile_ruleset(constructed(shipped, tree, name="deep"))


@pytest.mark.parametrize(
    "tree",
    [
        In("position.symbol", tuple(f"S{i}" for i in range(300))),
        # 9 groups of 2: only 18 comparisons, but 512 alternatives once expanded
        AllOf(tuple(AnyOf((Compare("clock.hour", "==", i), Compare("clock.minute", "==", i))) for i in range(9))),
    ],
    ids=["long-in-list", "product-of-any-groups"],
)
def test_a_rule_that_expands_past_the_freeze_bound_is_refused_naming_it(shipped, tree):
    with pytest.raises(RulesCompileError, match=r"rule 'wide'.*alternatives"):
        compile_ruleset(constructed(shipped, tree, name="wide"))


def test_rules_that_expand_past_the_freeze_bound_together_are_refused(shipped):
    rules = [
        {"name": f"w{j}", "when": "position.symbol in [" + ", ".join(f"'S{j}_{i}'" for i in range(200)) + "]", "then": [{"alert": "a"}]}
        for j in range(3)
    ]
    with pytest.raises(RulesCompileError, match=r"rule 'w2'.*together"):
        compile_ruleset(with_custom(shipped, rules))


def test_alternatives_count_the_terms_of_the_disjunctive_normal_form():
    expr = compile_condition(cond("(clock.hour == 1 or clock.hour == 2) and clock.weekday in ['mon', 'tue', 'fri']"))
    assert branches(expr) == 6


def test_rules_at_the_bound_compile_in_durable_without_freezing(shipped):
    per_rule = (MAX_BRANCHES - 12) // 2  # the system rules take 12 alternatives
    rules = [
        {"name": f"w{j}", "when": "position.symbol in [" + ", ".join(f"'S{j}_{i}'" for i in range(per_rule)) + "]",
         "then": [{"alert": "a"}]}
        for j in range(2)
    ]
    check_compiles(compile_ruleset(with_custom(shipped, rules)), timeout=10)


# --- check_compiles --------------------------------------------------------------------------------


def test_check_compiles_accepts_the_shipped_rules(shipped):
    check_compiles(compile_ruleset(shipped), timeout=10)


def test_check_compiles_explains_durables_code_for_an_unknown_operator():
    definition = {"rs": {"r": {"all": [{"m": {"$foo": {"volume": 1}}}], "run": "x"}}}
    with pytest.raises(RulesCompileError, match=r"code 202: unrecognised JSON: an unknown operator"):
        check_compiles(definition, timeout=10)


def test_check_compiles_refuses_an_unknown_operator_that_durable_accepts_silently():
    definition = {"rs": {"r": {"all": [{"m": {"$regex": {"symbol": "EUR.*"}}}], "run": "x"}}}
    with pytest.raises(RulesCompileError, match=r"unknown operator\(s\) '\$regex'"):
        check_compiles(definition, timeout=10)


def test_check_compiles_explains_durables_code_for_an_unknown_key():
    definition = {"rs": {"r": {"all": [{"m": {"t": "x"}}], "salience": 3, "run": "x"}}}
    with pytest.raises(RulesCompileError, match=r"code 105: an unknown key"):
        check_compiles(definition, timeout=10)


def test_check_compiles_explains_durables_code_for_nesting_too_deep():
    expr: dict = {"f": 0}
    for i in range(20):
        expr = {"$or" if i % 2 else "$and": [expr, {f"g{i}": i}]}
    with pytest.raises(RulesCompileError, match=r"code 113"):
        check_compiles({"rs": {"r": {"all": [{"m": expr}], "run": "x"}}}, timeout=10)


def test_check_compiles_refuses_non_finite_numbers_that_durable_would_accept_silently():
    definition = {"rs": {"r": {"all": [{"m": {"$lt": {"f": float("nan")}}}], "run": "x"}}}
    with pytest.raises(RulesCompileError, match="finite"):
        check_compiles(definition, timeout=10)


def test_check_compiles_stops_a_freezing_definition_within_the_timeout():
    definition = {"rs": {"r": {"all": [{"m": {"$or": [{"f": i} for i in range(513)]}}], "run": "x"}}}
    start = time.monotonic()
    with pytest.raises(RulesCompileError, match=r"did not finish .* within 1 s"):
        check_compiles(definition, timeout=1.0)
    assert time.monotonic() - start < 5


def test_load_with_check_refuses_in_the_child_before_the_live_host_sees_it(shipped, monkeypatch):
    import engine.rules.chaining as chaining

    def bad_compile(rules):
        return {ruleset_name(rules.version): {"r": {"all": [{"m": {"$or": [{"f": i} for i in range(513)]}}], "run": "x"}}}

    monkeypatch.setattr(chaining, "compile_ruleset", bad_compile)
    rules = PortfolioRules()
    with pytest.raises(RulesCompileError, match="did not finish"):
        rules.load(shipped, check=True, timeout=1.0)
    assert rules.versions == ()


# --- the warm checker (reloads) ------------------------------------------------------------------------


def test_the_warm_checker_gives_the_cold_checks_answers_and_survives_a_freeze(shipped):
    from engine.rules.compile import WarmChecker

    checker = WarmChecker()
    try:
        check_compiles(compile_ruleset(shipped), 10, checker)
        with pytest.raises(RulesCompileError, match=r"code 105: an unknown key"):
            check_compiles({"rs": {"r": {"all": [{"m": {"t": "x"}}], "salience": 3, "run": "x"}}}, 10, checker)
        with pytest.raises(RulesCompileError, match=r"unknown operator\(s\) '\$regex'"):
            check_compiles({"rs": {"r": {"all": [{"m": {"$regex": {"symbol": "EUR.*"}}}], "run": "x"}}}, 10, checker)
        frozen = {"rs": {"r": {"all": [{"m": {"$or": [{"f": i} for i in range(513)]}}], "run": "x"}}}
        start = time.monotonic()
        with pytest.raises(RulesCompileError, match=r"did not finish .* within 1 s"):
            check_compiles(frozen, 1.0, checker)
        assert time.monotonic() - start < 5
        start = time.monotonic()
        for _ in range(20):  # a new child after the freeze; the same definition checked again and again
            check_compiles(compile_ruleset(shipped), 10, checker)
        assert (time.monotonic() - start) / 20 < 0.1  # warm: no Python start-up per check
    finally:
        checker.close()
