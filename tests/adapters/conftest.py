"""A fake MetaTrader 5 terminal with EURUSD, an account, and the scalping rules that map its magic numbers."""

from __future__ import annotations

import shutil

import pytest

from engine.adapters.mt5 import MT5Broker, MT5Connection, MT5Feed
from engine.config import load_config
from engine.config.load import RuleSet
from engine.rules.evaluator import Engine
from engine.testing.mt5 import FakeTerminal
from tests.conftest import ROOT

LOGIN, PASSWORD, SERVER = 5_001_234, "pa55-Word-xyz", "Desk-Demo"
ENV = {"MT5_LOGIN": str(LOGIN), "MT5_PASSWORD": PASSWORD, "MT5_SERVER": SERVER}
T0 = 1_549_238_400_000  # 2019-02-04 00:00 UTC, the day of the shipped EURUSD ticks
TREND, REVERT = 2001, 2002  # magic numbers of examples/scalping/rules/instruments.yaml


class Clock:
    """Injected time: ``sleep`` advances it and records what was asked."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_config(str(ROOT / "examples" / "scalping"))


@pytest.fixture(scope="session")
def trail_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    """The scalping rules with scalp_trend trailing only (no exit levels)."""
    folder = tmp_path_factory.mktemp("trail") / "scalping"
    shutil.copytree(ROOT / "examples" / "scalping", folder)
    path = folder / "strategies" / "scalp_trend.yaml"
    text = path.read_text()
    path.write_text(text[: text.index("exit_levels:")])
    return load_config(str(folder))


@pytest.fixture
def fake() -> FakeTerminal:
    f = FakeTerminal(login=LOGIN, password=PASSWORD, server=SERVER)
    f.add_symbol("EURUSD", digits=5, volume_step=0.01, volume_min=0.01)
    f.tick("EURUSD", 1.14500, 1.14502, T0)
    return f


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def conn(fake: FakeTerminal, clock: Clock) -> MT5Connection:
    c = MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep)
    c.connect()
    return c


class Desk:
    """An engine managing the fake account: feed, broker, and one turn of the live loop."""

    def __init__(self, rules: RuleSet, conn: MT5Connection) -> None:
        from engine.adapters.mt5 import step

        self.conn = conn
        self.feed = MT5Feed(conn, rules)
        self.broker = MT5Broker(conn)
        self.engine = Engine(rules, broker=self.broker)
        self._step = step
        self.actions: list = []

    def step(self) -> list:
        got = self._step(self.engine, self.feed, self.broker)
        self.actions += got
        return got


@pytest.fixture
def desk(rules: RuleSet, conn: MT5Connection) -> Desk:
    return Desk(rules, conn)
