"""The condition grammar: typed trees, precedence, and errors located inside the expression."""

from __future__ import annotations

import pytest

from engine.config.conditions import (
    AllOf,
    AnyOf,
    Compare,
    In,
    Not,
    fields_of,
    parse_condition,
    parse_expression,
)


def tree(text: str):
    cond, errors = parse_expression(text)
    assert errors == [], errors
    return cond


def test_comparison_parses_to_field_operator_literal() -> None:
    assert tree("position.profit <= -0.01") == Compare("position.profit", "<=", -0.01)
    assert tree('position.strategy_type == "trend_following"') == Compare("position.strategy_type", "==", "trend_following")
    assert tree("clock.hour >= 20") == Compare("clock.hour", ">=", 20)


def test_literal_on_the_left_flips_the_operator() -> None:
    assert tree("-0.005 < portfolio.daily_return") == Compare("portfolio.daily_return", ">", -0.005)


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    a, b, c = Compare("clock.hour", ">=", 20), Compare("clock.minute", "<", 5), Compare("tick.bid", ">", 1)
    assert tree("clock.hour >= 20 or clock.minute < 5 and tick.bid > 1") == AnyOf((a, AllOf((b, c))))
    assert tree("(clock.hour >= 20 or clock.minute < 5) and tick.bid > 1") == AllOf((AnyOf((a, b)), c))


def test_not_bare_boolean_and_membership() -> None:
    assert tree("not portfolio.halted") == Not(Compare("portfolio.halted", "==", True))
    assert tree('clock.weekday not in ["sat", "sun"]') == In("clock.weekday", ("sat", "sun"), negated=True)


def test_equal_meaning_gives_equal_trees_and_text() -> None:
    one = tree("(a.b == 1)".replace("a.b", "clock.hour"))
    assert one == tree("clock.hour == 1")
    nested, _ = parse_condition({"all": ["clock.hour == 1", {"all": ["clock.minute == 2"]}]})
    flat = tree("clock.hour == 1 and clock.minute == 2")
    assert nested == flat
    assert nested.text() == flat.text()


@pytest.mark.parametrize(
    ("text", "offset", "message"),
    [
        ("position.proft > 0", 0, "unknown field 'position.proft'; did you mean 'position.profit'?"),
        ("position.profit == \"x\"", 19, "type mismatch: position.profit is a number"),
        ("position.side == 'flat'", 17, "expected one of 'long', 'short'"),
        ("portfolio.halted > true", 19, "expected '==' or '!='"),
        ("position.symbol < \"EURUSD\"", 18, "expected '==', '!=' or 'in'"),
        ("clock.hour >= 20 and and", 21, "expected a field, a literal"),
        ("clock.hour >=", 13, "expected a literal"),
        ("clock.hour >= 20)", 16, "expected 'and', 'or' or the end"),
        ("clock.hour >= 2 0", 16, "expected 'and', 'or' or the end"),
        ("clock.hour ~ 3", 11, "expected a field, a literal or an operator, found '~'"),
        ("profit > 0", 0, "unknown name 'profit'"),
        ("position.profit", 15, "expected a comparison after position.profit"),
        ("", 0, "expected a condition, found an empty string"),
        ("__import__('os').system('x')", 16, "expected a field, a literal or an operator"),
        ("clock.hour == 1e999", 14, "expected a finite number"),
    ],
)
def test_errors_name_the_offset_of_the_offending_token(text: str, offset: int, message: str) -> None:
    cond, errors = parse_expression(text)
    assert cond is None
    assert errors, text
    assert errors[0].offset == offset, errors
    assert message in errors[0].message


def test_every_type_error_of_one_expression_is_reported() -> None:
    _, errors = parse_expression('position.proft > 0 and position.profit == "x" and tick.bidd > 1')
    assert [e.offset for e in errors] == [0, 42, 50]


def test_structured_condition_errors_carry_their_subpath() -> None:
    _, errors = parse_condition({"any": ["clock.hour > 1", {"not": "tick.bidd > 1"}]})
    assert [(path, e.offset) for path, e in errors] == [(("any", 1, "not"), 0)]


def test_fields_of_lists_every_field_read() -> None:
    cond = tree('position.profit < 0 and (clock.weekday == "fri" or not portfolio.halted)')
    assert fields_of(cond) == {"position.profit", "clock.weekday", "portfolio.halted"}


def test_every_condition_field_is_documented() -> None:
    from engine.config.conditions import FIELDS
    from tests.conftest import ROOT

    doc = (ROOT / "docs" / "rules.md").read_text()
    missing = [f for f in FIELDS if f"`{f}`" not in doc]
    assert missing == []
