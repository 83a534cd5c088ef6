"""An account's positions: list them, read one with its audit trail, propose one to the pre-trade checks."""

from __future__ import annotations

import time
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.events import EventError, PositionOpened, loads, to_json
from engine.rules.evaluator import Engine
from engine.service import problems, views
from engine.service.problems import Problem
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
            raise Problem(404, f"no position {position_id[:100]!r}", location="path.position_id")
        return found

    @api.post("/api/positions", dependencies=ctx.scoped, tags=["positions"], status_code=201,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"},
                                                                                               "example": _EXAMPLE}}}})
    async def propose(request: Request, account: str | None = None, timeout: float = Query(5.0, gt=0, le=60)) -> JSONResponse:
        """Propose a position (the fields of a ``position_opened`` event, ``ts`` defaulting to now): the
        pre-trade checks decide. 201 open, 422 rejected (every failed check) or malformed (every malformed
        field), 409 a known id, 403 a takeover (``existing``) the service does not allow, 202 not decided
        within ``timeout``. Every answer but 201 and 202 is a problem detail (``engine.service.problems``)."""
        try:
            body = loads(await request.body())
        except EventError as exc:
            raise Problem(422, f"malformed position: {exc}", location="body", outcome="malformed") from None
        return await run_in_threadpool(_propose, ctx, body, account, timeout)

    return api


def _propose(ctx: Context, body: dict[str, Any], account: str | None, timeout: float) -> JSONResponse:
    """Validate, publish and wait for the decision on a proposal (in a thread: it blocks)."""
    service = ctx.service
    w = service.worker(account)
    event = _proposal(body, int(time.time() * 1000))
    if event.existing and not service.allow_takeover:
        raise Problem(403, "existing: taking over a position without the pre-trade checks is an operator action; "
                      "this service was not started with --allow-takeover", errors=[{"pointer": "/existing", "detail":
                      "taking over a position is allowed only to a service started with --allow-takeover"}])
    if ctx.on_engine(account, lambda e: event.position_id in e.book.positions):
        raise Problem(409, f"position {event.position_id!r} already exists",
                      errors=[{"pointer": "/position_id", "detail": f"position {event.position_id!r} already exists"}])
    fut = w.expect_position(event.position_id)
    entry = w.publish(to_json(event))  # what was validated, not the body: no extra fields reach the stream
    try:
        decision = fut.result(timeout)
    except FutureTimeout:
        return JSONResponse({"status": "pending", "entry": entry, "position_id": event.position_id,
                             "detail": "queued; not decided yet (see GET /api/positions/{id})"}, status_code=202)
    if decision.event is None:  # refused before the engine (e.g. a takeover the broker does not confirm)
        message = decision.error or "refused"
        raise Problem(422, f"position {event.position_id!r} refused: {message}", errors=[{"pointer": "", "detail": message}],
                      outcome="refused", position_id=event.position_id, entry=entry)
    result = ctx.on_engine(account, lambda e: views.outcome(e, event.position_id, decision.actions))
    if result["status"] == "rejected":
        checks = result["failed_checks"]
        raise Problem(422, f"position {event.position_id!r} rejected by the pre-trade checks: {'; '.join(checks)}",
                      errors=[{"pointer": "", "detail": c} for c in checks], outcome="rejected", position_id=event.position_id,
                      failed_checks=checks, actions=result["actions"], entry=entry)
    return JSONResponse({**result, "entry": entry}, status_code=201)


#: a valid stand-in for each field of a proposal, so that the fields after a malformed one are checked too
_STAND_IN: dict[str, Any] = {"position_id": "p", "symbol": "S", "strategy_type": "s", "strategy_name": None, "action": "BUY",
                             "volume": 1.0, "entry_price": 1.0, "stop_loss": None, "take_profit": None, "existing": False,
                             "volume0": None, "type": "position_opened"}


def _proposal(body: dict[str, Any], now_ms: int) -> PositionOpened:
    """The proposal of ``body`` (``views.proposal``), or ``Problem`` 422 listing every malformed field at once:
    the event's parser stops at the first, so each one found is replaced by a valid stand-in and the body parsed
    again."""
    errors: list[problems.Error] = []
    trial = dict(body)
    while True:
        try:
            _, event = views.proposal(trial, now_ms)
        except EventError as exc:
            key, sep, message = str(exc).partition(": ")
            known = sep and (key in _STAND_IN or key == "ts") and key not in {e["pointer"][1:] for e in errors}
            errors.append({"pointer": f"/{key}", "detail": message} if known else {"pointer": "", "detail": str(exc)})
            if not known:
                break
            trial[key] = now_ms if key == "ts" else _STAND_IN[key]
            continue
        if not errors:
            return event
        break
    raise Problem(422, "malformed position: " + problems.summary(errors, "the proposal"), errors=errors, outcome="malformed")
