"""``/healthz``, ``/readyz`` (no token: load balancers and orchestrators probe them) and ``/metrics``."""

from __future__ import annotations

import time

import anyio
import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from engine.operator import STATES
from engine.rules import reconcile
from engine.service.routes.context import Context
from engine.service.store import text


def router(ctx: Context) -> APIRouter:
    """The probes and the Prometheus scrape of ``ctx``'s service."""
    api, service = APIRouter(), ctx.service

    @api.get("/healthz", tags=["monitoring"])
    async def healthz() -> JSONResponse:
        """Liveness: the process answers, Redis answers, no account of this process is stalled or stopped."""
        h = await anyio.to_thread.run_sync(ctx.look, limiter=ctx.probes)
        problems = h.problems(ready=False)
        body = {"status": "degraded" if problems else "ok", "redis": h.redis, "rules_version": h.rules_version,
                "accounts": sorted(a for a, s in h.accounts.items() if s["state"] == "deciding"),
                "states": {a: s["state"] for a, s in h.accounts.items()}, "problems": problems,
                "scheduler": bool(service.jobs and service.jobs.running), "uptime_s": round(time.time() - service.started_at, 1)}
        return JSONResponse(body, status_code=503 if problems else 200)

    @api.get("/readyz", tags=["monitoring"])
    async def readyz() -> JSONResponse:
        """Readiness: besides liveness, rules are loaded and every account of this process is deciding;
        per account its state, input lag, age of its last decision, failures, rules version and reason."""
        h = await anyio.to_thread.run_sync(ctx.look, limiter=ctx.probes)
        problems = h.problems(ready=True)
        body = {"status": "not ready" if problems else "ready", "redis": h.redis, "rules_version": h.rules_version,
                "accounts": h.accounts, "problems": problems}
        return JSONResponse(body, status_code=503 if problems else 200)

    @api.get("/metrics", dependencies=ctx.guarded, tags=["monitoring"])
    def metrics() -> Response:
        ctx.look()  # the health gauges are as of this scrape, and so are the reconciliation counts
        service.metrics.reconcile.update({account: reconcile.counts(w.engine) for account, w in list(service.workers.items())
                                          if w.engine is not None})
        for account in list(service.workers):  # as committed to the account state (the engine's own thread owns its facts)
            try:
                committed = text(service.redis.hget(service.keys.stream(account, "state"), "trading_state"))
            except redis.RedisError:
                break  # Redis is away (the health gauges say so): the last known states stay
            if committed in STATES:
                service.metrics.trading_state.labels(account=account).set(STATES.index(committed))
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return api
