"""Compile a validated ``RuleSet`` into a durable-rules ruleset definition (the portfolio layer).

One rules version becomes one durable-rules ruleset named ``riskrail_<version>`` (``-`` → ``_``), so two
versions can live side by side on one ``Host``. Messages carry their kind in ``t``; every one uses the
single session id ``SID`` (one session per ruleset: durable-rules holds at most 1 024 live sids).

Rules of the definition (the rule keys are the constants below):

    daily_loss          event daily_pnl with pnl_pct <= -max, and no breach fact for that day
                        → asserts breach (and halt, for halt_new_positions), emits on_breach in order
    daily_pnl_recorded  event daily_pnl beyond the limit while that day's breach fact exists → consumed
    daily_pnl_within    event daily_pnl within the limit → consumed
    proposal_halted     a halt fact and a proposal event → one reject carrying every halt reason, every
                        live blocking fact and every failed pre-trade check
    proposal_blocked    a proposal event and a live desk fact that blocks proposals of its strategy or
                        symbol (one rule per combination of keys), no halt → reject naming the facts
    proposal_failed     a proposal event with n_failed > 0, no halt, no blocking fact → reject
    proposal_accepted   a proposal event with n_failed <= 0, no halt, no blocking fact → accept
    custom:<name>[#k]   the alternatives of each enabled custom rule, and ``rearm:<name>[#k]`` those
                        that re-arm it, and ``context``, the catch-all: ``engine.rules.compile_custom``

Every daily_pnl and proposal event matches exactly one rule of its group, so every event is consumed
and none waits in memory for a partner that never comes (DESIGN 9). Contexts are facts, not events,
because durable-rules lets an event fire one rule only, and several custom rules may hold for one
context; the host wrapper asserts the contexts of an event in one batch and retracts them at its end.

Conditions compile from the typed tree of ``engine.config.conditions``: ``Compare`` → equality,
``$neq``, ``$lt``, ``$lte``, ``$gt``, ``$gte``; ``In`` → ``$or`` of equalities (``not in``: ``$and`` of
``$neq``); ``AllOf``/``AnyOf`` → ``$and``/``$or``. durable-rules has no ``$not`` on expressions, so a
``Not`` is pushed down to the leaves (De Morgan, and each operator flipped: ``<`` ↔ ``>=``, ``==`` ↔
``!=``). Field names map dots to double underscores (``position.profit`` → ``position__profit``). Our
priority (higher first) maps to durable's ``pri`` (lower first, and only 0 and up: a negative ``pri``
silently runs last) as ``pri = 1000 - priority + 1``.

Guards against durable-rules' failure modes (DESIGN 9), each raising ``RulesCompileError`` naming the
rule: non-finite numbers (durable answers ``inf`` with code 202 and accepts ``nan`` silently); an
operator outside the whitelist; more than ``MAX_RULES`` rules; more than ``MAX_LEAVES_PER_RULE``
comparisons in one rule; ``$and``/``$or`` nested deeper than ``MAX_DEPTH`` (durable fails with 113 at
16 levels); more than ``MAX_BRANCHES_PER_RULE`` alternatives in one rule or ``MAX_BRANCHES`` in the
ruleset. Alternatives are counted as the terms of the condition's disjunctive normal form, which is at
least the number of sibling tests it can put under one node; durable-rules loops forever, holding the
GIL, when a node has more than 512 (measured on 2.0.28: 512 alternatives compile in 30 ms, 513 never
finish, whether they come from one rule or from several rules sharing a first test).

``check_compiles`` (``engine.rules.compile_check``, re-exported here) registers a definition on a fresh
``Host`` in a child process with a timeout, for rule sets that have not been checked by this compiler
(or as the last gate before a reload).
"""

from __future__ import annotations

import math
import re

from engine.config.conditions import AllOf, AnyOf, Compare, Condition, In, Not
from engine.config.load import RuleSet
from engine.config.models import CustomRule
from engine.rules._errors import RulesCompileError
from engine.rules.compile_check import Json, WarmChecker, check_compiles, explain_durable_error, operators
from engine.rules.compile_custom import CONTEXT, catch_all, custom_rules, proposal_rules, rule_scope

__all__ = [
    "SID",
    "Json",
    "RulesCompileError",
    "WarmChecker",
    "action_name",
    "check_compiles",
    "compile_condition",
    "compile_ruleset",
    "custom_key",
    "durable_field",
    "explain_durable_error",
    "is_position_rule",
    "ruleset_name",
]

SID = "book"

MAX_RULES = 256
MAX_LEAVES_PER_RULE = 256
MAX_DEPTH = 10
MAX_BRANCHES_PER_RULE = 256
MAX_BRANCHES = 480  # durable-rules freezes above 512 sibling tests; the system rules need a few

DAILY_LOSS = "daily_loss"
DAILY_PNL_RECORDED = "daily_pnl_recorded"
DAILY_PNL_WITHIN = "daily_pnl_within"
PROPOSAL_HALTED = "proposal_halted"
PROPOSAL_BLOCKED = "proposal_blocked"
PROPOSAL_FAILED = "proposal_failed"
PROPOSAL_ACCEPTED = "proposal_accepted"
CUSTOM_PREFIX = "custom:"
PORTFOLIO_LATCH_KEY = "portfolio"

_COMPARE = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}  # "==" is plain equality
_NEGATE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_ALLOWED_OPERATORS = frozenset({"$and", "$or", "$lt", "$lte", "$gt", "$gte", "$neq"})
_NAME = re.compile(r"^[A-Za-z0-9_]+$")

def ruleset_name(version: str) -> str:
    """Return the durable-rules ruleset name of a rules version (``rv-ab12`` → ``riskrail_rv_ab12``)."""
    name = "riskrail_" + version.replace("-", "_")
    if not version or not _NAME.match(name):
        raise RulesCompileError(f"expected a rules version of letters, digits, '-' and '_', found {version!r}")
    return name


def action_name(ruleset: str, rule_key: str) -> str:
    """Return the name a rule's ``run`` holds: unique on the host across rules versions."""
    return f"{ruleset}/{rule_key}"


def durable_field(name: str) -> str:
    """Map a condition field (``position.profit``) to its durable-safe name (``position__profit``)."""
    return name.replace(".", "__")


def custom_key(rule_name: str) -> str:
    """Return the rule key (and our ``Fired.rule``) of a custom rule."""
    return CUSTOM_PREFIX + rule_name


def is_position_rule(rule: CustomRule) -> bool:
    """Tell whether a custom rule reads a ``position.*`` field (then it matches position contexts)."""
    return rule_scope(rule) == "position"


# --- conditions --------------------------------------------------------------------------------------


def compile_condition(cond: Condition, rule: str = "<condition>") -> Json:
    """Return the durable-rules expression of a condition tree, negations pushed down to the leaves."""
    return _expr(cond, False, rule)


def _expr(cond: Condition, negate: bool, rule: str) -> Json:
    if isinstance(cond, Compare):
        op = cond.op
        if op not in _NEGATE:
            raise RulesCompileError(f"rule {rule!r}: unknown operator {op!r} in {cond.text()!r}; expected one of {', '.join(_NEGATE)}")
        return _leaf(cond.field, _NEGATE[op] if negate else op, cond.value, rule)
    if isinstance(cond, In):
        if not cond.values:
            raise RulesCompileError(f"rule {rule!r}: expected at least one value in {cond.text()!r}")
        equal = cond.negated == negate  # "in" unless exactly one of (not in, not ...) applies
        leaves = [_leaf(cond.field, "==" if equal else "!=", v, rule) for v in cond.values]
        return leaves[0] if len(leaves) == 1 else {"$or" if equal else "$and": leaves}
    if isinstance(cond, Not):
        return _expr(cond.item, not negate, rule)
    if isinstance(cond, (AllOf, AnyOf)):
        conjunction = isinstance(cond, AllOf) != negate
        items = [_expr(i, negate, rule) for i in cond.items]
        if len(items) == 1:
            return items[0]
        key = "$and" if conjunction else "$or"
        flat: list[Json] = []
        for item in items:
            flat.extend(item[key] if set(item) == {key} else [item])
        return {key: flat}
    raise RulesCompileError(f"rule {rule!r}: unknown condition node {type(cond).__name__}")


def _leaf(field: str, op: str, value: object, rule: str) -> Json:
    if isinstance(value, float) and not math.isfinite(value):
        raise RulesCompileError(f"rule {rule!r}: expected a finite number for {field}, found {value!r}")
    if not isinstance(value, (bool, int, float, str)):
        raise RulesCompileError(f"rule {rule!r}: expected a number, string or boolean for {field}, found {value!r}")
    name = durable_field(field)
    if op == "==":
        return {name: value}
    return {_COMPARE[op]: {name: value}}


def _is_group(expr: Json) -> bool:
    return len(expr) == 1 and next(iter(expr)) in ("$and", "$or")


def leaves(expr: Json) -> int:
    """Return the number of comparisons of an expression."""
    return sum(leaves(e) for e in next(iter(expr.values()))) if _is_group(expr) else 1


def depth(expr: Json) -> int:
    """Return how deeply ``$and``/``$or`` nest in an expression (a single comparison is 0)."""
    return 1 + max(depth(e) for e in next(iter(expr.values()))) if _is_group(expr) else 0


def branches(expr: Json, cap: int = 10**9) -> int:
    """Return the number of terms of the expression's disjunctive normal form (capped at ``cap``)."""
    if not _is_group(expr):
        return 1
    key, items = next(iter(expr.items()))
    if key == "$or":
        return min(cap, sum(branches(e, cap) for e in items))
    product = 1
    for e in items:
        product = min(cap, product * branches(e, cap))
    return product


# --- the ruleset -------------------------------------------------------------------------------------


def _pri(priority: int) -> int:
    return 1000 - priority + 1


def compile_ruleset(rules: RuleSet) -> Json:
    """Return the durable-rules JSON ruleset definition of one rules version (see the module docstring)."""
    name = ruleset_name(rules.version)
    limit = rules.limits.daily_loss.max
    if not (isinstance(limit, (int, float)) and math.isfinite(limit) and limit > 0):
        raise RulesCompileError(f"rule 'daily_loss': expected a finite positive limit, found {limit!r}")

    def run(key: str) -> str:
        return action_name(name, key)

    beyond = {"$and": [{"t": "daily_pnl"}, {"$lte": {"pnl_pct": -limit}}]}
    within = {"$and": [{"t": "daily_pnl"}, {"$gt": {"pnl_pct": -limit}}]}
    same_day_breach = {"$and": [{"t": "breach"}, {"day": {"m": "day"}}]}
    rs: dict[str, Json] = {
        DAILY_LOSS: {"all": [{"m": beyond}, {"b$not": same_day_breach}], "pri": 0, "run": run(DAILY_LOSS)},
        DAILY_PNL_RECORDED: {"all": [{"m": beyond}, {"b": same_day_breach}], "pri": 0, "run": run(DAILY_PNL_RECORDED)},
        DAILY_PNL_WITHIN: {"all": [{"m": within}], "pri": 0, "run": run(DAILY_PNL_WITHIN)},
        **proposal_rules(run),
    }
    total = len(rs) + 2  # each of the system rules is one alternative; daily_pnl has two sides

    enabled = [r for r in rules.custom.rules if r.enabled]
    if len(enabled) + len(rs) > MAX_RULES:
        raise RulesCompileError(f"expected at most {MAX_RULES - len(rs)} enabled custom rules, found {len(enabled)}")
    for rule in enabled:
        cond = compile_condition(rule.when, rule.name)
        n_leaves, n_depth, n_branches = leaves(cond), depth(cond), branches(cond, cap=MAX_BRANCHES + 1)
        if n_depth > MAX_DEPTH:
            raise RulesCompileError(f"rule {rule.name!r}: expected all/any/not nested at most {MAX_DEPTH} deep once negations "
                                    f"are pushed down, found {n_depth}")
        if n_branches > MAX_BRANCHES_PER_RULE:
            found = n_branches if n_branches <= MAX_BRANCHES else f"more than {MAX_BRANCHES}"
            raise RulesCompileError(
                f"rule {rule.name!r}: the condition expands to {found} "
                f"alternatives, expected at most {MAX_BRANCHES_PER_RULE} (durable-rules freezes above 512 under one node); "
                "split the rule or use fewer values in 'in' lists"
            )
        if n_leaves > MAX_LEAVES_PER_RULE:
            raise RulesCompileError(f"rule {rule.name!r}: expected at most {MAX_LEAVES_PER_RULE} comparisons, found {n_leaves}")
        defs = custom_rules(rule, _pri(rule.priority), lambda c, n=rule.name: compile_condition(c, n), run)
        total += sum(branches(d.definition["all"][0]["m"], cap=MAX_BRANCHES + 1) for d in defs)
        if total > MAX_BRANCHES:
            raise RulesCompileError(
                f"rule {rule.name!r}: the custom rules expand to more than {MAX_BRANCHES} alternatives together "
                "(durable-rules freezes above 512 under one node); expected fewer rules or simpler conditions"
            )
        for alt in defs:
            if alt.key in rs:
                raise RulesCompileError(f"rule {rule.name!r}: defined twice; expected unique custom rule names")
            rs[alt.key] = alt.definition
    if enabled:
        rs[CONTEXT] = catch_all(run(CONTEXT))

    unknown = sorted(set(operators(rs)) - _ALLOWED_OPERATORS)
    if unknown:  # our grammar cannot produce these; a hand-built tree could
        raise RulesCompileError(f"expected only the operators {', '.join(sorted(_ALLOWED_OPERATORS))}, found {', '.join(unknown)}")
    return {name: rs}
