"""Evaluate a condition tree over many positions at once: the vectorised pre-filter of custom rules.

``mask(cond, columns, n)`` returns a boolean array of length ``n``: ``columns`` maps a field name to
an array of ``n`` values (numbers, bools or strings) or to one scalar shared by all rows. ``cond`` is
taken in negation normal form (``negation_normal_form``), as durable-rules evaluates it: a field
missing from ``columns``, or a nan, never satisfies a comparison, negated or not.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.config.conditions import AllOf, AnyOf, Compare, Condition, In, negation_normal_form

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def mask(cond: Condition, columns: Mapping[str, Any], n: int) -> np.ndarray:
    """Return which of ``n`` rows satisfy ``cond``."""
    return _mask(negation_normal_form(cond), columns, n)


def _mask(cond: Condition, columns: Mapping[str, Any], n: int) -> np.ndarray:
    if isinstance(cond, Compare):
        if cond.field not in columns:
            return np.zeros(n, dtype=bool)
        col = columns[cond.field]
        if isinstance(col, np.ndarray):
            if col.dtype.kind in "fc":
                with np.errstate(invalid="ignore"):
                    return _OPS[cond.op](col, cond.value) & ~np.isnan(col)
            return np.asarray(_OPS[cond.op](col, cond.value), dtype=bool)
        try:
            hit = bool(_OPS[cond.op](col, cond.value))
        except TypeError:
            hit = False
        return np.full(n, hit)
    if isinstance(cond, In):
        if cond.field not in columns:
            return np.zeros(n, dtype=bool)
        col = columns[cond.field]
        hit = np.isin(col, list(cond.values)) if isinstance(col, np.ndarray) else np.full(n, col in cond.values)
        hit = ~hit if cond.negated else hit
        if isinstance(col, np.ndarray) and col.dtype.kind == "f":
            hit &= ~np.isnan(col)
        return hit
    if isinstance(cond, AllOf):
        out = np.ones(n, dtype=bool)
        for item in cond.items:
            out &= _mask(item, columns, n)
        return out
    if isinstance(cond, AnyOf):
        out = np.zeros(n, dtype=bool)
        for item in cond.items:
            out |= _mask(item, columns, n)
        return out
    raise TypeError(f"not a condition: {cond!r}")
