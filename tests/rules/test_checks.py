"""Pre-trade checks return one declared result listing every failed check, in the order checked."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import PositionOpened, Tick
from engine.rules.checks import Failed, PreTrade
from engine.rules.evaluator import Engine

TS = 1_549_238_400_000


def engine_with_quote(config: Path) -> Engine:
    engine = Engine(load_config(str(config)), broker=PaperBroker())
    engine.process(Tick(TS, "EURUSD", 1.0849, 1.0850))
    return engine


def proposal(pid: str = "p1", volume: float = 0.05, stop: float | None = None, symbol: str = "EURUSD",
             strategy: str = "trend_following") -> PositionOpened:
    return PositionOpened(TS + 1, pid, symbol, strategy, "tf-1", 1, volume, 1.0850, stop, None)


def test_a_sound_proposal_passes_with_the_strategy_defaults(config_copy: Path):
    result = engine_with_quote(config_copy).check(proposal())
    assert result.passed and result.failed == () and result.reasons == []
    assert result.volume == 0.05 and result.resized_from is None
    assert result.stop_loss == pytest.approx(1.0850 * (1 - 0.03)) and result.take_profit == pytest.approx(1.0850 * 1.06)


def test_every_failed_check_is_listed_in_the_order_checked(config_copy: Path):
    # a stop above a long's entry, and a size far beyond volume_max and max_position_size (shipped: reject)
    # with the risk it carries and the strategy's capital it would use (shipped utilization: 1.4 x its capital)
    result = engine_with_quote(config_copy).check(proposal(volume=500.0, stop=1.2))
    assert [f.check for f in result.failed] == ["stop_side", "volume_max", "max_position_size", "risk_allocation", "utilization"]
    assert all(isinstance(f, Failed) and f.reason for f in result.failed)
    assert result.reasons == [f.reason for f in result.failed] and not result.passed


def test_an_unknown_strategy_and_an_unknown_symbol_are_reported_together(config_copy: Path):
    engine = engine_with_quote(config_copy)
    unknown = engine.check(proposal(strategy="nope"))
    assert [f.check for f in unknown.failed] == ["strategy"] and math.isnan(unknown.stop_loss)
    assert [f.check for f in engine.check(proposal(symbol="XAUUSD")).failed] == ["symbol"]
    both = engine.check(proposal(strategy="nope", symbol="XAUUSD"))
    assert both.reasons == ["unknown strategy 'nope'", "unknown symbol 'XAUUSD': add it to rules/instruments.yaml"]


def test_the_result_is_frozen(config_copy: Path):
    result = engine_with_quote(config_copy).check(proposal())
    assert isinstance(result, PreTrade)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.volume = 1.0  # type: ignore[misc]


def test_checking_changes_nothing(config_copy: Path):
    engine = engine_with_quote(config_copy)
    engine.check(proposal())
    assert engine.book.positions == {} and engine.counts["proposals"] == 0
