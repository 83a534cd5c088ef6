"""What a rule change changes: the difference of two rule sets' meaning, parameter by parameter.

Compares the canonical content of two validated rule sets (defaults filled in, conditions in their
canonical form), so a comment, a reordering or writing a default explicitly is no change at all.
Exit levels are compared by their identity (``ExitLevel.key``: their ``id``, else their trigger), as
open positions know them: a level inserted in front is one level added, not every level edited
(``strategies.x.exit_levels[profit_target:0.003]: added``).
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
    if v is None:
        return "none"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict) and len(v) <= 8 and not any(isinstance(x, (dict, list)) for x in v.values()):
        return "{" + ", ".join(f"{k}: {_show(x)}" for k, x in v.items() if x is not None) + "}"  # a small record, in full
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
            sub = (f"{path}{key}" if str(key).startswith("[") else f"{path}.{key}") if path else str(key)
            if key not in a:
                out.append(Change(sub, _MISSING, b[key]))
            elif key not in b:
                out.append(Change(sub, a[key], _MISSING))
            else:
                _walk(a[key], b[key], sub, out)
        return
    if isinstance(a, list) and isinstance(b, list) and path.endswith("exit_levels"):
        _walk(_by_key(a), _by_key(b), path, out)
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


def _by_key(levels: list[Any]) -> dict[str, Any]:
    """Exit levels (canonical dicts) by their identity, as ``ExitLevel.key`` spells it, in brackets."""
    def key(lv: Any) -> str:
        if not isinstance(lv, dict):
            return repr(lv)
        if lv.get("id") is not None:
            return f"id:{lv['id']}"
        return f"profit_target:{lv['profit_target']!r}" if lv.get("profit_target") is not None else f"r_multiple:{lv.get('r_multiple')!r}"
    return {f"[{key(lv)}]": lv for lv in levels}
