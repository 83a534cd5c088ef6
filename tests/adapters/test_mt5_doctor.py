"""`riskrail doctor --broker mt5`: each check says in plain words what is wrong, never a credential."""

from __future__ import annotations

from engine.adapters.mt5 import Check, MT5Connection, doctor
from engine.testing import mt5 as M
from engine.testing.mt5 import FakeTerminal
from tests.adapters.conftest import ENV, LOGIN, PASSWORD, SERVER


def verdicts(checks: list[Check]) -> dict[str, bool]:
    return {c.name: c.ok for c in checks}


def no_secrets(checks: list[Check]) -> bool:
    text = " ".join(c.message for c in checks)
    return PASSWORD not in text and SERVER not in text and str(LOGIN) not in text


def test_a_healthy_setup_passes_every_check(fake: FakeTerminal) -> None:
    checks = doctor(fake, ["EURUSD"], env=ENV)
    assert verdicts(checks) == {"package": True, "terminal": True, "trade server": True, "account": True, "trading": True,
                                "symbol EURUSD": True}
    assert "hedging account in USD" in checks[3].message and "volume step 0.01" in checks[-1].message
    assert no_secrets(checks) and not fake.initialized  # the doctor's own link is closed again


def test_a_terminal_that_is_not_running_is_the_last_check(fake: FakeTerminal) -> None:
    fake.go_away(back_after=10)
    checks = doctor(fake, ["EURUSD"], env=ENV)
    assert verdicts(checks) == {"package": True, "terminal": False}
    assert "Start the MetaTrader 5 terminal" in checks[-1].message and "IPC initialize failed" in checks[-1].message


def test_wrong_credentials_are_named_but_not_shown(fake: FakeTerminal) -> None:
    checks = doctor(fake, [], env={**ENV, "MT5_PASSWORD": "not-" + PASSWORD})
    assert verdicts(checks)["terminal"] is False and "check MT5_LOGIN, MT5_PASSWORD and MT5_SERVER" in checks[-1].message
    assert no_secrets(checks) and "not-" not in checks[-1].message


def test_a_terminal_offline_from_its_server(fake: FakeTerminal) -> None:
    fake.server_connected = False
    checks = doctor(fake, ["EURUSD"], env=ENV)
    assert checks[-1] == Check("trade server", False, "the terminal is not connected to its trade server: check the network "
                                                      "and the server name (MT5_SERVER)")


def test_every_reason_trading_is_not_allowed_is_listed(fake: FakeTerminal) -> None:
    fake.terminal_trade_allowed = False
    fake.tradeapi_disabled = True
    fake.account_trade_allowed = False
    checks = doctor(fake, [], env=ENV)
    [trading] = [c for c in checks if c.name == "trading"]
    assert not trading.ok
    assert "press the Algo Trading button" in trading.message and "external Python API" in trading.message
    assert "investor" in trading.message


def test_symbols_missing_disabled_unquoted_or_close_only(fake: FakeTerminal) -> None:
    fake.add_symbol("GBPUSD", trade_mode=M.SYMBOL_TRADE_MODE_DISABLED)
    fake.tick("GBPUSD", 1.3, 1.3001, 1)
    fake.add_symbol("USDJPY", select=False)  # not in Market Watch: the doctor adds it, but it has no quote
    fake.add_symbol("EURGBP", trade_mode=M.SYMBOL_TRADE_MODE_CLOSEONLY)
    fake.tick("EURGBP", 0.87, 0.8701, 1)
    checks = {c.name: c for c in doctor(fake, ["EURUSD.m", "GBPUSD", "USDJPY", "EURGBP"], env=ENV)}
    assert not checks["symbol EURUSD.m"].ok and "suffixes" in checks["symbol EURUSD.m"].message
    assert not checks["symbol GBPUSD"].ok and "disabled" in checks["symbol GBPUSD"].message
    assert not checks["symbol USDJPY"].ok and "no quotes" in checks["symbol USDJPY"].message and "USDJPY" in fake.selected
    assert checks["symbol EURGBP"].ok and "close only" in checks["symbol EURGBP"].message


def test_a_connection_in_use_is_checked_as_it_is(fake: FakeTerminal) -> None:
    conn = MT5Connection(fake, env=ENV)
    conn.connect()
    assert all(c.ok for c in doctor(conn, ["EURUSD"]))
    assert conn.connected and fake.initialized  # not closed: it belongs to the running engine
