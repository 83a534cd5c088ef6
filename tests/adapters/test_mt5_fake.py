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


T0 = 1_549_238_400_000


def market(execution: int = M.SYMBOL_TRADE_EXECUTION_INSTANT) -> tuple[FakeTerminal, int]:
    """A terminal quoting EURUSD 1.14500/1.14502 with a long of 0.10 lots (magic 2001) open."""
    t = FakeTerminal()
    t.initialize()
    t.add_symbol("EURUSD", execution=execution)
    t.tick("EURUSD", 1.14500, 1.14502, T0)
    return t, t.open_position("EURUSD", "BUY", 0.10, price=1.14400, magic=2001, comment="trend")


def close(ticket: int, volume: float, price: float = 1.14500, comment: str = "rr job") -> dict:
    return {"action": M.TRADE_ACTION_DEAL, "position": ticket, "symbol": "EURUSD", "volume": volume, "type": M.ORDER_TYPE_SELL,
            "price": price, "deviation": 20, "magic": 2001, "comment": comment, "type_filling": M.ORDER_FILLING_FOK}


def test_instant_execution_requotes_beyond_the_deviation_with_the_fresh_prices() -> None:
    t, ticket = market()
    t.script_order_send(("move", -21))  # the bid falls 21 points after the sender read it
    result = t.order_send(close(ticket, 0.10))
    assert (result.retcode, result.bid, result.ask, result.deal, result.order) == (M.TRADE_RETCODE_REQUOTE, 1.14479, 1.14481, 0, 0)
    assert t.positions[ticket].volume == 0.10 and len(t.deals) == 1
    t.script_order_send(("move", -20))  # 20 points: within the deviation, filled at the market
    done = t.order_send(close(ticket, 0.10, price=1.14479))
    assert (done.retcode, done.price, t.deals[-1].price) == (M.TRADE_RETCODE_DONE, 1.14459, 1.14459)


def test_request_execution_says_the_price_changed() -> None:
    t, ticket = market(M.SYMBOL_TRADE_EXECUTION_REQUEST)
    t.script_order_send(("move", 25))
    assert t.order_send(close(ticket, 0.10)).retcode == M.TRADE_RETCODE_PRICE_CHANGED and ticket in t.positions


def test_market_execution_fills_at_the_market_the_request_meets_not_at_its_price() -> None:
    t, ticket = market(M.SYMBOL_TRADE_EXECUTION_MARKET)
    t.script_order_send(("move", -35))  # 35 points against the close, beyond any deviation: no requote
    result = t.order_send(close(ticket, 0.04))
    [deal] = t.history_deals_get(ticket=result.order)
    assert (result.retcode, result.price, deal.price, deal.volume) == (M.TRADE_RETCODE_DONE, 1.14465, 1.14465, 0.04)
    assert t.quotes["EURUSD"].bid == 1.14465 and t.positions[ticket].volume == pytest.approx(0.06)


def test_every_deal_names_the_order_that_made_it() -> None:
    t, ticket = market()
    opening = t.deals_of(ticket)[0]
    assert opening.order == ticket  # a position's ticket is its opening order's
    first = t.order_send(close(ticket, 0.03))
    t.close_position(ticket, 0.02)  # the trader: an order of its own
    t.positions[ticket].sl = 1.14450
    t.tick("EURUSD", 1.14440, 1.14442)  # the broker-side stop: an order of its own too
    deals = t.deals_of(ticket)[1:]
    assert [d.reason for d in deals] == [M.DEAL_REASON_EXPERT, M.DEAL_REASON_CLIENT, M.DEAL_REASON_SL]
    assert deals[0].order == first.order and deals[0].ticket == first.deal
    orders = [d.order for d in deals]
    assert 0 not in orders and len({ticket, *orders}) == 4
    assert [d.ticket for d in t.history_deals_get(ticket=first.order)] == [first.deal]


def test_a_broker_that_drops_comments_gives_deals_without_them() -> None:
    t, ticket = market()
    t.deal_comments = False
    t.order_send(close(ticket, 0.03, comment="rr 0123456789ab"))
    assert t.deals[-1].comment == "" and t.deals[-1].magic == 2001 and t.positions[ticket].comment == "trend"


@pytest.mark.parametrize("how, error", [("lost", M.RES_E_INTERNAL_FAIL_TIMEOUT), ("dropped", M.RES_E_INTERNAL_FAIL_CONNECT)])
def test_a_lost_reply_hides_an_executed_order(how: str, error: int) -> None:
    t, ticket = market()
    t.script_order_send(how)
    assert t.order_send(close(ticket, 0.03)) is None and t.last_error()[0] == error
    assert t.positions[ticket].volume == pytest.approx(0.07) and t.deals[-1].comment == "rr job"
    if how == "dropped":  # the terminal went with the reply: back at the next initialize
        assert t.positions_get() is None and t.initialize() and t.positions_get() is not None


def test_a_partial_fill_leaves_the_rest_open() -> None:
    t, ticket = market()
    t.script_order_send(("partial", 0.02))
    result = t.order_send(close(ticket, 0.05))
    assert (result.retcode, result.volume) == (M.TRADE_RETCODE_DONE_PARTIAL, 0.02)
    assert [d.volume for d in t.history_deals_get(ticket=result.order)] == [0.02] and t.positions[ticket].volume == pytest.approx(0.08)


def test_a_split_fill_is_two_deals_of_one_order_the_second_one_point_worse() -> None:
    t, ticket = market()
    t.script_order_send(("split", 0.01))
    result = t.order_send(close(ticket, 0.03))
    deals = t.history_deals_get(ticket=result.order)
    assert (result.retcode, result.volume, result.deal) == (M.TRADE_RETCODE_DONE, 0.03, deals[0].ticket)
    assert [(d.volume, d.price, d.order) for d in deals] == [(0.01, 1.14500, result.order), (0.02, 1.14499, result.order)]
    assert t.positions[ticket].volume == pytest.approx(0.07)


def test_copy_ticks_range_gives_the_ticks_its_flags_ask_for() -> None:
    t, _ = market()
    t.tick("EURUSD", 1.14510, 1.14512, T0 + 1_000)
    assert [r["bid"] for r in t.copy_ticks_range("EURUSD", T0 / 1000, T0 / 1000 + 1, M.COPY_TICKS_INFO)] == [1.14500, 1.14510]
    assert len(t.copy_ticks_range("EURUSD", T0 / 1000, T0 / 1000 + 1, M.COPY_TICKS_ALL)) == 2
    assert len(t.copy_ticks_range("EURUSD", T0 / 1000, T0 / 1000 + 1, M.COPY_TICKS_TRADE)) == 0  # quotes only: no trades
    assert t.copy_ticks_range("EURUSD", T0 / 1000, T0 / 1000 + 1, 99) is None and t.last_error()[0] == M.RES_E_INVALID_PARAMS
