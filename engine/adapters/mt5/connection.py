"""The link to one MetaTrader 5 terminal and account: connect from the environment, reconnect with
bounded exponential backoff when the terminal goes away, and never let a credential out."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from engine.adapters.mt5._module import IPC_ERRORS, MT5Error, load_module

log = logging.getLogger("riskrail.mt5")


class _Credentials:
    """MT5_PATH, MT5_LOGIN, MT5_PASSWORD and MT5_SERVER; their repr shows none of them."""

    __slots__ = ("login", "password", "path", "server")

    def __init__(self, env: Mapping[str, str]) -> None:
        self.path = env.get("MT5_PATH") or None
        raw = (env.get("MT5_LOGIN") or "").strip()
        if raw and not raw.isdigit():
            raise MT5Error("MT5_LOGIN must be the account number (digits only)")
        self.login = int(raw) if raw else None
        self.password = env.get("MT5_PASSWORD") or None
        self.server = env.get("MT5_SERVER") or None

    def scrub(self, text: str) -> str:
        """``text`` with the password, the server, the path and the login replaced by ``***`` (each of at
        least 3 characters: shorter ones would garble every message and hide little)."""
        for secret in (self.password, self.server, self.path, str(self.login) if self.login else None):
            if secret and len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def __repr__(self) -> str:
        return "<MT5 credentials hidden>"


class MT5Connection:
    """One terminal and the account it is logged in to.

    ``connect()`` runs ``initialize`` (with ``MT5_PATH`` when set) and ``login`` (when ``MT5_LOGIN`` is
    set; otherwise the account the terminal is logged in to is used) and checks ``account_info``.
    ``ensure()`` checks that the terminal answers and is online, and reconnects with exponential
    backoff (``backoff`` s doubling up to ``max_backoff``, ``attempts`` tries) when it does not.
    Failures raise ``MT5Error`` with the terminal's ``last_error()``; credentials appear in no log,
    repr or message. ``ledger`` holds the deal tickets already booked to the engine, shared by the feed
    and the broker of this account so that no deal is booked twice. ``server_offset_ms`` is the trade
    server's time minus UTC (MetaTrader 5 stamps ticks and deals in server time; often UTC+2 or +3).
    """

    def __init__(self, module: Any = None, env: Mapping[str, str] = os.environ, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, *, attempts: int = 6, backoff: float = 0.5,
                 max_backoff: float = 30.0, timeout_ms: int = 10_000, server_offset_ms: int = 0) -> None:
        self.mt5 = module if module is not None else load_module()
        self._creds = _Credentials(env)
        self.clock, self.sleep = clock, sleep
        self.attempts, self.backoff, self.max_backoff, self.timeout_ms = max(1, attempts), backoff, max_backoff, timeout_ms
        self.connected = False
        self.reconnects = 0
        self._went_away = False  # a call found the terminal gone: the next ensure() that succeeds is a reconnect
        self.ledger: set[int] = set()
        self.server_offset_ms = int(server_offset_ms)
        # the package talks to one terminal per process: the feed's thread and the engine's thread
        # (the broker) take turns
        self.lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MT5Connection(connected={self.connected}, reconnects={self.reconnects})"

    def redact(self, text: str) -> str:
        """``text`` without this connection's credentials (for a log or a message written elsewhere)."""
        return self._creds.scrub(text)

    def _terminal(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call a package function whose arguments may hold credentials: whatever it raises becomes an
        ``MT5Error`` with the credentials scrubbed and no chained exception (a traceback would print them)."""
        try:
            return getattr(self.mt5, name)(*args, **kwargs)
        except Exception as exc:
            failure = self._creds.scrub(f"MetaTrader 5 {name} failed: {type(exc).__name__}: {exc}")
        raise MT5Error(failure)  # raised outside the handler: the original is not even its context

    def last_error(self) -> tuple[int, str]:
        """The terminal's last error ``(code, description)``."""
        code, message = self.mt5.last_error()
        return int(code), self._creds.scrub(str(message))

    def error(self, what: str) -> MT5Error:
        """An ``MT5Error`` saying ``what`` failed, with the terminal's last error."""
        code, message = self.last_error()
        err = MT5Error(self._creds.scrub(f"{what}: {message} (MetaTrader 5 error {code})"))
        err.last_error = (code, message)  # type: ignore[attr-defined]
        return err

    def connect(self) -> None:
        """Start the link and log in; raise ``MT5Error`` saying what is wrong."""
        c, mt5 = self._creds, self.mt5
        if not self._terminal("initialize", *((c.path,) if c.path else ()), timeout=self.timeout_ms):
            raise self.error("cannot start or reach the MetaTrader 5 terminal" + (" at MT5_PATH" if c.path else ""))
        if c.login is not None:
            extra = {k: v for k, v in (("password", c.password), ("server", c.server)) if v is not None}
            if not self._terminal("login", c.login, timeout=self.timeout_ms, **extra):
                err = self.error("the terminal refused the login; check MT5_LOGIN, MT5_PASSWORD and MT5_SERVER")
                mt5.shutdown()
                raise err
        info = mt5.account_info()
        if info is None:
            raise self.error("the terminal is not logged in to a trading account; set MT5_LOGIN, MT5_PASSWORD and MT5_SERVER")
        if c.login is not None and int(info.login) != c.login:
            raise MT5Error("the terminal is logged in to another account than MT5_LOGIN")
        self.connected = True
        log.info("connected to the MetaTrader 5 terminal")

    def alive(self) -> bool:
        """Whether the terminal answers and is connected to its trade server."""
        info = self.mt5.terminal_info()
        return info is not None and bool(info.connected)

    def ensure(self) -> None:
        """Return when the terminal answers and is online; reconnect with backoff if it does not.

        Raise ``MT5Error`` after ``attempts`` failed tries (the next call starts over).
        """
        if self.connected and self.alive():
            return
        was = self.connected or self._went_away
        start = self.clock()
        last: MT5Error | None = None
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
            try:
                if not self.connected or not self.alive():
                    self.connected = False
                    self.mt5.shutdown()
                    self.connect()
                if self.alive():
                    self.connected = True
                    self._went_away = False
                    if was or attempt:
                        self.reconnects += 1
                        log.warning("reconnected to the MetaTrader 5 terminal after %d attempt(s)", attempt + 1)
                    return
                last = MT5Error("the terminal is not connected to its trade server")
            except MT5Error as e:
                last = e
        self.connected = False
        raise MT5Error(f"the MetaTrader 5 terminal did not come back after {self.attempts} attempts over "
                       f"{self.clock() - start:.0f} s; last error: {last}")

    def call(self, name: str, *args: Any, retry: bool = True, **kwargs: Any) -> Any:
        """Call a package function. When it fails because the terminal went away, reconnect and, with
        ``retry``, call it once more (never for ``order_send``: a lost reply may hide an executed trade)."""
        fn = getattr(self.mt5, name)
        with self.lock:
            result = fn(*args, **kwargs)
            if result is None or result is False:
                code, message = self.last_error()
                if code in IPC_ERRORS:
                    self.connected = False
                    self._went_away = True
                    log.warning("the MetaTrader 5 terminal went away during %s: %s (error %d)", name, message, code)
                    if retry:
                        self.ensure()
                        result = fn(*args, **kwargs)
            return result

    def close(self) -> None:
        """End the link to the terminal."""
        self.mt5.shutdown()
        self.connected = False
