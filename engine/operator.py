"""What a person asks of an account: a trading state, or to flatten. Input events like every other.

An operator's change goes through the account's input stream (``engine.events.parse_event`` reads
these types), so it is journaled with who and why, replayed after a restart and decided between two
events by the engine's own thread (``engine.rules.trading_state``):

- ``trading_state``: ``ts``, ``state`` (``ACTIVE``, ``REDUCING`` or ``HALTED``), at most one of
  ``strategy`` and ``symbol`` (neither: the account), ``reason`` (1 to ``MAX_REASON_CHARS`` printable
  characters), ``by`` (who: a token's name, ``cli:<user>``), optional ``request_id`` (the waiter of the
  API call that sent it);
- ``flatten``: ``ts``, optional ``strategy`` and ``symbol`` (both: the positions of that strategy on
  that symbol; neither: every open position), ``reason``, ``by``, optional ``request_id``.

This module holds no engine code and imports ``engine.events`` only inside ``parse``, which
``engine.events`` calls: the two are one validation boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: the trading states, least restrictive first (NautilusTrader's ``TradingState``)
STATES = ("ACTIVE", "REDUCING", "HALTED")
#: the input event types of this module
TYPES = ("trading_state", "flatten")
#: the longest ``reason`` of an operator's change, in characters
MAX_REASON_CHARS = 500


@dataclass(frozen=True)
class TradingStateChange:
    """An operator sets the trading state of the account, of one strategy or of one symbol."""

    ts: int
    state: str  # one of STATES
    strategy: str | None
    symbol: str | None
    reason: str
    by: str
    request_id: str | None = None


@dataclass(frozen=True)
class Flatten:
    """An operator closes every open position of the account (or of a strategy, a symbol) at the broker."""

    ts: int
    strategy: str | None
    symbol: str | None
    reason: str
    by: str
    request_id: str | None = None


def parse(obj: dict[str, Any], kind: str, ts: int) -> TradingStateChange | Flatten:
    """The operator event of type ``kind`` in ``obj`` (its ``ts`` read already); raise ``EventError``."""
    from engine.events import EventError, show

    strategy, symbol = _ident(obj, "strategy"), _ident(obj, "symbol")
    reason, by, request = _reason(obj), _ident(obj, "by"), _ident(obj, "request_id")
    if by is None:
        raise EventError("by: expected who asks (a token's name, cli:USER), found nothing")
    if kind == "flatten":
        return Flatten(ts, strategy, symbol, reason, by, request)
    state = obj.get("state")
    if state not in STATES:
        raise EventError(f"state: expected one of {', '.join(STATES)}, found {show(state)}")
    if strategy is not None and symbol is not None:
        raise EventError("strategy, symbol: expected at most one of them (a state is the account's, a strategy's or a symbol's)")
    return TradingStateChange(ts, state, strategy, symbol, reason, by, request)


def to_json(event: TradingStateChange | Flatten) -> dict[str, Any]:
    """The JSON object ``parse`` reads back as ``event``."""
    out: dict[str, Any] = {"type": "flatten" if isinstance(event, Flatten) else "trading_state", "ts": event.ts}
    if isinstance(event, TradingStateChange):
        out["state"] = event.state
    out.update(strategy=event.strategy, symbol=event.symbol, reason=event.reason, by=event.by)
    if event.request_id is not None:
        out["request_id"] = event.request_id
    return out


def _ident(obj: dict[str, Any], key: str) -> str | None:
    """``obj[key]`` as an identifier of at most ``MAX_ID_LENGTH`` printable characters, or None when missing or null."""
    from engine.events import MAX_ID_LENGTH, EventError, show

    v = obj.get(key)
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip():
        raise EventError(f"{key}: expected a non-empty string or null, found {show(v)}")
    if len(v) > MAX_ID_LENGTH or not v.isprintable():
        raise EventError(f"{key}: expected at most {MAX_ID_LENGTH} printable characters, found {show(v)}")
    return v


def _reason(obj: dict[str, Any]) -> str:
    from engine.events import EventError, show

    v = obj.get("reason")
    if not isinstance(v, str) or not v.strip():
        raise EventError(f"reason: expected why, as text, found {show(v)}")
    if len(v) > MAX_REASON_CHARS or not v.isprintable():
        raise EventError(f"reason: expected at most {MAX_REASON_CHARS} printable characters, found {len(v)} characters")
    return v.strip()
