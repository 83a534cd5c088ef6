"""Run a scheduled job now."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from engine.service.problems import Problem
from engine.service.routes.context import Context

#: the jobs ``POST /api/jobs/{name}`` may queue
JOBS = ("optimize_portfolio", "daily_reset", "weekly_reset", "snapshot_metrics", "request_positions")


def router(ctx: Context) -> APIRouter:
    """``/api/jobs/{name}`` of ``ctx``'s service."""
    api, service = APIRouter(), ctx.service

    @api.post("/api/jobs/{name}", dependencies=ctx.guarded, tags=["jobs"])
    def run_job(name: str) -> dict[str, Any]:
        if service.jobs is None:
            raise HTTPException(503, "this process runs no scheduler")
        if name not in JOBS:
            raise Problem(404, f"no job {name[:100]!r}; expected one of {', '.join(JOBS)}", location="path.name")
        service.jobs.run_now(name)
        return {"job": name, "queued": True}

    return api
