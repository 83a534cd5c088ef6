"""Evaluate a condition tree on a context in plain Python: the cheap pre-filter before durable-rules.

Custom rules are decided by durable-rules; this evaluates the same tree locally so only the
positions whose condition holds are posted to it (DESIGN section 6: sparse events for the rules
engine), instead of one durable-rules event per position per tick.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Mapping
from typing import Any

from engine.config.conditions import AllOf, AnyOf, Compare, Condition, In, negation_normal_form
from engine.config.scopes import Residual, alternatives, atoms_of, negated, substitute

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def holds(cond: Condition, ctx: Mapping[str, Any], normalized: bool = False) -> bool:
    """Return whether ``cond`` holds for the field values in ``ctx``.

    ``cond`` is taken in negation normal form, as durable-rules evaluates it: a comparison on a
    missing field never holds, negated or not.
    """
    return _holds(cond if normalized else negation_normal_form(cond), ctx)


#: per condition, its fact states and their residuals in negation normal form (``_cases``: where it may hold;
#: ``_failures``: where its negation may), computed once: conditions are frozen, and a tick asks for every rule
Cases = tuple[tuple[dict[str, bool], Residual], ...]


@functools.lru_cache(maxsize=4096)
def _cases(cond: Condition) -> Cases:
    return tuple((state, r if isinstance(r, bool) else negation_normal_form(r)) for state, r in alternatives(cond))


@functools.lru_cache(maxsize=4096)
def _failures(cond: Condition) -> Cases:
    atoms = atoms_of(cond)
    out = []
    for truth in itertools.product((True, False), repeat=len(atoms)):
        state = dict(zip(atoms, truth, strict=True))
        r = negated(substitute(cond, state))
        out.append((state, r if isinstance(r, bool) else negation_normal_form(r)))
    return tuple(out)


def _case_holds(residual: Residual, ctx: Mapping[str, Any]) -> bool:
    return residual if isinstance(residual, bool) else _holds(residual, ctx)


def _agrees(state: Mapping[str, bool], facts: Mapping[str, bool] | None) -> bool:
    return facts is None or all(facts.get(k, v) == v for k, v in state.items())


def may_hold(cond: Condition, ctx: Mapping[str, Any], facts: Mapping[str, bool] | None = None) -> bool:
    """Tell whether ``cond`` holds on ``ctx`` for some state of its fact atoms (``engine.config.scopes``).

    ``facts`` fixes the atoms it gives (``{"portfolio.halted": True}``); the others may be either, as a
    rule may assert or retract a fact later in the same event. With every atom given, this is exactly
    what durable-rules decides.
    """
    return any(_case_holds(r, ctx) for s, r in _cases(cond) if _agrees(s, facts))


def may_fail(cond: Condition, ctx: Mapping[str, Any], facts: Mapping[str, bool] | None = None) -> bool:
    """Tell whether the negation of ``cond`` holds on ``ctx`` for some state of its atoms: a rule's latch
    re-arms only then (a comparison on a missing field holds neither way)."""
    return any(_case_holds(r, ctx) for s, r in _failures(cond) if _agrees(s, facts))


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
