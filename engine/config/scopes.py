"""Where a custom rule is evaluated (its scope), and what its condition means for each state of the facts.

Scope: the narrowest subject whose context holds every field the condition reads (``SCOPES``):

    position    it reads a ``position.*`` field: once per open position (its strategy's and symbol's
                fields come with it)
    strategy    it reads ``strategy.*`` (and no position field): once per strategy of the rules
    symbol      it reads ``symbol.*`` (and no position or strategy field): once per symbol
    portfolio   anything else (portfolio, tick, clock fields and facts only): once per event

A condition reading ``strategy.*`` and ``symbol.*`` but no ``position.*`` field has no scope: no
subject has both, so it could never be evaluated; the lint reports it (``scope_of`` returns None).

Fact atoms (``portfolio.halted``, ``fact.<name>.active``) are read by durable-rules from its facts, not
from the context. A condition is compiled once per state of its atoms (``alternatives``): each state
gives the *residual* condition on the context's fields (``substitute``), or drops out when it cannot
hold. The pre-filter (``engine.rules.predicate``), which knows the fields but not the facts a rule may
assert later in the event, asks whether some state could make the condition hold or fail.
``satisfiable`` tells, conservatively, whether conditions can hold together (the lint's cycle check).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from engine.config.conditions import AllOf, AnyOf, Compare, Condition, In, Not, fields_of, negation_normal_form
from engine.config.fields import SCOPES, is_fact_atom

#: a condition with its fact atoms decided: a residual condition, or a constant
Residual = Condition | bool

MAX_ATOMS = 3  # fact atoms one condition may read: the rule compiles to up to 2**3 alternatives


def scope_of(cond: Condition) -> str | None:
    """Return the scope a condition is evaluated at (``SCOPES``), None when no subject has its fields."""
    spaces = {f.split(".", 1)[0] for f in fields_of(cond) if not is_fact_atom(f)}
    if "position" in spaces:
        return "position"
    if "strategy" in spaces and "symbol" in spaces:
        return None
    for scope in SCOPES[1:3]:
        if scope in spaces:
            return scope
    return "portfolio"


def atoms_of(cond: Condition) -> tuple[str, ...]:
    """Return the fact atoms a condition reads, sorted."""
    return tuple(sorted(f for f in fields_of(cond) if is_fact_atom(f)))


def substitute(cond: Condition, values: Mapping[str, bool]) -> Residual:
    """Return ``cond`` with the fields of ``values`` replaced by their truth, folded to a constant where it decides."""
    if isinstance(cond, Compare):
        if cond.field not in values:
            return cond
        equal = values[cond.field] == cond.value
        return equal if cond.op == "==" else not equal if cond.op == "!=" else False
    if isinstance(cond, In):
        if cond.field not in values:
            return cond
        return (values[cond.field] in cond.values) != cond.negated
    if isinstance(cond, Not):
        inner = substitute(cond.item, values)
        return (not inner) if isinstance(inner, bool) else Not(inner)
    is_all = isinstance(cond, AllOf)
    kept: list[Condition] = []
    for item in cond.items:
        part = substitute(item, values)
        if isinstance(part, bool):
            if part != is_all:  # a False under all, or a True under any, decides
                return part
            continue
        kept.append(part)
    if not kept:
        return is_all
    return kept[0] if len(kept) == 1 else (AllOf(tuple(kept)) if is_all else AnyOf(tuple(kept)))


def alternatives(cond: Condition) -> Iterator[tuple[dict[str, bool], Residual]]:
    """Yield each state of the condition's fact atoms under which it can hold, with its residual.

    The states are exclusive, so at most one alternative matches at a time; their order is fixed
    (atoms sorted, True before False), so the compiled rules are too.
    """
    atoms = atoms_of(cond)
    for truth in itertools.product((True, False), repeat=len(atoms)):
        state = dict(zip(atoms, truth, strict=True))
        residual = substitute(cond, state)
        if residual is not False:
            yield state, residual


def negated(residual: Residual) -> Residual:
    """Return the negation of a residual in negation normal form (what durable-rules evaluates)."""
    return (not residual) if isinstance(residual, bool) else negation_normal_form(residual, True)


# --- satisfiability (conservative: True when unsure) ---------------------------------------------

_MAX_TERMS = 512


def _dnf(cond: Condition) -> list[list[Condition]] | None:
    """The terms of a condition in negation normal form, each a list of comparisons; None past ``_MAX_TERMS``."""
    if isinstance(cond, (Compare, In)):
        return [[cond]]
    if isinstance(cond, AnyOf):
        out: list[list[Condition]] = []
        for item in cond.items:
            terms = _dnf(item)
            if terms is None or len(out) + len(terms) > _MAX_TERMS:
                return None
            out.extend(terms)
        return out
    if isinstance(cond, AllOf):
        acc: list[list[Condition]] = [[]]
        for item in cond.items:
            terms = _dnf(item)
            if terms is None or len(acc) * len(terms) > _MAX_TERMS:
                return None
            acc = [a + t for a in acc for t in terms]
        return acc
    raise TypeError(f"not a condition in negation normal form: {cond!r}")


def _term_ok(term: Sequence[Condition]) -> bool:
    by_field: dict[str, list[Condition]] = {}
    for lit in term:
        by_field.setdefault(lit.field if isinstance(lit, (Compare, In)) else "", []).append(lit)
    return all(_field_ok(lits) for lits in by_field.values())


def _field_ok(lits: Sequence[Condition]) -> bool:
    lo, lo_open, hi, hi_open = -math.inf, False, math.inf, False
    allowed: set[Any] | None = None
    excluded: set[Any] = set()
    for lit in lits:
        if isinstance(lit, In):
            if lit.negated:
                excluded |= set(lit.values)
            else:
                allowed = set(lit.values) if allowed is None else allowed & set(lit.values)
            continue
        assert isinstance(lit, Compare)
        v = lit.value
        if lit.op == "==":
            allowed = {v} if allowed is None else allowed & {v}
        elif lit.op == "!=":
            excluded.add(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            if lit.op in (">", ">=") and (v > lo or (v == lo and lit.op == ">")):
                lo, lo_open = v, lit.op == ">"
            elif lit.op in ("<", "<=") and (v < hi or (v == hi and lit.op == "<")):
                hi, hi_open = v, lit.op == "<"

    def inside(x: Any) -> bool:
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            return lo == -math.inf and hi == math.inf
        return (x > lo or (x == lo and not lo_open)) and (x < hi or (x == hi and not hi_open))

    if allowed is not None:
        return any(inside(x) and x not in excluded for x in allowed)
    # an open range holds some number besides the finitely many excluded ones, unless it is one point
    return lo < hi or (lo == hi and not lo_open and not hi_open and lo not in excluded)


def satisfiable(conds: Sequence[Residual]) -> bool:
    """Tell whether the conditions can all hold on one context (True when the check cannot tell)."""
    parts: list[Condition] = []
    for c in conds:
        if c is False:
            return False
        if c is not True:
            parts.append(negation_normal_form(c))
    if not parts:
        return True
    terms = _dnf(AllOf(tuple(parts)) if len(parts) > 1 else parts[0])
    return True if terms is None else any(_term_ok(t) for t in terms)
