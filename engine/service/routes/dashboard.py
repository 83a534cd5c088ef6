"""The dashboard: a static page, its script and its style, served from the package under a strict
Content-Security-Policy (no token: they hold no data; the script fetches everything with the token the
user types in).

The policy allows scripts, styles and connections to this origin only, no inline script or style, no
frames, forms or base URL, and images from this origin or ``data:``; ``X-Content-Type-Options: nosniff``
keeps a browser from running a file as anything but its declared type. The script renders data only as
text nodes, so a position id or a rule file that carries HTML shows as the text it is.
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

#: the Content-Security-Policy of every file of the dashboard
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")

#: what the dashboard serves: URL name -> (file under engine/service/web, media type)
FILES = {
    "app.js": ("app.js", "text/javascript; charset=utf-8"),
    "app.css": ("app.css", "text/css; charset=utf-8"),
    "vendor/uPlot.iife.min.js": ("vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "vendor/uPlot.min.css": ("vendor/uPlot.min.css", "text/css; charset=utf-8"),
}


def headers() -> dict[str, str]:
    """The security headers of every dashboard response."""
    return {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY", "Cache-Control": "no-cache"}


def router() -> APIRouter:
    """``/``, ``/dashboard`` and ``/dashboard/{file}`` (the names of ``FILES``), left out of the OpenAPI listing."""
    api = APIRouter()
    web = resources.files("engine.service").joinpath("web")
    page = web.joinpath("dashboard.html").read_bytes()
    files = {name: (web.joinpath(path).read_bytes(), media) for name, (path, media) in FILES.items()}

    @api.get("/", include_in_schema=False)
    @api.get("/dashboard", include_in_schema=False)
    def dashboard() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=headers())

    @api.get("/dashboard/{name:path}", include_in_schema=False)
    def asset(name: str) -> Response:
        if name not in files:
            raise HTTPException(404, f"the dashboard has no file {name[:100]!r}")
        body, media = files[name]
        return Response(body, media_type=media, headers=headers())

    return api
