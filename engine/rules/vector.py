"""Evaluate a condition tree over many positions at once: the vectorised pre-filter of custom rules.

``mask(cond, columns, n)`` returns a boolean array of length ``n``: ``columns`` maps a field name to
an array of ``n`` values (numbers, bools or strings) or to one scalar shared by all rows; it may be a
``LazyColumns``, which builds an array only when a condition reads it. ``cond`` is taken in negation
normal form (``negation_normal_form``), as durable-rules evaluates it: a field missing from
``columns``, or a nan, never satisfies a comparison, negated or not. Within ``all``/``any`` the parts
that read only shared scalars (clock, portfolio, tick) are evaluated first and short-circuit, so a
rule for Friday evenings costs nothing on a Tuesday.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from engine.config.conditions import AllOf, AnyOf, Compare, Condition, In, fields_of, negation_normal_form

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
_PER_ROW = ("position.", "strategy.")

Mask = NDArray[np.bool_]


class LazyColumns(Mapping[str, Any]):
    """Scalars given at once, arrays built on first read from their makers."""

    def __init__(self, scalars: Mapping[str, Any], makers: Mapping[str, Callable[[], Any]]) -> None:
        self.scalars = dict(scalars)
        self.makers = dict(makers)
        self._values = dict(scalars)

    def __getitem__(self, key: str) -> Any:
        if key not in self._values:
            self._values[key] = self.makers[key]()
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values or key in self.makers

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._values), **dict.fromkeys(self.makers)})

    def __len__(self) -> int:
        return len(set(self._values) | set(self.makers))


@functools.lru_cache(maxsize=4096)
def _shared_only(cond: Condition) -> bool:
    return not any(f.startswith(_PER_ROW) for f in fields_of(cond))


def mask(cond: Condition, columns: Mapping[str, Any], n: int, normalized: bool = False) -> Mask:
    """Return which of ``n`` rows satisfy ``cond`` (``normalized``: already in negation normal form)."""
    out = _mask(cond if normalized else negation_normal_form(cond), columns, n)
    return out if isinstance(out, np.ndarray) else np.full(n, bool(out))


def _mask(cond: Condition, columns: Mapping[str, Any], n: int) -> Mask | bool:
    if isinstance(cond, Compare):
        if cond.field not in columns:
            return False
        col = columns[cond.field]
        if isinstance(col, np.ndarray):
            if col.dtype.kind in "fc":
                with np.errstate(invalid="ignore"):
                    held: Mask = _OPS[cond.op](col, cond.value) & ~np.isnan(col)
                    return held
            return np.asarray(_OPS[cond.op](col, cond.value), dtype=bool)
        try:
            return bool(_OPS[cond.op](col, cond.value))
        except TypeError:
            return False
    if isinstance(cond, In):
        if cond.field not in columns:
            return False
        col = columns[cond.field]
        if not isinstance(col, np.ndarray):
            return (col in cond.values) != cond.negated
        hit = np.isin(col, list(cond.values))
        hit = ~hit if cond.negated else hit
        if col.dtype.kind == "f":
            hit &= ~np.isnan(col)
        return hit
    if isinstance(cond, (AllOf, AnyOf)):
        is_all = isinstance(cond, AllOf)
        acc: Mask | bool = is_all
        # shared scalars first: they decide for every row at once
        for item in sorted(cond.items, key=lambda c: not _shared_only(c)):
            part = _mask(item, columns, n)
            if not isinstance(part, np.ndarray):
                if part != is_all:  # a False under all, or a True under any, decides
                    return part
                continue
            acc = (part if acc is True else acc & part) if is_all else (part if acc is False else acc | part)
        return acc
    raise TypeError(f"not a condition in negation normal form: {cond!r}")


#: one bound of an interval: a scalar, or an array of one bound per row
Bound = float | NDArray[np.float64]


class Interval:
    """A numeric field known only to lie within ``[lo, hi]`` (scalars, or arrays of one bound per row)."""

    __slots__ = ("hi", "lo")

    def __init__(self, lo: Bound, hi: Bound) -> None:
        self.lo, self.hi = lo, hi


def could_hold(cond: Condition, columns: Mapping[str, Any], n: int) -> np.ndarray:
    """Return which of ``n`` rows might satisfy ``cond`` (in negation normal form) for some values of
    its fields within what ``columns`` knows.

    A column is an exact value (as for ``mask``), an ``Interval``, or absent: unknown, anything may
    hold. False is a proof that the condition does not hold on that row for any values in the bounds;
    True proves nothing. This lets a run of quotes skip the custom rules when none can fire on it.
    """
    out = _could(cond, columns, n)
    return out if isinstance(out, np.ndarray) else np.full(n, bool(out))


def _could(cond: Condition, columns: Mapping[str, Any], n: int) -> np.ndarray | int:
    # an answer is read by its truth: ``!=`` on scalar bounds gives ``~`` of a bool (an int), and an int
    # ``&`` an array of bools gives an array of ints
    if isinstance(cond, (AllOf, AnyOf)):
        is_all = isinstance(cond, AllOf)
        acc: np.ndarray | int = is_all
        for item in sorted(cond.items, key=lambda c: not _shared_only(c)):  # shared scalars first, as mask does
            part = _could(item, columns, n)
            acc = (acc & part) if is_all else (acc | part)
            if not isinstance(acc, np.ndarray) and acc != is_all:
                return acc
        return acc
    if not isinstance(cond, (Compare, In)):
        raise TypeError(f"not a condition in negation normal form: {cond!r}")
    if cond.field not in columns:
        return True
    col = columns[cond.field]
    if not isinstance(col, Interval):
        return _mask(cond, columns, n)
    lo, hi = col.lo, col.hi
    with np.errstate(invalid="ignore"):
        if isinstance(cond, In):
            numbers = [v for v in cond.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if cond.negated:  # fails only where the field is pinned to one of the values
                return ~np.isin(lo, numbers) | (lo != hi) if numbers else True
            inside: Mask | bool = False
            for x in numbers:
                inside = inside | ((lo <= x) & (x <= hi))
            return inside
        v = cond.value
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            return True
        op = cond.op
        # nan bounds compare False everywhere: where a bound is unknown, anything may hold
        unknown = np.isnan(lo) | np.isnan(hi)
        if op == "<":
            return (lo < v) | unknown
        if op == "<=":
            return (lo <= v) | unknown
        if op == ">":
            return (hi > v) | unknown
        if op == ">=":
            return (hi >= v) | unknown
        if op == "==":
            return ((lo <= v) & (v <= hi)) | unknown
        return ~((lo == v) & (hi == v))  # !=
