"""The HTTP API (FastAPI; OpenAPI at /openapi.json, docs at /docs).

Every endpoint but ``/healthz`` and ``/readyz`` (and the static dashboard page, which holds no data)
needs ``Authorization: Bearer <token>`` of a role that may call it (``engine.service.tokens``: viewer,
operator, admin; ``routes.context.role_needed``). Account-scoped endpoints take ``?account=`` (default: the
service's first account) and answer for the accounts this process runs (404 for another).

No request can stop risk management: bodies, connections and slow clients are bounded before any
route runs (``engine.service.limits``); malformed input is a 4xx that says what is wrong; CPU-heavy
work runs on threads, never on the event loop; an unexpected exception is logged once under an error
id and answered ``500`` with that id, never a traceback; no answer quotes a secret (``logs.scrub``).
Every error answer, whoever gives it (a route, FastAPI's validation, the limits, this module), is a
problem detail (RFC 9457, ``engine.service.problems``) listing every problem of the request at once.

This module assembles the app: the limits, the error handling, and the routers of ``engine.service.routes``
(one per concept), in the order the OpenAPI listing shows them.
"""

from __future__ import annotations

import logging
import uuid

import redis
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.errors import RiskrailError
from engine.service import logs, problems
from engine.service.limits import BodyLimit, Limits
from engine.service.live import Feed
from engine.service.routes import actions, dashboard, health, jobs, positions, rules, status, stream, trading
from engine.service.routes.context import Context
from engine.service.service import Service

log = logging.getLogger("riskrail.api")


def create_app(service: Service, token: str, limits: Limits | None = None) -> FastAPI:
    """The API of ``service``, guarded by ``token``, with the request limits of ``limits`` (the defaults of ``Limits``)."""
    app = FastAPI(title="riskrail", version="0.1.0",
                  description="Position management and portfolio risk: status, positions, actions, rules, metrics.")
    app.add_middleware(BodyLimit, limits=limits or Limits())
    app.add_middleware(_Errors)  # outermost: it also sees what the limits raise
    problems.install(app)
    app.exception_handler(RiskrailError)(_riskrail_error)
    app.exception_handler(redis.RedisError)(_redis_error)
    ctx = Context(service, token)
    for router in (health.router, status.router, trading.router, positions.router, actions.router, rules.router, jobs.router):
        app.include_router(router(ctx))
    app.state.feed = Feed(service)  # the live dashboard's streams (GET /api/stream)
    app.include_router(stream.router(ctx, app.state.feed))
    app.include_router(dashboard.router())
    return app


async def _riskrail_error(request: Request, exc: RiskrailError) -> JSONResponse:
    return problems.response(503, logs.scrub(str(exc)), instance=request.url.path)


async def _redis_error(request: Request, exc: redis.RedisError) -> JSONResponse:
    return problems.response(503, f"Redis is not reachable ({logs.scrub(str(exc))}); the engine retries", instance=request.url.path)


class _Errors:
    """ASGI middleware: an exception no handler answered is logged once, with its traceback, under an
    error id, and answered ``500`` with that id and no detail of the exception (never a traceback)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
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
                body = problems.encoded(500, f"internal error {error_id}: this is a bug; the service log has it under this id",
                                        scope["path"], error_id=error_id)
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", problems.PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
