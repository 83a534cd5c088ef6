"""The operator's gauges of ``/metrics``: each account's equity, day PnL against its limit, drawdown, halt,
exposure, allocation and open risk by strategy, and the age of the active rules.

They are read at scrape time, never on the engine's path: ``EngineGauges.collect`` asks each account's
engine thread for an ``AccountGauges`` snapshot between two batches (``AccountWorker.call``), at the
cost of one pass over the open positions per scrape. An account whose engine does not answer within
``timeout`` (recovering, stalled) has no series in that scrape; ``riskrail_accounts_stalled`` says so.
Money is in the account currency; ratios are fractions (0.01 is 1 %).

Trading state: ``riskrail_trading_halted`` is 1 while today's halt facts stop new positions (a daily
loss breach, a custom rule's ``halt_new_positions``). A per-account/strategy/symbol state gauge
(ACTIVE, REDUCING, HALTED) belongs next to it, as ``riskrail_trading_state{account,scope,subject,state}``
from the same snapshot.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.errors import RiskrailError
from engine.rules import allocation
from engine.rules.evaluator import Engine

log = logging.getLogger("riskrail.metrics")


@dataclass(frozen=True)
class StrategyGauges:
    """One strategy of an account: notional of its open positions (gross: sum, net: longs minus shorts, at
    entry prices), its capital share (``allocation``) and target, its utilization (exposure on the
    utilization basis over its capital), its open risk and the allowance of it (risk_allocation x capital)."""

    gross_exposure: float
    net_exposure: float
    allocation: float
    allocation_target: float
    open_risk: float
    open_risk_limit: float
    capital: float = 0.0
    utilization: float = 0.0


@dataclass(frozen=True)
class AccountGauges:
    """One account as of now: money in the account currency, ``drawdown`` a fraction of the equity peak,
    ``daily_loss_limit`` the money the day may lose (limit x day-start equity), ``halted`` 1 or 0."""

    equity: float
    equity_peak: float
    day_pnl: float
    day_start_equity: float
    daily_loss_limit: float
    drawdown: float
    halted: int
    strategies: dict[str, StrategyGauges] = field(default_factory=dict)
    weekly_progress: float = 0.0  # the week's return over weekly_growth_target
    weekly_reached: int = 0


def account_gauges(engine: Engine) -> AccountGauges:
    """The snapshot of one account's engine (call it on the engine's thread: it reads the portfolio facts)."""
    equity, start = engine.equity, engine.day.start_equity
    peak = max(engine.peak_equity, equity)
    gross: dict[str, float] = {}
    net: dict[str, float] = {}
    for p in engine.book.open_positions():
        if not engine.converter.known(p.symbol):
            continue
        notional = engine.converter.notional(p.symbol, p.entry, p.volume)
        if math.isfinite(notional):
            gross[p.strategy_type] = gross.get(p.strategy_type, 0.0) + notional
            net[p.strategy_type] = net.get(p.strategy_type, 0.0) + p.side * notional
    strategies = {}
    for name, f in allocation.figures(engine).items():
        strategies[name] = StrategyGauges(
            gross.get(name, 0.0), net.get(name, 0.0), f["capital_share"] or 0.0, f["target"], f["open_risk"],
            f["risk_allocation"] * f["capital"], f["capital"], f["utilization"] or 0.0)
    week = allocation.week(engine)
    return AccountGauges(equity, peak, equity - start, start, engine.rules.limits.daily_loss.max * start,
                         (peak - equity) / peak if peak > 0 else 0.0, 1 if engine.portfolio.halted(engine.version) else 0, strategies,
                         week["progress"], 1 if week["reached"] else 0)


#: (metric, help, the value of an AccountGauges)
_ACCOUNT: tuple[tuple[str, str, Callable[[AccountGauges], float]], ...] = (
    ("riskrail_equity", "account equity (balance plus open PnL), in the account currency", lambda g: g.equity),
    ("riskrail_equity_peak", "the highest equity the account reached, in the account currency", lambda g: g.equity_peak),
    ("riskrail_day_pnl", "PnL of the trading day (realized and unrealized), in the account currency", lambda g: g.day_pnl),
    ("riskrail_day_start_equity", "equity at the start of the trading day, in the account currency", lambda g: g.day_start_equity),
    ("riskrail_daily_loss_limit", "the loss the trading day may reach before the daily-loss breach (limit x day-start equity)",
     lambda g: g.daily_loss_limit),
    ("riskrail_drawdown_ratio", "fall of equity from its peak, as a fraction of the peak", lambda g: g.drawdown),
    ("riskrail_trading_halted", "1 while new positions are halted (today's halt facts), else 0", lambda g: g.halted),
    ("riskrail_weekly_target_progress_ratio", "the week's return over weekly_growth_target (1: reached)", lambda g: g.weekly_progress),
    ("riskrail_weekly_target_reached", "1 once the week's return reached weekly_growth_target, until the weekly reset",
     lambda g: g.weekly_reached),
)
#: (metric, help, the value of a StrategyGauges)
_STRATEGY: tuple[tuple[str, str, Callable[[StrategyGauges], float]], ...] = (
    ("riskrail_gross_exposure", "notional of a strategy's open positions at entry, in the account currency", lambda s: s.gross_exposure),
    ("riskrail_net_exposure", "long minus short notional of a strategy's open positions at entry, in the account currency",
     lambda s: s.net_exposure),
    ("riskrail_allocation_ratio", "a strategy's capital share: its capital over the account's equity", lambda s: s.allocation),
    ("riskrail_strategy_capital", "a strategy's capital (allocated plus PnL since the last rebalance), account currency",
     lambda s: s.capital),
    ("riskrail_utilization_ratio", "a strategy's exposure on the utilization basis over its capital", lambda s: s.utilization),
    ("riskrail_allocation_target_ratio", "a strategy's target capital share", lambda s: s.allocation_target),
    ("riskrail_open_risk", "money a strategy's open positions lose at their stops", lambda s: s.open_risk),
    ("riskrail_open_risk_limit", "the open risk a strategy may take (risk_allocation x its capital)", lambda s: s.open_risk_limit),
)


class EngineGauges(Collector):
    """The gauges above, collected from a ``Service``'s workers at each scrape, plus ``riskrail_rules_age_seconds``."""

    def __init__(self, service: Any, timeout: float = 2.0) -> None:
        self.service, self.timeout = service, timeout

    def snapshots(self) -> dict[str, AccountGauges]:
        """Each account of this process whose engine answers within ``timeout``: its snapshot."""
        out = {}
        for account, worker in sorted(dict(self.service.workers).items()):
            try:
                out[account] = worker.call(account_gauges, timeout=self.timeout)
            except (RiskrailError, TimeoutError) as exc:
                log.debug("account %s: no gauges in this scrape (%s)", account, exc)
        return out

    def collect(self) -> Iterator[Metric]:
        loaded = self.service.loaded_at
        age = GaugeMetricFamily("riskrail_rules_age_seconds", "seconds since the active rules version was loaded")
        if loaded is not None:
            age.add_metric([], max(time.time() - loaded, 0.0))
        yield age
        snaps = self.snapshots()
        for name, doc, value in _ACCOUNT:
            family = GaugeMetricFamily(name, doc, labels=["account"])
            for account, g in snaps.items():
                family.add_metric([account], float(value(g)))
            yield family
        for name, doc, of in _STRATEGY:
            family = GaugeMetricFamily(name, doc, labels=["account", "strategy"])
            for account, g in snaps.items():
                for strategy, s in g.strategies.items():
                    family.add_metric([account, strategy], float(of(s)))
            yield family
