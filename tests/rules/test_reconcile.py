"""Reconciliation with the broker, in the engine: deals booked once, and each kind of difference a broker's
report of its positions can show (docs/engine.md, "Reconciliation with the broker")."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.config import load_config
from engine.config.load import RuleSet
from engine.events import parse_event
from engine.rules import reconcile
from engine.rules.evaluator import Engine
from tests.conftest import ROOT

T0 = 1_549_238_400_000
#: four exit levels of 25 % each at +0.5 %, +0.8 %, +1.2 %, +1.5 % (DESIGN section 3.1): on 0.10 lots at a 0.01
#: step they leave 0.08, 0.05, 0.03 and 0 open
LEVELS = """exit_levels:
  - {profit_target: 0.005, exit_percentage: 0.25, sl_adjustment: 0.002}
  - {profit_target: 0.008, exit_percentage: 0.25, sl_adjustment: 0.003}
  - {profit_target: 0.012, exit_percentage: 0.25, sl_adjustment: 0.005}
  - {profit_target: 0.015, exit_percentage: 0.25, sl_adjustment: 0.008}
"""


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    """The scalping rules, scalp_trend with the four 25 % levels, a 1 % stop and no trailing or take profit in reach."""
    folder = tmp_path_factory.mktemp("reconcile") / "scalping"
    shutil.copytree(ROOT / "examples" / "scalping", folder)
    path = folder / "strategies" / "scalp_trend.yaml"
    text = path.read_text()
    text = text[: text.index("exit_levels:")] + LEVELS
    text = text.replace("defaults: {stop_loss: 0.0003, take_profit: 0.0006}", "defaults: {stop_loss: 0.01, take_profit: 0.05}")
    text = text.replace("trailing_enabled: true", "trailing_enabled: false")
    Path(path).write_text(text)
    return load_config(str(folder))


class Account:
    """An engine with one long 0.10 EURUSD scalp_trend position ``"101"`` taken over at 1.1000."""

    def __init__(self, rules: RuleSet, problems: list[str] | None = None) -> None:
        self.problems: list[str] = [] if problems is None else problems
        self.engine = Engine(rules, on_problem=self.problems.append)
        self.ts = T0
        self.send({"type": "tick", "symbol": "EURUSD", "bid": 1.1000, "ask": 1.1000})
        self.send({"type": "position_opened", "position_id": "101", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                   "action": "BUY", "volume": 0.10, "entry_price": 1.1000, "existing": True})

    def send(self, event: dict) -> list[dict]:
        self.ts += 1_000
        return [a.to_json() for a in self.engine.process(parse_event({"ts": self.ts, **event}))]

    def report(self, *positions: dict) -> list[dict]:
        return self.send({"type": "broker_positions", "positions": list(positions), "source": "test"})

    @property
    def position(self):
        return self.engine.book.positions["101"]

    def levels_hit(self) -> int:
        return self.engine.kernels["EURUSD"].state("101").levels_hit


def held(volume: float = 0.10, **levels) -> dict:
    return {"position_id": "101", "symbol": "EURUSD", "volume": volume, **levels}


def reconciles(actions: list[dict]) -> list[dict]:
    return [a for a in actions if a["type"] == "reconcile"]


def test_a_deal_reported_twice_is_booked_once(rules) -> None:
    acct = Account(rules)
    fill = {"type": "fill", "position_id": "101", "volume": 0.04, "price": 1.1050, "rule": "broker", "deal_id": "9001"}
    acct.send(fill)
    acct.send(fill)  # the broker's history replayed: same deal
    assert [(f.volume, f.price, f.deal) for f in acct.position.fills] == [(0.04, 1.1050, "9001")]
    assert acct.position.volume == pytest.approx(0.06)
    assert reconcile.counts(acct.engine)["deals_ignored"] == 1
    assert any("deal '9001'" in p and "booked already" in p for p in acct.problems)


def test_a_partial_close_while_away_is_booked_at_the_deals_price_and_counts_the_level_it_consumed(rules) -> None:
    acct = Account(rules)
    acct.send({"type": "fill", "position_id": "101", "volume": 0.04, "price": 1.1050, "rule": "broker", "deal_id": "9001"})
    [fill] = acct.position.fills
    assert (fill.volume, fill.price, fill.rule) == (0.04, 1.1050, "broker")
    assert fill.pnl == pytest.approx(0.04 * 100_000 * 0.0050)  # 20 USD
    # 0.06 left of 0.10: at or below the first level's target (0.08) within a step, above the second's (0.05)
    assert acct.levels_hit() == 1
    assert reconciles(acct.report(held(0.06))) == []  # the deal explains the broker's volume
    # the second level (+0.8 %: 1.1088) closes down to its target, 0.05; the first does not fire again
    actions = acct.send({"type": "tick", "symbol": "EURUSD", "bid": 1.1088, "ask": 1.1088})
    assert [(a["params"]["volume"], a["rule"]) for a in actions if a["type"] == "close_partial"] == [(0.01, "exit_levels.1")]


def test_a_broker_stop_loss_while_away_is_booked_at_the_deals_price_with_the_deals_rule(rules) -> None:
    acct = Account(rules)
    acct.send({"type": "fill", "position_id": "101", "volume": 0.10, "price": 1.0885, "rule": "broker_sl", "deal_id": "9002"})
    [fill] = acct.position.fills
    assert (fill.volume, fill.price, fill.rule, fill.deal) == (0.10, 1.0885, "broker_sl", "9002")
    assert acct.position.status.value == "closed"
    assert acct.position.realized_pnl == pytest.approx(0.10 * 100_000 * (1.0885 - 1.1000))
    assert "101" not in acct.engine.kernels["EURUSD"].ids
    assert reconciles(acct.report()) == []  # closed in the book, absent at the broker: nothing to reconcile


def test_a_position_missing_at_the_broker_without_a_deal_is_closed_at_the_last_quote_and_reported(rules) -> None:
    acct = Account(rules)
    acct.send({"type": "tick", "symbol": "EURUSD", "bid": 1.1020, "ask": 1.1021})
    [action] = reconciles(acct.report())
    assert action["rule"] == "reconcile" and action["position_id"] == "101"
    assert action["params"] == {"kind": "missing", "symbol": "EURUSD", "book_volume": 0.10, "broker_volume": 0.0,
                                "booked_volume": 0.10, "price": 1.1020, "source": "test"}
    assert [(f.volume, f.price, f.rule) for f in acct.position.fills] == [(0.10, 1.1020, "reconcile")]
    assert acct.position.status.value == "closed"
    assert reconcile.counts(acct.engine)["missing"] == 1
    assert reconcile.state(acct.engine).last["differences"][0]["outcome"] == "booked"
    assert reconciles(acct.report()) == []  # booked once: the next report agrees


def test_a_smaller_volume_at_the_broker_is_booked_and_a_difference_within_half_a_step_is_rounding(rules) -> None:
    acct = Account(rules)
    assert reconciles(acct.report(held(0.104))) == []  # 0.004 lots: within half a 0.01 step
    [action] = reconciles(acct.report(held(0.07)))
    assert action["params"]["kind"] == "volume"
    assert (action["params"]["book_volume"], action["params"]["broker_volume"], action["params"]["booked_volume"]) == (0.10, 0.07, 0.03)
    assert acct.position.volume == pytest.approx(0.07)
    assert acct.engine.kernels["EURUSD"].state("101").volume == pytest.approx(0.07)
    assert acct.levels_hit() == 1  # 0.07 is within a step of the first level's target (0.08)
    assert reconciles(acct.report(held(0.07))) == []


def test_a_larger_volume_at_the_broker_is_reported_once_confirmed_and_not_booked(rules) -> None:
    acct = Account(rules)
    assert reconciles(acct.report(held(0.12))) == []  # one report may predate the engine's last action
    [action] = reconciles(acct.report(held(0.12)))
    assert action["params"] == {"kind": "volume", "symbol": "EURUSD", "book_volume": 0.10, "broker_volume": 0.12, "source": "test"}
    assert acct.position.volume == pytest.approx(0.10) and acct.position.fills == []
    assert reconciles(acct.report(held(0.12))) == []  # reported once while it lasts


def test_a_position_opened_by_hand_at_the_broker_is_reported_not_adopted(rules) -> None:
    acct = Account(rules)
    by_hand = {"position_id": "202", "symbol": "EURUSD", "volume": 0.05}
    assert reconciles(acct.report(held(), by_hand)) == []
    [action] = reconciles(acct.report(held(), by_hand))
    assert action["position_id"] == "202" and action["strategy"] is None
    assert action["params"] == {"kind": "unknown", "symbol": "EURUSD", "broker_volume": 0.05, "book_status": "never seen",
                                "source": "test"}
    assert "202" not in acct.engine.book.positions
    assert reconciles(acct.report(held(), by_hand)) == []
    assert reconcile.counts(acct.engine) == {"missing": 0, "volume": 0, "unknown": 1, "levels": 0, "deals_ignored": 0}


def test_broker_side_levels_that_differ_from_the_book_are_reported(rules) -> None:
    acct = Account(rules)
    stop, target = acct.position.stop_loss, acct.position.take_profit  # the defaults: 1.089 and 1.155
    assert (stop, target) == (1.089, 1.155)
    assert reconciles(acct.report(held(stop_loss=stop + 0.000004, take_profit=target))) == []  # within half a tick
    assert reconciles(acct.report(held(stop_loss=None, take_profit=target))) == []
    [action] = reconciles(acct.report(held(stop_loss=None, take_profit=target)))  # no stop at the broker
    assert action["params"] == {"kind": "levels", "symbol": "EURUSD", "level": "stop_loss", "book": 1.089, "broker": None,
                                "source": "test"}
    assert reconciles(acct.report(held())) == []  # levels the report does not tell are not compared


def test_volume_an_engine_action_closes_is_pending_until_its_fill_not_a_difference(rules) -> None:
    acct = Account(rules)  # no broker: actions wait for their fills, as with --broker redis
    actions = acct.send({"type": "tick", "symbol": "EURUSD", "bid": 1.1055, "ask": 1.1056})  # the first level
    [partial] = [a for a in actions if a["type"] == "close_partial"]
    assert partial["params"]["volume"] == 0.02
    assert reconciles(acct.report(held(0.08))) == []  # carried out at the broker, its fill not back yet
    assert reconcile.state(acct.engine).last["pending"] == [
        {"position_id": "101", "book_volume": 0.10, "broker_volume": 0.08, "awaiting_fills": 0.02}]
    assert acct.position.volume == pytest.approx(0.10)
    acct.send({"type": "fill", "position_id": "101", "volume": 0.02, "price": 1.1055, "action_id": partial["id"], "deal_id": "9003"})
    assert reconciles(acct.report(held(0.08))) == [] and reconcile.state(acct.engine).last["pending"] == []


def test_reconciliation_is_deterministic(rules) -> None:
    def run() -> list[dict]:
        acct = Account(rules)
        acct.send({"type": "tick", "symbol": "EURUSD", "bid": 1.1020, "ask": 1.1021})
        by_hand = {"position_id": "9", "symbol": "EURUSD", "volume": 1.0}
        return acct.report(held(0.07)) + acct.report(held(0.07), by_hand) + acct.report(held(0.07), by_hand)

    assert run() == run()
    assert all(a["rules_version"] for a in run())


class DealBroker:
    """A broker that fills every close at once and names the deal (as MetaTrader 5 does): deals D1, D2, …"""

    def __init__(self) -> None:
        self.deals = 0

    def execute(self, action, quotes):
        from engine.ports import FillReport

        if action.type not in ("close", "close_partial"):
            return []
        self.deals += 1
        return [FillReport(action.position_id, action.ts, action.params["volume"], action.params["price"], action.rule, action.id,
                           f"D{self.deals}")]


def test_a_deal_the_broker_booked_for_an_action_and_the_feed_reports_again_is_booked_once(rules: RuleSet) -> None:
    """The broker's own fill names its deal; the feed's later report of the same deal (a lost reply, a restart)
    changes nothing: one fill, the kernel's volume and the book's agree."""
    a = Account(rules)
    a.engine.broker = DealBroker()
    acts = a.send({"type": "tick", "symbol": "EURUSD", "bid": 1.1056, "ask": 1.1056})  # +0.5 %: level 1 closes 0.02
    [partial] = [x for x in acts if x["type"] == "close_partial"]
    p = a.engine.book.positions["101"]
    assert [f.deal for f in p.fills] == ["D1"] and p.volume == pytest.approx(0.08)
    assert a.send({"type": "fill", "position_id": "101", "volume": partial["params"]["volume"], "price": 1.1056, "deal_id": "D1"}) == []
    assert [f.deal for f in p.fills] == ["D1"] and p.volume == pytest.approx(0.08)
    assert a.engine.kernels["EURUSD"].state("101").volume == pytest.approx(0.08)
    from engine.service.views import record

    assert [f.get("deal") for f in record(p)["fills"]] == ["D1"]  # the API and Redis show which deal each fill is


def test_the_journal_keeps_the_deal_of_a_broker_fill_for_the_replay() -> None:
    from engine.ports import FillReport
    from engine.service.journal import Recording

    class Once:
        def execute(self, action, quotes):
            return [FillReport("101", 1, 0.02, 1.1056, "exit_levels.0", action.id, "D7")]

    recording = Recording(Once())
    action = type("A", (), {"id": "a-1"})()
    recording.execute(action, {})
    recording.replay = {"a-1": recording.fills["a-1"]}
    [again] = recording.execute(action, {})
    assert again.deal == "D7" and again.price == 1.1056
    recording.replay = {"a-1": [["101", 1, 0.02, 1.1056, "exit_levels.0"]]}  # a record written before deal ids
    assert recording.execute(action, {})[0].deal is None


class LaterBroker:
    """A broker that takes every action and reports its fills later (a pipeline on the actions stream)."""

    def execute(self, action, quotes):
        return []


def test_a_fill_that_names_its_action_is_booked_under_the_actions_rule_and_in_flight_until_then(rules: RuleSet) -> None:
    """A pipeline answers a close with a fill naming the action (docs/service.md): the fill is the stop loss's
    (so it counts as a stop-out for the protections), and while it is on its way the position shows the volume
    in flight, a partial close included."""
    from engine.service.views import position

    a = Account(rules)
    a.engine.broker = LaterBroker()
    [partial] = [x for x in a.send({"type": "tick", "symbol": "EURUSD", "bid": 1.1056, "ask": 1.1056}) if x["type"] == "close_partial"]
    view = position(a.engine, a.engine.book.positions["101"])
    assert view["close_pending"] is True and view["volume_in_flight"] == pytest.approx(0.02) and view["volume"] == pytest.approx(0.10)
    a.send({"type": "fill", "position_id": "101", "volume": 0.02, "price": 1.1056, "action_id": partial["id"], "deal_id": "P1"})
    view = position(a.engine, a.engine.book.positions["101"])
    assert view["close_pending"] is False and view["volume"] == pytest.approx(0.08)
    [stop] = [x for x in a.send({"type": "tick", "symbol": "EURUSD", "bid": 1.0800, "ask": 1.0800}) if x["type"] == "close"]
    assert stop["rule"] == "stop_loss"
    a.send({"type": "fill", "position_id": "101", "volume": 0.08, "price": 1.0800, "action_id": stop["id"], "deal_id": "P2"})
    p = a.engine.book.positions["101"]
    assert [f.rule for f in p.fills] == ["exit_levels.0", "stop_loss"] and p.status.value == "closed"
    assert reconcile.state(a.engine).requests == {}


def test_a_deal_reported_again_after_its_position_closed_is_counted_as_ignored(rules: RuleSet) -> None:
    a = Account(rules)
    a.send({"type": "fill", "position_id": "101", "volume": 0.10, "price": 1.1010, "deal_id": "X1"})
    assert a.engine.book.positions["101"].status.value == "closed"
    assert a.send({"type": "fill", "position_id": "101", "volume": 0.10, "price": 1.1010, "deal_id": "X1"}) == []
    assert reconcile.counts(a.engine)["deals_ignored"] == 1
