"""Render a plan for a risk manager (text) or for CI (JSON)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from engine.actions import Action
from engine.plan.positions import LevelChange, PositionReload
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
        out.extend(_open_positions(plan))
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
    out.extend(_open_positions(plan))
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
        "open_positions": plan.open_positions.to_json() if plan.open_positions is not None else None,
    })


# --- open positions at the end of the history: what the reload changes ----------------------------

_OPEN_TITLE = "\nOpen positions at the end of the history: what the reload changes"


def _v(x: Any) -> str:
    if x is None:
        return "none"
    if isinstance(x, bool):
        return "yes" if x else "no"
    text = str(x)  # prices and volumes are on their grids: a float prints as its decimal
    return text[:-2] if isinstance(x, float) and text.endswith(".0") else text


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:_SHOWN_POSITIONS])
    return shown + (f" and {len(ids) - _SHOWN_POSITIONS} more" if len(ids) > _SHOWN_POSITIONS else "")


def _level(c: LevelChange) -> str:
    """One exit level across the reload: '+' added, '-' removed, '~' edited, '=' kept."""
    b, a = c.before, c.after
    lv = a or b
    assert lv is not None  # a level is on one side at least
    if c.change in ("added", "removed", "kept"):
        mark = {"added": "+", "removed": "-", "kept": "="}[c.change]
        text = (f"at {_v(lv.price)}, leaves {_v(lv.leaves_open)} open"
                f"{f', stop to {_v(lv.stop_to)}' if lv.stop_to is not None else ''}, {'taken' if lv.taken else 'not taken'}")
        if c.change == "added":
            text += " (added: taken before, a removed level that was remembered)" if lv.taken else " (added)"
        elif c.change == "removed":
            text += " (removed: remembered as taken, so it stays taken if a later reload brings it back)" if lv.taken else " (removed)"
        return f"      {mark} {c.key:<28}{text}"
    assert b is not None and a is not None  # edited: on both sides
    parts = []
    for name, fmt in (("price", "at {}"), ("leaves_open", "leaves {} open"), ("stop_to", "stop to {}"),
                      ("exit_percentage", "share {}")):
        x, y = getattr(b, name), getattr(a, name)
        if x is None and y is None:
            continue
        parts.append(fmt.format(_v(x) if x == y else f"{_v(x)} -> {_v(y)}"))
    parts.append("taken (stays taken)" if a.taken else "not taken")
    return f"      ~ {c.key:<28}{', '.join(parts)}"


def _position(p: PositionReload) -> list[str]:
    head = (f"  {p.position_id} ({p.strategy}, {p.symbol} {'BUY' if p.side > 0 else 'SELL'} {_v(p.volume)}"
            f"{'' if p.volume == p.volume0 else f' of {_v(p.volume0)}'} at {_v(p.entry)})")
    if p.refused is not None:
        return [f"{head}: refused: {p.refused}"]
    out = [f"{head}:"]
    levels = p.levels()
    if any(c.change != "kept" for c in levels):
        out.append("    exit levels, by key:")
        out.extend(_level(c) for c in levels)
    out.extend(f"    {name}: {_v(b)} -> {_v(a)}" for name, b, a in p.settings())
    if any(name.startswith("trailing.") for name, _, _ in p.settings()):
        trail = p.after.trailing
        out.append("    the trail is armed: its stop stays and moves only when the new settings tighten it" if trail["armed"]
                   else "    the trail is not armed yet")
    out.append(f"    stop loss {_v(p.after.stop_loss)} and take profit {_v(p.after.take_profit)}: kept")
    return out


def _open_positions(plan: Plan) -> list[str]:
    """The section on the open positions at the end of the history (nothing when not computed)."""
    effects = plan.open_positions
    if effects is None:
        return []
    out = [_OPEN_TITLE]
    if not effects.positions:
        return [*out, "  none: the history leaves no position open."]
    changed, unchanged = effects.changed(), effects.unchanged()
    if effects.refused is not None:
        out.append(f"  The reload is refused (ReloadRefused): {effects.refused}.")
        out.append("  Nothing changes for any open position: the service keeps the active rules.")
    else:
        out.append(f"  {len(effects.positions)} open; the reload changes {len(changed)}, leaves {len(unchanged)} as they are.")
    for strategy, key, b, a in effects.new_defaults:
        out.append(f"  {strategy} defaults.{key}: {_v(b)} -> {_v(a)}: for positions opened after the reload; "
                   "its open positions keep their stop and take profit")
    for p in changed[:_SHOWN_POSITIONS]:
        out.extend(_position(p))
    if len(changed) > _SHOWN_POSITIONS:
        out.append(f"  ... and {len(changed) - _SHOWN_POSITIONS} more (--format json lists them all)")
    if unchanged:
        out.append(f"  Unchanged: {_ids(unchanged)}")
    return out
