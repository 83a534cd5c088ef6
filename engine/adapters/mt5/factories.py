"""What the CLI calls to wire MetaTrader 5 into the service: a connection, a broker per account, a feed,
and the terminal's instrument specifications.

The CLI builds nothing of this adapter itself: ``riskrail run --feed mt5 --broker mt5`` and the tests
that drive a fake terminal call these functions, so both wire the adapter the same way.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.adapters.mt5.broker import MT5Broker
from engine.adapters.mt5.connection import MT5Connection
from engine.adapters.mt5.feed import MT5Feed, read_instruments

log = logging.getLogger("riskrail.mt5")


def connection(module: Any = None, env: Mapping[str, str] = os.environ, *,
               on_redactor: Callable[[Callable[[str], str]], None] | None = None) -> MT5Connection:
    """A connected ``MT5Connection``: credentials from ``env`` (``MT5_PATH``, ``MT5_LOGIN``, ``MT5_PASSWORD``,
    ``MT5_SERVER``), ``module`` the MetaTrader5 package or a fake (default: the package, imported now).

    ``on_redactor`` receives the connection's scrubber before it connects, so that no log line written
    while connecting can carry a credential. Raises ``MT5Unavailable`` when the package is missing and
    ``MT5Error`` when the terminal does not answer or refuses the login.
    """
    conn = MT5Connection(module, env)
    if on_redactor is not None:
        on_redactor(conn.redact)
    conn.connect()
    return conn


def broker_factory(conn: MT5Connection, *, on_alert: Callable[[dict[str, Any]], None] | None = None
                   ) -> Callable[[str], MT5Broker]:
    """``account -> MT5Broker`` on ``conn`` (one terminal is one account: every account name gets a broker
    on the same connection, so run one account per terminal). ``on_alert`` receives each broker alert
    (``{ts, action_id, position_id, message, account}``)."""
    def make(account: str) -> MT5Broker:
        if on_alert is None:
            return MT5Broker(conn)
        return MT5Broker(conn, on_alert=lambda alert: on_alert({**alert, "account": account}))
    return make


def feed(conn: MT5Connection, strategy_map: Any, *, on_problem: Callable[[str], None] | None = None,
         reconcile_every: float | None = 60.0) -> MT5Feed:
    """The account's ``MT5Feed``: positions, deals and quotes as raw event dicts (see ``MT5Feed.poll``);
    ``strategy_map`` is the active ``RuleSet`` (its instruments name each strategy's magic numbers). It
    reports the account's positions for reconciliation at its first poll, after each reconnect and every
    ``reconcile_every`` seconds (``riskrail run --reconcile-every`` sets it; None: never)."""
    return MT5Feed(conn, strategy_map, on_problem=on_problem, reconcile_every=reconcile_every)


def instruments(conn: MT5Connection, *, on_problem: Callable[[str], None] | None = None
                ) -> Callable[[Iterable[str]], dict[str, dict[str, Any]]]:
    """``symbols -> {symbol: Instrument fields}`` read from the terminal's ``symbol_info`` (see
    ``MT5Feed.instruments``) for ``symbols`` and the symbols of the positions open at the terminal, for
    the service to merge over rules/instruments.yaml. Each call reads the terminal (the service calls it
    at start and on reloads). A symbol the terminal does not offer, or whose specification is no
    instrument, goes to ``on_problem`` once per process, however often it is read. Raises ``MT5Error``
    when the terminal stays away."""
    reported: set[str] = set()

    def report(message: str) -> None:
        if message not in reported:
            reported.add(message)
            if on_problem is not None:
                on_problem(message)
            else:
                log.warning("instruments: %s", message)

    def read(symbols: Iterable[str]) -> dict[str, dict[str, Any]]:
        conn.ensure()
        held = conn.call("positions_get") or ()
        return read_instruments(conn, set(symbols) | {str(p.symbol) for p in held}, report)

    return read


__all__ = ["broker_factory", "connection", "feed", "instruments"]
