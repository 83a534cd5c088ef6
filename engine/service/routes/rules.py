"""The rules: what is active, and validate, reload and dry-run (plan) rule files."""

from __future__ import annotations

import json
import re
from typing import Any

import anyio
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.service import problems
from engine.service.problems import Problem
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
        """Validate the YAML body as a rule file of ``kind`` (or of the kind its name or first-line modeline tells).
        200 ``{"ok": true, "kind", "problems": []}`` when valid; else a problem detail (422) whose ``errors``
        are the file's problems, each at its ``file:line:column``."""
        from engine.config.load import validate_text

        errors = _name_problems(file) if file is not None else []
        text: str | None = None
        try:
            text = (await request.body()).decode("utf-8")
        except UnicodeDecodeError as exc:
            errors.append({"location": "body",
                           "detail": f"expected the rule file as UTF-8 text, found undecodable bytes at byte {exc.start}"})
        k, kind_error = _kind(kind, file if not errors else None, text or "")
        if kind_error is not None:
            errors.append(kind_error)
        if errors or text is None or k is None:
            raise Problem(422, problems.summary(errors), errors=errors)
        result = await anyio.to_thread.run_sync(validate_text, text, k, file or f"<{k}>", limiter=ctx.parsing)
        found = [problem_json(p) for p in result.problems]
        if not found:
            return JSONResponse({"ok": True, "kind": k, "problems": []})
        raise Problem(422, problems.summary(file_errors(found), f"the {k} file"), errors=file_errors(found), ok=False, kind=k)

    @api.post("/api/rules/reload", dependencies=ctx.guarded, tags=["rules"])
    def reload() -> JSONResponse:
        """Reload the rule files now: 200 with the reload's record, or a problem detail (422) whose ``errors``
        are every problem of the files (the last good rules stay active), with the record's other fields."""
        res = service.reload("api")
        if res.ok:
            return JSONResponse(res.to_json())
        record = {k: v for k, v in res.to_json().items() if k != "errors"}
        errors = file_errors(res.errors)
        raise Problem(422, "the rules were not reloaded; the last good rules stay active: " + problems.summary(errors, "the rule files"),
                      errors=errors, **record)

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
            raise _plan_problem(exc) from None

    return api


def file_errors(found: list[dict[str, Any]]) -> list[problems.Error]:
    """Rule-file problems (``problem_json``) as problem-detail ``errors``: each at its ``file:line:column`` (or
    its file, or ``rules`` for one of no file), with its fields (``file``, ``line``, ``column``, ``path``, ``text``)."""
    out = []
    for p in found:
        at = ":".join(str(x) for x in (p.get("file"), p.get("line"), p.get("column")) if x is not None) or "rules"
        out.append({"location": at, "detail": p["message"], **p})
    return out


def _plan_problem(exc: Any) -> Problem:
    """A ``PlanRequestError`` as a problem: its detail (a sentence, or ``{"message", "problems"|"error"}``)."""
    detail = exc.detail
    if isinstance(detail, str):
        return Problem(exc.status, detail, location="body" if exc.status == 422 else "request")
    message = str(detail.get("message", "the plan failed"))
    if "problems" in detail:
        errors = file_errors(detail["problems"])
        return Problem(exc.status, f"{message}: " + problems.summary(errors, "the proposed rules"), errors=errors)
    return Problem(exc.status, f"{message}: {str(detail.get('error', ''))[-500:]}", error=detail.get("error"))


def _kind(kind: str | None, file: str | None, body: str) -> tuple[str | None, problems.Error | None]:
    """The kind of the rule file to validate: ``kind``, else what its name or first-line modeline tells; or the
    problem saying none of them names one."""
    from engine.config.load import kind_from_text
    from engine.config.models import KINDS

    k = kind or (kind_from_text(file, body) if file else None)
    if k not in KINDS:
        return None, {"location": "query.kind", "detail": f"expected ?kind= one of {', '.join(KINDS)} (or ?file= a name that tells it, "
                      "or a first-line modeline), found " + (repr(k[:50]) if isinstance(k, str) else "none")}
    return k, None


def _plan_body(raw: bytes) -> PlanBody:
    """The body of ``POST /api/rules/plan``, or a problem (422) listing what is wrong with it: not JSON, a NaN
    or an Infinity, nesting or numbers the parser refuses, each field that is not ``{"files": {NAME: TEXT, ...}}``."""
    expected = "expected a JSON object {\"files\": {\"strategies/NAME.yaml\": \"<yaml>\", ...}}"

    def refuse(what: str) -> Problem:
        return Problem(422, f"{expected}; {what}", errors=[{"pointer": "", "detail": what}])

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
        errors = [{"pointer": problems.pointer(e["loc"]), "detail": e["msg"]} for e in exc.errors()]
        raise Problem(422, f"{expected}; " + problems.summary(errors, "the body"), errors=errors) from None


def _name_problems(name: str) -> list[problems.Error]:
    """The problem of a ``file`` name that is not a plain relative path (it names, it is never opened)."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) or ".." in parts or not name.isprintable() or not name.strip():
        return [{"location": "query.file", "detail": f"expected a relative name such as strategies/arbitrage.yaml, found {name[:100]!r}"}]
    return []
