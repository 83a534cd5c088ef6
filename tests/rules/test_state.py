"""The engine's state as a versioned record of plain data (engine.rules.state): an engine restored from
it, again and again, continues exactly like the original; the record is strict JSON; every attribute
of the engine is either recorded or rebuilt from the rules; a record of the first version restores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import parse_event
from engine.rules import state
from engine.rules.chaining import PortfolioRules
from engine.rules.evaluator import Engine
from tests.service.conftest import SCALPING, demo_events

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "data" / "state" / "v1"

# attributes rebuilt from the rules (or not state at all), and those the record holds
DERIVED = {"rules", "portfolio", "broker", "on_problem", "version", "converter", "params", "codes", "open_pnl", "_bar_ms",
           "_bar_window", "resets", "custom", "book", "kernels", "deadlines", "pending"}
RECORDED = {"equity0", "seq", "capital", "week", "outside", "last_ts", "vols", "quotes", "bars", "day", "peak_equity", "ledgers", "curve",
            "strategy_curves", "counts", "reconciliation", "states"}


def restored(engine: Engine) -> Engine:
    """A new engine from ``engine``'s record, through its bytes, with the facts carried as a restart does."""
    blob = state.dumps(state.record(engine))
    facts = json.loads(json.dumps(engine.portfolio.facts(engine.version)))
    b = Engine(engine.rules, broker=PaperBroker(), portfolio=PortfolioRules())
    state.restore(b, state.loads(blob))
    b.portfolio.restore_facts(b.version, facts)
    return b


@pytest.mark.parametrize(("config", "least"), [(SCALPING, 30), (ROOT, 5)])
def test_an_engine_restored_again_and_again_continues_like_the_original(config: Path, least: int) -> None:
    """A restart from a record that a restarted engine wrote (the case a single round trip misses)."""
    rules = load_config(str(config))
    events = [parse_event(e) for e in demo_events()]
    a, b = Engine(rules, broker=PaperBroker()), Engine(rules, broker=PaperBroker())
    n_actions = restarts = 0
    for i, ev in enumerate(events):
        if i and i % 400 == 0:
            b, restarts = restored(b), restarts + 1
            assert state.record(b) == state.record(a), i
        want = [x.to_line() for x in a.process(ev)]
        assert [x.to_line() for x in b.process(ev)] == want, (i, ev)
        n_actions += len(want)
    assert n_actions > least and restarts > 5
    assert a.summary() == b.summary()


def test_the_record_is_strict_json_with_levels_taken_by_key() -> None:
    rules = load_config(str(SCALPING))
    engine = Engine(rules, broker=PaperBroker())
    for ev in demo_events()[:1500]:
        engine.process(parse_event(ev))
    blob = state.dumps(state.record(engine))
    rec = json.loads(blob, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert rec["format"] == "riskrail.engine-state" and rec["version"] == 1
    managed = [m for k in rec["managed"].values() for m in k["positions"]]
    assert managed, "some positions are open at this point of the demo"
    keys = {lv.key for s in rules.strategies.values() for lv in s.exit_levels}
    assert all(set(m["levels_taken"]) <= keys for m in managed)
    assert "pickle" not in blob.decode() and b"\x80" not in blob


def test_every_attribute_of_the_engine_is_recorded_or_rebuilt_from_the_rules() -> None:
    """A new attribute of the engine must be added to the record (or declared derived): a restart would lose it."""
    engine = Engine(load_config(str(SCALPING)), broker=PaperBroker())
    for ev in demo_events()[:300]:
        engine.process(parse_event(ev))
    assert DERIVED | RECORDED - {"reconciliation"} <= set(engine.__dict__) <= DERIVED | RECORDED  # reconciliation: made on first use
    assert set(engine.book.__dict__) == {"converter", "positions", "_open", "realized_total", "realized_by", "open_count"}
    kernel = next(iter(engine.kernels.values()))
    assert {"ids", "strategies", "removed_time_in_profit", "taken_keys", "bid", "ask", "_last_ts"} <= set(kernel.__dict__)


def test_a_record_of_a_later_version_or_not_a_record_is_refused() -> None:
    with pytest.raises(state.StateError, match="version 2"):
        state.loads(json.dumps({"format": "riskrail.engine-state", "version": 2}))
    with pytest.raises(state.StateError, match="not an engine-state record"):
        state.loads(b"\x80\x05\x95 a pickle")
    with pytest.raises(state.StateError, match="no format"):
        state.loads(b"[1, 2]")


def test_a_record_that_does_not_fit_the_rules_is_a_state_error() -> None:
    rules = load_config(str(SCALPING))
    engine = Engine(rules, broker=PaperBroker())
    for ev in demo_events()[:1500]:
        engine.process(parse_event(ev))
    rec = state.record(engine)
    symbol = next(s for s, k in rec["managed"].items() if k["positions"])
    rec["managed"][symbol]["positions"][0]["strategy"] = "no_such_strategy"
    with pytest.raises(state.StateError, match="no_such_strategy"):
        state.restore(Engine(rules, broker=PaperBroker()), rec)


def decided(action: dict) -> dict:
    """An action without what names the rules version it was decided under."""
    return {k: v for k, v in action.items() if k not in ("id", "rules_version")}


def test_the_first_version_of_the_record_restores_and_continues() -> None:
    """tests/data/state/v1: a record written by the release that introduced it, with its rules and the
    events that follow it. Every later release must restore it and decide those events the same way."""
    rules = load_config(str(FIXTURE / "config"))
    rec = state.loads((FIXTURE / "engine.json").read_bytes())
    engine = Engine(rules, broker=PaperBroker())
    state.restore(engine, rec)
    engine.portfolio.restore_facts(engine.version, json.loads((FIXTURE / "facts.json").read_text()))
    # the rules version (and the action ids made from it) is the digest of the validated rules, which a
    # release that adds a setting with a default changes: every other part of an action must be the same
    expected = [decided(json.loads(line)) for line in (FIXTURE / "actions.jsonl").read_text().splitlines()]
    got = []
    for line in (FIXTURE / "after.jsonl").read_text().splitlines():
        got.extend(decided(json.loads(a.to_line())) for a in engine.process(parse_event(json.loads(line))))
    assert got == expected and len(expected) >= 3
    taken = {m["id"]: m["levels_taken"] for k in rec["managed"].values() for m in k["positions"]}
    assert any(taken.values()), "the fixture holds a position with an exit level taken"
    assert not math.isnan(engine.equity)
