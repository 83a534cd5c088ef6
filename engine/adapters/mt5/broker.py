"""The engine's actions as MetaTrader 5 trade requests, carried out robustly: requotes retried with a
fresh price, stops kept outside the stops level, failures left pending and retried, and no close ever
sent twice."""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.actions import Action
from engine.adapters.mt5._module import MT5Error, filling_for
from engine.adapters.mt5._symbols import SymbolSpec, finite_positive
from engine.adapters.mt5.connection import MT5Connection
from engine.ports import FillReport

log = logging.getLogger("riskrail.mt5")
_EPS = 1e-9


@dataclass
class _Order:
    """One closing or level-moving job, pending until the broker confirms it."""

    key: str
    action: Action
    kind: str  # "close" or "sltp"
    ticket: int
    position_id: str
    tag: str  # the order comment: finds this job's deals after a lost reply or a restart
    volume: float = 0.0  # still to close (a partial close); a full close takes what is open
    full: bool = False
    attempts: int = 0
    failures: int = 0
    next_try: float = 0.0
    last: str = ""
    accounted: set[int] = field(default_factory=set)  # deal tickets counted for this job


class MT5Broker:
    """Carries out the engine's actions on one MetaTrader 5 account (the ``Broker`` protocol).

    ``execute(action, quotes)`` runs synchronously and returns the fills:

    - ``close``/``close_partial``/``close_all``: ``TRADE_ACTION_DEAL`` with the position ticket, the
      opposite order type, the volume rounded to the symbol's ``volume_step`` (a full close takes all
      that is open at the broker), the current bid (closing a long) or ask, ``deviation`` points and
      the symbol's filling mode. ``DONE``/``DONE_PARTIAL`` book the fill at the deal's price;
      ``REQUOTE``/``PRICE_OFF``/``PRICE_CHANGED`` retry at once with a fresh price, ``max_requotes``
      times; a position already gone needs nothing (the feed books the broker's deal);
    - ``set_stop_loss``/``set_take_profit``: ``TRADE_ACTION_SLTP`` with the ticket and both levels
      (the one not moved is resent; 0 removes a level), on the symbol's tick grid: the engine's
      stop is mirrored as the broker-side SL, so the position stays protected if the engine dies.
      ``NO_CHANGES`` is success; ``INVALID_STOPS`` moves the levels just outside the stops level
      and retries once; returns no fills.

    Anything else, or ``None`` from ``order_send``, leaves the action pending and raises an alert;
    ``poll()`` retries pending actions (backoff ``retry_after`` doubling to ``max_retry_after`` s) and
    returns the fills they produce. A fill is booked per deal, at the deal's price (not the quote the
    request was priced at: the market may have moved), so an order filled in two deals is two fills.
    ``DONE_PARTIAL`` books what filled and leaves the rest pending with an alert: ``poll()`` sends the
    rest (of a full close: what is open) until it fills or the position is gone.

    Never the same close twice: before any close is sent, or sent again, the position's deals are
    searched for the job's own (``_ours``): those of an order the broker made for it (the order ticket of
    a reply, or of a deal found before), those carrying the comment derived from the action id, and, at
    a broker that drops comments from deals, the expert deals with the position's magic number from the
    action's time on that nobody booked. A close whose reply was lost, or that a process before a
    restart sent (the action is decided again from the same event, with the same id and time), is
    booked from its deals and not sent again. An action id is carried out once; a second close of a
    position whose full close is pending is dropped.

    Alerts are dicts ``{ts, action_id, position_id, message}`` appended to ``alerts`` and passed to
    ``on_alert``. Positions whose id is not an MT5 ticket are left alone (with an alert).
    """

    def __init__(self, conn: MT5Connection, *, deviation: int = 20, max_requotes: int = 3, retry_after: float = 1.0,
                 max_retry_after: float = 60.0, clock: Callable[[], float] | None = None,
                 on_alert: Callable[[dict[str, Any]], None] | None = None, spec_ttl: float = 60.0) -> None:
        self.conn = conn
        self.mt5 = conn.mt5
        self.deviation, self.max_requotes = deviation, max_requotes
        self.retry_after, self.max_retry_after = retry_after, max_retry_after
        self.clock = clock or conn.clock
        self.on_alert = on_alert
        self.spec_ttl = spec_ttl
        self.alerts: list[dict[str, Any]] = []
        self.pending: dict[str, _Order] = {}
        self._done: set[str] = set()
        self._closing: dict[int, str] = {}  # ticket -> key of its pending full close
        self._levels: dict[int, dict[str, float | None]] = {}  # ticket -> the engine's sl / tp
        self._specs: dict[str, tuple[float, SymbolSpec]] = {}
        self._owners: dict[int, str] = {}  # order ticket -> key of the job that sent it

    # --- the Broker protocol ---------------------------------------------------------------------

    def execute(self, action: Action, quotes: dict[str, tuple[float, float]]) -> list[FillReport]:
        """Carry out one action now; return the fills it produced."""
        if action.type in ("close", "close_partial") and action.position_id is not None:
            return self._close(action.id, action, action.position_id, float(action.params.get("volume", 0.0)),
                               full=action.type == "close")
        if action.type == "close_all":
            out: list[FillReport] = []
            for item in action.params.get("positions", []):
                out += self._close(f"{action.id}:{item['position_id']}", action, str(item["position_id"]),
                                   float(item.get("volume", 0.0)), full=True)
            return out
        if action.type in ("set_stop_loss", "set_take_profit") and action.position_id is not None:
            self._move(action)
        return []

    def poll(self) -> list[FillReport]:
        """Retry the pending actions that are due; return the fills they produced."""
        now = self.clock()
        out: list[FillReport] = []
        for key in sorted(self.pending):
            order = self.pending.get(key)
            if order is None or order.next_try > now:
                continue
            out += self._try_close(order) if order.kind == "close" else self._try_sltp(order)
        return out

    def position_volume(self, position_id: str) -> float | None:
        """The lots open at the broker in position ``position_id`` (a ticket), or None when it has none;
        raises ``MT5Error`` when the terminal cannot tell. The service checks a position taken over
        (``existing: true``) against it."""
        ticket = _ticket(position_id)
        if ticket is None:
            return None
        found = self.conn.call("positions_get", ticket=ticket)
        if found is None:
            raise self.conn.error(f"cannot read position {ticket}")
        return float(found[0].volume) if found else None

    # --- closes ----------------------------------------------------------------------------------

    def _close(self, key: str, action: Action, position_id: str, volume: float, *, full: bool) -> list[FillReport]:
        if key in self._done or key in self.pending:
            return []
        ticket = _ticket(position_id)
        if ticket is None:
            self._done.add(key)
            self._alert(action, position_id, f"position {position_id} is not a MetaTrader 5 ticket: {action.type} not sent")
            return []
        if ticket in self._closing:
            self._done.add(key)
            log.info("close of position %s already pending (%s): %s not sent", ticket, self._closing[ticket], key)
            return []
        order = _Order(key, action, "close", ticket, position_id, _tag(key), volume=volume, full=full)
        if full:
            self._closing[ticket] = key
        return self._try_close(order)

    def _try_close(self, order: _Order) -> list[FillReport]:
        mt5 = self.mt5
        unreachable = self._attempt(order)
        if unreachable:
            return self._defer(order, unreachable)
        fills = self._found(order)  # already executed: a lost reply, or sent before a restart
        if not order.full and order.volume <= _EPS:
            self._finish(order)
            return fills
        found = self.conn.call("positions_get", ticket=order.ticket, retry=False)
        if found is None:
            return fills + self._defer(order, f"cannot read position {order.ticket}: {self.conn.last_error()[1]}")
        if not found:
            self._finish(order)
            self._levels.pop(order.ticket, None)
            if not fills:
                log.info("position %s is already closed at the broker; %s needs nothing", order.ticket, order.key)
            return fills
        p = found[0]
        spec = self._spec(p.symbol)
        if spec is None:
            return fills + self._defer(order, f"cannot read symbol {p.symbol}: {self.conn.last_error()[1]}")
        volume = float(p.volume) if order.full else min(spec.round_volume(order.volume), float(p.volume))
        if volume < spec.volume_min - _EPS:
            self._finish(order)
            self._alert(order.action, order.position_id,
                        f"closing {order.volume:g} lots of position {order.ticket} rounds to {volume:g} at volume step "
                        f"{spec.volume_step:g} (minimum {spec.volume_min:g}): nothing sent")
            return fills
        long = p.type == mt5.POSITION_TYPE_BUY
        for _ in range(self.max_requotes + 1):
            tick = self.conn.call("symbol_info_tick", p.symbol, retry=False)
            price = (tick.bid if long else tick.ask) if tick is not None else 0.0
            if not finite_positive(price):
                return fills + self._defer(order, f"no price for {p.symbol}")
            request = {
                "action": mt5.TRADE_ACTION_DEAL, "position": order.ticket, "symbol": p.symbol, "volume": volume,
                "type": mt5.ORDER_TYPE_SELL if long else mt5.ORDER_TYPE_BUY, "price": float(price),
                "deviation": self.deviation, "magic": int(p.magic), "comment": order.tag,
                "type_time": mt5.ORDER_TIME_GTC, "type_filling": filling_for(mt5, spec.filling_mode),
            }
            # the deal sent and its ticket in the ledger in one hold of the terminal: the feed's thread, reading the
            # history, never sees the deal before it is booked here (it would book it a second time)
            with self.conn.lock:
                result = self.conn.call("order_send", request, retry=False)
                done = result is not None and result.retcode in (mt5.TRADE_RETCODE_DONE, mt5.TRADE_RETCODE_DONE_PARTIAL)
                booked = self._booked(order, result, volume) if done else []
            if result is None:
                code, message = self.conn.last_error()
                return fills + self._defer(order, f"order_send returned nothing: {message} (error {code})")
            rc = result.retcode
            if done:
                fills += booked
                if rc == mt5.TRADE_RETCODE_DONE or (not order.full and order.volume <= _EPS):
                    if order.failures:
                        self._alert(order.action, order.position_id,
                                    f"{order.action.type} of position {order.ticket} went through after {order.attempts} attempts")
                    self._finish(order)
                    return fills
                return fills + self._defer(order, f"filled partly ({result.volume:g} of {volume:g} lots)")
            if rc in (mt5.TRADE_RETCODE_REQUOTE, mt5.TRADE_RETCODE_PRICE_OFF, mt5.TRADE_RETCODE_PRICE_CHANGED):
                order.last = f"retcode {rc} ({result.comment})"
                continue
            if rc == mt5.TRADE_RETCODE_POSITION_CLOSED:
                self._finish(order)
                return fills
            if rc in (mt5.TRADE_RETCODE_INVALID_VOLUME, mt5.TRADE_RETCODE_INVALID_FILL, mt5.TRADE_RETCODE_INVALID_CLOSE_VOLUME):
                self._specs.pop(p.symbol, None)
            return fills + self._defer(order, f"the broker refused it: retcode {rc} ({result.comment})")
        return fills + self._defer(order, f"requoted {self.max_requotes + 1} times, last {order.last}")

    def _found(self, order: _Order) -> list[FillReport]:
        """Book the exit deals of the job's position that are this job's (``_ours``) and were not counted yet,
        oldest first: a close whose reply was lost, or that a process before a restart sent."""
        mt5 = self.mt5
        deals = self.conn.call("history_deals_get", position=order.ticket, retry=False) or ()
        # the position's magic number, from its opening deal: the one every close of it is sent with
        magic = next((int(d.magic) for d in deals if d.entry == mt5.DEAL_ENTRY_IN), None)
        out = []
        for d in sorted(deals, key=lambda d: (d.time_msc, d.ticket)):
            if d.entry in (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY) and d.ticket not in order.accounted and self._ours(order, d, magic):
                out += self._book(order, d, late=True)
        return out

    def _ours(self, order: _Order, deal: Any, magic: int | None) -> bool:
        """Whether ``deal`` is this job's. By its order ticket first: a deal of an order this broker made
        belongs to that order's job (so the second deal of an order filled in two is found with the
        first). Else by the job's comment; else, at a broker that drops comments from deals, when an
        expert made it with the position's magic number at or after the action's time (server time: the
        same after a restart, as the action is decided again from the same event), nobody booked it yet,
        and it is no larger than what the job still has to close (a partial close: so a job never takes
        the deal of the job decided after it)."""
        owner = self._owners.get(int(deal.order))
        if owner is not None:
            return owner == order.key
        if deal.comment:
            return bool(deal.comment == order.tag)
        if magic is None or int(deal.magic) != magic or int(deal.reason) != self.mt5.DEAL_REASON_EXPERT:
            return False
        if int(deal.time_msc) < order.action.ts + self.conn.server_offset_ms or int(deal.ticket) in self.conn.ledger:
            return False
        if order.full:
            return True
        spec = self._spec(str(deal.symbol))
        room = max(order.volume, spec.round_volume(order.volume) if spec is not None else 0.0)
        return float(deal.volume) <= room + _EPS

    def _booked(self, order: _Order, result: Any, volume: float) -> list[FillReport]:
        """The fills of a DONE/DONE_PARTIAL result: one per deal of its order, each at the deal's own price
        (the market may have moved since the quote the request was priced at). When the history does not
        show the order's deals yet, the result's volume and price."""
        mt5 = self.mt5
        deals = (self.conn.call("history_deals_get", ticket=result.order, retry=False) or ()) if result.order else ()
        if result.order:
            self._claim(order, int(result.order))
        mine = [d for d in deals if d.entry in (mt5.DEAL_ENTRY_OUT, mt5.DEAL_ENTRY_OUT_BY) and d.ticket not in order.accounted]
        if mine:
            out: list[FillReport] = []
            for d in sorted(mine, key=lambda d: (d.time_msc, d.ticket)):
                out += self._book(order, d, late=order.attempts > 1)
            return out
        filled = float(result.volume) or volume
        ticket = int(result.deal)
        order.volume = max(order.volume - filled, 0.0)
        if ticket:
            order.accounted.add(ticket)
            if ticket in self.conn.ledger:
                return []
            self.conn.ledger.add(ticket)
        return self._report(order, order.action.ts, filled, float(result.price), ticket or None)

    def _book(self, order: _Order, deal: Any, *, late: bool) -> list[FillReport]:
        """Count ``deal`` for the job, its order as the job's; report its fill unless someone booked it already.
        ``late``: stamped with the deal's time (a retry, a found deal), else with the action's."""
        order.accounted.add(int(deal.ticket))
        order.volume = max(order.volume - float(deal.volume), 0.0)
        if deal.order:
            self._claim(order, int(deal.order))
        if int(deal.ticket) in self.conn.ledger:
            return []
        self.conn.ledger.add(int(deal.ticket))
        ts = max(order.action.ts, self._utc(deal.time_msc)) if late else order.action.ts
        return self._report(order, ts, float(deal.volume), float(deal.price), int(deal.ticket))

    def _claim(self, order: _Order, ticket: int) -> None:
        self._owners[ticket] = order.key

    def _report(self, order: _Order, ts: int, volume: float, price: float, deal: int | None) -> list[FillReport]:
        if not finite_positive(price):
            self._alert(order.action, order.position_id, f"the broker reported no price for the close of position {order.ticket}")
            return []
        return [FillReport(order.position_id, ts, volume, price, order.action.rule, order.action.id, str(deal) if deal else None)]

    # --- stops and targets -----------------------------------------------------------------------

    def _move(self, action: Action) -> None:
        ticket = _ticket(action.position_id or "")
        if action.id in self._done:
            return
        self._done.add(action.id)
        if ticket is None:
            self._alert(action, action.position_id, f"position {action.position_id} is not a MetaTrader 5 ticket: {action.type} not sent")
            return
        want = self._levels.setdefault(ticket, {"sl": None, "tp": None})
        if action.type == "set_stop_loss":
            want["sl"] = _level(action.params.get("stop_loss"))
        else:
            want["tp"] = _level(action.params.get("take_profit"))
        key = f"sltp:{ticket}"  # the latest levels replace any pending older ones
        self.pending.pop(key, None)
        self._try_sltp(_Order(key, action, "sltp", ticket, str(action.position_id), _tag(action.id)))

    def _try_sltp(self, order: _Order) -> list[FillReport]:
        mt5 = self.mt5
        unreachable = self._attempt(order)
        if unreachable:
            return self._defer(order, unreachable)
        found = self.conn.call("positions_get", ticket=order.ticket, retry=False)
        if found is None:
            return self._defer(order, f"cannot read position {order.ticket}: {self.conn.last_error()[1]}")
        if not found:
            self._finish(order)
            self._levels.pop(order.ticket, None)
            return []
        p = found[0]
        spec = self._spec(p.symbol)
        if spec is None:
            return self._defer(order, f"cannot read symbol {p.symbol}: {self.conn.last_error()[1]}")
        want = self._levels.get(order.ticket, {})
        want_sl, want_tp = want.get("sl"), want.get("tp")
        sl = spec.round_price(want_sl) if want_sl is not None else float(p.sl)
        tp = spec.round_price(want_tp) if want_tp is not None else float(p.tp)
        for attempt in range(2):
            if sl == float(p.sl) and tp == float(p.tp):
                self._finish(order)
                return []
            request = {"action": mt5.TRADE_ACTION_SLTP, "position": order.ticket, "symbol": p.symbol, "sl": sl, "tp": tp,
                       "magic": int(p.magic), "comment": order.tag}
            result = self.conn.call("order_send", request, retry=False)
            if result is None:
                code, message = self.conn.last_error()
                return self._defer(order, f"order_send returned nothing: {message} (error {code})")
            rc = result.retcode
            if rc in (mt5.TRADE_RETCODE_DONE, mt5.TRADE_RETCODE_DONE_PARTIAL, mt5.TRADE_RETCODE_NO_CHANGES):
                self._finish(order)
                return []
            if rc == mt5.TRADE_RETCODE_POSITION_CLOSED:
                self._finish(order)
                return []
            if rc != mt5.TRADE_RETCODE_INVALID_STOPS or attempt:
                return self._defer(order, f"the broker refused the levels sl {sl:g} tp {tp:g}: retcode {rc} ({result.comment})")
            self._specs.pop(p.symbol, None)
            spec = self._spec(p.symbol) or spec
            tick = self.conn.call("symbol_info_tick", p.symbol, retry=False)
            if tick is None:
                return self._defer(order, f"no price for {p.symbol}")
            long = p.type == mt5.POSITION_TYPE_BUY
            new_sl, new_tp = _outside_stops(long, spec, float(tick.bid), float(tick.ask), sl, tp)
            if _looser(long, new_sl, float(p.sl)):  # a stop at the broker only tightens: keep the one there
                new_sl = float(p.sl)
            self._alert(order.action, order.position_id,
                        f"the broker keeps stops {spec.stops_level} points from the price: position {order.ticket} "
                        f"gets sl {new_sl:g} tp {new_tp:g} instead of sl {sl:g} tp {tp:g}"
                        + (" (the stop already there is kept: a stop never loosens)" if new_sl == float(p.sl) and sl != new_sl else ""))
            sl, tp = new_sl, new_tp
        return self._defer(order, "invalid stops")

    # --- bookkeeping -----------------------------------------------------------------------------

    def _attempt(self, order: _Order) -> str | None:
        """Count a try of ``order`` and make sure the terminal is there; return why it is not."""
        order.attempts += 1
        try:
            self.conn.ensure()
        except MT5Error as e:
            return f"the terminal is unreachable ({e})"
        return None

    def _defer(self, order: _Order, why: str) -> list[FillReport]:
        order.failures += 1
        order.next_try = self.clock() + min(self.retry_after * 2 ** (order.failures - 1), self.max_retry_after)
        if order.failures == 1 or why != order.last:
            what = "close" if order.kind == "close" else "level change"
            self._alert(order.action, order.position_id,
                        f"{what} of position {order.ticket} ({order.action.type}, {order.action.rule}) pending: {why}; retrying")
        order.last = why
        self.pending[order.key] = order
        return []

    def _finish(self, order: _Order) -> None:
        self.pending.pop(order.key, None)
        self._done.add(order.key)
        if self._closing.get(order.ticket) == order.key:
            del self._closing[order.ticket]

    def _alert(self, action: Action, position_id: str | None, message: str) -> None:
        alert = {"ts": action.ts, "action_id": action.id, "position_id": position_id, "message": message}
        self.alerts.append(alert)
        log.warning("%s", message)
        if self.on_alert is not None:
            self.on_alert(alert)

    def _spec(self, symbol: str) -> SymbolSpec | None:
        now = self.clock()
        cached = self._specs.get(symbol)
        if cached is not None and now - cached[0] < self.spec_ttl:
            return cached[1]
        info = self.conn.call("symbol_info", symbol, retry=False)
        if info is None:
            return None
        spec = SymbolSpec.from_info(info)
        self._specs[symbol] = (now, spec)
        return spec

    def _utc(self, server_msc: int) -> int:
        return max(int(server_msc) - self.conn.server_offset_ms, 0)


def _ticket(position_id: str) -> int | None:
    return int(position_id) if isinstance(position_id, str) and position_id.isdigit() else None


def _tag(key: str) -> str:
    """The order comment of a job: short (MetaTrader 5 refuses comments over 31 characters)."""
    return "rr " + hashlib.sha256(key.encode()).hexdigest()[:12]


def _level(value: Any) -> float | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value) if value > 0 else None


def _looser(long: bool, candidate: float, current: float) -> bool:
    """Whether stop ``candidate`` is looser than the stop ``current`` at the broker (0: none there)."""
    if not current or not candidate:
        return False
    return candidate < current if long else candidate > current


def _outside_stops(long: bool, spec: SymbolSpec, bid: float, ask: float, sl: float, tp: float) -> tuple[float, float]:
    """Move the levels that sit inside the stops level just outside it (one point of margin), onto the
    symbol's tick grid, away from the price (a long's stop down, its target up)."""
    gap = (spec.stops_level + 1) * spec.point
    grid = spec.prices
    if long:
        if sl and sl > bid - gap:
            sl = grid.down(bid - gap)
        if tp and tp < bid + gap:
            tp = grid.up(bid + gap)
    else:
        if sl and sl < ask + gap:
            sl = grid.up(ask + gap)
        if tp and tp > ask - gap:
            tp = grid.down(ask - gap)
    return sl, tp
