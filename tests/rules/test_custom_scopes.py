"""Custom rules at their scopes, chaining through facts on one event, and the desk's own facts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config, validate_text
from engine.config.load import rules_version
from engine.config.models import CustomRules
from engine.events import PositionOpened, Tick
from engine.rules import state
from engine.rules.chaining import PortfolioRules
from engine.rules.desk_facts import MAX_REFIRES
from engine.rules.evaluator import Engine

ROOT = Path(__file__).resolve().parents[2]
T = 1_709_546_400_000  # 2024-03-04 10:00:00 UTC, a Monday
MIN = 60_000
COOLDOWN = {"cooldown": {"blocks": "proposals"}}
STOP_OUTS = {"name": "cooldown", "when": "strategy.stop_outs_1h >= 3",
             "then": [{"assert": {"fact": "cooldown", "strategy": "{strategy.name}", "for": "30m", "reason": "3 stop-outs"}}]}


@pytest.fixture(scope="module")
def shipped():
    return load_config(str(ROOT))


def with_custom(ruleset, rules: list[dict], facts: dict | None = None):
    custom = CustomRules.model_validate({"facts": facts or {}, "rules": rules})
    changed = dataclasses.replace(ruleset, custom=custom)
    return dataclasses.replace(changed, version=rules_version(changed))


# --- scopes ---------------------------------------------------------------------------------------


def test_a_strategy_only_rule_fires_on_the_first_tick_that_satisfies_it(shipped):
    rules = with_custom(shipped, [{"name": "strategy-loss", "when": "strategy.daily_return <= -0.01",
                                   "then": [{"alert": "strategy down 1 % today"}]}])
    engine = Engine(rules, broker=PaperBroker())
    engine.process(Tick(T, "EURUSD", 1.1000, 1.1000))
    engine.process(PositionOpened(T + 1, "p1", "EURUSD", "trend_following", "tf", 1, 0.13, 1.1000, 1.0000, 1.3000))
    # 0.13 lot = 13 000 EUR: 1.0400 loses 780 USD (0.78 % of 100 000), 1.0200 loses 1 040 (1.04 %)
    assert engine.process(Tick(T + MIN, "EURUSD", 1.0400, 1.0400)) == []
    out = engine.process(Tick(T + 2 * MIN, "EURUSD", 1.0200, 1.0200))
    assert [(a.type, a.rule, a.strategy) for a in out] == [("alert", "custom:strategy-loss", "trend_following")]
    assert engine.process(Tick(T + 3 * MIN, "EURUSD", 1.0100, 1.0100)) == []  # still holds: fired once


def test_a_rule_reading_portfolio_halted_acts_on_the_event_that_halted(shipped):
    rules = PortfolioRules()
    v = rules.load(with_custom(shipped, [
        {"name": "halt", "priority": 20, "when": "portfolio.drawdown >= 0.05 and not portfolio.halted",
         "then": [{"halt_new_positions": {"reason": "drawdown"}}]},
        {"name": "tell", "when": "portfolio.halted", "then": [{"alert": "halted"}]},
    ]))
    fired = rules.post_portfolio(v, {"portfolio.drawdown": 0.06, "ts": T})
    assert [(f.rule, f.type) for f in fired] == [("custom:halt", "halt_new_positions"), ("custom:tell", "alert")]


def test_the_daily_loss_halt_is_read_by_a_custom_rule_on_the_same_tick(shipped):
    rules = with_custom(shipped, [{"name": "tell", "when": "portfolio.halted", "then": [{"alert": "halted"}]}])
    engine = Engine(rules, broker=PaperBroker())
    engine.process(Tick(T, "EURUSD", 1.1000, 1.1000))
    # trend_following's capital, 20 000 USD, may risk 3 000 and hold 28 000 of notional: 0.13 lot with this stop fits
    engine.process(PositionOpened(T + 1, "p1", "EURUSD", "trend_following", "tf", 1, 0.13, 1.1000, 0.9000, 1.3000))
    # 0.13 lot: 0.9400 loses 2 080 USD, 2.08 % >= 2 %: the breach halts, and the custom rule sees it
    out = engine.process(Tick(T + MIN, "EURUSD", 0.9400, 0.9400))
    assert [(a.type, a.rule) for a in out if a.rule != "daily_loss"] == [("alert", "custom:tell")]
    assert ("halt_new_positions", "daily_loss") in [(a.type, a.rule) for a in out]


def test_a_rule_needing_strategy_and_symbol_fields_without_a_position_is_a_validation_error():
    text = "rules:\n  - name: x\n    when: strategy.stop_outs_1h >= 1 and symbol.trades_24h >= 1\n    then: [{alert: a}]\n"
    [problem] = validate_text(text, "custom", "rules/custom.yaml").problems
    assert (problem.line, problem.column) == (3, 11) and "no subject has both" in problem.message


# --- facts ----------------------------------------------------------------------------------------


def test_a_cooldown_rejects_proposals_of_its_strategy_for_exactly_its_duration(shipped):
    rules = PortfolioRules()
    v = rules.load(with_custom(shipped, [STOP_OUTS], COOLDOWN))
    assert rules.post_contexts(v, [("strategy", {"strategy.name": "arbitrage", "strategy.stop_outs_1h": 3, "ts": T})]) == []
    until = T + 30 * MIN

    def propose(pid: str, ts: int, strategy: str = "arbitrage") -> list:
        return rules.post_proposal(v, {"id": pid, "strategy": strategy, "symbol": "EURUSD", "reasons": [], "ts": ts})

    (first,) = propose("p1", T)
    assert (first.rule, first.params["until"]) == ("fact:cooldown", until)
    assert first.reason == "cooldown of strategy arbitrage until 2024-03-04T10:30:00Z: 3 stop-outs"
    assert [f.rule for f in propose("p2", until - 1)] == ["fact:cooldown"]
    assert propose("p3", until) == []  # expired at exactly T + 30m
    assert propose("p4", T, "trend_following") == []  # another strategy is not paused


def test_desk_facts_survive_a_snapshot_with_their_expiry(shipped):
    ruleset = with_custom(shipped, [STOP_OUTS], COOLDOWN)
    a = PortfolioRules()
    va = a.load(ruleset)
    a.post_contexts(va, [("strategy", {"strategy.name": "arbitrage", "strategy.stop_outs_1h": 3, "ts": T})])
    saved = json.loads(json.dumps(a.facts(va)))
    assert [(f["t"], f.get("name"), f.get("until")) for f in saved if f["t"] == "fact"] == [("fact", "cooldown", T + 30 * MIN)]
    b = PortfolioRules()
    vb = b.load(ruleset)
    b.restore_facts(vb, saved)
    assert b.facts(vb) == a.facts(va)
    proposal = {"id": "p1", "strategy": "arbitrage", "symbol": "EURUSD", "reasons": []}
    assert [f.rule for f in b.post_proposal(vb, {**proposal, "ts": T + 10 * MIN})] == ["fact:cooldown"]
    assert b.post_proposal(vb, {**proposal, "id": "p2", "ts": T + 30 * MIN}) == []
    # latched while the stop-outs still count: no second cooldown on the same condition
    assert b.post_contexts(vb, [("strategy", {"strategy.name": "arbitrage", "strategy.stop_outs_1h": 3, "ts": T + MIN})]) == []


def test_rules_that_keep_re_arming_each_other_stop_at_the_chaining_cap(shipped):
    rules = PortfolioRules()  # the lint refuses this pair (next test); the engine still stops them
    v = rules.load(with_custom(shipped, [
        {"name": "on", "when": "not fact.f.active and portfolio.drawdown >= 0", "then": [{"assert": {"fact": "f"}}, {"alert": "on"}]},
        {"name": "off", "when": "fact.f.active and portfolio.drawdown >= 0", "then": [{"retract": {"fact": "f"}}]},
    ], {"f": {}}))
    fired = rules.post_portfolio(v, {"portfolio.drawdown": 0.0, "ts": T})
    assert [f.rule for f in fired].count("custom:on") == MAX_REFIRES
    assert fired[-1].rule == "chain_limit" and fired[-1].params["level"] == "critical"


@pytest.mark.parametrize(("rule", "found"), [
    ("{name: x, when: fact.cooldwn.active, then: [{alert: a}]}", "unknown fact 'cooldwn'; did you mean 'cooldown'?"),
    ("{name: x, when: portfolio.drawdown > 0, then: [{assert: {fact: colddown}}]}", "unknown fact 'colddown'"),
    ("{name: x, when: strategy.trades_24h > 0, then: [{assert: {fact: cooldown, symbol: '{symbol.name}'}}]}",
     "symbol.name is not in the contexts of this rule (evaluated per strategy)"),
])
def test_unknown_facts_and_fields_a_rule_cannot_fill_are_validation_errors(rule: str, found: str):
    text = f"facts: {{cooldown: {{blocks: proposals}}}}\nrules:\n  - {rule}\n"
    problems = validate_text(text, "custom", "rules/custom.yaml").problems
    assert [p.message for p in problems if found in p.message], [p.message for p in problems]


def test_a_cycle_that_cannot_terminate_is_refused_and_exclusive_conditions_are_not():
    cycle = ("facts: {f: {}}\nrules:\n"
             "  - {name: on, when: not fact.f.active and portfolio.drawdown >= 0, then: [{assert: {fact: f}}]}\n"
             "  - {name: off, when: fact.f.active and portfolio.drawdown >= 0, then: [{retract: {fact: f}}]}\n")
    [problem] = validate_text(cycle, "custom", "rules/custom.yaml").problems
    assert "'on' and 'off' can re-arm each other for ever" in problem.message
    exclusive = cycle.replace("when: fact.f.active and portfolio.drawdown >= 0", "when: fact.f.active and portfolio.drawdown < 0")
    assert validate_text(exclusive, "custom", "rules/custom.yaml").problems == []


# --- counters in the engine's state -----------------------------------------------------------------


def test_the_windowed_counters_are_recorded_and_an_older_record_restores_without_them(shipped):
    engine = Engine(shipped, broker=PaperBroker())
    engine.process(Tick(T, "EURUSD", 1.1000, 1.1000))
    for i in range(2):
        engine.process(PositionOpened(T + 1 + i, f"p{i}", "EURUSD", "arbitrage", "arb", 1, 0.1, 1.1000, None, None))
    engine.process(Tick(T + MIN, "EURUSD", 1.0940, 1.0940))  # both stopped out at 1.0940 (stop 1.0945)
    rec = state.loads(state.dumps(state.record(engine)))
    assert [(c[1], c[2], c[3]) for c in rec["custom_closes"]] == [("arbitrage", "EURUSD", True)] * 2
    restored = Engine(shipped, broker=PaperBroker())
    state.restore(restored, rec)
    assert restored.custom.closes.fields(T + MIN, "strategy", "arbitrage")["stop_outs_1h"] == 2
    older = {k: v for k, v in rec.items() if k not in ("custom_closes", "custom_closing")}
    fresh = Engine(shipped, broker=PaperBroker())
    state.restore(fresh, older)
    assert fresh.custom.closes.items == []


def test_a_symbol_fact_blocks_proposals_on_its_symbol_only(shipped):
    rules = PortfolioRules()
    v = rules.load(with_custom(shipped, [{"name": "pause", "when": "symbol.stop_outs_1h >= 2",
                                          "then": [{"assert": {"fact": "cooldown", "symbol": "{symbol.name}", "for": "1h"}}]}], COOLDOWN))
    rules.post_contexts(v, [("symbol", {"symbol.name": "GBPUSD", "symbol.stop_outs_1h": 2, "ts": T})])
    proposal = {"strategy": "arbitrage", "reasons": [], "ts": T + MIN}
    [reject] = rules.post_proposal(v, {**proposal, "id": "p1", "symbol": "GBPUSD"})
    assert reject.reason.startswith("cooldown of symbol GBPUSD until 2024-03-04T11:00:00Z")
    assert rules.post_proposal(v, {**proposal, "id": "p2", "symbol": "EURUSD"}) == []
