"""The evaluator: (rules, state, event) -> actions.

Per event, in this order (DESIGN section 4):

tick
    1. the daily/weekly resets of schedules.yaml that fall before the tick's own time;
    2. the kernel of the tick's symbol (stop, take profit, exit levels, trailing, dynamic SL/TP) and
       the fills of those actions (paper broker);
    3. revaluation of the book; the daily PnL is posted to the portfolio ruleset (durable-rules),
       whose breach rule chains into a halt fact, ``close_all`` and ``alert``;
    4. the custom rules of rules/custom.yaml: positions of the symbol whose condition holds (checked
       first in Python, a cheap pre-filter) are posted to durable-rules, which decides and latches;
       then the portfolio-wide custom rules.
position_opened (a proposal)
    pre-trade checks computed here (max positions, size, risk, correlation), decided in
    durable-rules together with the halt fact; accepted positions get the strategy's default SL/TP.
    A position_opened with ``existing`` (already open at the broker) is adopted without checks.
position_closed
    the position leaves the book at the given price (or the last quote).
fill
    a broker's late report that it closed (part of) a position: booked like a synchronous fill.
clock
    time passes without a quote: the resets that fall before it run (step 1 of a tick only).

Portfolio actions follow the position actions of the same tick. Every action carries the rule that
fired and the rules version; ids are deterministic (see engine.actions).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from engine.actions import Action, action_id
from engine.book.metrics import equity_metrics, max_drawdown, trade_metrics
from engine.book.pnl import Converter
from engine.book.positions import Book, Position, Status
from engine.config.conditions import fields_of, negation_normal_form
from engine.config.load import RuleSet
from engine.events import Clock, Event, Fill, PositionClosed, PositionOpened, Tick
from engine.rules import checks
from engine.rules.chaining import Fired, PortfolioRules
from engine.rules.kernel import Hit, PositionState, SymbolBook
from engine.rules.params import compile_params
from engine.rules.predicate import holds
from engine.rules.resets import ResetClock
from engine.rules.vector import LazyColumns, mask
from engine.rules.volatility import Volatility

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SAMPLE_MS = 60_000  # equity curve sampling period (see engine.book.metrics)


@dataclass(frozen=True)
class FillReport:
    """A broker's report that (part of) a position was closed at a price."""

    position_id: str
    ts: int
    volume: float
    price: float
    rule: str
    action_id: str | None = None  # the action it fills, when the broker knows it


class Broker(Protocol):
    """Carries out actions; a synchronous broker (the paper broker) reports fills at once."""

    def execute(self, action: Action, quotes: dict[str, tuple[float, float]]) -> list[FillReport]: ...


@dataclass
class _Ledger:
    """Profit-locking buckets of one strategy (realized PnL split by the configured shares)."""

    big_trades: float = 0.0
    weekly_target: float = 0.0
    compound: float = 0.0
    week_realized: float = 0.0


@dataclass
class _Day:
    key: str = ""
    start_equity: float = 0.0
    breached: bool = False


@dataclass
class Engine:
    """Owns the book, the kernels and the portfolio ruleset of one account."""

    rules: RuleSet
    equity0: float = 100_000.0
    broker: Broker | None = None
    portfolio: PortfolioRules | None = None
    on_problem: Callable[[str], None] | None = None
    book: Book = field(init=False)
    seq: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.portfolio = self.portfolio or PortfolioRules()
        self.version = self.portfolio.load(self.rules)
        self.converter = Converter(self.rules.instruments)
        self.book = Book(self.converter)
        self.params = compile_params(self.rules.strategies)
        self.codes: dict[str, int] = {name: i for i, name in enumerate(sorted(self.rules.strategies))}
        self._unreal: dict[str, np.ndarray] = {}  # symbol -> open PnL per strategy code, account currency
        self._unreal_total = np.zeros(len(self.codes))
        self._last_ts: int | None = None
        self._clock: tuple[int, dict[str, Any]] = (-1, {})
        self._posted: set[tuple[str, str]] = set()  # (rule, position) already decided by durable-rules
        self.kernels: dict[str, SymbolBook] = {}
        self.vols: dict[str, Volatility] = {}
        self.quotes: dict[str, tuple[float, float]] = {}
        lim = self.rules.limits.max_correlation
        self._bar_ms, self._bar_window = checks.timeframe_ms(lim.timeframe), lim.window
        self.bars: dict[str, checks.Bars] = {}
        self.resets = ResetClock(self.rules.schedules)
        self.day = _Day(start_equity=self.equity0)
        self.peak_equity = self.equity0
        self.ledgers: dict[str, _Ledger] = {name: _Ledger() for name in self.rules.strategies}
        self.curve: list[tuple[int, float]] = []
        self.strategy_curves: dict[str, list[float]] = {name: [] for name in self.rules.strategies}
        self.counts = {"events": 0, "ticks": 0, "proposals": 0, "rejected": 0, "breaches": 0, "actions": 0}
        self._split_custom()

    def _split_custom(self) -> None:
        rules = [r for r in self.rules.custom.rules if r.enabled]
        self._custom_position = [r for r in rules if any(f.startswith("position.") for f in fields_of(r.when))]
        self._custom_portfolio = [r for r in rules if r not in self._custom_position]
        # the pre-filter evaluates each condition in the negation normal form durable-rules uses
        self._nnf = {r.name: negation_normal_form(r.when) for r in rules}
        self._position_fields = frozenset(f for r in self._custom_position for f in fields_of(r.when))

    # --- state ------------------------------------------------------------------------------------

    @property
    def equity(self) -> float:
        return self.equity0 + self.book.realized() + self.unrealized()

    def unrealized(self, strategy: str | None = None) -> float:
        """Open PnL at the last quotes, in the account currency (of one strategy, or all)."""
        if strategy is None:
            return float(self._unreal_total.sum())
        code = self.codes.get(strategy)
        return float(self._unreal_total[code]) if code is not None and code < self._unreal_total.size else 0.0

    def _revalue(self, symbol: str) -> None:
        """Revalue one symbol's open positions; keep the per-strategy total current by difference."""
        kernel = self.kernels[symbol]
        spec = self.converter.spec(symbol)
        rate = self.converter.rate(spec.quote_currency)
        new = kernel.unrealized(len(self.codes)) * (spec.contract_size * (rate if not math.isnan(rate) else 0.0))
        old = self._unreal.get(symbol)
        if self._unreal_total.size < new.size:
            self._unreal_total = np.concatenate([self._unreal_total, np.zeros(new.size - self._unreal_total.size)])
        if old is not None:
            self._unreal_total[: old.size] -= old
        self._unreal_total[: new.size] += new
        self._unreal[symbol] = new

    def _strategy_equity(self, name: str) -> float:
        alloc = self.rules.strategies[name].allocation.target * self.equity0 if name in self.rules.strategies else 0.0
        return alloc + self.book.realized(name) + self.unrealized(name)

    def _kernel(self, symbol: str) -> SymbolBook:
        if symbol not in self.kernels:
            point = 10.0 ** -self.converter.spec(symbol).digits
            self.kernels[symbol] = SymbolBook(symbol, self.params, codes=self.codes, point=point)
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
        elif isinstance(event, Fill):
            self._on_fill(event, out)
        elif isinstance(event, Clock):
            if self._last_ts is None or event.ts >= self._last_ts:
                self._roll(event.ts, out)
        self.counts["actions"] += len(out)
        return out

    def _emit(self, out: list[Action], ts: int, type_: str, position_id: str | None, strategy: str | None,
              params: dict[str, Any], rule: str, reason: str, *, execute: bool = True) -> Action:
        """Append an action; with a synchronous broker, book its fills at once (``execute=False``: the
        book already reflects it)."""
        subject = position_id or strategy or "portfolio"
        action = Action(action_id(self.version, self.seq, subject, type_, rule, len(out)), ts, type_, position_id,
                        strategy, params, rule, self.version, reason)
        out.append(action)
        if self.broker is not None and execute:
            for fill in self.broker.execute(action, self.quotes):
                self._book_fill(fill, out)
        return action

    def _on_tick(self, t: Tick, out: list[Action]) -> None:
        if not self.converter.known(t.symbol):
            self._problem(f"tick for unknown symbol {t.symbol!r} ignored: add it to rules/instruments.yaml")
            return
        self.counts["ticks"] += 1
        self._roll(t.ts, out)
        self.quotes[t.symbol] = (t.bid, t.ask)
        self.converter.update(t.symbol, t.bid, t.ask)
        kernel = self._kernel(t.symbol)
        self.bars.setdefault(t.symbol, checks.Bars(self._bar_ms, self._bar_window)).update(t.ts, (t.bid + t.ask) / 2)
        for hit in kernel.on_quote(t.bid, t.ask, self.vols[t.symbol], t.ts):  # volatility update and quote in one call
            self._hit_action(t.ts, hit, out)
        self._revalue(t.symbol)
        self._last_ts = t.ts
        self._portfolio_rules(t, out)
        self._sample(t.ts)

    def _hit_action(self, ts: int, hit: Hit, out: list[Action]) -> None:
        p = self.book.positions[hit.position_id]
        if hit.kind == "close":
            reason = {"stop_loss": "stop", "trailing_stop": "trailing stop", "take_profit": "take profit"}[hit.rule]
            side = "bid" if p.side > 0 else "ask"
            level = p.stop_loss if hit.rule != "take_profit" else p.take_profit
            self._emit(out, ts, "close", p.id, p.strategy_type, {"price": hit.price, "volume": hit.volume, "reason": hit.rule},
                       hit.rule, f"{reason} {level:.6g} reached: {side} {hit.price:.6g}")
        elif hit.kind == "close_partial":
            level = int(hit.rule.rsplit(".", 1)[1])
            self._emit(out, ts, "close_partial", p.id, p.strategy_type,
                       {"volume": hit.volume, "fraction": hit.fraction, "price": hit.price, "level": level},
                       hit.rule, f"exit level {level + 1} reached: closing {hit.fraction:.4g} of the original volume at {hit.price:.6g}")
        else:
            what = "stop_loss" if hit.kind == "set_stop_loss" else "take_profit"
            self.book.move(p.id, ts, what, hit.price, hit.rule, self.version)
            by = {"trailing": "trailing stop", "dynamic_sltp": "dynamic SL/TP"}.get(hit.rule) or f"exit level {int(hit.rule.rsplit('.', 1)[1]) + 1}"
            self._emit(out, ts, hit.kind, p.id, p.strategy_type, {what: hit.price, "previous": hit.previous}, hit.rule,
                       f"{by} moves the {what.replace('_', ' ')} from {hit.previous:.6g} to {hit.price:.6g}")

    def _book_fill(self, fill: FillReport, out: list[Action]) -> None:
        p = self.book.positions.get(fill.position_id)
        if p is None or not p.is_open:
            return
        pnl = self.book.fill(p.id, fill.ts, fill.volume, fill.price, fill.rule, self.version)
        kernel = self.kernels.get(p.symbol)
        if not p.is_open:
            if kernel is not None and p.id in kernel.ids:
                kernel.remove(p.id)
            if kernel is not None:
                p.time_in_profit_ms = kernel.removed_time_in_profit.pop(p.id, p.time_in_profit_ms)
            self.portfolio.forget_position(self.version, p.id)
            self._posted = {k for k in self._posted if k[1] != p.id} if self._posted else self._posted
        if kernel is not None:
            self._revalue(p.symbol)
        self._lock_profit(p, fill.ts, pnl, out)

    def _lock_profit(self, p: Position, ts: int, pnl: float, out: list[Action]) -> None:
        prof = self.rules.profit
        if not prof.enabled or p.strategy_type not in self.ledgers:
            return
        split = self.rules.strategies[p.strategy_type].profit_locking or prof.split
        ledger = self.ledgers[p.strategy_type]
        ledger.big_trades += pnl * split.big_trades
        ledger.weekly_target += pnl * split.weekly_target
        ledger.compound += pnl * split.compound
        ledger.week_realized += pnl
        if pnl > 0:
            amounts = {"big_trades": pnl * split.big_trades, "weekly_target": pnl * split.weekly_target, "compound": pnl * split.compound}
            self._emit(out, ts, "lock_profit", p.id, p.strategy_type, {"pnl": pnl, **amounts}, "profit_locking",
                       f"realized {pnl:.2f} split {split.big_trades:g}/{split.weekly_target:g}/{split.compound:g}")

    # --- portfolio --------------------------------------------------------------------------------

    def _roll(self, ts: int, out: list[Action]) -> None:
        daily, weekly = self.resets.advance(ts)
        if not self.day.key:
            self.day = _Day(_day_key(ts), self.equity, False)
        if daily:
            self.day = _Day(_day_key(ts), self.equity, False)
            self.portfolio.reset_day(self.version, self.day.key)
        if weekly:
            for ledger in self.ledgers.values():
                ledger.week_realized = 0.0

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
            self._fired(t.ts, fired, out)
        if not (self._custom_position or self._custom_portfolio):
            return
        base = self._portfolio_context(t)
        kernel = self.kernels[t.symbol]
        if self._custom_position and kernel.n:
            spec = self.converter.spec(t.symbol)
            scale = spec.contract_size * self.converter.rate(spec.quote_currency)
            lazy = kernel.columns(t.ts, self._position_fields, scale)
            columns = LazyColumns(base.scalars, {**base.makers, **lazy.makers, **self._strategy_columns(kernel)})
            candidates: dict[int, list[str]] = {}
            for rule in self._custom_position:
                for i in np.flatnonzero(mask(self._nnf[rule.name], columns, kernel.n, normalized=True)).tolist():
                    if (rule.name, kernel.ids[i]) not in self._posted:
                        candidates.setdefault(i, []).append(rule.name)
            for pid, names in [(kernel.ids[i], names) for i, names in sorted(candidates.items())]:
                p = self.book.positions[pid]
                ctx = _defined({**dict(base), **self._position_context(p, t)})
                self._posted.update((name, pid) for name in names)
                for fired in self.portfolio.post_position(self.version, ctx):
                    self._fired(t.ts, fired, out)
        if self._custom_portfolio and any(holds(self._nnf[r.name], base, normalized=True) for r in self._custom_portfolio):
            for fired in self.portfolio.post_portfolio(self.version, dict(base)):
                self._fired(t.ts, fired, out)

    def _portfolio_context(self, t: Tick) -> LazyColumns:
        """The portfolio, tick and clock fields; the costly ones (halt facts, exposure) only when read."""
        equity = self.equity
        start = self.day.start_equity
        minute = t.ts // 60_000
        if self._clock[0] != minute:
            dt = datetime.fromtimestamp(minute * 60, tz=timezone.utc)
            self._clock = (minute, {"clock.weekday": _WEEKDAYS[dt.weekday()], "clock.hour": dt.hour, "clock.minute": dt.minute})

        def exposure() -> float:
            gross = sum(self.converter.notional(p.symbol, p.entry, p.volume) for p in self.book.open_positions())
            return gross / equity if equity > 0 else 0.0

        return LazyColumns({
            "ts": t.ts,
            "portfolio.equity": equity,
            "portfolio.daily_pnl": equity - start,
            "portfolio.daily_return": (equity - start) / start if start > 0 else 0.0,
            "portfolio.open_positions": self.book.n_open,
            "portfolio.drawdown": (self.peak_equity - equity) / self.peak_equity if self.peak_equity > 0 else 0.0,
            "tick.symbol": t.symbol, "tick.bid": t.bid, "tick.ask": t.ask,
            "tick.mid": (t.bid + t.ask) / 2, "tick.spread": t.ask - t.bid,
            **self._clock[1],
        }, {
            "portfolio.exposure": exposure,
            "portfolio.halted": lambda: self.portfolio.halted(self.version) is not None,
        })

    def _strategy_columns(self, kernel: SymbolBook) -> dict[str, Callable[[], np.ndarray]]:
        """Makers of the ``strategy.*`` fields (and ``position.strategy_name``) the position rules read."""
        makers: dict[str, Callable[[], np.ndarray]] = {}
        if "position.strategy_name" in self._position_fields:
            makers["position.strategy_name"] = lambda: np.array([self.book.positions[pid].strategy_name for pid in kernel.ids], dtype=object)
        wanted = [f for f in self._position_fields if f.startswith("strategy.")]
        if wanted:
            per = functools.cache(lambda: {name: self._strategy_context(name) for name in set(kernel.strategies)})
            for f in wanted:
                makers[f] = functools.partial(
                    lambda f: np.array([per()[name][f] for name in kernel.strategies], dtype=object if f == "strategy.name" else np.float64), f)
        return makers

    def _strategy_context(self, name: str) -> dict[str, Any]:
        equity = self.equity
        day = self.book.realized(name) + self.unrealized(name)
        return {
            "strategy.name": name, "strategy.open_positions": self.book.open_count.get(name, 0),
            "strategy.realized_pnl": self.book.realized(name),
            "strategy.daily_pnl": day,
            "strategy.daily_return": day / self.day.start_equity if self.day.start_equity else 0.0,
            "strategy.open_risk": self._open_risk(name) / equity if equity > 0 else 0.0,
            "strategy.allocation": self.rules.strategies[name].allocation.target if name in self.rules.strategies else 0.0,
            "strategy.drawdown": max_drawdown(self.strategy_curves.get(name) or [1.0]),
        }

    def _position_context(self, p: Position, t: Tick) -> dict[str, Any]:
        state = self.kernels[p.symbol].state(p.id)
        price = t.bid if p.side > 0 else t.ask
        profit = p.side * (price - p.entry) / p.entry
        name = p.strategy_type
        return {
            "position.id": p.id, "position.symbol": p.symbol, "position.strategy_type": name,
            "position.strategy_name": p.strategy_name, "position.side": "long" if p.side > 0 else "short",
            "position.volume": p.volume, "position.entry_price": p.entry, "position.stop_loss": p.stop_loss,
            "position.take_profit": p.take_profit, "position.profit": profit,
            "position.pnl": self.converter.pnl(p.symbol, p.side, p.entry, price, p.volume),
            "position.r_multiple": profit / state.risk if state.risk and not math.isnan(state.risk) else None,
            "position.age_seconds": (t.ts - p.opened_ts) / 1000, "position.levels_hit": state.hits,
            "position.trailing_armed": state.armed,
            **self._strategy_context(name),
        }

    def _fired(self, ts: int, fired: Fired, out: list[Action]) -> None:
        """Carry out what a durable-rules rule decided."""
        if fired.type == "close" and fired.position_id in self.book.positions:
            p = self.book.positions[fired.position_id]
            if not p.is_open:
                return
            bid, ask = self.quotes[p.symbol]
            price = bid if p.side > 0 else ask
            fraction = float(fired.params.get("fraction", 1.0))
            volume = p.volume if fraction >= 1 else min(p.volume0 * fraction, p.volume)
            kind = "close" if volume >= p.volume else "close_partial"
            if kind == "close":
                self.kernels[p.symbol].remove(p.id)
            else:
                self.kernels[p.symbol].reduce(p.id, volume)
            self._emit(out, ts, kind, p.id, p.strategy_type, {"price": price, "volume": volume, "fraction": volume / p.volume0},
                       fired.rule, fired.reason)
            return
        if fired.type in ("set_stop_loss", "set_take_profit") and fired.position_id in self.book.positions:
            p = self.book.positions[fired.position_id]
            if not p.is_open:
                return
            level = p.entry * (1 + p.side * float(fired.params.get("profit", 0.0)))
            what = "stop_loss" if fired.type == "set_stop_loss" else "take_profit"
            previous = p.stop_loss if what == "stop_loss" else p.take_profit
            self.kernels[p.symbol].set_levels(p.id, **{"stop" if what == "stop_loss" else "take_profit": level})
            self.book.move(p.id, ts, what, level, fired.rule, self.version)
            self._emit(out, ts, fired.type, p.id, p.strategy_type, {what: level, "previous": previous}, fired.rule, fired.reason)
            return
        if fired.type == "close_all":
            items = []
            for p in self.book.open_positions():
                bid, ask = self.quotes.get(p.symbol, (p.entry, p.entry))
                items.append({"position_id": p.id, "volume": p.volume, "price": bid if p.side > 0 else ask})
                self.kernels[p.symbol].remove(p.id)
            self._emit(out, ts, "close_all", None, fired.strategy, {**fired.params, "positions": items}, fired.rule, fired.reason)
            return
        self._emit(out, ts, fired.type, fired.position_id, fired.strategy, dict(fired.params), fired.rule, fired.reason)

    # --- proposals --------------------------------------------------------------------------------

    def _open_risk(self, strategy: str) -> float:
        risk = 0.0
        for p in self.book.open_positions(strategy):
            if not math.isnan(p.stop_loss):
                risk += abs(p.entry - p.stop_loss) * p.volume * self.converter.spec(p.symbol).contract_size * self.converter.rate(self.converter.spec(p.symbol).quote_currency)
        return risk

    def _on_proposal(self, e: PositionOpened, out: list[Action]) -> None:
        self.counts["proposals"] += 1
        self._roll(e.ts, out)
        if e.position_id in self.book.positions:
            self._problem(f"position {e.position_id!r} already exists; duplicate position_opened ignored")
            return
        if e.existing:
            self._on_existing(e, out)
            return
        pos = Position(e.position_id, e.symbol, e.strategy_type, e.strategy_name, e.side, e.volume, e.entry_price, e.ts)
        self.book.propose(pos, self.version)
        reasons, volume, resized_from, stop, tp = self._checks(e)
        fired = self.portfolio.post_proposal(self.version, {
            "ts": e.ts, "id": e.position_id, "strategy": e.strategy_type, "n_failed": len(reasons), "reasons": reasons,
        })
        rejects = [f for f in fired if f.type == "reject_position"]
        if rejects:
            all_reasons: list[str] = []
            for f in rejects:
                for r in f.params.get("reasons", [f.reason]):
                    if r not in all_reasons:
                        all_reasons.append(r)
            self.counts["rejected"] += 1
            self.book.reject(e.position_id, e.ts, self.version, all_reasons)
            self._emit(out, e.ts, "reject_position", e.position_id, e.strategy_type, {"reasons": all_reasons},
                       rejects[0].rule, "; ".join(all_reasons))
            return
        pos.volume0 = pos.volume = volume
        self.book.accept(e.position_id, e.ts, stop, tp, self.version, "passed the pre-trade checks")
        self._kernel(e.symbol).add(e.position_id, e.strategy_type, e.side, e.entry_price, volume, stop, tp, e.ts)
        if resized_from is not None:
            self._emit(out, e.ts, "close_partial", e.position_id, e.strategy_type,
                       {"volume": resized_from - volume, "fraction": (resized_from - volume) / resized_from, "price": e.entry_price},
                       "max_position_size", f"resized from {resized_from:g} to {volume:.6g} lots to respect max_position_size",
                       execute=False)
        self._emit_defaults(e, stop, tp, "", out)
        for f in fired:
            if f.type == "alert":
                self._fired(e.ts, f, out)

    def _checks(self, e: PositionOpened) -> tuple[list[str], float, float | None, float, float]:
        reasons: list[str] = []
        strategy = self.rules.strategies.get(e.strategy_type)
        if strategy is None:
            return [f"unknown strategy {e.strategy_type!r}"], e.volume, None, math.nan, math.nan
        if not self.converter.known(e.symbol):
            return [f"unknown symbol {e.symbol!r}: add it to rules/instruments.yaml"], e.volume, None, math.nan, math.nan
        stop, tp = self._defaults(e, strategy.defaults)
        if (stop - e.entry_price) * e.side >= 0:
            reasons.append(f"stop_loss {stop:g} is on the wrong side of the entry {e.entry_price:g}")
        equity = self.equity
        n_open = self.book.open_count.get(e.strategy_type, 0)
        max_pos = self.rules.max_positions(e.strategy_type)
        if n_open >= max_pos:
            reasons.append(f"strategy {e.strategy_type} already has {n_open} open positions (max_positions {max_pos})")
        if math.isnan(self.converter.rate(self.converter.spec(e.symbol).quote_currency)):
            reasons.append(f"no quote yet to convert {self.converter.spec(e.symbol).quote_currency} to {self.converter.account}")
            return reasons, e.volume, None, stop, tp
        limit = self.rules.limits.max_position_size
        reason, volume, resized_from = checks.size_check(self.converter.notional(e.symbol, e.entry_price, e.volume), equity, limit.max, limit.on_breach, e.volume)
        if reason:
            reasons.append(reason)
        spec = self.converter.spec(e.symbol)
        new_risk = abs(e.entry_price - stop) * volume * spec.contract_size * self.converter.rate(spec.quote_currency)
        allowed = self.rules.risk_allocation(e.strategy_type)
        total = (self._open_risk(e.strategy_type) + new_risk) / equity if equity > 0 else math.inf
        if total > allowed:
            reasons.append(f"open risk of {e.strategy_type} would be {checks.pct(total)} of equity (risk_allocation {checks.pct(allowed)})")
        corr_max = self.rules.limits.max_correlation.max
        mine = self.bars.get(e.symbol)
        if mine is not None:
            for p in self.book.open_positions():
                if p.symbol == e.symbol or p.symbol not in self.bars:
                    continue
                c = checks.correlation(mine.returns(), self.bars[p.symbol].returns())
                if c is not None and c * e.side * p.side > corr_max:
                    reasons.append(f"correlation {c * e.side * p.side:.2f} with open position {p.id} ({p.symbol}) exceeds max_correlation {corr_max:g}")
        return reasons, volume, resized_from, stop, tp

    def _on_existing(self, e: PositionOpened, out: list[Action]) -> None:
        """Take over a position already open at the broker: no pre-trade checks, default SL/TP if it has none."""
        strategy = self.rules.strategies.get(e.strategy_type)
        if strategy is None or not self.converter.known(e.symbol):
            what = f"unknown strategy {e.strategy_type!r}" if strategy is None else f"unknown symbol {e.symbol!r}"
            self._problem(f"existing position {e.position_id!r} not managed: {what}")
            return
        d = strategy.defaults
        stop, tp = self._defaults(e, d)
        volume0 = e.volume0 if e.volume0 is not None and e.volume0 > e.volume else e.volume
        pos = Position(e.position_id, e.symbol, e.strategy_type, e.strategy_name, e.side, volume0, e.entry_price, e.ts)
        pos.stop_loss, pos.take_profit = stop, tp
        state = None
        if volume0 > e.volume:
            # partly closed before: the exit levels whose cumulative share is closed count as taken;
            # the initial risk (for r_multiple levels) is taken as the strategy's default stop
            closed = 1 - e.volume / volume0
            hits = sum(1 for c in np.cumsum([lv.exit_percentage for lv in strategy.exit_levels]) if c <= closed + 1e-9)
            state = PositionState(e.position_id, e.strategy_type, e.side, e.entry_price, volume0, e.volume, stop, tp, e.entry_price,
                                  False, False, hits, d.stop_loss)
        self.adopt(pos, state)
        if state is not None:
            pos.volume = e.volume
            pos.status = Status.PARTIALLY_CLOSED
        self._emit_defaults(e, stop, tp, " (position taken over)", out)

    def _defaults(self, e: PositionOpened, d) -> tuple[float, float]:
        """The position's stop and target: its own, else the strategy's defaults (fractions of entry)."""
        stop = e.stop_loss if e.stop_loss is not None else e.entry_price * (1 - e.side * d.stop_loss)
        tp = e.take_profit if e.take_profit is not None else e.entry_price * (1 + e.side * d.take_profit)
        return stop, tp

    def _emit_defaults(self, e: PositionOpened, stop: float, tp: float, note: str, out: list[Action]) -> None:
        """Tell the broker the default stop and target of a position that came without them."""
        d = self.rules.strategies[e.strategy_type].defaults
        if e.stop_loss is None:
            self._emit(out, e.ts, "set_stop_loss", e.position_id, e.strategy_type, {"stop_loss": stop, "previous": None},
                       "defaults", f"default stop_loss {d.stop_loss:g} of entry{note}")
        if e.take_profit is None:
            self._emit(out, e.ts, "set_take_profit", e.position_id, e.strategy_type, {"take_profit": tp, "previous": None},
                       "defaults", f"default take_profit {d.take_profit:g} of entry{note}")

    def _on_fill(self, e: Fill, out: list[Action]) -> None:
        p = self.book.positions.get(e.position_id)
        if p is None or not p.is_open:
            self._problem(f"fill for unknown or closed position {e.position_id!r} ignored")
            return
        volume = min(e.volume, p.volume)
        kernel = self.kernels.get(p.symbol)
        # the fill of an engine action: the kernel took the volume off when it emitted the action
        if e.action_id is None and kernel is not None and p.id in kernel.ids:
            if volume >= p.volume:
                kernel.remove(p.id)
            else:
                kernel.reduce(p.id, volume)
        self._book_fill(FillReport(p.id, e.ts, volume, e.price, e.rule), out)

    def _on_closed(self, e: PositionClosed, out: list[Action]) -> None:
        p = self.book.positions.get(e.position_id)
        if p is None or not p.is_open:
            self._problem(f"position_closed for unknown or closed position {e.position_id!r} ignored")
            return
        price = e.price
        if price is None:
            bid, ask = self.quotes.get(p.symbol, (p.entry, p.entry))
            price = bid if p.side > 0 else ask
        self.kernels[p.symbol].remove(p.id)
        self._book_fill(FillReport(p.id, e.ts, p.volume, price, "external"), out)

    # --- reload, summary ------------------------------------------------------------------------

    def adopt(self, p: Position, state: PositionState | None = None) -> None:
        """Take over an open position without pre-trade checks (a restart, or positions found at the broker).

        ``state`` carries the managed state (best price, levels hit, stops) when it is known.
        """
        self.book.positions[p.id] = p
        self.book.accept(p.id, p.opened_ts, p.stop_loss, p.take_profit, self.version, "adopted")
        kernel = self._kernel(p.symbol)
        if state is not None:
            kernel.restore(state)
        else:
            kernel.add(p.id, p.strategy_type, p.side, p.entry, p.volume, p.stop_loss, p.take_profit, p.opened_ts)

    def reload(self, rules: RuleSet) -> None:
        """Swap in new rules between two events; open positions keep their managed state.

        The portfolio facts (breaches, halts, latches) move to the new version and the old version is
        dropped: no later event uses it.
        """
        old = self.version
        version = self.portfolio.load(rules)
        if version != old:
            self.portfolio.restore_facts(version, self.portfolio.facts(old))
            self.portfolio.drop(old)
        self.rules, self.version = rules, version
        self.params = compile_params(rules.strategies)
        for kernel in self.kernels.values():
            kernel.reload(self.params)
        for name in rules.strategies:
            self.ledgers.setdefault(name, _Ledger())
            self.strategy_curves.setdefault(name, [])
        for name in sorted(rules.strategies):
            self.codes.setdefault(name, len(self.codes))
        self._split_custom()

    def _sample(self, ts: int, force: bool = False) -> None:
        """Record the equity curves at the first event of each sampling period (and at the end)."""
        if not force and self.curve and ts // _SAMPLE_MS == self.curve[-1][0] // _SAMPLE_MS:
            return
        self.curve.append((ts, self.equity))
        for name, curve in self.strategy_curves.items():
            curve.append(self._strategy_equity(name))

    def _problem(self, message: str) -> None:
        if self.on_problem is not None:
            self.on_problem(message)

    def summary(self) -> dict[str, Any]:
        """Return per-strategy and portfolio metrics, and per-position results."""
        positions = [p for p in self.book.positions.values() if p.status != Status.REJECTED]
        if self.curve and self._last_ts is not None and self.curve[-1][0] != self._last_ts:
            self._sample(self._last_ts, force=True)
        for p in self.book.open_positions():
            kernel = self.kernels[p.symbol]
            i = kernel.ids.index(p.id)
            price = kernel.bid if p.side > 0 else kernel.ask
            p.unrealized_pnl = self.converter.pnl(p.symbol, p.side, p.entry, price, p.volume)
            p.time_in_profit_ms = int(kernel.tip[i])

        def trades(ps: Iterable[Position]) -> dict[str, float]:
            done = [p for p in ps if p.status == Status.CLOSED]
            return trade_metrics([p.realized_pnl for p in done], [(p.closed_ts or p.opened_ts) - p.opened_ts for p in done],
                                 [p.time_in_profit_ms for p in done])

        portfolio = {
            "equity": self.equity, "realized_pnl": self.book.realized(), "unrealized_pnl": self.unrealized(),
            **equity_metrics([e for _, e in self.curve]), **trades(positions),
            "rules_version": self.version, **{k: v for k, v in self.counts.items()},
        }
        strategies = {}
        for name in sorted(self.rules.strategies):
            mine = [p for p in positions if p.strategy_type == name]
            strategies[name] = {
                "realized_pnl": self.book.realized(name), "unrealized_pnl": self.unrealized(name),
                "open_positions": self.book.open_count.get(name, 0), **equity_metrics(self.strategy_curves[name]),
                **trades(mine), "profit_locking": vars(self.ledgers[name]).copy(),
            }
        per_position = {
            p.id: {"strategy": p.strategy_type, "status": p.status.value, "realized_pnl": p.realized_pnl,
                   "unrealized_pnl": p.unrealized_pnl,
                   "return": p.pnl / self.converter.notional(p.symbol, p.entry, p.volume0) if self.converter.known(p.symbol) and p.volume0 else 0.0,
                   "holding_s": ((p.closed_ts or (p.last_mark_ts or p.opened_ts)) - p.opened_ts) / 1000,
                   "time_in_profit_s": p.time_in_profit_ms / 1000, "fills": len(p.fills)}
            for p in self.book.positions.values()
        }
        return {"portfolio": portfolio, "strategies": strategies, "positions": per_position}

    def snapshot(self) -> list[PositionState]:
        """Return the managed state of every open position (for persistence and reloads)."""
        return [k.state(pid) for k in self.kernels.values() for pid in k.ids]


def _defined(ctx: dict[str, Any]) -> dict[str, Any]:
    """Drop unknown values (a position without a stop has no ``position.stop_loss``): they never match."""
    return {k: v for k, v in ctx.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))}


def _day_key(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, tz=timezone.utc).strftime("%Y-%m-%d")
