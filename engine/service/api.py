"""The HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Every endpoint but ``/healthz`` (and the static dashboard page, which holds no data) needs
``Authorization: Bearer <token>``. Account-scoped endpoints take ``?account=`` (default: the service's
first account) and answer for the accounts this process runs.
"""

from __future__ import annotations

import hmac
import json
import time
from concurrent.futures import TimeoutError as FutureTimeout
from importlib import resources
from typing import Any

import redis
from fastapi import Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.errors import RiskrailError
from engine.events import EventError
from engine.service import views
from engine.service.reload import problem_json
from engine.service.service import Service
from engine.service.store import text


def create_app(service: Service, token: str) -> FastAPI:
    app = FastAPI(title="riskrail", version="0.1.0",
                  description="Position management and portfolio risk: status, positions, actions, rules, metrics.")
    bearer = HTTPBearer(auto_error=False)

    def auth(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if creds is None or creds.scheme.lower() != "bearer" or not hmac.compare_digest(creds.credentials.encode(), token.encode()):
            raise HTTPException(401, "expected the header Authorization: Bearer <token> (RISKRAIL_API_TOKEN, or the token `riskrail run` printed)",
                                headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(auth)]

    @app.exception_handler(RiskrailError)
    async def _riskrail_error(request: Request, exc: RiskrailError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(redis.RedisError)
    async def _redis_error(request: Request, exc: redis.RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"Redis is not reachable ({exc}); the engine retries"}, status_code=503)

    def on_engine(account: str | None, fn):
        try:
            return service.worker(account).call(fn)
        except FutureTimeout:
            raise HTTPException(503, "the engine did not answer within 10 s") from None

    @app.get("/healthz", tags=["monitoring"])
    def healthz() -> JSONResponse:
        try:
            service.redis.ping()
            redis_ok = True
        except redis.RedisError:
            redis_ok = False
        body = {"status": "ok" if redis_ok else "degraded", "redis": redis_ok, "rules_version": service.version,
                "accounts": sorted(a for a, w in service.workers.items() if w.ready.is_set() and not w.stopped.is_set()),
                "scheduler": bool(service.jobs and service.jobs.running), "uptime_s": round(time.time() - service.started_at, 1)}
        return JSONResponse(body, status_code=200 if redis_ok else 503)

    @app.get("/metrics", dependencies=guarded, tags=["monitoring"])
    def metrics() -> Response:
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/risk-management/status", dependencies=guarded, tags=["monitoring"])
    def risk_status(account: str | None = None) -> dict[str, Any]:
        return {"account": account or service.default_account, **on_engine(account, views.risk_status)}

    @app.get("/api/position-management/portfolio-summary", dependencies=guarded, tags=["monitoring"])
    def portfolio_summary(account: str | None = None) -> dict[str, Any]:
        w = service.worker(account)
        return {"account": w.account, **on_engine(account, lambda e: views.portfolio_summary(e, w.last_optimization))}

    @app.get("/api/position-management/optimization-results", dependencies=guarded, tags=["monitoring"])
    def optimization_results(account: str | None = None) -> dict[str, Any]:
        w = service.worker(account)
        last = w.last_optimization
        if last is None:
            return {"account": w.account, "status": "none yet", "recommendations": [], "targets": {}, "implementation_plan": [],
                    "expected_impact": None,
                    "next_run": _next_run(service, "optimize_portfolio")}
        return {"status": "ok" if "error" not in last else "failed", **last, "next_run": _next_run(service, "optimize_portfolio")}

    # --- positions ------------------------------------------------------------------------------------

    @app.get("/api/positions", dependencies=guarded, tags=["positions"])
    def list_positions(account: str | None = None, status: str | None = Query(None, description="open, closed, rejected, partially_closed")) -> dict[str, Any]:
        return {"positions": on_engine(account, lambda e: views.positions(e, status))}

    @app.get("/api/positions/{position_id}", dependencies=guarded, tags=["positions"])
    def get_position(position_id: str, account: str | None = None) -> dict[str, Any]:
        def one(e):
            p = e.book.positions.get(position_id)
            return None if p is None else views.position(e, p, audit=True)

        found = on_engine(account, one)
        if found is None:
            raise HTTPException(404, f"no position {position_id!r}")
        return found

    @app.post("/api/positions", dependencies=guarded, tags=["positions"], status_code=201)
    def propose(body: dict[str, Any] = Body(..., examples=[{"position_id": "p-1", "symbol": "EURUSD", "strategy_type": "arbitrage",
                                                            "strategy_name": "arb-eu-1", "action": "BUY", "volume": 0.05,
                                                            "entry_price": 1.1458}]),
                account: str | None = None, timeout: float = Query(5.0, gt=0, le=60)) -> JSONResponse:
        w = service.worker(account)
        try:
            obj, event = views.proposal(body, int(time.time() * 1000))
        except EventError as exc:
            raise HTTPException(422, {"message": str(exc)}) from None
        if on_engine(account, lambda e: event.position_id in e.book.positions):
            raise HTTPException(409, f"position {event.position_id!r} already exists")
        fut = w.expect_position(event.position_id)
        entry = w.publish(obj)
        try:
            decision = fut.result(timeout)
        except FutureTimeout:
            return JSONResponse({"status": "pending", "entry": entry, "position_id": event.position_id,
                                 "detail": "queued; not decided yet (see GET /api/positions/{id})"}, status_code=202)
        result = on_engine(account, lambda e: views.outcome(e, event.position_id, decision.actions))
        if result["status"] == "rejected":
            return JSONResponse({"detail": result}, status_code=422)
        return JSONResponse({**result, "entry": entry}, status_code=201)

    # --- actions -------------------------------------------------------------------------------------

    @app.get("/api/actions", dependencies=guarded, tags=["actions"])
    def actions(since: str = Query("0-0", description="cursor: the `next` of the previous page"), limit: int = Query(100, ge=1, le=1000),
                account: str | None = None) -> dict[str, Any]:
        key = service.keys.stream(account or service.default_account, "actions")
        entries = service.redis.xrange(key, min=f"({since}" if since not in ("0-0", "-") else "-", max="+", count=limit)
        out = [json.loads(f[b"action"]) for _, f in entries]
        return {"actions": out, "next": text(entries[-1][0]) if entries else since}

    # --- rules -----------------------------------------------------------------------------------------

    @app.get("/api/rules", dependencies=guarded, tags=["rules"])
    def rules() -> dict[str, Any]:
        version, loaded_at, last = service.rules_state()
        return {"version": version, "loaded_at": loaded_at, "config": service.config_dir,
                "last_reload": last.to_json() if last else None,
                "strategies": sorted(service.active_rules().strategies)}

    @app.post("/api/rules/validate", dependencies=guarded, tags=["rules"])
    async def validate(request: Request, kind: str | None = Query(None, description="strategy, limits, allocation, profit, custom, instruments, schedules"),
                       file: str | None = Query(None, description="where the file would lie, e.g. strategies/arbitrage.yaml")) -> JSONResponse:
        from engine.config.load import kind_of, validate_text
        from engine.config.models import KINDS

        body = (await request.body()).decode("utf-8", errors="replace")
        k = kind or (kind_of(file) if file else None)
        if k not in KINDS:
            raise HTTPException(422, f"expected ?kind= one of {', '.join(KINDS)} (or ?file= a path that tells it), found {k!r}")
        result = validate_text(body, k, file or f"<{k}>")
        problems = [problem_json(p) for p in result.problems]
        return JSONResponse({"ok": not problems, "kind": k, "problems": problems}, status_code=200 if not problems else 422)

    @app.post("/api/rules/reload", dependencies=guarded, tags=["rules"])
    def reload() -> JSONResponse:
        res = service.reload("api")
        return JSONResponse(res.to_json(), status_code=200 if res.ok else 422)

    @app.post("/api/rules/plan", dependencies=guarded, tags=["rules"])
    def rules_plan(body: dict[str, Any] = Body(..., examples=[{"files": {"strategies/arbitrage.yaml": "name: arbitrage\n…"}}]),
                   account: str | None = None, max_events: int = Query(1_000_000, ge=1, le=10_000_000)) -> JSONResponse:
        """Dry-run changed rule files (laid over the active rules) against the account's recorded events."""
        from engine.service.plan import PlanRequestError, plan

        try:
            return JSONResponse(plan(service, body.get("files"), account=account, max_events=max_events))
        except PlanRequestError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.post("/api/jobs/{name}", dependencies=guarded, tags=["jobs"])
    def run_job(name: str) -> dict[str, Any]:
        if service.jobs is None:
            raise HTTPException(503, "this process runs no scheduler")
        if name not in ("optimize_portfolio", "daily_reset", "weekly_reset", "snapshot_metrics"):
            raise HTTPException(404, f"no job {name!r}")
        service.jobs.run_now(name)
        return {"job": name, "queued": True}

    @app.get("/", include_in_schema=False)
    @app.get("/dashboard", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(resources.files("engine.service").joinpath("dashboard.html").read_text(encoding="utf-8"))

    return app


def _next_run(service: Service, job: str) -> float | None:
    if service.jobs is None or service.jobs.scheduler is None:
        return None
    j = service.jobs.scheduler.get_job(job)
    return j.next_run_time.timestamp() if j is not None and j.next_run_time is not None else None
