"""Hostile HTTP requests never stop risk management, fuzzed: generated bodies, query parameters and
content types to ``POST /api/positions``, ``POST /api/rules/validate`` and ``POST /api/rules/plan`` on
a real server are answered below 500 (bodies past a route's limit with 413), and the server still
answers ``/healthz`` after each one.

The ``check_*`` functions are the properties; ``bench/fuzz.py`` runs them with many more cases.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings

from engine.service.limits import Limits
from tests.fuzz import embedded_redis, scalping_copy
from tests.fuzz.strategies import Request, api_requests, plan_requests, position_requests, unknown_accounts, validate_requests
from tests.service.conftest import Api, start_service


@dataclass
class ApiRun:
    """A service with a busy account (``acct``) and a quiet one, behind a real uvicorn server."""

    api: Api

    def send(self, req: Request) -> httpx.Response:
        headers = {"content-type": req.content_type} if req.content_type else {}
        content = iter([req.body]) if req.chunked else req.body  # an iterator goes out chunked, without a length
        return self.api.client.post(req.route, params=req.params, content=content, headers=headers)

    def check(self, req: Request) -> None:
        """``req`` is answered below 500, with 413 past the route's body limit, and ``/healthz`` still says ok."""
        r = self.send(req)
        assert r.status_code < 500, (r.status_code, r.text[:500])
        assert "Traceback" not in r.text
        if r.status_code >= 400:  # a refusal is a problem detail that says where each problem is
            assert r.headers["content-type"] == "application/problem+json", r.headers
            body = r.json()
            assert body["status"] == r.status_code and isinstance(body["detail"], str) and body["errors"], body
        if len(req.body) > Limits().body_limit("POST", req.route):
            # with a length it is refused before anything else; sent chunked, a route may refuse it
            # for another reason before reading that far
            assert r.status_code == 413 if not req.chunked else 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        health = self.api.anonymous.get("/healthz")
        assert health.status_code == 200, health.text[:500]


@contextmanager
def api_run(folder: Path | None = None) -> Iterator[ApiRun]:
    """An ``ApiRun`` on an embedded Redis in ``folder`` (a temporary one by default)."""
    with tempfile.TemporaryDirectory(prefix="riskrail-fuzz-") as tmp:
        base = folder or Path(tmp)
        config = scalping_copy(base)
        with embedded_redis(base / "redis") as client:
            svc = start_service(client, config, accounts=("acct", "quiet"))
            try:
                api = Api(svc)
                try:
                    yield ApiRun(api)
                finally:
                    api.close()
            finally:
                svc.stop()


@pytest.fixture(scope="module")
def api(tmp_path_factory) -> Iterator[ApiRun]:
    with api_run(tmp_path_factory.mktemp("fuzz-api")) as run:
        yield run


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(req=position_requests())
def test_any_proposal_is_answered_below_500(api, req: Request) -> None:
    api.check(req)


@settings(SETTINGS, max_examples=20)
@example(req=Request("/api/positions", {"account": "nope"}, b"{}"))
@given(req=position_requests(accounts=unknown_accounts))
def test_a_proposal_for_an_account_this_process_does_not_run_is_answered_below_500(api, req: Request) -> None:
    api.check(req)


@SETTINGS
@given(req=validate_requests())
def test_any_rule_file_to_validate_is_answered_below_500(api, req: Request) -> None:
    api.check(req)


@SETTINGS
@given(req=plan_requests())
def test_any_plan_request_is_answered_below_500(api, req: Request) -> None:
    api.check(req)


@settings(SETTINGS, max_examples=30)
@given(req=api_requests)
def test_any_request_to_any_of_the_three_routes_is_answered_below_500(api, req: Request) -> None:
    api.check(req)
