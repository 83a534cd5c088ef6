"""Render a plan for a risk manager (text) or for CI (JSON)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from engine.actions import Action
from engine.plan.run import Plan, effect

_SHOWN_POSITIONS = 20


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _brief(a: Action) -> str:
    p = a.params
    detail = ""
    if a.type in ("close", "close_partial"):
        detail = f" {p.get('volume', 0):g} at {p.get('price', 0):.6g}"
    elif a.type in ("set_stop_loss", "set_take_profit"):
        level = p.get("stop_loss", p.get("take_profit"))
        detail = f" to {level:.6g}" if isinstance(level, (int, float)) else ""
    elif a.type == "reject_position":
        detail = f": {'; '.join(p.get('reasons', []))}"
    return f"{_time(a.ts)} {a.type}{detail} ({a.rule})"


def _side_by_side(base: list[Action], proposed: list[Action]) -> list[str]:
    """Merge two action lists by time: '=' in both, '-' only in base, '+' only in proposed."""
    b = [(effect(a), a) for a in base]
    p = [(effect(a), a) for a in proposed]
    lines = []
    i = j = 0
    while i < len(b) or j < len(p):
        if i < len(b) and j < len(p) and b[i][0] == p[j][0]:
            lines.append(f"      = {_brief(b[i][1])}")
            i += 1
            j += 1
        elif j >= len(p) or (i < len(b) and (b[i][1].ts, 0) <= (p[j][1].ts, 1)):
            lines.append(f"      - {_brief(b[i][1])}")
            i += 1
        else:
            lines.append(f"      + {_brief(p[j][1])}")
            j += 1
    return lines


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _pnl(plan: Plan, pid: str) -> tuple[float, float]:
    b = plan.base.summary["positions"].get(pid, {})
    p = plan.proposed.summary["positions"].get(pid, {})
    return b.get("realized_pnl", 0.0) + b.get("unrealized_pnl", 0.0), p.get("realized_pnl", 0.0) + p.get("unrealized_pnl", 0.0)


def render_text(plan: Plan) -> str:
    """The plan as a person reads it: what changed in the rules, then what that changes in effect."""
    out = []
    out.append("Rule parameters that change:")
    out.extend(f"  {c}" for c in plan.changes) if plan.changes else out.append("  none (the change keeps the meaning of the rules)")
    out.append(f"\nRules version {plan.base.version} -> {plan.proposed.version}; history of {plan.events:,} events.")
    if plan.identical:
        out.append("\nNo effect: both rule sets take exactly the same actions on this history.")
        return "\n".join(out)
    changed = plan.changed_positions()
    out.append(f"\nPositions whose actions change: {len(changed)}")
    for pid in changed[:_SHOWN_POSITIONS]:
        b_pnl, p_pnl = _pnl(plan, pid)
        strategy = plan.proposed.strategy_of.get(pid) or plan.base.strategy_of.get(pid, "?")
        out.append(f"  {pid} ({strategy}): PnL {_money(b_pnl)} -> {_money(p_pnl)} ({'+' if p_pnl >= b_pnl else ''}{_money(p_pnl - b_pnl)})")
        out.extend(_side_by_side(plan.base.by_position.get(pid, []), plan.proposed.by_position.get(pid, [])))
    if len(changed) > _SHOWN_POSITIONS:
        out.append(f"  ... and {len(changed) - _SHOWN_POSITIONS} more (--format json lists them all)")
    table = plan.rules_table()
    if table:
        out.append("\nActions by rule:")
        out.append(f"  {'rule':<32}{'base':>8}{'proposed':>10}{'added':>8}{'removed':>9}{'moved':>7}")
        for rule, row in table.items():
            out.append(f"  {rule:<32}{row['base']:>8}{row['proposed']:>10}{row['added']:>8}{row['removed']:>9}{row['moved']:>7}")
    out.append("\nEffects:")
    out.append(f"  {'':<24}{'realized PnL':>28}{'max drawdown':>26}{'breaches':>14}{'rejected':>14}")
    for name, sums in plan.totals().items():
        out.append(f"  {name:<24}{_cell(sums, 'realized_pnl', _money):>28}{_cell(sums, 'max_drawdown', lambda x: f'{x:.2%}'):>26}"
                   f"{_cell(sums, 'breaches', lambda x: f'{x:g}'):>14}{_cell(sums, 'rejected', lambda x: f'{x:g}'):>14}")
    return "\n".join(out)


def _cell(row: dict[str, Any], k: str, fmt: Callable[[Any], str]) -> str:
    b, p, d = row[f"{k}_base"], row[f"{k}_proposed"], row[f"{k}_delta"]
    return f"{fmt(b)} -> {fmt(p)} ({'+' if d >= 0 else ''}{fmt(d)})"


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def to_json(plan: Plan) -> dict[str, Any]:
    """The plan as JSON data."""
    positions = {}
    for pid in plan.changed_positions():
        b_pnl, p_pnl = _pnl(plan, pid)
        positions[pid] = {
            "strategy": plan.proposed.strategy_of.get(pid) or plan.base.strategy_of.get(pid),
            "base": [a.to_json() for a in plan.base.by_position.get(pid, [])],
            "proposed": [a.to_json() for a in plan.proposed.by_position.get(pid, [])],
            "pnl": {"base": b_pnl, "proposed": p_pnl, "delta": p_pnl - b_pnl},
        }
    return _finite({
        "identical": plan.identical,
        "base_version": plan.base.version,
        "proposed_version": plan.proposed.version,
        "events": plan.events,
        "changes": [c.to_json() for c in plan.changes],
        "positions": positions,
        "rules": plan.rules_table(),
        "effects": plan.totals(),
    })
