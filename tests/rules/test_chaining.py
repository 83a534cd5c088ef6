"""The portfolio layer on durable-rules: breach → halt → rejection, custom rules with latches, versions, failures."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from engine.config.load import load_config
from engine.config.models import CustomRules, Limits
from engine.rules.chaining import Fired, PortfolioRules, RulesRuntimeError
from tests.conftest import edit

ROOT = Path(__file__).resolve().parents[2]
DAY1, DAY2 = "2026-11-02", "2026-11-03"
LOSING_TREND = {
    "position.id": "t1", "position.strategy_type": "trend_following", "position.profit": -0.02,
    "clock.weekday": "fri", "clock.hour": 21, "ts": 1_000,
}


@pytest.fixture(scope="module")
def shipped():
    return load_config(str(ROOT))


@pytest.fixture
def rules():
    return PortfolioRules()


def with_custom(ruleset, custom: list[dict], version: str = "rv-custom"):
    return dataclasses.replace(ruleset, custom=CustomRules.model_validate({"rules": custom}), version=version)


def proposal(pid: str, *reasons: str) -> dict:
    return {"id": pid, "strategy": "arbitrage", "reasons": list(reasons)}


# --- daily loss → halt → rejection -----------------------------------------------------------------


def test_daily_loss_breach_halts_and_the_next_proposal_is_rejected_with_the_breach_reason(rules, shipped):
    v = rules.load(shipped)
    assert rules.post_proposal(v, proposal("p1")) == []  # accepted while trading
    assert rules.post_daily_pnl(v, DAY1, -1_000.0, -0.01, 1) == []
    fired = rules.post_daily_pnl(v, DAY1, -2_130.0, -0.0213, 2)
    reason = "daily loss -2.13% breached the limit of 2%"
    assert [(f.rule, f.type) for f in fired] == [("daily_loss", "halt_new_positions"), ("daily_loss", "close_all"), ("daily_loss", "alert")]
    assert all(f.reason == reason for f in fired)
    assert fired[2].params == {"message": reason, "level": "critical"}
    # the halt is a fact in durable-rules, and the rejection reads it
    assert {"t": "halt", "source": "daily_loss", "day": DAY1, "reason": reason} in rules.facts(v)
    assert rules.halted(v) == reason
    (reject,) = rules.post_proposal(v, proposal("p2"))
    assert reject == Fired("halt", "reject_position", "p2", "arbitrage", {"reasons": [reason]}, reason)


def test_the_limit_itself_breaches(rules, shipped):
    v = rules.load(shipped)
    assert rules.post_daily_pnl(v, DAY1, -2_000.0, -0.02, 1) != []


def test_breach_fires_once_per_day_and_reset_day_rearms_it(rules, shipped):
    v = rules.load(shipped)
    assert len(rules.post_daily_pnl(v, DAY1, -2_500.0, -0.025, 1)) == 3
    assert rules.post_daily_pnl(v, DAY1, -2_600.0, -0.026, 2) == []
    assert rules.post_daily_pnl(v, DAY1, -2_600.0, -0.026, 2) == []  # the same event again: observed, not an error
    rules.reset_day(v, DAY2)
    assert rules.halted(v) is None
    assert rules.post_proposal(v, proposal("p1")) == []
    assert len(rules.post_daily_pnl(v, DAY2, -3_000.0, -0.03, 3)) == 3
    assert rules.halted(v) is not None


def test_on_breach_actions_follow_the_configured_order_and_without_halt_proposals_pass(rules, shipped):
    limits = Limits.model_validate({"daily_loss": {"max": 0.03, "on_breach": ["alert", "close_all"]}})
    v = rules.load(dataclasses.replace(shipped, limits=limits, version="rv-nohalt"))
    assert rules.post_daily_pnl(v, DAY1, -2_500.0, -0.025, 1) == []  # within 3 %
    fired = rules.post_daily_pnl(v, DAY1, -3_100.0, -0.031, 2)
    assert [f.type for f in fired] == ["alert", "close_all"]
    assert rules.halted(v) is None
    assert rules.post_proposal(v, proposal("p1")) == []


def test_failed_checks_and_a_halt_give_one_reject_with_every_reason(rules, shipped):
    v = rules.load(shipped)
    (only_checks,) = rules.post_proposal(v, proposal("p1", "max positions reached (5/5)", "size 0.20 > 0.15"))
    assert (only_checks.rule, only_checks.params["reasons"]) == ("pre_trade", ["max positions reached (5/5)", "size 0.20 > 0.15"])
    rules.post_daily_pnl(v, DAY1, -2_500.0, -0.025, 1)
    fired = rules.post_proposal(v, proposal("p2", "correlation 0.81 > 0.70"))
    assert len(fired) == 1
    assert fired[0].params["reasons"] == ["daily loss -2.50% breached the limit of 2%", "correlation 0.81 > 0.70"]
    assert fired[0].reason == "daily loss -2.50% breached the limit of 2%; correlation 0.81 > 0.70"


def test_a_reproposed_position_id_is_judged_again(rules, shipped):
    v = rules.load(shipped)
    assert rules.post_proposal(v, proposal("p1", "size too large")) != []
    assert rules.post_proposal(v, proposal("p1")) == []


# --- custom rules ----------------------------------------------------------------------------------


def test_a_custom_rule_added_to_custom_yaml_takes_effect_and_fires_once_per_position(rules, config_copy):
    edit(config_copy / "rules" / "custom.yaml", "rules:\n", (
        "rules:\n"
        "  - name: warn-on-loss\n"
        "    when: position.profit <= -0.01\n"
        "    then:\n"
        "      - alert: {message: \"position down 1 %\", level: info}\n"
    ))
    v = rules.load(load_config(str(config_copy)))
    ctx = {"position.id": "a", "position.strategy_type": "arbitrage", "position.profit": -0.005, "ts": 1}
    assert rules.post_position(v, ctx) == []
    (alert,) = rules.post_position(v, {**ctx, "position.profit": -0.011})
    assert alert == Fired("custom:warn-on-loss", "alert", "a", "arbitrage", {"message": "position down 1 %", "level": "info"},
                          "position down 1 %")
    assert rules.post_position(v, {**ctx, "position.profit": -0.02}) == []  # latched for position a
    assert [f.position_id for f in rules.post_position(v, {**ctx, "position.id": "b", "position.profit": -0.02})] == ["b"]
    rules.forget_position(v, "a")
    assert [f.position_id for f in rules.post_position(v, {**ctx, "position.profit": -0.02})] == ["a"]


def test_the_shipped_weekend_rule_closes_then_alerts_once(rules, shipped):
    v = rules.load(shipped)
    assert rules.post_position(v, {**LOSING_TREND, "clock.hour": 19}) == []
    fired = rules.post_position(v, LOSING_TREND)
    assert [(f.type, f.params) for f in fired] == [
        ("close", {"fraction": 1.0}), ("alert", {"message": "closed losing trend position before the weekend", "level": "warning"})]
    assert {f.rule for f in fired} == {"custom:flatten-losing-trend-before-weekend"}
    assert rules.post_position(v, LOSING_TREND) == []


def test_several_custom_rules_fire_on_one_context_by_priority(rules, shipped):
    v = rules.load(with_custom(shipped, [
        {"name": "low", "priority": 1, "when": "position.profit < 0", "then": [{"alert": "low"}]},
        {"name": "high", "priority": 9, "when": "position.profit < 0", "then": [{"set_stop_loss": {"profit": 0.0}}]},
    ]))
    fired = rules.post_position(v, {"position.id": "x", "position.profit": -0.1})
    assert [(f.rule, f.type) for f in fired] == [("custom:high", "set_stop_loss"), ("custom:low", "alert")]
    assert fired[0].params == {"profit": 0.0}


def test_a_custom_halt_chains_into_rejections_and_resume_lifts_it(rules, shipped):
    v = rules.load(with_custom(shipped, [
        {"name": "halt-deep", "when": "portfolio.drawdown >= 0.05", "then": [{"halt_new_positions": {"reason": "drawdown above 5 %"}}]},
        {"name": "resume-ok", "when": "portfolio.drawdown < 0.02", "then": [{"resume": None}]},
    ]))
    assert [f.type for f in rules.post_portfolio(v, {"portfolio.drawdown": 0.06})] == ["halt_new_positions"]
    (reject,) = rules.post_proposal(v, proposal("p1", "size 0.2 > 0.15"))
    assert reject.params["reasons"] == ["drawdown above 5 %", "size 0.2 > 0.15"]
    assert [f.type for f in rules.post_portfolio(v, {"portfolio.drawdown": 0.01})] == ["resume"]
    assert rules.halted(v) is None
    assert rules.post_proposal(v, proposal("p2")) == []


def test_resume_does_not_lift_the_daily_loss_halt(rules, shipped):
    v = rules.load(with_custom(shipped, [{"name": "resume-ok", "when": "portfolio.drawdown < 0.02", "then": [{"resume": None}]}]))
    rules.post_daily_pnl(v, DAY1, -2_500.0, -0.025, 1)
    assert [f.type for f in rules.post_portfolio(v, {"portfolio.drawdown": 0.01})] == ["resume"]
    assert rules.halted(v) == "daily loss -2.50% breached the limit of 2%"
    assert rules.post_proposal(v, proposal("p1"))[0].rule == "halt"


def test_a_portfolio_rule_fires_when_its_condition_starts_to_hold_and_rearms_when_it_stops(rules, shipped):
    v = rules.load(with_custom(shipped, [{"name": "deep", "when": "portfolio.drawdown >= 0.05", "then": [{"alert": "deep"}]}]))
    assert [f.type for f in rules.post_portfolio(v, {"portfolio.drawdown": 0.06})] == ["alert"]
    assert rules.post_portfolio(v, {"portfolio.drawdown": 0.07}) == []  # still holds: latched
    rules.reset_day(v, DAY2)
    assert rules.post_portfolio(v, {"portfolio.drawdown": 0.07}) == []  # a new day re-arms nothing
    assert rules.post_portfolio(v, {"portfolio.drawdown": 0.01}) == []  # stopped holding: re-armed
    assert [f.type for f in rules.post_portfolio(v, {"portfolio.drawdown": 0.05})] == ["alert"]


def test_portfolio_halted_is_read_from_the_halt_facts_never_from_the_context(rules, shipped):
    v = rules.load(shipped)  # halt-on-drawdown: portfolio.drawdown >= 0.05 and not portfolio.halted
    assert [f.type for f in rules.post_portfolio(v, {"portfolio.drawdown": 0.06})] == ["halt_new_positions", "alert"]
    assert rules.halted(v) == "portfolio drawdown above 5 %"
    assert rules.post_portfolio(v, {"portfolio.drawdown": 0.07, "portfolio.halted": False}) == []
    rules.reset_day(v, DAY2)
    assert rules.halted(v) == "portfolio drawdown above 5 %"  # a custom halt waits for resume


def test_a_field_missing_from_the_context_makes_the_rule_not_match(rules, shipped):
    v = rules.load(with_custom(shipped, [{"name": "n", "when": "not position.profit < 0", "then": [{"alert": "a"}]}]))
    assert rules.post_position(v, {"position.id": "x"}) == []
    assert rules.post_position(v, {"position.id": "x", "position.profit": 0.01}) != []


def test_an_unknown_context_field_is_an_error_with_the_closest_name(rules, shipped):
    v = rules.load(shipped)
    with pytest.raises(RulesRuntimeError, match=r"did you mean 'position.profit'"):
        rules.post_position(v, {"position.id": "x", "position.proft": 0.1})


# --- versions, resources ---------------------------------------------------------------------------


def test_two_rules_versions_loaded_side_by_side_behave_independently(rules, shipped):
    tight = dataclasses.replace(shipped, limits=Limits.model_validate({"daily_loss": {"max": 0.01}}), version="rv-tight")
    a, b = rules.load(shipped), rules.load(tight)
    assert rules.versions == (a, b)
    assert rules.post_daily_pnl(a, DAY1, -1_500.0, -0.015, 1) == []
    assert len(rules.post_daily_pnl(b, DAY1, -1_500.0, -0.015, 1)) == 3
    assert rules.post_proposal(a, proposal("p1")) == []
    assert rules.post_proposal(b, proposal("p1"))[0].params["reasons"] == ["daily loss -1.50% breached the limit of 1%"]
    rules.drop(b)
    assert rules.post_proposal(a, proposal("p2")) == []
    with pytest.raises(RulesRuntimeError, match="not loaded"):
        rules.post_proposal(b, proposal("p3"))


def test_load_is_idempotent_for_the_same_version(rules, shipped):
    v = rules.load(shipped)
    rules.post_daily_pnl(v, DAY1, -2_500.0, -0.025, 1)
    assert rules.load(shipped) == v
    assert rules.halted(v) is not None  # state kept


def test_a_thousand_load_drop_cycles_grow_neither_threads_nor_rulesets(rules, shipped):
    rules.load(shipped)
    threads, registered = threading.active_count(), len(rules._host._ruleset_directory)
    for i in range(1_000):
        v = rules.load(dataclasses.replace(shipped, version=f"rv-cycle{i}"))
        rules.post_daily_pnl(v, DAY1, -2_500.0, -0.025, i)
        rules.drop(v)
    assert threading.active_count() == threads
    assert len(rules._host._ruleset_directory) == registered
    assert len(rules._host.actions) == len({r["run"] for r in compile_rules(shipped).values()})


def compile_rules(ruleset) -> dict:
    from engine.rules.compile import compile_ruleset

    (rs,) = compile_ruleset(ruleset).values()
    return rs


def test_a_dropped_version_can_be_loaded_again_with_fresh_state(rules, shipped):
    v = rules.load(shipped)
    rules.post_daily_pnl(v, DAY1, -2_500.0, -0.025, 1)
    rules.drop(v)
    rules.load(shipped)
    assert rules.halted(v) is None


def test_ten_thousand_posts_leave_no_pending_events_and_a_bounded_number_of_facts(rules, shipped):
    v = rules.load(with_custom(shipped, [
        {"name": "warn", "when": "position.profit <= -0.01", "then": [{"alert": "down"}]},
        {"name": "deep", "when": "portfolio.drawdown >= 0.05", "then": [{"alert": "deep"}]},
    ]))
    for i in range(2_500):
        rules.post_position(v, {"position.id": f"p{i % 20}", "position.profit": -0.02 if i % 3 else 0.0, "ts": i})
        rules.post_portfolio(v, {"portfolio.drawdown": 0.06 if i % 2 else 0.0, "ts": i})
        rules.post_proposal(v, proposal(f"n{i}", *(["size"] if i % 2 else [])))
        rules.post_daily_pnl(v, DAY1 if i < 1_250 else DAY2, -10.0 * (i % 300), -(i % 300) / 10_000, i)
    assert rules.pending_events(v) == []
    kinds = [f["t"] for f in rules.facts(v)]
    assert kinds.count("latch") == 21  # 20 positions + the portfolio rule
    assert kinds.count("breach") == 2 and kinds.count("halt") == 2  # one per day
    assert set(kinds) == {"latch", "breach", "halt"}  # no context fact left behind


# --- failures --------------------------------------------------------------------------------------


def test_an_action_that_raises_surfaces_as_rules_runtime_error_naming_the_rule(rules, shipped, monkeypatch):
    import engine.rules.firing as firing

    real = firing.custom_action

    def flaky(*args):
        action = real(*args)

        def run(c):
            if c.m._d.get("position__id") == "boom":
                raise ValueError("broker map missing")
            action(c)
        return run

    monkeypatch.setattr(firing, "custom_action", flaky)
    v = rules.load(with_custom(shipped, [{"name": "warn", "when": "position.profit <= -0.01", "then": [{"alert": "down"}]}]))
    with pytest.raises(RulesRuntimeError, match=r"rule 'custom:warn' raised ValueError: broker map missing") as info:
        rules.post_position(v, {"position.id": "boom", "position.profit": -0.02})
    assert info.value.rule == "custom:warn"
    # reported once: the next post runs normally, and the failed context left nothing behind
    assert [f.position_id for f in rules.post_position(v, {"position.id": "ok", "position.profit": -0.02})] == ["ok"]
    assert [f["t"] for f in rules.facts(v)] == ["latch"]


def test_a_post_from_another_thread_is_refused(rules, shipped):
    v = rules.load(shipped)
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: _capture(errors, lambda: rules.post_proposal(v, proposal("p1"))))
    t.start()
    t.join()
    assert len(errors) == 1 and isinstance(errors[0], RulesRuntimeError)


def _capture(errors: list, fn) -> None:
    try:
        fn()
    except BaseException as exc:  # the test inspects it
        errors.append(exc)


def test_non_finite_pnl_is_refused(rules, shipped):
    v = rules.load(shipped)
    with pytest.raises(RulesRuntimeError, match="finite"):
        rules.post_daily_pnl(v, DAY1, float("nan"), float("nan"), 1)


def test_the_same_posts_in_the_same_order_give_the_same_fired_list(shipped):
    def run() -> list[Fired]:
        r = PortfolioRules()
        v = r.load(with_custom(shipped, [
            {"name": "a", "priority": 3, "when": "position.profit < 0", "then": [{"alert": "a"}, {"close": {"fraction": 0.5}}]},
            {"name": "b", "priority": 3, "when": "position.profit < -0.01", "then": [{"set_take_profit": {"profit": 0.01}}]},
            {"name": "h", "when": "portfolio.drawdown > 0.04", "then": [{"halt_new_positions": None}]},
        ]))
        out: list[Fired] = []
        for i in range(50):
            out += r.post_position(v, {"position.id": f"p{i % 7}", "position.profit": -0.001 * i})
            out += r.post_portfolio(v, {"portfolio.drawdown": 0.001 * i})
            out += r.post_proposal(v, proposal(f"n{i}", *(["x"] if i % 5 == 0 else [])))
            out += r.post_daily_pnl(v, DAY1, -50.0 * i, -0.0005 * i, i)
        return out

    first = run()
    assert len(first) > 30 and {f.rule for f in first} >= {"custom:a", "custom:b", "custom:h", "daily_loss", "halt", "pre_trade"}
    assert first == run()


def test_a_breach_on_a_new_day_fires_even_without_a_reset(rules, shipped):
    v = rules.load(shipped)
    assert len(rules.post_daily_pnl(v, DAY1, -2_500.0, -0.025, 1)) == 3
    fired = rules.post_daily_pnl(v, DAY2, -2_100.0, -0.021, 2)
    assert [f.type for f in fired] == ["halt_new_positions", "close_all", "alert"]
    assert [f["day"] for f in rules.facts(v) if f["t"] == "breach"] == [DAY1, DAY2]
