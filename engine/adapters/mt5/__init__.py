"""The MetaTrader 5 adapter: the engine manages the positions of a live MT5 account.

The ``MetaTrader5`` package has Windows wheels only (``pip install 'riskrail[mt5]'`` on Windows, next
to a running MetaTrader 5 terminal). Nothing here imports it at import time: ``load_module()`` does,
and raises ``MT5Unavailable`` (a ``RiskrailError``) saying how to install it. Every class takes the
module as an argument, so the tests hand in ``engine.testing.mt5`` (or a ``FakeTerminal`` from it).

Errors::

    RiskrailError
    └── MT5Error            a terminal call failed; the message carries last_error()
        └── MT5Unavailable  the MetaTrader5 package is not installed

Public API (wired by ``riskrail run --feed mt5 --broker mt5`` and ``riskrail doctor --broker mt5``):

``MT5Connection(module=None, env=os.environ, clock=time.monotonic, sleep=time.sleep, *, attempts=6,
backoff=0.5, max_backoff=30.0, timeout_ms=10_000, server_offset_ms=0)``
    ``connect()`` (``initialize`` with ``MT5_PATH``, ``login`` with ``MT5_LOGIN``/``MT5_PASSWORD``/
    ``MT5_SERVER``), ``ensure()`` (reconnect with exponential backoff, ``attempts`` tries, then
    ``MT5Error``), ``close()``, ``last_error()``, ``call(name, *args, retry=True)``. Credentials never
    appear in logs, reprs or messages. ``ledger``: deal tickets already booked (shared by feed and broker).

``MT5Feed(conn, strategy_map=None, *, symbols=(), server_offset_ms=None, close_grace=3, on_problem=None)``
    ``strategy_map``: the ``RuleSet``, its ``Instruments`` or ``StrategyMap`` (rules/instruments.yaml).
    ``poll() -> list[dict]``: JSON event dicts as ``engine.events.parse_event`` reads them: broker
    positions as ``position_opened`` with ``"existing": true``, volume closed at the broker as ``fill``
    (the deal's price; rule ``broker_sl``/``broker_tp``/``broker_stop_out``/``broker``),
    ``position_closed`` only when no deal is found, then ``tick`` events (deduplicated on ``time_msc``).
    ``history(symbol, start_ms, end_ms)``: ticks via ``copy_ticks_range``; ``instruments()``:
    ``Instrument`` entries from ``symbol_info``; ``specs()``: ``SymbolSpec`` (with the filling mode);
    ``equity()``; ``day_pnl(day_start_ms)``: the day's realized deals, floating PnL and start balance.

``MT5Broker(conn, *, deviation=20, max_requotes=3, retry_after=1.0, max_retry_after=60.0, clock=None,
on_alert=None)``
    the ``Broker`` protocol: ``execute(action, quotes) -> list[FillReport]`` (closes as
    ``TRADE_ACTION_DEAL``, stop and target moves as ``TRADE_ACTION_SLTP``, which also mirrors the
    engine's stop as the broker-side SL); ``poll() -> list[FillReport]`` retries pending actions;
    ``alerts`` (list of ``{ts, action_id, position_id, message}``) and ``on_alert``; ``pending``.

``doctor(conn_or_module=None, symbols=(), env=os.environ) -> list[Check]``
    ``Check(name, ok, message)``: package, terminal, trade server, account, trading permission, symbols.

``step(engine, feed, broker) -> list[Action]``
    one turn of the live loop, in the order the engine needs: the feed's events through the engine
    (which executes its actions through the broker), then the broker's late fills as ``fill`` events.
    It raises ``MT5Error`` when the terminal stays away; the service reports it and tries again later.

Design notes (docs/mt5.md has the full list): positions are identified by their ticket
(``position_id == str(ticket)``); strategy by magic number, then the longest comment prefix, then
``strategy_map.default``; broker times are server times, shifted by ``server_offset_ms``.
"""

from __future__ import annotations

from typing import Any

from engine.adapters.mt5._module import INSTALL_HINT, MT5Error, MT5Unavailable, load_module
from engine.adapters.mt5._symbols import SymbolSpec
from engine.adapters.mt5.broker import MT5Broker
from engine.adapters.mt5.connection import MT5Connection
from engine.adapters.mt5.doctor import Check, doctor
from engine.adapters.mt5.feed import MT5Feed, StrategyMapper

__all__ = ["INSTALL_HINT", "Check", "MT5Broker", "MT5Connection", "MT5Error", "MT5Feed", "MT5Unavailable", "StrategyMapper",
           "SymbolSpec", "doctor", "load_module", "step"]


def step(engine: Any, feed: MT5Feed, broker: MT5Broker) -> list[Any]:
    """Run one turn of the live loop; return the engine's actions (the broker has carried them out)."""
    from engine.events import Fill, parse_event

    actions = []
    for obj in feed.poll():
        actions += engine.process(parse_event(obj))
    for f in broker.poll():
        actions += engine.process(Fill(f.ts, f.position_id, f.volume, f.price, f.rule, f.action_id))
    return actions
