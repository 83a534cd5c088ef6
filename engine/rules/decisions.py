"""What the engine decides becomes an action: the type, parameters, rule and human reason of each.

A decision is the action before it has an id (``Engine`` gives it one when it emits it, from the
rules version, the event's sequence number and the action's rank in the event). The functions here
only word them; they change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engine.book.positions import Position
from engine.config.grid import NOISE
from engine.config.models import Instrument
from engine.events import BrokerAlert, PositionOpened
from engine.rules.kernel import Hit

# ts, type, position_id, strategy, params, rule, reason
Decision = tuple[int, str, "str | None", "str | None", dict[str, Any], str, str]

#: decimals of the shares and sums of money an action carries: far below any real figure, far above
#: the noise a float quotient or sum leaves (0.02 / 0.1 is 0.19999999999999998)
_DECIMALS = 10


def share(volume: float, volume0: float) -> float:
    """``volume`` as a fraction of ``volume0``, without float noise (0.02 of 0.1 is 0.2)."""
    return round(volume / volume0, _DECIMALS)


def clean(amount: float) -> float:
    """A volume difference or a sum of money without float noise (27.499999999999748 is 27.5)."""
    return round(amount, _DECIMALS - 2)


_CLOSES = {"stop_loss": "stop", "trailing_stop": "trailing stop", "take_profit": "take profit"}
_MOVERS = {"trailing": "trailing stop", "dynamic_sltp": "dynamic SL/TP"}


def close_volume(p: Position, fraction: float, spec: Instrument) -> float:
    """The volume a custom rule's ``close: {fraction}`` closes of ``p`` (lots): ``fraction`` of the
    original volume rounded down to the lot step, all that remains from 1 on or when less than
    ``volume_min`` would remain, and 0.0 (nothing) when it is below ``volume_min`` itself (docs/engine.md)."""
    volume = p.volume if fraction >= 1 else min(spec.lots.down(p.volume0 * fraction), p.volume)
    if p.volume - volume < spec.volume_min * (1 - NOISE):
        return p.volume
    return 0.0 if volume < spec.volume_min * (1 - NOISE) else volume


def of_hit(ts: int, p: Position, hit: Hit) -> Decision:
    """The action of a kernel hit on position ``p``: a close, an exit level's partial close, or a stop
    or target move (``p`` still holds the level before the move)."""
    if hit.kind == "close":
        side = "bid" if p.side > 0 else "ask"
        level = p.stop_loss if hit.rule != "take_profit" else p.take_profit
        return (ts, "close", p.id, p.strategy_type, {"price": hit.price, "volume": hit.volume, "reason": hit.rule},
                hit.rule, f"{_CLOSES[hit.rule]} {level:.10g} reached: {side} {hit.price:.10g}")
    if hit.kind == "close_partial":
        level = int(hit.rule.rsplit(".", 1)[1])
        fraction = share(hit.volume, p.volume0)
        why = f"exit level {level + 1} reached: closing {hit.volume:g} lots ({fraction:.4g} of the original volume, on the lot step)"
        return (ts, "close_partial", p.id, p.strategy_type,
                {"volume": hit.volume, "fraction": fraction, "price": hit.price, "level": level}, hit.rule, f"{why} at {hit.price:.10g}")
    what = "stop_loss" if hit.kind == "set_stop_loss" else "take_profit"
    by = _MOVERS.get(hit.rule) or f"exit level {int(hit.rule.rsplit('.', 1)[1]) + 1}"
    return (ts, hit.kind, p.id, p.strategy_type, {what: hit.price, "previous": hit.previous}, hit.rule,
            f"{by} moves the {what.replace('_', ' ')} from {hit.previous:.10g} to {hit.price:.10g}")


def lock_profit(ts: int, p: Position, pnl: float, amounts: dict[str, float], split: Any) -> Decision:
    """The ``lock_profit`` of a realized gain of ``p``, split into ``amounts`` by ``split``'s shares."""
    return (ts, "lock_profit", p.id, p.strategy_type, {"pnl": clean(pnl), **{k: clean(v) for k, v in amounts.items()}}, "profit_locking",
            f"realized {pnl:.2f} split {split.big_trades:g}/{split.weekly_target:g}/{split.compound:g}")


def resized(ts: int, p: Position, proposed: float, volume: float, entry: float, by: str = "max_position_size") -> Decision:
    """The ``close_partial`` telling the pipeline to reduce a proposal a check resized (``by``: the check
    whose limit set the volume: ``max_position_size``, ``risk_allocation``, ``utilization``, ``exposure``)."""
    return (ts, "close_partial", p.id, p.strategy_type,
            {"volume": clean(proposed - volume), "fraction": share(proposed - volume, proposed), "price": entry},
            by, f"resized from {proposed:g} to {volume:.10g} lots to respect {by}")


def reasons_of(rejects: Iterable[Any]) -> list[str]:
    """Every reason of the ``reject_position`` decisions a proposal met (``Fired``), each once, in order."""
    out: list[str] = []
    for f in rejects:
        out.extend(r for r in f.params.get("reasons", [f.reason]) if r not in out)
    return out


def broker_alert(e: BrokerAlert) -> Decision:
    """The ``alert`` action of a broker adapter's alert (rule ``broker``), journaled and shown like any action."""
    return (e.ts, "alert", e.position_id, None, {"message": e.message, "action_id": e.action_id, "source": "broker"}, "broker",
            e.message)


def defaults(e: PositionOpened, stop: float, tp: float, d: Any, note: str = "") -> list[Decision]:
    """The ``set_stop_loss``/``set_take_profit`` announcing the strategy's defaults ``d`` to a position
    that came without its own, and (rule ``tick_grid``) a level of its own the engine put on the tick grid
    (1.0945499999 manages as 1.09455: the pipeline learns the level the engine compares quotes with)."""
    out: list[Decision] = []
    for what, own, level, default in (("stop_loss", e.stop_loss, stop, d.stop_loss), ("take_profit", e.take_profit, tp, d.take_profit)):
        if own is None:
            out.append((e.ts, f"set_{what}", e.position_id, e.strategy_type, {what: level, "previous": None},
                        "defaults", f"default {what} {default:g} of entry{note}"))
        elif own != level:
            out.append((e.ts, f"set_{what}", e.position_id, e.strategy_type, {what: level, "previous": own}, "tick_grid",
                        f"{what} {own:.10g} put on the tick grid: {level:.10g}{note}"))
    return out
