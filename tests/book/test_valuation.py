"""Valuation: one conversion of price x lots into the account currency, and the open PnL ledger."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.book.positions import Position
from engine.book.valuation import Converter, OpenPnL, UnknownSymbol, open_risk
from engine.config.models import Instrument, Instruments

INSTRUMENTS = Instruments(account_currency="USD", instruments={
    "EURUSD": Instrument(quote_currency="USD", pip_size=0.0001),
    "USDJPY": Instrument(quote_currency="JPY", pip_size=0.01, digits=3),
    "GOLD": Instrument(quote_currency="USD", pip_size=0.01, contract_size=100),
})


def test_pnl_notional_and_risk_are_price_lots_times_contract_size_times_rate():
    conv = Converter(INSTRUMENTS)
    assert conv.pnl("EURUSD", 1, 1.1000, 1.1010, 2.0) == pytest.approx(0.001 * 2 * 100_000)
    assert conv.pnl("EURUSD", -1, 1.1000, 1.1010, 2.0) == pytest.approx(-200.0)
    assert conv.notional("GOLD", 2000.0, 0.5) == pytest.approx(2000.0 * 0.5 * 100)
    assert conv.risk("EURUSD", 1.1000, 1.0950, 1.0) == pytest.approx(500.0)
    assert conv.risk("EURUSD", 1.0950, 1.1000, 1.0) == conv.risk("EURUSD", 1.1000, 1.0950, 1.0)


def test_money_in_a_quote_currency_waits_for_its_conversion_pair_then_uses_its_mid():
    conv = Converter(INSTRUMENTS)
    assert math.isnan(conv.pnl("USDJPY", 1, 150.0, 151.0, 1.0)) and math.isnan(conv.scale("USDJPY"))
    conv.update("USDJPY", 149.99, 150.01)  # JPY -> USD through the inverse pair
    assert conv.rate("JPY") == pytest.approx(1 / 150.0)
    assert conv.pnl("USDJPY", 1, 150.0, 151.0, 1.0) == pytest.approx(1.0 * 100_000 / 150.0)
    assert conv.scale("USDJPY") == pytest.approx(100_000 / 150.0)


def test_every_sum_is_the_same_conversion_to_the_bit():
    conv = Converter(INSTRUMENTS)
    conv.update("USDJPY", 149.987, 150.013)
    side, entry, price, volume = -1, 151.237, 150.911, 0.37
    assert conv.pnl("USDJPY", side, entry, price, volume) == side * (price - entry) * volume * 100_000 * conv.rate("JPY")
    assert conv.notional("USDJPY", price, volume) == price * volume * 100_000 * conv.rate("JPY")
    assert conv.risk("USDJPY", entry, price, volume) == abs(entry - price) * volume * 100_000 * conv.rate("JPY")


def test_an_unknown_symbol_is_an_error_naming_it():
    with pytest.raises(UnknownSymbol, match="XAUEUR"):
        Converter(INSTRUMENTS).notional("XAUEUR", 1.0, 1.0)


def test_open_risk_counts_positions_with_a_stop_only():
    conv = Converter(INSTRUMENTS)
    a = Position("a", "EURUSD", "s", "s-1", 1, 1.0, 1.1000, 0, stop_loss=1.0900)
    b = Position("b", "EURUSD", "s", "s-1", -1, 2.0, 1.1000, 0, stop_loss=1.1050)
    c = Position("c", "EURUSD", "s", "s-1", 1, 5.0, 1.1000, 0)  # no stop
    assert open_risk(conv, [a, b, c]) == pytest.approx(1000.0 + 1000.0)
    assert open_risk(conv, []) == 0.0


def test_open_pnl_keeps_the_total_by_difference_and_grows_with_new_strategies():
    pnl = OpenPnL(2)
    pnl.revalue("EURUSD", np.array([0.001, -0.002]), 100_000.0)
    pnl.revalue("GBPUSD", np.array([0.0, 0.003, 0.001]), 100_000.0)
    pnl.revalue("EURUSD", np.array([0.002, 0.0]), 100_000.0)
    assert pnl.total.tolist() == pytest.approx([200.0, 300.0, 100.0])
    assert pnl.of(1) == pytest.approx(300.0) and pnl.of(7) == 0.0 and pnl.of() == pytest.approx(600.0)


def test_open_pnl_of_a_symbol_without_a_rate_counts_as_zero():
    pnl = OpenPnL(1)
    pnl.revalue("USDJPY", np.array([3.0]), math.nan)
    assert pnl.of() == 0.0
