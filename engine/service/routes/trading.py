"""The kill switch: an account's trading states (read, change) and flatten.

A change is an input event (``engine.operator``) carrying the token's name as ``by``: it is published
to the account's stream and the route waits until the engine has decided and committed it, so the
answer shows the state in force, and the journal holds who asked and why.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from engine.events import EventError, parse_event, to_json
from engine.operator import MAX_REASON_CHARS
from engine.rules import trading_state
from engine.service.journal import Decision
from engine.service.routes.context import Context

#: how long a change waits for the engine to decide it, in seconds
DECIDE_TIMEOUT_S = 10.0

_Name = Field(None, min_length=1, max_length=128)
_Reason = Field(..., min_length=1, max_length=MAX_REASON_CHARS, examples=["desk lead: spreads blew out"])


class StateBody(BaseModel):
    """The body of ``POST /api/trading-state``: the state, at most one of ``strategy`` and ``symbol``, why."""

    model_config = ConfigDict(extra="forbid", strict=True)
    state: Literal["ACTIVE", "REDUCING", "HALTED"]
    strategy: str | None = _Name
    symbol: str | None = _Name
    reason: str = _Reason


class FlattenBody(BaseModel):
    """The body of ``POST /api/flatten``: which positions (the strategy's, the symbol's; neither: all), why."""

    model_config = ConfigDict(extra="forbid", strict=True)
    strategy: str | None = _Name
    symbol: str | None = _Name
    reason: str = _Reason


def router(ctx: Context) -> APIRouter:
    """``/api/trading-state`` and ``/api/flatten`` of ``ctx``'s service."""
    api = APIRouter()

    @api.get("/api/trading-state", dependencies=ctx.scoped, tags=["trading"])
    def get_trading_state(account: str | None = None) -> dict[str, Any]:
        """The account's own state, every state that refuses something (operators' and rules'), the effective state."""
        name = ctx.worker(account).account
        return ctx.on_engine(account, lambda e: trading_state.view(e, name))

    @api.post("/api/trading-state", dependencies=ctx.scoped, tags=["trading"])
    def set_trading_state(body: StateBody, request: Request, account: str | None = None) -> dict[str, Any]:
        """Set the trading state of the account, a strategy or a symbol (operator); the answer is as ``GET`` once
        the engine has applied it. 422 for bad input (both a strategy and a symbol, an empty reason)."""
        _decide(ctx, account, {"type": "trading_state", **body.model_dump()}, request)
        name = ctx.worker(account).account
        return ctx.on_engine(account, lambda e: trading_state.view(e, name))

    @api.post("/api/flatten", dependencies=ctx.scoped, tags=["trading"])
    def flatten(body: FlattenBody, request: Request, account: str | None = None) -> dict[str, Any]:
        """Close every open position of the strategy and symbol given (neither: all) through the broker (operator);
        ``closing``: the positions this flatten closed (one ``close`` action each, rule ``flatten``)."""
        d = _decide(ctx, account, {"type": "flatten", **body.model_dump()}, request)
        closing = [a.position_id for a in d.actions if a.type == "close" and a.rule == trading_state.FLATTEN]
        return {"account": ctx.worker(account).account, "closing": closing}

    return api


def _decide(ctx: Context, account: str | None, obj: dict[str, Any], request: Request) -> Decision:
    """Publish an operator's event for ``account`` (``by``: the request's token) and wait for its committed decision."""
    w = ctx.worker(account)
    obj.update(ts=int(time.time() * 1000), by=request.state.who.name, request_id=f"op-{uuid.uuid4().hex}")
    try:
        event = parse_event(obj)
    except EventError as exc:
        raise HTTPException(422, str(exc)) from None
    fut = w.expect_position(obj["request_id"])
    w.publish(to_json(event))
    try:
        d: Decision = fut.result(DECIDE_TIMEOUT_S)
    except FutureTimeout:
        raise HTTPException(503, f"queued, but the engine did not decide it within {DECIDE_TIMEOUT_S:g} s; "
                            "GET /api/trading-state shows when it does") from None
    if d.event is None or d.error:
        raise HTTPException(422 if d.event is None else 503, f"not applied: {d.error}")
    return d
