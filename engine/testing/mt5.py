"""A fake of the ``MetaTrader5`` package: the documented functions, named tuples, constants and
retcodes riskrail uses, over a scriptable market and account. Importable on every platform.

Use the module itself (its functions act on one default terminal, ``reset()`` starts a fresh one) or
an instance of ``FakeTerminal``, which has the same functions and constants as attributes: both can
be handed to the adapter (``engine.adapters.mt5``) in place of the real package.

What the fake checks, as the trade server would (so adapter mistakes fail the tests):

- ``initialize``/``login``: the path and credentials it was built with; while the terminal is away
  (``go_away``) every call fails and ``last_error()`` says ``No IPC connection``;
- ``order_send``: unknown request keys and comments longer than 31 characters (``None`` and
  ``RES_E_INVALID_PARAMS``, as the package does); a close (``TRADE_ACTION_DEAL`` with ``position``)
  needs the opposite order type, a volume on the symbol's ``volume_step`` within ``volume_min`` and
  ``volume_max`` (else ``INVALID_VOLUME``) and at most the position's volume, an allowed filling mode,
  and a price on the tick grid (``trade_tick_size``, else ``INVALID_PRICE``); ``TRADE_ACTION_SLTP``
  needs both levels on the tick grid and outside ``trade_stops_level`` points of the price (else
  ``INVALID_STOPS``), and identical levels give ``NO_CHANGES``;
- the symbol's execution mode (``add_symbol(execution=...)``): ``INSTANT`` (the default) fills at the
  market when the request's price is within ``deviation`` points of it, else ``REQUOTE`` (with the
  fresh bid and ask in the result); ``REQUEST`` gives ``PRICE_CHANGED`` instead; ``MARKET`` and
  ``EXCHANGE`` ignore the request's price and deviation and fill at whatever the market is when the
  request lands, so the fill price may differ from the quote the sender read;
- broker-side stops: a tick that reaches a position's ``sl`` or ``tp`` closes it at the tick's price
  with a ``DEAL_REASON_SL``/``DEAL_REASON_TP`` deal.

What the fake models of a real terminal:

- order tickets: every executed request is an order with its own ticket (the result's ``order``),
  every deal names the order that made it (``TradeDeal.order``; a position's opening deal: the
  position's ticket, as MT5 numbers them), and ``history_deals_get(ticket=order)`` gives an order's
  deals; the result's ``deal`` is the order's first deal;
- deals without comments: ``deal_comments = False`` empties every deal's comment, as brokers do that
  do not copy an order's comment into its deals;
- the market moving between calls: a scripted ``("move", points)`` moves the request's symbol by
  ``points`` points (a new tick) after the sender read its quote and before the request lands;
- lost replies: a scripted ``"lost"`` executes the request and returns ``None`` (IPC timeout), and
  ``"dropped"`` executes it and loses the terminal with the reply (``None``, ``No IPC connection``;
  the next ``initialize`` brings it back);
- partial fills: ``("partial", volume)`` fills only ``volume`` of a close (``DONE_PARTIAL``; the rest
  stays open), ``("split", volume)`` fills all of it in two deals of one order, the first of
  ``volume`` lots at the market, the rest one point worse (``DONE``).

Scripting: ``add_symbol``, ``tick`` (or ``feed_ticks``), ``open_position``, ``close_position`` (the
trader), ``script_order_send`` (the outcomes above, a retcode, ``None``, or a callable run first),
``go_away(back_after=n)``; ``requests`` records every ``order_send`` request that reached the fake.
Profit is in the symbol's profit currency, which the fake takes to be the account currency.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TypeAlias, TypedDict, TypeGuard

import numpy as np
import numpy.typing as npt

# --- constants (values of the MetaTrader5 package) ------------------------------------------------

TRADE_ACTION_DEAL = 1
TRADE_ACTION_PENDING = 5
TRADE_ACTION_SLTP = 6
TRADE_ACTION_MODIFY = 7
TRADE_ACTION_REMOVE = 8
TRADE_ACTION_CLOSE_BY = 10

ORDER_TYPE_BUY = 0
ORDER_TYPE_SELL = 1
ORDER_FILLING_FOK = 0
ORDER_FILLING_IOC = 1
ORDER_FILLING_RETURN = 2
ORDER_FILLING_BOC = 3
ORDER_TIME_GTC = 0

POSITION_TYPE_BUY = 0
POSITION_TYPE_SELL = 1
POSITION_REASON_CLIENT = 0
POSITION_REASON_MOBILE = 1
POSITION_REASON_WEB = 2
POSITION_REASON_EXPERT = 3

DEAL_TYPE_BUY = 0
DEAL_TYPE_SELL = 1
DEAL_TYPE_BALANCE = 2
DEAL_ENTRY_IN = 0
DEAL_ENTRY_OUT = 1
DEAL_ENTRY_INOUT = 2
DEAL_ENTRY_OUT_BY = 3
DEAL_REASON_CLIENT = 0
DEAL_REASON_MOBILE = 1
DEAL_REASON_WEB = 2
DEAL_REASON_EXPERT = 3
DEAL_REASON_SL = 4
DEAL_REASON_TP = 5
DEAL_REASON_SO = 6

SYMBOL_TRADE_MODE_DISABLED = 0
SYMBOL_TRADE_MODE_LONGONLY = 1
SYMBOL_TRADE_MODE_SHORTONLY = 2
SYMBOL_TRADE_MODE_CLOSEONLY = 3
SYMBOL_TRADE_MODE_FULL = 4
SYMBOL_TRADE_EXECUTION_REQUEST = 0
SYMBOL_TRADE_EXECUTION_INSTANT = 1
SYMBOL_TRADE_EXECUTION_MARKET = 2
SYMBOL_TRADE_EXECUTION_EXCHANGE = 3

ACCOUNT_TRADE_MODE_DEMO = 0
ACCOUNT_TRADE_MODE_CONTEST = 1
ACCOUNT_TRADE_MODE_REAL = 2
ACCOUNT_MARGIN_MODE_RETAIL_NETTING = 0
ACCOUNT_MARGIN_MODE_EXCHANGE = 1
ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2

COPY_TICKS_ALL = -1
COPY_TICKS_INFO = 1
COPY_TICKS_TRADE = 2
TICK_FLAG_BID = 2
TICK_FLAG_ASK = 4
TICK_FLAG_LAST = 8
TICK_FLAG_VOLUME = 16

TRADE_RETCODE_REQUOTE = 10004
TRADE_RETCODE_REJECT = 10006
TRADE_RETCODE_CANCEL = 10007
TRADE_RETCODE_PLACED = 10008
TRADE_RETCODE_DONE = 10009
TRADE_RETCODE_DONE_PARTIAL = 10010
TRADE_RETCODE_ERROR = 10011
TRADE_RETCODE_TIMEOUT = 10012
TRADE_RETCODE_INVALID = 10013
TRADE_RETCODE_INVALID_VOLUME = 10014
TRADE_RETCODE_INVALID_PRICE = 10015
TRADE_RETCODE_INVALID_STOPS = 10016
TRADE_RETCODE_TRADE_DISABLED = 10017
TRADE_RETCODE_MARKET_CLOSED = 10018
TRADE_RETCODE_NO_MONEY = 10019
TRADE_RETCODE_PRICE_CHANGED = 10020
TRADE_RETCODE_PRICE_OFF = 10021
TRADE_RETCODE_INVALID_EXPIRATION = 10022
TRADE_RETCODE_ORDER_CHANGED = 10023
TRADE_RETCODE_TOO_MANY_REQUESTS = 10024
TRADE_RETCODE_NO_CHANGES = 10025
TRADE_RETCODE_SERVER_DISABLES_AT = 10026
TRADE_RETCODE_CLIENT_DISABLES_AT = 10027
TRADE_RETCODE_LOCKED = 10028
TRADE_RETCODE_FROZEN = 10029
TRADE_RETCODE_INVALID_FILL = 10030
TRADE_RETCODE_CONNECTION = 10031
TRADE_RETCODE_ONLY_REAL = 10032
TRADE_RETCODE_LIMIT_ORDERS = 10033
TRADE_RETCODE_LIMIT_VOLUME = 10034
TRADE_RETCODE_INVALID_ORDER = 10035
TRADE_RETCODE_POSITION_CLOSED = 10036
TRADE_RETCODE_INVALID_CLOSE_VOLUME = 10038
TRADE_RETCODE_CLOSE_ORDER_EXIST = 10039
TRADE_RETCODE_LIMIT_POSITIONS = 10040

RES_S_OK = 1
RES_E_FAIL = -1
RES_E_INVALID_PARAMS = -2
RES_E_NOT_FOUND = -4
RES_E_AUTH_FAILED = -6
RES_E_INTERNAL_FAIL = -10000
RES_E_INTERNAL_FAIL_SEND = -10001
RES_E_INTERNAL_FAIL_RECEIVE = -10002
RES_E_INTERNAL_FAIL_INIT = -10003
RES_E_INTERNAL_FAIL_CONNECT = -10004
RES_E_INTERNAL_FAIL_TIMEOUT = -10005

# The symbol_info().filling_mode flags are MQL5's SYMBOL_FILLING_FOK (1) and SYMBOL_FILLING_IOC (2);
# the package does not export them, so neither does the fake.
_FILL_FOK, _FILL_IOC = 1, 2

_CONSTANTS = {k: v for k, v in dict(globals()).items() if k.isupper() and not k.startswith("_")}

_COMMENTS = {
    TRADE_RETCODE_REQUOTE: "Requote", TRADE_RETCODE_DONE: "Request executed", TRADE_RETCODE_DONE_PARTIAL: "Request executed partially",
    TRADE_RETCODE_INVALID: "Invalid request", TRADE_RETCODE_INVALID_VOLUME: "Invalid volume", TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    TRADE_RETCODE_TRADE_DISABLED: "Trade disabled", TRADE_RETCODE_MARKET_CLOSED: "Market closed", TRADE_RETCODE_PRICE_OFF: "No prices",
    TRADE_RETCODE_NO_CHANGES: "No changes", TRADE_RETCODE_CLIENT_DISABLES_AT: "AutoTrading disabled by client",
    TRADE_RETCODE_FROZEN: "Modification denied, order or position is frozen", TRADE_RETCODE_INVALID_FILL: "Unsupported filling mode",
    TRADE_RETCODE_POSITION_CLOSED: "Position doesn't exist", TRADE_RETCODE_INVALID_CLOSE_VOLUME: "Invalid close volume",
    TRADE_RETCODE_TIMEOUT: "Request timeout", TRADE_RETCODE_REJECT: "Request rejected",
}

# --- named tuples (field names and order of the package) -------------------------------------------


class Tick(NamedTuple):
    time: int
    bid: float
    ask: float
    last: float
    volume: int
    time_msc: int
    flags: int
    volume_real: float


class TradePosition(NamedTuple):
    ticket: int
    time: int
    time_msc: int
    time_update: int
    time_update_msc: int
    type: int
    magic: int
    identifier: int
    reason: int
    volume: float
    price_open: float
    sl: float
    tp: float
    price_current: float
    swap: float
    profit: float
    symbol: str
    comment: str
    external_id: str


class TradeDeal(NamedTuple):
    ticket: int
    order: int
    time: int
    time_msc: int
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    commission: float
    swap: float
    profit: float
    fee: float
    symbol: str
    comment: str
    external_id: str


class TradeRequest(NamedTuple):
    action: int
    magic: int
    order: int
    symbol: str
    volume: float
    price: float
    stoplimit: float
    sl: float
    tp: float
    deviation: int
    type: int
    type_filling: int
    type_time: int
    expiration: int
    comment: str
    position: int
    position_by: int


class OrderSendResult(NamedTuple):
    retcode: int
    deal: int
    order: int
    volume: float
    price: float
    bid: float
    ask: float
    comment: str
    request_id: int
    retcode_external: int
    request: TradeRequest


class AccountInfo(NamedTuple):
    login: int
    trade_mode: int
    leverage: int
    limit_orders: int
    margin_so_mode: int
    trade_allowed: bool
    trade_expert: bool
    margin_mode: int
    currency_digits: int
    fifo_close: bool
    balance: float
    credit: float
    profit: float
    equity: float
    margin: float
    margin_free: float
    margin_level: float
    margin_so_call: float
    margin_so_so: float
    margin_initial: float
    margin_maintenance: float
    assets: float
    liabilities: float
    commission_blocked: float
    name: str
    server: str
    currency: str
    company: str


class TerminalInfo(NamedTuple):
    community_account: bool
    community_connection: bool
    connected: bool
    dlls_allowed: bool
    trade_allowed: bool
    tradeapi_disabled: bool
    email_enabled: bool
    ftp_enabled: bool
    notifications_enabled: bool
    mqid: bool
    build: int
    maxbars: int
    codepage: int
    ping_last: int
    community_balance: float
    retransmission: float
    company: str
    name: str
    language: str
    path: str
    data_path: str
    commondata_path: str


class SymbolInfo(NamedTuple):
    """The 96 fields of ``symbol_info``, typed as the package returns them; a field the fake does not
    model keeps its zero."""

    custom: bool = False
    chart_mode: int = 0
    select: bool = False
    visible: bool = False
    session_deals: int = 0
    session_buy_orders: int = 0
    session_sell_orders: int = 0
    volume: int = 0
    volumehigh: int = 0
    volumelow: int = 0
    time: int = 0
    digits: int = 0
    spread: int = 0
    spread_float: bool = False
    ticks_bookdepth: int = 0
    trade_calc_mode: int = 0
    trade_mode: int = 0
    start_time: int = 0
    expiration_time: int = 0
    trade_stops_level: int = 0
    trade_freeze_level: int = 0
    trade_exemode: int = 0
    swap_mode: int = 0
    swap_rollover3days: int = 0
    margin_hedged_use_leg: bool = False
    expiration_mode: int = 0
    filling_mode: int = 0
    order_mode: int = 0
    order_gtc_mode: int = 0
    option_mode: int = 0
    option_right: int = 0
    bid: float = 0.0
    bidhigh: float = 0.0
    bidlow: float = 0.0
    ask: float = 0.0
    askhigh: float = 0.0
    asklow: float = 0.0
    last: float = 0.0
    lasthigh: float = 0.0
    lastlow: float = 0.0
    volume_real: float = 0.0
    volumehigh_real: float = 0.0
    volumelow_real: float = 0.0
    option_strike: float = 0.0
    point: float = 0.0
    trade_tick_value: float = 0.0
    trade_tick_value_profit: float = 0.0
    trade_tick_value_loss: float = 0.0
    trade_tick_size: float = 0.0
    trade_contract_size: float = 0.0
    trade_accrued_interest: float = 0.0
    trade_face_value: float = 0.0
    trade_liquidity_rate: float = 0.0
    volume_min: float = 0.0
    volume_max: float = 0.0
    volume_step: float = 0.0
    volume_limit: float = 0.0
    swap_long: float = 0.0
    swap_short: float = 0.0
    margin_initial: float = 0.0
    margin_maintenance: float = 0.0
    session_volume: float = 0.0
    session_turnover: float = 0.0
    session_interest: float = 0.0
    session_buy_orders_volume: float = 0.0
    session_sell_orders_volume: float = 0.0
    session_open: float = 0.0
    session_close: float = 0.0
    session_aw: float = 0.0
    session_price_settlement: float = 0.0
    session_price_limit_min: float = 0.0
    session_price_limit_max: float = 0.0
    margin_hedged: float = 0.0
    price_change: float = 0.0
    price_volatility: float = 0.0
    price_theoretical: float = 0.0
    price_greeks_delta: float = 0.0
    price_greeks_theta: float = 0.0
    price_greeks_gamma: float = 0.0
    price_greeks_vega: float = 0.0
    price_greeks_rho: float = 0.0
    price_greeks_omega: float = 0.0
    price_sensitivity: float = 0.0
    basis: str = ""
    category: str = ""
    currency_base: str = ""
    currency_profit: str = ""
    currency_margin: str = ""
    bank: str = ""
    description: str = ""
    exchange: str = ""
    formula: str = ""
    isin: str = ""
    name: str = ""
    page: str = ""
    path: str = ""


TICK_DTYPE = np.dtype([("time", "<i8"), ("bid", "<f8"), ("ask", "<f8"), ("last", "<f8"), ("volume", "<u8"),
                       ("time_msc", "<i8"), ("flags", "<u4"), ("volume_real", "<f8")])

_REQUEST_KEYS = set(TradeRequest._fields)


class _Request(TypedDict, total=False):
    """An ``order_send`` request: any of the ``TradeRequest`` fields, by name."""

    action: int
    magic: int
    order: int
    symbol: str
    volume: float
    price: float
    stoplimit: float
    sl: float
    tp: float
    deviation: int
    type: int
    type_filling: int
    type_time: int
    expiration: int
    comment: str
    position: int
    position_by: int


def _is_request(request: object) -> TypeGuard[_Request]:
    return isinstance(request, dict) and request.keys() <= _REQUEST_KEYS


class _Symbol(TypedDict):
    """A symbol as the fake's trade server knows it (``add_symbol``'s arguments); tests may change it."""

    digits: int
    tick_size: float  # 0: one point
    contract_size: float
    volume_step: float
    volume_min: float
    volume_max: float
    stops_level: int  # points
    freeze_level: int  # points
    filling_mode: int  # SYMBOL_FILLING_* flags
    trade_mode: int
    execution: int  # SYMBOL_TRADE_EXECUTION_*
    base: str
    profit: str


# A scripted order_send outcome (see FakeTerminal.script_order_send).
_Outcome: TypeAlias = (int | Literal["lost", "dropped"] | tuple[Literal["partial", "split", "move"], float] | Callable[[], object]
                       | None)


def _seconds(value: datetime | float) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return float(value)


@dataclass(kw_only=True)
class _Position:
    ticket: int
    symbol: str
    type: int  # POSITION_TYPE_*
    volume: float
    price_open: float
    sl: float
    tp: float
    magic: int
    comment: str
    time_msc: int
    time_update_msc: int


class FakeTerminal:
    """One MetaTrader 5 terminal with one trading account and a scriptable market."""

    def __init__(self, *, login: int = 5_001_234, password: str = "s3cret-pass", server: str = "Broker-Demo",
                 path: str | None = None, balance: float = 100_000.0, currency: str = "USD", hedging: bool = True,
                 build: int = 4755) -> None:
        for name, value in _CONSTANTS.items():
            setattr(self, name, value)
        for nt in (Tick, TradePosition, TradeDeal, TradeRequest, OrderSendResult, AccountInfo, TerminalInfo, SymbolInfo):
            setattr(self, nt.__name__, nt)
        self.credentials = (login, password, server)
        self.path = path
        self.build = build
        self.alive = True
        self.initialized = False
        self.logged_in = False
        self.server_connected = True
        self.terminal_trade_allowed = True
        self.tradeapi_disabled = False
        self.account_trade_allowed = True
        self.account_trade_expert = True
        self.balance = balance
        self.currency = currency
        self.hedging = hedging
        # some brokers do not copy an order's comment into its deals: False makes every deal's comment empty
        self.deal_comments = True
        self.symbols: dict[str, _Symbol] = {}
        self.selected: set[str] = set()
        self.quotes: dict[str, Tick] = {}
        self.history: dict[str, list[Tick]] = {}
        self.positions: dict[int, _Position] = {}
        self.deals: list[TradeDeal] = []
        self.requests: list[_Request] = []
        self.calls: list[str] = []
        self.now_msc = 0
        self._error: tuple[int, str] = (RES_S_OK, "Success")
        self._script: deque[_Outcome] = deque()
        self._fill: tuple[str, float] | None = None  # a scripted ("partial" | "split", volume) for the next close
        self._back_after = 0
        self._next_ticket = 1_000_000
        self._request_id = 0

    # --- scripting ---------------------------------------------------------------------------------

    def add_symbol(self, name: str, *, digits: int = 5, tick_size: float = 0.0, contract_size: float = 100_000.0, volume_step: float = 0.01,
                   volume_min: float = 0.01, volume_max: float = 100.0, stops_level: int = 0, freeze_level: int = 0,
                   filling_mode: int = _FILL_FOK | _FILL_IOC, trade_mode: int = SYMBOL_TRADE_MODE_FULL,
                   execution: int = SYMBOL_TRADE_EXECUTION_INSTANT, base: str | None = None, profit: str | None = None,
                   select: bool = True) -> None:
        """Offer a symbol (selected in Market Watch unless ``select`` is false); ``tick_size``: its price
        step, a whole number of points (0.25 with 2 digits; default one point); ``execution``: how market
        orders are filled (``SYMBOL_TRADE_EXECUTION_*``; see the module docstring)."""
        self.symbols[name] = {"digits": digits, "tick_size": tick_size, "contract_size": contract_size, "volume_step": volume_step,
                              "volume_min": volume_min, "volume_max": volume_max, "stops_level": stops_level,
                              "freeze_level": freeze_level, "filling_mode": filling_mode, "trade_mode": trade_mode,
                              "execution": execution, "base": base or name[:3], "profit": profit or name[3:6]}
        if select:
            self.selected.add(name)
        self.history.setdefault(name, [])

    def tick(self, symbol: str, bid: float, ask: float, time_msc: int | None = None) -> None:
        """A new quote: recorded in the history and checked against the broker-side SL/TP of positions."""
        time_msc = self.now_msc + 1 if time_msc is None else int(time_msc)
        t = Tick(time_msc // 1000, float(bid), float(ask), 0.0, 0, time_msc, TICK_FLAG_BID | TICK_FLAG_ASK, 0.0)
        self.quotes[symbol] = t
        self.history.setdefault(symbol, []).append(t)
        self.now_msc = max(self.now_msc, time_msc)
        for p in [p for p in self.positions.values() if p.symbol == symbol]:
            long = p.type == POSITION_TYPE_BUY
            price = t.bid if long else t.ask
            if p.sl and (price <= p.sl if long else price >= p.sl):
                self._close(p, p.volume, price, DEAL_REASON_SL, f"[sl {p.sl:.{self._digits(symbol)}f}]", self._ticket())
            elif p.tp and (price >= p.tp if long else price <= p.tp):
                self._close(p, p.volume, price, DEAL_REASON_TP, f"[tp {p.tp:.{self._digits(symbol)}f}]", self._ticket())

    def feed_ticks(self, symbol: str, ticks: Iterable[tuple[int, float, float]]) -> None:
        """Several quotes ``(time_msc, bid, ask)`` in order."""
        for ts, bid, ask in ticks:
            self.tick(symbol, bid, ask, ts)

    def open_position(self, symbol: str, action: str, volume: float, *, price: float | None = None, sl: float = 0.0,
                      tp: float = 0.0, magic: int = 0, comment: str = "", time_msc: int | None = None) -> int:
        """Open a position as a strategy's EA (or the trader) would; return its ticket."""
        ptype = POSITION_TYPE_BUY if action.upper() == "BUY" else POSITION_TYPE_SELL
        q = self.quotes.get(symbol)
        if price is None:
            price = (q.ask if ptype == POSITION_TYPE_BUY else q.bid) if q else 1.0
        ticket = self._ticket()
        ms = self.now_msc if time_msc is None else time_msc
        self.positions[ticket] = _Position(ticket=ticket, symbol=symbol, type=ptype, volume=float(volume),
                                           price_open=float(price), sl=float(sl), tp=float(tp), magic=magic,
                                           comment=comment, time_msc=ms, time_update_msc=ms)
        self._deal(ticket, ticket, symbol, ptype, DEAL_ENTRY_IN, volume, price, 0.0, magic,
                   DEAL_REASON_EXPERT if magic else DEAL_REASON_CLIENT, comment, ms)
        return ticket

    def close_position(self, ticket: int, volume: float | None = None, price: float | None = None,
                       reason: int = DEAL_REASON_CLIENT) -> None:
        """Close (part of) a position from outside the engine: the trader, or a stop-out."""
        p = self.positions[ticket]
        q = self.quotes.get(p.symbol)
        if price is None:
            price = (q.bid if p.type == POSITION_TYPE_BUY else q.ask) if q else p.price_open
        self._close(p, p.volume if volume is None else volume, price, reason, "", self._ticket())

    def script_order_send(self, *outcomes: _Outcome) -> None:
        """Outcomes of the next ``order_send`` calls, in order: a retcode (returned, nothing executed),
        ``None`` (the call fails, nothing executed), ``"lost"`` (executed, but the reply is lost: ``None``),
        ``"dropped"`` (executed, then the terminal goes away with the reply: ``None``), ``("partial", volume)``
        (a close fills only that volume: ``DONE_PARTIAL``), ``("split", volume)`` (a close fills in two
        deals of one order: ``volume`` lots, then the rest one point worse), ``("move", points)`` (the
        request's symbol moves that many points, up when positive, before the request lands) or a
        callable run before the request lands. ``"move"``, ``"partial"``, ``"split"`` and callables shape
        the call and go on to the next outcome (``("split", 0.01), "lost"``: a split fill whose reply is
        lost); a retcode, ``None``, ``"lost"`` and ``"dropped"`` end the call's script."""
        self._script.extend(outcomes)

    def go_away(self, back_after: int = 0) -> None:
        """The terminal closes: every call fails until ``initialize`` has failed ``back_after`` times."""
        self.alive = False
        self.initialized = False
        self.logged_in = False
        self._back_after = back_after

    def deals_of(self, ticket: int) -> list[TradeDeal]:
        """The deals of position ``ticket``, oldest first (its opening deal, then its exits)."""
        return [d for d in self.deals if d.position_id == ticket]

    # --- the package's functions -------------------------------------------------------------------

    def initialize(self, path: str | None = None, *, login: int | None = None, password: str | None = None,
                   server: str | None = None, timeout: int | None = None, portable: bool = False) -> bool:
        self.calls.append("initialize")
        if not self.alive:
            if self._back_after > 0:
                self._back_after -= 1
                return self._refuse(RES_E_INTERNAL_FAIL_INIT, "IPC initialize failed, MetaTrader 5 x64 not found")
            self.alive = True
        if path is not None and self.path is not None and path != self.path:
            return self._refuse(RES_E_INTERNAL_FAIL_INIT, "IPC initialize failed, MetaTrader 5 x64 not found")
        self.initialized = True
        if login is not None and not self.login(login, password=password, server=server):
            self.initialized = False
            return False
        self.logged_in = self.logged_in or login is None
        self._error = (RES_S_OK, "Success")
        return True

    def login(self, login: int, password: str | None = None, server: str | None = None, timeout: int | None = None) -> bool:
        self.calls.append("login")
        if not self._up():
            return False
        want_login, want_password, want_server = self.credentials
        if login != want_login or (password is not None and password != want_password) or (server is not None and server != want_server):
            self.logged_in = False
            return self._refuse(RES_E_AUTH_FAILED, "Terminal: Authorization failed")
        self.logged_in = True
        self._error = (RES_S_OK, "Success")
        return True

    def shutdown(self) -> bool:
        self.calls.append("shutdown")
        self.initialized = False
        return True

    def last_error(self) -> tuple[int, str]:
        return self._error

    def version(self) -> tuple[int, int, str] | None:
        return (500, self.build, "20 Nov 2026") if self._up() else None

    def terminal_info(self) -> TerminalInfo | None:
        if not self._up():
            return None
        return TerminalInfo(False, False, self.server_connected, False, self.terminal_trade_allowed, self.tradeapi_disabled,
                            False, False, False, False, self.build, 100_000, 0, 30_000, 0.0, 0.0, "MetaQuotes Ltd.",
                            "MetaTrader 5", "English", self.path or "C:\\Program Files\\MetaTrader 5",
                            self.path or "C:\\Program Files\\MetaTrader 5",
                            "C:\\Users\\desk\\AppData\\Roaming\\MetaQuotes\\Terminal\\Common")

    def account_info(self) -> AccountInfo | None:
        if not self._up():
            return None
        if not self.logged_in:
            self._fail(RES_E_AUTH_FAILED, "Terminal: Authorization failed")
            return None
        profit = sum(self._profit(p, p.volume, self._exit_price(p)) for p in self.positions.values())
        equity = self.balance + profit
        login, _, server = self.credentials
        return AccountInfo(login, ACCOUNT_TRADE_MODE_DEMO, 100, 200, 0, self.account_trade_allowed, self.account_trade_expert,
                           ACCOUNT_MARGIN_MODE_RETAIL_HEDGING if self.hedging else ACCOUNT_MARGIN_MODE_RETAIL_NETTING,
                           2, False, round(self.balance, 2), 0.0, round(profit, 2), round(equity, 2), 0.0, round(equity, 2),
                           0.0, 50.0, 30.0, 0.0, 0.0, 0.0, 0.0, 0.0, "Desk Account", server, self.currency, "Broker Ltd.")

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        if not self._up():
            return False
        if symbol not in self.symbols:
            return self._refuse(RES_E_NOT_FOUND, "Terminal: Not found")
        (self.selected.add if enable else self.selected.discard)(symbol)
        return True

    def symbol_info(self, symbol: str) -> SymbolInfo | None:
        if not self._up():
            return None
        s = self.symbols.get(symbol)
        if s is None:
            self._fail(RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        q = self.quotes.get(symbol)
        point = 10.0 ** -s["digits"]
        return SymbolInfo(
            custom=False, select=symbol in self.selected, visible=symbol in self.selected, time=q.time if q else 0,
            digits=s["digits"], spread=round((q.ask - q.bid) / point) if q else 0, spread_float=True,
            trade_mode=s["trade_mode"], trade_stops_level=s["stops_level"], trade_freeze_level=s["freeze_level"],
            trade_exemode=s["execution"], filling_mode=s["filling_mode"], order_mode=127, expiration_mode=15,
            bid=q.bid if q else 0.0, ask=q.ask if q else 0.0, point=point, trade_tick_size=self._tick_size(symbol),
            trade_tick_value=s["contract_size"] * point, trade_contract_size=s["contract_size"],
            volume_min=s["volume_min"], volume_max=s["volume_max"], volume_step=s["volume_step"],
            currency_base=s["base"], currency_profit=s["profit"], currency_margin=s["base"], name=symbol,
            description=symbol, path=f"Forex\\{symbol}", basis="", category="", bank="", exchange="", formula="",
            isin="", page="",
        )

    def symbol_info_tick(self, symbol: str) -> Tick | None:
        if not self._up():
            return None
        if symbol not in self.symbols:
            self._fail(RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        if symbol not in self.selected:
            self._fail(RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        return self.quotes.get(symbol) or Tick(0, 0.0, 0.0, 0.0, 0, 0, 0, 0.0)

    def copy_ticks_range(self, symbol: str, date_from: datetime | float, date_to: datetime | float,
                         flags: int) -> npt.NDArray[np.void] | None:
        if not self._up():
            return None
        if symbol not in self.symbols:
            self._fail(RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        # COPY_TICKS_INFO: the ticks that changed the bid or ask; COPY_TICKS_TRADE: those that changed the last or volume
        wanted = {COPY_TICKS_ALL: ~0, COPY_TICKS_INFO: TICK_FLAG_BID | TICK_FLAG_ASK, COPY_TICKS_TRADE: TICK_FLAG_LAST | TICK_FLAG_VOLUME}
        if flags not in wanted:
            self._fail(RES_E_INVALID_PARAMS, "Invalid arguments")
            return None
        lo, hi = _seconds(date_from) * 1000, _seconds(date_to) * 1000
        rows = [tuple(t) for t in self.history.get(symbol, []) if lo <= t.time_msc <= hi and t.flags & wanted[flags]]
        return np.array(rows, dtype=TICK_DTYPE)

    def positions_total(self) -> int | None:
        return len(self.positions) if self._up() else None

    def positions_get(self, symbol: str | None = None, group: str | None = None,
                      ticket: int | None = None) -> tuple[TradePosition, ...] | None:
        if not self._up():
            return None
        out = []
        for p in sorted(self.positions.values(), key=lambda p: p.ticket):
            if (symbol is not None and p.symbol != symbol) or (ticket is not None and p.ticket != ticket):
                continue
            price = self._exit_price(p)
            out.append(TradePosition(p.ticket, p.time_msc // 1000, p.time_msc, p.time_update_msc // 1000, p.time_update_msc,
                                     p.type, p.magic, p.ticket, POSITION_REASON_EXPERT if p.magic else POSITION_REASON_CLIENT,
                                     p.volume, p.price_open, p.sl, p.tp, price, 0.0, round(self._profit(p, p.volume, price), 2),
                                     p.symbol, p.comment, ""))
        return tuple(out)

    def history_deals_get(self, date_from: datetime | float | None = None, date_to: datetime | float | None = None,
                          group: str | None = None, *,
                          ticket: int | None = None, position: int | None = None) -> tuple[TradeDeal, ...] | None:
        if not self._up():
            return None
        if position is not None:
            return tuple(d for d in self.deals if d.position_id == position)
        if ticket is not None:  # the ticket of an order: its deals
            return tuple(d for d in self.deals if d.order == ticket)
        if date_from is None or date_to is None:
            self._fail(RES_E_INVALID_PARAMS, "Invalid arguments")
            return None
        lo, hi = _seconds(date_from), _seconds(date_to)
        return tuple(d for d in self.deals if lo <= d.time <= hi)

    def order_send(self, request: object) -> OrderSendResult | None:
        if not self._up():
            return None
        if not _is_request(request):
            self._fail(RES_E_INVALID_PARAMS, "Invalid arguments")
            return None
        if len(str(request.get("comment", ""))) > 31:
            self._fail(RES_E_INVALID_PARAMS, 'Invalid "comment" argument')
            return None
        self.requests.append(request.copy())
        self._fill = None
        lost: str | None = None
        while self._script:
            outcome = self._script.popleft()
            if callable(outcome):
                outcome()
                continue
            if isinstance(outcome, tuple):
                if outcome[0] == "move":
                    self._move(request, float(outcome[1]))
                    continue
                self._fill = (outcome[0], float(outcome[1]))
                continue
            if outcome is None:
                self._fail(RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
                return None
            if outcome in ("lost", "dropped"):
                lost = str(outcome)
                break
            return self._result(int(outcome), request)
        result = self._handle(request)
        self._fill = None
        if lost == "dropped":
            self.go_away(back_after=0)
            self._fail(RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
            return None
        if lost:
            self._fail(RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
            return None
        return result

    def _move(self, r: _Request, points: float) -> None:
        """The market of the request's symbol moves ``points`` points: a new tick, one ms later."""
        p = self.positions.get(int(r.get("position", 0) or 0))
        symbol = r.get("symbol") or (p.symbol if p else "")
        q = self.quotes.get(symbol)
        if q is None:
            return
        shift = points * 10.0 ** -self._digits(symbol)
        digits = self._digits(symbol)
        self.tick(symbol, round(q.bid + shift, digits), round(q.ask + shift, digits))

    # --- the trade server --------------------------------------------------------------------------

    def _handle(self, r: _Request) -> OrderSendResult:
        if not self.terminal_trade_allowed or self.tradeapi_disabled:
            return self._result(TRADE_RETCODE_CLIENT_DISABLES_AT, r)
        if not self.account_trade_allowed or not self.account_trade_expert:
            return self._result(TRADE_RETCODE_TRADE_DISABLED, r)
        action = r.get("action")
        p = self.positions.get(int(r.get("position", 0) or 0))
        if action == TRADE_ACTION_SLTP:
            if p is None:
                return self._result(TRADE_RETCODE_POSITION_CLOSED, r)
            return self._sltp(p, r)
        if action != TRADE_ACTION_DEAL:
            return self._result(TRADE_RETCODE_INVALID, r)
        if r.get("position") and p is None:
            return self._result(TRADE_RETCODE_POSITION_CLOSED, r)
        symbol = r.get("symbol") or (p.symbol if p else "")
        s = self.symbols.get(symbol)
        q = self.quotes.get(symbol)
        if s is None or (p is not None and symbol != p.symbol):
            return self._result(TRADE_RETCODE_INVALID, r)
        if s["trade_mode"] == SYMBOL_TRADE_MODE_DISABLED:
            return self._result(TRADE_RETCODE_TRADE_DISABLED, r)
        if q is None or q.bid <= 0:
            return self._result(TRADE_RETCODE_PRICE_OFF, r)
        otype = r.get("type")
        if otype not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL) or (p is not None and otype == p.type):
            return self._result(TRADE_RETCODE_INVALID, r)
        volume = float(r.get("volume", 0.0))
        step = s["volume_step"]
        if volume <= 0 or not _on(volume, step) or not s["volume_min"] - 1e-12 <= volume <= s["volume_max"] + 1e-12:
            return self._result(TRADE_RETCODE_INVALID_VOLUME, r)
        if p is not None and volume > p.volume + 1e-12:
            return self._result(TRADE_RETCODE_INVALID_CLOSE_VOLUME, r)
        filling = r.get("type_filling", ORDER_FILLING_FOK)
        allowed = {ORDER_FILLING_FOK} if s["filling_mode"] & _FILL_FOK else set()
        allowed |= {ORDER_FILLING_IOC} if s["filling_mode"] & _FILL_IOC else set()
        if s["execution"] != SYMBOL_TRADE_EXECUTION_MARKET or not allowed:
            allowed.add(ORDER_FILLING_RETURN)
        if filling not in allowed:
            return self._result(TRADE_RETCODE_INVALID_FILL, r)
        market = q.ask if otype == ORDER_TYPE_BUY else q.bid
        point = 10.0 ** -s["digits"]
        if not _on(float(r.get("price", 0.0)), self._tick_size(symbol)):
            return self._result(TRADE_RETCODE_INVALID_PRICE, r)
        if not (_on(float(r.get("sl", 0.0)), self._tick_size(symbol)) and _on(float(r.get("tp", 0.0)), self._tick_size(symbol))):
            return self._result(TRADE_RETCODE_INVALID_STOPS, r)
        off = abs(float(r.get("price", 0.0)) - market) > int(r.get("deviation", 0)) * point + point / 10
        if off and s["execution"] == SYMBOL_TRADE_EXECUTION_INSTANT:
            return self._result(TRADE_RETCODE_REQUOTE, r)
        if off and s["execution"] == SYMBOL_TRADE_EXECUTION_REQUEST:
            return self._result(TRADE_RETCODE_PRICE_CHANGED, r)
        order = self._ticket()
        if p is None:
            self.open_position(symbol, "BUY" if otype == ORDER_TYPE_BUY else "SELL", volume, price=market,
                               sl=float(r.get("sl", 0.0)), tp=float(r.get("tp", 0.0)), magic=int(r.get("magic", 0)),
                               comment=str(r.get("comment", "")))
            deal = self.deals[-1].ticket
            return self._result(TRADE_RETCODE_DONE, r, deal=deal, order=order, volume=volume, price=market)
        return self._fill_close(p, r, order, volume, market, point)

    def _fill_close(self, p: _Position, r: _Request, order: int, volume: float, market: float, point: float) -> OrderSendResult:
        """Fill a close as scripted: all of it in one deal, part of it (``partial``), or all of it in two deals (``split``)."""
        how, first = self._fill or ("", volume)
        first = min(first, volume)
        comment, magic = str(r.get("comment", "")), int(r.get("magic", 0))
        deal = self._close(p, first, market, DEAL_REASON_EXPERT, comment, order, magic=magic)
        if how == "partial" and first < volume - 1e-12:
            return self._result(TRADE_RETCODE_DONE_PARTIAL, r, deal=deal, order=order, volume=first, price=market)
        if how == "split" and first < volume - 1e-12:
            worse = market - point if p.type == POSITION_TYPE_BUY else market + point
            self._close(p, round(volume - first, 8), round(worse, self._digits(p.symbol)), DEAL_REASON_EXPERT, comment, order,
                        magic=magic)
        return self._result(TRADE_RETCODE_DONE, r, deal=deal, order=order, volume=volume, price=market)

    def _sltp(self, p: _Position, r: _Request) -> OrderSendResult:
        s = self.symbols[p.symbol]
        q = self.quotes.get(p.symbol)
        sl, tp = float(r.get("sl", 0.0)), float(r.get("tp", 0.0))
        if sl == p.sl and tp == p.tp:
            return self._result(TRADE_RETCODE_NO_CHANGES, r)
        if not (_on(sl, self._tick_size(p.symbol)) and _on(tp, self._tick_size(p.symbol))):
            return self._result(TRADE_RETCODE_INVALID_STOPS, r)
        if q is not None:
            gap = s["stops_level"] * 10.0 ** -s["digits"]
            eps = 10.0 ** -s["digits"] / 10
            if p.type == POSITION_TYPE_BUY:
                bad = (sl and q.bid - sl < gap - eps) or (sl and sl >= q.bid) or (tp and tp - q.bid < gap - eps) or (tp and tp <= q.bid)
            else:
                bad = (sl and sl - q.ask < gap - eps) or (sl and sl <= q.ask) or (tp and q.ask - tp < gap - eps) or (tp and tp >= q.ask)
            if bad:
                return self._result(TRADE_RETCODE_INVALID_STOPS, r)
        p.sl, p.tp = sl, tp
        p.time_update_msc = self.now_msc
        return self._result(TRADE_RETCODE_DONE, r, order=self._ticket())

    def _close(self, p: _Position, volume: float, price: float, reason: int, comment: str, order: int,
               magic: int | None = None) -> int:
        volume = min(volume, p.volume)
        profit = self._profit(p, volume, price)
        self.balance += profit
        deal = self._deal(order, p.ticket, p.symbol, 1 - p.type, DEAL_ENTRY_OUT, volume, price, profit,
                          p.magic if magic is None else magic, reason, comment, self.now_msc)
        p.volume = round(p.volume - volume, 8)
        p.time_update_msc = self.now_msc
        if p.volume <= 1e-9:
            del self.positions[p.ticket]
        return deal

    def _deal(self, order: int, position: int, symbol: str, dtype: int, entry: int, volume: float, price: float,
              profit: float, magic: int, reason: int, comment: str, ms: int) -> int:
        ticket = self._ticket()
        self.deals.append(TradeDeal(ticket, order, ms // 1000, ms, dtype, entry, magic, position, reason, float(volume),
                                    float(price), 0.0, 0.0, round(profit, 2), 0.0, symbol, comment if self.deal_comments else "", ""))
        return ticket

    def _result(self, retcode: int, r: _Request, *, deal: int = 0, order: int = 0, volume: float = 0.0,
                price: float = 0.0) -> OrderSendResult:
        self._request_id += 1
        q = self.quotes.get(r.get("symbol") or "") or (self.quotes.get(self.positions[r["position"]].symbol)
                                                      if r.get("position") in self.positions else None)
        request = TradeRequest(
            action=r.get("action", 0), magic=r.get("magic", 0), order=r.get("order", 0), symbol=r.get("symbol", ""),
            volume=r.get("volume", 0), price=r.get("price", 0), stoplimit=r.get("stoplimit", 0), sl=r.get("sl", 0),
            tp=r.get("tp", 0), deviation=r.get("deviation", 0), type=r.get("type", 0), type_filling=r.get("type_filling", 0),
            type_time=r.get("type_time", 0), expiration=r.get("expiration", 0), comment=r.get("comment", ""),
            position=r.get("position", 0), position_by=r.get("position_by", 0),
        )
        self._error = (RES_S_OK, "Success")
        return OrderSendResult(retcode, deal, order, volume, price, q.bid if q else 0.0, q.ask if q else 0.0,
                               _COMMENTS.get(retcode, "Request rejected"), self._request_id, 0, request)

    def _profit(self, p: _Position, volume: float, price: float) -> float:
        side = 1 if p.type == POSITION_TYPE_BUY else -1
        return side * (price - p.price_open) * volume * self.symbols[p.symbol]["contract_size"]

    def _exit_price(self, p: _Position) -> float:
        q = self.quotes.get(p.symbol)
        if q is None:
            return p.price_open
        return q.bid if p.type == POSITION_TYPE_BUY else q.ask

    def _digits(self, symbol: str) -> int:
        return self.symbols[symbol]["digits"]

    def _tick_size(self, symbol: str) -> float:
        s = self.symbols[symbol]
        return s["tick_size"] or 10.0 ** -s["digits"]

    def _ticket(self) -> int:
        self._next_ticket += 1
        return self._next_ticket

    def _up(self) -> bool:
        if not self.alive or not self.initialized:
            self._error = (RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
            return False
        return True

    def _fail(self, code: int, message: str) -> None:
        self._error = (code, message)

    def _refuse(self, code: int, message: str) -> bool:
        self._error = (code, message)
        return False


def _on(value: float, step: float) -> bool:
    """Whether ``value`` is a whole number of ``step``s (0, no level, is), as the trade server checks it."""
    return abs(value / step - round(value / step)) <= 1e-7


# --- the module's own functions act on one default terminal ----------------------------------------

terminal = FakeTerminal()

_API = ("initialize", "login", "shutdown", "last_error", "version", "terminal_info", "account_info", "symbol_select",
        "symbol_info", "symbol_info_tick", "copy_ticks_range", "positions_total", "positions_get", "history_deals_get",
        "order_send")


def reset(**kwargs: Any) -> FakeTerminal:
    """Replace the module's default terminal with a fresh one (``FakeTerminal`` arguments); return it."""
    global terminal
    terminal = FakeTerminal(**kwargs)
    return terminal


def _delegate(name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(terminal, name)(*args, **kwargs)

    call.__name__ = name
    call.__doc__ = f"``MetaTrader5.{name}`` on the module's default terminal."
    return call


for _name in _API:
    globals()[_name] = _delegate(_name)

del _name
__all__ = ["FakeTerminal", "reset", "terminal", *_API, *_CONSTANTS, "Tick", "TradePosition", "TradeDeal", "TradeRequest",
           "OrderSendResult", "AccountInfo", "TerminalInfo", "SymbolInfo"]
