"""The portfolio layer on durable-rules: daily-loss breach → halt → rejections, and the custom rules.

``PortfolioRules`` owns ONE long-lived durable-rules ``Host`` for the life of the process, used by the
thread that created it (durable's ``Host`` has no locks). Each rules version is registered as its own
ruleset (``engine.rules.compile``, its actions in ``engine.rules.firing``), with one session (``SID``) per version, so two versions run side
by side and an old one is dropped once no event uses it.

Facts (the state lives in durable-rules, never in Python bookkeeping):

    breach  {t, day, pnl_pct}        the daily loss limit was breached on ``day``
    halt    {t, source, reason[, day]}  new positions are halted; ``source`` is ``daily_loss`` or
                                     ``custom:<rule>``; ``halted()`` reads these
    latch   {t, rule, key}           a custom rule fired for a subject: a position id, a strategy, a
                                     symbol, or ``portfolio``
    fact    {t, name, strategy, symbol, since, until, blocks, rule, reason}
                                     the desk's own facts (``engine.rules.desk_facts``)

Events: ``daily_pnl`` and ``proposal`` (each consumed by exactly one rule). The contexts of custom
rules are facts: ``post_contexts`` asserts all of an event's in one batch and retracts them at its
end (several custom rules may fire on one context, and durable-rules lets an event fire one rule only).

Firing semantics:

- daily loss: the first ``daily_pnl`` of a day with ``pnl_pct <= -max`` asserts that day's breach fact,
  a ``daily_loss`` halt (when ``halt_new_positions`` is in ``on_breach``) and emits the ``on_breach``
  actions in the configured order; later ones of the same day do nothing (the breach fact blocks the
  rule). ``reset_day`` retracts every breach fact and daily-loss halt, so the limit re-arms.
- proposals: rejected while any halt fact exists (reason: every halt's reason, every live blocking
  fact, then every failed pre-trade check, in ONE ``reject_position``); rejected while a live desk fact
  that blocks proposals applies to its strategy or symbol (rule ``fact:<name>``); rejected when
  ``n_failed > 0``; accepted otherwise (no ``Fired``: an empty list means accepted).
- custom rules (``engine.rules.compile_custom``): each at its scope, once per subject; a position rule
  fires once per position (its latch lives until ``forget_position`` or ``drop``), the others when their
  condition starts to hold for a subject and again after it stopped holding. Rules fire by priority
  (higher first) over all the contexts of the event, and see the facts the rules before them asserted;
  a rule's ``then`` actions are emitted in order. ``halt_new_positions`` asserts a halt fact (source
  ``custom:<rule>``); ``resume`` retracts the halts of custom rules (never the daily-loss halt: only
  ``reset_day`` lifts that). A rule firing more than ``MAX_REFIRES`` times for one subject in one event
  stops the event's custom actions, reported as a critical ``alert`` of rule ``chain_limit``.
- ``portfolio.halted`` and ``fact.<name>.active`` are read from the facts, never from a context.
- A field a rule reads but the context lacks makes the rule not match (both ``x < 1`` and ``x >= 1``
  are false).

Outcomes: ``MessageObservedException`` and ``MessageNotHandledException`` are normal results of a post
(nothing fires). An action that raises does not raise out of durable-rules' ``post``: the session state
gets an ``exception`` key instead; every post checks it, clears it, and raises ``RulesRuntimeError``
naming the rule. A proposal that no proposal rule handled raises ``RulesRuntimeError`` too.

What ``drop`` frees: the version's session (facts, latches, state) with ``delete_state``, its actions,
and the compiled ruleset itself. durable's Python ``Host`` cannot remove a ruleset, but its C engine
can (``delete_ruleset``); ``_RiskHost.unregister`` does that and takes the ruleset out of the host's
directory. Without it every reload would keep its compiled network (about 0.4 MB for 50 rules).

The host starts no timer threads: durable's ``Host`` starts two that poll every ruleset, and those
would run pending actions on another thread, racing the synchronous ``post`` (we use no timers).
So a thousand load/drop cycles leave ``threading.active_count()`` unchanged.
"""

from __future__ import annotations

import copy
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import durable_rules_engine
from durable import engine as durable

from engine.config.conditions import suggest
from engine.config.fields import FIELDS, is_fact_atom
from engine.config.load import RuleSet
from engine.rules._errors import RulesCompileError, RulesRuntimeError
from engine.rules.compile import (
    DAILY_LOSS,
    PORTFOLIO_LATCH_KEY,
    SID,
    Json,
    check_compiles,
    compile_ruleset,
    durable_field,
    explain_durable_error,
    ruleset_name,
)
from engine.rules.compile_custom import rule_scope
from engine.rules.firing import Fired, LoadedVersion, RuleAction, halts, version_actions

__all__ = ["Fired", "PortfolioRules", "RulesCompileError", "RulesRuntimeError"]

class _RiskHost(durable.Host):  # type: ignore[misc]  # durable-rules ships no type information: its Host is Any
    """A durable-rules Host that looks actions up by name, runs no timer threads, and can unregister."""

    def __init__(self) -> None:
        self.actions: dict[str, RuleAction] = {}
        super().__init__()

    def get_action(self, action_name: str) -> RuleAction:
        try:
            return self.actions[action_name]
        except KeyError:
            raise RulesCompileError(f"no action registered under {action_name!r}") from None

    def _run(self) -> None:
        # durable's Host starts two polling timer threads here; we use no timers, and those threads
        # would run pending actions concurrently with our synchronous posts.
        pass

    def unregister(self, name: str) -> None:
        """Delete a ruleset's session and compiled network, and forget it."""
        ruleset = self._ruleset_directory.pop(name, None)
        if ruleset is None:
            return
        self._ruleset_list.remove(ruleset)
        try:
            ruleset.delete_state(SID)
        except durable_rules_engine.error:
            pass  # 309: the session was never created
        durable_rules_engine.delete_ruleset(ruleset._handle)


class PortfolioRules:
    """The forward-chaining portfolio layer: one durable-rules Host, one ruleset per rules version."""

    def __init__(self) -> None:
        self._host = _RiskHost()
        self._versions: dict[str, LoadedVersion] = {}
        self._owner = threading.get_ident()

    # --- versions ------------------------------------------------------------------------------------

    def load(self, rules: RuleSet, check: bool = False, timeout: float = 10.0) -> str:
        """Register the ruleset of ``rules.version`` (idempotent) and return the version.

        ``check=True`` first compiles the definition in a child process (``check_compiles``): use it
        for rule sets this process has not compiled before, such as a reload.
        """
        self._own()
        version = rules.version
        if version in self._versions:
            return version
        definition = compile_ruleset(rules)
        if check:
            check_compiles(definition, timeout)
        name = ruleset_name(version)
        enabled = [r for r in rules.custom.rules if r.enabled]
        ver = LoadedVersion(version=version, name=name, rules=rules, scopes=frozenset(rule_scope(r) for r in enabled))
        actions = version_actions(ver, enabled)
        self._host.actions.update(actions)
        try:
            self._host.register_rulesets(copy.deepcopy(definition))  # durable deletes 'run' from it
        except durable_rules_engine.error as exc:
            for key in actions:
                self._host.actions.pop(key, None)
            raise RulesCompileError(explain_durable_error(str(exc))) from None
        self._versions[version] = ver
        return version

    def drop(self, version: str) -> None:
        """Forget a version: its facts, latches, session, actions and compiled ruleset."""
        self._own()
        ver = self._versions.pop(version, None)
        if ver is None:
            return
        self._host.unregister(ver.name)
        prefix = ver.name + "/"
        for key in [k for k in self._host.actions if k.startswith(prefix)]:
            del self._host.actions[key]

    @property
    def versions(self) -> tuple[str, ...]:
        """The loaded versions, oldest first."""
        return tuple(self._versions)

    # --- posts ---------------------------------------------------------------------------------------

    def post_daily_pnl(self, version: str, day: str, pnl: float, pnl_pct: float, ts_ms: int) -> list[Fired]:
        """Post today's PnL (``pnl_pct`` a fraction of the day-start equity); return what fired."""
        ver = self._version(version)
        _finite("pnl", pnl)
        _finite("pnl_pct", pnl_pct)
        event = {"t": "daily_pnl", "sid": SID, "day": str(day), "pnl": pnl, "pnl_pct": pnl_pct, "ts": int(ts_ms)}
        fired, _ = self._call(ver, self._host.post, event)
        return fired

    def post_proposal(self, version: str, proposal: Mapping[str, Any]) -> list[Fired]:
        """Post a proposed position; return ``[]`` when accepted, else one ``reject_position``.

        ``proposal``: ``id`` (the position id), ``strategy``, ``reasons`` (the failed pre-trade checks,
        a list of strings) and optionally ``symbol``, ``n_failed`` (default: ``len(reasons)``), ``ts``
        (epoch ms: a desk fact that blocks proposals rejects it while ``ts`` is before its expiry).
        """
        ver = self._version(version)
        if "id" not in proposal:
            raise RulesRuntimeError("expected an 'id' in the proposal, found none", "pre_trade")
        reasons = proposal.get("reasons") or []
        if isinstance(reasons, str):
            reasons = [r for r in reasons.split("; ") if r]
        reasons = [str(r) for r in reasons]
        n_failed = int(proposal.get("n_failed", len(reasons)))
        event = {
            "t": "proposal",
            "sid": SID,
            "position_id": str(proposal["id"]),  # not "id": durable-rules drops a second message with the same id
            "strategy": proposal.get("strategy"),
            "symbol": proposal.get("symbol"),
            "n_failed": n_failed,
            "reasons": reasons,
            "ts": int(proposal.get("ts", 0)),
        }
        before = ver.proposals_handled
        fired, _ = self._call(ver, self._host.post, event)
        if ver.proposals_handled != before + 1:
            raise RulesRuntimeError(
                f"proposal {proposal['id']!r} was handled by {ver.proposals_handled - before} proposal rules, expected exactly one",
                "pre_trade",
            )
        return fired

    def post_position(self, version: str, context: Mapping[str, Any]) -> list[Fired]:
        """Run the custom position rules on one position's context (needs ``position.id``)."""
        if not context.get("position.id"):
            raise RulesRuntimeError("expected 'position.id' in a position context, found none")
        return self.post_contexts(version, [("position", context)])

    def post_portfolio(self, version: str, context: Mapping[str, Any]) -> list[Fired]:
        """Run the custom portfolio rules (those reading no position, strategy or symbol field) on a context."""
        return self.post_contexts(version, [("portfolio", context)])

    def post_contexts(self, version: str, contexts: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Fired]:
        """Run the custom rules on the contexts of one event: ``(scope, fields)`` pairs (``ts`` among the
        fields: the event's time, epoch ms). Return what fired, in firing order.

        The contexts are asserted in one batch and retracted at the end: every rule fires in priority
        order over all of them, and sees the facts the rules before it asserted (``compile_custom``).
        A context of a scope no rule reads is not posted. Fact atoms (``portfolio.halted``,
        ``fact.<name>.active``) are read from the facts, never from a context.
        """
        ver = self._version(version)
        facts = [self._context_fact(ver, scope, ctx) for scope, ctx in contexts if scope in ver.scopes]
        if not facts:
            return []
        ver.chain, ver.capped = {}, None
        try:
            # durable-rules runs rules of equal priority last context first: posted reversed, they run in order
            fired, state = self._call(ver, self._host.assert_facts, facts[::-1], check=False)
            self._check(ver, state)
        finally:
            for fact in facts:
                self._call(ver, self._host.retract_fact, fact)
        if ver.capped is not None:
            reason = f"chaining stopped: {ver.capped}; the rules keep re-arming each other"
            fired.append(Fired("chain_limit", "alert", None, None, {"message": reason, "level": "critical"}, reason))
        return fired

    def expire(self, version: str, ts: int) -> None:
        """Retract the desk facts whose expiry is at or before ``ts`` (event time, epoch ms)."""
        ver = self._version(version)
        for fact in self._facts(ver):
            if fact.get("t") == "fact" and fact.get("until", 0) <= ts:
                self._retract(ver, fact)

    def latches(self, version: str) -> set[tuple[str, str]]:
        """Return the (rule, subject) pairs latched: a position id, strategy, symbol or ``portfolio``."""
        return {(f["rule"], f["key"]) for f in self._facts(self._version(version)) if f.get("t") == "latch"}

    # --- state ---------------------------------------------------------------------------------------

    def reset_day(self, version: str, day: str) -> None:
        """Start trading day ``day``: clear breaches and daily-loss halts (custom rules re-arm by themselves)."""
        ver = self._version(version)
        for fact in self._facts(ver):
            if fact.get("t") == "breach" or (fact.get("t") == "halt" and fact.get("source") == DAILY_LOSS):
                self._retract(ver, fact)

    def forget_position(self, version: str, position_id: str) -> None:
        """Retract the latches of a closed position, so they do not accumulate."""
        ver = self._version(version)
        for fact in self._facts(ver):
            if fact.get("t") == "latch" and fact.get("key") == position_id:
                self._retract(ver, fact)

    def halted(self, version: str) -> str | None:
        """Return why new positions are halted (every halt's reason), or None when trading."""
        found = halts(self._facts(self._version(version)))
        return "; ".join(h["reason"] for h in found) if found else None

    def facts(self, version: str) -> list[Json]:
        """Return the version's facts (breach, halt, latch), sorted for display and comparison."""
        facts = [{k: v for k, v in f.items() if k != "sid"} for f in self._facts(self._version(version))]
        return sorted(facts, key=lambda f: sorted((k, str(v)) for k, v in f.items()))

    def restore_facts(self, version: str, facts: list[Json]) -> None:
        """Assert facts read by ``facts`` (of another version, or saved before a restart) into a version.

        Breach, halt, latch and desk facts alone fire no rule: each rule also needs an event or a
        context. A desk fact keeps its expiry; whether it blocks proposals is what ``version`` declares.
        """
        ver = self._version(version)
        present = {_fact_key(f) for f in self.facts(version)}
        specs = ver.rules.custom.facts
        for fact in facts:
            if fact.get("t") == "fact":
                spec = specs.get(str(fact.get("name")))
                fact = {**fact, "blocks": spec.blocks if spec is not None else "nothing"}
            if fact.get("t") not in ("breach", "halt", "latch", "fact") or _fact_key(fact) in present:
                continue
            fired, _ = self._call(ver, self._host.assert_fact, {**fact, "sid": SID})
            if fired:
                raise RulesRuntimeError(f"restoring the fact {fact} fired {fired[0].rule}; facts alone must fire nothing")

    def pending_events(self, version: str) -> list[Json]:
        """Return the events waiting in the version's session for a partner (always none by design)."""
        ver = self._version(version)
        try:
            events: list[Json] = self._host.get_pending_events(ver.name, SID)
        except durable_rules_engine.error:
            return []
        return events

    # --- internals -----------------------------------------------------------------------------------

    def _own(self) -> None:
        if threading.get_ident() != self._owner:
            raise RulesRuntimeError("PortfolioRules is used by the thread that created it only (durable-rules' Host has no locks)")

    def _version(self, version: str) -> LoadedVersion:
        self._own()
        try:
            return self._versions[version]
        except KeyError:
            raise RulesRuntimeError(f"rules version {version!r} is not loaded; loaded: {', '.join(self._versions) or 'none'}") from None

    def _facts(self, ver: LoadedVersion) -> list[Json]:
        try:
            facts: list[Json] = self._host.get_facts(ver.name, SID)
        except durable_rules_engine.error:
            return []  # 309: no session yet, so no facts
        return facts

    def _retract(self, ver: LoadedVersion, fact: Json) -> None:
        self._call(ver, self._host.retract_fact, fact)

    def _context_fact(self, ver: LoadedVersion, scope: str, context: Mapping[str, Any]) -> Json:
        ver.seq += 1
        fact: Json = {"t": scope, "sid": SID, "seq": ver.seq, "c": 1, "ts": int(context.get("ts", 0))}
        for key, value in context.items():
            if key == "ts" or is_fact_atom(key):
                continue
            if key not in FIELDS:
                raise RulesRuntimeError(f"unknown context field {key!r}{suggest(key, FIELDS)}")
            if value is None:
                continue
            if isinstance(value, float):
                _finite(key, value)
            fact[durable_field(key)] = value
        subject = _SUBJECT[scope]
        fact["s"] = str(context.get(subject[1]) or "") if subject[1] else ""
        fact["y"] = str(context.get(subject[2]) or "") if subject[2] else ""
        fact["key"] = str(context.get(subject[0])) if subject[0] else PORTFOLIO_LATCH_KEY
        return fact

    def _call(self, ver: LoadedVersion, op: Callable[[str, Any], Json | None], message: Json | list[Json],
              check: bool = True) -> tuple[list[Fired], Json | None]:
        ver.fired = []
        state = None
        try:
            state = op(ver.name, message)
        except (durable.MessageObservedException, durable.MessageNotHandledException):
            pass  # normal outcomes: a message seen before, or one no rule matches
        except durable_rules_engine.error as exc:
            raise RulesRuntimeError(explain_durable_error(str(exc))) from None
        finally:
            fired, ver.fired = ver.fired, None
        if check:
            self._check(ver, state)
        return fired, state

    def _check(self, ver: LoadedVersion, state: Json | None) -> None:
        failure, ver.failure = ver.failure, None
        raised = state if state is not None and "exception" in state else None
        if raised is not None:
            # The exception stays in the session state until cleared; clear it so it is reported once.
            self._host.update_state(ver.name, {k: v for k, v in raised.items() if k != "exception"})
        if failure is not None:
            rule, exc = failure
            raise RulesRuntimeError(f"rule {rule!r} raised {type(exc).__name__}: {exc}", rule) from exc
        if raised is not None:
            raise RulesRuntimeError(f"a rule action raised: {raised['exception']}")

def _finite(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise RulesRuntimeError(f"expected a finite number for {name}, found {value!r}")


#: per scope: the fields that give its subject key, strategy and symbol
_SUBJECT = {
    "position": ("position.id", "position.strategy_type", "position.symbol"),
    "strategy": ("strategy.name", "strategy.name", None),
    "symbol": ("symbol.name", None, "symbol.name"),
    "portfolio": (None, None, None),
}


def _fact_key(fact: Json) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, str(v)) for k, v in fact.items() if k != "sid"))
