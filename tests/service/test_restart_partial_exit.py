"""A partial exit survives the death of the process at any point of its life, against the fake terminal.

The service manages a long of 0.10 lots whose strategy has one exit level (+0.1 %, 30 %: 0.03 lots on
the 0.01 lot step), at a broker that drops comments from deals and fills market orders wherever the
market is when they land (it moves 5 points against the close on the way). The process dies:

- ``before_send``: the exit is decided, its order never reaches the terminal;
- ``sent``: the order executed, its reply never came back;
- ``filled``: the reply came back and the fill was booked, but the decision was not journaled;
- ``journaled``: the decision and its fill are in the journal;

then a new process starts on the same Redis and the same terminal: from the snapshot and the journal
after it (``snapshot``), from the whole journal (``journal``), or with nothing saved at all (``none``:
the position is taken over from the terminal, its exit levels counted from its deals). In every case
the book and the broker end at the same 0.07 lots, the exit is booked at most once and at the deal's
price, and the terminal receives one close, never a second.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

import engine.service.worker as worker_module
from engine.adapters import factories
from engine.cli.run import open_positions
from engine.service.commit import AccountKeys
from engine.service.pump import FeedPump, follow_open_positions
from engine.service.service import Service
from engine.service.store import Keys
from engine.testing import mt5 as M
from engine.testing.mt5 import FakeTerminal
from tests.service.conftest import start_service, wait_for

LOGIN, PASSWORD, SERVER = 5_001_234, "pa55-Word-xyz", "Desk-Demo"
ENV = {"MT5_LOGIN": str(LOGIN), "MT5_PASSWORD": PASSWORD, "MT5_SERVER": SERVER}
T0 = 1_549_238_400_000
TREND = 2001  # scalp_trend's magic number in examples/scalping/rules/instruments.yaml
ENTRY, EXIT_BID = 1.14500, 1.14700  # the exit level sits at 1.14500 * 1.001 = 1.146145
SLIP = 0.00005  # the market moves 5 points down between the engine's quote and the close's arrival

ONE_LEVEL = """\
name: scalp_trend
allocation: {target: 0.5, min: 0.3, max: 0.7}
defaults: {stop_loss: 0.003, take_profit: 0.01}
exit_levels:
  - {profit_target: 0.001, exit_percentage: 0.3}
"""


class Killed(BaseException):
    """The process dies here: nothing after this point runs (no ``except Exception`` catches it)."""


@dataclass
class Run:
    """One process of riskrail on the terminal: the service, its MT5 edges, its feed pump."""

    svc: Service
    edges: Any
    pump: FeedPump

    def engine(self, fn: Callable[[Any], Any]) -> Any:
        return self.svc.workers["acct"].call(fn, timeout=30)

    def stop(self) -> None:
        self.pump.stop()
        self.svc.stop()
        self.edges.close()


def start(client: redis.Redis, config: Path, fake: FakeTerminal, died: threading.Event | None = None) -> Run:
    """Start riskrail as ``riskrail run --feed mt5 --broker mt5 --name node-1`` wires it, a snapshot after every commit.

    Once ``died`` is set the process is dead: its feed publishes nothing more (only the engine's thread
    is killed, so the pump is silenced with it, as the whole process would be)."""
    edges = factories.edges("mt5", "mt5", mt5_module=fake, env=ENV)
    svc = start_service(client, config, broker_factory=edges.broker_factory, allow_takeover=True, snapshot_every=1,
                        consumer="node-1")
    feed = edges.feed(svc.active_rules())
    follow_open_positions(feed, lambda: svc.workers["acct"].call(open_positions, timeout=30))
    pump = FeedPump(feed, lambda obj: None if died is not None and died.is_set() else svc.publish(obj, "acct"), interval=0.02)
    pump.start()
    return Run(svc, edges, pump)


class Crash:
    """Kills the engine's thread once, at ``point`` of the exit's life (see the module docstring)."""

    def __init__(self, fake: FakeTerminal, point: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.point, self.armed, self.moved = point, True, False
        self.died = threading.Event()
        self.fake, self.send = fake, fake.order_send
        fake.order_send = self.order_send  # type: ignore[method-assign]
        self.commit = worker_module.commit
        monkeypatch.setattr(worker_module, "commit", self.journal)
        hook = threading.excepthook
        monkeypatch.setattr(threading, "excepthook", lambda args: None if args.exc_type is Killed else hook(args))

    def die(self, point: str) -> None:
        if self.armed and self.point == point:
            self.armed = False
            self.died.set()
            raise Killed(point)

    def order_send(self, request: Any) -> Any:
        close = isinstance(request, dict) and request.get("action") == M.TRADE_ACTION_DEAL
        if close and not self.moved:  # the market moves while the order travels
            self.moved = True
            q = self.fake.quotes["EURUSD"]
            self.fake.tick("EURUSD", round(q.bid - SLIP, 5), round(q.ask - SLIP, 5))
        if close:
            self.die("before_send")
        result = self.send(request)
        if close:
            self.die("sent")
        return result

    def journal(self, *args: Any, **kwargs: Any) -> Any:
        decisions = next(a for a in args if isinstance(a, list))
        exits = any(a.type == "close_partial" for d in decisions for a in d.actions)
        if exits:
            self.die("filled")
        last = self.commit(*args, **kwargs)
        if exits:
            self.die("journaled")
        return last


@pytest.fixture
def one_level(scalping: Path) -> Path:
    (scalping / "strategies" / "scalp_trend.yaml").write_text(ONE_LEVEL)
    return scalping


@pytest.fixture
def terminal() -> FakeTerminal:
    fake = FakeTerminal(login=LOGIN, password=PASSWORD, server=SERVER)
    fake.deal_comments = False  # the broker adapter may not lean on its comments
    fake.add_symbol("EURUSD", digits=5, volume_step=0.01, volume_min=0.01, execution=M.SYMBOL_TRADE_EXECUTION_MARKET)
    fake.tick("EURUSD", ENTRY, ENTRY + 0.00002, T0)
    return fake


def closes(fake: FakeTerminal) -> list[dict]:
    return [r for r in fake.requests if r["action"] == M.TRADE_ACTION_DEAL]


def position(run: Run, ticket: int) -> tuple[float, float, list[tuple[float, float]]]:
    """The book's volume, original volume and fills ``(volume, price)`` of the position."""
    def read(e: Any) -> tuple[float, float, list[tuple[float, float]]]:
        p = e.book.positions[str(ticket)]
        return p.volume, p.volume0, [(f.volume, f.price) for f in p.fills]
    return run.engine(read)


@pytest.mark.parametrize("state", ["snapshot", "journal", "none"])
@pytest.mark.parametrize("point", ["before_send", "sent", "filled", "journaled"])
def test_a_partial_exit_is_sent_once_and_booked_once_whenever_the_process_dies(
        redis_server: redis.Redis, one_level: Path, terminal: FakeTerminal, monkeypatch: pytest.MonkeyPatch,
        point: str, state: str) -> None:
    fake = terminal
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=ENTRY, sl=1.14000, tp=1.16000, magic=TREND, time_msc=T0)
    crash = Crash(fake, point, monkeypatch)
    first = start(redis_server, one_level, fake, crash.died)
    try:
        wait_for(lambda: first.engine(lambda e: str(ticket) in e.book.positions), 20, "the position taken over")
        fake.tick("EURUSD", EXIT_BID, EXIT_BID + 0.00002, T0 + 1_000)  # +0.17 %: the exit level
        wait_for(crash.died.is_set, 20, f"the process to die at {point}")
    finally:
        first.stop()
    k = AccountKeys.of(Keys(), "acct")
    if state == "journal":
        redis_server.delete(k.snapshot)
    elif state == "none":
        redis_server.flushall()
    deal_price = round(EXIT_BID - SLIP, 5)

    second = start(redis_server, one_level, fake)
    try:
        def in_step() -> bool:
            at_broker = fake.positions[ticket].volume if ticket in fake.positions else 0.0
            book = second.engine(lambda e: e.book.positions[str(ticket)].volume if str(ticket) in e.book.positions else None)
            return book is not None and abs(book - 0.07) < 1e-9 and abs(at_broker - 0.07) < 1e-9

        wait_for(in_step, 20, "the book and the broker at 0.07 lots")
        # one more quote through the engine, above the level: nothing more is closed
        fake.tick("EURUSD", EXIT_BID + 0.0001, EXIT_BID + 0.00012, T0 + 60_000)
        wait_for(lambda: second.engine(lambda e: e.quotes["EURUSD"][0]) == pytest.approx(EXIT_BID + 0.0001), 20, "the last quote")
        volume, volume0, fills = position(second, ticket)
    finally:
        second.stop()

    exits = [d for d in fake.deals_of(ticket) if d.entry == M.DEAL_ENTRY_OUT]
    assert [(d.volume, d.price) for d in exits] == [(0.03, deal_price)]  # one exit at the broker, where the market was
    assert len(closes(fake)) == 1  # one DEAL request ever reached the terminal
    assert (volume, volume0, fake.positions[ticket].volume) == (pytest.approx(0.07), 0.10, pytest.approx(0.07))
    if state == "none" and point != "before_send":
        assert fills == []  # taken over at 0.07 of 0.10: the level counts as taken, nothing to book
    else:
        assert fills == [(0.03, deal_price)]  # booked once, at the deal's price, not the quote's 1.14700
