"""Running cases: strict and lenient matching, tolerances, overrides, skips and readable failures."""

from __future__ import annotations

from pathlib import Path

from engine.config import RuleSet
from engine.ruletest import render_text
from engine.ruletest.models import Case
from engine.ruletest.runner import without_quote_checks
from tests.ruletest.conftest import run_text

# arbitrage long at 1.1000: default stop 1.0945, target 1.1110; trailing 0.2 % arms at +0.5 %
LONG = """\
    tests:
      - name: {name}
        strategy: arbitrage
        {extra}
        positions: [{{id: p1, side: long, entry: 1.1000, volume: 0.1, stop_loss: 1.0945, take_profit: 1.1110}}]
        ticks: [1.1030, 1.1045, 1.1040]
        expect:
{expect}
    """


def case(name: str, expect: str, extra: str = "") -> str:
    return LONG.format(name=name, extra=extra or "symbol: EURUSD", expect=expect)


def test_strict_case_fails_on_an_action_it_does_not_expect(tmp_path: Path, shipped_rules: RuleSet) -> None:
    # tick 2: +0.41 %, nothing; a move to 1.1060 (+0.545 %) would take level 1: here nothing fires at all
    results = run_text(tmp_path, shipped_rules, """\
        tests:
          - name: unexpected level
            strategy: arbitrage
            positions: [{id: p1, side: long, entry: 1.1000, volume: 0.1, stop_loss: 1.0945, take_profit: 1.1110}]
            ticks: [1.1030, 1.1060]
            expect:
              - {at: 2, type: close_partial, position: p1, rule: exit_levels.0, volume: 0.02}
              - {at: 2, type: set_stop_loss, position: p1, rule: exit_levels.0, stop_loss: 1.1022}
        """)
    (r,) = results
    assert not r.passed
    assert [(m.at, m.kind, m.actual.rule) for m in r.mismatches] == [(2, "unexpected", "trailing")]
    text = render_text(results)
    assert "FAIL " in text and "tick 2 (bid 1.106, ask 1.106): unexpected set_stop_loss p1 stop_loss 1.10379 (rule trailing: " in text
    assert text.splitlines()[-1] == "0 passed, 1 failed"


def test_lenient_case_checks_only_the_listed_actions(tmp_path: Path, shipped_rules: RuleSet) -> None:
    results = run_text(tmp_path, shipped_rules, """\
        tests:
          - name: only the partial close matters
            strategy: arbitrage
            strict: false
            positions: [{id: p1, side: long, entry: 1.1000, volume: 0.1}]
            ticks: [1.1030, 1.1060]
            expect:
              - {at: 2, type: close_partial, position: p1, fraction: 0.2}
        """)
    assert results[0].passed, render_text(results)


def test_lock_profit_need_not_be_expected_but_is_checked_when_it_is(tmp_path: Path, shipped_rules: RuleSet) -> None:
    # take profit at 1.1115 closes 0.1 lot: (1.1115 - 1.1000) x 0.1 x 100 000 = 115 USD realized,
    # split 0.5 / 0.3 / 0.2 by rules/profit.yaml
    text = """\
        tests:
          - name: target with profit locking
            strategy: arbitrage
            positions: [{id: p1, side: long, entry: 1.1000, volume: 0.1, stop_loss: 1.0945, take_profit: 1.1110}]
            ticks: [1.1115]
            expect:
              - {at: 1, type: close, position: p1, rule: take_profit}
        """
    assert run_text(tmp_path, shipped_rules, text)[0].passed
    with_lock = text.rstrip(" ") + "              - {at: 1, type: lock_profit, position: p1, rule: profit_locking}\n"
    assert run_text(tmp_path, shipped_rules, with_lock)[0].passed
    wrong_tick = text.rstrip(" ") + "              - {at: 0, type: lock_profit, position: p1}\n"
    (r,) = run_text(tmp_path, shipped_rules, wrong_tick)
    assert [(m.at, m.kind) for m in r.mismatches] == [(0, "missing")]


def test_numbers_are_compared_with_a_relative_tolerance(tmp_path: Path, shipped_rules: RuleSet) -> None:
    # stop loss at 1.0940: the fill is the bid, 1.0940
    base = """\
        tests:
          - name: stop fill
            strategy: arbitrage
            {tolerance}
            positions: [{{id: p1, side: long, entry: 1.1000, volume: 0.1, stop_loss: 1.0945, take_profit: 1.1110}}]
            ticks: [1.0940]
            expect:
              - {{at: 1, type: close, position: p1, price: {price}}}
        """
    assert run_text(tmp_path, shipped_rules, base.format(tolerance="spread: 0", price="1.09400000001"))[0].passed
    (r,) = run_text(tmp_path, shipped_rules, base.format(tolerance="spread: 0", price="1.0941"))
    assert not r.passed and "expected close p1 price 1.0941" in render_text([r])
    assert "actual   close p1 price 1.094 (rule stop_loss: stop 1.0945 reached: bid 1.094)" in render_text([r])
    assert run_text(tmp_path, shipped_rules, base.format(tolerance="tolerance: 0.001", price="1.0941"))[0].passed


def test_strategy_override_changes_what_the_case_sees(tmp_path: Path, shipped_rules: RuleSet) -> None:
    # trailing_distance 0.003 instead of 0.002: after tick 2 (bid 1.1060, +0.545 %) the stop trails
    # to 1.1060 x 0.997 = 1.102682, up to the tick 1.10269 (above the level stop 1.1 x 1.002 = 1.1022); the level
    # closes 25 % of 0.1 on the 0.01 lot step: 0.02
    results = run_text(tmp_path, shipped_rules, """\
        tests:
          - name: wider trailing distance
            strategy: arbitrage
            overrides: {trailing: {trailing_distance: 0.003}}
            positions: [{id: p1, side: long, entry: 1.1000, volume: 0.1, stop_loss: 1.0945, take_profit: 1.1110}]
            ticks: [1.1030, 1.1060]
            expect:
              - {at: 2, type: close_partial, position: p1, rule: exit_levels.0, volume: 0.02}
              - {at: 2, type: set_stop_loss, position: p1, rule: exit_levels.0, stop_loss: 1.1022}
              - {at: 2, type: set_stop_loss, position: p1, rule: trailing, stop_loss: 1.10269}
        """)
    assert results[0].passed, render_text(results)


def test_limits_override_breaches_the_daily_loss_and_rejects_the_next_proposal(tmp_path: Path, shipped_rules: RuleSet) -> None:
    # daily loss limit 0.005 % of 100 000 = 5 USD; long 0.1 lot (10 000 EUR) from 1.1000 at bid 1.0990
    # loses 0.0010 x 10 000 = 10 USD: breach, halt, close_all at the bid, alert; then p2 is rejected
    results = run_text(tmp_path, shipped_rules, """\
        tests:
          - name: small daily loss limit
            strategy: arbitrage
            overrides: {limits: {daily_loss: {max: 0.00005}}}
            positions:
              - {id: p1, side: long, entry: 1.1000, volume: 0.1, stop_loss: 1.0945, take_profit: 1.1110}
              - {id: p2, side: long, entry: 1.0990, volume: 0.1, stop_loss: 1.0935, take_profit: 1.1100, at: 1}
            ticks: [1.0990, 1.0995]
            expect:
              - {at: 1, type: halt_new_positions, rule: daily_loss}
              - {at: 1, type: close_all, rule: daily_loss, position: p1, price: 1.0990, volume: 0.1}
              - {at: 1, type: alert, rule: daily_loss}
              - {at: 1, type: reject_position, position: p2, rule: halt, reason: "breached the limit of 0.005%"}
        """)
    assert results[0].passed, render_text(results)


def test_skipped_case_is_reported_with_its_reason_and_not_run(tmp_path: Path, shipped_rules: RuleSet) -> None:
    results = run_text(tmp_path, shipped_rules, """\
        tests:
          - name: waits for a fix
            strategy: arbitrage
            skip: "engine issue 12"
            positions: [{id: p1, side: long, entry: 1.1000, volume: 0.1}]
            ticks: [1.1]
            expect:
              - {at: 1, type: close, position: p1}
        """)
    assert results[0].skipped == "engine issue 12" and results[0].actions == []
    text = render_text(results)
    assert "SKIP " in text and "(engine issue 12)" in text and text.splitlines()[-1] == "0 passed, 0 failed, 1 skipped"


def test_a_missed_expectation_shows_nothing_happened_at_that_tick(tmp_path: Path, shipped_rules: RuleSet) -> None:
    results = run_text(tmp_path, shipped_rules, """\
        tests:
          - name: stop expected too early
            strategy: arbitrage
            positions: [{id: p1, side: long, entry: 1.1000, volume: 0.1, stop_loss: 1.0945, take_profit: 1.1110}]
            ticks: [1.0950, 1.0940]
            expect:
              - {at: 1, type: close, position: p1, rule: stop_loss}
              - {at: 2, type: close, position: p1, rule: stop_loss}
        """)
    text = render_text(results)
    assert "  tick 1 (bid 1.095, ask 1.095)\n    expected close p1 (rule stop_loss)\n    actual   nothing of this kind at this tick" in text
    assert "tick 2" not in text


def test_quote_checks_are_off_in_a_case_unless_its_limits_override_sets_them(shipped_rules: RuleSet) -> None:
    def limits(overrides: dict) -> tuple:
        case = Case.model_validate({"name": "c", "strategy": "arbitrage", "overrides": overrides,
                                    "positions": [{"id": "p1", "side": "long", "entry": 1.1, "volume": 0.1}], "ticks": [1.1]})
        lim = without_quote_checks(shipped_rules, case).limits
        return lim.max_quote_age, lim.max_entry_deviation

    assert shipped_rules.limits.max_quote_age == 60_000  # the shipped rules are left as they are
    assert limits({}) == (None, None)
    assert limits({"limits": {"daily_loss": {"max": 0.005}}}) == (None, None)
    age, deviation = limits({"limits": {"max_quote_age": "30s"}})
    assert age == 60_000 and deviation is None  # the override itself is merged when the case is loaded
