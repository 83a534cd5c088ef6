"""An account's risk status, portfolio summary and the optimizer's last results."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from engine.rules import allocation, reconcile
from engine.service import views
from engine.service.optimizer import refusal
from engine.service.routes.context import Context
from engine.service.service import Service
from engine.service.store import text


def router(ctx: Context) -> APIRouter:
    """``/api/risk-management/status`` and ``/api/position-management/…`` of ``ctx``'s service."""
    api, service = APIRouter(), ctx.service

    @api.get("/api/risk-management/status", dependencies=ctx.scoped, tags=["monitoring"])
    def risk_status(account: str | None = None) -> dict[str, Any]:
        return {"account": account or service.default_account, **ctx.on_engine(account, views.risk_status)}

    @api.get("/api/position-management/portfolio-summary", dependencies=ctx.scoped, tags=["monitoring"])
    def portfolio_summary(account: str | None = None) -> dict[str, Any]:
        w = ctx.worker(account)
        return {"account": w.account, **ctx.on_engine(account, lambda e: views.portfolio_summary(e, w.last_optimization))}

    @api.get("/api/reconcile", dependencies=ctx.scoped, tags=["monitoring"])
    def reconciliation(account: str | None = None) -> dict[str, Any]:
        """The account's reconciliation with the broker: the last report's differences (``last``), the differences
        reported by kind and the deals ignored as booked already (``counts``), the reported ones outstanding."""
        w = ctx.worker(account)
        return {"account": w.account, **ctx.on_engine(account, reconcile.result_json)}

    @api.get("/api/position-management/optimization-results", dependencies=ctx.scoped, tags=["monitoring"])
    def optimization_results(account: str | None = None) -> dict[str, Any]:
        w = ctx.worker(account)
        last = w.last_optimization
        if last is None:
            return {"account": w.account, "status": "none yet", "recommendations": [], "targets": {}, "implementation_plan": [],
                    "expected_impact": None,
                    "next_run": _next_run(service, "optimize_portfolio")}
        return {"status": "ok" if "error" not in last else "failed", **last, "next_run": _next_run(service, "optimize_portfolio"),
                "allocations": ctx.on_engine(account, allocation.figures)}

    @api.post("/api/position-management/rebalance", dependencies=ctx.scoped, tags=["monitoring"])
    async def accept_rebalance(body: Accept, request: Request, account: str | None = None,
                               timeout: float = Query(10.0, gt=0, le=60)) -> JSONResponse:
        """Accept the last optimization result (named by its ``ts``): the capital moves to its plan's allocation
        and its ``rebalance`` actions are emitted, journaled with who accepted it. 409 when it is not the last
        result, failed or was applied already; 202 when the engine has not applied it within ``timeout``."""
        return await run_in_threadpool(_accept, ctx, account, body.optimization, request.state.who.name, timeout)

    return api


class Accept(BaseModel):
    """The optimization result an operator accepts: its ``ts`` as optimization-results shows it."""

    model_config = ConfigDict(extra="forbid")
    optimization: int = Field(description="the ts of the optimization result to apply")


def _accept(ctx: Context, account: str | None, ts: int, by: str, timeout: float) -> JSONResponse:
    """Check, publish and wait for an operator's acceptance of an optimization result (in a thread: it blocks)."""
    w = ctx.worker(account)
    why = refusal(w.last_optimization, str(ts))
    if why is not None:
        raise HTTPException(409, why)
    entry = text(ctx.service.redis.xadd(ctx.service.keys.stream(w.account, "in"),
                                        {"job": "accept_rebalance", "optimization": str(ts), "by": by}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = w.last_optimization
        if current is not None and current.get("applied") and int(current["ts"]) == ts:
            return JSONResponse({"account": w.account, "status": "applied", "entry": entry, "applied_by": current.get("applied_by"),
                                 "capital": ctx.on_engine(account, allocation.figures)})
        time.sleep(0.02)  # waits for the engine thread's state, bounded by the deadline
    return JSONResponse({"account": w.account, "status": "pending", "entry": entry, "detail": "queued; not applied yet"},
                        status_code=202)


def _next_run(service: Service, job: str) -> float | None:
    if service.jobs is None or service.jobs.scheduler is None:
        return None
    j = service.jobs.scheduler.get_job(job)
    return j.next_run_time.timestamp() if j is not None and j.next_run_time is not None else None
