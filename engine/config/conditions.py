"""The condition grammar of custom rules (``when:`` in rules/custom.yaml), parsed without ``eval``.

A condition is an expression string, or a mapping ``all: [...]`` / ``any: [...]`` / ``not: ...`` whose
items are conditions again::

    expr    := or_expr
    or_expr := and_expr ("or" and_expr)*
    and_expr:= not_expr ("and" not_expr)*
    not_expr:= "not" not_expr | atom
    atom    := "(" expr ")" | comparison | FIELD            (a bare boolean field means FIELD == true)
    comparison := FIELD OP literal | literal OP FIELD | FIELD ["not"] "in" "[" literal ("," literal)* "]"
    OP      := "==" | "!=" | "<" | "<=" | ">" | ">="
    literal := NUMBER | STRING ('...' or "...") | true | false
    FIELD   := one of FIELDS (engine.config.fields), e.g. position.profit, clock.weekday, or
               fact.<name>.active (a boolean: the lint checks that the fact is declared)

A comparison always sets one field against a literal: that is what a durable-rules pattern can test,
and it keeps every rule a plain function of the event. Types are checked while parsing: a number field
is compared with numbers, a string field with strings (and, for fields with a fixed set of values,
with one of them), a boolean field only with ``==``/``!=`` and ``true``/``false``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

# The field catalogue, re-exported: conditions and their fields are read from here.
from engine.config.fields import FIELDS as FIELDS
from engine.config.fields import NAMESPACES as NAMESPACES
from engine.config.fields import WEEKDAYS as WEEKDAYS
from engine.config.fields import FieldSpec as FieldSpec
from engine.config.fields import FieldType as FieldType
from engine.config.fields import field_spec

_FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

Scalar = bool | int | float | str


# --- the tree --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    """``field op value``: the field always on the left."""

    field: str
    op: str
    value: Scalar

    def text(self) -> str:
        """Return the comparison as the expression grammar writes it."""
        return f"{self.field} {self.op} {_literal_text(self.value)}"


@dataclass(frozen=True)
class In:
    """``field in [values]`` (``negated``: ``not in``)."""

    field: str
    values: tuple[Scalar, ...]
    negated: bool = False

    def text(self) -> str:
        """Return the membership test as the expression grammar writes it."""
        items = ", ".join(_literal_text(v) for v in self.values)
        return f"{self.field} {'not in' if self.negated else 'in'} [{items}]"


@dataclass(frozen=True)
class AllOf:
    """Every item holds."""

    items: tuple[Condition, ...]

    def text(self) -> str:
        """Return the items joined by ``and``, in parentheses."""
        return "(" + " and ".join(i.text() for i in self.items) + ")"


@dataclass(frozen=True)
class AnyOf:
    """At least one item holds."""

    items: tuple[Condition, ...]

    def text(self) -> str:
        """Return the items joined by ``or``, in parentheses."""
        return "(" + " or ".join(i.text() for i in self.items) + ")"


@dataclass(frozen=True)
class Not:
    """The item does not hold."""

    item: Condition

    def text(self) -> str:
        """Return the negated item as the expression grammar writes it."""
        return f"not {self.item.text()}"


Condition = Compare | In | AllOf | AnyOf | Not


def _literal_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def fields_of(cond: Condition) -> set[str]:
    """Return every field a condition reads."""
    if isinstance(cond, (Compare, In)):
        return {cond.field}
    if isinstance(cond, Not):
        return fields_of(cond.item)
    return set().union(*(fields_of(i) for i in cond.items))


def literals_of(cond: Condition, field: str) -> list[Scalar]:
    """Return every literal a condition compares ``field`` with."""
    if isinstance(cond, Compare):
        return [cond.value] if cond.field == field else []
    if isinstance(cond, In):
        return list(cond.values) if cond.field == field else []
    if isinstance(cond, Not):
        return literals_of(cond.item, field)
    return [v for i in cond.items for v in literals_of(i, field)]


def simplify(cond: Condition) -> Condition:
    """Flatten nested ``all``/``any`` and single-item groups, so equal meaning gives an equal tree."""
    if isinstance(cond, (AllOf, AnyOf)):
        kind = type(cond)
        flat: list[Condition] = []
        for item in (simplify(i) for i in cond.items):
            flat.extend(item.items if isinstance(item, kind) else [item])
        return flat[0] if len(flat) == 1 else kind(tuple(flat))
    if isinstance(cond, Not):
        inner = simplify(cond.item)
        return inner.item if isinstance(inner, Not) else Not(inner)
    return cond


# --- errors ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionError:
    """A problem in a condition: ``offset`` is the 0-based character offset in the expression string."""

    message: str
    offset: int = 0


def suggest(name: str, candidates: Iterable[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest candidates, or ``""``."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    if not close:
        return ""
    return "; did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


# --- tokenizer and parser --------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.]))
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<op>==|!=|<=|>=|<|>|=)
  | (?P<punct>[()\[\],])
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false"}


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    offset: int


class _Fail(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.error = ConditionError(message, offset)


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _Fail(f"expected a field, a literal or an operator, found {text[pos]!r}", pos)
        kind = m.lastgroup or ""
        if kind != "ws":
            word = m.group()
            if kind == "name" and word.lower() in _KEYWORDS:
                kind, word = word.lower(), word.lower()
            toks.append(_Tok(kind, word, pos))
        pos = m.end()
    toks.append(_Tok("end", "", len(text)))
    return toks


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.errors: list[ConditionError] = []  # type errors: parsing goes on after them

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def take(self, kind: str | None = None, text: str | None = None) -> _Tok | None:
        t = self.tok
        if (kind is None or t.kind == kind) and (text is None or t.text == text):
            self.i += 1
            return t
        return None

    def expect(self, what: str, kind: str, text: str | None = None) -> _Tok:
        t = self.take(kind, text)
        if t is None:
            raise _Fail(f"expected {what}, found {self._found()}", self.tok.offset)
        return t

    def _found(self) -> str:
        t = self.tok
        return "the end of the condition" if t.kind == "end" else f"{t.text!r}"

    def parse(self) -> Condition:
        if self.tok.kind == "end":
            raise _Fail("expected a condition, found an empty string", 0)
        cond = self.or_expr()
        if self.tok.kind != "end":
            raise _Fail(f"expected 'and', 'or' or the end of the condition, found {self._found()}", self.tok.offset)
        return cond

    def or_expr(self) -> Condition:
        items = [self.and_expr()]
        while self.take("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else AnyOf(tuple(items))

    def and_expr(self) -> Condition:
        items = [self.not_expr()]
        while self.take("and"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else AllOf(tuple(items))

    def not_expr(self) -> Condition:
        if self.take("not"):
            return Not(self.not_expr())
        return self.atom()

    def atom(self) -> Condition:
        if self.take("punct", "("):
            cond = self.or_expr()
            self.expect("')'", "punct", ")")
            return cond
        start = self.tok
        if start.kind == "name":
            self.i += 1
            spec = self.field(start)
            if self.tok.kind == "op":
                op = self.operator()
                value_tok = self.tok
                value = self.literal()
                return self.compare(start, spec, op, value, value_tok)
            if self.tok.kind in ("in", "not"):
                return self.membership(start, spec)
            if spec is not None and spec.type != "bool":
                self.errors.append(ConditionError(
                    f"expected a comparison after {start.text} (a {spec.type} field), found {self._found()}",
                    self.tok.offset))
            return Compare(start.text, "==", True)
        if start.kind in ("number", "string", "true", "false"):
            value = self.literal()
            if self.tok.kind != "op":
                raise _Fail(f"expected a comparison operator after {start.text}, found {self._found()}", self.tok.offset)
            op = self.operator()
            field_tok = self.tok
            if field_tok.kind != "name":
                raise _Fail(f"expected a field to compare {start.text} with, found {self._found()}", field_tok.offset)
            self.i += 1
            spec = self.field(field_tok)
            return self.compare(field_tok, spec, _FLIP[op], value, start)
        raise _Fail(f"expected a field, a literal, 'not' or '(', found {self._found()}", start.offset)

    def operator(self) -> str:
        t = self.expect("a comparison operator", "op")
        if t.text == "=":
            raise _Fail("expected '==' to compare, found '='", t.offset)
        return t.text

    def literal(self) -> Scalar:
        t = self.tok
        if t.kind == "number":
            self.i += 1
            value: float | int = float(t.text) if any(c in t.text for c in ".eE") else int(t.text)
            if not math.isfinite(value):
                raise _Fail(f"expected a finite number, found {t.text}", t.offset)
            return value
        if t.kind == "string":
            self.i += 1
            return re.sub(r"\\(.)", r"\1", t.text[1:-1])
        if t.kind in ("true", "false"):
            self.i += 1
            return t.kind == "true"
        if t.kind == "name":
            raise _Fail(f"expected a literal (number, quoted string, true or false), found field {t.text!r}; "
                        "a condition compares a field with a literal", t.offset)
        raise _Fail(f"expected a literal (number, quoted string, true or false), found {self._found()}", t.offset)

    def field(self, tok: _Tok) -> FieldSpec | None:
        name = tok.text
        spec = field_spec(name)
        if spec is None and name.startswith("fact."):
            self.errors.append(ConditionError(f"expected fact.<name>.active for a fact, found {name!r}", tok.offset))
        elif spec is None:
            ns = name.split(".", 1)[0]
            if "." not in name or ns not in NAMESPACES:
                msg = (f"unknown name {name!r}: expected a field of {', '.join(NAMESPACES)} "
                       f"(e.g. position.profit) or a quoted string{suggest(name, FIELDS)}")
            else:
                siblings = ", ".join(f for f in FIELDS if f.startswith(ns + "."))
                msg = f"unknown field {name!r}{suggest(name, FIELDS) or f'; fields of {ns}: {siblings}'}"
            self.errors.append(ConditionError(msg, tok.offset))
        return spec

    def compare(self, ftok: _Tok, spec: FieldSpec | None, op: str, value: Scalar, vtok: _Tok) -> Condition:
        if spec is not None:
            problem = _type_problem(ftok.text, spec, op, value)
            if problem:
                self.errors.append(ConditionError(problem, vtok.offset))
        return Compare(ftok.text, op, value)

    def membership(self, ftok: _Tok, spec: FieldSpec | None) -> Condition:
        negated = bool(self.take("not"))
        self.expect("'in'", "in")
        self.expect("'[' to start a list", "punct", "[")
        values: list[Scalar] = []
        while True:
            vtok = self.tok
            value = self.literal()
            if spec is not None:
                problem = _type_problem(ftok.text, spec, "==", value)
                if problem:
                    self.errors.append(ConditionError(problem, vtok.offset))
            values.append(value)
            if self.take("punct", "]"):
                break
            self.expect("',' or ']'", "punct", ",")
        return In(ftok.text, tuple(values), negated)


def _type_problem(name: str, spec: FieldSpec, op: str, value: Scalar) -> str | None:
    shown = _literal_text(value)
    if spec.type in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"type mismatch: {name} is a number, compared with {shown}"
        if spec.type == "integer" and isinstance(value, float) and not value.is_integer() and op in ("==", "!="):
            return f"type mismatch: {name} is a whole number, compared for equality with {shown}"
        return None
    if spec.type == "bool":
        if not isinstance(value, bool):
            return f"type mismatch: {name} is true or false, compared with {shown}"
        if op not in ("==", "!="):
            return f"expected '==' or '!=' for {name} (true or false), found {op!r}"
        return None
    if not isinstance(value, str):
        return f"type mismatch: {name} is a string, compared with {shown}"
    if op not in ("==", "!="):
        return f"expected '==', '!=' or 'in' for {name} (a string), found {op!r}"
    if spec.choices and value not in spec.choices:
        return f"expected one of {', '.join(repr(c) for c in spec.choices)} for {name}, found {shown}{suggest(value, spec.choices)}"
    return None


def parse_expression(text: str) -> tuple[Condition | None, list[ConditionError]]:
    """Parse one expression string; return its tree (None on a syntax error) and every problem."""
    try:
        parser = _Parser(text)
        tree = parser.parse()
    except _Fail as fail:
        return None, [fail.error]
    return (simplify(tree) if not parser.errors else None), parser.errors


# A located problem of a structured condition: the path below ``when``, the offset in that string.
Located = tuple[tuple[str | int, ...], ConditionError]


def parse_condition(value: object) -> tuple[Condition | None, list[Located]]:
    """Parse a ``when`` value (a string, or ``all``/``any``/``not`` mappings of conditions)."""
    errors: list[Located] = []

    def walk(v: object, path: tuple[str | int, ...]) -> Condition | None:
        if isinstance(v, str):
            tree, errs = parse_expression(v)
            errors.extend((path, e) for e in errs)
            return tree
        if isinstance(v, bool) or v is None or isinstance(v, (int, float)):
            found = _literal_text(v) if v is not None else "nothing"
            errors.append((path, ConditionError(f"expected a condition (a string, or all/any/not), found {found}")))
            return None
        if isinstance(v, list):
            errors.append((path, ConditionError("expected a condition, found a list; wrap it in 'all:' or 'any:'")))
            return None
        if isinstance(v, dict):
            if len(v) != 1 or next(iter(v)) not in ("all", "any", "not"):
                keys = ", ".join(repr(k) for k in v) or "nothing"
                hint = "".join(suggest(str(k), ("all", "any", "not")) for k in v if k not in ("all", "any", "not"))
                errors.append((path, ConditionError(f"expected exactly one of 'all', 'any' or 'not', found {keys}{hint}")))
                return None
            kind, inner = next(iter(v.items()))
            if kind == "not":
                item = walk(inner, (*path, "not"))
                return Not(item) if item is not None else None
            if not isinstance(inner, list) or not inner:
                errors.append(((*path, kind), ConditionError(f"expected a non-empty list of conditions under '{kind}'")))
                return None
            # Every item is walked, so that one run reports the problems of all of them.
            items = [walk(x, (*path, kind, i)) for i, x in enumerate(inner)]
            parsed = tuple(i for i in items if i is not None)
            if len(parsed) != len(items):
                return None
            return AllOf(parsed) if kind == "all" else AnyOf(parsed)
        errors.append((path, ConditionError(f"expected a condition, found {type(v).__name__}")))
        return None

    tree = walk(value, ())
    if errors:
        return None, errors
    return (simplify(tree) if tree is not None else None), errors


_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


def negation_normal_form(cond: Condition, negate: bool = False) -> Condition:
    """Push every ``not`` down to the comparisons (De Morgan; ``not a < 1`` is ``a >= 1``).

    This is the form durable-rules evaluates, and it fixes what an unknown value means: a comparison
    on a missing field never holds, negated or not.
    """
    if isinstance(cond, Compare):
        return Compare(cond.field, _NEGATED[cond.op], cond.value) if negate else cond
    if isinstance(cond, In):
        return In(cond.field, cond.values, cond.negated != negate)
    if isinstance(cond, Not):
        return negation_normal_form(cond.item, not negate)
    items = tuple(negation_normal_form(i, negate) for i in cond.items)
    if isinstance(cond, AllOf):
        return AnyOf(items) if negate else AllOf(items)
    return AllOf(items) if negate else AnyOf(items)
