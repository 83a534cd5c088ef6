"""The embeddable async API: a pipeline's own asyncio program drives the engine, with the HTTP API's shapes."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from engine.errors import ConfigError, OptimizationError
from engine.events import EventError
from engine.service.coordinator import Coordinator
from tests.service.conftest import demo_events


def run(coro):
    return asyncio.run(coro)


def test_a_pipeline_adds_positions_feeds_ticks_reads_status_and_optimizes(scalping) -> None:
    async def pipeline():
        async with Coordinator.from_config(str(scalping)) as coord:
            events = demo_events()
            await coord.tick("EURUSD", bid=1.14543, ask=1.14545, ts=events[0]["ts"] - 1)
            placed = await coord.add_position({"position_id": "C1", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                                               "action": "BUY", "volume": 0.1, "entry_price": 1.14545, "ts": events[0]["ts"]})
            refused = await coord.add_position({"position_id": "C2", "symbol": "EURUSD", "strategy_type": "swing",
                                                "action": "BUY", "volume": 0.1, "entry_price": 1.14545, "ts": events[0]["ts"]})
            with pytest.raises(EventError, match="already exists"):
                await coord.add_position({"position_id": "C1", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                                          "action": "BUY", "volume": 0.1, "entry_price": 1.14545})
            actions = []
            for e in events:
                actions += await coord.process(e)
            status = await coord.status()
            summary = await coord.portfolio_summary()
            result = await coord.optimize()
            return placed, refused, actions, status, summary, result

    placed, refused, actions, status, summary, result = run(pipeline())
    assert placed["status"] == "open" and placed["position"]["id"] == "C1"
    assert [a["type"] for a in placed["actions"]] == ["set_stop_loss", "set_take_profit"]
    assert refused["status"] == "rejected" and any("unknown strategy 'swing'" in r for r in refused["failed_checks"])
    assert any(a["position_id"] == "C1" and a["type"] in ("close", "close_partial") for a in actions)
    assert set(status) >= {"active_positions", "trailing_stops", "partial_profit", "dynamic_sltp_adjustments", "daily_loss"}
    assert set(summary["allocations"]) == {"scalp_revert", "scalp_trend"}
    assert result["status"] == "ok" and abs(sum(result["targets"].values()) - 1) < 1e-9


def test_the_event_loop_is_not_blocked_and_the_engine_stays_on_one_thread(scalping) -> None:
    async def main():
        coord = Coordinator.from_config(str(scalping))
        await coord.start()
        seen: set[int] = set()
        original = coord._engine.process

        def slow(event, seq=None):  # an engine that takes its time on every event
            seen.add(threading.get_ident())
            time.sleep(0.05)
            return original(event, seq)

        coord._engine.process = slow
        times = {}

        async def ticks():
            await asyncio.gather(*[coord.tick("EURUSD", 1.1454 + i * 1e-5, ts=1_549_238_400_000 + i) for i in range(10)])
            times["ticks done"] = time.monotonic()

        async def meanwhile():
            await asyncio.sleep(0.01)
            times["loop ran"] = time.monotonic()

        await asyncio.gather(ticks(), meanwhile())
        await coord.close()
        return seen, times

    seen, times = run(main())
    assert len(seen) == 1 and threading.get_ident() not in seen
    # the engine was busy for 0.5 s; the loop ran other work long before it was done
    assert times["ticks done"] - times["loop ran"] > 0.3


def test_bad_rules_and_too_little_history_raise_riskrail_errors(scalping) -> None:
    (scalping / "strategies" / "scalp_trend.yaml").write_text("name: scalp_trend\nallocation: {target: 2}\n")

    async def broken():
        async with Coordinator.from_config(str(scalping)):
            pass

    with pytest.raises(ConfigError):
        run(broken())


def test_optimizing_without_history_says_so(scalping) -> None:
    async def early():
        async with Coordinator.from_config(str(scalping)) as coord:
            await coord.tick("EURUSD", 1.1454, ts=1_549_238_400_000)
            await coord.optimize()

    with pytest.raises(OptimizationError, match="not enough history"):
        run(early())


def test_the_coordinator_takes_over_a_position_only_when_allowed(tmp_path) -> None:
    import asyncio

    import pytest

    from engine.events import EventError
    from engine.service.coordinator import Coordinator
    from tests.conftest import ROOT

    big = {"position_id": "BIG", "symbol": "EURUSD", "strategy_type": "arbitrage", "action": "BUY", "volume": 1000.0,
           "entry_price": 1.1, "existing": True, "ts": 1549238500000}

    async def go(allow: bool):
        c = Coordinator.from_config(str(ROOT), allow_takeover=allow)
        try:
            return await c.add_position(big)
        finally:
            await c.close()

    with pytest.raises(EventError, match="allow_takeover"):
        asyncio.run(go(False))
    assert asyncio.run(go(True))["status"] == "open"
