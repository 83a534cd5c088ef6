"""Carrying out what a rule decided: a close (whole or partial) at the last quote, a stop or target moved
to a profit level, a close of every open position, or any other action as the rule worded it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.actions import Action
from engine.rules import decisions
from engine.rules.chaining import Fired

if TYPE_CHECKING:
    from engine.rules.evaluator import Engine


def act(engine: Engine, ts: int, fired: Fired, out: list[Action]) -> None:
    """Carry out ``fired`` on ``engine`` at ``ts`` (epoch ms), appending the actions to ``out``: a ``close``
    (``params.fraction``, default whole) at the last bid (long) or ask (short), on the lot step; a
    ``set_stop_loss``/``set_take_profit`` at ``params.profit`` from the entry, on the tick grid toward
    profit; a ``close_all`` of every open position; anything else as it is."""
    if fired.type == "close" and fired.position_id in engine.book.positions:
        p = engine.book.positions[fired.position_id]
        if not p.is_open:
            return
        bid, ask = engine.quotes.get(p.symbol, (p.entry, p.entry))
        price = bid if p.side > 0 else ask
        fraction = float(fired.params.get("fraction", 1.0))
        volume = decisions.close_volume(p, fraction, engine.converter.spec(p.symbol))
        if volume == 0.0:
            engine.problem(f"{fired.rule}: closing {fraction:g} of {p.id} is below the minimum volume of {p.symbol}: nothing closed")
            return
        kind = "close" if volume >= p.volume else "close_partial"
        if kind == "close":
            engine.kernels[p.symbol].remove(p.id)
        else:
            engine.kernels[p.symbol].reduce(p.id, volume)
        engine.revalue(p.symbol)
        params = {"price": price, "volume": volume, "fraction": decisions.share(volume, p.volume0)}
        engine.emit(out, ts, kind, p.id, p.strategy_type, params, fired.rule, fired.reason)
        return
    if fired.type in ("set_stop_loss", "set_take_profit") and fired.position_id in engine.book.positions:
        p = engine.book.positions[fired.position_id]
        if not p.is_open:
            return
        profit = float(fired.params.get("profit", 0.0))
        level = engine.converter.spec(p.symbol).prices.toward_profit(p.entry * (1 + p.side * profit), p.side)
        what = "stop_loss" if fired.type == "set_stop_loss" else "take_profit"
        previous = p.stop_loss if what == "stop_loss" else p.take_profit
        engine.kernels[p.symbol].set_levels(p.id, **{"stop" if what == "stop_loss" else "take_profit": level})
        engine.book.move(p.id, ts, what, level, fired.rule, engine.version)
        engine.emit(out, ts, fired.type, p.id, p.strategy_type, {what: level, "previous": previous}, fired.rule, fired.reason)
        return
    if fired.type == "close_all":
        items = []
        for p in engine.book.open_positions():
            bid, ask = engine.quotes.get(p.symbol, (p.entry, p.entry))
            items.append({"position_id": p.id, "volume": p.volume, "price": bid if p.side > 0 else ask})
            engine.kernels[p.symbol].remove(p.id)
            engine.revalue(p.symbol)
        engine.emit(out, ts, "close_all", None, fired.strategy, {**fired.params, "positions": items}, fired.rule, fired.reason)
        return
    engine.emit(out, ts, fired.type, fired.position_id, fired.strategy, dict(fired.params), fired.rule, fired.reason)

