"""Evaluate a condition tree on a context in plain Python: the cheap pre-filter before durable-rules.

Custom rules are decided by durable-rules; this evaluates the same tree locally so only the
positions whose condition holds are posted to it (DESIGN section 6: sparse events for the rules
engine), instead of one durable-rules event per position per tick.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

from engine.config.conditions import AllOf, AnyOf, Compare, Condition, In, negation_normal_form

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def holds(cond: Condition, ctx: Mapping[str, Any], normalized: bool = False) -> bool:
    """Return whether ``cond`` holds for the field values in ``ctx``.

    ``cond`` is taken in negation normal form, as durable-rules evaluates it: a comparison on a
    missing field never holds, negated or not.
    """
    return _holds(cond if normalized else negation_normal_form(cond), ctx)


def _holds(cond: Condition, ctx: Mapping[str, Any]) -> bool:
    if isinstance(cond, Compare):
        value = ctx.get(cond.field)
        if value is None:
            return False
        try:
            return bool(_OPS[cond.op](value, cond.value))
        except TypeError:
            return False
    if isinstance(cond, In):
        value = ctx.get(cond.field)
        if value is None:
            return False
        return (value in cond.values) != cond.negated
    if isinstance(cond, AllOf):
        return all(_holds(c, ctx) for c in cond.items)
    if isinstance(cond, AnyOf):
        return any(_holds(c, ctx) for c in cond.items)
    raise TypeError(f"not a condition: {cond!r}")
