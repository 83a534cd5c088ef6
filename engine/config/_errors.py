"""Turn pydantic validation errors into located ``Problem``s: what was expected, what was found."""

from __future__ import annotations

import types
import typing
from typing import NotRequired, TypedDict

from pydantic import BaseModel, ValidationError

from engine.config._yaml import Document, Mark, Plain
from engine.config.conditions import suggest
from engine.config.models.custom import LocatedError
from engine.config.problems import Path, Problem

_PATTERNS = {
    r"^[a-z][a-z0-9_]*$": "a lower-case name (letters, digits and _ , starting with a letter)",
    r"^[a-z0-9][a-z0-9_-]*$": "a lower-case name (letters, digits, - and _)",
    r"^[A-Z]{3}$": "a three-letter currency code such as USD",
    r"^[1-9][0-9]*[smhd]$": "a bar size such as 30s, 1m, 15m, 1h or 1d",
    r"^[A-Za-z0-9._#-]{1,32}$": "a symbol such as EURUSD",
}

_EXPECTED = {
    "float_type": "a number",
    "float_parsing": "a number",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "dataclass_type": "a mapping",
    "finite_number": "a finite number",
}


class _Merged(TypedDict):
    """The errors at one place, merged: every value expected there, the one found, a spelling hint."""

    expected: list[str]
    found: str
    hint: NotRequired[str]


def describe(value: object) -> str:
    """Describe a found value the way a YAML author wrote it."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _unwrap(tp: object) -> list[object]:
    """Return the concrete alternatives of an annotation (Annotated and Optional stripped)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return [t for arg in typing.get_args(tp) for t in _unwrap(arg) if t is not type(None)]
    return [tp]


def model_at(model: type[BaseModel], path: Path) -> type[BaseModel] | None:
    """Return the model class that validates the mapping at ``path``, if one does."""
    current: list[object] = [model]
    for item in path:
        nxt: list[object] = []
        for tp in current:
            origin = typing.get_origin(tp)
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if isinstance(item, str) and item in tp.model_fields:
                    nxt.extend(_unwrap(tp.model_fields[item].annotation))
            elif origin is list and isinstance(item, int):
                nxt.extend(_unwrap(typing.get_args(tp)[0]))
            elif origin is dict:
                nxt.extend(_unwrap(typing.get_args(tp)[1]))
        current = nxt
    for tp in current:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return tp
    return None


def _child(node: Plain, item: str | int) -> tuple[bool, Plain]:
    """Return whether ``node`` holds ``item`` (a key, or an index of a list) and the value there."""
    if isinstance(node, dict) and item in node:
        return True, node[item]
    if isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
        return True, node[item]
    return False, None


def _resolve(loc: tuple[str | int, ...], data: Plain) -> tuple[Path, list[str | int], bool]:
    """Walk ``loc`` through ``data``: (path present in the data, loc items left over, a dict-key error)."""
    path: list[str | int] = []
    rest: list[str | int] = []
    key_error = False
    node = data
    for item in loc:
        if item == "[key]":
            key_error = True
            continue
        found, child = _child(node, item) if not rest else (False, None)
        if found:
            path.append(item)
            node = child
        else:
            rest.append(item)
    return tuple(path), rest, key_error


def _located_condition(doc: Document, base: Path, located: list[LocatedError]) -> list[Problem]:
    problems = []
    for entry in located:
        path = (*base, *entry["subpath"])
        mark = doc.string_starts.get(path) or doc.mark(path)
        value = _get(doc.data, path)
        line = doc.line_text(mark.line)
        if isinstance(value, str) and line[mark.column - 1 : mark.column - 1 + len(value)] == value:
            mark = Mark(mark.line, mark.column + entry["offset"])
        problems.append(Problem(doc.file, mark.line, mark.column, path, entry["message"]))
    return problems


def _get(data: Plain, path: Path) -> Plain:
    for item in path:
        found, data = _child(data, item)
        if not found:
            return None
    return data


def problems_from(exc: ValidationError, doc: Document, model: type[BaseModel]) -> list[Problem]:
    """Return one located problem per distinct error of ``exc`` (raised validating ``doc.data``)."""
    # Errors at the same place from the alternatives of a union are merged into one "expected A or B".
    merged: dict[tuple[Path, bool], _Merged] = {}
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        ctx = err.get("ctx") or {}
        path, rest, key_error = _resolve(tuple(err["loc"]), doc.data)
        if kind == "condition" and "located" in ctx:
            problems.extend(_located_condition(doc, path, ctx["located"]))
            continue
        found = err.get("input")
        at_key = key_error
        if kind == "missing":
            key = rest[-1] if rest else "?"
            parent = model_at(model, path)
            desc = parent.model_fields[key].description if parent and isinstance(key, str) and key in parent.model_fields else None
            message = f"missing required key '{key}'" + (f" ({desc})" if desc else "")
            mark = doc.mark(path, key=True)
            problems.append(Problem(doc.file, mark.line, mark.column, (*path, key), message))
            continue
        if kind == "extra_forbidden":
            key = path[-1] if path else "?"
            parent = model_at(model, path[:-1])
            allowed = list(parent.model_fields) if parent else []
            hint = suggest(str(key), allowed)
            listing = f"; expected one of: {', '.join(allowed)}" if allowed else ""
            message = f"unknown key '{key}'{hint or listing}"
            mark = doc.mark(path, key=True)
            problems.append(Problem(doc.file, mark.line, mark.column, path, message))
            continue
        expected = _EXPECTED.get(kind)
        if kind == "literal_error":
            expected = f"one of {ctx.get('expected')}"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            op = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}[kind]
            bound = next(v for k, v in ctx.items() if k in ("gt", "ge", "lt", "le"))
            expected = f"a value {op} {bound:g}" if isinstance(bound, (int, float)) else f"a value {op} {bound}"
        elif kind == "string_pattern_mismatch":
            expected = _PATTERNS.get(ctx.get("pattern", ""), f"text matching {ctx.get('pattern')}")
        elif kind in ("too_short", "too_long"):
            what = "at least" if kind == "too_short" else "at most"
            limit = ctx.get("min_length") if kind == "too_short" else ctx.get("max_length")
            expected = f"{what} {limit} item(s)"
        if expected is None:
            # Our own validators phrase the whole message (expected ..., found ...).
            message = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
            mark = doc.mark(path, key=at_key)
            problems.append(Problem(doc.file, mark.line, mark.column, path, message))
            continue
        if kind in ("too_short", "too_long"):
            found_text = f"{ctx.get('actual_length')} item(s)"
        elif at_key:
            found_text = f"the key {found!r}"
        else:
            found_text = describe(found)
        slot = merged.setdefault((path, at_key), _Merged(expected=[], found=found_text))
        if expected not in slot["expected"]:
            slot["expected"].append(expected)
        if kind == "literal_error" and isinstance(found, str):
            choices = str(ctx.get("expected", "")).replace(" or ", ",").split(",")
            slot["hint"] = suggest(found, [s.strip().strip("'") for s in choices])
    for (path, at_key), slot in merged.items():
        message = f"expected {' or '.join(slot['expected'])}, found {slot['found']}{slot.get('hint', '')}"
        mark = doc.mark(path, key=at_key)
        problems.append(Problem(doc.file, mark.line, mark.column, path, message))
    return problems
