"""What the portfolio rules do when they fire: the actions registered for each rules version.

Each rule of a compiled ruleset (``engine.rules.compile``) runs one action here (the custom rules'
in ``engine.rules.desk_facts``). An action reads the message durable-rules hands it, asserts the facts
that chain (breach, halt, latch, the desk's facts) and emits ``Fired`` items into the version being
posted to (``LoadedVersion.fired``); the first exception a rule raises is kept in
``LoadedVersion.failure`` for ``PortfolioRules`` to report, naming the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from durable import engine as durable

from engine.config.load import RuleSet
from engine.config.models import CustomRule
from engine.rules._errors import RulesRuntimeError
from engine.rules.compile import (
    DAILY_LOSS,
    DAILY_PNL_RECORDED,
    DAILY_PNL_WITHIN,
    PROPOSAL_ACCEPTED,
    PROPOSAL_BLOCKED,
    PROPOSAL_FAILED,
    PROPOSAL_HALTED,
    SID,
    Json,
    action_name,
    custom_key,
)
from engine.rules.compile_custom import CONTEXT, custom_rules
from engine.rules.desk_facts import custom_action, describe, live_blocking, rearm_action

ACTION_TYPES = (
    "close", "close_partial", "set_stop_loss", "set_take_profit", "reject_position",
    "halt_new_positions", "resume", "close_all", "rebalance", "alert",
)


class Message(Protocol):
    """A message matched by a rule, as durable-rules hands it to the action (its ``Content``)."""

    _d: Json  # the message's plain data


class Closure(Protocol):
    """What an action uses of the object durable-rules hands it: the messages its rule matched, by
    the names of the rule's patterns (``m``, ``p``), and the facts of the session."""

    m: Message
    p: Message
    b: Message
    l: Message  # noqa: E741 - durable-rules names the matched latch after its pattern's alias

    def get_facts(self) -> list[Json]: ...

    def assert_fact(self, fact: Json) -> None: ...

    def retract_fact(self, fact: Json) -> None: ...


RuleAction = Callable[[Closure], None]


@dataclass(frozen=True)
class Fired:
    """One action a rule emitted: which rule, what to do, to which position or strategy, and why."""

    rule: str  # daily_loss, halt, pre_trade or custom:<name>
    type: str  # one of ACTION_TYPES
    position_id: str | None
    strategy: str | None
    params: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass
class LoadedVersion:
    """One loaded rules version: its ruleset's name, the scopes its custom rules are evaluated at, and
    what a post collects (what fired, the first failure, the firings per rule and subject, the cap)."""

    version: str
    name: str
    rules: RuleSet
    scopes: frozenset[str]
    seq: int = 0
    fired: list[Fired] | None = None
    failure: tuple[str, BaseException] | None = None
    proposals_handled: int = 0
    chain: dict[tuple[str, str], int] = field(default_factory=dict)
    capped: str | None = None


class _Ops:
    """What a custom rule's action does to the session (``engine.rules.desk_facts``)."""

    @staticmethod
    def data(message: Message) -> Json:
        return message._d

    @staticmethod
    def facts(c: Closure) -> list[Json]:
        return c.get_facts()

    @staticmethod
    def assert_fact(c: Closure, fact: Json) -> None:
        _assert(c, fact)

    @staticmethod
    def retract(c: Closure, fact: Json) -> None:
        c.retract_fact(fact)


def version_actions(ver: LoadedVersion, enabled: list[CustomRule]) -> dict[str, RuleAction]:
    """Return the actions of one version's rules by durable action name: each emits ``Fired`` into ``ver``
    during a post, and records in ``ver`` the first exception a rule raised."""
    def wrap(rule: str, body: RuleAction) -> RuleAction:
        def action(c: Closure) -> None:
            try:
                body(c)
            except BaseException as exc:
                ver.failure = ver.failure or (rule, exc)
                raise  # durable-rules records it in the session state
        return action

    def emit(fired: Fired) -> None:
        if ver.fired is None or fired.type not in ACTION_TYPES:
            raise RulesRuntimeError(f"rule {fired.rule!r} emitted {fired.type!r} outside a post or of an unknown type", fired.rule)
        ver.fired.append(fired)

    limits = ver.rules.limits.daily_loss

    def daily_loss(c: Closure) -> None:
        m = c.m._d
        reason = f"daily loss {m['pnl_pct']:.2%} breached the limit of {limits.max * 100:g}%"
        _assert(c, {"t": "breach", "day": m["day"], "pnl_pct": m["pnl_pct"], "sid": SID})
        for kind in limits.on_breach:
            params: dict[str, Any] = {}
            if kind == "halt_new_positions":
                _assert(c, {"t": "halt", "source": DAILY_LOSS, "day": m["day"], "reason": reason, "sid": SID})
                params = {"reason": reason}
            elif kind == "alert":
                params = {"message": reason, "level": "critical"}
            emit(Fired(DAILY_LOSS, kind, None, None, params, reason))

    def consumed(c: Closure) -> None:
        pass

    def proposal_halted(c: Closure) -> None:
        p = c.p._d
        facts = c.get_facts()
        blocking = [describe(f) for f in live_blocking(facts, p.get("strategy"), p.get("symbol"), p.get("ts", 0))]
        reasons = [h["reason"] for h in halts(facts)] + blocking + list(p.get("reasons") or [])
        ver.proposals_handled += 1
        emit(Fired("halt", "reject_position", p["position_id"], p.get("strategy"), {"reasons": reasons}, "; ".join(reasons)))

    def proposal_blocked(c: Closure) -> None:
        p = c.p._d
        found = live_blocking(c.get_facts(), p.get("strategy"), p.get("symbol"), p.get("ts", 0)) or [c.b._d]
        reasons = [describe(f) for f in found] + list(p.get("reasons") or [])
        ver.proposals_handled += 1
        emit(Fired("fact:" + found[0]["name"], "reject_position", p["position_id"], p.get("strategy"),
                   {"reasons": reasons, "until": found[0]["until"]}, "; ".join(reasons)))

    def proposal_failed(c: Closure) -> None:
        p = c.p._d
        reasons = list(p.get("reasons") or []) or [f"{p['n_failed']} pre-trade check(s) failed"]
        ver.proposals_handled += 1
        emit(Fired("pre_trade", "reject_position", p["position_id"], p.get("strategy"), {"reasons": reasons}, "; ".join(reasons)))

    def proposal_accepted(c: Closure) -> None:
        ver.proposals_handled += 1

    name = ver.name
    actions = {
        action_name(name, DAILY_LOSS): wrap(DAILY_LOSS, daily_loss),
        action_name(name, DAILY_PNL_RECORDED): consumed,
        action_name(name, DAILY_PNL_WITHIN): consumed,
        action_name(name, PROPOSAL_HALTED): wrap("halt", proposal_halted),
        action_name(name, PROPOSAL_BLOCKED): wrap("fact", proposal_blocked),
        action_name(name, CONTEXT): consumed,
        action_name(name, PROPOSAL_FAILED): wrap("pre_trade", proposal_failed),
        action_name(name, PROPOSAL_ACCEPTED): wrap("pre_trade", proposal_accepted),
    }
    for rule in enabled:
        key = custom_key(rule.name)
        for alt in custom_rules(rule, 0, lambda c: {"c": 1}, str):  # the alternatives compile_ruleset made
            state = dict(alt.state)
            body = custom_action(rule, ver, _Ops, emit, Fired, state) if alt.kind == "fire" else rearm_action(rule, _Ops, state)
            actions[action_name(name, alt.key)] = wrap(key, body)
    return actions


def _assert(c: Closure, fact: Json) -> None:
    try:
        c.assert_fact(fact)
    except durable.MessageObservedException:
        pass  # the same fact is already there (e.g. a second halt by the same rule)


def halts(facts: list[Json]) -> list[Json]:
    """Return the halt facts among ``facts``: the daily-loss halt first, then by source, day and reason."""
    halts = [f for f in facts if f.get("t") == "halt"]
    return sorted(halts, key=lambda h: (h.get("source") != DAILY_LOSS, h.get("source", ""), h.get("day", ""), h.get("reason", "")))
