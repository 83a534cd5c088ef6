"""The HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Every endpoint but ``/healthz`` and ``/readyz`` (and the static dashboard page, which holds no data)
needs ``Authorization: Bearer <token>``. Account-scoped endpoints take ``?account=`` (default: the
service's first account) and answer for the accounts this process runs (404 for another).

No request can stop risk management: bodies, connections and slow clients are bounded before any
route runs (``engine.service.limits``); malformed input is a 4xx that says what is wrong; CPU-heavy
work runs on threads, never on the event loop; an unexpected exception is logged once under an error
id and answered ``500`` with that id, never a traceback; no answer quotes a secret (``logs.scrub``).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from importlib import resources
from typing import Any

import anyio
import redis
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from engine.errors import RiskrailError
from engine.events import EventError, loads, to_json
from engine.service import health as health_mod
from engine.service import logs, views
from engine.service.limits import BodyLimit, Limits
from engine.service.reload import problem_json
from engine.service.service import Service
from engine.service.store import text

log = logging.getLogger("riskrail.api")

#: a stream cursor of ``GET /api/actions``: Redis entry ids are two unsigned 64-bit integers
_CURSOR = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")


class PlanBody(BaseModel):
    """The body of ``POST /api/rules/plan``: the changed rule files, by path in the configuration."""

    model_config = ConfigDict(extra="forbid", strict=True)
    files: dict[str, str] = Field(..., examples=[{"strategies/arbitrage.yaml": "name: arbitrage\n…"}])


def create_app(service: Service, token: str, limits: Limits | None = None) -> FastAPI:
    """The API of ``service``, guarded by ``token``, with the request limits of ``limits`` (the defaults of ``Limits``)."""
    app = FastAPI(title="riskrail", version="0.1.0",
                  description="Position management and portfolio risk: status, positions, actions, rules, metrics.")
    app.add_middleware(BodyLimit, limits=limits or Limits())
    app.add_middleware(_Errors)  # outermost: it also sees what the limits raise
    bearer = HTTPBearer(auto_error=False)
    # threads of their own: probes never wait behind API calls blocked on an engine, and at most two
    # rule files are parsed at once whatever the number of requests
    probes, parsing = anyio.CapacityLimiter(4), anyio.CapacityLimiter(2)

    def auth(creds: HTTPAuthorizationCredentials | None = Depends(bearer)) -> None:
        if creds is None or creds.scheme.lower() != "bearer" or not hmac.compare_digest(creds.credentials.encode(), token.encode()):
            raise HTTPException(401, "expected the header Authorization: Bearer <token> (RISKRAIL_API_TOKEN, or the token `riskrail run` printed)",
                                headers={"WWW-Authenticate": "Bearer"})

    guarded = [Depends(auth)]

    @app.exception_handler(RiskrailError)
    async def _riskrail_error(request: Request, exc: RiskrailError) -> JSONResponse:
        return JSONResponse({"detail": logs.scrub(str(exc))}, status_code=503)

    @app.exception_handler(redis.RedisError)
    async def _redis_error(request: Request, exc: redis.RedisError) -> JSONResponse:
        return JSONResponse({"detail": f"Redis is not reachable ({logs.scrub(str(exc))}); the engine retries"}, status_code=503)

    def worker(account: str | None):
        name = account or service.default_account
        if name not in service.workers:
            raise HTTPException(404, f"account {name[:100]!r} is not run by this process (accounts here: "
                                f"{', '.join(sorted(service.workers)) or 'none'})")
        return service.worker(name)

    def known_account(account: str | None = Query(None, max_length=200, description="the account (default: the first)")) -> None:
        worker(account)  # 404 before anything else for an account this process does not run

    scoped = [Depends(auth), Depends(known_account)]  # the routes that take ?account=

    def on_engine(account: str | None, fn):
        try:
            return worker(account).call(fn)
        except FutureTimeout:
            raise HTTPException(503, "the engine did not answer within 10 s") from None

    def look() -> health_mod.Health:
        return health_mod.snapshot(service, logs.scrub)

    @app.get("/healthz", tags=["monitoring"])
    async def healthz() -> JSONResponse:
        """Liveness: the process answers, Redis answers, no account of this process is stalled or stopped."""
        h = await anyio.to_thread.run_sync(look, limiter=probes)
        problems = h.problems(ready=False)
        body = {"status": "degraded" if problems else "ok", "redis": h.redis, "rules_version": h.rules_version,
                "accounts": sorted(a for a, s in h.accounts.items() if s["state"] == "deciding"),
                "states": {a: s["state"] for a, s in h.accounts.items()}, "problems": problems,
                "scheduler": bool(service.jobs and service.jobs.running), "uptime_s": round(time.time() - service.started_at, 1)}
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/readyz", tags=["monitoring"])
    async def readyz() -> JSONResponse:
        """Readiness: besides liveness, rules are loaded and every account of this process is deciding;
        per account its state, input lag, age of its last decision, failures, rules version and reason."""
        h = await anyio.to_thread.run_sync(look, limiter=probes)
        problems = h.problems(ready=True)
        body = {"status": "not ready" if problems else "ready", "redis": h.redis, "rules_version": h.rules_version,
                "accounts": h.accounts, "problems": problems}
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get("/metrics", dependencies=guarded, tags=["monitoring"])
    def metrics() -> Response:
        look()  # the health gauges are as of this scrape
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/api/risk-management/status", dependencies=scoped, tags=["monitoring"])
    def risk_status(account: str | None = None) -> dict[str, Any]:
        return {"account": account or service.default_account, **on_engine(account, views.risk_status)}

    @app.get("/api/position-management/portfolio-summary", dependencies=scoped, tags=["monitoring"])
    def portfolio_summary(account: str | None = None) -> dict[str, Any]:
        w = worker(account)
        return {"account": w.account, **on_engine(account, lambda e: views.portfolio_summary(e, w.last_optimization))}

    @app.get("/api/position-management/optimization-results", dependencies=scoped, tags=["monitoring"])
    def optimization_results(account: str | None = None) -> dict[str, Any]:
        w = worker(account)
        last = w.last_optimization
        if last is None:
            return {"account": w.account, "status": "none yet", "recommendations": [], "targets": {}, "implementation_plan": [],
                    "expected_impact": None,
                    "next_run": _next_run(service, "optimize_portfolio")}
        return {"status": "ok" if "error" not in last else "failed", **last, "next_run": _next_run(service, "optimize_portfolio")}

    # --- positions ------------------------------------------------------------------------------------

    @app.get("/api/positions", dependencies=scoped, tags=["positions"])
    def list_positions(account: str | None = None, status: str | None = Query(None, description="open, closed, rejected, partially_closed")) -> dict[str, Any]:
        return {"positions": on_engine(account, lambda e: views.positions(e, status))}

    @app.get("/api/positions/{position_id}", dependencies=scoped, tags=["positions"])
    def get_position(position_id: str, account: str | None = None) -> dict[str, Any]:
        def one(e):
            p = e.book.positions.get(position_id)
            return None if p is None else views.position(e, p, audit=True)

        found = on_engine(account, one)
        if found is None:
            raise HTTPException(404, f"no position {position_id!r}")
        return found

    @app.post("/api/positions", dependencies=scoped, tags=["positions"], status_code=201,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}, "example": {
                  "position_id": "p-1", "symbol": "EURUSD", "strategy_type": "arbitrage", "strategy_name": "arb-eu-1",
                  "action": "BUY", "volume": 0.05, "entry_price": 1.1458}}}}})
    async def propose(request: Request, account: str | None = None, timeout: float = Query(5.0, gt=0, le=60)) -> JSONResponse:
        """Propose a position (the fields of a ``position_opened`` event, ``ts`` defaulting to now): the
        pre-trade checks decide. 201 open, 422 rejected (every failed check) or malformed, 409 a known
        id, 403 a takeover (``existing``) the service does not allow, 202 not decided within ``timeout``."""
        try:
            body = loads(await request.body())
        except EventError as exc:
            raise HTTPException(422, {"message": str(exc)}) from None
        return await run_in_threadpool(_propose, body, account, timeout)

    def _propose(body: dict[str, Any], account: str | None, timeout: float) -> JSONResponse:
        w = service.worker(account)
        try:
            _, event = views.proposal(body, int(time.time() * 1000))
        except EventError as exc:
            raise HTTPException(422, {"message": str(exc)}) from None
        if event.existing and not service.allow_takeover:
            raise HTTPException(403, "existing: taking over a position without the pre-trade checks is an operator action; "
                                "this service was not started with --allow-takeover")
        if on_engine(account, lambda e: event.position_id in e.book.positions):
            raise HTTPException(409, f"position {event.position_id!r} already exists")
        fut = w.expect_position(event.position_id)
        entry = w.publish(to_json(event))  # what was validated, not the body: no extra fields reach the stream
        try:
            decision = fut.result(timeout)
        except FutureTimeout:
            return JSONResponse({"status": "pending", "entry": entry, "position_id": event.position_id,
                                 "detail": "queued; not decided yet (see GET /api/positions/{id})"}, status_code=202)
        if decision.event is None:  # refused before the engine (e.g. a takeover the broker does not confirm)
            return JSONResponse({"detail": {"status": "refused", "position_id": event.position_id, "message": decision.error}},
                                status_code=422)
        result = on_engine(account, lambda e: views.outcome(e, event.position_id, decision.actions))
        if result["status"] == "rejected":
            return JSONResponse({"detail": result}, status_code=422)
        return JSONResponse({**result, "entry": entry}, status_code=201)

    # --- actions -------------------------------------------------------------------------------------

    @app.get("/api/actions", dependencies=scoped, tags=["actions"])
    def actions(since: str = Query("0-0", max_length=41, description="cursor: the `next` of the previous page"),
                limit: int = Query(100, ge=1, le=1000), account: str | None = None) -> dict[str, Any]:
        m = _CURSOR.fullmatch(since)
        if since != "-" and (m is None or any(int(g) >= 2**64 for g in m.groups() if g is not None)):
            raise HTTPException(422, f"since: expected a cursor MILLISECONDS-SEQUENCE (the `next` of the previous page), found {since!r}")
        key = service.keys.stream(worker(account).account, "actions")
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
    async def validate(request: Request,
                       kind: str | None = Query(None, max_length=32,
                                                description="strategy, limits, allocation, profit, custom, instruments, schedules"),
                       file: str | None = Query(None, max_length=255, description="the name the file would have in the configuration, "
                                                "e.g. strategies/arbitrage.yaml: it names the file in problems and tells its kind; "
                                                "nothing is read from the server's disk")) -> JSONResponse:
        """Validate the YAML body as a rule file of ``kind`` (or of the kind its name or first-line modeline tells)."""
        from engine.config.load import kind_from_text, validate_text
        from engine.config.models import KINDS

        if file is not None:
            _check_name(file)
        try:
            body = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPException(422, f"expected the rule file as UTF-8 text, found undecodable bytes at byte {exc.start}") from None
        k = kind or (kind_from_text(file, body) if file else None)
        if k not in KINDS:
            raise HTTPException(422, f"expected ?kind= one of {', '.join(KINDS)} (or ?file= a name that tells it, or a "
                                "first-line modeline), found " + (repr(k[:50]) if isinstance(k, str) else "none"))
        result = await anyio.to_thread.run_sync(validate_text, body, k, file or f"<{k}>", limiter=parsing)
        problems = [problem_json(p) for p in result.problems]
        return JSONResponse({"ok": not problems, "kind": k, "problems": problems}, status_code=200 if not problems else 422)

    @app.post("/api/rules/reload", dependencies=guarded, tags=["rules"])
    def reload() -> JSONResponse:
        res = service.reload("api")
        return JSONResponse(res.to_json(), status_code=200 if res.ok else 422)

    @app.post("/api/rules/plan", dependencies=guarded, tags=["rules"], openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": PlanBody.model_json_schema()}}}})
    async def rules_plan(request: Request, account: str | None = Query(None, max_length=200),
                         max_events: int = Query(1_000_000, ge=1, le=10_000_000)) -> JSONResponse:
        """Dry-run changed rule files (laid over the active rules) against the account's recorded events."""
        from engine.service.plan import PlanRequestError, plan

        # the body is read after the token is checked, and parsed off the event loop (up to 4 MiB)
        body = await anyio.to_thread.run_sync(_plan_body, await request.body(), limiter=parsing)
        try:
            return JSONResponse(await anyio.to_thread.run_sync(lambda: plan(service, body.files, account=account, max_events=max_events)))
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


class _Errors:
    """ASGI middleware: an exception no handler answered is logged once, with its traceback, under an
    error id, and answered ``500`` with that id and no detail of the exception (never a traceback)."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            log.exception("internal error %s on %s %s", error_id, scope["method"], scope["path"])
            if not started:
                body = json.dumps({"detail": f"internal error {error_id}: this is a bug; the service log has it under this id",
                                   "error_id": error_id}).encode()
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})


def _plan_body(raw: bytes) -> PlanBody:
    """The body of ``POST /api/rules/plan``, or ``422`` saying what is wrong with it: not JSON, a NaN or
    an Infinity, nesting or numbers the parser refuses, not ``{"files": {NAME: TEXT, ...}}``."""
    from pydantic import ValidationError

    def refuse(what: str) -> HTTPException:
        return HTTPException(422, f"expected a JSON object {{\"files\": {{\"strategies/NAME.yaml\": \"<yaml>\", ...}}}}; {what}")

    def no_constant(name: str) -> Any:
        raise ValueError(f"found {name}, which is not JSON")

    try:
        obj = json.loads(raw, parse_constant=no_constant)
    except RecursionError:
        raise refuse("found nesting too deep to read") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise refuse(f"invalid JSON ({str(exc)[:200]})") from None
    try:
        return PlanBody.model_validate(obj)
    except ValidationError as exc:
        raise refuse("; ".join(f"{'.'.join(map(str, e['loc'])) or 'the body'}: {e['msg']}" for e in exc.errors()[:5])) from None


def _check_name(name: str) -> None:
    """Refuse a ``file`` name that is not a plain relative path (it names, it is never opened)."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts or not name.isprintable() or not name.strip():
        raise HTTPException(422, f"file: expected a relative name such as strategies/arbitrage.yaml, found {name[:100]!r}")


def _next_run(service: Service, job: str) -> float | None:
    if service.jobs is None or service.jobs.scheduler is None:
        return None
    j = service.jobs.scheduler.get_job(job)
    return j.next_run_time.timestamp() if j is not None and j.next_run_time is not None else None
