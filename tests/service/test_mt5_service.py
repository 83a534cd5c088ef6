"""`riskrail run --feed mt5 --broker mt5` wiring, on a fake terminal: the feed pump puts the terminal's
positions and quotes on the account's stream, the engine manages them, and its actions reach the
terminal as trade requests (the stop mirrored as the broker-side SL, partial exits as deals)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from engine.actions import Action
from engine.adapters import factories
from engine.service.pump import FeedPump
from engine.service.store import Keys
from engine.testing.mt5 import FakeTerminal
from tests.service.conftest import start_service, wait_for

LOGIN, PASSWORD, SERVER = 5_001_234, "pa55-Word-xyz", "Desk-Demo"
T0 = 1_549_238_400_000
TREND = 2001  # scalp_trend's magic number in examples/scalping/rules/instruments.yaml


def test_the_service_manages_a_terminal_account_through_the_feed_pump_and_the_broker(redis_server, scalping) -> None:
    fake = FakeTerminal(login=LOGIN, password=PASSWORD, server=SERVER)
    fake.add_symbol("EURUSD", digits=5, volume_step=0.01, volume_min=0.01)
    fake.tick("EURUSD", 1.14500, 1.14502, T0)
    edges = factories.edges("mt5", "mt5", mt5_module=fake,
                            env={"MT5_LOGIN": str(LOGIN), "MT5_PASSWORD": PASSWORD, "MT5_SERVER": SERVER})
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14502, magic=TREND)
    svc = start_service(redis_server, scalping, broker_factory=edges.broker_factory, allow_takeover=True)
    pump = FeedPump(edges.feed(svc.active_rules()), lambda obj: svc.publish(obj, "acct"), interval=0.02)
    pump.start()
    try:
        # taken over: the default stop and target reach the terminal as its SL and TP
        wait_for(lambda: fake.positions[ticket].sl > 0 and fake.positions[ticket].tp > 0, 10, "the default SL/TP at the broker")
        assert fake.positions[ticket].sl == pytest.approx(round(1.14502 * (1 - 0.0003), 5))
        fake.tick("EURUSD", 1.14516, 1.14518, T0 + 1_000)  # +1.2 pips: exit level 1 (30 %) and its stop move
        wait_for(lambda: fake.positions[ticket].volume == pytest.approx(0.07), 10, "the partial exit at the broker")
        wait_for(lambda: fake.positions[ticket].sl >= 1.14502, 10, "the stop moved to break-even at the broker")
        book = svc.workers["acct"].call(lambda e: (e.book.positions[str(ticket)].volume, e.book.positions[str(ticket)].status.value))
        assert book == (pytest.approx(0.07), "partially_closed")
    finally:
        pump.stop()
        svc.stop()
        edges.close()
    actions = [json.loads(f[b"action"]) for _, f in redis_server.xrange(Keys().stream("acct", "actions"))]
    assert [a["type"] for a in actions][:3] == ["set_stop_loss", "set_take_profit", "close_partial"]


def test_a_broker_alert_is_journaled_and_reaches_the_actions_stream(redis_server, scalping) -> None:
    # issue 14, case 6: an alert of the MT5 broker (here: a partial close that rounds below the minimum volume)
    # becomes a broker_alert event of the account, journaled, and an `alert` action (rule broker)
    from engine.cli.run import BrokerAlerts

    fake = FakeTerminal(login=LOGIN, password=PASSWORD, server=SERVER)
    fake.add_symbol("EURUSD", digits=5, volume_step=0.01, volume_min=0.01)
    fake.tick("EURUSD", 1.14500, 1.14502, T0)
    alerts = BrokerAlerts()
    edges = factories.edges("mt5", "mt5", mt5_module=fake, on_alert=alerts,
                            env={"MT5_LOGIN": str(LOGIN), "MT5_PASSWORD": PASSWORD, "MT5_SERVER": SERVER})
    svc = start_service(redis_server, scalping, broker_factory=edges.broker_factory, allow_takeover=True)
    alerts.service = svc
    try:
        broker = edges.broker_factory("acct")  # a broker of the account, as the worker has one
        assert broker is not None
        ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14502, magic=TREND)
        broker.execute(Action("a-x", T0, "close_partial", str(ticket), "scalp_trend", {"volume": 0.004}, "custom:test", "rv-x", ""), {})
        k = Keys()

        def alert_actions() -> list[dict]:
            actions = (json.loads(f[b"action"]) for _, f in redis_server.xrange(k.stream("acct", "actions")))
            return [a for a in actions if a["type"] == "alert"]

        wait_for(lambda: alert_actions(), 10, "the broker's alert as an action")
        [alert] = alert_actions()
        assert alert["rule"] == "broker" and "rounds to 0" in alert["params"]["message"] and alert["position_id"] == str(ticket)
        journal = [json.loads(f[b"record"]) for _, f in redis_server.xrange(k.stream("acct", "journal"))]
        assert [r["event"]["message"] for r in journal if r.get("event", {}).get("type") == "broker_alert"] == [alert["params"]["message"]]
    finally:
        svc.stop()
        edges.close()


def test_a_position_the_broker_closed_while_riskrail_was_down_is_closed_in_the_book_after_the_restart(redis_server, scalping) -> None:
    # issue 14, case 2: the service manages a terminal position, stops; the broker's stop closes it; at the restart
    # the feed follows the engine's open positions and books the close from its deal
    from engine.cli.run import open_positions
    from engine.service.pump import follow_open_positions

    fake = FakeTerminal(login=LOGIN, password=PASSWORD, server=SERVER)
    fake.add_symbol("EURUSD", digits=5, volume_step=0.01, volume_min=0.01)
    fake.tick("EURUSD", 1.14500, 1.14502, T0)
    env = {"MT5_LOGIN": str(LOGIN), "MT5_PASSWORD": PASSWORD, "MT5_SERVER": SERVER}
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14502, sl=1.14300, tp=1.14900, magic=TREND)

    def run_once(until: Callable[[Any], bool], what: str) -> Any:
        edges = factories.edges("mt5", "mt5", mt5_module=fake, env=env)
        svc = start_service(redis_server, scalping, broker_factory=edges.broker_factory, allow_takeover=True)
        feed = edges.feed(svc.active_rules())
        follow_open_positions(feed, lambda: svc.workers["acct"].call(open_positions, timeout=60))
        pump = FeedPump(feed, lambda obj: svc.publish(obj, "acct"), interval=0.02)
        pump.start()
        try:
            wait_for(lambda: svc.workers["acct"].call(until), 20, what)
            return svc.workers["acct"].call(lambda e: e.book.positions[str(ticket)])
        finally:
            pump.stop()
            svc.stop()
            edges.close()

    run_once(lambda e: str(ticket) in e.book.positions, "the position taken over")
    fake.tick("EURUSD", 1.14200, 1.14202, T0 + 60_000)  # riskrail is down: the broker-side stop closes the position
    assert ticket not in fake.positions
    p = run_once(lambda e: not e.book.positions[str(ticket)].is_open, "the close booked after the restart")
    assert p.status.value == "closed" and [f.rule for f in p.fills] == ["broker_sl"]


def test_the_terminals_reconnects_are_a_metric() -> None:
    # issue 14, case 6: a reconnect is counted where an operator sees it (/metrics), as `riskrail run` wires it
    from prometheus_client import generate_latest

    from engine.service.metrics import Metrics

    fake = FakeTerminal(login=LOGIN, password=PASSWORD, server=SERVER)
    fake.add_symbol("EURUSD", digits=5, volume_step=0.01, volume_min=0.01)
    fake.tick("EURUSD", 1.14500, 1.14502, T0)
    edges = factories.edges("mt5", "mt5", mt5_module=fake,
                            env={"MT5_LOGIN": str(LOGIN), "MT5_PASSWORD": PASSWORD, "MT5_SERVER": SERVER})
    assert edges.reconnects is not None and edges.feed is not None
    metrics = Metrics()
    metrics.broker_reconnects.set_function(edges.reconnects)
    try:
        feed = edges.feed(None)
        feed.poll()
        assert b"riskrail_broker_reconnects 0.0" in generate_latest(metrics.registry)
        fake.go_away(back_after=0)  # the terminal restarts between two polls
        feed.poll()
        assert b"riskrail_broker_reconnects 1.0" in generate_latest(metrics.registry)
    finally:
        edges.close()
