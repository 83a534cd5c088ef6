"""What a rule change changes: the difference of two rule sets' meaning, parameter by parameter.

Compares the canonical content of two validated rule sets (defaults filled in, conditions in their
canonical form), so a comment, a reordering or writing a default explicitly is no change at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.config.load import RuleSet

_MISSING = object()


@dataclass(frozen=True)
class Change:
    """One parameter that differs: its dotted path, and its base and proposed values (None: absent)."""

    path: str
    base: Any
    proposed: Any

    def __str__(self) -> str:
        if self.base is _MISSING:
            return f"{self.path}: added {_show(self.proposed)}"
        if self.proposed is _MISSING:
            return f"{self.path}: removed (was {_show(self.base)})"
        return f"{self.path}: {_show(self.base)} -> {_show(self.proposed)}"

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "base": _plain(self.base), "proposed": _plain(self.proposed)}


def _plain(v: Any) -> Any:
    return None if v is _MISSING else v


def _show(v: Any) -> str:
    if v is _MISSING:
        return "(absent)"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (dict, list)):
        return "{...}" if isinstance(v, dict) else "[...]"
    return str(v)


def semantic_diff(base: RuleSet, proposed: RuleSet) -> list[Change]:
    """Return every parameter whose meaning differs between two rule sets, in path order."""
    out: list[Change] = []
    _walk(base.canonical(), proposed.canonical(), "", out)
    return out


def _walk(a: Any, b: Any, path: str, out: list[Change]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in a:
                out.append(Change(sub, _MISSING, b[key]))
            elif key not in b:
                out.append(Change(sub, a[key], _MISSING))
            else:
                _walk(a[key], b[key], sub, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            sub = f"{path}.{i}"
            if i >= len(a):
                out.append(Change(sub, _MISSING, b[i]))
            elif i >= len(b):
                out.append(Change(sub, a[i], _MISSING))
            else:
                _walk(a[i], b[i], sub, out)
        return
    if a != b:
        out.append(Change(path, a, b))
