"""Pre-trade checks that bind a proposal to its strategy's capital, and risk-based sizing (DESIGN section 4).

Given the volume the other checks leave, in this order:

- ``risk_allocation``: the strategy's open risk (entry to stop, in the account currency) with the new
  position at most ``risk_allocation`` x its capital (``limits.per_strategy.on_breach``: reject or resize);
- ``utilization``: its exposure on ``utilization.basis`` at most ``utilization.max`` x its capital
  (``utilization.on_breach``);
- ``exposure``: the net and gross exposure of each currency the position trades (its base leg long,
  its quote leg short, for a BUY) and of each group of symbols it belongs to, at most their caps x equity
  (``limits.exposure.on_breach``). A position that brings a net exposure toward zero always passes
  that cap.

A resize opens the largest volume within every limit, rounded down to the lot step, so the limit holds
after it; below ``volume_min`` the proposal fails the check instead. A proposal without a volume of a
strategy with ``sizing`` is sized here: the volume whose loss at the stop is ``risk_per_trade`` (times
the weekly target's ``scale_risk_per_trade`` once reached) of the strategy's capital, then fitted into
every limit as a resize would be, whatever their ``on_breach``; the ``size_position`` action tells how.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.config.models.instruments import Instrument
from engine.events import PositionOpened
from engine.rules import allocation

if TYPE_CHECKING:
    from engine.rules.checks import Failed
    from engine.rules.evaluator import Engine

_TOL = 1e-9  # at the limit is within it, whatever the last bit says


class Capacity:
    """What the capital checks read off an engine: capital, exposure and open risk per strategy, the
    exposure per currency and group, the weekly target's effect (computed when asked)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def capital(self, strategy: str) -> float:
        """The strategy's capital (account currency)."""
        return allocation.capital(self.engine, strategy)

    def used(self, strategy: str, on: str) -> float:
        """The strategy's exposure on basis ``on`` now (account currency)."""
        return allocation.exposure(self.engine, self.engine.book.open_positions(strategy), on)

    def open_risk(self, strategy: str) -> float:
        """What the strategy's open positions lose if every stop is hit (account currency)."""
        return self.engine.open_risk(strategy)

    def legs(self) -> dict[str, tuple[float, float]]:
        """Net and gross exposure per currency and per ``group:<name>`` (account currency)."""
        e = self.engine
        out: dict[str, list[float]] = {}
        groups = e.rules.limits.exposure.groups
        for p in e.book.open_positions():
            if not e.converter.known(p.symbol):
                continue
            for key, signed in legs_of(e, p.symbol, p.side, p.volume, allocation.mark(e, p.symbol, p.entry), groups):
                x = out.setdefault(key, [0.0, 0.0])
                x[0] += signed
                x[1] += abs(signed)
        return {k: (v[0], v[1]) for k, v in out.items()}

    @property
    def risk_scale(self) -> float:
        """The factor on ``risk_per_trade`` (the weekly target's ``scale_risk_per_trade`` once reached)."""
        return allocation.risk_scale(self.engine)

    @property
    def week_halted(self) -> bool:
        """Whether the weekly target was reached and ``on_reached.halt_new_positions`` holds until the reset."""
        return allocation.week_halted(self.engine)


def legs_of(engine: Engine, symbol: str, side: int, volume: float, price: float, groups: Any) -> list[tuple[str, float]]:
    """The signed exposures (account currency) ``volume`` lots of ``symbol`` on ``side`` add: its base
    currency (+side x notional), its quote currency (-side x notional) when it has a base currency, and
    ``group:<name>`` (+side x notional) for each group that lists the symbol."""
    spec = engine.converter.spec(symbol)
    notional = engine.converter.notional(symbol, price, volume)
    if not math.isfinite(notional):
        return []
    out = [(f"group:{name}", side * notional) for name, g in groups.items() if symbol in g.symbols]
    if spec.base_currency is not None:
        out += [(spec.base_currency, side * notional), (spec.quote_currency, -side * notional)]
    return out


@dataclass
class Fit:
    """The volume being fitted into the limits: ``volume`` now, the check that last cut it (``by``), and
    whether every limit resizes (a sized proposal) whatever its ``on_breach``."""

    volume: float
    spec: Instrument
    sized: bool = False
    by: str | None = None
    failed: list[Failed] = field(default_factory=list)

    def bound(self, check: str, used: float, per_lot: float, limit: float, on_breach: str, say: Callable[[float], str]) -> None:
        """Keep ``used + per_lot x volume <= limit``: resize (down to the lot step) or fail ``check`` with
        ``say(share)``, ``share`` being what ``used + per_lot x volume`` would be."""
        from engine.rules.checks import Failed

        if per_lot <= 0 or not math.isfinite(per_lot) or used + per_lot * self.volume <= limit * (1 + _TOL) + _TOL:
            return
        if on_breach == "resize" or self.sized:
            room = (limit - used) / per_lot
            fitted = self.spec.lots.down(room * (1 + _TOL)) if room > 0 else 0.0
            if fitted >= self.spec.volume_min * (1 - _TOL) and fitted > 0:
                self.volume, self.by = fitted, check
                return
            self.failed.append(Failed(check, say(used + per_lot * self.volume) + f", and the largest volume within it, "
                                      f"{max(room, 0.0):.4g} lots, is below the volume_min {self.spec.volume_min:g}"))
            return
        self.failed.append(Failed(check, say(used + per_lot * self.volume)))


def capital_checks(e: PositionOpened, rules: Any, capacity: Capacity, entry: float, stop: float, fit: Fit) -> None:
    """Fit ``fit.volume`` into the strategy's risk allocation, its utilization and the exposure caps (see the
    module docstring); failures go to ``fit.failed``."""
    conv, name = capacity.engine.converter, e.strategy_type
    cap = capacity.capital(name)
    if capacity.week_halted:
        from engine.rules.checks import Failed

        fit.failed.append(Failed("weekly_target", "the weekly growth target is reached: new positions are halted until the weekly reset"))
    allowed = rules.risk_allocation(name)
    if not math.isnan(stop):
        fit.bound("risk_allocation", capacity.open_risk(name), conv.risk(e.symbol, entry, stop, 1.0), allowed * cap,
                  rules.limits.per_strategy.on_breach,
                  lambda x: f"open risk of {name} would be {_money(x)}, {_of(x, cap)} of its capital {_money(cap)} "
                            f"(risk_allocation {allowed:.4g})")
    u = rules.allocation.utilization
    if u is not None:
        per_lot = allocation.exposure_of(conv, e.symbol, entry, stop, entry, 1.0, u.basis)
        fit.bound("utilization", capacity.used(name, u.basis), per_lot, u.max * cap, u.on_breach,
                  lambda x: f"{u.basis} exposure of {name} would be {_money(x)}, {_of(x, cap)} of its capital {_money(cap)} "
                            f"(utilization max {u.max:g})")
    exposure_checks(e, rules, capacity, entry, fit)


def exposure_checks(e: PositionOpened, rules: Any, capacity: Capacity, entry: float, fit: Fit) -> None:
    """Fit ``fit.volume`` into the net and gross caps of ``limits.exposure`` (fractions of equity)."""
    ex = rules.limits.exposure
    if not ex.currencies and not ex.groups:
        return
    equity = capacity.engine.equity
    have = capacity.legs()
    for key, signed in legs_of(capacity.engine, e.symbol, e.side, 1.0, entry, ex.groups):
        caps = ex.groups[key[6:]] if key.startswith("group:") else ex.currencies.get(key)
        if caps is None:
            continue
        net, gross = have.get(key, (0.0, 0.0))
        what = f"group {key[6:]}" if key.startswith("group:") else key
        direction = 1.0 if signed > 0 else -1.0
        for kind, cap, used in (("net", caps.net, direction * net), ("gross", caps.gross, gross)):
            if cap is not None:
                fit.bound("exposure", used, abs(signed), cap * equity, ex.on_breach, _says(kind, what, cap, equity))


def size(e: PositionOpened, strategy: Any, capacity: Capacity, entry: float, stop: float, spec: Instrument,
         failed: list[Failed]) -> tuple[float, dict[str, Any]] | None:
    """The volume of a proposal without one, from ``strategy.sizing.risk_per_trade`` of its capital and the
    stop distance, rounded down to the lot step, and the ``size_position`` parameters saying how; None
    (with a failure in ``failed``) when it cannot be sized."""
    from engine.rules.checks import Failed

    sizing = strategy.sizing
    if sizing is None:
        failed.append(Failed("volume", f"no volume, and strategy {e.strategy_type} has no sizing to size it: "
                                       "give a volume, or set sizing: {risk_per_trade: ...} in its file"))
        return None
    if math.isnan(stop):
        failed.append(Failed("volume", "no volume and no stop loss to size it from: give either"))
        return None
    cap = capacity.capital(e.strategy_type)
    scale = capacity.risk_scale
    budget = sizing.risk_per_trade * scale * cap
    per_lot = capacity.engine.converter.risk(e.symbol, entry, stop, 1.0)
    if not (per_lot > 0 and math.isfinite(per_lot)) or budget <= 0:
        failed.append(Failed("volume", f"cannot size from a stop at the entry or a capital of {_money(cap)}"))
        return None
    volume = spec.lots.down(budget / per_lot * (1 + _TOL))
    if volume < spec.volume_min * (1 - _TOL) or volume <= 0:
        least = _money(per_lot * spec.volume_min)
        failed.append(Failed("volume", f"risk_per_trade {sizing.risk_per_trade:g} of the capital {_money(cap)} is {_money(budget)}, "
                                       f"less than the volume_min {spec.volume_min:g} lots lose at the stop ({least})"))
        return None
    how = (f"risk_per_trade {sizing.risk_per_trade:g}{f' x {scale:g} (weekly target reached)' if scale != 1 else ''} of the capital "
           f"{_money(cap)} = {_money(budget)} at risk over a stop {abs(entry - stop):.10g} from the entry, "
           f"{_money(per_lot)} a lot")
    return volume, {"volume": volume, "sized_by": "risk_per_trade", "risk_per_trade": sizing.risk_per_trade, "risk_scale": scale,
                    "capital": cap, "risk_budget": budget, "risk_per_lot": per_lot, "stop_loss": stop, "entry_price": entry,
                    "limited_by": None, "how": how}


def _says(kind: str, what: str, cap: float, equity: float) -> Callable[[float], str]:
    """The reason of an exposure cap passed: ``kind`` (net or gross) exposure of ``what`` would be x."""
    return lambda x: f"{kind} {what} exposure would be {_money(x)}, {_of(x, equity)} of equity (cap {cap:g})"


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _of(x: float, base: float) -> str:
    return f"{x / base:.2%}" if base > 0 else "all"
