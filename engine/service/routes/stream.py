"""``GET /api/stream``: an account's live state as server-sent events, for the dashboard.

The events (``event: NAME`` then ``data: JSON``) are those of ``engine.service.live.Feed.poll``; a
comment line (``: ping``) every ``PING_S`` seconds of silence lets either side see a dead connection.
A browser reads it with ``fetch`` and the bearer token in the header (an ``EventSource`` cannot send
one, and the token never goes in a URL). The stream holds no thread between two messages, polls at
most every ``Feed.period`` seconds, and ends when the client goes.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from concurrent.futures import TimeoutError as FutureTimeout

import anyio
import redis
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import StreamingResponse

from engine.errors import RiskrailError
from engine.service import logs
from engine.service.live import Feed, Viewer, dumps
from engine.service.routes.context import Context
from engine.service.worker import AccountWorker

#: seconds without a message after which a ``: ping`` comment is sent
PING_S = 15.0


def router(ctx: Context, feed: Feed) -> APIRouter:
    """``/api/stream`` of ``ctx``'s service, fed by ``feed``."""
    api = APIRouter()

    @api.get("/api/stream", dependencies=ctx.scoped, tags=["monitoring"], response_class=StreamingResponse,
             responses={200: {"content": {"text/event-stream": {}},
                              "description": "events: actions, history, summary, positions, allocations, rules, optimization, problem"}})
    async def stream(request: Request, account: str | None = None) -> StreamingResponse:
        """The account's live state as server-sent events (``text/event-stream``); 503 when ``Feed.viewers`` streams are open."""
        w = ctx.worker(account)
        if feed.open >= feed.viewers:
            raise HTTPException(503, f"{feed.open} live streams are open, the most this service serves; close a dashboard")
        return StreamingResponse(_messages(request, feed, w), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    return api


async def _messages(request: Request, feed: Feed, w: AccountWorker) -> AsyncIterator[bytes]:
    feed.open += 1
    viewer, quiet_since, problem = Viewer(w.account), time.monotonic(), ""
    try:
        yield b"retry: 3000\n\n"
        while not await request.is_disconnected():
            try:
                messages = await anyio.to_thread.run_sync(feed.poll, w, viewer, limiter=feed.limiter)
            except (RiskrailError, FutureTimeout, redis.RedisError) as exc:
                text = logs.scrub(str(exc)) or "the engine did not answer in time"
                messages = [("problem", dumps({"message": text}))] if text != problem else []
                problem = text
            else:
                if problem:
                    messages.append(("problem", dumps({"message": None})))
                    problem = ""
            if messages:
                yield "".join(f"event: {name}\ndata: {body}\n\n" for name, body in messages).encode()
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= PING_S:
                yield b": ping\n\n"
                quiet_since = time.monotonic()
            await anyio.sleep(feed.period)
    finally:
        feed.open -= 1
