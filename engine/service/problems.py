"""Problem details (RFC 9457): the one shape of every error answer of the HTTP API.

Every 4xx and 5xx answer of the API is ``application/problem+json``::

    {"type": "about:blank", "title": "Unprocessable Entity", "status": 422,
     "detail": "2 problems in the request: query.limit: ...; /volume: ...",
     "instance": "/api/positions",
     "errors": [{"location": "query.limit", "detail": "..."}, {"pointer": "/volume", "detail": "..."}]}

- ``type`` is ``about:blank`` (the status says what kind of problem it is) and ``title`` the status's
  phrase; ``detail`` is one sentence for people; ``instance`` the request's path.
- ``errors`` lists EVERY problem of the request at once, each with where it is and what is wrong: a
  ``pointer`` (RFC 6901) into the JSON body, or a ``location`` for anything else (``query.limit``,
  ``header.authorization``, ``body`` for a body that is not JSON, ``strategies/a.yaml:4:33`` for a rule
  file). A problem that belongs to no single place (a failed pre-trade check, a missing token) has the
  pointer ``""``, the whole body, or the location ``request``.
- Extension members carry what a program needs besides: ``failed_checks`` of a rejected position,
  ``error_id`` of a 500, the reload's outcome, the rule file's ``kind``.

``Problem`` is the exception routes raise; ``install`` makes FastAPI answer every ``HTTPException`` (its
own 404/405 included) and every request-validation error (422) in this shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engine.errors import RiskrailError

#: the media type of a problem (RFC 9457 section 3)
PROBLEM_JSON = "application/problem+json"

#: one entry of ``errors``: ``{"pointer": "/volume" | "location": "query.limit", "detail": "...", ...}``
Error = dict[str, Any]


class Problem(RiskrailError, HTTPException):
    """An error answer in problem-details form: ``status`` (HTTP), ``detail`` (a sentence), ``errors``
    (every problem, each ``{"pointer"|"location", "detail"}``; by default one at ``location``) and
    extension members (``extensions``, JSON values). An ``HTTPException`` too, so that FastAPI answers it
    wherever a route or a dependency raises it; ``install`` gives it its own handler (before the
    ``RiskrailError`` one the app has)."""

    def __init__(self, status: int, detail: str, *, errors: list[Error] | None = None, location: str = "request",
                 headers: Mapping[str, str] | None = None, **extensions: Any) -> None:
        HTTPException.__init__(self, status, detail, headers=dict(headers) if headers else None)
        self.errors = errors if errors is not None else [{"location": location, "detail": detail}]
        self.extensions = extensions


def body(status: int, detail: str, *, instance: str | None = None, errors: list[Error] | None = None,
         **extensions: Any) -> dict[str, Any]:
    """The JSON object of a problem; ``errors`` default to the one problem ``detail`` at ``location: request``."""
    doc: dict[str, Any] = {**extensions, "type": "about:blank", "title": _title(status), "status": status, "detail": detail}
    if instance is not None:
        doc["instance"] = instance
    doc["errors"] = errors if errors is not None else [{"location": "request", "detail": detail}]
    return doc


def response(status: int, detail: str, *, instance: str | None = None, errors: list[Error] | None = None,
             headers: Mapping[str, str] | None = None, **extensions: Any) -> JSONResponse:
    """A problem as a FastAPI response (``application/problem+json``)."""
    return JSONResponse(body(status, detail, instance=instance, errors=errors, **extensions), status_code=status,
                        headers=dict(headers) if headers else None, media_type=PROBLEM_JSON)


def encoded(status: int, detail: str, instance: str | None = None, **extensions: Any) -> bytes:
    """A problem as the bytes of a raw ASGI answer (the middlewares that answer before FastAPI does)."""
    return json.dumps(body(status, detail, instance=instance, **extensions)).encode()


def pointer(path: Iterable[str | int]) -> str:
    """The JSON pointer (RFC 6901) of a path into a JSON document: ``("files", "a/b")`` -> ``/files/a~1b``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def summary(errors: list[Error], what: str = "the request") -> str:
    """One sentence for ``detail`` naming every problem: ``2 problems in the request: query.limit: ...; /volume: ...``."""
    parts = [f"{where(e)}: {e['detail']}" if where(e) not in ("", "request") else str(e["detail"]) for e in errors]
    head = f"{len(errors)} problem{'s' if len(errors) != 1 else ''} in {what}"
    return f"{head}: {'; '.join(parts)}" if parts else head


def where(error: Error) -> str:
    """Where an entry of ``errors`` is: its pointer (``/`` for the whole body) or its location."""
    if "pointer" in error:
        return str(error["pointer"]) or "/"
    return str(error.get("location", ""))


def validation_errors(errors: Iterable[Mapping[str, Any]]) -> list[Error]:
    """FastAPI's (pydantic's) request-validation errors as ``errors``: the body's as pointers, the rest
    (``query``, ``path``, ``header``) as locations such as ``query.limit``; a message a validator of ours
    wrote is shown as written (without pydantic's "Value error, ")."""
    out = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        ctx = e.get("ctx") or {}
        message = str(ctx["error"]) if e.get("type") == "value_error" and "error" in ctx else str(e.get("msg", "invalid"))
        if loc and loc[0] == "body":
            out.append({"pointer": pointer(loc[1:]), "detail": message})
        else:
            out.append({"location": ".".join(loc) or "request", "detail": message})
    return out


def install(app: FastAPI) -> None:
    """Answer every ``HTTPException`` and every request-validation error of ``app`` as a problem."""
    app.exception_handler(Problem)(_http_exception)
    app.exception_handler(HTTPException)(_http_exception)
    app.exception_handler(RequestValidationError)(_validation_error)


async def _http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else _title(exc.status_code)
    if isinstance(exc, Problem):
        return response(exc.status_code, detail, instance=request.url.path, errors=exc.errors, headers=exc.headers, **exc.extensions)
    return response(exc.status_code, detail, instance=request.url.path, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    return response(422, summary(errors), instance=request.url.path, errors=errors)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
