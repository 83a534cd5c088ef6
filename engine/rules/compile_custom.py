"""Compile the custom rules of rules/custom.yaml, and the facts they read, into durable-rules rules.

A custom rule is evaluated at its scope (``engine.config.scopes``): its contexts are facts of kind
``t`` = the scope (``position``, ``strategy``, ``symbol``, ``portfolio``), each carrying ``key`` (the
subject: position id, strategy, symbol, ``portfolio``), ``s`` and ``y`` (the subject's strategy and
symbol, or ``""``), ``ts`` (the event's time), ``c`` = 1 and the fields of the scope (dots mapped to
``__``). An event asserts all its contexts in one batch and retracts them at its end, so every rule
fires in priority order over the whole event, and a fact a rule asserts is matched against every
context of the event (``engine.rules.chaining``).

Per rule, one durable rule per *alternative*: a state of the fact atoms the condition reads under
which it can hold, with the residual condition on the context's fields (``scopes.alternatives``).
The atoms become patterns joined to the context:

    portfolio.halted      a halt fact (``h$not`` when false)
    fact.<name>.active    a desk fact {t: fact, name, strategy, symbol, until} live at the context's
                          time (``until > ts``) whose strategy and symbol are each ``""`` (any) or the
                          context's own. durable-rules 2.0.28 drops the constant branch of an ``$or``
                          beside a join, so each combination is a pattern of its own: true is one rule
                          per combination, false a ``$not`` per combination

Latches: a rule fires for a subject while no latch fact {t: latch, rule, key} exists, and asserts it.
Position rules fire once per position (the latch goes when the position closes). The other scopes
re-arm: a ``rearm:<name>`` rule per state of the atoms, on a context of the subject where the
negated residual holds while the latch exists, retracts it, before any rule fires (``REARM_PRI``). So
a strategy, symbol or portfolio rule fires when its condition starts to hold for its subject, and
again only after it stopped holding.

A catch-all rule (``context``, lowest priority) handles every context, so a batch is never refused as
unhandled (durable then skips the actions of the whole batch).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from engine.config.conditions import Condition
from engine.config.fields import fact_name
from engine.config.models import CustomRule
from engine.config.scopes import Residual, atoms_of, negated, scope_of, substitute
from engine.rules._errors import RulesCompileError
from engine.rules.compile_check import Json

#: epoch ms of 2100-01-01: the ``until`` of a fact asserted without a duration
FOREVER_MS = 4_102_444_800_000
CONTEXT = "context"
REARM_PREFIX = "rearm:"
LOWEST_PRI = 2002  # below every custom rule (1..2001)
REARM_PRI = 0  # a latch re-arms as soon as its condition stops holding, before any rule fires

#: which subject keys a context of each scope carries: a fact applies when each of its keys is "" or the context's
_KEYS = {"position": ("strategy", "symbol"), "strategy": ("strategy",), "symbol": ("symbol",), "portfolio": ()}
_REF = {"strategy": "s", "symbol": "y"}


def rule_scope(rule: CustomRule) -> str:
    """Return a rule's scope; raises ``RulesCompileError`` for a rule no scope can evaluate (the lint reports it first)."""
    scope = scope_of(rule.when)
    if scope is None:
        raise RulesCompileError(f"rule {rule.name!r}: reads strategy.* and symbol.* fields but no position.* field; "
                                "no subject has both")
    return scope


def latch_pattern(rule: str) -> Json:
    """The latch of ``rule`` for the context ``m``'s subject."""
    return {"$and": [{"t": "latch"}, {"rule": rule}, {"key": {"m": "key"}}]}


def fact_variants(name: str | None, scope: str, alias: str, at: str = "ts") -> list[Json]:
    """The patterns of a live fact (``name``; None: any fact that blocks proposals) applying to ``alias``'s subject."""
    keys = _KEYS[scope]
    out = []
    for picks in itertools.product((False, True), repeat=len(keys)):
        chosen = dict(zip(keys, picks, strict=True))
        tests: list[Json] = [{"t": "fact"}, {"name": name} if name is not None else {"blocks": "proposals"},
                             {"$gt": {"until": {alias: at}}}]
        for key in ("strategy", "symbol"):
            tests.append({key: {alias: _REF[key] if alias == "m" else key}} if chosen.get(key) else {key: ""})
        out.append({"$and": tests})
    return out


def _atom_patterns(atom: str, truth: bool, scope: str, j: int) -> list[list[Json]]:
    """The choices of patterns that make ``atom`` have ``truth`` for the context: one list per choice."""
    if atom == "portfolio.halted":
        return [[{f"h{j}": {"t": "halt"}}]] if truth else [[{f"h{j}$not": {"t": "halt"}}]]
    variants = fact_variants(fact_name(atom), scope, "m")
    if truth:
        return [[{f"f{j}": v}] for v in variants]
    return [[{f"f{j}n{k}$not": v} for k, v in enumerate(variants)]]


def _context(scope: str, residual: Residual, compile_condition: object) -> Json:
    tests: list[Json] = [{"t": scope}]
    if residual is not True:
        assert callable(compile_condition)
        cond = compile_condition(residual)
        tests.extend(cond["$and"] if set(cond) == {"$and"} else [cond])
    return {"$and": tests} if len(tests) > 1 else tests[0]


def _states(cond: Condition) -> Iterator[dict[str, bool]]:
    atoms = atoms_of(cond)
    for truth in itertools.product((True, False), repeat=len(atoms)):
        yield dict(zip(atoms, truth, strict=True))


@dataclass(frozen=True)
class Alternative:
    """One durable rule of a custom rule: ``fire`` (or ``rearm``) while the atoms are in ``state``."""

    key: str
    kind: str
    state: tuple[tuple[str, bool], ...]
    definition: Json


def custom_rules(rule: CustomRule, pri: int, compile_condition: object, run: object) -> list[Alternative]:
    """Return the durable rules of one custom rule (see the module docstring), actions named by ``run(key)``.

    ``compile_condition(residual)`` gives the durable expression of a residual condition. The latch
    pattern comes right after the context: durable-rules 2.0.28 re-emits a match parked at a ``$not``
    without re-checking the ``$not`` patterns before it, so the pattern that changes most within an
    event goes first (and each action confirms the facts its alternative assumed: ``desk_facts``).
    """
    assert callable(run)
    scope = rule_scope(rule)
    out: list[Alternative] = []

    def add(kind: str, prefix: str, context: Json, choices: list[list[list[Json]]], latch: Json, state: dict[str, bool]) -> None:
        for patterns in itertools.product(*choices) if choices else [()]:
            n = sum(1 for a in out if a.key.split("#")[0] == prefix)
            key = prefix if n == 0 else f"{prefix}#{n}"
            flat = [p for group in patterns for p in group]
            out.append(Alternative(key, kind, tuple(state.items()),
                                   {"all": [{"m": context}, latch, *flat], "pri": pri if kind == "fire" else REARM_PRI,
                                    "run": run(key)}))

    for state in _states(rule.when):
        choices = [_atom_patterns(a, t, scope, j) for j, (a, t) in enumerate(state.items())]
        residual = substitute(rule.when, state)
        if residual is not False:
            add("fire", "custom:" + rule.name, _context(scope, residual, compile_condition), choices,
                {"l$not": latch_pattern(rule.name)}, state)
        rearm = negated(residual)
        if scope != "position" and rearm is not False:
            add("rearm", REARM_PREFIX + rule.name, _context(scope, rearm, compile_condition), choices,
                {"l": latch_pattern(rule.name)}, state)
    return out


def catch_all(run: str) -> Json:
    """The rule that handles every context (lowest priority, does nothing)."""
    return {"all": [{"m": {"c": 1}}], "pri": LOWEST_PRI, "run": run}


def proposal_rules(run: object) -> dict[str, Json]:
    """The proposal rules: halted, blocked by a live fact, failed a check, accepted (exactly one handles a proposal)."""
    assert callable(run)
    no_halt: Json = {"h$not": {"t": "halt"}}
    blocks = fact_variants(None, "position", "p")
    no_block = [{f"b{k}$not": v} for k, v in enumerate(blocks)]
    out: dict[str, Json] = {
        "proposal_halted": {"all": [{"h": {"t": "halt"}}, {"p": {"t": "proposal"}}], "pri": 0, "run": run("proposal_halted")},
        "proposal_failed": {"all": [{"p": {"$and": [{"t": "proposal"}, {"$gt": {"n_failed": 0}}]}}, no_halt, *no_block],
                            "pri": 0, "run": run("proposal_failed")},
        "proposal_accepted": {"all": [{"p": {"$and": [{"t": "proposal"}, {"$lte": {"n_failed": 0}}]}}, no_halt, *no_block],
                              "pri": 0, "run": run("proposal_accepted")},
    }
    for k, v in enumerate(blocks):
        key = "proposal_blocked" if k == 0 else f"proposal_blocked#{k}"
        out[key] = {"all": [{"p": {"t": "proposal"}}, {"b": v}, no_halt], "pri": 0, "run": run("proposal_blocked")}
    return out
