"""Compile a validated ``RuleSet`` into a durable-rules ruleset definition (the portfolio layer).

One rules version becomes one durable-rules ruleset named ``riskrail_<version>`` (``-`` → ``_``), so two
versions can live side by side on one ``Host``. Messages carry their kind in ``t``; every one uses the
single session id ``SID`` (one session per ruleset: durable-rules holds at most 1 024 live sids).

Rules of the definition (the rule keys are the constants below):

    daily_loss          event daily_pnl with pnl_pct <= -max, and no breach fact for that day
                        → asserts breach (and halt, for halt_new_positions), emits on_breach in order
    daily_pnl_recorded  event daily_pnl beyond the limit while that day's breach fact exists → consumed
    daily_pnl_within    event daily_pnl within the limit → consumed
    proposal_halted     a halt fact and a proposal event → one reject carrying every halt reason and
                        every failed pre-trade check
    proposal_failed     a proposal event with n_failed > 0 while no halt fact exists → reject
    proposal_accepted   a proposal event with n_failed <= 0 while no halt fact exists → accept
    custom:<name>       one per enabled custom rule: a position (or portfolio) context fact whose fields
                        satisfy ``when``, while no latch fact exists for (rule, position id) (or (rule,
                        "portfolio")) → asserts the latch, emits ``then`` in order

Every daily_pnl and proposal event matches exactly one rule of its group, so every event is consumed
and none waits in memory for a partner that never comes (DESIGN 9). Contexts are facts, not events,
because durable-rules lets an event fire one rule only, and several custom rules may hold for one
context; the host wrapper retracts each context fact right after posting it.

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

``check_compiles`` registers a definition on a fresh ``Host`` in a child process with a timeout, for
rule sets that have not been checked by this compiler (or as the last gate before a reload).
"""

from __future__ import annotations

import json
import math
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator

from engine.config.conditions import AllOf, AnyOf, Compare, Condition, In, Not, fields_of
from engine.config.load import RuleSet
from engine.config.models import CustomRule
from engine.rules import _durable_json
from engine.rules._errors import RulesCompileError

__all__ = [
    "RulesCompileError",
    "SID",
    "compile_ruleset",
    "compile_condition",
    "check_compiles",
    "ruleset_name",
    "action_name",
    "durable_field",
    "is_position_rule",
    "custom_key",
    "explain_durable_error",
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
PROPOSAL_FAILED = "proposal_failed"
PROPOSAL_ACCEPTED = "proposal_accepted"
SYSTEM_RULES = (DAILY_LOSS, DAILY_PNL_RECORDED, DAILY_PNL_WITHIN, PROPOSAL_HALTED, PROPOSAL_FAILED, PROPOSAL_ACCEPTED)
CUSTOM_PREFIX = "custom:"
PORTFOLIO_LATCH_KEY = "portfolio"

_COMPARE = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte", "!=": "$neq"}  # "==" is plain equality
_NEGATE = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_ALLOWED_OPERATORS = frozenset({"$and", "$or", "$lt", "$lte", "$gt", "$gte", "$neq"})
# Every $-key of durable-rules' JSON grammar; 2.0.28 accepts an unknown one silently when its operand
# is a string, and the rule then matches unrelated messages.
DURABLE_OPERATORS = _ALLOWED_OPERATORS | {
    "$ex", "$nex", "$mt", "$imt", "$iall", "$iany", "$i", "$m", "$s", "$l", "$r", "$add", "$sub", "$mul", "$div",
}
_NAME = re.compile(r"^[A-Za-z0-9_]+$")

# durable-rules 2.x error codes (rules.h) that a ruleset definition can produce, in plain words.
DURABLE_ERRORS = {
    101: "out of memory",
    102: "a value of an unexpected type",
    103: "an identifier that is too long",
    104: "an unexpected value",
    105: "an unknown key in a rule (durable-rules knows all, any, pri, count, cap, dist and run)",
    106: "too many rules in one ruleset",
    107: "too many $ex/$nex tests in one rule",
    108: "too many patterns (joins) in one rule",
    109: "a rule without 'all' or 'any'",
    112: "too many live handles",
    113: "too many expressions, or $and/$or nested too deeply",
    201: "a value the JSON parser did not recognise",
    202: "unrecognised JSON: an unknown operator, a non-finite number such as inf, or an object where a value belongs",
    203: "a number the JSON parser did not recognise",
    204: "an object the JSON parser did not recognise",
    205: "an array the JSON parser did not recognise",
    302: "a message with too many properties",
    303: "the evaluation stack is too deep",
    309: "an unknown session id",
}


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
    return any(f.startswith("position.") for f in fields_of(rule.when))


# --- conditions --------------------------------------------------------------------------------------


def compile_condition(cond: Condition, rule: str = "<condition>") -> dict:
    """Return the durable-rules expression of a condition tree, negations pushed down to the leaves."""
    return _expr(cond, False, rule)


def _expr(cond: Condition, negate: bool, rule: str) -> dict:
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
        flat: list[dict] = []
        for item in items:
            flat.extend(item[key] if set(item) == {key} else [item])
        return {key: flat}
    raise RulesCompileError(f"rule {rule!r}: unknown condition node {type(cond).__name__}")


def _leaf(field: str, op: str, value: object, rule: str) -> dict:
    if isinstance(value, float) and not math.isfinite(value):
        raise RulesCompileError(f"rule {rule!r}: expected a finite number for {field}, found {value!r}")
    if not isinstance(value, (bool, int, float, str)):
        raise RulesCompileError(f"rule {rule!r}: expected a number, string or boolean for {field}, found {value!r}")
    name = durable_field(field)
    if op == "==":
        return {name: value}
    return {_COMPARE[op]: {name: value}}


def _is_group(expr: dict) -> bool:
    return len(expr) == 1 and next(iter(expr)) in ("$and", "$or")


def leaves(expr: dict) -> int:
    """Return the number of comparisons of an expression."""
    return sum(leaves(e) for e in next(iter(expr.values()))) if _is_group(expr) else 1


def depth(expr: dict) -> int:
    """Return how deeply ``$and``/``$or`` nest in an expression (a single comparison is 0)."""
    return 1 + max(depth(e) for e in next(iter(expr.values()))) if _is_group(expr) else 0


def branches(expr: dict, cap: int = 10**9) -> int:
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


def _operators(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("$"):
                yield key
            yield from _operators(value)
    elif isinstance(node, list):
        for item in node:
            yield from _operators(item)


# --- the ruleset -------------------------------------------------------------------------------------


def _pri(priority: int) -> int:
    return 1000 - priority + 1


def compile_ruleset(rules: RuleSet) -> dict:
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
    rs: dict[str, dict] = {
        DAILY_LOSS: {"all": [{"m": beyond}, {"b$not": same_day_breach}], "pri": 0, "run": run(DAILY_LOSS)},
        DAILY_PNL_RECORDED: {"all": [{"m": beyond}, {"b": same_day_breach}], "pri": 0, "run": run(DAILY_PNL_RECORDED)},
        DAILY_PNL_WITHIN: {"all": [{"m": within}], "pri": 0, "run": run(DAILY_PNL_WITHIN)},
        PROPOSAL_HALTED: {"all": [{"h": {"t": "halt"}}, {"p": {"t": "proposal"}}], "pri": 0, "run": run(PROPOSAL_HALTED)},
        PROPOSAL_FAILED: {
            "all": [{"p": {"$and": [{"t": "proposal"}, {"$gt": {"n_failed": 0}}]}}, {"h$not": {"t": "halt"}}],
            "pri": 0,
            "run": run(PROPOSAL_FAILED),
        },
        PROPOSAL_ACCEPTED: {
            "all": [{"p": {"$and": [{"t": "proposal"}, {"$lte": {"n_failed": 0}}]}}, {"h$not": {"t": "halt"}}],
            "pri": 0,
            "run": run(PROPOSAL_ACCEPTED),
        },
    }
    total = len(rs) + 2  # each of the system rules is one alternative; daily_pnl has two sides

    enabled = [r for r in rules.custom.rules if r.enabled]
    if len(enabled) + len(rs) > MAX_RULES:
        raise RulesCompileError(f"expected at most {MAX_RULES - len(rs)} enabled custom rules, found {len(enabled)}")
    for rule in enabled:
        key = custom_key(rule.name)
        if key in rs:
            raise RulesCompileError(f"rule {rule.name!r}: defined twice; expected unique custom rule names")
        cond = compile_condition(rule.when, rule.name)
        n_leaves, n_depth, n_branches = leaves(cond), depth(cond), branches(cond, cap=MAX_BRANCHES + 1)
        if n_depth > MAX_DEPTH:
            raise RulesCompileError(f"rule {rule.name!r}: expected all/any/not nested at most {MAX_DEPTH} deep once negations are pushed down, found {n_depth}")
        if n_branches > MAX_BRANCHES_PER_RULE:
            raise RulesCompileError(
                f"rule {rule.name!r}: the condition expands to {n_branches if n_branches <= MAX_BRANCHES else 'more than ' + str(MAX_BRANCHES)} "
                f"alternatives, expected at most {MAX_BRANCHES_PER_RULE} (durable-rules freezes above 512 under one node); "
                "split the rule or use fewer values in 'in' lists"
            )
        if n_leaves > MAX_LEAVES_PER_RULE:
            raise RulesCompileError(f"rule {rule.name!r}: expected at most {MAX_LEAVES_PER_RULE} comparisons, found {n_leaves}")
        total += n_branches
        if total > MAX_BRANCHES:
            raise RulesCompileError(
                f"rule {rule.name!r}: the custom rules expand to more than {MAX_BRANCHES} alternatives together "
                "(durable-rules freezes above 512 under one node); expected fewer rules or simpler conditions"
            )
        kind = "position" if is_position_rule(rule) else "portfolio"
        tests = [{"t": kind}, *(cond["$and"] if set(cond) == {"$and"} else [cond])]
        latch_key: object = {"m": durable_field("position.id")} if kind == "position" else PORTFOLIO_LATCH_KEY
        rs[key] = {
            "all": [
                {"m": {"$and": tests}},
                {"l$not": {"$and": [{"t": "latch"}, {"rule": rule.name}, {"key": latch_key}]}},
            ],
            "pri": _pri(rule.priority),
            "run": run(key),
        }

    unknown = sorted(set(_operators(rs)) - _ALLOWED_OPERATORS)
    if unknown:  # our grammar cannot produce these; a hand-built tree could
        raise RulesCompileError(f"expected only the operators {', '.join(sorted(_ALLOWED_OPERATORS))}, found {', '.join(unknown)}")
    return {name: rs}


# --- compiling in a child process --------------------------------------------------------------------

_CHILD = r"""
import json, sys
try:
    import engine.rules  # routes durable's JSON through engine.rules._durable_json, as in the parent
    from durable import engine
except Exception as exc:
    print(json.dumps({"ok": False, "error": "cannot import durable-rules: %s" % exc})); sys.exit(0)

class Host(engine.Host):
    def get_action(self, name):
        return lambda c: None
    def _run(self):
        pass

definition = json.loads(sys.stdin.read())
try:
    Host().register_rulesets(definition)
except BaseException as exc:
    print(json.dumps({"ok": False, "error": str(exc) or type(exc).__name__}))
else:
    print(json.dumps({"ok": True}))
"""


def explain_durable_error(message: str) -> str:
    """Return durable-rules' error ``message`` with its bare code explained."""
    m = re.search(r"error code:?\s*(\d+)", message)
    if not m:
        return message
    code = int(m.group(1))
    meaning = DURABLE_ERRORS.get(code, "an error durable-rules does not explain")
    return f"durable-rules refused the ruleset with code {code}: {meaning} ({message})"


def check_compiles(definition: dict, timeout: float = 10.0, checker: WarmChecker | None = None) -> None:
    """Register ``definition`` on a fresh durable-rules ``Host`` in a child process; raise on failure.

    A definition that durable-rules rejects raises ``RulesCompileError`` with its error code explained,
    and so does one it accepts with an operator outside its grammar (it accepts ``{"$regex": {"f":
    "x"}}`` silently and the rule then matches unrelated messages);
    one that does not finish within ``timeout`` seconds (durable-rules loops forever on more than 512
    tests under one node) raises ``RulesCompileError`` after the child has been killed. The caller's
    process never loads the definition. ``checker``: a ``WarmChecker`` whose child has durable-rules
    loaded already (a reload costs milliseconds instead of a Python start-up); default: a new child.
    """
    payload = _payload(definition)
    if checker is not None:
        result = checker.run(payload, timeout)
    else:
        result = _run_child(payload, timeout)
    if not result.get("ok"):
        raise RulesCompileError(explain_durable_error(str(result.get("error"))))
    unknown = sorted(set(_operators(definition)) - DURABLE_OPERATORS)
    if unknown:
        raise RulesCompileError(
            f"unknown operator(s) {', '.join(repr(u) for u in unknown)}: durable-rules accepted the ruleset "
            "but would match unrelated messages with them; expected one of " + ", ".join(sorted(DURABLE_OPERATORS))
        )


def _payload(definition: dict) -> str:
    try:
        json.dumps(definition, allow_nan=False)  # refuses inf and nan
        return _durable_json.dumps(definition)
    except ValueError as exc:
        raise RulesCompileError(f"expected finite numbers only in the ruleset, found a non-finite one ({exc})") from None
    except TypeError as exc:
        raise RulesCompileError(f"expected a JSON ruleset definition, found {exc}") from None


def _timed_out(timeout: float) -> RulesCompileError:
    return RulesCompileError(
        f"durable-rules did not finish compiling the ruleset within {timeout:g} s and was stopped: "
        "it loops forever when more than 512 tests sit under one node; expected fewer rules or "
        "fewer alternatives ('in' lists, 'any' groups)"
    )


def _run_child(payload: str, timeout: float) -> dict:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD], input=payload, capture_output=True, text=True, timeout=timeout,
        )  # subprocess.run kills the child when the timeout expires
    except subprocess.TimeoutExpired:
        raise _timed_out(timeout) from None
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        tail = (proc.stderr or proc.stdout).strip()[-500:]
        raise RulesCompileError(f"the child process compiling the ruleset failed (exit {proc.returncode}): {tail}") from None


_WARM_CHILD = r"""
import json, sys
try:
    import engine.rules  # routes durable's JSON through engine.rules._durable_json, as in the parent
    from durable import engine
    import durable_rules_engine
except Exception as exc:
    print(json.dumps({"ok": False, "error": "cannot import durable-rules: %s" % exc}), flush=True); sys.exit(0)

class Host(engine.Host):
    def get_action(self, name):
        return lambda c: None
    def _run(self):
        pass

print(json.dumps({"ready": True}), flush=True)
for header in sys.stdin:
    definition = json.loads(sys.stdin.read(int(header)))
    try:
        host = Host()
        host.register_rulesets(definition)
    except BaseException as exc:
        print(json.dumps({"ok": False, "error": str(exc) or type(exc).__name__}), flush=True)
    else:
        for name in definition:  # free the compiled network: this child checks many versions
            try:
                durable_rules_engine.delete_ruleset(host.get_ruleset(name)._handle)
            except Exception:
                pass
        print(json.dumps({"ok": True}), flush=True)
"""


class WarmChecker:
    """A child process with durable-rules loaded, compiling definitions on request (``check_compiles``).

    A definition that freezes durable-rules freezes the child only: after ``timeout`` the child is
    killed and the next check starts a new one. The child is also replaced every ``recycle`` checks.
    Not thread-safe: one caller at a time (the reloader holds its lock).
    """

    def __init__(self, recycle: int = 200) -> None:
        self.recycle = recycle
        self._proc: subprocess.Popen | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._used = 0

    def warm(self, timeout: float = 30.0) -> None:
        """Start the child now, so that the first check is fast too."""
        if self._proc is None or self._proc.poll() is not None:
            self._start(timeout)

    def _start(self, timeout: float) -> None:
        self._proc = subprocess.Popen([sys.executable, "-u", "-c", _WARM_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._lines = queue.Queue()
        self._used = 0

        def pump(stream, lines):
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(self._proc.stdout, self._lines), daemon=True).start()
        first = self._read(max(timeout, 30.0))
        if not first.get("ready"):
            self.close()
            raise RulesCompileError(str(first.get("error", "the compile child did not start")))

    def _read(self, timeout: float) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise _timed_out(timeout) from None
        if line is None:
            self.close()
            raise RulesCompileError("the child process compiling the ruleset died")
        return json.loads(line)

    def run(self, payload: str, timeout: float) -> dict:
        if self._proc is None or self._proc.poll() is not None or self._used >= self.recycle:
            self.close()
            self._start(timeout)
        self._used += 1
        try:
            self._proc.stdin.write(f"{len(payload)}\n{payload}")
            self._proc.stdin.flush()
        except OSError:
            self.close()
            return _run_child(payload, timeout)
        return self._read(timeout)

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                try:
                    f.close()
                except OSError:
                    pass
            self._proc = None
