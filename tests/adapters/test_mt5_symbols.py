"""A symbol's specification on the one instrument model: its tick grid (``trade_tick_size``, else one point)
and its lot grid, the same ``Grid``s the engine rounds on; the fake terminal refuses what is off them."""

from __future__ import annotations

import pytest

from engine.actions import Action
from engine.adapters.mt5 import MT5Broker, MT5Connection, MT5Feed, SymbolSpec
from engine.config.grid import Grid
from engine.config.models import Instrument
from engine.testing import mt5 as M
from engine.testing.mt5 import FakeTerminal
from tests.adapters.conftest import T0, TREND


def spec_of(fake: FakeTerminal, symbol: str) -> SymbolSpec:
    fake.initialize()
    info = fake.symbol_info(symbol)
    assert info is not None
    return SymbolSpec.from_info(info)


def action(type_: str, position_id: str, *, id_: str = "a-1", **params) -> Action:
    return Action(id_, T0, type_, position_id, "scalp_trend", params, "trailing", "rv-test", "test")


@pytest.fixture
def index(fake: FakeTerminal) -> FakeTerminal:
    """An index quoted with 2 digits that moves in quarter points (tick 0.25), traded in 0.1 lots."""
    fake.add_symbol("US500", digits=2, tick_size=0.25, contract_size=50.0, volume_step=0.1, volume_min=0.1, volume_max=50.0,
                    base="USD", profit="USD")
    fake.tick("US500", 5000.25, 5000.75, T0)
    return fake


def test_a_quarter_point_symbol_rounds_its_prices_onto_the_quarter_grid(index: FakeTerminal) -> None:
    spec = spec_of(index, "US500")
    assert (spec.digits, spec.tick_size, spec.prices) == (2, 0.25, Grid(25, 100))
    assert [spec.round_price(p) for p in (5000.12, 5000.13, 5000.37, 5000.38, 4999.99)] == [5000.0, 5000.25, 5000.25, 5000.5, 5000.0]


def test_the_spec_is_the_instrument_the_engine_reads(index: FakeTerminal) -> None:
    spec = spec_of(index, "US500")
    model = spec.instrument_model()
    assert isinstance(model, Instrument)
    assert (model.tick_size, model.digits, model.contract_size, model.volume_step, model.volume_min, model.volume_max) == (
        0.25, 2, 50.0, 0.1, 0.1, 50.0)
    assert model.prices.nearest(5000.13) == spec.round_price(5000.13) and model.lots == spec.lots


@pytest.mark.parametrize("tick", [0.0, 0.003, -1.0, float("nan")])
def test_a_tick_size_that_is_not_a_whole_number_of_points_falls_back_to_one_point(fake: FakeTerminal, tick: float) -> None:
    fake.initialize()
    info = fake.symbol_info("EURUSD")._replace(trade_tick_size=tick, digits=2, point=0.01)
    spec = SymbolSpec.from_info(info)
    assert spec.tick_size == 0.0 and spec.prices == Grid(1, 100) and spec.round_price(1.234) == 1.23


@pytest.mark.parametrize("volume, rounded", [(0.045, 0.04), (0.055, 0.06), (0.0333, 0.03), (0.07999999999999999, 0.08)])
def test_volumes_round_half_to_even_onto_the_lot_step(fake: FakeTerminal, volume: float, rounded: float) -> None:
    assert spec_of(fake, "EURUSD").round_volume(volume) == rounded


def test_instruments_carry_the_tick_size(conn: MT5Connection, index: FakeTerminal) -> None:
    got = MT5Feed(conn).instruments(["US500", "EURUSD"])
    assert got["US500"]["tick_size"] == 0.25 and got["EURUSD"]["tick_size"] == 0.00001
    assert Instrument.model_validate(got["US500"]).prices == Grid(25, 100)


def test_the_broker_sends_levels_on_the_quarter_grid(conn: MT5Connection, index: FakeTerminal) -> None:
    ticket = index.open_position("US500", "BUY", 1.0, price=5000.75, magic=TREND)
    broker = MT5Broker(conn)
    broker.execute(action("set_stop_loss", str(ticket), stop_loss=4990.1), {})
    assert index.requests[-1]["sl"] == 4990.0 and index.positions[ticket].sl == 4990.0 and not broker.pending


def test_levels_moved_outside_the_stops_level_stay_on_the_tick_grid(conn: MT5Connection, index: FakeTerminal) -> None:
    index.symbols["US500"]["stops_level"] = 30  # 0.30 away from the price
    ticket = index.open_position("US500", "BUY", 1.0, price=5000.75, magic=TREND)
    short = index.open_position("US500", "SELL", 1.0, price=5000.25, magic=TREND)
    broker = MT5Broker(conn)
    broker.execute(action("set_stop_loss", str(ticket), stop_loss=5000.0), {})  # 0.25 under the bid: too close
    assert [r["sl"] for r in index.requests] == [5000.0, 4999.75]  # 0.31 under the bid, down to the grid
    broker.execute(action("set_stop_loss", str(short), id_="a-2", stop_loss=5001.0), {})
    assert index.requests[-1]["sl"] == 5001.25 and index.positions[short].sl == 5001.25
    assert not broker.pending


def test_the_fake_refuses_prices_and_levels_off_the_tick_grid(index: FakeTerminal) -> None:
    index.initialize()
    ticket = index.open_position("US500", "BUY", 1.0, price=5000.75, magic=TREND)
    deal = {"action": M.TRADE_ACTION_DEAL, "position": ticket, "symbol": "US500", "volume": 0.5, "type": M.ORDER_TYPE_SELL,
            "deviation": 20, "type_filling": M.ORDER_FILLING_FOK}
    assert index.order_send({**deal, "price": 5000.3}).retcode == M.TRADE_RETCODE_INVALID_PRICE
    sltp = {"action": M.TRADE_ACTION_SLTP, "position": ticket, "symbol": "US500"}
    assert index.order_send({**sltp, "sl": 4990.1, "tp": 0.0}).retcode == M.TRADE_RETCODE_INVALID_STOPS
    assert index.order_send({**sltp, "sl": 4990.0, "tp": 5010.6}).retcode == M.TRADE_RETCODE_INVALID_STOPS
    assert index.positions[ticket].volume == 1.0 and (index.positions[ticket].sl, index.positions[ticket].tp) == (0.0, 0.0)
    assert index.order_send({**sltp, "sl": 4990.0, "tp": 5010.5}).retcode == M.TRADE_RETCODE_DONE
    assert index.order_send({**deal, "price": 5000.25}).retcode == M.TRADE_RETCODE_DONE


@pytest.mark.parametrize("volume", [0.05, 0.15, 0.35, 60.0])
def test_the_fake_refuses_volumes_off_the_step_or_outside_the_limits(index: FakeTerminal, volume: float) -> None:
    index.initialize()
    opened = {"action": M.TRADE_ACTION_DEAL, "symbol": "US500", "volume": volume, "type": M.ORDER_TYPE_BUY, "price": 5000.75,
              "deviation": 20, "type_filling": M.ORDER_FILLING_FOK}
    assert index.order_send(opened).retcode == M.TRADE_RETCODE_INVALID_VOLUME and index.positions == {}
    assert index.order_send({**opened, "volume": 0.3}).retcode == M.TRADE_RETCODE_DONE


def test_symbol_info_reports_the_tick_size(index: FakeTerminal) -> None:
    index.initialize()
    assert index.symbol_info("US500").trade_tick_size == 0.25 and index.symbol_info("EURUSD").trade_tick_size == 0.00001
