"""Input events: quotes and position events, as trading pipelines send them, validated strictly.

JSON objects with a ``type``:

- ``tick``: ``ts``, ``symbol``, ``bid`` and ``ask`` (or ``price`` for both);
- ``position_opened``: ``ts``, ``position_id``, ``symbol``, ``strategy_type``, ``strategy_name``,
  ``action`` (BUY or SELL), ``volume``, ``entry_price``, optional ``stop_loss`` and ``take_profit``
  (a proposal: it passes the pre-trade checks first);
  and ``existing`` (true: the position is already open at the broker, e.g. found by a position sync;
  it is taken over without pre-trade checks) with, optionally, ``volume0``: the volume it was opened
  with, when part of it was closed already (the exit levels that closed it count as taken);
- ``position_closed``: ``ts``, ``position_id``, optional ``price`` (closed outside the engine, e.g. by
  the trader or the broker's own stop);
- ``fill``: ``ts``, ``position_id``, ``volume``, ``price``, optional ``rule`` and ``action_id`` (a
  broker reports, later than the action, that it closed that volume: with ``action_id``, the fill of
  an action the engine emitted, whose volume the engine already stopped managing; without, a close at
  the broker the engine did not ask for);
- ``clock``: ``ts`` (time passes with no quote: the daily and weekly resets that fall before it run).

``ts`` is epoch milliseconds or an ISO-8601 time (UTC when it has no offset). A bad event raises
``EventError`` saying which field is wrong and why; nothing else is accepted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Union

from engine.errors import RiskrailError


class EventError(RiskrailError):
    """An input event that is malformed: the message says which field and why."""


@dataclass(frozen=True)
class Tick:
    ts: int
    symbol: str
    bid: float
    ask: float


@dataclass(frozen=True)
class PositionOpened:
    ts: int
    position_id: str
    symbol: str
    strategy_type: str
    strategy_name: str
    side: int  # +1 BUY, -1 SELL
    volume: float
    entry_price: float
    stop_loss: float | None
    take_profit: float | None
    existing: bool = False
    volume0: float | None = None  # an existing position's original volume, when more than ``volume``


@dataclass(frozen=True)
class PositionClosed:
    ts: int
    position_id: str
    price: float | None


@dataclass(frozen=True)
class Fill:
    ts: int
    position_id: str
    volume: float
    price: float
    rule: str = "broker"
    action_id: str | None = None


@dataclass(frozen=True)
class Clock:
    ts: int


Event = Union[Tick, PositionOpened, PositionClosed, Fill, Clock]


def parse_ts(value: Any) -> int:
    """Return epoch milliseconds from epoch milliseconds or an ISO-8601 string."""
    if isinstance(value, bool):
        raise EventError(f"ts: expected epoch milliseconds or an ISO-8601 time, found {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value < 0:
            raise EventError(f"ts: expected epoch milliseconds, found {value!r}")
        return int(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise EventError(f"ts: expected epoch milliseconds or an ISO-8601 time, found {value!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(round(dt.timestamp() * 1000))
    raise EventError(f"ts: expected epoch milliseconds or an ISO-8601 time, found {value!r}")


def _num(obj: dict, key: str, *, positive: bool = True, optional: bool = False) -> float | None:
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise EventError(f"{key}: missing")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EventError(f"{key}: expected a number, found {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise EventError(f"{key}: expected a finite number, found {v!r}")
    if positive and v <= 0:
        raise EventError(f"{key}: expected a number above 0, found {v!r}")
    return v


def _str(obj: dict, key: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v:
        raise EventError(f"{key}: expected a non-empty string, found {v!r}")
    return v


def parse_event(obj: Any) -> Event:
    """Validate one decoded JSON event; raise ``EventError`` when it is malformed."""
    if not isinstance(obj, dict):
        raise EventError(f"expected a JSON object, found {type(obj).__name__}")
    kind = obj.get("type")
    if "ts" not in obj:
        raise EventError("ts: missing")
    ts = parse_ts(obj["ts"])
    if kind == "tick":
        if "price" in obj and "bid" not in obj and "ask" not in obj:
            bid = ask = _num(obj, "price")
        else:
            bid, ask = _num(obj, "bid"), _num(obj, "ask")
        if ask < bid:
            raise EventError(f"ask {ask} is below bid {bid}")
        return Tick(ts, _str(obj, "symbol"), bid, ask)
    if kind == "position_opened":
        action = obj.get("action")
        if action not in ("BUY", "SELL"):
            raise EventError(f"action: expected BUY or SELL, found {action!r}")
        return PositionOpened(
            ts, _str(obj, "position_id"), _str(obj, "symbol"), _str(obj, "strategy_type"),
            obj.get("strategy_name") if isinstance(obj.get("strategy_name"), str) else _str(obj, "strategy_type"),
            1 if action == "BUY" else -1, _num(obj, "volume"), _num(obj, "entry_price"),
            _num(obj, "stop_loss", optional=True), _num(obj, "take_profit", optional=True),
            _bool(obj, "existing"), _volume0(obj),
        )
    if kind == "position_closed":
        return PositionClosed(ts, _str(obj, "position_id"), _num(obj, "price", optional=True))
    if kind == "fill":
        rule = obj.get("rule", "broker")
        if not isinstance(rule, str) or not rule:
            raise EventError(f"rule: expected a non-empty string, found {rule!r}")
        action_id = obj.get("action_id")
        if action_id is not None and (not isinstance(action_id, str) or not action_id):
            raise EventError(f"action_id: expected a non-empty string, found {action_id!r}")
        return Fill(ts, _str(obj, "position_id"), _num(obj, "volume"), _num(obj, "price"), rule, action_id)
    if kind == "clock":
        return Clock(ts)
    raise EventError(f"type: expected tick, position_opened, position_closed, fill or clock, found {kind!r}")


def _volume0(obj: dict) -> float | None:
    v = _num(obj, "volume0", optional=True)
    if v is None:
        return None
    if not obj.get("existing"):
        raise EventError("volume0: only a position taken over (existing: true) has an original volume of its own")
    if v < obj["volume"]:
        raise EventError(f"volume0: expected at least the volume {obj['volume']}, found {v}")
    return v


def _bool(obj: dict, key: str) -> bool:
    v = obj.get(key, False)
    if not isinstance(v, bool):
        raise EventError(f"{key}: expected true or false, found {v!r}")
    return v


def to_json(event: Event) -> dict[str, Any]:
    """Return the JSON object ``parse_event`` reads back as ``event``."""
    if isinstance(event, Tick):
        return {"type": "tick", "ts": event.ts, "symbol": event.symbol, "bid": event.bid, "ask": event.ask}
    if isinstance(event, PositionOpened):
        out = {"type": "position_opened", "ts": event.ts, "position_id": event.position_id, "symbol": event.symbol,
               "strategy_type": event.strategy_type, "strategy_name": event.strategy_name,
               "action": "BUY" if event.side > 0 else "SELL", "volume": event.volume, "entry_price": event.entry_price,
               "stop_loss": event.stop_loss, "take_profit": event.take_profit}
        if event.existing:
            out["existing"] = True
        if event.volume0 is not None:
            out["volume0"] = event.volume0
        return out
    if isinstance(event, PositionClosed):
        return {"type": "position_closed", "ts": event.ts, "position_id": event.position_id, "price": event.price}
    if isinstance(event, Fill):
        out = {"type": "fill", "ts": event.ts, "position_id": event.position_id, "volume": event.volume,
               "price": event.price, "rule": event.rule}
        if event.action_id is not None:
            out["action_id"] = event.action_id
        return out
    return {"type": "clock", "ts": event.ts}
