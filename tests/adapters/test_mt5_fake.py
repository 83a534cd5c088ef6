"""The fake follows the documented MetaTrader5 API: every name the adapter uses, the documented values."""

from __future__ import annotations

import re

import pytest

from engine.testing import mt5 as M
from engine.testing.mt5 import FakeTerminal
from tests.conftest import ROOT

ADAPTER = sorted((ROOT / "engine" / "adapters" / "mt5").glob("*.py"))


def used_names() -> set[str]:
    text = "\n".join(p.read_text() for p in ADAPTER)
    modules = set(re.findall(r"(?:(?<![\w./])|self\.|conn\.)mt5\.([A-Za-z_]\w*)", text))
    return modules | set(re.findall(r'\bcall\(\s*"(\w+)"', text))


def test_every_name_the_adapter_uses_exists_in_the_fake_module_and_terminal() -> None:
    names = used_names()
    assert {"order_send", "positions_get", "history_deals_get", "TRADE_ACTION_SLTP", "TRADE_RETCODE_REQUOTE"} <= names
    terminal = FakeTerminal()
    missing = sorted(n for n in names if not hasattr(M, n) or not hasattr(terminal, n))
    assert missing == []


@pytest.mark.parametrize("name, value", [
    ("TRADE_ACTION_DEAL", 1), ("TRADE_ACTION_SLTP", 6), ("ORDER_TYPE_BUY", 0), ("ORDER_TYPE_SELL", 1),
    ("ORDER_FILLING_FOK", 0), ("ORDER_FILLING_IOC", 1), ("ORDER_FILLING_RETURN", 2), ("POSITION_TYPE_BUY", 0),
    ("POSITION_TYPE_SELL", 1), ("DEAL_ENTRY_OUT", 1), ("DEAL_REASON_SL", 4), ("DEAL_REASON_TP", 5), ("COPY_TICKS_ALL", -1),
    ("TRADE_RETCODE_REQUOTE", 10004), ("TRADE_RETCODE_DONE", 10009), ("TRADE_RETCODE_DONE_PARTIAL", 10010),
    ("TRADE_RETCODE_INVALID_STOPS", 10016), ("TRADE_RETCODE_PRICE_OFF", 10021), ("TRADE_RETCODE_NO_CHANGES", 10025),
    ("TRADE_RETCODE_FROZEN", 10029), ("TRADE_RETCODE_INVALID_CLOSE_VOLUME", 10038), ("TRADE_RETCODE_CLIENT_DISABLES_AT", 10027),
])
def test_constants_have_the_documented_values(name: str, value: int) -> None:
    assert getattr(M, name) == value


def test_named_tuples_have_the_documented_fields() -> None:
    assert M.TradePosition._fields[:6] == ("ticket", "time", "time_msc", "time_update", "time_update_msc", "type")
    assert {"magic", "identifier", "volume", "price_open", "sl", "tp", "price_current", "comment"} <= set(M.TradePosition._fields)
    assert {"ticket", "order", "time_msc", "entry", "position_id", "reason", "volume", "price", "profit", "fee"} <= set(M.TradeDeal._fields)
    assert M.Tick._fields == ("time", "bid", "ask", "last", "volume", "time_msc", "flags", "volume_real")
    assert len(M.SymbolInfo._fields) == 96
    assert {"filling_mode", "volume_step", "trade_stops_level", "trade_mode"} <= set(M.SymbolInfo._fields)
    assert {"trade_allowed", "trade_expert", "margin_mode", "equity"} <= set(M.AccountInfo._fields)
    assert {"connected", "trade_allowed", "tradeapi_disabled"} <= set(M.TerminalInfo._fields)
    assert M.OrderSendResult._fields[:3] == ("retcode", "deal", "order") and M.OrderSendResult._fields[-1] == "request"


def test_calls_fail_with_last_error_when_not_initialized() -> None:
    t = FakeTerminal()
    assert t.positions_get() is None and t.last_error() == (M.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")


def test_order_send_refuses_unknown_keys_and_long_comments_like_the_package() -> None:
    t = FakeTerminal()
    t.initialize()
    assert t.order_send({"action": 1, "volumes": 1.0}) is None and t.last_error()[0] == M.RES_E_INVALID_PARAMS
    assert t.order_send({"action": 6, "comment": "x" * 32}) is None and "comment" in t.last_error()[1]
