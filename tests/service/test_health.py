"""/healthz and /readyz tell the truth about a real service: Redis, and each account's engine."""

from __future__ import annotations

import re
from pathlib import Path

from engine.service.store import connect
from tests.service.conftest import Api, demo_events, drained, publish, start_service, wait_for
from tests.service.test_redis_restart import free_port
from tests.service.test_redis_restart import redis_server as start_redis


def gauge(metrics: str, name: str) -> float | None:
    m = re.search(rf"^{re.escape(name)} (\S+)$", metrics, re.M)
    return float(m.group(1)) if m else None


def test_a_deciding_service_is_ready_with_its_lag_and_last_decision(redis_server, scalping) -> None:
    svc = start_service(redis_server, scalping)
    api = Api(svc)
    try:
        publish(redis_server, "acct", demo_events()[:200])
        wait_for(lambda: drained(redis_server, "acct"))
        wait_for(lambda: api.anonymous.get("/readyz").status_code == 200, 10, "/readyz to say ready")
        ready = api.anonymous.get("/readyz").json()
        assert ready["status"] == "ready" and ready["problems"] == [] and ready["redis"] is True
        acct = ready["accounts"]["acct"]
        assert acct["state"] == "deciding" and acct["lag"] == 0 and acct["rules_version"] == svc.version
        assert acct["last_decision_age_s"] is not None and acct["last_decision_age_s"] < 60
        live = api.anonymous.get("/healthz")
        assert live.status_code == 200 and live.json()["status"] == "ok" and live.json()["accounts"] == ["acct"]
        assert "/readyz" in api.client.get("/openapi.json").json()["paths"]
        metrics = api.client.get("/metrics").text
        assert gauge(metrics, "riskrail_accounts_stalled") == 0
        assert gauge(metrics, 'riskrail_input_lag{account="acct"}') == 0
    finally:
        api.close()
        svc.stop()


def test_a_redis_stop_makes_the_accounts_not_ready_and_the_process_degraded_until_it_is_back(tmp_path: Path, scalping) -> None:
    port = free_port()
    server = start_redis(tmp_path, port)
    client = connect(f"redis://127.0.0.1:{port}/0")
    svc = start_service(client, scalping)
    api = Api(svc)
    try:
        wait_for(lambda: api.anonymous.get("/readyz").status_code == 200, 10, "/readyz to say ready")
        server.terminate()
        server.wait(10)
        seen: dict = {}

        def stalled() -> bool:  # while Redis is away the engine tries again now and then: judge the answer seen
            seen["ready"] = api.anonymous.get("/readyz")
            return seen["ready"].json()["accounts"]["acct"]["state"] == "stalled"

        wait_for(stalled, 30, "the engine to notice Redis is gone")
        ready = seen["ready"]
        assert ready.status_code == 503 and ready.json()["status"] == "not ready"
        problems = ready.json()["problems"]
        assert "Redis is not reachable" in problems and any(p.startswith("account acct: stalled") for p in problems)
        assert ready.json()["accounts"]["acct"]["lag"] is None  # unknown while Redis is away
        live = api.anonymous.get("/healthz")
        assert live.status_code == 503 and live.json()["status"] == "degraded" and live.json()["redis"] is False
        metrics = api.client.get("/metrics").text
        assert gauge(metrics, "riskrail_accounts_stalled") == 1 and "riskrail_input_lag{" not in metrics
        server = start_redis(tmp_path, port)
        wait_for(lambda: api.anonymous.get("/readyz").status_code == 200, 30, "the engine to come back")
        assert api.anonymous.get("/healthz").status_code == 200
    finally:
        api.close()
        svc.stop()
        server.terminate()
        server.wait(10)


class _BrokenBroker:
    """A broker whose fill polling fails with an unexpected error each time: its engine fails and rebuilds forever."""

    def execute(self, action, quotes):
        return []

    def poll(self):
        raise RuntimeError("the broker link is broken")


def test_an_account_whose_engine_keeps_failing_is_stalled_not_ready_and_counted(redis_server, scalping) -> None:
    svc = start_service(redis_server, scalping, broker_factory=lambda account: _BrokenBroker())
    api = Api(svc)
    seen: dict = {}

    def answers(path: str, status: int) -> bool:  # the engine keeps rebuilding: judge the answer that was seen
        seen[path] = api.anonymous.get(path)
        return seen[path].status_code == status

    try:
        wait_for(lambda: answers("/healthz", 503), 30, "/healthz to say degraded")
        live = seen["/healthz"].json()
        assert live["status"] == "degraded" and live["redis"] is True
        assert any("account acct: stalled" in p and "RuntimeError" in p for p in live["problems"]), live
        wait_for(lambda: answers("/readyz", 503), 30, "/readyz to say not ready")
        acct = seen["/readyz"].json()["accounts"]["acct"]
        assert acct["state"] != "deciding" and acct["failures"] >= 1
        wait_for(lambda: gauge(api.client.get("/metrics").text, "riskrail_accounts_stalled") == 1, 30, "the stalled gauge")
    finally:
        api.close()
        svc.stop()
