"""The HTTP API on a real uvicorn server over a service on a real Redis."""

from __future__ import annotations

import json

import pytest

from engine.service.store import Keys
from tests.conftest import edit
from tests.service.conftest import (
    Api,
    demo_events,
    drained,
    publish,
    start_service,
    wait_for,
)


@pytest.fixture
def api(redis_server, scalping):
    svc = start_service(redis_server, scalping, watch=True, scheduler=True)
    api = Api(svc)
    yield api, svc, scalping
    api.close()
    svc.stop()


def test_every_endpoint_but_healthz_needs_the_bearer_token(api) -> None:
    client, anonymous = api[0].client, api[0].anonymous
    assert anonymous.get("/healthz").json()["status"] == "ok"
    for path in ("/metrics", "/api/risk-management/status", "/api/position-management/portfolio-summary",
                 "/api/position-management/optimization-results", "/api/positions", "/api/actions", "/api/rules"):
        assert anonymous.get(path).status_code == 401, path
        assert anonymous.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert client.get(path).status_code == 200, path
    assert anonymous.post("/api/rules/reload").status_code == 401
    assert "/api/risk-management/status" in client.get("/openapi.json").json()["paths"]


def test_monitoring_endpoints_follow_the_live_book(api, redis_server) -> None:
    a, svc, _ = api
    events = demo_events()
    publish(redis_server, "acct", events[:1500])
    wait_for(lambda: drained(redis_server, "acct"))
    status = a.client.get("/api/risk-management/status").json()
    assert status["rules_version"] == svc.version
    open_ids = {p["id"] for p in status["active_positions"]}
    assert open_ids and all(p["status"] in ("open", "partially_closed") for p in status["active_positions"])
    assert {t["position_id"] for t in status["trailing_stops"]} <= open_ids
    summary = a.client.get("/api/position-management/portfolio-summary").json()
    assert set(summary["allocations"]) == {"scalp_revert", "scalp_trend"}
    before = summary["pnl"]["unrealized"]
    publish(redis_server, "acct", events[1500:1700])
    wait_for(lambda: drained(redis_server, "acct"))
    after = a.client.get("/api/position-management/portfolio-summary").json()
    # and the clock events the scheduler sent while the account waited (examples/scalping reads the time)
    clocks = sum(json.loads(f[b"event"])["type"] == "clock" for _, f in redis_server.xrange(Keys().stream("acct", "in")))
    assert after["metrics"]["events"] == 1700 + clocks and after["pnl"]["unrealized"] != before
    page = a.client.get("/api/actions", params={"limit": 5}).json()
    assert len(page["actions"]) == 5
    rest = a.client.get("/api/actions", params={"since": page["next"], "limit": 1000}).json()
    ids = [x["id"] for x in page["actions"] + rest["actions"]]
    assert len(ids) == len(set(ids)) and len(ids) > 20
    one = a.client.get(f"/api/positions/{next(iter(open_ids))}").json()
    assert one["audit"] and one["audit"][0]["rules_version"] == svc.version
    assert a.client.get("/api/positions/nope").status_code == 404
    metrics = a.client.get("/metrics").text
    for name in ("riskrail_positions_managed", "riskrail_optimizations_performed_total", "riskrail_risk_events_processed_total",
                 "riskrail_rebalancing_actions_total", "riskrail_tick_to_action_seconds_bucket", "riskrail_reloads_total",
                 "riskrail_last_reload_success"):
        assert name in metrics, name
    assert 'riskrail_risk_events_processed_total{type="tick"}' in metrics


def test_proposing_over_http_returns_the_managed_position_or_every_failed_check(api, redis_server) -> None:
    a, _, _ = api
    events = demo_events()[:50]
    publish(redis_server, "acct", events)  # quotes first
    wait_for(lambda: drained(redis_server, "acct"))
    # stamped in the time of the recorded quotes (a proposal defaults to now, years after them: a stale quote)
    ts = max(e["ts"] for e in events if e["type"] == "tick") + 1
    ok = a.client.post("/api/positions", json={"position_id": "H1", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                                               "action": "BUY", "volume": 0.1, "entry_price": 1.1457, "ts": ts})
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert body["position"]["status"] == "open" and body["position"]["stop_loss"] == 1.14536  # 1.1457 * (1 - 0.0003), up to the tick
    assert [x["type"] for x in body["actions"]] == ["set_stop_loss", "set_take_profit"]
    assert a.client.post("/api/positions", json={"position_id": "H1", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                                                 "action": "BUY", "volume": 0.1, "entry_price": 1.1457}).status_code == 409
    bad = a.client.post("/api/positions", json={"position_id": "H2", "symbol": "EURUSD", "strategy_type": "swing",
                                                "action": "BUY", "volume": 50, "entry_price": 1.1457, "stop_loss": 1.2})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    failed = bad.json()["failed_checks"]
    assert any("unknown strategy 'swing'" in f for f in failed)
    assert [e["detail"] for e in bad.json()["errors"]] == failed and bad.json()["outcome"] == "rejected"
    malformed = a.client.post("/api/positions", json={"position_id": "H3", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                                                      "action": "HOLD", "volume": 1, "entry_price": 1.1})
    assert malformed.status_code == 422 and "BUY or SELL" in malformed.text
    listed = a.client.get("/api/positions", params={"status": "rejected"}).json()["positions"]
    assert [p["id"] for p in listed] == ["H2"]


def test_rules_endpoints_validate_a_body_and_reload_with_errors_shown(api) -> None:
    a, svc, config = api
    rules = a.client.get("/api/rules").json()
    assert rules["version"] == svc.version and rules["loaded_at"]
    good = (config / "strategies" / "scalp_trend.yaml").read_text()
    r = a.client.post("/api/rules/validate", params={"file": "strategies/scalp_trend.yaml"}, content=good)
    assert r.status_code == 200 and r.json()["ok"]
    r = a.client.post("/api/rules/validate", params={"kind": "strategy"}, content=good.replace("defaults:", "default:"))
    assert r.status_code == 422
    problem = r.json()["errors"][0]
    assert problem["line"] >= 1 and problem["column"] >= 1 and "default" in problem["text"]
    svc.reloader.stop()  # this test drives reloads through the API only
    edit(config / "strategies" / "scalp_trend.yaml", "stop_loss: 0.0003", "stop_loss: -0.0003")
    r = a.client.post("/api/rules/reload")
    assert r.status_code == 422 and not r.json()["ok"] and "scalp_trend.yaml" in r.json()["errors"][0]["text"]
    shown = a.client.get("/api/rules").json()
    assert shown["version"] == rules["version"] and shown["last_reload"]["ok"] is False
    assert "riskrail_last_reload_success 0.0" in a.client.get("/metrics").text


def test_plan_dry_runs_a_rule_change_against_the_recorded_history(api, redis_server) -> None:
    a, svc, config = api
    publish(redis_server, "acct", demo_events())
    wait_for(lambda: drained(redis_server, "acct"))
    original = (config / "strategies" / "scalp_trend.yaml").read_text()
    # a plan replays the journal through two rule sets in a child process: give a busy machine its time
    same = a.client.post("/api/rules/plan", json={"files": {"strategies/scalp_trend.yaml": original}}, timeout=300)
    assert same.status_code == 200, same.text
    assert same.json()["changed"] is False and same.json()["events"] == len(demo_events())
    wider = original.replace("trailing_distance: 0.0001", "trailing_distance: 0.0003")
    changed = a.client.post("/api/rules/plan", json={"files": {"strategies/scalp_trend.yaml": wider}}, timeout=300)
    body = changed.json()
    assert changed.status_code == 200 and body["changed"] is True
    assert body["base_version"] == svc.version != body["proposed_version"]
    assert body["report"]["changes"], body["report"].keys()
    assert svc.version == body["base_version"]  # a plan changes nothing live
    broken = a.client.post("/api/rules/plan", json={"files": {"strategies/scalp_trend.yaml": original.replace("defaults:", "default:")}})
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["text"].startswith("strategies/scalp_trend.yaml:")
    assert a.client.post("/api/rules/plan", json={"files": {"../etc/passwd": "x"}}).status_code == 422
    assert a.anonymous.post("/api/rules/plan", json={"files": {}}).status_code == 401
