"""What the portfolio rules do when they fire: the actions registered for each rules version.

Each rule of a compiled ruleset (``engine.rules.compile``) runs one action here. An action reads the
message durable-rules hands it, asserts the facts that chain (breach, halt, latch) and emits ``Fired``
items into the version being posted to (``LoadedVersion.fired``); the first exception a rule raises is
kept in ``LoadedVersion.failure`` for ``PortfolioRules`` to report, naming the rule.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from durable import engine as durable

from engine.config.load import RuleSet
from engine.config.models import AlertParams, CloseParams, CustomRule, LevelParams, ReasonParams
from engine.rules._errors import RulesRuntimeError
from engine.rules.compile import (
    DAILY_LOSS,
    DAILY_PNL_RECORDED,
    DAILY_PNL_WITHIN,
    PORTFOLIO_LATCH_KEY,
    PROPOSAL_ACCEPTED,
    PROPOSAL_FAILED,
    PROPOSAL_HALTED,
    SID,
    Json,
    action_name,
    custom_key,
    durable_field,
    is_position_rule,
)

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
    """One loaded rules version: its ruleset's name, what its rules read, and what a post collects."""

    version: str
    name: str
    rules: RuleSet
    has_position_rules: bool
    has_portfolio_rules: bool
    reads_halted: bool
    seq: int = 0
    fired: list[Fired] | None = None
    failure: tuple[str, BaseException] | None = None
    proposals_handled: int = 0


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
        reasons = [h["reason"] for h in halts(c.get_facts())] + list(p.get("reasons") or [])
        ver.proposals_handled += 1
        emit(Fired("halt", "reject_position", p["position_id"], p.get("strategy"), {"reasons": reasons}, "; ".join(reasons)))

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
        action_name(name, PROPOSAL_FAILED): wrap("pre_trade", proposal_failed),
        action_name(name, PROPOSAL_ACCEPTED): wrap("pre_trade", proposal_accepted),
    }
    for rule in enabled:
        key = custom_key(rule.name)
        actions[action_name(name, key)] = wrap(key, _custom_action(rule, emit))
    return actions


def _custom_action(rule: CustomRule, emit: Callable[[Fired], None]) -> RuleAction:
    key = custom_key(rule.name)
    position = is_position_rule(rule)
    default_reason = rule.description or f"rule {rule.name}: {rule.when.text()}"

    def action(c: Closure) -> None:
        m = c.m._d
        pid = m.get(durable_field("position.id")) if position else None
        strategy = m.get(durable_field("position.strategy_type")) or m.get(durable_field("strategy.name"))
        _assert(c, {"t": "latch", "rule": rule.name, "key": pid if position else PORTFOLIO_LATCH_KEY, "sid": SID})
        for item in rule.then:
            kind, p = item.kind, item.params
            given = p.reason if isinstance(p, ReasonParams) else None
            reason = given or default_reason
            params: dict[str, Any]
            # each kind has its own parameters model: close, set_stop_loss/set_take_profit, alert, the rest a reason
            if isinstance(p, CloseParams):
                params = {"fraction": p.fraction}
            elif isinstance(p, LevelParams):
                params = {"profit": p.profit}
            elif isinstance(p, AlertParams):
                params, reason = {"message": p.message, "level": p.level}, p.message
            elif kind == "reject_position":
                params = {"reasons": [reason]}
            else:
                params = {"reason": reason} if given else {}
            if kind == "halt_new_positions":
                _assert(c, {"t": "halt", "source": key, "reason": reason, "sid": SID})
            elif kind == "resume":
                for fact in halts(c.get_facts()):
                    if fact.get("source", "").startswith("custom:"):
                        c.retract_fact(fact)
            emit(Fired(key, kind, pid, strategy, params, reason))

    return action


def _assert(c: Closure, fact: Json) -> None:
    try:
        c.assert_fact(fact)
    except durable.MessageObservedException:
        pass  # the same fact is already there (e.g. a second halt by the same rule)


def halts(facts: list[Json]) -> list[Json]:
    """Return the halt facts among ``facts``: the daily-loss halt first, then by source, day and reason."""
    halts = [f for f in facts if f.get("t") == "halt"]
    return sorted(halts, key=lambda h: (h.get("source") != DAILY_LOSS, h.get("source", ""), h.get("day", ""), h.get("reason", "")))
