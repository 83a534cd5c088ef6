"""The custom rules of rules/custom.yaml on a tick: what their conditions read, and which are posted.

A condition reads fields of a fixed namespace (``position.*``, ``strategy.*``, ``portfolio.*``,
``tick.*``, ``clock.*``; DESIGN section 3.2). ``CustomRules.fire`` builds them for one tick:

1. the portfolio, tick and clock fields, the costly ones (halt facts, exposure) only when read;
2. for the position rules, every field as a column over the open positions of the tick's symbol at
   once (``engine.rules.vector.mask``): a cheap pre-filter in the negation normal form durable-rules
   uses, so that only the positions whose condition holds, and which the rule has not decided yet,
   are posted to durable-rules (``engine.rules.chaining``), which decides and latches;
3. the portfolio rules, posted when one of them holds.

It yields what durable-rules decided, one ``Fired`` at a time: the caller carries each out (and
books its fills) before the next position's fields are read, as they may have changed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from engine.book.ledgers import Day
from engine.book.metrics import max_drawdown
from engine.book.positions import Book, Position
from engine.book.valuation import Converter
from engine.config.conditions import fields_of, negation_normal_form
from engine.config.load import RuleSet
from engine.events import Tick
from engine.rules.chaining import Fired, PortfolioRules
from engine.rules.kernel import SymbolBook
from engine.rules.predicate import holds
from engine.rules.vector import LazyColumns, mask

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

    @property
    def equity(self) -> float: ...

    def unrealized(self, strategy: str | None = None) -> float: ...

    def open_risk(self, strategy: str) -> float: ...


class CustomRules:
    """The enabled custom rules split by what they match, and what they have decided.

    ``posted``: the (rule, position id) pairs already posted to durable-rules, which latches them; a
    position's pairs go when it closes (``forget``). The state is plain data (``engine.rules.state`` records it with the
    engine's snapshots).
    """

    def __init__(self, rules: RuleSet) -> None:
        self.posted: set[tuple[str, str]] = set()
        self._clock: tuple[int, dict[str, Any]] = (-1, {})
        self.reload(rules)

    def reload(self, rules: RuleSet) -> None:
        """Take the rules of a new rule set; the decisions made so far stay."""
        enabled = [r for r in rules.custom.rules if r.enabled]
        self.position = [r for r in enabled if any(f.startswith("position.") for f in fields_of(r.when))]
        self.portfolio = [r for r in enabled if r not in self.position]
        # the pre-filter evaluates each condition in the negation normal form durable-rules uses
        self.nnf = {r.name: negation_normal_form(r.when) for r in enabled}
        self.fields = frozenset(f for r in self.position for f in fields_of(r.when))

    def __bool__(self) -> bool:
        return bool(self.position or self.portfolio)

    def forget(self, position_id: str) -> None:
        """Drop the decisions about a position that closed."""
        if self.posted:
            self.posted = {k for k in self.posted if k[1] != position_id}

    def fire(self, account: Account, t: Tick) -> Iterator[Fired]:
        """Post the positions of ``t``'s symbol, and the portfolio, whose custom conditions hold;
        yield what durable-rules decided, in order."""
        base = self.portfolio_context(account, t)
        kernel = account.kernels[t.symbol]
        if self.position and kernel.n:
            lazy = kernel.columns(t.ts, self.fields, account.converter.scale(t.symbol))
            columns = LazyColumns(base.scalars, {**base.makers, **lazy.makers, **self._strategy_columns(account, kernel)})
            candidates: dict[int, list[str]] = {}
            for rule in self.position:
                for i in np.flatnonzero(mask(self.nnf[rule.name], columns, kernel.n, normalized=True)).tolist():
                    if (rule.name, kernel.ids[i]) not in self.posted:
                        candidates.setdefault(i, []).append(rule.name)
            for pid, names in [(kernel.ids[i], names) for i, names in sorted(candidates.items())]:
                p = account.book.positions[pid]
                ctx = defined({**dict(base), **position_context(account, p, t)})
                self.posted.update((name, pid) for name in names)
                yield from account.portfolio.post_position(account.version, ctx)
        if self.portfolio and any(holds(self.nnf[r.name], base, normalized=True) for r in self.portfolio):
            yield from account.portfolio.post_portfolio(account.version, dict(base))

    def portfolio_context(self, account: Account, t: Tick) -> LazyColumns:
        """The portfolio, tick and clock fields; the costly ones (halt facts, exposure) only when read."""
        equity = account.equity
        start = account.day.start_equity
        peak = account.peak_equity
        minute = t.ts // 60_000
        if self._clock[0] != minute:
            dt = datetime.fromtimestamp(minute * 60, tz=UTC)
            self._clock = (minute, {"clock.weekday": WEEKDAYS[dt.weekday()], "clock.hour": dt.hour, "clock.minute": dt.minute})

        def exposure() -> float:
            gross = sum(account.converter.notional(p.symbol, p.entry, p.volume) for p in account.book.open_positions())
            return gross / equity if equity > 0 else 0.0

        return LazyColumns({
            "ts": t.ts,
            "portfolio.equity": equity,
            "portfolio.daily_pnl": equity - start,
            "portfolio.daily_return": (equity - start) / start if start > 0 else 0.0,
            "portfolio.open_positions": account.book.n_open,
            "portfolio.drawdown": (peak - equity) / peak if peak > 0 else 0.0,
            "tick.symbol": t.symbol, "tick.bid": t.bid, "tick.ask": t.ask,
            "tick.mid": (t.bid + t.ask) / 2, "tick.spread": t.ask - t.bid,
            **self._clock[1],
        }, {
            "portfolio.exposure": exposure,
            "portfolio.halted": lambda: account.portfolio.halted(account.version) is not None,
        })

    def _strategy_columns(self, account: Account, kernel: SymbolBook) -> dict[str, Callable[[], np.ndarray]]:
        """Makers of the ``strategy.*`` fields (and ``position.strategy_name``) the position rules read."""
        makers: dict[str, Callable[[], np.ndarray]] = {}
        if "position.strategy_name" in self.fields:
            makers["position.strategy_name"] = lambda: np.array(
                [account.book.positions[pid].strategy_name for pid in kernel.ids], dtype=object)
        wanted = [f for f in self.fields if f.startswith("strategy.")]
        if wanted:
            per = functools.cache(lambda: {name: strategy_context(account, name) for name in set(kernel.strategies)})
            for f in wanted:
                makers[f] = functools.partial(
                    lambda f: np.array([per()[name][f] for name in kernel.strategies],
                                       dtype=object if f == "strategy.name" else np.float64), f)
        return makers


def strategy_context(account: Account, name: str) -> dict[str, Any]:
    """The ``strategy.*`` fields of strategy ``name``."""
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
        "strategy.drawdown": max_drawdown(account.strategy_curves.get(name) or [1.0]),
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
        "position.age_seconds": (t.ts - p.opened_ts) / 1000, "position.levels_hit": state.levels_hit,
        "position.trailing_armed": state.armed,
        **strategy_context(account, p.strategy_type),
    }


def defined(ctx: dict[str, Any]) -> dict[str, Any]:
    """Drop unknown values (a position without a stop has no ``position.stop_loss``): they never match."""
    return {k: v for k, v in ctx.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))}
