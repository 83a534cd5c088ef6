"""Time passes for the service's rules without a quote: the scheduler sends an idle account clock events
every risk_update_frequency, so a max holding time closes a position with no tick."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.service.store import Keys, text
from tests.service.conftest import start_service, wait_for


def test_an_idle_account_gets_clock_events_and_a_max_holding_time_closes_without_a_tick(redis_server, scalping: Path) -> None:
    path = scalping / "strategies" / "scalp_trend.yaml"
    path.write_text(path.read_text().replace("exit_levels:\n", "max_holding_time: 2s\nexit_levels:\n", 1))
    svc = start_service(redis_server, scalping, scheduler=True)
    k = Keys()
    try:
        assert svc.jobs is not None and svc.jobs.clock_every_ms == 500  # schedules.yaml's default: the rules read the time
        now = int(time.time() * 1000)
        svc.publish({"type": "tick", "ts": now, "symbol": "EURUSD", "bid": 1.14500, "ask": 1.14502}, "acct")
        svc.publish({"type": "position_opened", "ts": now + 1, "position_id": "t1", "symbol": "EURUSD",
                     "strategy_type": "scalp_trend", "action": "BUY", "volume": 0.1, "entry_price": 1.14502}, "acct")

        def closed() -> list[dict]:
            actions = [json.loads(text(f[b"action"])) for _, f in redis_server.xrange(k.stream("acct", "actions"))]
            return [a for a in actions if a["type"] == "close" and a["rule"] == "max_holding_time"]
        wait_for(lambda: closed() != [], 30, "the close at the max holding time")
        [close] = closed()
        assert close["position_id"] == "t1" and close["params"]["price"] == 1.14500 and close["ts"] >= now + 2_001
        clocks = [json.loads(text(f[b"event"])) for _, f in redis_server.xrange(k.stream("acct", "in"))
                  if json.loads(text(f[b"event"]))["type"] == "clock"]
        assert clocks and all(c["ts"] >= now for c in clocks)
    finally:
        svc.stop()


def test_a_clock_event_continues_the_accounts_event_time_at_wall_speed() -> None:
    from engine.service.scheduler import clock_time

    entry = (b"1700000000000-0", {b"event": json.dumps({"type": "tick", "ts": 1_549_238_400_000}).encode()})
    assert clock_time(entry, 1_700_000_000_400, 500) is None  # something arrived within the period
    assert clock_time(entry, 1_700_000_000_500, 500) == 1_549_238_400_500  # a recorded feed: its own time goes on
    assert clock_time((b"1700000000000-0", {b"job": b"optimize_portfolio"}), 1_700_000_001_000, 500) == 1_700_000_001_000
    assert clock_time(None, 1_700_000_001_000, 500) == 1_700_000_001_000  # no input yet: wall time
