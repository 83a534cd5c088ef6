"""POST /api/positions crosses the same validation boundary as the input stream: a hostile body is a
422 that says why (never a 500), a takeover needs --allow-takeover (403), and what reaches the stream
is the validated event, not the body."""

from __future__ import annotations

import json

import pytest

from engine.service.store import Keys, text
from tests.service.conftest import Api, demo_events, drained, publish, start_service, wait_for

GOOD = {"position_id": "p-1", "symbol": "EURUSD", "strategy_type": "scalp_trend", "strategy_name": "s", "action": "BUY",
        "volume": 0.01, "entry_price": 1.1457, "ts": 1549238500000}


@pytest.fixture(scope="module")
def api(module_redis, module_scalping):
    """One service for the module: the hostile proposals never reach it, the others use ids of their own."""
    svc = start_service(module_redis, module_scalping)
    publish(module_redis, "acct", demo_events()[:50])  # quotes, so a proposal can be priced
    wait_for(lambda: drained(module_redis, "acct"))
    api = Api(svc)
    yield api, svc
    api.close()
    svc.stop()


@pytest.mark.parametrize("body, word", [
    ((b'{"position_id": "p-x", "symbol": "EURUSD", "strategy_type": "scalp_trend", "action": "BUY", "volume": 0.01, '
      b'"entry_price": 1.1457, "note": NaN}'), "note: expected a finite number, found NaN"),
    (json.dumps({**GOOD, "ts": 10**18}).encode(), "nanoseconds"),
    (json.dumps({**GOOD, "ts": "9999-12-31T23:59:59+00:00"}).encode(), "between 2000-01-01 and 2100-01-01"),
    (json.dumps({**GOOD, "ts": 10**30}).encode(), "digits"),
    (json.dumps({**GOOD, "entry_price": 1e308}).encode(), "entry_price: expected a number up to"),
    (json.dumps({**GOOD, "volume": 10**400}).encode(), "digits"),
    (b'{"position_id": "p-x", "x": ' + b"[" * 50 + b"]" * 50 + b"}", "nested"),
    (b'\xff\xfe{}', "UTF-8"),
    (b"[]", "expected a JSON object"),
    (json.dumps({**GOOD, "position_id": "x" * 500}).encode(), "at most 128 characters"),
])
def test_a_hostile_proposal_is_a_422_that_says_why(api, body: bytes, word: str) -> None:
    a, _ = api
    r = a.client.post("/api/positions?account=acct", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json" and word in r.json()["detail"]


def test_a_takeover_through_the_api_needs_allow_takeover(api) -> None:
    a, svc = api
    r = a.client.post("/api/positions?account=acct", json={**GOOD, "position_id": "BIG", "volume": 1000.0, "existing": True})
    assert r.status_code == 403 and "--allow-takeover" in r.json()["detail"]
    assert svc.workers["acct"].call(lambda e: "BIG" in e.book.positions) is False


def test_what_reaches_the_stream_is_the_validated_event_not_the_body(api, module_redis) -> None:
    a, _ = api
    r = a.client.post("/api/positions?account=acct", json={**GOOD, "comment": "<img src=x onerror=alert(1)>", "extra": [1, 2]})
    assert r.status_code in (201, 422), r.text  # decided either way; a rejection is a 422 with the failed checks
    last = module_redis.xrevrange(Keys().stream("acct", "in"), count=1)[0][1]
    event = json.loads(text(last[b"event"]))
    assert event["position_id"] == "p-1" and "comment" not in event and "extra" not in event
