"""Checks of rules/custom.yaml that need the whole file: scopes, facts, cycles and halts nothing lifts.

- A rule no scope can evaluate (``strategy.*`` with ``symbol.*`` and no ``position.*``): an error at
  its ``when``. So is a condition reading more than ``MAX_ATOMS`` facts.
- A fact read (``fact.<name>.active``), asserted or retracted that ``facts:`` does not declare: an
  error, with the closest declared name. A template (``"{strategy.name}"``) naming a field its rule's
  contexts lack: an error.
- A cycle that cannot terminate: rules that read a fact and, between them, assert and retract it
  (a halt counts: ``halt_new_positions`` asserts one, ``resume`` retracts those of custom rules), whose
  conditions can hold together with the facts set aside (``scopes.satisfiable``). Each can re-arm the
  other on one event for ever; the engine would stop them at its chaining cap, the lint refuses them.
  Position rules fire once per position and take no part.
- ``halts_nothing_lifts``: a rule halting new positions while no rule resumes them (warning).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.config import conditions
from engine.config.conditions import AnyOf
from engine.config.fields import FIELDS, fact_name
from engine.config.models.custom import AssertParams, CustomRule, CustomRules, RetractParams
from engine.config.scopes import MAX_ATOMS, Residual, alternatives, atoms_of, satisfiable, scope_of

#: the fields each scope's contexts hold besides the portfolio, tick and clock fields
_SCOPE_FIELDS = {"position": ("position.", "strategy.", "symbol."), "strategy": ("strategy.",), "symbol": ("symbol.",),
                 "portfolio": ()}
_TEMPLATE = re.compile(r"\{([^{}]*)\}")

_NO_SCOPE = ("reads strategy.* and symbol.* fields but no position.* field: no subject has both (a strategy trades "
             "many symbols); read a position.* field to evaluate it per position")

#: one problem: the path below the file's root, and the message
Found = tuple[tuple[str | int, ...], str]


def check_rules(custom: CustomRules, rules: Iterable[tuple[int, CustomRule]], *, facts_known: bool = True) -> list[Found]:
    """Return the scope, fact and cycle problems of the (index, rule) pairs of ``custom`` (without the fact and
    template checks when ``facts_known`` is false: the file's facts section may not have validated)."""
    out: list[Found] = []
    declared = set(custom.facts) if facts_known else set()
    listed = list(rules)
    for i, rule in listed:
        scope = scope_of(rule.when)
        if scope is None:
            out.append((("rules", i, "when"), _NO_SCOPE))
        if len(atoms_of(rule.when)) > MAX_ATOMS:
            found = len(atoms_of(rule.when))
            out.append((("rules", i, "when"), f"expected at most {MAX_ATOMS} facts in one condition, found {found}"))
        for atom in atoms_of(rule.when) if facts_known else ():
            name = fact_name(atom)
            if name is not None and name not in declared:
                out.append((("rules", i, "when"), f"unknown fact {name!r}{_hint(name, declared)}"))
        for j, action in enumerate(rule.then if facts_known else ()):
            p = action.params
            if isinstance(p, (AssertParams, RetractParams)):
                if p.fact not in declared:
                    out.append((("rules", i, "then", j, action.kind, "fact"), f"unknown fact {p.fact!r}{_hint(p.fact, declared)}"))
                for key in ("strategy", "symbol"):
                    out.extend((("rules", i, "then", j, action.kind, key), m) for m in _template(getattr(p, key), scope))
    out.extend(_cycles(listed))
    return out


def _hint(name: str, declared: set[str]) -> str:
    return conditions.suggest(name, declared) or (f"; declared: {', '.join(sorted(declared))}" if declared
                                                  else "; declare it under 'facts:'")


def _template(text: str | None, scope: str | None) -> list[str]:
    out = []
    for field in _TEMPLATE.findall(text or ""):
        spec = FIELDS.get(field)
        if spec is None:
            out.append(f"unknown field {field!r} in {text!r}{conditions.suggest(field, FIELDS)}")
        elif scope is not None and field.split(".")[0] in ("position", "strategy", "symbol") \
                and not field.startswith(_SCOPE_FIELDS[scope]):
            out.append(f"{field} is not in the contexts of this rule (evaluated per {scope}), found in {text!r}")
    return out


def _writes(rule: CustomRule) -> tuple[set[str], set[str]]:
    """The facts a rule asserts and retracts (``portfolio.halted`` for halts, ``fact.<name>.active``)."""
    asserted: set[str] = set()
    retracted: set[str] = set()
    for action in rule.then:
        p = action.params
        if action.kind == "halt_new_positions":
            asserted.add("portfolio.halted")
        elif action.kind == "resume":
            retracted.add("portfolio.halted")
        elif isinstance(p, AssertParams):
            asserted.add(f"fact.{p.fact}.active")
        elif isinstance(p, RetractParams):
            retracted.add(f"fact.{p.fact}.active")
    return asserted, retracted


def _free(rule: CustomRule) -> Residual:
    """The rule's condition with its facts set aside: it holds for some state of them."""
    parts = [r for _, r in alternatives(rule.when)]
    if not parts:
        return False
    if any(p is True for p in parts):
        return True
    kept = tuple(p for p in parts if not isinstance(p, bool))
    return kept[0] if len(kept) == 1 else AnyOf(kept)


def _cycles(rules: list[tuple[int, CustomRule]]) -> list[Found]:
    active = [(i, r) for i, r in rules if r.enabled and scope_of(r.when) not in (None, "position")]
    reads = {i: set(atoms_of(r.when)) for i, r in active}
    writes = {i: _writes(r) for i, r in active}
    out: list[Found] = []
    for a, ra in active:
        for b, rb in active:
            if b <= a:
                continue
            for fact in sorted(reads[a] & reads[b]):
                toggles = (fact in writes[a][0] and fact in writes[b][1]) or (fact in writes[a][1] and fact in writes[b][0])
                if toggles and satisfiable([_free(ra), _free(rb)]):
                    message = (f"rules {ra.name!r} and {rb.name!r} can re-arm each other for ever on one event: one asserts "
                               f"and the other retracts {fact}, which both read, and apart from that fact their conditions can "
                               "hold at once, so each undoes what the other did; make them exclusive on another field")
                    out.append((("rules", b, "when"), message))
    return out


def halts_nothing_lifts(custom: CustomRules) -> list[Found]:
    """Return the rules that halt new positions while no enabled rule resumes them (a warning)."""
    enabled = [(i, r) for i, r in enumerate(custom.rules) if r.enabled]
    if any(a.kind == "resume" for _, r in enabled for a in r.then):
        return []
    return [(("rules", i, "then", j, "halt_new_positions"),
             f"rule {r.name!r} halts new positions and no rule resumes them: only a person can lift this halt")
            for i, r in enabled for j, a in enumerate(r.then) if a.kind == "halt_new_positions"]
