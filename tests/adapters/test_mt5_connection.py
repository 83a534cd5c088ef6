"""Connecting from the environment, reconnecting with bounded backoff, and keeping credentials secret."""

from __future__ import annotations

import logging

import pytest

from engine.adapters.mt5 import MT5Connection, MT5Error
from engine.testing.mt5 import FakeTerminal
from tests.adapters.conftest import ENV, LOGIN, PASSWORD, SERVER, Clock


def secrets_absent(text: str) -> bool:
    return PASSWORD not in text and SERVER not in text and str(LOGIN) not in text


def test_connect_initializes_and_logs_in_with_the_environment(fake: FakeTerminal, clock: Clock) -> None:
    conn = MT5Connection(fake, env={**ENV, "MT5_PATH": "C:\\MT5\\terminal64.exe"}, clock=clock, sleep=clock.sleep)
    fake.path = "C:\\MT5\\terminal64.exe"
    conn.connect()
    assert conn.connected and fake.calls[:2] == ["initialize", "login"]
    assert fake.account_info().login == LOGIN


def test_a_refused_login_carries_last_error_but_no_credential(fake: FakeTerminal, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    conn = MT5Connection(fake, env={**ENV, "MT5_PASSWORD": "wrong-" + PASSWORD}, clock=clock, sleep=clock.sleep)
    with pytest.raises(MT5Error) as err:
        conn.connect()
    message = str(err.value)
    assert "refused the login" in message and "Authorization failed" in message and "-6" in message
    assert err.value.last_error == (-6, "Terminal: Authorization failed")
    assert secrets_absent(message) and "wrong-" not in message
    assert secrets_absent(repr(conn)) and secrets_absent(repr(conn._creds)) and secrets_absent(caplog.text)


def test_a_terminal_that_is_not_there_is_said_plainly(fake: FakeTerminal, clock: Clock) -> None:
    fake.go_away(back_after=100)
    with pytest.raises(MT5Error, match="cannot start or reach the MetaTrader 5 terminal: IPC initialize failed"):
        MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep).connect()


def test_mt5_login_must_be_digits_and_is_not_echoed(fake: FakeTerminal) -> None:
    with pytest.raises(MT5Error, match="MT5_LOGIN must be the account number") as err:
        MT5Connection(fake, env={"MT5_LOGIN": "user-" + PASSWORD})
    assert PASSWORD not in str(err.value)


def test_the_terminal_logged_in_to_another_account_is_refused(fake: FakeTerminal) -> None:
    fake.credentials = (LOGIN + 1, PASSWORD, SERVER)
    fake.initialize()
    fake.login(LOGIN + 1, password=PASSWORD, server=SERVER)
    with pytest.raises(MT5Error):
        MT5Connection(fake, env=ENV).connect()  # login refused: the credentials are of another account
    conn = MT5Connection(fake, env={})  # no MT5_LOGIN: the terminal's own account is used
    conn.connect()
    assert conn.connected


def test_ensure_reconnects_with_exponential_backoff(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    fake.go_away(back_after=3)  # the terminal restarts: three initialize calls fail first
    assert not conn.alive()
    conn.ensure()
    assert conn.alive() and conn.connected and conn.reconnects == 1
    assert clock.sleeps == [0.5, 1.0, 2.0]
    assert fake.account_info() is not None  # logged in again


def test_ensure_gives_up_after_the_bounded_attempts_and_tries_again_later(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    fake.go_away(back_after=10)
    with pytest.raises(MT5Error, match=r"did not come back after 6 attempts over 16 s; last error: .*No IPC connection|IPC initialize"):
        conn.ensure()
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0] and not conn.connected
    fake._back_after = 0
    conn.ensure()
    assert conn.connected


def test_backoff_is_capped(fake: FakeTerminal, clock: Clock) -> None:
    conn = MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep, attempts=8, backoff=1.0, max_backoff=5.0)
    conn.connect()
    fake.go_away(back_after=7)
    conn.ensure()
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]


def test_a_call_that_finds_the_terminal_gone_reconnects_and_retries_once(conn: MT5Connection, fake: FakeTerminal) -> None:
    fake.go_away(back_after=1)
    positions = conn.call("positions_get")
    assert positions == () and conn.reconnects == 1


def test_order_send_is_never_retried_by_the_connection(conn: MT5Connection, fake: FakeTerminal) -> None:
    fake.go_away()
    assert conn.call("order_send", {"action": 6}, retry=False) is None
    assert fake.requests == [] and not conn.connected


def test_a_reconnect_after_a_call_found_the_terminal_gone_is_logged_and_counted(
        conn: MT5Connection, fake: FakeTerminal, caplog: pytest.LogCaptureFixture) -> None:
    # issue 14, case 6: the terminal comes back at the first try, so the reconnect used to go unnoticed
    fake.go_away(back_after=0)
    with caplog.at_level("WARNING"):
        assert conn.call("positions_get") == ()
    assert conn.reconnects == 1 and "reconnected to the MetaTrader 5 terminal" in caplog.text
    fake.go_away(back_after=0)
    assert conn.call("order_send", {"action": 6}, retry=False) is None  # never retried: the next ensure reconnects
    conn.ensure()
    assert conn.reconnects == 2
