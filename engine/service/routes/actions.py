"""An account's emitted actions, read from its Redis stream page by page, oldest or newest first."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Query

from engine.service.routes.context import Context
from engine.service.store import read_back, read_range, text

#: a stream cursor of ``GET /api/actions``: Redis entry ids are two unsigned 64-bit integers
_CURSOR = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")


def _check(name: str, cursor: str) -> None:
    m = _CURSOR.fullmatch(cursor)
    if m is None or any(int(g) >= 2**64 for g in m.groups() if g is not None):
        raise HTTPException(422, f"{name}: expected a cursor MILLISECONDS-SEQUENCE (the `next` of the previous page), found {cursor!r}")


def router(ctx: Context) -> APIRouter:
    """``/api/actions`` of ``ctx``'s service."""
    api, service = APIRouter(), ctx.service

    @api.get("/api/actions", dependencies=ctx.scoped, tags=["actions"])
    def actions(since: str = Query("0-0", max_length=41, description="oldest first: the `next` of the previous page"),
                limit: int = Query(100, ge=1, le=1000), account: str | None = None,
                order: Literal["asc", "desc"] = Query("asc", description="asc: oldest first from `since`; desc: newest first "
                                                      "from `cursor`"),
                cursor: str | None = Query(None, max_length=41, description="newest first: the `next` of the previous page "
                                           "(none: the newest)")) -> dict[str, Any]:
        """A page of the account's actions: ``{"actions": [...], "next": cursor}``. Oldest first (the default), ``next``
        is where the following page starts, the same cursor again when there is nothing new; newest first
        (``order=desc``), ``next`` is the cursor of the next older page, null after the oldest."""
        key = service.keys.stream(ctx.worker(account).account, "actions")
        if order == "desc":
            if cursor is not None:
                _check("cursor", cursor)
            entries = read_back(service.redis, key, f"({cursor}" if cursor is not None else "+", count=limit)
            return {"actions": [json.loads(f[b"action"]) for _, f in entries],
                    "next": text(entries[-1][0]) if len(entries) == limit else None}
        if since != "-":
            _check("since", since)
        entries = read_range(service.redis, key, f"({since}" if since not in ("0-0", "-") else "-", count=limit)
        out = [json.loads(f[b"action"]) for _, f in entries]
        return {"actions": out, "next": text(entries[-1][0]) if entries else since}

    return api
