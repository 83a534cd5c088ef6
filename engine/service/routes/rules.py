"""The rules: what is active, and validate, reload and dry-run (plan) rule files."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.service.reload import problem_json
from engine.service.routes.context import Context


class PlanBody(BaseModel):
    """The body of ``POST /api/rules/plan``: the changed rule files, by path in the configuration."""

    model_config = ConfigDict(extra="forbid", strict=True)
    files: dict[str, str] = Field(..., examples=[{"strategies/arbitrage.yaml": "name: arbitrage\n…"}])


def router(ctx: Context) -> APIRouter:
    """``/api/rules``, ``/api/rules/validate``, ``/api/rules/reload`` and ``/api/rules/plan`` of ``ctx``'s service."""
    api, service = APIRouter(), ctx.service

    @api.get("/api/rules", dependencies=ctx.guarded, tags=["rules"])
    def rules() -> dict[str, Any]:
        version, loaded_at, last = service.rules_state()
        return {"version": version, "loaded_at": loaded_at, "config": service.config_dir,
                "last_reload": last.to_json() if last else None,
                "strategies": sorted(service.active_rules().strategies)}

    @api.post("/api/rules/validate", dependencies=ctx.guarded, tags=["rules"])
    async def validate(request: Request,
                       kind: str | None = Query(None, max_length=32,
                                                description="strategy, limits, allocation, profit, custom, instruments, schedules"),
                       file: str | None = Query(None, max_length=255, description="the name the file would have in the configuration, "
                                                "e.g. strategies/arbitrage.yaml: it names the file in problems and tells its kind; "
                                                "nothing is read from the server's disk")) -> JSONResponse:
        """Validate the YAML body as a rule file of ``kind`` (or of the kind its name or first-line modeline tells)."""
        from engine.config.load import validate_text

        if file is not None:
            _check_name(file)
        try:
            body = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise HTTPException(422, f"expected the rule file as UTF-8 text, found undecodable bytes at byte {exc.start}") from None
        k = _kind(kind, file, body)
        result = await anyio.to_thread.run_sync(validate_text, body, k, file or f"<{k}>", limiter=ctx.parsing)
        problems = [problem_json(p) for p in result.problems]
        return JSONResponse({"ok": not problems, "kind": k, "problems": problems}, status_code=200 if not problems else 422)

    @api.post("/api/rules/reload", dependencies=ctx.guarded, tags=["rules"])
    def reload() -> JSONResponse:
        res = service.reload("api")
        return JSONResponse(res.to_json(), status_code=200 if res.ok else 422)

    @api.post("/api/rules/plan", dependencies=ctx.guarded, tags=["rules"], openapi_extra={"requestBody": {
        "required": True, "content": {"application/json": {"schema": PlanBody.model_json_schema()}}}})
    async def rules_plan(request: Request, account: str | None = Query(None, max_length=200),
                         max_events: int = Query(1_000_000, ge=1, le=10_000_000)) -> JSONResponse:
        """Dry-run changed rule files (laid over the active rules) against the account's recorded events."""
        from engine.service.plan import PlanRequestError, plan

        # the body is read after the token is checked, and parsed off the event loop (up to 4 MiB)
        body = await anyio.to_thread.run_sync(_plan_body, await request.body(), limiter=ctx.parsing)
        try:
            return JSONResponse(await anyio.to_thread.run_sync(lambda: plan(service, body.files, account=account, max_events=max_events)))
        except PlanRequestError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    return api


def _kind(kind: str | None, file: str | None, body: str) -> str:
    """The kind of the rule file to validate: ``kind``, else what its name or first-line modeline tells; 422 for none of them."""
    from engine.config.load import kind_from_text
    from engine.config.models import KINDS

    k = kind or (kind_from_text(file, body) if file else None)
    if k not in KINDS:
        raise HTTPException(422, f"expected ?kind= one of {', '.join(KINDS)} (or ?file= a name that tells it, or a "
                            "first-line modeline), found " + (repr(k[:50]) if isinstance(k, str) else "none"))
    return k


def _plan_body(raw: bytes) -> PlanBody:
    """The body of ``POST /api/rules/plan``, or ``422`` saying what is wrong with it: not JSON, a NaN or
    an Infinity, nesting or numbers the parser refuses, not ``{"files": {NAME: TEXT, ...}}``."""

    def refuse(what: str) -> HTTPException:
        return HTTPException(422, f"expected a JSON object {{\"files\": {{\"strategies/NAME.yaml\": \"<yaml>\", ...}}}}; {what}")

    def no_constant(name: str) -> Any:
        raise ValueError(f"found {name}, which is not JSON")

    try:
        obj = json.loads(raw, parse_constant=no_constant)
    except RecursionError:
        raise refuse("found nesting too deep to read") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise refuse(f"invalid JSON ({str(exc)[:200]})") from None
    try:
        return PlanBody.model_validate(obj)
    except ValidationError as exc:
        raise refuse("; ".join(f"{'.'.join(map(str, e['loc'])) or 'the body'}: {e['msg']}" for e in exc.errors()[:5])) from None


def _check_name(name: str) -> None:
    """Refuse a ``file`` name that is not a plain relative path (it names, it is never opened)."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts or not name.isprintable() or not name.strip():
        raise HTTPException(422, f"file: expected a relative name such as strategies/arbitrage.yaml, found {name[:100]!r}")
