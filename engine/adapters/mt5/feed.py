"""Events from a MetaTrader 5 account: quotes of the symbols in play, and the broker's positions
turned into position events (taken over, partly closed, closed), as ``engine.events`` reads them."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.adapters.mt5._symbols import SymbolSpec, finite_positive
from engine.adapters.mt5.connection import MT5Connection

log = logging.getLogger("riskrail.mt5")
_EPS = 1e-9
_DAY_MS = 86_400_000


class StrategyMapper:
    """Which strategy a broker position belongs to: its magic number, else the longest matching
    comment prefix, else the default (None: the position is not managed).

    Built from ``rules/instruments.yaml``'s ``strategy_map`` (a ``StrategyMap``, the ``Instruments``
    model, a ``RuleSet``) or a plain ``{"magic": ..., "comment_prefix": ..., "default": ...}`` dict.
    """

    def __init__(self, mapping: Any = None) -> None:
        if hasattr(mapping, "instruments") and hasattr(mapping.instruments, "strategy_map"):
            mapping = mapping.instruments
        if hasattr(mapping, "strategy_map"):
            mapping = mapping.strategy_map
        if mapping is None:
            mapping = {}
        get = mapping.get if isinstance(mapping, dict) else lambda k, d=None: getattr(mapping, k, d)
        self.magic: dict[int, str] = {int(k): v for k, v in (get("magic") or {}).items()}
        self.prefixes = sorted((get("comment_prefix") or {}).items(), key=lambda kv: (-len(kv[0]), kv[0]))
        self.default: str | None = get("default")

    def __call__(self, magic: int, comment: str) -> str | None:
        if int(magic) in self.magic:
            return self.magic[int(magic)]
        for prefix, name in self.prefixes:
            if (comment or "").startswith(prefix):
                return name
        return self.default


@dataclass
class _Tracked:
    symbol: str
    volume: float  # the broker's volume at the last poll
    unexplained: float = 0.0  # volume gone at the broker without a deal found yet
    waited: int = 0  # polls spent waiting for that deal
    accounted: set[int] = field(default_factory=set)  # exit deals already seen


class MT5Feed:
    """Polls one account. ``poll()`` returns JSON event dicts in the order to process them.

    - a position found at the broker whose strategy the ``strategy_map`` names → ``position_opened``
      with ``"existing": true`` (position_id is the ticket); one it does not name is reported once and
      left alone;
    - volume gone at the broker (the trader, the broker's own SL/TP, a stop-out) → one ``fill`` per
      exit deal of ``history_deals_get`` with the deal's real price and a ``rule`` of ``broker_sl``,
      ``broker_tp``, ``broker_stop_out`` or ``broker``; deals the broker adapter already booked (the
      connection's ``ledger``) are skipped; when no deal shows up within ``close_grace`` polls, a
      closed position gives ``position_closed`` (the engine's last quote) and a reduced one a ``fill``
      at the position's current price;
    - then one ``tick`` per symbol of a managed position (and of ``symbols``) whose ``time_msc`` is new;
    - last, with ``reconcile_every`` (seconds; None: never), a ``broker_positions`` report of every open
      position of the account (ticket, symbol, volume, SL and TP, 0 for none), for the engine to reconcile
      its book with: at the first poll, after each reconnect of the terminal and every ``reconcile_every``
      seconds of ``clock``; held back while a position waits for the deals that explain its volume.

    Exit deals are sent with their ticket as ``deal_id``: the engine books a deal once, whoever sends it again.

    Broker times are server times: ``server_offset_ms`` (server minus UTC; default the connection's) is
    subtracted from them.
    Problems (an unmapped position, a position that grew) go to ``on_problem`` and ``problems``.
    """

    def __init__(self, conn: MT5Connection, strategy_map: Any = None, *, symbols: Iterable[str] = (),
                 server_offset_ms: int | None = None, close_grace: int = 3, on_problem: Callable[[str], None] | None = None,
                 reconcile_every: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.conn = conn
        self.mt5 = conn.mt5
        self.mapper = strategy_map if isinstance(strategy_map, StrategyMapper) else StrategyMapper(strategy_map)
        self.symbols = tuple(symbols)
        self.offset = int(conn.server_offset_ms if server_offset_ms is None else server_offset_ms)
        self.close_grace = close_grace
        self.on_problem = on_problem
        self.problems: list[str] = []
        self._known: dict[int, _Tracked] = {}
        self._ignored: set[int] = set()
        self._last_msc: dict[str, int] = {}
        self._selected: set[str] = set()
        self._now = 0  # latest event time given out (UTC ms)
        self.reconcile_every, self.clock = reconcile_every, clock
        self._next_report: float | None = None  # when the next report is due (``clock``); None: at the next poll
        self._reconnects = conn.reconnects  # the reconnects a report was sent after

    # --- live ----------------------------------------------------------------------------------

    def track(self, open_positions: Iterable[tuple[str, str, float]]) -> None:
        """Follow the positions the engine holds open (``(position_id, symbol, volume)``, e.g. after a restart)
        from the volume the engine knows: what happened at the broker since (a close, a partial close, its
        SL/TP) is booked at the next ``poll`` from the deals, once.

        The exit deals the engine's volume already reflects (the earliest ones, up to the volume opened
        less the engine's) are accounted for; the later ones are the news. A position id that is no ticket
        is left alone."""
        for position_id, symbol, volume in open_positions:
            if not position_id.isdigit() or int(position_id) in self._known:
                continue
            ticket = int(position_id)
            deals = self.conn.call("history_deals_get", position=ticket) or ()
            reflected = self._opened(deals) - volume  # closed before the engine's state: already booked
            tracked = _Tracked(symbol, float(volume))
            for d in self._exits(deals):
                if reflected <= _EPS:
                    break
                tracked.accounted.add(int(d.ticket))
                reflected -= float(d.volume)
            self._known[ticket] = tracked

    def poll(self) -> list[dict[str, Any]]:
        """Return the new events since the last poll: position events first, then ticks by time."""
        self.conn.ensure()
        positions = self.conn.call("positions_get")
        if positions is None:
            raise self.conn.error("cannot read the open positions")
        events: list[dict[str, Any]] = []
        at_broker = {int(p.ticket): p for p in positions}
        for ticket, p in sorted(at_broker.items()):
            tracked = self._known.get(ticket)
            if tracked is None:
                if ticket not in self._ignored:
                    self._adopt(p, events)
                continue
            if p.volume > tracked.volume + _EPS:
                self._problem(f"position {ticket} grew at the broker from {tracked.volume:g} to {p.volume:g} lots; "
                              "the engine keeps managing the volume it knows")
                tracked.volume = float(p.volume)
            self._sync(ticket, tracked, float(p.volume), events, current=p)
        for ticket in sorted(set(self._known) - set(at_broker)):
            self._sync(ticket, self._known[ticket], 0.0, events, current=None)
        events.extend(self._ticks())
        self._report(positions, events)
        return events

    def _adopt(self, p: Any, events: list[dict[str, Any]]) -> None:
        strategy = self.mapper(p.magic, p.comment)
        if strategy is None:
            self._ignored.add(int(p.ticket))
            self._problem(f"position {p.ticket} ({p.symbol}, magic {p.magic}, comment {p.comment!r}) belongs to no strategy "
                          "in strategy_map of rules/instruments.yaml; it is not managed")
            return
        ts = max(self._utc(p.time_msc), self._now)
        self._now = ts
        event = {
            "type": "position_opened", "ts": ts, "position_id": str(p.ticket), "symbol": p.symbol,
            "strategy_type": strategy, "strategy_name": p.comment or strategy,
            "action": "BUY" if p.type == self.mt5.POSITION_TYPE_BUY else "SELL", "volume": float(p.volume),
            "entry_price": float(p.price_open), "stop_loss": float(p.sl) if p.sl else None,
            "take_profit": float(p.tp) if p.tp else None, "existing": True,
        }
        # partly closed already (an engine restart): the volume it was opened with, from its entry deals,
        # tells the engine which exit levels were taken
        deals = self.conn.call("history_deals_get", position=int(p.ticket)) or ()
        opened = self._opened(deals)
        if opened > float(p.volume) + _EPS:
            event["volume0"] = opened
        events.append(event)
        tracked = _Tracked(p.symbol, float(p.volume))
        # the exit deals before the takeover are in its volume already: never a fill of this position again
        tracked.accounted.update(int(d.ticket) for d in self._exits(deals))
        self._known[int(p.ticket)] = tracked

    def _sync(self, ticket: int, tracked: _Tracked, volume: float, events: list[dict[str, Any]], current: Any) -> None:
        """Explain volume gone at the broker by its exit deals; book the ones nobody booked yet."""
        gone = tracked.volume - volume
        if gone > _EPS:
            tracked.unexplained += gone
            tracked.volume = volume
        if tracked.unexplained <= _EPS:
            if current is None:
                del self._known[ticket]
            return
        deals = self.conn.call("history_deals_get", position=ticket) or ()
        for d in [d for d in self._exits(deals) if d.ticket not in tracked.accounted]:
            tracked.accounted.add(d.ticket)
            tracked.unexplained = max(tracked.unexplained - float(d.volume), 0.0)
            if d.ticket in self.conn.ledger:
                continue
            self.conn.ledger.add(d.ticket)
            events.append({"type": "fill", "ts": self._utc(d.time_msc), "position_id": str(ticket), "volume": float(d.volume),
                           "price": float(d.price), "rule": self._rule(d.reason), "deal_id": str(d.ticket)})
        if tracked.unexplained <= _EPS:
            tracked.unexplained, tracked.waited = 0.0, 0
        else:
            tracked.waited += 1
            if tracked.waited > self.close_grace:
                if current is None:
                    events.append({"type": "position_closed", "ts": self._now, "position_id": str(ticket), "price": None})
                elif current is not None and finite_positive(current.price_current):
                    events.append({"type": "fill", "ts": self._now, "position_id": str(ticket), "volume": tracked.unexplained,
                                   "price": float(current.price_current), "rule": "broker"})
                self._problem(f"position {ticket}: {tracked.unexplained:g} lots left at the broker without a deal in the history")
                tracked.unexplained, tracked.waited = 0.0, 0
        if current is None and tracked.unexplained <= _EPS:
            del self._known[ticket]

    def _report(self, positions: Iterable[Any], events: list[dict[str, Any]]) -> None:
        """Append a ``broker_positions`` report of ``positions`` when one is due and no position waits for the
        deals that explain it (the engine would take that volume for missing: the report waits a poll)."""
        if self.reconcile_every is None:
            return
        now = self.clock()
        due = self._next_report is None or now >= self._next_report or self.conn.reconnects != self._reconnects
        if not due or any(t.unexplained > _EPS for t in self._known.values()):
            return
        self._next_report, self._reconnects = now + self.reconcile_every, self.conn.reconnects
        report = [{"position_id": str(p.ticket), "symbol": p.symbol, "volume": float(p.volume), "stop_loss": float(p.sl or 0.0),
                   "take_profit": float(p.tp or 0.0)} for p in sorted(positions, key=lambda p: int(p.ticket))]
        events.append({"type": "broker_positions", "ts": self._now or int(time.time() * 1000), "positions": report, "source": "mt5"})

    def _opened(self, deals: Iterable[Any]) -> float:
        """The volume a position was opened with: its entry deals' (lots)."""
        return sum(float(d.volume) for d in deals if d.entry == self.mt5.DEAL_ENTRY_IN)

    def _exits(self, deals: Iterable[Any]) -> list[Any]:
        """A position's exit deals, oldest first."""
        out_kinds = (self.mt5.DEAL_ENTRY_OUT, self.mt5.DEAL_ENTRY_OUT_BY)
        return sorted((d for d in deals if d.entry in out_kinds), key=lambda d: (d.time_msc, d.ticket))

    def _rule(self, reason: int) -> str:
        mt5 = self.mt5
        names = {mt5.DEAL_REASON_SL: "broker_sl", mt5.DEAL_REASON_TP: "broker_tp", mt5.DEAL_REASON_SO: "broker_stop_out"}
        return names.get(reason, "broker")

    def _ticks(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for symbol in sorted({t.symbol for t in self._known.values()} | set(self.symbols)):
            if symbol not in self._selected:
                self._selected.add(symbol)
                if not self.conn.call("symbol_select", symbol, True):
                    self._problem(f"symbol {symbol} cannot be added to Market Watch, so it gets no quotes: {self.conn.last_error()[1]}")
            t = self.conn.call("symbol_info_tick", symbol)
            if t is None or t.time_msc <= self._last_msc.get(symbol, -1):
                continue
            if not (finite_positive(t.bid) and finite_positive(t.ask)) or t.ask < t.bid:
                continue
            self._last_msc[symbol] = int(t.time_msc)
            out.append({"type": "tick", "ts": self._utc(t.time_msc), "symbol": symbol, "bid": float(t.bid), "ask": float(t.ask)})
        out.sort(key=lambda e: e["ts"])
        if out:
            self._now = max(self._now, out[-1]["ts"])
        return out

    # --- history, instruments, account -----------------------------------------------------------

    def history(self, symbol: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """Return the recorded quotes of ``symbol`` between two UTC times (ms) as tick events, for
        replays and plans (``copy_ticks_range`` with ``COPY_TICKS_ALL``)."""
        self.conn.ensure()
        rows = self.conn.call("copy_ticks_range", symbol, self._server_dt(start_ms), self._server_dt(end_ms), self.mt5.COPY_TICKS_ALL)
        if rows is None:
            raise self.conn.error(f"cannot read the tick history of {symbol}")
        out: list[dict[str, Any]] = []
        last = None
        for r in rows:
            key = (int(r["time_msc"]), float(r["bid"]), float(r["ask"]))
            if key == last or not (finite_positive(key[1]) and finite_positive(key[2])) or key[2] < key[1]:
                continue
            last = key
            out.append({"type": "tick", "ts": self._utc(key[0]), "symbol": symbol, "bid": key[1], "ask": key[2]})
        return out

    def specs(self, symbols: Iterable[str] | None = None) -> dict[str, SymbolSpec]:
        """Return the trading specification of each symbol (default: those in play)."""
        return read_specs(self.conn, self._in_play() if symbols is None else symbols, self._problem)

    def instruments(self, symbols: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Return ``rules/instruments.yaml`` entries from ``symbol_info`` for ``symbols`` (default: those in
        play); see ``read_instruments``. Calls the terminal: read it at start and on reloads, not per tick."""
        return read_instruments(self.conn, self._in_play() if symbols is None else symbols, self._problem)

    def _in_play(self) -> set[str]:
        return {t.symbol for t in self._known.values()} | set(self.symbols)

    def equity(self) -> float:
        """The account's equity (``account_info().equity``), in the account currency."""
        self.conn.ensure()
        info = self.conn.call("account_info")
        if info is None:
            raise self.conn.error("cannot read the account")
        return float(info.equity)

    def day_pnl(self, day_start_ms: int, end_ms: int | None = None) -> dict[str, float]:
        """The day's result from the account's deals since ``day_start_ms`` (UTC ms).

        ``realized``: profit, commission, swap and fee of the day's trade deals; ``floating``: the open
        positions' profit; ``start_balance``: the balance before the day's deals (deposits and
        withdrawals of the day excluded), the equity the day's loss limit is measured against when the
        engine starts mid-day.
        """
        self.conn.ensure()
        mt5 = self.mt5
        end = end_ms if end_ms is not None else day_start_ms + _DAY_MS
        deals = self.conn.call("history_deals_get", self._server_dt(day_start_ms), self._server_dt(end))
        if deals is None:
            raise self.conn.error("cannot read the day's deals")
        info = self.conn.call("account_info")
        if info is None:
            raise self.conn.error("cannot read the account")
        realized = funding = 0.0
        for d in deals:
            amount = float(d.profit) + float(d.commission) + float(d.swap) + float(d.fee)
            if d.type in (mt5.DEAL_TYPE_BUY, mt5.DEAL_TYPE_SELL):
                realized += amount
            else:
                funding += amount
        return {"realized": realized, "floating": float(info.profit), "equity": float(info.equity),
                "start_balance": float(info.balance) - realized - funding}

    # --- helpers -------------------------------------------------------------------------------

    def _utc(self, server_msc: int) -> int:
        return max(int(server_msc) - self.offset, 0)

    def _server_dt(self, utc_ms: int) -> datetime:
        return datetime.fromtimestamp((utc_ms + self.offset) / 1000, tz=UTC)

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        log.warning("%s", message)
        if self.on_problem is not None:
            self.on_problem(message)


def read_specs(conn: MT5Connection, symbols: Iterable[str], problem: Callable[[str], None]) -> dict[str, SymbolSpec]:
    """The ``SymbolSpec`` of each symbol from ``symbol_info``, in name order; a symbol the broker does not
    offer goes to ``problem`` and is left out."""
    out = {}
    for name in sorted(set(symbols)):
        info = conn.call("symbol_info", name)
        if info is None:
            problem(f"symbol {name} is not offered by the broker: {conn.last_error()[1]}")
            continue
        out[name] = SymbolSpec.from_info(info)
    return out


def read_instruments(conn: MT5Connection, symbols: Iterable[str], problem: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """``rules/instruments.yaml`` entries from ``symbol_info`` (currencies, contract size, digits, tick size,
    pip size, volume step, ``volume_min``, ``volume_max``, stops level), each a validated ``Instrument`` as
    JSON data. A symbol the broker does not offer, or whose specification is no instrument (a profit
    currency that is not a three-letter code, a zero contract size), goes to ``problem`` and is left out.
    Raises ``MT5Error`` when the terminal stays away."""
    conn.ensure()
    out = {}
    for name, spec in read_specs(conn, symbols, problem).items():
        model = spec.instrument_model()
        if model is None:
            problem(f"symbol {name}: its specification is no instrument (profit currency {spec.quote_currency!r}, "
                    f"contract size {spec.contract_size:g}, digits {spec.digits}, volume step {spec.volume_step:g})")
            continue
        out[name] = model.model_dump(mode="json")
    return out
