"""The dashboard: a static page (no token: it holds no data, and fetches everything with the token it is given)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse


def router() -> APIRouter:
    """``/`` and ``/dashboard``, left out of the OpenAPI listing."""
    api = APIRouter()

    @api.get("/", include_in_schema=False)
    @api.get("/dashboard", include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(resources.files("engine.service").joinpath("dashboard.html").read_text(encoding="utf-8"))

    return api
