"""A connected MetaTrader 5 terminal's symbol_info is the engine's instrument: its lot step, tick size and
limits reach the engine through the service (at start and on reloads), over rules/instruments.yaml,
without changing the rules version."""

from __future__ import annotations

import json

import pytest

from engine.adapters import factories
from engine.config import load_config
from engine.service.pump import FeedPump
from engine.service.store import Keys
from engine.testing.mt5 import FakeTerminal
from tests.service.conftest import start_service, wait_for

LOGIN, PASSWORD, SERVER = 5_001_234, "pa55-Word-xyz", "Desk-Demo"
ENV = {"MT5_LOGIN": str(LOGIN), "MT5_PASSWORD": PASSWORD, "MT5_SERVER": SERVER}
T0 = 1_549_238_400_000
TREND = 2001  # scalp_trend's magic number in examples/scalping/rules/instruments.yaml


@pytest.fixture
def terminal() -> FakeTerminal:
    """EURUSD traded in 0.1 lots (the file says nothing, so 0.01), and an index the file does not list."""
    fake = FakeTerminal(login=LOGIN, password=PASSWORD, server=SERVER)
    fake.add_symbol("EURUSD", digits=5, volume_step=0.1, volume_min=0.1, volume_max=20.0, stops_level=2)
    fake.add_symbol("US500", digits=2, tick_size=0.25, contract_size=50.0, volume_step=0.1, volume_min=0.1, base="USD", profit="USD")
    fake.tick("EURUSD", 1.14500, 1.14502, T0)
    fake.tick("US500", 5000.25, 5000.75, T0)
    return fake


def actions(redis_server) -> list[dict]:
    return [json.loads(f[b"action"]) for _, f in redis_server.xrange(Keys().stream("acct", "actions"))]


def test_the_terminals_lot_step_reaches_the_engine_and_its_exit_volumes(redis_server, scalping, terminal: FakeTerminal) -> None:
    edges = factories.edges("mt5", "mt5", mt5_module=terminal, env=ENV)
    ticket = terminal.open_position("EURUSD", "BUY", 0.5, price=1.14502, magic=TREND)
    svc = start_service(redis_server, scalping, broker_factory=edges.broker_factory, allow_takeover=True,
                        instruments=edges.instruments)
    pump = FeedPump(edges.feed(svc.active_rules()), lambda obj: svc.publish(obj, "acct"), interval=0.02)
    pump.start()
    try:
        eurusd = svc.active_rules().instruments.instruments["EURUSD"]
        assert (eurusd.volume_step, eurusd.volume_min, eurusd.volume_max, eurusd.stops_level, eurusd.pip_size) == (
            0.1, 0.1, 20.0, 2, 0.0001)  # the terminal's contract, the file's pip
        assert svc.version == load_config(str(scalping)).version  # the broker is the environment, not the rules
        engine_step = svc.workers["acct"].call(lambda e: e.rules.instruments.instruments["EURUSD"].volume_step)
        assert engine_step == 0.1
        wait_for(lambda: terminal.positions[ticket].sl > 0, 10, "the default SL at the broker")
        terminal.tick("EURUSD", 1.14516, 1.14518, T0 + 1_000)  # exit level 1: 30 % of 0.5 = 0.15, down to the step
        wait_for(lambda: terminal.positions[ticket].volume == pytest.approx(0.4), 10, "the partial exit at the broker")
    finally:
        pump.stop()
        svc.stop()
        edges.close()
    [partial] = [a for a in actions(redis_server) if a["type"] == "close_partial"]
    assert partial["params"]["volume"] == 0.1  # on the file's 0.01 step it would be 0.15, which the terminal refuses


def test_a_symbol_only_the_terminal_knows_is_added_and_one_it_lacks_keeps_the_files_entry(redis_server, scalping,
                                                                                         terminal: FakeTerminal) -> None:
    problems: list[str] = []
    edges = factories.edges("redis", "mt5", mt5_module=terminal, env=ENV, on_problem=problems.append)
    terminal.open_position("US500", "BUY", 1.0, price=5000.75, magic=TREND)  # in play: a position at the terminal
    svc = start_service(redis_server, scalping, broker_factory=edges.broker_factory, instruments=edges.instruments, watch=True)
    try:
        known = svc.active_rules().instruments.instruments
        assert known["US500"].tick_size == 0.25 and known["US500"].contract_size == 50.0
        assert known["USDJPY"] == load_config(str(scalping)).instruments.instruments["USDJPY"]  # not offered: the file's
        assert sorted(problems) == [f"symbol {s} is not offered by the broker: Terminal: Not found" for s in ("EURJPY", "GBPUSD", "USDJPY")]
        # a reload reads the terminal again: a changed step reaches the engine; the missing symbols are not reported again
        terminal.symbols["EURUSD"]["volume_step"] = 0.5
        path = scalping / "strategies" / "scalp_trend.yaml"
        path.write_text(path.read_text().replace("exit_percentage: 0.3, sl_adjustment: 0.0}", "exit_percentage: 0.4, sl_adjustment: 0.0}"))
        result = svc.reload("test")
        assert result.ok and result.changed and svc.version == load_config(str(scalping)).version
        assert svc.active_rules().instruments.instruments["EURUSD"].volume_step == 0.5
        wait_for(lambda: svc.workers["acct"].call(lambda e: e.rules.instruments.instruments["EURUSD"].volume_step) == 0.5, 10,
                 "the reloaded instruments in the engine")
        assert len(problems) == 3
    finally:
        svc.stop()
        edges.close()


def test_without_a_terminal_the_file_is_the_instrument(redis_server, scalping) -> None:
    svc = start_service(redis_server, scalping)
    try:
        assert svc.active_rules().instruments == load_config(str(scalping)).instruments
    finally:
        svc.stop()
