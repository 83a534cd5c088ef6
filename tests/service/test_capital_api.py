"""Capital over the API: shares, utilization, bands and the weekly target in the seed endpoints; an operator
accepts an optimization plan, the capital moves, a restart keeps it, and a second run finds nothing to do."""

from __future__ import annotations

import json

import pytest

from engine.adapters.files import read_ticks
from engine.config import load_config
from engine.events import to_json
from engine.rules import allocation
from engine.service.store import Keys
from tests.conftest import ROOT
from tests.service.conftest import TICKS, Api, drained, publish, start_service, wait_for


def desk_events() -> list[dict]:
    """The real EURUSD hour with one long or short of 0.1 lot per shipped strategy, pip-sized stops."""
    ticks = [to_json(e) for _, _, e in read_ticks(str(TICKS), "EURUSD")]
    t0 = ticks[0]
    out = [t0]
    for i, name in enumerate(sorted(load_config(str(ROOT)).strategies)):
        side = 1 if i % 2 == 0 else -1
        entry = t0["ask"] if side > 0 else t0["bid"]
        out.append({"type": "position_opened", "ts": t0["ts"] + 1 + i, "position_id": f"p{i}", "symbol": "EURUSD",
                    "strategy_type": name, "action": "BUY" if side > 0 else "SELL", "volume": 0.1, "entry_price": entry,
                    "stop_loss": round(entry - side * 0.0008, 5), "take_profit": round(entry + side * 0.0016, 5)})
    return out + ticks[1:]


def optimized(redis_server, svc, before: dict | None = None) -> dict:
    """The result of an optimizer run asked now (a new result object, not ``before``)."""
    redis_server.xadd(Keys().stream("acct", "in"), {"job": "optimize_portfolio"})
    w = svc.workers["acct"]
    wait_for(lambda: w.last_optimization is not None and w.last_optimization is not before, what="an optimizer run")
    return w.last_optimization


def test_an_accepted_plan_moves_capital_and_a_restart_keeps_it(redis_server, config_copy) -> None:
    svc = start_service(redis_server, config_copy)
    api = Api(svc)
    try:
        publish(redis_server, "acct", desk_events())
        wait_for(lambda: drained(redis_server, "acct"))
        summary = api.client.get("/api/position-management/portfolio-summary").json()
        for a in summary["allocations"].values():
            assert {"capital", "capital_share", "utilization", "min", "max", "target", "band_state"} <= set(a)
        assert sum(a["capital_share"] for a in summary["allocations"].values()) == pytest.approx(1.0)
        assert {"progress", "target", "reached"} <= set(summary["weekly_target"])
        status = api.client.get("/api/risk-management/status").json()
        assert len(status["allocations"]) == 6 and "weekly_target" in status
        metrics = api.client.get("/metrics").text
        share = summary["allocations"]["arbitrage"]["capital_share"]
        assert any(line.startswith('riskrail_allocation_ratio{account="acct",strategy="arbitrage"}')
                   and float(line.split()[-1]) == pytest.approx(share, rel=1e-3) for line in metrics.splitlines())
        assert 'riskrail_utilization_ratio{account="acct",strategy="arbitrage"}' in metrics
        assert 'riskrail_weekly_target_progress_ratio{account="acct"}' in metrics

        first = optimized(redis_server, svc)
        results = api.client.get("/api/position-management/optimization-results").json()
        assert results["ts"] == first["ts"] and results["implementation_plan"], results
        assert not results["applied"] and results["expected_impact"]["after"]["max_drawdown"] is not None
        assert set(results["allocations"]) == set(summary["allocations"])
        assert isinstance(results["warnings"], list)
        assert api.client.post("/api/position-management/rebalance", json={"optimization": first["ts"] - 1}).status_code == 409
        accepted = api.client.post("/api/position-management/rebalance", json={"optimization": first["ts"]})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["applied_by"] == "admin"
        shares = {n: a["capital_share"] for n, a in
                  api.client.get("/api/position-management/portfolio-summary").json()["allocations"].items()}
        assert shares == pytest.approx(results["after"], abs=1e-9)
        assert api.client.post("/api/position-management/rebalance", json={"optimization": first["ts"]}).status_code == 409
        records = [json.loads(f[b"record"]) for _, f in redis_server.xrange(Keys().stream("acct", "journal"))]
        applied = [r for r in records if r["kind"] == "job" and r.get("shares")]
        assert len(applied) == 1 and applied[0]["by"] == "admin" and applied[0]["shares"] == pytest.approx(results["after"])
        rebalances = [a for a in api.client.get("/api/actions", params={"limit": 1000}).json()["actions"] if a["type"] == "rebalance"]
        assert len(rebalances) == len(results["implementation_plan"])
        second = optimized(redis_server, svc, before=first)
        assert second["implementation_plan"] == [] and second["plan_note"]
    finally:
        api.close()
        svc.stop()
    again = start_service(redis_server, config_copy)
    try:
        engine_shares = again.workers["acct"].call(lambda e: {n: f["capital_share"] for n, f in allocation.figures(e).items()})
        assert engine_shares == pytest.approx(shares, abs=1e-9)
    finally:
        again.stop()
