"""Input events: quotes and position events, as trading pipelines send them, validated strictly.

JSON objects with a ``type``:

- ``tick``: ``ts``, ``symbol``, ``bid`` and ``ask`` (or ``price`` for both);
- ``position_opened``: ``ts``, ``position_id``, ``symbol``, ``strategy_type``, ``strategy_name``,
  ``action`` (BUY or SELL), ``volume``, ``entry_price``, optional ``stop_loss`` and ``take_profit``
  (a proposal: it passes the pre-trade checks first; ``volume`` may be missing or null, read as nan,
  for the engine to size it from the strategy's ``sizing``);
  and ``existing`` (true: the position is already open at the broker, e.g. found by a position sync;
  it is taken over without pre-trade checks) with, optionally, ``volume0``: the volume it was opened
  with, when part of it was closed already (the exit levels that closed it count as taken);
- ``position_closed``: ``ts``, ``position_id``, optional ``price`` (closed outside the engine, e.g. by
  the trader or the broker's own stop);
- ``fill``: ``ts``, ``position_id``, ``volume``, ``price``, optional ``rule``, ``action_id`` and
  ``deal_id`` (a broker reports, later than the action, that it closed that volume: with ``action_id``,
  the fill of an action the engine emitted, whose volume the engine already stopped managing; without,
  a close at the broker the engine did not ask for; ``deal_id``: the broker's id of the deal, so that a
  deal reported twice, e.g. by a replay of the broker's history, is booked once);
- ``clock``: ``ts`` (time passes with no quote: the daily and weekly resets that fall before it run);
- ``broker_alert``: ``ts``, ``message``, optional ``position_id`` and ``action_id`` (a broker adapter's
  alert: the engine journals it and emits it as an ``alert`` action, rule ``broker``);
- ``broker_positions``: ``ts``, ``positions`` (at most ``MAX_BROKER_POSITIONS``, each ``position_id``,
  ``symbol``, ``volume`` and, when the broker tells them, ``stop_loss`` and ``take_profit``: null or 0
  for none, left out when not known), optional ``source`` (the broker's view of the account's open
  positions, sent after the fills of the deals it found: the engine reconciles its book with it,
  ``engine.rules.reconcile``);
- ``trading_state`` and ``flatten``: an operator's change (``engine.operator``).

``ts`` is epoch milliseconds or an ISO-8601 time (UTC when it has no offset), between 2000-01-01 and
2100-01-01: a number that can only be epoch seconds, microseconds or nanoseconds is refused with the
unit it looks like. A bad event raises ``EventError`` saying which field is wrong and why; nothing else
is accepted.

This module is the one validation boundary every input event crosses before the engine sees it
(the Redis input stream, the HTTP API, MetaTrader 5 through the stream, event files): ``decode``
takes the raw bytes or text of one event and checks, in this order, its size (``MAX_EVENT_BYTES``),
its encoding (UTF-8), its JSON (no NaN or Infinity, integers of at most ``MAX_INT_DIGITS`` digits,
nesting at most ``MAX_DEPTH`` deep), then ``parse_event`` checks each field: types, finite numbers
within the bounds of ``LIMITS``, identifiers of at most ``MAX_ID_LENGTH`` printable characters, and the
timestamp range. Whatever fails is an ``EventError`` whose message is the reason the service
dead-letters it with.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine import _jsonlimits as _limits
from engine import operator
from engine.errors import RiskrailError
from engine.operator import Flatten, TradingStateChange


class EventError(RiskrailError):
    """An input event that is malformed: the message says which field and why."""


#: the longest message of a ``broker_alert``
MAX_ALERT_CHARS = 1000
#: the largest event accepted, in bytes of its UTF-8 JSON (an event is a flat object of a dozen fields)
MAX_EVENT_BYTES = 64 * 1024
#: the deepest nesting of arrays and objects accepted anywhere in an event (events are flat: 1)
MAX_DEPTH = 8
#: the most digits of a JSON integer (a price or a timestamp needs 13 or fewer)
MAX_INT_DIGITS = 20
#: the longest position id, symbol, strategy, rule, action or deal id, in characters
MAX_ID_LENGTH = 128
#: the most positions one ``broker_positions`` report lists (64 KiB hold about 500 of them anyway)
MAX_BROKER_POSITIONS = 1000
#: epoch milliseconds accepted for ``ts``: 2000-01-01T00:00:00Z (inclusive) to 2100-01-01T00:00:00Z (exclusive)
TS_MIN_MS = 946_684_800_000
TS_MAX_MS = 4_102_444_800_000
#: upper bounds of the numeric fields (the lower bound is above 0 for all): prices in the quote
#: currency, volumes in lots. Far above any traded instrument, far below where money overflows a float.
LIMITS = {"price": 1e9, "volume": 1e9}
_PRICES = ("bid", "ask", "price", "entry_price", "stop_loss", "take_profit")


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
    rule: str | None = None  # None: the rule of the action it fills (action_id), else "broker"
    action_id: str | None = None
    deal_id: str | None = None  # the broker's deal: a fill of a deal already booked is not booked again


@dataclass(frozen=True)
class BrokerPosition:
    """One open position as the broker holds it: ``volume`` in lots; ``stop_loss`` and ``take_profit`` are
    the broker-side levels, ``0.0`` when there is none, ``None`` when the report does not tell."""

    position_id: str
    symbol: str
    volume: float
    stop_loss: float | None = None
    take_profit: float | None = None


@dataclass(frozen=True)
class BrokerPositions:
    """The broker's view of the account's open positions at ``ts``, for the engine to reconcile its book with."""

    ts: int
    positions: tuple[BrokerPosition, ...]
    source: str | None = None


@dataclass(frozen=True)
class Clock:
    ts: int


@dataclass(frozen=True)
class BrokerAlert:
    """What a broker adapter could not do as asked (a close below the minimum volume, stops moved outside
    the stops level, an order pending): journaled like every event, and an ``alert`` action of the engine."""

    ts: int
    message: str
    position_id: str | None = None
    action_id: str | None = None


Event = Tick | PositionOpened | PositionClosed | Fill | Clock | BrokerAlert | BrokerPositions | TradingStateChange | Flatten


def parse_ts(value: Any) -> int:
    """Return epoch milliseconds from epoch milliseconds or an ISO-8601 string (UTC without an offset).

    Raises ``EventError`` for anything else, and for a time outside 2000-01-01 to 2100-01-01 (a number
    there in epoch seconds, microseconds or nanoseconds is named as such).
    """
    if isinstance(value, bool):
        raise EventError(f"ts: expected epoch milliseconds or an ISO-8601 time, found {value!r}")
    if isinstance(value, (int, float)):
        if isinstance(value, int) and abs(value) >= 10**MAX_INT_DIGITS:
            raise EventError(f"ts: expected epoch milliseconds, found an integer of {len(str(abs(value)))} digits")
        if not math.isfinite(value):
            raise EventError(f"ts: expected epoch milliseconds, found {value!r}")
        return _in_range(int(value), repr(value))
    if isinstance(value, str):
        if len(value) > 64:
            raise EventError(f"ts: expected epoch milliseconds or an ISO-8601 time, found a string of {len(value)} characters")
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise EventError(f"ts: expected epoch milliseconds or an ISO-8601 time, found {value!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        try:
            ms = round(dt.timestamp() * 1000)
        except (OverflowError, ValueError):
            raise EventError(f"ts: expected a time between 2000-01-01 and 2100-01-01, found {value!r}") from None
        return _in_range(ms, repr(value))
    raise EventError(f"ts: expected epoch milliseconds or an ISO-8601 time, found {show(value)}")


def _in_range(ms: int, shown: str) -> int:
    if TS_MIN_MS <= ms < TS_MAX_MS:
        return ms
    for unit, factor in (("seconds", 1e-3), ("microseconds", 1e3), ("nanoseconds", 1e6)):
        if TS_MIN_MS * factor <= ms < TS_MAX_MS * factor:
            raise EventError(f"ts: expected epoch milliseconds, found {shown}, which looks like epoch {unit}")
    raise EventError(f"ts: expected a time between 2000-01-01 and 2100-01-01 (epoch milliseconds "
                     f"{TS_MIN_MS} to {TS_MAX_MS}), found {shown}")


def show(value: Any) -> str:
    """A short rendering of a bad value for a message (a hostile value can be megabytes long)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:60] + f"… ({len(text)} characters)"


def _proposed_volume(obj: dict) -> float:
    """A proposal's ``volume``, nan when it is missing or null (to be sized); a position taken over
    (``existing``) must have one."""
    if obj.get("volume") is None and obj.get("existing") is not True:
        return math.nan
    return _num(obj, "volume")


def _opt_num(obj: dict, key: str) -> float | None:
    """``obj[key]`` checked as ``_num`` does, or ``None`` when it is missing or null."""
    return None if obj.get(key) is None else _num(obj, key)


def _num(obj: dict, key: str, *, positive: bool = True) -> float:
    """``obj[key]`` as a finite float within ``LIMITS`` (above 0 when ``positive``); ``EventError`` otherwise."""
    if key not in obj or obj[key] is None:
        raise EventError(f"{key}: missing")
    v = obj[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EventError(f"{key}: expected a number, found {show(v)}")
    bound = LIMITS["price"] if key in _PRICES else LIMITS["volume"]
    if isinstance(v, int) and abs(v) > bound:  # float() of a huge integer overflows
        raise EventError(f"{key}: expected a number up to {bound:g}, found an integer of {len(str(abs(v)))} digits")
    v = float(v)
    if not math.isfinite(v):
        raise EventError(f"{key}: expected a finite number, found {v!r}")
    if positive and v <= 0:
        raise EventError(f"{key}: expected a number above 0, found {v!r}")
    if abs(v) > bound:
        raise EventError(f"{key}: expected a number up to {bound:g}, found {v!r}")
    return v


def _str(obj: dict, key: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str) or not v:
        raise EventError(f"{key}: expected a non-empty string, found {show(v)}")
    return _ident(key, v)


def _ident(key: str, v: str) -> str:
    if len(v) > MAX_ID_LENGTH:
        raise EventError(f"{key}: expected at most {MAX_ID_LENGTH} characters, found {len(v)}")
    if not v.isprintable():
        raise EventError(f"{key}: expected printable characters, found {show(v)}")
    return v


def loads(raw: bytes | str, *, max_bytes: int = MAX_EVENT_BYTES) -> dict[str, Any]:
    """Decode the raw text of one event into a JSON object, checking size, encoding and JSON first.

    ``raw``: UTF-8 bytes or text, at most ``max_bytes`` bytes. Refuses, with ``EventError``: larger
    input, bytes that are not UTF-8, invalid JSON, ``NaN``/``Infinity``, integers of more than
    ``MAX_INT_DIGITS`` digits, nesting deeper than ``MAX_DEPTH``, and anything but an object.
    """
    obj = parse_json(raw, max_bytes=max_bytes)
    if not isinstance(obj, dict):
        raise EventError(f"expected a JSON object, found {_json_kind(obj)}")
    return obj


def parse_json(raw: bytes | str, *, max_bytes: int | None = MAX_EVENT_BYTES, finite: bool = True) -> Any:
    """Decode any JSON value with the checks of ``loads`` (size, UTF-8, digits, depth); raise ``EventError``.

    ``max_bytes=None``: no size limit (a record file's row of many rows). ``finite=False`` reads
    ``NaN`` and ``Infinity`` as floats, left for ``parse_event`` to refuse with the field's name.
    """
    if isinstance(raw, str):
        size = len(raw) if raw.isascii() else len(raw.encode("utf-8", "surrogatepass"))
    elif isinstance(raw, (bytes, bytearray, memoryview)):
        size = len(raw)
    else:
        raise EventError(f"expected the JSON text of an event, found {type(raw).__name__}")
    if max_bytes is not None and size > max_bytes:
        raise EventError(f"expected an event of at most {max_bytes} bytes, found {size} bytes")
    if not isinstance(raw, str):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EventError(f"expected UTF-8 text, found undecodable bytes ({exc.reason} at byte {exc.start})") from None
    if not raw.strip():
        raise EventError("expected a JSON object, found nothing")
    try:
        _limits.check_depth(raw, MAX_DEPTH)
        obj = json.loads(raw, parse_constant=_limits.NonFinite if finite else float,
                         parse_int=functools.partial(_limits.bounded_int, digits=MAX_INT_DIGITS))
        if finite:
            _limits.refuse_non_finite(obj)  # nesting is bounded by MAX_DEPTH: this recursion is too
    except json.JSONDecodeError as exc:  # a ValueError too: the grammar's, before the limits' own
        raise EventError(f"invalid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:  # check_depth makes this unreachable; kept as the last line of defence
        raise EventError(f"expected JSON nested at most {MAX_DEPTH} deep") from None
    except UnicodeEncodeError:
        raise EventError("expected UTF-8 text, found a lone surrogate") from None
    except ValueError as exc:  # a limit of engine._jsonlimits (after its subclasses above)
        raise EventError(str(exc)) from None
    return obj


def decode(raw: bytes | str, *, max_bytes: int = MAX_EVENT_BYTES) -> Event:
    """Validate the raw text of one input event (``loads``, then ``parse_event``); raise ``EventError``."""
    return parse_event(loads(raw, max_bytes=max_bytes))


def _json_kind(obj: Any) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
            type(None): "null"}.get(type(obj), type(obj).__name__)


def parse_event(obj: Any) -> Event:
    """Validate one decoded JSON event; raise ``EventError`` when it is malformed."""
    if not isinstance(obj, dict):
        raise EventError(f"expected a JSON object, found {_json_kind(obj)}")
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
            raise EventError(f"action: expected BUY or SELL, found {show(action)}")
        return PositionOpened(
            ts, _str(obj, "position_id"), _str(obj, "symbol"), _str(obj, "strategy_type"),
            _str(obj, "strategy_name") if isinstance(obj.get("strategy_name"), str) and obj["strategy_name"]
            else _str(obj, "strategy_type"),
            1 if action == "BUY" else -1, _proposed_volume(obj), _num(obj, "entry_price"),
            _opt_num(obj, "stop_loss"), _opt_num(obj, "take_profit"),
            _bool(obj, "existing"), _volume0(obj),
        )
    if kind == "position_closed":
        return PositionClosed(ts, _str(obj, "position_id"), _opt_num(obj, "price"))
    if kind == "fill":
        rule = obj.get("rule")  # None: the rule of the action it fills (action_id), else "broker"
        if rule is not None and (not isinstance(rule, str) or not rule):
            raise EventError(f"rule: expected a non-empty string, found {show(rule)}")
        if rule is not None:
            _ident("rule", rule)
        return Fill(ts, _str(obj, "position_id"), _num(obj, "volume"), _num(obj, "price"), rule,
                    _opt_str(obj, "action_id"), _opt_str(obj, "deal_id"))
    if kind == "clock":
        return Clock(ts)
    if kind == "broker_alert":
        message = _str(obj, "message")
        if len(message) > MAX_ALERT_CHARS:
            raise EventError(f"message: expected at most {MAX_ALERT_CHARS} characters, found {len(message)}")
        return BrokerAlert(ts, message, _opt_str(obj, "position_id"), _opt_str(obj, "action_id"))
    if kind == "broker_positions":
        return BrokerPositions(ts, _broker_positions(obj), _opt_str(obj, "source"))
    if kind in operator.TYPES:
        return operator.parse(obj, kind, ts)
    raise EventError("type: expected tick, position_opened, broker_positions, position_closed, fill, clock or broker_alert "
                     f"(or an operator's trading_state or flatten), found {show(kind)}")


def _opt_str(obj: dict, key: str) -> str | None:
    """``obj[key]`` as an identifier (``_ident``), or ``None`` when it is missing or null."""
    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise EventError(f"{key}: expected a non-empty string, found {show(v)}")
    return _ident(key, v)


def _broker_positions(obj: dict) -> tuple[BrokerPosition, ...]:
    """The ``positions`` of a ``broker_positions`` report, each checked as the fields of other events are
    (a problem names its place: ``positions.3.volume: ...``); a position id listed twice is refused."""
    items = obj.get("positions")
    if not isinstance(items, list):
        raise EventError(f"positions: expected a list of positions, found {show(items)}")
    if len(items) > MAX_BROKER_POSITIONS:
        raise EventError(f"positions: expected at most {MAX_BROKER_POSITIONS} positions, found {len(items)}")
    out: list[BrokerPosition] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise EventError(f"positions.{i}: expected an object, found {_json_kind(item)}")
        try:
            p = BrokerPosition(_str(item, "position_id"), _str(item, "symbol"), _num(item, "volume"),
                               _level(item, "stop_loss"), _level(item, "take_profit"))
        except EventError as exc:
            raise EventError(f"positions.{i}.{exc}") from None
        if p.position_id in seen:
            raise EventError(f"positions.{i}.position_id: {show(p.position_id)} is listed twice")
        seen.add(p.position_id)
        out.append(p)
    return tuple(out)


def _level(obj: dict, key: str) -> float | None:
    """A broker-side level: ``None`` when the key is missing (not told), ``0.0`` for null or 0 (none), else a price."""
    if key not in obj:
        return None
    return 0.0 if obj[key] is None or (obj[key] == 0 and not isinstance(obj[key], bool)) else _num(obj, key)


def _volume0(obj: dict) -> float | None:
    v = _opt_num(obj, "volume0")
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
        raise EventError(f"{key}: expected true or false, found {show(v)}")
    return v


def to_json(event: Event) -> dict[str, Any]:
    """Return the JSON object ``parse_event`` reads back as ``event``."""
    if isinstance(event, Tick):
        return {"type": "tick", "ts": event.ts, "symbol": event.symbol, "bid": event.bid, "ask": event.ask}
    if isinstance(event, PositionOpened):
        out = {"type": "position_opened", "ts": event.ts, "position_id": event.position_id, "symbol": event.symbol,
               "strategy_type": event.strategy_type, "strategy_name": event.strategy_name,
               "action": "BUY" if event.side > 0 else "SELL", "volume": None if math.isnan(event.volume) else event.volume,
               "entry_price": event.entry_price,
               "stop_loss": event.stop_loss, "take_profit": event.take_profit}
        if event.existing:
            out["existing"] = True
        if event.volume0 is not None:
            out["volume0"] = event.volume0
        return out
    if isinstance(event, PositionClosed):
        return {"type": "position_closed", "ts": event.ts, "position_id": event.position_id, "price": event.price}
    if isinstance(event, Fill):
        out = {"type": "fill", "ts": event.ts, "position_id": event.position_id, "volume": event.volume, "price": event.price}
        out.update({k: v for k, v in (("rule", event.rule), ("action_id", event.action_id), ("deal_id", event.deal_id)) if v is not None})
        return out
    if isinstance(event, BrokerAlert):
        alert: dict[str, Any] = {"type": "broker_alert", "ts": event.ts, "message": event.message}
        alert.update({k: v for k, v in (("position_id", event.position_id), ("action_id", event.action_id)) if v is not None})
        return alert
    if isinstance(event, BrokerPositions):
        source = {} if event.source is None else {"source": event.source}
        return {"type": "broker_positions", "ts": event.ts, "positions": [_position_json(p) for p in event.positions], **source}
    if isinstance(event, (TradingStateChange, Flatten)):
        return operator.to_json(event)
    return {"type": "clock", "ts": event.ts}


def _position_json(p: BrokerPosition) -> dict[str, Any]:
    out: dict[str, Any] = {"position_id": p.position_id, "symbol": p.symbol, "volume": p.volume}
    out.update({k: v for k, v in (("stop_loss", p.stop_loss), ("take_profit", p.take_profit)) if v is not None})
    return out
