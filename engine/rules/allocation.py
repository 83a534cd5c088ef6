"""Strategy capital and its use, read off an engine: capital shares, utilization, bands (DESIGN section 5).

Two figures per strategy, in every view:

- **capital share**: its capital (``engine.book.capital``) over the equity: what the bands constrain and
  the optimizer moves;
- **utilization**: its exposure over its capital, on the basis of ``rules/allocation.yaml``
  ``utilization.basis`` (``notional`` at the last mid, ``margin`` = notional x the instrument's
  ``margin_rate``, ``risk`` = what the positions lose if every stop is hit), in the account currency.

Both are computed from the book and the last quotes when read, so they are current on every tick and
fill. ``bands`` watches the capital shares: outside ``min``/``max`` an ``alert`` (once per excursion,
again after the share came back inside).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engine.book.positions import Position
from engine.book.valuation import Converter
from engine.rules.chaining import Fired

if TYPE_CHECKING:
    from engine.rules.evaluator import Engine


def basis(engine: Engine) -> str:
    """The utilization basis of the engine's rules (``notional`` when ``utilization`` is not set)."""
    u = engine.rules.allocation.utilization
    return u.basis if u is not None else "notional"


def strategy_pnl(engine: Engine, name: str) -> float:
    """What ``name`` has made to date, realized and open, in the account currency."""
    return engine.book.realized(name) + engine.unrealized(name)


def capital(engine: Engine, name: str) -> float:
    """The capital of strategy ``name`` in the account currency (0 for a strategy the rules lack)."""
    s = engine.rules.strategies.get(name)
    if s is None and name not in engine.capital.base:
        return 0.0
    configured = s.allocation.target if s is not None else 0.0
    return engine.capital.of(name, configured, engine.equity0, strategy_pnl(engine, name))


def mark(engine: Engine, symbol: str, fallback: float) -> float:
    """The last mid of ``symbol`` (``fallback``, e.g. the entry, before its first quote)."""
    bid, ask = engine.quotes.get(symbol, (math.nan, math.nan))
    mid = (bid + ask) / 2
    return mid if math.isfinite(mid) and mid > 0 else fallback


def exposure_of(converter: Converter, symbol: str, price: float, stop: float, entry: float, volume: float,
                on: str) -> float:
    """The exposure of ``volume`` lots of ``symbol`` on basis ``on`` (account currency): ``notional`` at
    ``price``, ``margin`` (that notional x ``margin_rate``, 1 when the instrument has none), or ``risk``
    (``entry`` to ``stop``; 0 without a stop)."""
    if on == "risk":
        return 0.0 if math.isnan(stop) else converter.risk(symbol, entry, stop, volume)
    notional = converter.notional(symbol, price, volume)
    if on == "margin":
        rate = converter.spec(symbol).margin_rate
        return notional * (rate if rate is not None else 1.0)
    return notional


def exposure(engine: Engine, positions: Iterable[Position], on: str) -> float:
    """The exposure of ``positions`` on basis ``on``, at the last mids, in the account currency."""
    total = 0.0
    for p in positions:
        if engine.converter.known(p.symbol):
            x = exposure_of(engine.converter, p.symbol, mark(engine, p.symbol, p.entry), p.stop_loss, p.entry, p.volume, on)
            total += x if math.isfinite(x) else 0.0
    return total


def figures(engine: Engine) -> dict[str, dict[str, Any]]:
    """Per strategy (sorted): ``capital`` (money), ``capital_share`` (of equity), ``exposure`` (money, on
    ``basis``), ``utilization`` (exposure / capital; 0 without a position), ``utilization_max``, ``open_risk``
    and ``risk_allocation`` (open risk / capital) with its limit, the band and the target in force."""
    equity, on = engine.equity, basis(engine)
    u = engine.rules.allocation.utilization
    out: dict[str, dict[str, Any]] = {}
    for name, s in sorted(engine.rules.strategies.items()):
        cap = capital(engine, name)
        positions = engine.book.open_positions(name)
        used = exposure(engine, positions, on)
        risk = engine.open_risk(name)
        band = s.allocation
        out[name] = {
            "capital": cap, "capital_share": cap / equity if equity else None,
            "target": engine.capital.targets.get(name, band.target), "configured_target": band.target,
            "min": band.min, "max": band.max, "rebalance_threshold": band.rebalance_threshold,
            "basis": on, "exposure": used, "utilization": used / cap if cap > 0 else (0.0 if not used else None),
            "utilization_max": u.max if u is not None else None,
            "open_risk": risk, "risk_of_capital": risk / cap if cap > 0 else (0.0 if not risk else None),
            "risk_allocation": engine.rules.risk_allocation(name),
            "open_positions": engine.book.open_count.get(name, 0),
        }
    return out


def band_state(share: float | None, band: Any, target: float) -> str:
    """Where a capital share lies: ``below_min``, ``above_max``, ``drifted`` (outside target +-
    rebalance_threshold) or ``within``."""
    if share is None:
        return "within"
    if share < band.min - 1e-12:
        return "below_min"
    if share > band.max + 1e-12:
        return "above_max"
    return "drifted" if abs(share - target) > band.rebalance_threshold + 1e-12 else "within"


def watch_bands(engine: Engine, ts: int) -> list[Fired]:
    """The ``alert`` of each strategy whose capital share has just left its ``min``/``max`` band (once per
    excursion: ``engine.outside`` remembers which are out until they come back).

    Runs on every quote: the capital of each strategy is computed inline (as ``capital`` does), and the
    words only for an alert."""
    equity = engine.equity
    if equity <= 0:
        return []
    total, codes, realized, cap = engine.open_pnl.total, engine.codes, engine.book.realized_by, engine.capital
    out: list[Fired] = []
    for name, s in engine.rules.strategies.items():
        code = codes.get(name)
        if engine.pending:  # positions whose close is in flight are still held: the engine's own sum
            open_pnl = engine.unrealized(name)
        else:
            open_pnl = float(total[code]) if code is not None and code < total.size else 0.0
        band = s.allocation
        share = cap.of(name, band.target, engine.equity0, realized.get(name, 0.0) + open_pnl) / equity
        if band.min - 1e-12 <= share <= band.max + 1e-12:
            engine.outside.discard(name)
        elif name not in engine.outside:
            engine.outside.add(name)
            out.append(_band_alert(engine, name, share, equity))
    return sorted(out, key=lambda f: f.strategy or "")


def _band_alert(engine: Engine, name: str, share: float, equity: float) -> Fired:
    """The ``allocation_band`` alert of strategy ``name`` whose capital share ``share`` is outside its band."""
    band = engine.rules.strategies[name].allocation
    target = engine.capital.targets.get(name, band.target)
    below = share < band.min
    reason = (f"capital share of {name} is {share:.2%} of equity, {'below its min' if below else 'above its max'} "
              f"{band.min if below else band.max:.2%} (target {target:.2%})")
    return Fired("allocation_band", "alert", None, name,
                 {"level": "warning", "capital_share": share, "min": band.min, "max": band.max, "target": target,
                  "capital": share * equity, "equity": equity}, reason)


def week(engine: Engine) -> dict[str, Any]:
    """The week's ledger: its start, the equity it started with, its PnL (``realized`` in the week, and the
    change of the open PnL, ``open``), the PnL as a return, the target, progress (return / target) and
    whether (when) it was reached, with what ``on_reached`` does."""
    w, prof = engine.week, engine.rules.profit
    pnl = engine.equity - w.start_equity
    realized = sum(ledger.week_realized for ledger in engine.ledgers.values())
    ret = pnl / w.start_equity if w.start_equity > 0 else 0.0
    return {"week": w.key or None, "start_equity": w.start_equity, "equity": engine.equity, "pnl": pnl,
            "realized": realized, "open": pnl - realized, "return": ret, "target": prof.weekly_growth_target,
            "progress": ret / prof.weekly_growth_target, "reached": w.reached, "reached_ts": w.reached_ts,
            "on_reached": prof.on_reached.model_dump(), "risk_scale": risk_scale(engine),
            "halted": week_halted(engine)}


def week_halted(engine: Engine) -> bool:
    """Whether the weekly target was reached and ``on_reached.halt_new_positions`` holds until the reset."""
    return engine.week.reached and engine.rules.profit.on_reached.halt_new_positions


def risk_scale(engine: Engine) -> float:
    """The factor on ``sizing.risk_per_trade`` now: ``on_reached.scale_risk_per_trade`` once the weekly target
    is reached, until the weekly reset; else 1."""
    return engine.rules.profit.on_reached.scale_risk_per_trade if engine.week.reached else 1.0


def watch_week(engine: Engine, ts: int) -> list[Fired]:
    """Mark the week reached the first time its return reaches ``weekly_growth_target``; return its
    ``alert`` when ``on_reached.alert``."""
    w, prof = engine.week, engine.rules.profit
    if w.reached or w.start_equity <= 0:
        return []
    ret = (engine.equity - w.start_equity) / w.start_equity
    if ret < prof.weekly_growth_target - 1e-12:
        return []
    w.reached, w.reached_ts = True, ts
    if not prof.on_reached.alert:
        return []
    then = [f"risk per trade x{prof.on_reached.scale_risk_per_trade:g}"] if prof.on_reached.scale_risk_per_trade != 1 else []
    then += ["new positions halted"] if prof.on_reached.halt_new_positions else []
    reason = (f"weekly growth target reached: the week's return is {ret:.2%} (target {prof.weekly_growth_target:.2%})"
              + (f"; until the weekly reset: {', '.join(then)}" if then else ""))
    return [Fired("weekly_target", "alert", None, None, {"level": "info", "return": ret, "target": prof.weekly_growth_target,
                                                          "pnl": engine.equity - w.start_equity, "start_equity": w.start_equity},
                  reason)]


def watch(engine: Engine, ts: int) -> list[Fired]:
    """What the capital watches fire at ``ts``: band alerts (``watch_bands``), then the weekly target (``watch_week``)."""
    return watch_bands(engine, ts) + watch_week(engine, ts)


def rebalance(engine: Engine, shares: dict[str, float], ts: int, targets: dict[str, float] | None = None) -> None:
    """Make ``shares`` (strategy -> share of equity, summing to 1) the capital base at ``ts``; the targets
    in force become ``targets`` (default: the shares)."""
    pnls = {name: strategy_pnl(engine, name) for name in shares}
    engine.capital.rebalance(shares, engine.equity, pnls, ts, targets)
