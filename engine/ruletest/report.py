"""How rule unit test results read: PASS/FAIL per case, the differences tick by tick, a summary line.

A failure shows, at each tick where something differs, the quote, what was expected and what the
engine did, with the rule that fired and its reason — for a risk manager, not a programmer::

    FAIL rules/tests/arbitrage.yaml: trailing ratchets after activation
      tick 3 (bid 1.0937, ask 1.0938)
        expected set_stop_loss p1 stop_loss 1.09151 (rule trailing)
        actual   set_stop_loss p1 stop_loss 1.088255 (rule exit_levels.1: exit level 2 moves the stop loss ...)
      tick 5 (bid 1.091, ask 1.0911): unexpected close p1 price 1.091 volume 0.05 (rule trailing_stop): trailing stop ...
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from engine.actions import Action
from engine.ruletest.models import Expectation
from engine.ruletest.runner import NUMBERS, CaseResult, Mismatch, actual_value

#: the numbers worth showing for an action nobody asked about, by type
_SHOWN = {
    "close": ("price", "volume"),
    "close_partial": ("fraction", "volume", "price"),
    "set_stop_loss": ("stop_loss",),
    "set_take_profit": ("take_profit",),
    "close_all": ("price", "volume"),
}


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.12g}"
    return str(value)


def _pair(expected: float, actual: Any) -> tuple[str, str]:
    """Format an expected and an actual number, with full precision when the short forms look equal."""
    e, a = _num(expected), _num(actual)
    if e == a and isinstance(actual, float) and actual != expected:
        return repr(expected), repr(actual)
    return e, a


def _where(at: int, quotes: Sequence[tuple[float, float]]) -> str:
    if at == 0:
        return "before the first tick"
    bid, ask = quotes[at - 1]
    return f"tick {at} (bid {_num(bid)}, ask {_num(ask)})"


def describe_expected(e: Expectation, actual: Action | None = None) -> str:
    """Return an expectation as a line: type, position, the numbers it gives, and its rule."""
    parts = [e.type]
    if e.position is not None:
        parts.append(e.position)
    for key in NUMBERS:
        value = getattr(e, key)
        if value is not None:
            shown = _pair(value, actual_value(actual, key, e.position))[0] if actual is not None else _num(value)
            parts.append(f"{key} {shown}")
    extra = [f"rule {e.rule}"] if e.rule is not None else []
    if e.reason is not None:
        extra.append(f"reason containing {e.reason!r}")
    return " ".join(parts) + (f" ({', '.join(extra)})" if extra else "")


def describe_actual(a: Action, keys: Iterable[str] | None = None, expected: Expectation | None = None) -> str:
    """Return an action as a line: type, position, numbers (``keys``, else the usual ones), rule and reason."""
    position = expected.position if expected is not None else None
    parts = [a.type]
    if a.position_id is not None:
        parts.append(a.position_id)
    elif a.type == "close_all":
        ids = [str(item.get("position_id")) for item in a.params.get("positions", [])]
        parts.append(",".join(ids) if ids else "(no open positions)")
    for key in (keys if keys is not None else _SHOWN.get(a.type, ())):
        value = actual_value(a, key, position)
        if value is None:
            continue
        shown = _pair(getattr(expected, key), value)[1] if expected is not None and getattr(expected, key) is not None else _num(value)
        parts.append(f"{key} {shown}")
    return " ".join(parts) + f" (rule {a.rule}: {a.reason})"


def _mismatch_lines(m: Mismatch) -> list[str]:
    if m.kind == "unexpected":
        assert m.actual is not None
        return [f"    unexpected {describe_actual(m.actual)}"]
    assert m.expected is not None
    keys = [k for k in NUMBERS if getattr(m.expected, k) is not None]
    actual = describe_actual(m.actual, keys or None, m.expected) if m.actual is not None else "nothing of this kind at this tick"
    return [f"    expected {describe_expected(m.expected, m.actual)}", f"    actual   {actual}"]


def _tick_lines(at: int, group: list[Mismatch], quotes: Sequence[tuple[float, float]]) -> list[str]:
    """One block per tick; a tick whose only difference is one unexpected action reads as one line."""
    if len(group) == 1 and group[0].kind == "unexpected":
        return [f"  {_where(at, quotes)}: {_mismatch_lines(group[0])[0].strip()}"]
    return [f"  {_where(at, quotes)}", *(line for m in group for line in _mismatch_lines(m))]


def render_case(r: CaseResult) -> str:
    """Return the report of one case: one line when it passed or was skipped, the differences when not."""
    label = f"{r.file}: {r.name}"
    if r.skipped is not None:
        return f"SKIP {label} ({r.skipped})"
    if r.passed:
        return f"PASS {label}"
    lines = [f"FAIL {label}"]
    if r.error is not None:
        lines.append(f"  the engine stopped: {r.error}")
    by_tick: dict[int, list[Mismatch]] = {}
    for m in r.mismatches:
        by_tick.setdefault(m.at, []).append(m)
    for at, group in by_tick.items():
        lines.extend(_tick_lines(at, group, r.quotes))
    lines.extend(f"  note: {p}" for p in r.problems)
    return "\n".join(lines)


def summary(results: Sequence[CaseResult]) -> str:
    """Return the summary line: ``N passed, M failed`` (and ``, K skipped`` when some were)."""
    skipped = sum(1 for r in results if r.skipped is not None)
    passed = sum(1 for r in results if r.passed and r.skipped is None)
    failed = len(results) - passed - skipped
    return f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else "")


def render_text(results: Sequence[CaseResult]) -> str:
    """Return the whole text report, the summary on its own last line."""
    return "\n".join([*(render_case(r) for r in results), "", summary(results)])


def _expected_json(e: Expectation) -> dict[str, Any]:
    return e.model_dump(mode="json", exclude_none=True)


def to_json(results: Sequence[CaseResult]) -> list[dict[str, Any]]:
    """Return the results as JSON data: per case name, file, passed, skipped, error and the mismatches."""
    out = []
    for r in results:
        mismatches = []
        for m in r.mismatches:
            quote = {"bid": r.quotes[m.at - 1][0], "ask": r.quotes[m.at - 1][1]} if m.at else None
            mismatches.append({
                "tick": m.at, "quote": quote, "kind": m.kind,
                "expected": _expected_json(m.expected) if m.expected is not None else None,
                "actual": m.actual.to_json() if m.actual is not None else None,
            })
        out.append({"name": r.name, "file": r.file, "passed": r.passed, "skipped": r.skipped, "error": r.error,
                    "mismatches": mismatches})
    return out


def render_json(results: Sequence[CaseResult]) -> str:
    """Render the results as a JSON array (``--format json``)."""
    return json.dumps(to_json(results), indent=2, allow_nan=False)
