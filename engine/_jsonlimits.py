"""The limits strict JSON reading enforces beyond the grammar: nesting depth, integer digits, no NaN or
Infinity. Each raises ``ValueError`` with the words of the refusal; ``engine.events.parse_json`` applies
them and turns that into an ``EventError``."""

from __future__ import annotations

from typing import Any


class NonFinite(str):
    """``NaN``, ``Infinity`` or ``-Infinity`` as the JSON text had it: refused with the field's name."""


def refuse_non_finite(value: Any, path: str = "") -> None:
    """Raise ``ValueError`` naming the first ``NonFinite`` in ``value`` by its dotted path."""
    if isinstance(value, NonFinite):
        raise ValueError(f"{path or 'value'}: expected a finite number, found {value}")
    if isinstance(value, dict):
        for k, v in value.items():
            refuse_non_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            refuse_non_finite(v, f"{path}.{i}" if path else str(i))


def bounded_int(text: str, digits: int) -> int:
    """A JSON integer of at most ``digits`` digits (``ValueError`` for a longer one)."""
    if len(text.lstrip("-")) > digits:
        raise ValueError(f"expected integers of at most {digits} digits, found one of {len(text.lstrip('-'))} digits")
    return int(text)


def check_depth(raw: str, max_depth: int) -> None:
    """Refuse nesting deeper than ``max_depth`` before the JSON parser recurses into it (brackets in
    strings are skipped; a malformed text is left to the parser to report)."""
    if raw.count("[") + raw.count("{") <= max_depth:
        return
    depth, in_string, escaped = 0, False, False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"expected JSON nested at most {max_depth} deep, found deeper nesting")
        elif ch in "]}":
            depth -= 1
