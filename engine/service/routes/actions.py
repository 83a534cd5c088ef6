"""An account's emitted actions, read from its Redis stream page by page."""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Query

from engine.service.routes.context import Context
from engine.service.store import read_range, text

#: a stream cursor of ``GET /api/actions``: Redis entry ids are two unsigned 64-bit integers
_CURSOR = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")


def router(ctx: Context) -> APIRouter:
    """``/api/actions`` of ``ctx``'s service."""
    api, service = APIRouter(), ctx.service

    @api.get("/api/actions", dependencies=ctx.scoped, tags=["actions"])
    def actions(since: str = Query("0-0", max_length=41, description="cursor: the `next` of the previous page"),
                limit: int = Query(100, ge=1, le=1000), account: str | None = None) -> dict[str, Any]:
        m = _CURSOR.fullmatch(since)
        if since != "-" and (m is None or any(int(g) >= 2**64 for g in m.groups() if g is not None)):
            raise HTTPException(422, f"since: expected a cursor MILLISECONDS-SEQUENCE (the `next` of the previous page), found {since!r}")
        key = service.keys.stream(ctx.worker(account).account, "actions")
        entries = read_range(service.redis, key, f"({since}" if since not in ("0-0", "-") else "-", count=limit)
        out = [json.loads(f[b"action"]) for _, f in entries]
        return {"actions": out, "next": text(entries[-1][0]) if entries else since}

    return api
