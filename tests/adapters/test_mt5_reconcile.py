"""The MT5 feed's part of reconciliation: exit deals carry their ticket, and the account's positions are
reported at the first poll, after a reconnect and on a schedule, after the deals that explain them."""

from __future__ import annotations

import json

import pytest

from engine.adapters.mt5 import MT5Connection, MT5Feed
from engine.events import BrokerPositions, parse_event
from engine.rules import reconcile
from engine.rules.evaluator import Engine
from engine.testing.mt5 import DEAL_REASON_CLIENT, FakeTerminal
from tests.adapters.conftest import ENV, T0, TREND, Clock


def reports(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "broker_positions"]


def test_the_positions_are_reported_at_the_first_poll_on_schedule_and_after_a_reconnect(
        conn: MT5Connection, fake: FakeTerminal, rules, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, sl=1.14400, magic=TREND)
    by_hand = fake.open_position("EURUSD", "SELL", 0.30, price=1.14500)  # no strategy claims it
    feed = MT5Feed(conn, rules, reconcile_every=60.0, clock=clock)
    events = feed.poll()
    [report] = reports(events)
    assert events[-1] is report  # after the position events and the quotes
    assert report == {"type": "broker_positions", "ts": T0, "source": "mt5", "positions": [
        {"position_id": str(ticket), "symbol": "EURUSD", "volume": 0.10, "stop_loss": 1.14400, "take_profit": 0.0},
        {"position_id": str(by_hand), "symbol": "EURUSD", "volume": 0.30, "stop_loss": 0.0, "take_profit": 0.0}]}
    parsed = parse_event(json.loads(json.dumps(report)))
    assert isinstance(parsed, BrokerPositions) and parsed.positions[0].take_profit == 0.0
    clock.now += 59.0
    assert reports(feed.poll()) == []
    clock.now += 1.0
    assert len(reports(feed.poll())) == 1  # every 60 s
    fake.go_away(back_after=1)
    assert reports(feed.poll()) != [] and conn.reconnects == 1  # after the reconnect, before the schedule's time
    assert reports(feed.poll()) == []


def test_exit_deals_carry_their_ticket_and_the_report_waits_for_the_deals_that_explain_it(
        conn: MT5Connection, fake: FakeTerminal, rules, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, magic=TREND)
    feed = MT5Feed(conn, rules, reconcile_every=60.0, clock=clock)
    feed.poll()
    fake.close_position(ticket, 0.04, price=1.14550, reason=DEAL_REASON_CLIENT)
    hidden = fake.deals.pop()  # the terminal's history lags: the deal is not readable yet
    clock.now += 60.0
    assert reports(feed.poll()) == []  # 0.04 gone without a deal: the report would call it missing
    fake.deals.append(hidden)
    events = feed.poll()
    fills = [e for e in events if e["type"] == "fill"]
    assert [(f["volume"], f["price"], f["deal_id"]) for f in fills] == [(pytest.approx(0.04), 1.14550, str(hidden.ticket))]
    [report] = reports(events)
    assert events.index(fills[0]) < events.index(report)
    assert [p["volume"] for p in report["positions"]] == [pytest.approx(0.06)]


def test_a_replay_of_the_history_after_a_restart_books_each_deal_once(conn: MT5Connection, fake: FakeTerminal, rules,
                                                                     clock: Clock) -> None:
    # two processes' feeds (a restart that forgot what it had sent) send the same exit deal: the engine books it once
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, magic=TREND)
    engine = Engine(rules)
    first = MT5Feed(conn, rules)
    for e in first.poll():
        engine.process(parse_event(e))
    fake.close_position(ticket, 0.04, price=1.14550, reason=DEAL_REASON_CLIENT)
    other = MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep)
    other.connect()
    again = MT5Feed(other, rules)
    again.track([(str(ticket), "EURUSD", 0.10)])  # as if the engine still held all of it
    sent = [e for e in first.poll() + again.poll() if e["type"] == "fill"]
    assert len(sent) == 2 and sent[0]["deal_id"] == sent[1]["deal_id"]
    for e in sent:
        engine.process(parse_event(e))
    p = engine.book.positions[str(ticket)]
    assert [(f.volume, f.price, f.deal) for f in p.fills] == [(pytest.approx(0.04), 1.14550, sent[0]["deal_id"])]
    assert p.volume == pytest.approx(0.06) and reconcile.counts(engine)["deals_ignored"] == 1
