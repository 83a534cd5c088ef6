"""``riskrail doctor --broker mt5``: is the terminal there, logged in, allowed to trade, and are the
symbols tradable? Each check says what is wrong in plain words."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.adapters.mt5._module import INSTALL_HINT, MT5Error, MT5Unavailable, filling_for
from engine.adapters.mt5._symbols import SymbolSpec, finite_positive
from engine.adapters.mt5.connection import MT5Connection


@dataclass(frozen=True)
class Check:
    """One verdict: what was checked, whether it is fine, and what to do about it."""

    name: str
    ok: bool
    message: str


def doctor(conn_or_module: Any = None, symbols: Iterable[str] = (), env: Mapping[str, str] = os.environ) -> list[Check]:
    """Check the package, the terminal, its link to the trade server, the account, the permission to
    trade and each symbol; stop at the first check the others depend on. Never shows a credential.

    ``conn_or_module``: an ``MT5Connection`` (used as it is), a ``MetaTrader5``-like module, or None
    (the installed package, with the credentials of ``env``).
    """
    checks: list[Check] = []
    own = not isinstance(conn_or_module, MT5Connection)
    try:
        conn = conn_or_module if not own else MT5Connection(conn_or_module, env=env, attempts=1)
    except MT5Unavailable:
        return [Check("package", False, INSTALL_HINT)]
    except MT5Error as e:
        return [Check("package", True, "the MetaTrader5 package is installed"), Check("credentials", False, str(e))]
    mt5 = conn.mt5
    version = getattr(mt5, "__version__", None)
    checks.append(Check("package", True, "the MetaTrader5 package is installed" + (f" (version {version})" if version else "")))
    try:
        if own or not conn.connected:
            conn.connect()
    except MT5Error as e:
        checks.append(Check("terminal", False, f"{e}. Start the MetaTrader 5 terminal on this machine, or set MT5_PATH "
                                               "to its terminal64.exe; log in with MT5_LOGIN, MT5_PASSWORD and MT5_SERVER"))
        return checks
    try:
        terminal = mt5.terminal_info()
        if terminal is None:
            checks.append(Check("terminal", False, str(conn.error("the terminal does not answer"))))
            return checks
        checks.append(Check("terminal", True, f"the MetaTrader 5 terminal (build {terminal.build}) answers"))
        if not terminal.connected:
            checks.append(Check("trade server", False, "the terminal is not connected to its trade server: check the network "
                                                       "and the server name (MT5_SERVER)"))
            return checks
        checks.append(Check("trade server", True, "the terminal is connected to its trade server"))
        account = mt5.account_info()
        if account is None:
            checks.append(Check("account", False, str(conn.error("the terminal is not logged in to an account"))))
            return checks
        hedging = account.margin_mode == getattr(mt5, "ACCOUNT_MARGIN_MODE_RETAIL_HEDGING", 2)
        kind = {0: "demo", 1: "contest", 2: "real"}.get(int(account.trade_mode), "")
        checks.append(Check("account", True, f"logged in to a {kind} {'hedging' if hedging else 'netting'} account in "
                                             f"{account.currency}, balance {account.balance:,.2f}, equity {account.equity:,.2f}"))
        checks.append(_trading(terminal, account))
        for symbol in symbols:
            checks.append(_symbol(conn, symbol))
        return checks
    finally:
        if own:
            conn.close()


def _trading(terminal: Any, account: Any) -> Check:
    problems = []
    if not terminal.trade_allowed:
        problems.append("Algo Trading is switched off in the terminal: press the Algo Trading button in its toolbar")
    if getattr(terminal, "tradeapi_disabled", False):
        problems.append("the terminal forbids trading from Python: in Tools > Options > Expert Advisors, clear "
                        "'Disable algorithmic trading via external Python API'")
    if not account.trade_allowed:
        problems.append("the account does not allow trading (logged in with the investor, read-only, password?)")
    if not account.trade_expert:
        problems.append("the broker does not allow automated trading on this account")
    if problems:
        return Check("trading", False, "; ".join(problems))
    return Check("trading", True, "trading is allowed: the engine can close positions and move stops")


def _symbol(conn: MT5Connection, symbol: str) -> Check:
    mt5 = conn.mt5
    name = f"symbol {symbol}"
    info = mt5.symbol_info(symbol)
    if info is None:
        return Check(name, False, f"{symbol} is not offered by this broker: check the exact name (brokers add suffixes "
                                  "such as EURUSD.m) in the terminal's Market Watch")
    if not info.visible and not mt5.symbol_select(symbol, True):
        return Check(name, False, f"{symbol} cannot be added to Market Watch, so it gets no quotes: {conn.last_error()[1]}")
    spec = SymbolSpec.from_info(info)
    if spec.trade_mode == getattr(mt5, "SYMBOL_TRADE_MODE_DISABLED", 0):
        return Check(name, False, f"trading {symbol} is disabled by the broker")
    tick = mt5.symbol_info_tick(symbol)
    if tick is None or not (finite_positive(tick.bid) and finite_positive(tick.ask)):
        return Check(name, False, f"no quotes for {symbol} yet (the market is closed, or the symbol is not in Market Watch)")
    fill = {mt5.ORDER_FILLING_FOK: "FOK", mt5.ORDER_FILLING_IOC: "IOC"}.get(filling_for(mt5, spec.filling_mode), "RETURN")
    close_only = spec.trade_mode == getattr(mt5, "SYMBOL_TRADE_MODE_CLOSEONLY", 3)
    note = " (close only: the engine can still close positions and move stops)" if close_only else ""
    return Check(name, True, f"{symbol} is tradable{note}: digits {spec.digits}, volume step {spec.volume_step:g}, "
                             f"stops level {spec.stops_level} points, closes filled {fill}")

