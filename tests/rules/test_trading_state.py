"""Trading states in the engine itself (engine.rules.trading_state), without a service: the operator's events
cross the validation boundary both ways, decide proposals deterministically, survive the state record, and
the rules' halts and blocking facts show as states by ``rule:<name>``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.config.load import ruleset_from_texts
from engine.events import EventError, parse_event, to_json
from engine.operator import Flatten, TradingStateChange
from engine.rules import state, trading_state
from engine.rules.evaluator import Engine
from tests.service.conftest import SCALPING

T0 = 1549238500000


def tick(ts: int, bid: float) -> dict:
    return {"type": "tick", "ts": ts, "symbol": "EURUSD", "bid": bid, "ask": round(bid + 0.00002, 5)}


def opened(pid: str, strategy: str = "scalp_trend", action: str = "BUY", volume: float = 0.01, ts: int = T0 + 1) -> dict:
    return {"type": "position_opened", "ts": ts, "position_id": pid, "symbol": "EURUSD", "strategy_type": strategy, "action": action,
            "volume": volume, "entry_price": 1.1457 if action == "BUY" else 1.14572, "stop_loss": 1.14 if action == "BUY" else 1.152,
            "take_profit": 1.152 if action == "BUY" else 1.14}


def change(state_: str, ts: int = T0 + 2, **scope: str) -> dict:
    return {"type": "trading_state", "ts": ts, "state": state_, "reason": "drill", "by": "ops", **scope}


@pytest.mark.parametrize("event", [
    TradingStateChange(T0, "HALTED", None, "EURUSD", "news", "ops-alice", "op-1"),
    TradingStateChange(T0, "ACTIVE", "scalp_trend", None, "back", "cli:root"),
    Flatten(T0, "scalp_trend", "EURUSD", "going flat", "ops-alice"),
    Flatten(T0, None, None, "all out", "admin", "op-2"),
])
def test_an_operator_event_reads_back_as_written(event: TradingStateChange | Flatten) -> None:
    assert parse_event(json.loads(json.dumps(to_json(event)))) == event


@pytest.mark.parametrize("obj, message", [
    (change("STOPPED"), "state: expected one of ACTIVE, REDUCING, HALTED, found 'STOPPED'"),
    ({**change("HALTED"), "reason": "  "}, "reason: expected why"),
    ({**change("HALTED"), "by": None}, "by: expected who asks"),
    ({**change("HALTED"), "strategy": "a", "symbol": "b"}, "strategy, symbol: expected at most one of them"),
    ({**change("HALTED"), "symbol": 7}, "symbol: expected a non-empty string or null, found 7"),
    ({**change("HALTED"), "reason": "x" * 501}, "reason: expected at most 500 printable characters, found 501 characters"),
    ({"type": "flatten", "ts": T0, "reason": "r", "by": "\x00"}, "by: expected at most 128 printable characters"),
])
def test_a_malformed_operator_event_is_refused_naming_the_field(obj: dict, message: str) -> None:
    with pytest.raises(EventError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_event(obj)


def run(engine: Engine, events: list[dict]) -> list[dict]:
    return [a.to_json() for e in events for a in engine.process(parse_event(e))]


def test_halt_reduce_resume_and_flatten_decide_the_same_way_after_a_restart() -> None:
    rules = load_config(str(SCALPING))
    events = [tick(T0, 1.1457), opened("a"), change("HALTED", strategy="scalp_trend"), opened("b", ts=T0 + 3),
              opened("c", "scalp_revert", ts=T0 + 4), change("REDUCING", ts=T0 + 5), opened("d", "scalp_revert", "SELL", 0.03, T0 + 6),
              opened("e", "scalp_revert", "SELL", 0.01, T0 + 7)]
    later = [change("ACTIVE", ts=T0 + 8), change("ACTIVE", ts=T0 + 9, strategy="scalp_trend"), opened("f", ts=T0 + 10),
             {"type": "flatten", "ts": T0 + 11, "strategy": "scalp_trend", "reason": "out", "by": "ops"}]
    engine = Engine(rules, broker=PaperBroker())
    first = run(engine, events)
    rejected = {a["position_id"]: a for a in first if a["type"] == "reject_position"}
    assert set(rejected) == {"b", "d"}
    assert rejected["b"]["rule"] == "trading_state" and rejected["b"]["reason"] == "trading HALTED for strategy scalp_trend by ops: drill"
    assert rejected["d"]["params"]["reasons"] == [("trading REDUCING for the account by ops: drill; a SELL of 0.03 lots adds exposure "
                                                  "(net open +0.02 lots of EURUSD)")]  # a and c are long 0.02: d flips it, e reduces it
    changes = [a for a in first if a["type"] == "trading_state"]
    assert [(a["params"]["scope"], a["params"]["state"], a["params"]["previous"]) for a in changes] == [
        ("strategy", "HALTED", "ACTIVE"), ("account", "REDUCING", "ACTIVE")]

    restored = Engine(rules, broker=PaperBroker())
    state.restore(restored, state.loads(state.dumps(state.record(engine))))
    assert trading_state.listing(restored) == trading_state.listing(engine)
    again = Engine(rules, broker=PaperBroker())
    assert run(again, events) == first  # deterministic: the same events give the same actions and ids
    tail = run(restored, later)
    assert tail == run(engine, later)
    closes = [a for a in tail if a["rule"] == "flatten"]
    assert [(a["type"], a["position_id"]) for a in closes] == [("close", "a"), ("close", "f")]
    assert {p.id for p in restored.book.open_positions()} == {"c", "e"}
    assert trading_state.listing(restored)[1] == "ACTIVE"


def test_a_custom_halt_and_a_blocking_fact_show_as_states_by_their_rules() -> None:
    files = {str(p.relative_to(SCALPING)): p.read_text() for p in SCALPING.rglob("*.yaml")}
    files["rules/custom.yaml"] = """\
facts:
  crowded: {description: one trend position at a time, blocks: proposals}
rules:
  - name: halt-when-crowded
    when: portfolio.open_positions >= 2 and not portfolio.halted
    then:
      - halt_new_positions: {reason: "two positions are enough"}
  - name: pause-trend
    when: strategy.name == "scalp_trend" and strategy.open_positions >= 1
    then:
      - assert: {fact: crowded, strategy: "{strategy.name}", for: 1h, reason: "one trend position at a time"}
"""
    engine = Engine(ruleset_from_texts(files), broker=PaperBroker())
    run(engine, [tick(T0, 1.1457), opened("a"), opened("b", "scalp_revert"), tick(T0 + 1000, 1.1457)])
    entries, effective = trading_state.listing(engine)
    assert effective == "HALTED"
    assert [(e.scope, e.name, e.state, e.by, e.at) for e in entries] == [
        ("account", None, "HALTED", "rule:halt-when-crowded", T0 + 1000),
        ("account", None, "ACTIVE", "", 0),
        ("strategy", "scalp_trend", "HALTED", "rule:pause-trend", T0 + 1000)]
    assert entries[0].reason == "two positions are enough" and "one trend position at a time" in entries[2].reason
    # an operator's resume lifts the operators' state only: the rule's halt stays in force
    run(engine, [change("ACTIVE", ts=T0 + 2000)])
    assert trading_state.listing(engine)[1] == "HALTED"


def test_the_shipped_configuration_loads_with_every_state_active(tmp_path: Path) -> None:
    engine = Engine(load_config(str(Path(__file__).resolve().parents[2])), broker=PaperBroker())
    assert trading_state.view(engine, "main") == {"account": "main", "effective": "ACTIVE", "states": [
        {"scope": "account", "name": None, "state": "ACTIVE", "reason": "", "by": "", "at": 0}]}
