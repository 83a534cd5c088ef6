"""The JSON shapes the HTTP API and the embeddable coordinator return, built from one account's engine.

Pure functions of an ``Engine`` (and the last optimization); they run on the engine's own thread
(between two events), so they see a consistent book. Times are epoch milliseconds; money is in the
account currency; fractions are fractions (0.01 is 1 %).
"""

from __future__ import annotations

import math
from typing import Any

from engine.actions import Action
from engine.book.positions import Position
from engine.events import EventError, PositionOpened, parse_event
from engine.rules import allocation, reconcile, trading_state
from engine.rules.evaluator import Engine


def _num(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def record(p: Position, *, audit: bool = False) -> dict[str, Any]:
    """What the book knows of a position: attribution, state, realized PnL, fills (and its audit
    trail): the record the service keeps in Redis."""
    out: dict[str, Any] = {
        "id": p.id, "symbol": p.symbol, "strategy_type": p.strategy_type, "strategy_name": p.strategy_name,
        "action": "BUY" if p.side > 0 else "SELL", "status": p.status.value, "volume": p.volume, "volume0": p.volume0,
        "entry_price": p.entry, "stop_loss": _num(p.stop_loss), "take_profit": _num(p.take_profit),
        "opened_ts": p.opened_ts, "closed_ts": p.closed_ts, "realized_pnl": p.realized_pnl,
        "fills": [{"ts": f.ts, "volume": f.volume, "price": f.price, "pnl": f.pnl, "rule": f.rule, **({"deal": f.deal} if f.deal else {})}
                  for f in p.fills],
    }
    if audit:
        out["audit"] = [{"ts": a.ts, "what": a.what, "rule": a.rule, "rules_version": a.rules_version, "why": a.why} for a in p.audit]
    return out


def position(engine: Engine, p: Position, *, audit: bool = False) -> dict[str, Any]:
    """One position: ``record`` plus open PnL and, for an open one, its managed state."""
    out = {**record(p, audit=audit), "unrealized_pnl": 0.0}
    if p.is_open:  # closes sent to the broker whose fills have not come back (a partial close included)
        flight = reconcile.in_flight(engine, p.id)
        out.update(close_pending=flight > 0, volume_in_flight=flight)
    kernel = engine.kernels.get(p.symbol)
    if p.is_open and (kernel is None or p.id not in kernel.ids) and p.symbol in engine.quotes:
        # the engine asked the broker to close it and the fill has not come back: still open, valued at the last quote
        bid, ask = engine.quotes[p.symbol]
        price = bid if p.side > 0 else ask
        if math.isfinite(price) and engine.converter.known(p.symbol):
            out.update(unrealized_pnl=engine.converter.pnl(p.symbol, p.side, p.entry, price, p.volume), price=price,
                       profit_pct=p.side * (price - p.entry) / p.entry, close_pending=True)
    if p.is_open and kernel is not None and p.id in kernel.ids:
        st = kernel.state(p.id)
        price = kernel.bid if p.side > 0 else kernel.ask
        if math.isfinite(price) and engine.converter.known(p.symbol):
            out["unrealized_pnl"] = engine.converter.pnl(p.symbol, p.side, p.entry, price, p.volume)
            out["price"] = price
            out["profit_pct"] = p.side * (price - p.entry) / p.entry
        strategy = engine.rules.strategies.get(p.strategy_type)
        levels = strategy.exit_levels if strategy is not None else []
        trailing = strategy.trailing if strategy is not None else None
        i = kernel.ids.index(p.id)
        enabled = trailing is not None and trailing.trailing_enabled
        out["trailing"] = {
            "enabled": enabled, "armed": st.armed, "moved": st.trailed, "best_price": _num(st.best),
            "distance": _num(trailing.trailing_distance) if trailing is not None and enabled else None,
            "activation": _num(trailing.activation_threshold) if trailing is not None and enabled else None,
            # the price that arms it, on the tick grid: what the kernel compares quotes with
            "activation_price": _num(float(kernel.trail_act[i])) if enabled and not st.armed else None,
        }
        j = next((j for j in range(len(levels)) if not (st.taken >> j) & 1), None)  # the lowest level not taken
        nxt = _level(levels[j]) if j is not None else None
        if nxt is not None and j is not None:  # the exact trigger price and the volume it leaves open, as the kernel holds them
            nxt.update(price=_num(float(kernel.thr[i, j])), leaves_open=float(kernel.targets[i, j]))
        out["partial_profit"] = {
            "levels": len(levels), "levels_hit": st.levels_hit,
            "closed_fraction": round(1 - p.volume / p.volume0, 10) if p.volume0 else 0.0, "next_level": nxt,
        }
        spec = engine.converter.spec(p.symbol)
        out["instrument"] = {"tick_size": spec.prices.step, "digits": spec.digits, "volume_step": spec.volume_step,
                             "volume_min": spec.volume_min, "volume_max": spec.volume_max}
    return out


def proposal(body: dict[str, Any], now_ms: int) -> tuple[dict[str, Any], PositionOpened]:
    """A proposal as the API and the coordinator take it (the fields of a ``position_opened`` event,
    ``ts`` defaulting to now): the event's JSON and the parsed event; raises ``EventError``."""
    obj = {"type": "position_opened", **body}
    obj.setdefault("ts", now_ms)
    event = parse_event(obj)
    if not isinstance(event, PositionOpened):  # a body with its own "type"
        raise EventError(f"type: expected position_opened, found {obj.get('type')!r}")
    return obj, event


def outcome(engine: Engine, position_id: str, actions: list[Action]) -> dict[str, Any]:
    """What the pre-trade checks decided on a proposal: ``open`` with the managed position, or
    ``rejected`` with every failed check; with the actions either way."""
    out = {"actions": [a.to_json() for a in actions]}
    rejected = [a for a in actions if a.type == "reject_position"]
    if rejected:
        return {"status": "rejected", "position_id": position_id,
                "failed_checks": list(rejected[0].params.get("reasons", [rejected[0].reason])), **out}
    p = engine.book.positions.get(position_id)
    return {"status": "open", "position": position(engine, p) if p is not None else None, **out}


def _level(level: Any) -> dict[str, Any]:
    d = {k: v for k, v in level.model_dump().items() if v is not None}
    return d


def positions(engine: Engine, status: str | None = None) -> list[dict[str, Any]]:
    """Every position of the book (or those with ``status``: open, closed, rejected, …), oldest first."""
    out = []
    for p in engine.book.positions.values():
        if status == "open" and not p.is_open:
            continue
        if status not in (None, "open") and p.status.value != status:
            continue
        out.append(position(engine, p))
    return out


def daily(engine: Engine) -> dict[str, Any]:
    start = engine.day.start_equity
    pnl = engine.equity - start
    limit = engine.rules.limits.daily_loss
    return {"day": engine.day.key or None, "start_equity": start, "equity": engine.equity, "pnl": pnl,
            "pnl_pct": pnl / start if start else 0.0, "limit": limit.max, "breached": engine.day.breached}


def risk_status(engine: Engine) -> dict[str, Any]:
    """``GET /api/risk-management/status``: active positions, trailing stops, partial profits, dynamic SL/TP."""
    open_ = [position(engine, p) for p in engine.book.open_positions()]
    dynamic: list[dict[str, Any]] = []
    for p in engine.book.positions.values():
        for a in p.audit:
            if a.rule == "dynamic_sltp":
                dynamic.append({"position_id": p.id, "ts": a.ts, "what": a.what, "why": a.why, "rules_version": a.rules_version})
    dynamic.sort(key=lambda d: d["ts"])
    return {
        "rules_version": engine.version,
        "halted": engine.portfolio.halted(engine.version),
        "trading_state": trading_state.listing(engine)[1],  # the account's effective state; each state: /api/trading-state
        "daily_loss": daily(engine),
        "weekly_target": allocation.week(engine),
        "allocations": allocation.figures(engine),
        "active_positions": open_,
        "trailing_stops": [{"position_id": p["id"], "strategy": p["strategy_type"], "stop_loss": p["stop_loss"], **p["trailing"]}
                           for p in open_ if p.get("trailing", {}).get("enabled")],
        "partial_profit": [{"position_id": p["id"], "strategy": p["strategy_type"], **p["partial_profit"]}
                           for p in open_ if p.get("partial_profit", {}).get("levels")],
        "dynamic_sltp_adjustments": dynamic[-100:],
        "counts": dict(engine.counts),
    }


def exposure(engine: Engine) -> dict[str, Any]:
    """Gross and net notional per symbol and open risk per strategy against its allowance."""
    by_symbol: dict[str, dict[str, float]] = {}
    risk: dict[str, float] = {}
    for p in engine.book.open_positions():
        if not engine.converter.known(p.symbol):
            continue
        notional = engine.converter.notional(p.symbol, p.entry, p.volume)
        if not math.isfinite(notional):
            continue
        s = by_symbol.setdefault(p.symbol, {"gross": 0.0, "net": 0.0})
        s["gross"] += notional
        s["net"] += p.side * notional
    equity = engine.equity
    for name in sorted(engine.rules.strategies):
        r = engine.open_risk(name)
        risk[name] = r
    return {
        "equity": equity,
        "gross_notional": sum(s["gross"] for s in by_symbol.values()),
        "by_symbol": by_symbol,
        "open_risk": {n: {"amount": r, "of_equity": r / equity if equity else None,
                          "of_capital": r / c if (c := allocation.capital(engine, n)) > 0 else None,
                          "allowed": engine.rules.risk_allocation(n)}
                      for n, r in risk.items()},
    }


def portfolio_summary(engine: Engine, optimization: dict[str, Any] | None = None) -> dict[str, Any]:
    """``GET /api/position-management/portfolio-summary``: allocations (capital share, utilization, band), PnL,
    recommendations, exposure, the weekly target."""
    summary = engine.summary()
    equity = engine.equity
    allocations = {name: {**f, "current": f["capital_share"], "equity": f["capital"],
                          "band_state": allocation.band_state(f["capital_share"], engine.rules.strategies[name].allocation, f["target"])}
                   for name, f in allocation.figures(engine).items()}
    return {
        "rules_version": engine.version,
        "equity": equity,
        "allocations": allocations,
        "pnl": {
            "realized": summary["portfolio"]["realized_pnl"], "unrealized": summary["portfolio"]["unrealized_pnl"],
            "by_strategy": {n: {"realized": s["realized_pnl"], "unrealized": s["unrealized_pnl"]}
                            for n, s in summary["strategies"].items()},
        },
        "metrics": {k: _num(v) if isinstance(v, float) else v for k, v in summary["portfolio"].items()},
        "rebalancing_recommendations": (optimization or {}).get("recommendations", []),
        "risk_exposure": exposure(engine),
        "profit_locking": {n: s["profit_locking"] for n, s in summary["strategies"].items()},
        "weekly_target": allocation.week(engine),
        "band_recommendations": band_recommendations(allocations),
        "capital_rebalanced_at": engine.capital.ts,
    }


def band_recommendations(allocations: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """A recommendation for each strategy whose capital share is outside target +- rebalance_threshold
    (or its min/max), most distant first: priority ``high`` from twice the threshold (or outside the band),
    else ``medium``."""
    out = []
    for name, a in allocations.items():
        if a["band_state"] == "within" or a["capital_share"] is None:
            continue
        drift = a["target"] - a["capital_share"]
        high = abs(drift) >= 2 * a["rebalance_threshold"] or a["band_state"] != "drifted"
        out.append({"strategy": name, "current": a["capital_share"], "target": a["target"], "drift": drift,
                    "threshold": a["rebalance_threshold"], "band_state": a["band_state"],
                    "action": "increase" if drift > 0 else "decrease", "priority": "high" if high else "medium"})
    return sorted(out, key=lambda r: -abs(r["drift"]))

