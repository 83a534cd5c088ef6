"""An account's emitted actions, read from its Redis stream page by page."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator

from engine.service.routes.context import Context
from engine.service.store import read_back, read_range, text

#: a stream cursor of ``GET /api/actions``: Redis entry ids are two unsigned 64-bit integers
_CURSOR = re.compile(r"(\d{1,20})(?:-(\d{1,20}))?")


def _cursor(since: str) -> str:
    """A ``since`` cursor as Redis takes it (``-``: the oldest), or ``ValueError`` saying what was expected (a 422
    with the request's other problems)."""
    return since if since == "-" else _entry_id(since)


def _optional_cursor(cursor: str | None) -> str | None:
    """A ``cursor`` of the newest-first pages (none: the newest page), or ``ValueError`` as for ``since``."""
    return None if cursor is None else _entry_id(cursor)


def _entry_id(value: str) -> str:
    m = _CURSOR.fullmatch(value)
    if m is None or any(int(g) >= 2**64 for g in m.groups() if g is not None):
        raise ValueError(f"expected a cursor MILLISECONDS-SEQUENCE (the `next` of the previous page), found {value[:60]!r}")
    return value


def router(ctx: Context) -> APIRouter:
    """``/api/actions`` of ``ctx``'s service."""
    api, service = APIRouter(), ctx.service

    @api.get("/api/actions", dependencies=ctx.scoped, tags=["actions"])
    def actions(since: Annotated[str, Query(max_length=41, description="oldest first: the `next` of the previous page"),
                                 AfterValidator(_cursor)] = "0-0",
                limit: int = Query(100, ge=1, le=1000), account: str | None = None,
                order: Literal["asc", "desc"] = Query("asc", description="asc: oldest first from `since`; desc: newest first "
                                                      "from `cursor`"),
                cursor: Annotated[str | None, Query(max_length=41, description="newest first: the `next` of the previous page "
                                                    "(none: the newest)"), AfterValidator(_optional_cursor)] = None) -> dict[str, Any]:
        """A page of the account's actions: ``{"actions": [...], "next": cursor}``. Oldest first (the default), ``next``
        is where the following page starts, the same cursor again when there is nothing new; newest first
        (``order=desc``), ``next`` is the cursor of the next older page, null after the oldest."""
        key = service.keys.stream(ctx.worker(account).account, "actions")
        if order == "desc":
            entries = read_back(service.redis, key, f"({cursor}" if cursor is not None else "+", count=limit)
            return {"actions": [json.loads(f[b"action"]) for _, f in entries],
                    "next": text(entries[-1][0]) if len(entries) == limit else None}
        entries = read_range(service.redis, key, f"({since}" if since not in ("0-0", "-") else "-", count=limit)
        out = [json.loads(f[b"action"]) for _, f in entries]
        return {"actions": out, "next": text(entries[-1][0]) if entries else since}

    return api
