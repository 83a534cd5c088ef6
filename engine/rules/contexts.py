"""The custom rules of rules/custom.yaml on an event: the contexts of their scopes, and which are posted.

A condition reads fields of a fixed namespace (``position.*``, ``strategy.*``, ``symbol.*``,
``portfolio.*``, ``tick.*``, ``clock.*``; DESIGN section 3.2) and facts (``portfolio.halted``,
``fact.<name>.active``), and is evaluated at its scope (``engine.config.scopes``), once per subject.
``CustomRules.fire`` builds the contexts of one event:

1. the portfolio, tick and clock fields (the costly ones only when read);
2. for the position rules (tick events), every field as a column over the open positions of the
   tick's symbol at once (``engine.rules.vector.mask``): a cheap pre-filter in the negation normal
   form durable-rules uses, for each state of the fact atoms, so that only the positions whose
   condition may hold, and which the rule has not latched, are posted;
3. for the strategy, symbol and portfolio rules, the context of each strategy of the rules, each
   symbol quoted, and the portfolio, posted when a rule's condition may hold (or, for a subject the
   rule latched, may have stopped holding: durable-rules then re-arms it).

Every context of the event is posted in one batch to durable-rules (``engine.rules.chaining``), which
decides, latches and chains through facts in priority order; the fields are those of the event, the
facts those the rules assert as they fire. It yields what durable-rules decided, in order; the caller
carries each out. Durable-rules' facts are the only judge: the pre-filter only skips contexts on
which no state of the facts could make a rule fire or re-arm (``tests/rules/test_custom_differential.py``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from engine.book.ledgers import Day
from engine.book.positions import Book, Position
from engine.book.valuation import Converter
from engine.config.conditions import Condition, fields_of, negation_normal_form
from engine.config.fields import FIELDS, SCOPES, fact_name, is_fact_atom
from engine.config.load import RuleSet
from engine.config.models import CustomRule
from engine.config.scopes import alternatives, atoms_of, scope_of
from engine.events import Tick
from engine.rules.chaining import Fired, PortfolioRules
from engine.rules.counters import Closes, closed
from engine.rules.kernel import SymbolBook
from engine.rules.predicate import may_fail, may_hold
from engine.rules.vector import Interval, LazyColumns, could_hold, mask

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Account(Protocol):
    """What the fields of a condition are read from (an ``Engine`` is one)."""

    rules: RuleSet
    version: str
    portfolio: PortfolioRules
    book: Book
    converter: Converter
    kernels: dict[str, SymbolBook]
    day: Day
    peak_equity: float
    strategy_curves: dict[str, list[float]]
    custom: CustomRules
    last_ts: int | None

    @property
    def equity(self) -> float: ...

    def unrealized(self, strategy: str | None = None) -> float: ...

    def strategy_equity(self, name: str) -> float: ...

    def open_risk(self, strategy: str) -> float: ...


class CustomRules:
    """The enabled custom rules by scope, the latches durable-rules holds for them, and the closes.

    ``posted``: the (rule, position id) pairs durable-rules latched (a position rule fires once per
    position); ``latched``: the (rule, subject) pairs of the other scopes, read back from durable-rules
    after each post (None: to be read). ``closes``: the windowed counters' closes. The state is plain
    data (``engine.rules.state`` records it with the engine's snapshots).
    """

    def __init__(self, rules: RuleSet) -> None:
        self.posted: set[tuple[str, str]] = set()
        self.latched: set[tuple[str, str]] | None = None
        self.closes = Closes()
        self._clock: tuple[int, dict[str, Any]] = (-1, {})
        self.next_expiry: int | None = None
        self.closing: list[str] = []  # positions closed since the last post, counted then (``forget``)
        self.reload(rules)

    def reload(self, rules: RuleSet) -> None:
        """Take the rules of a new rule set; the decisions made so far stay."""
        enabled = [r for r in rules.custom.rules if r.enabled]
        self.by_scope = {scope: [r for r in enabled if scope_of(r.when) == scope] for scope in SCOPES}
        self.position = self.by_scope["position"]
        self.portfolio = [r for r in enabled if r not in self.position]  # every rule evaluated once per subject
        # the pre-filter evaluates each condition in the negation normal form durable-rules uses, and
        # each state of its fact atoms (a rule may assert or retract a fact later in the event)
        self.nnf = {r.name: negation_normal_form(r.when) for r in enabled}
        self.exist = {r.name: [negation_normal_form(x) if not isinstance(x, bool) else x for _, x in alternatives(r.when)]
                      for r in self.position}
        self.fields = frozenset(f for r in enabled for f in fields_of(r.when) if not is_fact_atom(f))
        self.atoms = frozenset(a for r in self.portfolio for a in atoms_of(r.when))
        # the rules a clock event can change the outcome of: they read the time, a window of it or a fact that expires
        self.timed = {scope: [r for r in rules if reads_time(r)] for scope, rules in self.by_scope.items()}
        self.latched = None

    def __bool__(self) -> bool:
        return bool(self.position or self.portfolio)

    def may_act(self, account: Account, shared: Mapping[str, Any], t0: int, t1: int) -> bool:
        """Tell whether a strategy, symbol or portfolio rule may fire or re-arm on quiet quotes between
        ``t0`` and ``t1`` (epoch ms): ``shared`` bounds the portfolio, tick and clock fields
        (``vector.could_hold``); the counters are bounded here, what moves with the quotes is unknown.
        A replay skips the quotes on which this is False (``engine.rules.batch``)."""
        def watched(rule: CustomRule, key: str) -> list[Condition]:
            # a latched subject can only re-arm, one not latched only fire (None: not read yet, either)
            if self.latched is None:
                return [self.nnf[rule.name], negation_normal_form(rule.when, True)]
            return [negation_normal_form(rule.when, True) if (rule.name, key) in self.latched else self.nnf[rule.name]]

        facts = account.portfolio.facts(account.version) if self.atoms else []

        def any_holds(rules: list[CustomRule], key: str, cols: Mapping[str, Any], s: str, y: str) -> bool:
            known = _Known({**cols, **_atom_values(facts, self.atoms, s, y, t0, t1)})
            return any(could_hold(c, known, 1)[0] for r in rules for c in watched(r, key))

        if any_holds(self.by_scope["portfolio"], "portfolio", dict(shared), "", ""):
            return True
        for scope, names in (("strategy", sorted(account.rules.strategies)), ("symbol", sorted(account.kernels))):
            for name in names if self.by_scope[scope] else ():
                cols = {**shared, **_quiet_fields(account, scope, name, shared, t0, t1)}
                if any_holds(self.by_scope[scope], name, cols, *((name, "") if scope == "strategy" else ("", name))):
                    return True
        return False

    def forget(self, position_id: str) -> None:
        """Drop the decisions about a position that closed, and count its close in the windowed counters
        (read from the book at the next post, before any context is built)."""
        if self:  # counted while custom rules run (each post drains the list)
            self.closing.append(position_id)
        if self.posted:
            self.posted = {k for k in self.posted if k[1] != position_id}

    def _count_closes(self, account: Account) -> None:
        for pid in self.closing:
            p = account.book.positions.get(pid)
            if p is None or p.is_open:
                continue
            last = p.fills[-1] if p.fills else None
            ts = last.ts if last is not None else int(p.closed_ts or p.opened_ts)
            conv = account.converter
            notional = conv.notional(p.symbol, p.entry, p.volume0) if conv.known(p.symbol) else 0.0
            self.closes.add(closed(ts, p.strategy_type, p.symbol, last.rule if last else "", p.realized_pnl, notional))
        self.closing.clear()

    def fire(self, account: Account, t: Tick) -> Iterator[Fired]:
        """Post the contexts of event ``t`` whose custom conditions may hold (or may stop holding, for a
        latched subject), in one batch; yield what durable-rules decided, in order."""
        yield from self.fire_at(account, t.ts, t)

    def fire_at(self, account: Account, ts: int, t: Tick | None = None, *, at_last_quotes: bool = False) -> Iterator[Fired]:
        """Like ``fire``, for an event at ``ts`` that is no tick (then no tick fields, and no position context
        unless ``at_last_quotes``: time passing, a clock event, evaluates every position at its symbol's last quote)."""
        self._count_closes(account)
        if self.latched is None:
            self._refresh(account)
        self.closes.prune(ts)
        base = self.portfolio_context(account, t, ts)
        quotes = [t] if t is not None else [Tick(ts, y, k.bid, k.ask) for y, k in sorted(account.kernels.items())
                                             if at_last_quotes and k.n and math.isfinite(k.bid)]
        # time passing alone changes only the outcome of the rules that read it (the others held as they hold)
        scoped = self.timed if at_last_quotes else self.by_scope
        contexts = [c for q in quotes for c in self._positions(account, q, base, scoped["position"])]
        subjects, now = self._subjects(account, base, scoped)
        if not (contexts or now):
            return  # no rule may act with the facts as they are, so no fact changes on this event either
        contexts += subjects
        if self.next_expiry is not None and ts >= self.next_expiry:
            # an expired fact matches nothing; freed before a post, so a replay that skips quiet quotes
            # (on which nothing is posted) holds the same facts
            account.portfolio.expire(account.version, ts)
        fired = account.portfolio.post_contexts(account.version, contexts)
        self._refresh(account)
        yield from fired

    def _refresh(self, account: Account) -> None:
        """Read back from durable-rules what the rules latched, and when the first desk fact expires."""
        facts = account.portfolio.facts(account.version)
        latches = {(f["rule"], f["key"]) for f in facts if f.get("t") == "latch"}
        names = {r.name for r in self.position}
        self.posted = {k for k in latches if k[0] in names}
        self.latched = latches - self.posted
        self.next_expiry = min((int(f["until"]) for f in facts if f.get("t") == "fact"), default=None)

    def _wanted(self, rule: CustomRule, key: str, ctx: Mapping[str, Any], facts: Mapping[str, bool] | None) -> bool:
        latched = self.latched is not None and (rule.name, key) in self.latched
        return may_fail(rule.when, ctx, facts) if latched else may_hold(rule.when, ctx, facts)

    def _subjects(self, account: Account, base: LazyColumns,
                  scoped: Mapping[str, list[CustomRule]]) -> tuple[list[tuple[str, Mapping[str, Any]]], bool]:
        """The strategy, symbol and portfolio contexts a rule may fire or re-arm on, for some state of
        the facts (a rule may change them on this event), and whether one may with the facts as they are."""
        facts = account.portfolio.facts(account.version) if self.atoms else []
        ts = base["ts"]
        subjects: list[tuple[str, str, Mapping[str, Any], str, str]] = [
            *(("strategy", n, LazyColumns({**base.scalars}, {**base.makers, **_strategy_makers(account, n, ts)}), n, "")
              for n in (sorted(account.rules.strategies) if scoped["strategy"] else ())),
            *(("symbol", y, LazyColumns({**base.scalars, **symbol_context(account, y, ts)}, base.makers), "", y)
              for y in (sorted(account.kernels) if scoped["symbol"] else ())),
            *((("portfolio", "portfolio", base, "", ""),) if scoped["portfolio"] else ()),
        ]
        out: list[tuple[str, Mapping[str, Any]]] = []
        now = False
        for scope, key, ctx, s, y in subjects:
            if any(self._wanted(r, key, ctx, None) for r in scoped[scope]):
                out.append((scope, dict(ctx)))
                known = _atom_values(facts, self.atoms, s, y, ts, ts)
                now = now or any(self._wanted(r, key, ctx, known) for r in scoped[scope])
        return out, now

    def _positions(self, account: Account, t: Tick, base: LazyColumns,
                   rules: list[CustomRule]) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """The contexts of the positions of ``t``'s symbol whose condition may hold and that no rule latched."""
        kernel = account.kernels[t.symbol]
        if not rules or not kernel.n:
            return
        lazy = kernel.columns(t.ts, self.fields, account.converter.scale(t.symbol))
        columns = LazyColumns(base.scalars, {**base.makers, **lazy.makers, **self._strategy_columns(account, kernel, t.ts)})
        candidates: set[int] = set()
        for rule in rules:
            held = np.zeros(kernel.n, dtype=bool)
            for residual in self.exist[rule.name]:
                held |= np.full(kernel.n, residual) if isinstance(residual, bool) else mask(residual, columns, kernel.n, normalized=True)
            candidates.update(i for i in np.flatnonzero(held).tolist() if (rule.name, kernel.ids[i]) not in self.posted)
        for i in sorted(candidates):
            p = account.book.positions[kernel.ids[i]]
            yield "position", defined({**dict(base), **position_context(account, p, t)})

    def portfolio_context(self, account: Account, t: Tick | None, ts: int | None = None) -> LazyColumns:
        """The portfolio, tick (of a tick event) and clock fields at ``ts`` (default: the tick's time);
        the costly ones (exposure) only when read. ``portfolio.halted`` is a fact atom: never a field."""
        if ts is None:
            if t is None:
                raise ValueError("expected a tick or a time, found neither")
            ts = t.ts
        equity = account.equity
        start = account.day.start_equity
        peak = account.peak_equity
        minute = ts // 60_000
        if self._clock[0] != minute:
            dt = datetime.fromtimestamp(minute * 60, tz=UTC)
            self._clock = (minute, {"clock.weekday": WEEKDAYS[dt.weekday()], "clock.hour": dt.hour, "clock.minute": dt.minute,
                                    "clock.session": account.rules.instruments.session_at(minute * 60_000)})

        def exposure() -> float:
            gross = sum(account.converter.notional(p.symbol, p.entry, p.volume) for p in account.book.open_positions())
            return gross / equity if equity > 0 else 0.0

        tick = {} if t is None else {"tick.symbol": t.symbol, "tick.bid": t.bid, "tick.ask": t.ask,
                                     "tick.mid": (t.bid + t.ask) / 2, "tick.spread": t.ask - t.bid}
        return LazyColumns({
            "ts": ts,
            "portfolio.equity": equity,
            "portfolio.daily_pnl": equity - start,
            "portfolio.daily_return": (equity - start) / start if start > 0 else 0.0,
            "portfolio.open_positions": account.book.n_open,
            "portfolio.drawdown": (peak - equity) / peak if peak > 0 else 0.0,
            **tick,
            **self._clock[1],
        }, {"portfolio.exposure": exposure})

    def _strategy_columns(self, account: Account, kernel: SymbolBook, ts: int) -> dict[str, Callable[[], Any]]:
        """Makers of the ``strategy.*`` fields (and ``position.strategy_name``) the position rules read."""
        makers: dict[str, Callable[[], Any]] = {}
        if any(f.startswith("symbol.") for f in self.fields):
            own = functools.cache(lambda: symbol_context(account, kernel.symbol, ts))
            makers.update({f: functools.partial(lambda f: own()[f], f) for f in self.fields if f.startswith("symbol.")})
        if "position.strategy_name" in self.fields:
            makers["position.strategy_name"] = lambda: np.array(
                [account.book.positions[pid].strategy_name for pid in kernel.ids], dtype=object)
        wanted = [f for f in self.fields if f.startswith("strategy.")]
        if wanted:
            per = functools.cache(lambda: {name: strategy_context(account, name, ts) for name in set(kernel.strategies)})
            for f in wanted:
                makers[f] = functools.partial(
                    lambda f: np.array([per()[name][f] for name in kernel.strategies],
                                       dtype=object if f == "strategy.name" else np.float64), f)
        return makers


_STRATEGY_FIELDS = tuple(f for f in FIELDS if f.startswith("strategy."))


def _strategy_makers(account: Account, name: str, ts: int) -> dict[str, Callable[[], Any]]:
    own = functools.cache(lambda: strategy_context(account, name, ts))
    return {f: functools.partial(lambda f: own()[f], f) for f in _STRATEGY_FIELDS}


def _atom_values(facts: list[dict[str, Any]], atoms: frozenset[str], s: str, y: str, t0: int, t1: int) -> dict[str, Any]:
    """The fact atoms of a subject (strategy ``s``, symbol ``y``) over quiet quotes from ``t0`` to ``t1``:
    only a rule firing changes a fact there, but one may expire (then unknown: None)."""
    out: dict[str, Any] = {}
    for atom in atoms:
        name = fact_name(atom)
        if name is None:
            out[atom] = any(f.get("t") == "halt" for f in facts)
            continue
        live = [f for f in facts if f.get("t") == "fact" and f.get("name") == name and f.get("until", 0) > t0
                and f.get("strategy") in ("", s) and f.get("symbol") in ("", y)]
        out[atom] = None if any(f["until"] <= t1 for f in live) else bool(live)
    return out


class _Known(dict[str, Any]):
    """Fields whose value None is unknown (anything may hold)."""

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key) and self[key] is not None


def _quiet_fields(account: Account, scope: str, name: str, shared: Mapping[str, Any], t0: int, t1: int) -> dict[str, Any]:
    """The fields of a strategy or symbol over quiet quotes from ``t0`` to ``t1``: exact where a quote
    without a hit cannot change them, bounds for the windowed counters (closes only leave the window),
    None (unknown) where they move with the price."""
    late, early = account.custom.closes.fields(t1, scope, name), account.custom.closes.fields(t0, scope, name)
    out: dict[str, Any] = {f"{scope}.{k}": Interval(min(late[k], early[k]), max(late[k], early[k])) for k in late}
    if scope == "symbol":
        kernel = account.kernels.get(name)
        return {**out, "symbol.name": name, "symbol.open_positions": kernel.n if kernel is not None else 0}
    lo, hi = _equity_bounds(account, name, shared)
    peak = max(account.strategy_curves.get(name) or [], default=-math.inf)
    start = account.day.start_equity
    pad = 1e-9 * (abs(lo) + abs(hi)) + 1e-9
    fixed = account.strategy_equity(name) - account.book.realized(name) - account.unrealized(name)  # the allocation
    return {**out, "strategy.name": name, "strategy.open_positions": account.book.open_count.get(name, 0),
            "strategy.realized_pnl": account.book.realized(name),
            "strategy.allocation": account.rules.strategies[name].allocation.target if name in account.rules.strategies else 0.0,
            "strategy.daily_pnl": Interval(lo - fixed - pad, hi - fixed + pad),
            "strategy.daily_return": Interval((lo - fixed - pad) / start, (hi - fixed + pad) / start) if start else None,
            "strategy.open_risk": None,  # moves with the equity
            "strategy.drawdown": Interval(_drawdown_at(peak, hi) - pad, _drawdown_at(peak, lo) + pad)}


def _drawdown_at(peak: float, now: float) -> float:
    top = max(peak, now)
    return (top - now) / top if top > 0 else 0.0


def _equity_bounds(account: Account, name: str, shared: Mapping[str, Any]) -> tuple[float, float]:
    """The bounds of strategy ``name``'s equity over quiet quotes of ``tick.symbol`` within ``tick.bid``/``tick.ask``."""
    now = account.strategy_equity(name)
    kernel = account.kernels.get(str(shared.get("tick.symbol")))
    if kernel is None or name not in kernel.strategies[: kernel.n]:
        return now, now
    mine = np.array([s == name for s in kernel.strategies[: kernel.n]])
    side, entry, vol = kernel.side[: kernel.n][mine], kernel.entry[: kernel.n][mine], kernel.vol[: kernel.n][mine]
    scale = account.converter.scale(kernel.symbol)

    def ends(col: Any) -> tuple[float, float]:
        return (float(col.lo), float(col.hi)) if isinstance(col, Interval) else (float(col), float(col))

    (blo, bhi), (alo, ahi) = ends(shared["tick.bid"]), ends(shared["tick.ask"])
    u_now = side * (np.where(side > 0, kernel.bid, kernel.ask) - entry) * vol * scale
    u1 = side * (np.where(side > 0, blo, ahi) - entry) * vol * scale
    u2 = side * (np.where(side > 0, bhi, alo) - entry) * vol * scale
    base = now - float(u_now.sum())
    return base + float(np.minimum(u1, u2).sum()), base + float(np.maximum(u1, u2).sum())


def _drawdown(curve: list[float], now: float) -> float:
    """The fall of ``now`` from the peak of the sampled ``curve`` and ``now``, as a fraction of the peak."""
    peak = max(max(curve, default=now), now)
    return (peak - now) / peak if peak > 0 else 0.0


def symbol_context(account: Account, symbol: str, ts: int) -> dict[str, Any]:
    """The ``symbol.*`` fields of ``symbol`` at ``ts`` (epoch ms)."""
    kernel = account.kernels.get(symbol)
    return {"symbol.name": symbol, "symbol.open_positions": kernel.n if kernel is not None else 0,
            **{f"symbol.{k}": v for k, v in account.custom.closes.fields(ts, "symbol", symbol).items()}}


def strategy_context(account: Account, name: str, ts: int | None = None) -> dict[str, Any]:
    """The ``strategy.*`` fields of strategy ``name`` (the windowed counters at ``ts``, epoch ms; default: the last quote's)."""
    now = ts if ts is not None else (account.last_ts or 0)
    equity = account.equity
    day = account.book.realized(name) + account.unrealized(name)
    start = account.day.start_equity
    strategies = account.rules.strategies
    return {
        "strategy.name": name, "strategy.open_positions": account.book.open_count.get(name, 0),
        "strategy.realized_pnl": account.book.realized(name),
        "strategy.daily_pnl": day,
        "strategy.daily_return": day / start if start else 0.0,
        "strategy.open_risk": account.open_risk(name) / equity if equity > 0 else 0.0,
        "strategy.allocation": strategies[name].allocation.target if name in strategies else 0.0,
        "strategy.drawdown": _drawdown(account.strategy_curves.get(name) or [], account.strategy_equity(name)),
        **{f"strategy.{k}": v for k, v in account.custom.closes.fields(now, "strategy", name).items()},
    }


def position_context(account: Account, p: Position, t: Tick) -> dict[str, Any]:
    """The ``position.*`` fields of position ``p`` at tick ``t``, with its strategy's fields."""
    state = account.kernels[p.symbol].state(p.id)
    price = t.bid if p.side > 0 else t.ask
    profit = p.side * (price - p.entry) / p.entry
    return {
        "position.id": p.id, "position.symbol": p.symbol, "position.strategy_type": p.strategy_type,
        "position.strategy_name": p.strategy_name, "position.side": "long" if p.side > 0 else "short",
        "position.volume": p.volume, "position.entry_price": p.entry, "position.stop_loss": p.stop_loss,
        "position.take_profit": p.take_profit, "position.profit": profit,
        "position.pnl": account.converter.pnl(p.symbol, p.side, p.entry, price, p.volume),
        "position.r_multiple": profit / state.risk if state.risk and not math.isnan(state.risk) else None,
        "position.age_seconds": (t.ts - p.opened_ts) / 1000, "position.age": (t.ts - p.opened_ts) / 1000,
        "position.levels_hit": state.levels_hit,
        "position.trailing_armed": state.armed,
        **strategy_context(account, p.strategy_type, t.ts),
        **symbol_context(account, p.symbol, t.ts),
    }


def reads_time(rule: CustomRule) -> bool:
    """Whether time passing alone can change ``rule``'s outcome: it reads the clock, a position's age, a
    trailing window (``stop_outs_1h``, ``trades_24h``…) or a fact (facts expire)."""
    return any(f.startswith(("clock.", "position.age")) or f.endswith(("_1h", "_4h", "_24h")) or is_fact_atom(f)
               for f in fields_of(rule.when)) or bool(atoms_of(rule.when))


def defined(ctx: dict[str, Any]) -> dict[str, Any]:
    """Drop unknown values (a position without a stop has no ``position.stop_loss``): they never match."""
    return {k: v for k, v in ctx.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))}
