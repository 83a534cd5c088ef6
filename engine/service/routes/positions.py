"""An account's positions: list them, read one with its audit trail, propose one to the pre-trade checks."""

from __future__ import annotations

import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.events import EventError, loads, to_json
from engine.rules.evaluator import Engine
from engine.service import views
from engine.service.routes.context import Context

#: the body ``POST /api/positions`` documents: the fields of a ``position_opened`` event
_EXAMPLE = {"position_id": "p-1", "symbol": "EURUSD", "strategy_type": "arbitrage", "strategy_name": "arb-eu-1",
            "action": "BUY", "volume": 0.05, "entry_price": 1.1458}


def router(ctx: Context) -> APIRouter:
    """``/api/positions`` of ``ctx``'s service."""
    api = APIRouter()

    @api.get("/api/positions", dependencies=ctx.scoped, tags=["positions"])
    def list_positions(account: str | None = None,
                       status: str | None = Query(None, description="open, closed, rejected, partially_closed")) -> dict[str, Any]:
        return {"positions": ctx.on_engine(account, lambda e: views.positions(e, status))}

    @api.get("/api/positions/{position_id}", dependencies=ctx.scoped, tags=["positions"])
    def get_position(position_id: str, account: str | None = None) -> dict[str, Any]:
        def one(e: Engine) -> dict[str, Any] | None:
            p = e.book.positions.get(position_id)
            return None if p is None else views.position(e, p, audit=True)

        found = ctx.on_engine(account, one)
        if found is None:
            raise HTTPException(404, f"no position {position_id!r}")
        return found

    @api.post("/api/positions", dependencies=ctx.scoped, tags=["positions"], status_code=201,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"},
                                                                                               "example": _EXAMPLE}}}})
    async def propose(request: Request, account: str | None = None, timeout: float = Query(5.0, gt=0, le=60)) -> JSONResponse:
        """Propose a position (the fields of a ``position_opened`` event, ``ts`` defaulting to now): the
        pre-trade checks decide. 201 open, 422 rejected (every failed check) or malformed, 409 a known
        id, 403 a takeover (``existing``) the service does not allow, 202 not decided within ``timeout``."""
        try:
            body = loads(await request.body())
        except EventError as exc:
            raise HTTPException(422, {"message": str(exc)}) from None
        return await run_in_threadpool(_propose, ctx, body, account, timeout)

    return api


def _propose(ctx: Context, body: dict[str, Any], account: str | None, timeout: float) -> JSONResponse:
    """Validate, publish and wait for the decision on a proposal (in a thread: it blocks)."""
    service = ctx.service
    w = service.worker(account)
    try:
        _, event = views.proposal(body, int(time.time() * 1000))
    except EventError as exc:
        raise HTTPException(422, {"message": str(exc)}) from None
    if event.existing and not service.allow_takeover:
        raise HTTPException(403, "existing: taking over a position without the pre-trade checks is an operator action; "
                            "this service was not started with --allow-takeover")
    if ctx.on_engine(account, lambda e: event.position_id in e.book.positions):
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
    result = ctx.on_engine(account, lambda e: views.outcome(e, event.position_id, decision.actions))
    if result["status"] == "rejected":
        return JSONResponse({"detail": result}, status_code=422)
    return JSONResponse({**result, "entry": entry}, status_code=201)
