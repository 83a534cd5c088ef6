"""An account's risk status, portfolio summary and the optimizer's last results."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.rules import reconcile
from engine.service import views
from engine.service.routes.context import Context
from engine.service.service import Service


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
        return {"status": "ok" if "error" not in last else "failed", **last, "next_run": _next_run(service, "optimize_portfolio")}

    return api


def _next_run(service: Service, job: str) -> float | None:
    if service.jobs is None or service.jobs.scheduler is None:
        return None
    j = service.jobs.scheduler.get_job(job)
    return j.next_run_time.timestamp() if j is not None and j.next_run_time is not None else None
