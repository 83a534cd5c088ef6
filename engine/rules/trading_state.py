"""Trading states, as NautilusTrader's RiskEngine has them: ACTIVE, REDUCING, HALTED per account, strategy and symbol.

People set them with ``trading_state`` events (``engine.operator``: the API, the CLI), each kept with
who set it, why and when (event time, epoch ms); rules set them through their halts:

- a halt fact (a daily-loss breach's, a custom rule's ``halt_new_positions``, e.g. the shipped
  halt-on-drawdown) is the account HALTED by ``rule:<name>``, for as long as the fact holds;
- a live desk fact that blocks proposals (``engine.rules.desk_facts``) is its strategy's, symbol's or
  the account's HALTED by ``rule:<the rule that asserted it>``, until it expires or is retracted.

An operator's state and a rule's are kept apart: the most restrictive applies, and an operator's
ACTIVE lifts the operator's own state only (a rule's halt ends as its rule says: the daily reset, a
``resume`` rule, the fact's expiry).

What a state means for the engine (docs/engine.md, "Trading states"):

HALTED
    every proposal in its scope is rejected, one that would reduce exposure too. The engine's own
    risk management goes on: stops, targets, exit levels, trailing and dynamic stops, custom rules'
    closes, max holding times and ``flatten`` close positions, and the broker's reports are booked.
REDUCING
    a proposal in its scope is accepted (when its pre-trade checks pass) only if it reduces the net open
    volume of its symbol in that scope: the side opposite to the net, at most the net volume. The rest
    is as HALTED.
ACTIVE
    no proposal is refused for the state.

A proposal meets the states of the account, of its strategy and of its symbol; each that refuses it is
a reason of its ``reject_position`` (rule ``trading_state``, or ``halt`` when a rule's halt holds too).
Every operator change emits a ``trading_state`` action (never sent to a broker as an order), so
pipelines and the actions stream see it; ``flatten`` closes the positions it names with one ``close``
each (rule ``flatten``), through the broker like any close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.actions import Action
from engine.events import PositionOpened
from engine.operator import STATES, Flatten, TradingStateChange
from engine.rules.compile import DAILY_LOSS
from engine.rules.desk_facts import describe
from engine.rules.firing import Fired, halts

if TYPE_CHECKING:
    from engine.rules.evaluator import Engine

#: the rule of the actions an operator's change emits, and of the rejections a state makes
RULE = "trading_state"
#: the rule of the closes a flatten emits
FLATTEN = "flatten"
_RANK = {state: i for i, state in enumerate(STATES)}


@dataclass(frozen=True)
class Entry:
    """One trading state: ``scope`` (account, strategy or symbol), ``name`` (None for the account, else the
    strategy or symbol), ``state``, ``reason``, ``by`` (a token's name, ``cli:<user>``, or ``rule:<name>``)
    and ``at`` (when it was set, epoch ms of event time; 0: never set)."""

    scope: str
    name: str | None
    state: str
    reason: str
    by: str
    at: int

    def to_json(self) -> dict[str, Any]:
        """The entry as ``GET /api/trading-state`` lists it."""
        return {"scope": self.scope, "name": self.name, "state": self.state, "reason": self.reason, "by": self.by, "at": self.at}

    @property
    def where(self) -> str:
        """``the account``, ``strategy arbitrage`` or ``symbol EURUSD``."""
        return "the account" if self.scope == "account" else f"{self.scope} {self.name}"


def scope_of(strategy: str | None, symbol: str | None) -> tuple[str, str | None]:
    """The scope and name of a change naming ``strategy`` or ``symbol`` (neither: the account)."""
    if strategy is not None:
        return "strategy", strategy
    if symbol is not None:
        return "symbol", symbol
    return "account", None


class TradingStates:
    """The operators' trading states of one account, and when each halt of a rule was first seen.

    Part of the engine's state (``engine.rules.state`` records it as ``trading_states``).
    """

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str | None], Entry] = {}
        self.seen: dict[str, int] = {}  # halt fact (source|reason) -> the event time it was first seen

    def account(self) -> Entry:
        """The account's own state as the operators left it (ACTIVE, never set, by default)."""
        return self.entries.get(("account", None), Entry("account", None, "ACTIVE", "", "", 0))

    def change(self, e: TradingStateChange, ts: int) -> str:
        """Apply an operator's change at ``ts`` (epoch ms); return the state it replaces at that scope."""
        scope, name = scope_of(e.strategy, e.symbol)
        previous = self.entries.get((scope, name))
        if e.state == "ACTIVE" and scope != "account":
            self.entries.pop((scope, name), None)  # only states that refuse something are kept, and the account's
        else:
            self.entries[(scope, name)] = Entry(scope, name, e.state, e.reason, e.by, ts)
        return previous.state if previous is not None else "ACTIVE"

    def applying(self, strategy: str, symbol: str) -> list[Entry]:
        """The operators' states that refuse something for a proposal of ``strategy`` on ``symbol``."""
        keys = (("account", None), ("strategy", strategy), ("symbol", symbol))
        return [e for k in keys if (e := self.entries.get(k)) is not None and e.state != "ACTIVE"]

    def record(self) -> dict[str, Any]:
        """Plain data for the engine's state record."""
        return {"states": [e.to_json() for e in self.entries.values()], "seen": dict(self.seen)}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> TradingStates:
        """The states of a ``record`` (an empty one: every scope ACTIVE)."""
        out = cls()
        for d in data.get("states", []):
            e = Entry(str(d["scope"]), d["name"], str(d["state"]), str(d["reason"]), str(d["by"]), int(d["at"]))
            out.entries[(e.scope, e.name)] = e
        out.seen = {str(k): int(v) for k, v in data.get("seen", {}).items()}
        return out


def refusals(engine: Engine, e: PositionOpened) -> list[str]:
    """Why the operators' states refuse proposal ``e`` (empty: they do not), one reason per state."""
    out: list[str] = []
    for entry in engine.states.applying(e.strategy_type, e.symbol):
        why = f"trading {entry.state} for {entry.where} by {entry.by}: {entry.reason}"
        if entry.state == "HALTED":
            out.append(why)
            continue
        net = sum(p.side * p.volume for p in engine.book.open_positions() if p.symbol == e.symbol and p.id not in engine.pending
                  and (entry.scope != "strategy" or p.strategy_type == entry.name))
        if net * e.side < 0 and e.volume <= abs(net) * (1 + 1e-9):
            continue  # it reduces the net open volume of its symbol
        action = "BUY" if e.side > 0 else "SELL"
        out.append(f"{why}; a {action} of {e.volume:g} lots adds exposure (net open {net:+.10g} lots of {e.symbol})")
    return out


def apply(engine: Engine, e: TradingStateChange | Flatten, out: list[Action]) -> None:
    """Carry out an operator's event: change a state (and emit its ``trading_state`` action), or flatten.

    Its time is the event's, or the account's last quote's when that is later (a feed's event time may
    run ahead of the wall clock the API and the CLI stamp events with): a state never dates before the
    quotes it follows, and a flatten's fills never before the positions they close.
    """
    ts = max(e.ts, engine.last_ts or 0)
    if isinstance(e, Flatten):
        flatten(engine, e, ts, out)
        return
    previous = engine.states.change(e, ts)
    scope, name = scope_of(e.strategy, e.symbol)
    where = "the account" if name is None else f"{scope} {name}"
    params = {"scope": scope, "name": name, "state": e.state, "previous": previous, "reason": e.reason, "by": e.by}
    engine.act(ts, Fired(RULE, "trading_state", None, e.strategy, params, f"trading {e.state} for {where} by {e.by}: {e.reason}"), out)


def flatten(engine: Engine, e: Flatten, ts: int, out: list[Action]) -> None:
    """Close every open position of ``e``'s strategy and symbol (any, when not given) at its last quote at ``ts``,
    one ``close`` each through the broker; a position whose close is pending at the broker already is left to it."""
    reason = f"flatten by {e.by}: {e.reason}"
    for p in list(engine.book.open_positions()):
        if (e.strategy is not None and p.strategy_type != e.strategy) or (e.symbol is not None and p.symbol != e.symbol):
            continue
        kernel = engine.kernels.get(p.symbol)
        if kernel is None or p.id not in kernel.ids:
            continue
        engine.act(ts, Fired(FLATTEN, "close", p.id, p.strategy_type, {"fraction": 1.0}, reason), out)


def after(engine: Engine, ts: int, out: list[Action]) -> None:
    """Note when each halt of a rule began (``at`` of its state): after an event whose actions halted or resumed."""
    if not any(a.type in ("halt_new_positions", "resume") for a in out):
        return
    keys = {_key(h) for h in halts(engine.portfolio.facts(engine.version))}
    engine.states.seen = {k: engine.states.seen.get(k, ts) for k in keys}


def view(engine: Engine, account: str) -> dict[str, Any]:
    """``GET /api/trading-state``: ``{"account", "states": [Entry.to_json(), ...], "effective"}``, as ``listing``."""
    entries, effective = listing(engine)
    return {"account": account, "states": [e.to_json() for e in entries], "effective": effective}


def listing(engine: Engine) -> tuple[list[Entry], str]:
    """The account's own state as the operators left it (always), every state that refuses something (the
    operators' and the rules'), account first, then strategies and symbols by name; and the account's
    effective state (the most restrictive of the account's own)."""
    entries = [engine.states.account()]
    facts = engine.portfolio.facts(engine.version)
    for h in halts(facts):
        source = str(h.get("source", ""))
        by = "rule:" + (source.removeprefix("custom:") if source != DAILY_LOSS else DAILY_LOSS)
        entries.append(Entry("account", None, "HALTED", str(h.get("reason", "")), by, engine.states.seen.get(_key(h), 0)))
    now = engine.last_ts or 0
    for f in facts:
        if f.get("t") == "fact" and f.get("blocks") == "proposals" and f.get("until", 0) > now:
            scope, name = scope_of(f.get("strategy") or None, f.get("symbol") or None)
            entries.append(Entry(scope, name, "HALTED", describe(f), f"rule:{f.get('rule', '')}", int(f.get("since", 0))))
    entries += [e for e in engine.states.entries.values() if e.scope != "account"]
    order = {"account": 0, "strategy": 1, "symbol": 2}
    entries.sort(key=lambda e: (order[e.scope], e.name or "", -_RANK[e.state], e.by))
    return entries, max((e.state for e in entries if e.scope == "account"), key=_RANK.__getitem__)


def _key(halt: dict[str, Any]) -> str:
    return f"{halt.get('source', '')}|{halt.get('reason', '')}"
