"""The evaluator: (rules, state, event) -> actions.

Per event, in this order (DESIGN section 4):

tick
    1. the daily/weekly resets of schedules.yaml that fall before the tick's own time;
    2. the kernel of the tick's symbol (stop, take profit, exit levels, trailing, dynamic SL/TP) and
       the fills of those actions (paper broker);
    3. revaluation of the book; the daily PnL is posted to the portfolio ruleset (durable-rules),
       whose breach rule chains into a halt fact, ``close_all`` and ``alert``;
    4. the custom rules of rules/custom.yaml, each at its scope (engine.rules.contexts): the contexts that
       may hold (a cheap pre-filter) go to durable-rules in one batch, which decides and latches.
position_opened (a proposal)
    pre-trade checks computed here (max positions, size, risk, correlation), decided in
    durable-rules together with the halt fact; accepted positions get the strategy's default SL/TP.
    A position_opened with ``existing`` (already open at the broker) is adopted without checks.
position_closed
    the position leaves the book at the given price (or the last quote).
fill, broker_positions (and position_closed)
    a broker's late report that it closed (part of) a position, booked like a synchronous fill (once per
    deal id), and its view of the open positions, reconciled with the book (engine.rules.reconcile);
    then the strategy, symbol and portfolio custom rules (a close moves their counters).
clock
    time passes without a quote: the resets due, the custom rules at every scope (positions at their
    last quote), then the max holding times due (engine.rules.timers.after), as after every event.
trading_state, flatten
    an operator's change of a trading state (which proposals meet), or closing positions (engine.rules.trading_state).

Portfolio actions follow the position actions of the same tick. Every action carries the rule that
fired and the rules version; ids are deterministic (see engine.actions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.actions import Action, action_id
from engine.book.capital import Capital
from engine.book.ledgers import Day, Ledger, Week
from engine.book.positions import Book, Position, Status
from engine.book.summary import summarize
from engine.book.valuation import Converter, OpenPnL, open_risk
from engine.config.lint import check_removed_strategies
from engine.config.load import RuleSet
from engine.events import BrokerAlert, BrokerPositions, Clock, Event, Fill, PositionClosed, PositionOpened, Tick
from engine.operator import Flatten, TradingStateChange
from engine.ports import Broker, FillReport
from engine.rules import acting, allocation, capital_checks, checks, decisions, levels, reconcile, timers, trading_state
from engine.rules._errors import ReloadRefused
from engine.rules.chaining import Fired, PortfolioRules
from engine.rules.contexts import CustomRules
from engine.rules.kernel import Hit, SymbolBook
from engine.rules.levels import PositionState
from engine.rules.params import compile_params
from engine.rules.resets import ResetClock
from engine.rules.volatility import Volatility

__all__ = ["Broker", "Engine", "FillReport"]  # Broker and FillReport live in engine.ports; re-exported for old importers

SAMPLE_MS = 60_000  # equity curve sampling period (see engine.book.metrics)

@dataclass
class Engine:
    """Owns the book, the kernels and the portfolio ruleset of one account. Its state is every attribute
    but ``rules``, ``portfolio``, ``broker`` and ``on_problem``; snapshots hold it as ``engine.rules.state`` records."""

    rules: RuleSet
    equity0: float = 100_000.0
    broker: Broker | None = None
    portfolio: PortfolioRules = field(default_factory=PortfolioRules)
    on_problem: Callable[[str], None] | None = None
    book: Book = field(init=False)
    seq: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.version = self.portfolio.load(self.rules)
        self.converter = Converter(self.rules.instruments)
        self.book = Book(self.converter)
        self.params = compile_params(self.rules.strategies)
        self.codes: dict[str, int] = {name: i for i, name in enumerate(sorted(self.rules.strategies))}
        self.open_pnl = OpenPnL(len(self.codes))
        self.last_ts: int | None = None  # the time of the last quote applied (epoch ms)
        self.custom = CustomRules(self.rules)
        self.kernels: dict[str, SymbolBook] = {}
        self.vols: dict[str, Volatility] = {}
        self.quotes: dict[str, tuple[float, float]] = {}
        lim = self.rules.limits.max_correlation
        self._bar_ms, self._bar_window = checks.timeframe_ms(lim.timeframe), lim.window
        self.bars: dict[str, checks.Bars] = {}
        self.resets = ResetClock(self.rules.schedules)
        self.deadlines = timers.Deadlines()  # max holding times (derived: rebuilt from the book and the rules)
        self.pending: set[str] = set()  # open positions the engine closed whose fill has not come back (derived)
        self.day = Day(start_equity=self.equity0)
        self.week = Week(start_equity=self.equity0)
        self.peak_equity = self.equity0
        self.capital = Capital()  # the strategies' capital base, moved by rebalancing (engine.rules.allocation)
        self.outside: set[str] = set()  # strategies whose capital share is outside its band (alerted once)
        self.ledgers: dict[str, Ledger] = {name: Ledger() for name in self.rules.strategies}
        self.curve: list[tuple[int, float]] = []
        self.strategy_curves: dict[str, list[float]] = {name: [] for name in self.rules.strategies}
        self.counts = {"events": 0, "ticks": 0, "proposals": 0, "rejected": 0, "breaches": 0, "actions": 0}
        self.states = trading_state.TradingStates()  # the operators' trading states

    # --- state ------------------------------------------------------------------------------------

    @property
    def equity(self) -> float:
        """The starting equity plus the realized and open PnL, in the account currency."""
        return self.equity0 + self.book.realized() + self.unrealized()

    def unrealized(self, strategy: str | None = None) -> float:
        """Open PnL at the last quotes, in the account currency (of one strategy, or all), with the positions
        whose close is pending at the broker (still held until their fill comes back)."""
        code = self.codes.get(strategy) if strategy is not None else None
        managed = self.open_pnl.of() if strategy is None else self.open_pnl.of(code) if code is not None else 0.0
        return managed + sum(self._pending_pnl(self.book.positions[pid]) for pid in self.pending
                             if strategy is None or self.book.positions[pid].strategy_type == strategy)

    def _pending_pnl(self, p: Position) -> float:
        bid, ask = self.quotes.get(p.symbol, (math.nan, math.nan))
        price = bid if p.side > 0 else ask
        return self.converter.pnl(p.symbol, p.side, p.entry, price, p.volume) if math.isfinite(price) else 0.0

    def strategy_equity(self, name: str) -> float:
        """A strategy's equity: its configured target of the starting equity plus its realized and open PnL."""
        alloc = self.rules.strategies[name].allocation.target * self.equity0 if name in self.rules.strategies else 0.0
        return alloc + self.book.realized(name) + self.unrealized(name)

    def open_risk(self, strategy: str) -> float:
        """What the open positions of ``strategy`` lose if every stop is hit, in the account currency."""
        return open_risk(self.converter, self.book.open_positions(strategy))

    def revalue(self, symbol: str) -> None:
        """Revalue the open positions of ``symbol`` at its last quote."""
        self.open_pnl.revalue(symbol, self.kernels[symbol].unrealized(len(self.codes)), self.converter.scale(symbol))

    def kernel(self, symbol: str) -> SymbolBook:
        """The kernel of ``symbol``'s open positions (made, with its volatility, on first use)."""
        if symbol not in self.kernels:
            self.kernels[symbol] = SymbolBook(symbol, self.params, codes=self.codes, instrument=self.converter.spec(symbol))
            windows = sorted({w for p in self.params.values() for w in p.windows})
            self.vols[symbol] = Volatility(tuple(windows))
        return self.kernels[symbol]

    # --- events -----------------------------------------------------------------------------------

    def process(self, event: Event, seq: int | None = None) -> list[Action]:
        """Apply one event; return the actions it produced, in order."""
        self.seq = self.seq + 1 if seq is None else seq
        self.counts["events"] += 1
        out: list[Action] = []
        if isinstance(event, Tick):
            self._on_tick(event, out)
        elif isinstance(event, PositionOpened):
            self._on_proposal(event, out)
        elif isinstance(event, PositionClosed):
            self._on_closed(event, out)
        elif isinstance(event, (Fill, BrokerPositions)):
            self._on_broker(event, out)
        elif isinstance(event, (TradingStateChange, Flatten)):
            trading_state.apply(self, event, out)
        elif isinstance(event, Clock) and (self.last_ts is None or event.ts >= self.last_ts):
            self._roll(event.ts)
        elif isinstance(event, BrokerAlert):
            self.emit(out, *decisions.broker_alert(event), execute=False)
        for fired in timers.after(self, event):  # custom rules on broker reports and clock events, max holding times
            self.act(event.ts, fired, out)
        self.pending.update(pid for a in out if a.type in ("close", "close_all") for pid in timers.closed_ids(a)
                            if self.book.positions[pid].is_open)
        trading_state.after(self, event.ts, out)
        self.counts["actions"] += len(out)
        return out

    def emit(self, out: list[Action], ts: int, type_: str, position_id: str | None, strategy: str | None,
              params: dict[str, Any], rule: str, reason: str, *, execute: bool = True) -> Action:
        """Append an action; with a synchronous broker, book its fills before the next decision
        (``execute=False``: the book already reflects it)."""
        action = self._append(out, (ts, type_, position_id, strategy, params, rule, reason))
        if self.broker is not None and execute:
            self._settle(self.broker, action, out)
        return action

    def _append(self, out: list[Action], d: decisions.Decision) -> Action:
        ts, type_, position_id, strategy, params, rule, reason = d
        subject = position_id or strategy or "portfolio"
        action = Action(action_id(self.version, self.seq, subject, type_, rule, len(out)), ts, type_, position_id,
                        strategy, params, rule, self.version, reason)
        out.append(action)
        return action

    def _settle(self, broker: Broker, action: Action, out: list[Action]) -> None:
        """Hand ``action`` to the broker and book the fills it reports; a fill's gain is locked
        (``lock_profit``), and that action goes to the broker in turn: a queue, worked in order."""
        pending = [action]
        while pending:
            sent = pending.pop(0)
            fills = broker.execute(sent, self.quotes)
            reconcile.requested(self, sent, fills)  # a close whose fill comes later: in flight until it does
            for fill in fills:
                follow = self.book_fill(fill, fill.deal)
                if follow is not None:
                    pending.append(self._append(out, follow))

    def _on_tick(self, t: Tick, out: list[Action]) -> None:
        if not self.converter.known(t.symbol):
            self.problem(f"tick for unknown symbol {t.symbol!r} ignored: add it to rules/instruments.yaml")
            return
        self.counts["ticks"] += 1
        self._roll(t.ts)
        self.quotes[t.symbol] = (t.bid, t.ask)
        self.converter.update(t.symbol, t.bid, t.ask)
        kernel = self.kernel(t.symbol)
        self.bars.setdefault(t.symbol, checks.Bars(self._bar_ms, self._bar_window)).update(t.ts, (t.bid + t.ask) / 2)
        for hit in kernel.on_quote(t.bid, t.ask, self.vols[t.symbol], t.ts):  # volatility update and quote in one call
            self._hit_action(t.ts, hit, out)
        self.revalue(t.symbol)
        self.last_ts = t.ts
        self._portfolio_rules(t, out)
        self._sample(t.ts)

    def advance_quiet(self, symbol: str, n: int, last: Tick, before: Tick | None, open_pnl: np.ndarray, sample: bool) -> None:
        """Account for ``n`` quiet quotes of ``symbol`` a replay applied to the kernel (``engine.rules.batch``):
        what ``_on_tick`` changes besides it. ``before``: the quote before ``last`` when ``last`` opened a
        bar; ``open_pnl``: the symbol's open PnL after them; ``sample``: ``last`` may open a sampling period."""
        self.seq += n
        self.counts["events"] += n
        self.counts["ticks"] += n
        self.quotes[symbol] = (last.bid, last.ask)
        self.converter.update(symbol, last.bid, last.ask)
        bars = self.bars[symbol]
        if before is not None:
            bars.update(before.ts, (before.bid + before.ask) / 2)
        bars.update(last.ts, (last.bid + last.ask) / 2)
        self.open_pnl.by_symbol[symbol] = open_pnl
        self.last_ts = last.ts
        if sample:
            self._sample(last.ts)

    def _hit_action(self, ts: int, hit: Hit, out: list[Action]) -> None:
        p = self.book.positions[hit.position_id]
        decision = decisions.of_hit(ts, p, hit)  # worded before a move changes the position's level
        if hit.kind in ("set_stop_loss", "set_take_profit"):
            self.book.move(p.id, ts, "stop_loss" if hit.kind == "set_stop_loss" else "take_profit", hit.price, hit.rule, self.version)
        self.emit(out, *decision)

    def book_fill(self, fill: FillReport, deal: str | None = None) -> decisions.Decision | None:
        """Book a fill (``deal``: the broker's deal id, when known); return the ``lock_profit`` it leads to, if any."""
        p = self.book.positions.get(fill.position_id)
        if p is None or not p.is_open or (deal is not None and p.booked(deal)):  # a deal is booked once, whoever reports it
            return None
        pnl = self.book.fill(p.id, fill.ts, fill.volume, fill.price, fill.rule, self.version, deal)
        kernel = self.kernels.get(p.symbol)
        if not p.is_open:
            self.pending.discard(p.id)
            if kernel is not None and p.id in kernel.ids:
                kernel.remove(p.id)
            if kernel is not None:
                p.time_in_profit_ms = kernel.removed_time_in_profit.pop(p.id, p.time_in_profit_ms)
            self.portfolio.forget_position(self.version, p.id)
            self.custom.forget(p.id)
        if kernel is not None:
            self.revalue(p.symbol)
        return self._lock_profit(p, fill.ts, pnl)

    def _lock_profit(self, p: Position, ts: int, pnl: float) -> decisions.Decision | None:
        prof = self.rules.profit
        if not prof.enabled or p.strategy_type not in self.ledgers:
            return None
        split = self.rules.strategies[p.strategy_type].profit_locking or prof.split
        amounts = self.ledgers[p.strategy_type].book(pnl, split)
        if amounts is None:
            return None
        return decisions.lock_profit(ts, p, pnl, amounts, split)

    # --- portfolio --------------------------------------------------------------------------------

    def _roll(self, ts: int) -> None:
        daily, weekly = self.resets.advance(ts)
        if not self.day.key:
            self.day = Day.starting(ts, self.equity)
        if not self.week.key or weekly:
            self.week = Week.starting(ts, self.equity)
        if daily:
            self.day = Day.starting(ts, self.equity)
            self.portfolio.reset_day(self.version, self.day.key)
        if weekly:
            for ledger in self.ledgers.values():
                ledger.new_week()

    def _portfolio_rules(self, t: Tick, out: list[Action]) -> None:
        equity = self.equity
        self.peak_equity = max(self.peak_equity, equity)
        pnl = equity - self.day.start_equity
        pnl_pct = pnl / self.day.start_equity if self.day.start_equity > 0 else 0.0
        # Pre-filter: only a PnL beyond the limit can fire the breach rule; durable-rules decides
        # (once per day, through its breach fact), within the limit there is nothing to post.
        beyond = pnl_pct <= -self.rules.limits.daily_loss.max and not self.day.breached
        for fired in (self.portfolio.post_daily_pnl(self.version, self.day.key, pnl, pnl_pct, t.ts) if beyond else ()):
            if fired.type == "halt_new_positions" and not self.day.breached:
                self.day.breached = True
                self.counts["breaches"] += 1
            self.act(t.ts, fired, out)
        for fired in allocation.watch(self, t.ts):  # capital shares outside their bands, the weekly target
            self.act(t.ts, fired, out)
        if self.custom:
            for fired in self.custom.fire(self, t):
                self.act(t.ts, fired, out)

    def act(self, ts: int, fired: Fired, out: list[Action]) -> None:
        """Carry out what a rule decided (durable-rules, or a max holding time) at ``ts``, appending to ``out``
        (``engine.rules.acting``)."""
        acting.act(self, ts, fired, out)

    # --- proposals --------------------------------------------------------------------------------

    def check(self, e: PositionOpened) -> checks.PreTrade:
        """Run the pre-trade checks of proposal ``e`` against the account now (changes nothing); the
        symbol's last quote (as the tick and the batch paths leave it in its kernel) for the quote checks."""
        kernel = self.kernels.get(e.symbol)
        quotes = {e.symbol: (kernel.last_ts, kernel.bid, kernel.ask)} if kernel is not None and kernel.last_ts is not None else {}
        return checks.check_proposal(e, self.rules, self.converter, self.book, self.bars, self.equity, quotes,
                                     capital_checks.Capacity(self))

    def _on_proposal(self, e: PositionOpened, out: list[Action]) -> None:
        self.counts["proposals"] += 1
        self._roll(e.ts)
        if e.position_id in self.book.positions:
            self.problem(f"position {e.position_id!r} already exists; duplicate position_opened ignored")
            return
        if e.existing:
            self._on_existing(e, out)
            return
        proposed = 0.0 if math.isnan(e.volume) else e.volume  # a proposal to size holds nothing until it is sized
        pos = Position(e.position_id, e.symbol, e.strategy_type, e.strategy_name, e.side, proposed, e.entry_price, e.ts)
        self.book.propose(pos, self.version)
        result = self.check(e)
        reasons = (refused := trading_state.refusals(self, e)) + result.reasons  # the trading states first, then the checks
        fired = self.portfolio.post_proposal(self.version, {
            "ts": e.ts, "id": e.position_id, "strategy": e.strategy_type, "symbol": e.symbol, "n_failed": len(reasons),
            "reasons": reasons,
        })
        rejects = [f for f in fired if f.type == "reject_position"]
        if rejects:
            all_reasons = decisions.reasons_of(rejects)
            self.counts["rejected"] += 1
            self.book.reject(e.position_id, e.ts, self.version, all_reasons)
            rule = trading_state.RULE if refused and rejects[0].rule == "pre_trade" else rejects[0].rule
            self.emit(out, e.ts, "reject_position", e.position_id, e.strategy_type, {"reasons": all_reasons}, rule, "; ".join(all_reasons))
            return
        volume, stop, tp, resized_from = result.volume, result.stop_loss, result.take_profit, result.resized_from
        entry = e.entry_price if math.isnan(result.entry_price) else result.entry_price
        pos.volume0 = pos.volume = volume
        pos.entry = entry
        self.book.accept(e.position_id, e.ts, stop, tp, self.version, "passed the pre-trade checks")
        self.deadlines.add(pos, self.rules.strategies.get(e.strategy_type))
        self.kernel(e.symbol).add(e.position_id, e.strategy_type, e.side, entry, volume, stop, tp, e.ts)
        if resized_from is not None:
            by = result.resized_by or "max_position_size"
            self.emit(out, *decisions.resized(e.ts, pos, resized_from, volume, entry, by), execute=False)
        if result.sizing is not None:
            self.emit(out, e.ts, "size_position", e.position_id, e.strategy_type, result.sizing, "sizing",
                       f"sized at {volume:.10g} lots: {result.sizing['how']}", execute=False)
        self._emit_defaults(e, stop, tp, "", out)
        for f in fired:
            if f.type == "alert":
                self.act(e.ts, f, out)

    def _on_existing(self, e: PositionOpened, out: list[Action]) -> None:
        """Take over a position already open at the broker: no pre-trade checks, default SL/TP if it has none."""
        strategy = self.rules.strategies.get(e.strategy_type)
        if strategy is None or not self.converter.known(e.symbol):
            what = f"unknown strategy {e.strategy_type!r}" if strategy is None else f"unknown symbol {e.symbol!r}"
            self.problem(f"existing position {e.position_id!r} not managed: {what}")
            return
        stop, tp = checks.default_levels(e, strategy.defaults, self.converter.spec(e.symbol))
        volume0 = e.volume0 if e.volume0 is not None and e.volume0 > e.volume else e.volume
        pos = Position(e.position_id, e.symbol, e.strategy_type, e.strategy_name, e.side, volume0, e.entry_price, e.ts)
        pos.stop_loss, pos.take_profit = stop, tp
        state = levels.taken_over(e, strategy, volume0, stop, tp, self.converter.spec(e.symbol))
        self.adopt(pos, state)
        if state is not None:
            pos.volume = e.volume
            pos.status = Status.PARTIALLY_CLOSED
        self._emit_defaults(e, stop, tp, " (position taken over)", out)

    def _emit_defaults(self, e: PositionOpened, stop: float, tp: float, note: str, out: list[Action]) -> None:
        """Tell the broker the default stop and target of a position that came without them."""
        for d in decisions.defaults(e, stop, tp, self.rules.strategies[e.strategy_type].defaults, note):
            self.emit(out, *d)

    def _on_closed(self, e: PositionClosed, out: list[Action]) -> None:
        self._on_broker(e, out)

    def _on_broker(self, e: PositionClosed | Fill | BrokerPositions, out: list[Action]) -> None:
        """Book what the broker reports (engine.rules.reconcile); its ``reconcile`` actions never go to the broker."""
        for d in reconcile.outside(self, e):
            self.emit(out, *d, execute=d[1] != "reconcile")

    # --- reload, summary ------------------------------------------------------------------------

    def adopt(self, p: Position, state: PositionState | None = None) -> None:
        """Take over an open position without pre-trade checks (a restart, or positions found at the broker).

        ``state`` carries the managed state (best price, levels hit, stops) when it is known.
        """
        self.book.positions[p.id] = p
        self.book.accept(p.id, p.opened_ts, p.stop_loss, p.take_profit, self.version, "adopted")
        self.deadlines.add(p, self.rules.strategies.get(p.strategy_type))
        kernel = self.kernel(p.symbol)
        if state is not None:
            kernel.restore(state)
        else:
            kernel.add(p.id, p.strategy_type, p.side, p.entry, p.volume, p.stop_loss, p.take_profit, p.opened_ts)

    def reload(self, rules: RuleSet) -> None:
        """Swap in new rules between two events; open positions keep their managed state.

        The portfolio facts (breaches, halts, latches) move to the new version and the old version is
        dropped: no later event uses it. Raises ``ReloadRefused`` (nothing changed) if a strategy removed has open positions.
        """
        if reasons := check_removed_strategies(self.rules.strategies, rules.strategies, self.book.open_ids()):
            raise ReloadRefused("; ".join(reasons))
        old = self.version
        version = self.portfolio.load(rules)
        if version != old:
            self.portfolio.restore_facts(version, self.portfolio.facts(old))
            self.portfolio.drop(old)
        self.rules, self.version = rules, version
        self.params = compile_params(rules.strategies)
        horizons = tuple({w for p in self.params.values() for w in p.windows})  # a new horizon starts empty, the others keep theirs
        self.vols = {symbol: vol.including(horizons) for symbol, vol in self.vols.items()}
        self.converter.instruments = rules.instruments  # a reload may add a symbol or change a grid
        for symbol, kernel in self.kernels.items():
            kernel.reload(self.params, self.converter.spec(symbol) if self.converter.known(symbol) else None)
        for name in rules.strategies:
            self.ledgers.setdefault(name, Ledger())
            self.strategy_curves.setdefault(name, [])
        for name in sorted(rules.strategies):
            self.codes.setdefault(name, len(self.codes))
        self.custom.reload(rules)
        self.deadlines.rebuild(self.book.open_positions(), rules.strategies)

    def _sample(self, ts: int, force: bool = False) -> None:
        """Record the equity curves at the first event of each sampling period (and at the end)."""
        if not force and self.curve and ts // SAMPLE_MS == self.curve[-1][0] // SAMPLE_MS:
            return
        self.curve.append((ts, self.equity))
        for name, curve in self.strategy_curves.items():
            curve.append(self.strategy_equity(name))

    def problem(self, message: str) -> None:
        """Tell ``on_problem`` (the service's log) of input the engine could not act on, in words."""
        if self.on_problem is not None:
            self.on_problem(message)

    def summary(self) -> dict[str, Any]:
        """Return per-strategy and portfolio metrics, and per-position results (engine.book.summary)."""
        if self.curve and self.last_ts is not None and self.curve[-1][0] != self.last_ts:
            self._sample(self.last_ts, force=True)
        for p in self.book.open_positions():
            kernel = self.kernels[p.symbol]
            p.unrealized_pnl = self.converter.pnl(p.symbol, p.side, p.entry, kernel.bid if p.side > 0 else kernel.ask, p.volume)
            p.time_in_profit_ms = int(kernel.tip[kernel.ids.index(p.id)])
        return summarize(self.book, self.converter, equity=self.equity, unrealized=self.unrealized, curve=self.curve,
                         strategy_curves=self.strategy_curves, ledgers=self.ledgers, strategies=self.rules.strategies,
                         header={"rules_version": self.version, **self.counts})
