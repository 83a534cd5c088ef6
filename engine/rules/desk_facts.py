"""What a custom rule does when it fires, and the desk's own facts it asserts and retracts.

A custom rule's action (``custom_action``) reads its context (``engine.rules.compile_custom``),
asserts its latch for the context's subject, then runs its ``then`` items in order: the actions it
emits (``Fired``), a ``halt_new_positions`` asserts a halt fact, a ``resume`` retracts the halts of
custom rules, an ``assert`` a desk fact, a ``retract`` removes one.

A desk fact (``desk_fact``)::

    {t: fact, name, strategy, symbol, since, until, blocks, rule, reason}

``strategy`` and ``symbol`` are the subject ("" for any), filled from the context where the file
writes a template such as ``"{strategy.name}"``; ``until`` is epoch ms of event time (``since`` plus
the ``for`` duration; ``FOREVER_MS`` without one): the fact is live while an event's time is before
it. Asserting a fact of the same name and subject replaces it (renews its expiry). ``blocks`` is
copied from the fact's declaration (``proposals``: a live fact rejects proposals of its subject).

Chaining cap: a rule may fire for one subject at most ``MAX_REFIRES`` times in one event (it fires
again only after facts re-armed it). Past that, every custom action of the event does nothing and the
post reports it (``LoadedVersion.capped``): a cycle the lint could not rule out stops there.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from engine.config.fields import fact_name
from engine.config.models.custom import (
    AlertParams,
    AssertParams,
    CloseParams,
    CustomRule,
    LevelParams,
    ReasonParams,
    RetractParams,
)
from engine.rules._errors import RulesRuntimeError
from engine.rules.compile import SID, Json, custom_key, durable_field
from engine.rules.compile_custom import FOREVER_MS, rule_scope

MAX_REFIRES = 8
_TEMPLATE = re.compile(r"\{([a-z_]+\.[a-z_0-9]+)\}")

#: what a custom action uses: read a message's data, the session's facts, assert, retract, emit
Ops = Any


def fill(template: str | None, context: Mapping[str, Any], rule: str) -> str:
    """Return ``template`` with each ``{field}`` replaced by the context's value ("" for None)."""
    if template is None:
        return ""

    def value(m: re.Match[str]) -> str:
        found = context.get(durable_field(m.group(1)))
        if found is None:
            raise RulesRuntimeError(f"rule {rule!r}: the context has no {m.group(1)} to fill {template!r}", custom_key(rule))
        return str(found)

    return _TEMPLATE.sub(value, template)


def desk_fact(name: str, strategy: str, symbol: str, since: int, duration: int | None, blocks: str, rule: str, reason: str) -> Json:
    """Return a desk fact as durable-rules holds it (see the module docstring)."""
    until = since + duration if duration else FOREVER_MS
    return {"t": "fact", "name": name, "strategy": strategy, "symbol": symbol, "since": since, "until": until,
            "blocks": blocks, "rule": rule, "reason": reason, "sid": SID}


def live_blocking(facts: Iterable[Json], strategy: str | None, symbol: str | None, ts: int) -> list[Json]:
    """Return the facts that block a proposal of ``strategy`` on ``symbol`` at ``ts``, by name and subject.

    Only the reasons of a rejection are built from this; durable-rules decided the rejection itself.
    """
    found = [f for f in facts if f.get("t") == "fact" and f.get("blocks") == "proposals" and f.get("until", 0) > ts
             and f.get("strategy") in ("", strategy) and f.get("symbol") in ("", symbol)]
    return sorted(found, key=lambda f: (f["name"], f["strategy"], f["symbol"], f["until"]))


def describe(fact: Json) -> str:
    """Return ``cooldown of strategy trend_following until 2024-03-04T10:30:00Z: <reason>``."""
    subject = " and ".join(f"{k} {fact[k]}" for k in ("strategy", "symbol") if fact.get(k)) or "everything"
    until = fact.get("until", FOREVER_MS)
    stamp = datetime.fromtimestamp(until / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    when = "until retracted" if until >= FOREVER_MS else "until " + stamp
    return f"{fact['name']} of {subject} {when}: {fact.get('reason', '')}"


def _params(kind: str, p: Any, given: str | None, reason: str) -> tuple[dict[str, Any], str]:
    # each kind has its own parameters model: close, set_stop_loss/set_take_profit, alert, the rest a reason
    if isinstance(p, CloseParams):
        return {"fraction": p.fraction}, reason
    if isinstance(p, LevelParams):
        return {"profit": p.profit}, reason
    if isinstance(p, AlertParams):
        return {"message": p.message, "level": p.level}, p.message
    if kind == "reject_position":
        return {"reasons": [reason]}, reason
    return ({"reason": reason} if given else {}), reason


def confirmed(facts: list[Json], rule: str, latched: bool, state: Mapping[str, bool], m: Mapping[str, Any]) -> bool:
    """Tell whether the session still has what a matched alternative assumed: the rule's latch for the
    subject (present or not) and each fact atom in ``state`` with its truth.

    durable-rules 2.0.28 can re-emit a match parked at a ``$not`` pattern after a fact an earlier
    ``$not`` pattern excludes appeared; an action confirms before it acts. It vetoes only: the match
    itself is durable-rules'.
    """
    if any(f.get("t") == "latch" and f.get("rule") == rule and f.get("key") == m["key"] for f in facts) != latched:
        return False
    for atom, truth in state.items():
        name = fact_name(atom)
        if name is None:
            value = any(f.get("t") == "halt" for f in facts)
        else:
            value = any(f.get("t") == "fact" and f.get("name") == name and f.get("until", 0) > m["ts"]
                        and f.get("strategy") in ("", m["s"]) and f.get("symbol") in ("", m["y"]) for f in facts)
        if value != truth:
            return False
    return True


def custom_action(rule: CustomRule, ver: Any, ops: Ops, emit: Callable[[Any], None], fired: type,
                  state: Mapping[str, bool]) -> Callable[[Any], None]:
    """Return the action of one alternative of a custom rule (its fact atoms in ``state``; module docstring).

    ``ops`` gives ``data(message)``, ``facts(c)``, ``assert_fact(c, fact)`` and ``retract(c, fact)``;
    ``fired`` is the ``Fired`` class; ``ver`` the ``LoadedVersion`` being posted to.
    """
    key = custom_key(rule.name)
    position = rule_scope(rule) == "position"
    default_reason = rule.description or f"rule {rule.name}: {rule.when.text()}"
    specs = ver.rules.custom.facts

    def action(c: Any) -> None:
        m = ops.data(c.m)
        if not confirmed(ops.facts(c), rule.name, False, state, m):
            return
        subject = m["key"]
        count = ver.chain.get((rule.name, subject), 0) + 1
        ver.chain[(rule.name, subject)] = count
        if count > MAX_REFIRES or ver.capped is not None:
            ver.capped = ver.capped or f"rule {rule.name!r} fired {MAX_REFIRES} times for {subject} in one event"
            return
        pid = subject if position else None
        strategy = m.get("s") or None
        ops.assert_fact(c, {"t": "latch", "rule": rule.name, "key": subject, "sid": SID})
        for item in rule.then:
            kind, p = item.kind, item.params
            if isinstance(p, (AssertParams, RetractParams)):
                s, y = fill(p.strategy, m, rule.name), fill(p.symbol, m, rule.name)
                for old in ops.facts(c):
                    if old.get("t") == "fact" and (old["name"], old["strategy"], old["symbol"]) == (p.fact, s, y):
                        ops.retract(c, old)
                if isinstance(p, AssertParams):
                    spec = specs.get(p.fact)
                    ops.assert_fact(c, desk_fact(p.fact, s, y, int(m["ts"]), p.for_, spec.blocks if spec else "nothing",
                                             rule.name, p.reason or default_reason))
                continue
            given = p.reason if isinstance(p, ReasonParams) else None
            params, reason = _params(kind, p, given, given or default_reason)
            if kind == "halt_new_positions":
                ops.assert_fact(c, {"t": "halt", "source": key, "reason": reason, "sid": SID})
            elif kind == "resume":
                for fact in ops.facts(c):
                    if fact.get("t") == "halt" and fact.get("source", "").startswith("custom:"):
                        ops.retract(c, fact)
            emit(fired(key, kind, pid, strategy, params, reason))

    return action


def rearm_action(rule: CustomRule, ops: Ops, state: Mapping[str, bool]) -> Callable[[Any], None]:
    """Return the action that re-arms a rule for a subject: it retracts the latch it matched."""
    def action(c: Any) -> None:
        if confirmed(ops.facts(c), rule.name, True, state, ops.data(c.m)):
            ops.retract(c, ops.data(c.l))
    return action
