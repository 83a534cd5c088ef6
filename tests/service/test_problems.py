"""Every error answer of the HTTP API is a problem detail (RFC 9457) that lists every problem of the
request at once: routes, FastAPI's own validation and 404/405, the authentication and the body limits."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fuzz.test_api_fuzz import api_run
from tests.service.conftest import Api


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[Api]:
    with api_run(tmp_path_factory.mktemp("problems")) as run:
        yield run.api


def problem(r: httpx.Response, status: int) -> dict:
    """The body of ``r``, checked to be a problem detail of ``status`` for the request's path."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == "about:blank" and body["title"] and body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"] and body["instance"] == r.request.url.path
    assert body["errors"], body
    for e in body["errors"]:
        assert ("pointer" in e) != ("location" in e) and isinstance(e["detail"], str) and e["detail"], e
    return body


@pytest.mark.parametrize("method, path, kw, status, where", [
    ("GET", "/api/rules", {"anonymous": True}, 401, "header.authorization"),
    ("GET", "/api/no-such-route", {}, 404, "request"),
    ("DELETE", "/api/rules", {}, 405, "request"),
    ("GET", "/api/positions/nope", {}, 404, "path.position_id"),
    ("GET", "/api/risk-management/status", {"params": {"account": "nope"}}, 404, "query.account"),
    ("POST", "/api/jobs/daily_reset", {}, 503, "request"),
    ("POST", "/api/positions", {"content": b"{" + b" " * 70_000 + b"}"}, 413, "request"),
    ("POST", "/api/positions", {"content": b"{not json"}, 422, "body"),
    ("POST", "/api/rules/plan", {"json": {"files": {"../etc/passwd": "x"}}}, 422, "body"),
], ids=["token", "route", "method", "position", "account", "scheduler", "size", "json", "plan-name"])
def test_every_kind_of_refusal_is_a_problem_detail(api, method, path, kw, status, where) -> None:
    client = api.anonymous if kw.pop("anonymous", False) else api.client
    body = problem(client.request(method, path, **kw), status)
    assert [e.get("location", e.get("pointer")) for e in body["errors"]] == [where]


def test_the_token_refusal_still_says_how_to_authenticate(api) -> None:
    r = api.anonymous.get("/api/rules")
    assert r.headers["www-authenticate"] == "Bearer" and "Authorization: Bearer" in problem(r, 401)["detail"]


def test_query_parameters_list_every_problem_at_once(api) -> None:
    body = problem(api.client.get("/api/actions", params={"limit": 0, "since": "abc"}), 422)
    assert {e["location"] for e in body["errors"]} == {"query.limit", "query.since"}
    since = next(e for e in body["errors"] if e["location"] == "query.since")
    assert since["detail"].startswith("expected a cursor MILLISECONDS-SEQUENCE")  # our words, not pydantic's prefix
    assert body["detail"].startswith("2 problems in the request: ") and "query.limit" in body["detail"]


def test_a_malformed_proposal_lists_every_malformed_field(api) -> None:
    r = api.client.post("/api/positions", json={"position_id": "M1", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                                                "action": "HOLD", "volume": "lots", "entry_price": -1})
    body = problem(r, 422)
    assert {e["pointer"]: e["detail"] for e in body["errors"]} == {
        "/action": "expected BUY or SELL, found 'HOLD'",
        "/volume": "expected a number, found 'lots'",
        "/entry_price": "expected a number above 0, found -1.0",
    }
    assert body["outcome"] == "malformed" and "3 problems in the proposal" in body["detail"]


def test_a_rejected_proposal_lists_every_failed_check(api) -> None:
    r = api.client.post("/api/positions", json={"position_id": "R1", "symbol": "EURUSD", "strategy_type": "swing",
                                                "action": "BUY", "volume": 50, "entry_price": 1.1457, "stop_loss": 1.2})
    body = problem(r, 422)
    assert body["outcome"] == "rejected" and body["position_id"] == "R1" and len(body["failed_checks"]) >= 2
    assert [e["detail"] for e in body["errors"]] == body["failed_checks"] and all(e["pointer"] == "" for e in body["errors"])


def test_validate_lists_the_problems_of_the_request_then_those_of_the_file(api) -> None:
    body = problem(api.client.post("/api/rules/validate", params={"file": "../x.yaml"}, content=b"name: x\n"), 422)
    assert [e["location"] for e in body["errors"]] == ["query.file", "query.kind"]
    text = b"name: scalp\nmax_positions: many\nallocation: {target: 0.5, min: 0.6, max: 0.7, rebalance_threshold: 0.05}\n"
    body = problem(api.client.post("/api/rules/validate", params={"kind": "strategy"}, content=text), 422)
    assert body["kind"] == "strategy" and len(body["errors"]) >= 2
    assert all(e["location"].startswith("<strategy>:") and e["line"] >= 1 for e in body["errors"])
    assert any(e["location"].startswith("<strategy>:2:") and "max_positions" in e["path"] for e in body["errors"])


def test_a_plan_body_lists_every_field_that_is_wrong(api) -> None:
    body = problem(api.client.post("/api/rules/plan", json={"files": {"strategies/a.yaml": 1, "strategies/b.yaml": [2]}}), 422)
    assert {e["pointer"] for e in body["errors"]} == {"/files/strategies~1a.yaml", "/files/strategies~1b.yaml"}
