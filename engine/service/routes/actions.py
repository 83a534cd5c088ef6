"""An account's emitted actions, read from its Redis stream page by page."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from engine.service.routes.context import Context
from engine.service.store import read_range, text

#: a stream cursor of ``GET /api/actions``: Redis entry ids are two unsigned 64-bit integers
_CURSOR = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")


def _cursor(since: str) -> str:
    """A ``since`` cursor as Redis takes it, or ``ValueError`` saying what was expected (a 422 with the request's other problems)."""
    m = _CURSOR.fullmatch(since)
    if since != "-" and (m is None or any(int(g) >= 2**64 for g in m.groups() if g is not None)):
        raise ValueError(f"expected a cursor MILLISECONDS-SEQUENCE (the `next` of the previous page), found {since[:60]!r}")
    return since


def router(ctx: Context) -> APIRouter:
    """``/api/actions`` of ``ctx``'s service."""
    api, service = APIRouter(), ctx.service

    @api.get("/api/actions", dependencies=ctx.scoped, tags=["actions"])
    def actions(since: Annotated[str, Query(max_length=41, description="cursor: the `next` of the previous page"),
                                 AfterValidator(_cursor)] = "0-0",
                limit: int = Query(100, ge=1, le=1000), account: str | None = None) -> dict[str, Any]:
        key = service.keys.stream(ctx.worker(account).account, "actions")
        entries = read_range(service.redis, key, f"({since}" if since not in ("0-0", "-") else "-", count=limit)
        out = [json.loads(f[b"action"]) for _, f in entries]
        return {"actions": out, "next": text(entries[-1][0]) if entries else since}

    return api
