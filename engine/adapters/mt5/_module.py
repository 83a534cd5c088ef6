"""The lazily imported ``MetaTrader5`` package, its errors, and the few values it does not export."""

from __future__ import annotations

import importlib
from typing import Any

from engine.errors import RiskrailError

INSTALL_HINT = (
    "the MetaTrader5 package is not installed. It exists only for Windows (it talks to the MetaTrader 5 "
    "terminal, which must be installed and running on the same machine): on Windows, run "
    "pip install 'riskrail[mt5]'"
)

# symbol_info().filling_mode is a set of flags (MQL5 SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC) that the
# package does not export as constants.
SYMBOL_FILLING_FOK = 1
SYMBOL_FILLING_IOC = 2

# last_error() codes of a lost terminal (RES_E_INTERNAL_FAIL*): the IPC link is gone, reconnect.
IPC_ERRORS = frozenset(range(-10005, -9999))


class MT5Error(RiskrailError):
    """The MetaTrader 5 terminal refused or failed a call; the message says what and the terminal's error."""


class MT5Unavailable(MT5Error):
    """The ``MetaTrader5`` package cannot be imported (it has Windows wheels only)."""


def load_module() -> Any:
    """Import and return the ``MetaTrader5`` package; raise ``MT5Unavailable`` with how to install it."""
    try:
        return importlib.import_module("MetaTrader5")
    except ImportError:
        raise MT5Unavailable(INSTALL_HINT) from None


def filling_for(mt5: Any, filling_mode: int) -> int:
    """Return the ORDER_FILLING_* a market order on a symbol with these filling flags must carry."""
    if filling_mode & SYMBOL_FILLING_FOK:
        return mt5.ORDER_FILLING_FOK
    if filling_mode & SYMBOL_FILLING_IOC:
        return mt5.ORDER_FILLING_IOC
    return mt5.ORDER_FILLING_RETURN
