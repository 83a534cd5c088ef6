"""The one place the CLI turns ``--feed`` and ``--broker`` into adapters.

Every adapter has the same shape: its settings (``MT5_*`` from the environment for MetaTrader 5),
a feed (the ``Feed`` port), a broker (the ``Broker`` port) and factories that build them; this module
chooses among those factories. The demo feed and the Redis stream are the service's own inputs, so
they have no adapter here: for them ``Edges.feed`` is ``None``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import RiskrailError
from engine.ports import Broker, Feed

if TYPE_CHECKING:
    from engine.adapters.mt5.connection import MT5Connection

FEEDS = ("demo", "redis", "mt5")
BROKERS = ("paper", "redis", "mt5")


@dataclass
class Edges:
    """The adapters of one run.

    ``broker_factory``: ``account -> Broker``, or ``None`` for an account whose actions a pipeline
    carries out from the actions stream (``--broker redis``); ``feed``: ``strategy_map -> Feed`` for a
    feed the service polls (``--feed mt5``), else ``None``; ``instruments``: ``symbols -> {symbol:
    Instrument fields}`` of a connected broker (MetaTrader 5's ``symbol_info``, for ``Service(instruments=)``
    to merge over rules/instruments.yaml), else ``None``; ``close()`` releases what they hold;
    ``reconnects()``: how often the broker's terminal was reconnected (MetaTrader 5), else ``None``.
    """

    broker_factory: Callable[[str], Broker | None]
    feed: Callable[[Any], Feed] | None = None
    close: Callable[[], None] = lambda: None
    instruments: Callable[[Iterable[str]], Mapping[str, Mapping[str, Any]]] | None = None
    reconnects: Callable[[], int] | None = None


def edges(feed: str, broker: str, *, on_alert: Callable[[dict[str, Any]], None] | None = None,
          on_problem: Callable[[str], None] | None = None, on_redactor: Callable[[Callable[[str], str]], None] | None = None,
          mt5_module: Any = None, env: Mapping[str, str] = os.environ) -> Edges:
    """Build the adapters for ``feed`` (one of ``FEEDS``) and ``broker`` (one of ``BROKERS``).

    MetaTrader 5 connects here, once, for both its feed and its broker (``mt5_module``: the package or a
    fake; ``env``: its credentials; ``on_redactor`` receives the connection's scrubber before it
    connects). Connected, its ``symbol_info`` gives ``Edges.instruments``. ``on_alert`` gets broker
    alerts, ``on_problem`` the feed's warnings (and the symbols the terminal does not offer). Raises
    ``RiskrailError`` for an unknown kind, ``MT5Unavailable``/``MT5Error`` when MetaTrader 5 is asked
    for and cannot be reached.
    """
    if feed not in FEEDS or broker not in BROKERS:
        raise RiskrailError(f"expected a feed in {FEEDS} and a broker in {BROKERS}, found feed {feed!r} and broker {broker!r}")
    if "mt5" in (feed, broker):
        return _mt5_edges(feed, broker, on_alert=on_alert, on_problem=on_problem, on_redactor=on_redactor,
                          module=mt5_module, env=env)
    return Edges(_broker_factory(broker, None, on_alert))


def _mt5_edges(feed: str, broker: str, *, on_alert: Callable[[dict[str, Any]], None] | None,
               on_problem: Callable[[str], None] | None, on_redactor: Callable[[Callable[[str], str]], None] | None,
               module: Any, env: Mapping[str, str]) -> Edges:
    """MetaTrader 5 as the feed, the broker or both: one connection, made here, for both."""
    from engine.adapters.mt5 import factories as mt5_factories  # imports nothing of MetaTrader5 until connecting

    conn = mt5_factories.connection(module, env, on_redactor=on_redactor)

    def make_feed(strategy_map: Any) -> Feed:
        return mt5_factories.feed(conn, strategy_map, on_problem=on_problem)

    return Edges(_broker_factory(broker, conn, on_alert), make_feed if feed == "mt5" else None, conn.close,
                 mt5_factories.instruments(conn, on_problem=on_problem), lambda: conn.reconnects)


def _broker_factory(broker: str, conn: MT5Connection | None,
                    on_alert: Callable[[dict[str, Any]], None] | None) -> Callable[[str], Broker | None]:
    """``account -> Broker`` for ``broker``; ``conn``: the MetaTrader 5 connection, made when it is asked for."""
    if broker == "paper":
        from engine.adapters.paper import broker_factory

        return broker_factory()
    if broker == "redis":
        return _no_broker  # actions go to the stream; a pipeline reports fills as `fill` events
    from engine.adapters.mt5 import factories as mt5_factories

    assert conn is not None, "edges() connects to MetaTrader 5 whenever it is the broker"
    return mt5_factories.broker_factory(conn, on_alert=on_alert)


def _no_broker(account: str) -> None:
    return None


__all__ = ["BROKERS", "FEEDS", "Edges", "edges"]
