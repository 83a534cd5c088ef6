"""The events a service and a broker feed add: fills reported later, clock heartbeats, positions taken over;
and a reload that keeps the portfolio's halts."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import Clock, EventError, Fill, PositionOpened, Tick, parse_event, to_json
from engine.rules.evaluator import Engine
from tests.conftest import ROOT, edit

TS = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC


def engine(config: Path = ROOT) -> Engine:
    e = Engine(load_config(str(config)), equity0=10_000.0, broker=PaperBroker())
    e.process(Tick(TS, "EURUSD", 1.0849, 1.0850))
    return e


@pytest.mark.parametrize("event", [
    Tick(TS, "EURUSD", 1.0849, 1.085),
    PositionOpened(TS, "p1", "EURUSD", "arbitrage", "arb-1", -1, 0.1, 1.085, None, 1.08, existing=True),
    Fill(TS, "p1", 0.05, 1.0851, "broker_sl"),
    Clock(TS),
])
def test_every_event_round_trips_through_json(event) -> None:
    assert parse_event(to_json(event)) == event


def test_bad_fill_and_existing_fields_are_refused_with_the_field_named() -> None:
    with pytest.raises(EventError, match="volume"):
        parse_event({"type": "fill", "ts": TS, "position_id": "p", "volume": 0, "price": 1.0})
    with pytest.raises(EventError, match="existing"):
        parse_event({"type": "position_opened", "ts": TS, "position_id": "p", "symbol": "EURUSD", "strategy_type": "arbitrage",
                     "action": "BUY", "volume": 0.1, "entry_price": 1.08, "existing": "yes"})


def test_an_existing_position_is_taken_over_without_checks_and_gets_the_default_stop() -> None:
    e = engine()
    # 50 lots is far above max_position_size: a proposal would be resized or rejected, a takeover is not
    out = e.process(PositionOpened(TS + 1, "p1", "EURUSD", "arbitrage", "arb-1", 1, 50.0, 1.0850, None, 1.10, existing=True))
    assert [(a.type, a.rule) for a in out] == [("set_stop_loss", "defaults")]
    assert out[0].params["stop_loss"] == 1.07958  # 1.0850 * 0.995 = 1.079575, a long's stop rounded up to the tick
    p = e.book.positions["p1"]
    assert p.is_open and p.volume == 50.0 and p.take_profit == 1.10
    out = e.process(Tick(TS + 2, "EURUSD", 1.0790, 1.0791))  # through the stop
    assert next((a.type, a.rule) for a in out if a.position_id == "p1") == ("close", "stop_loss")
    assert not e.book.positions["p1"].is_open


def test_a_late_fill_reduces_then_closes_the_position_and_books_its_pnl() -> None:
    e = engine()
    e.process(PositionOpened(TS + 1, "p1", "EURUSD", "arbitrage", "arb-1", 1, 0.01, 1.0850, None, None))
    e.process(Fill(TS + 2, "p1", 0.004, 1.0860, "broker"))
    p = e.book.positions["p1"]
    assert p.is_open and p.volume == pytest.approx(0.006)
    assert p.realized_pnl == pytest.approx(0.004 * 100_000 * 0.0010)
    e.process(Fill(TS + 3, "p1", 1.0, 1.0840, "broker_sl"))  # more than is left: closes what is left
    assert not p.is_open and p.realized_pnl == pytest.approx(0.4 - 0.6)
    assert e.kernels["EURUSD"].ids == [] or "p1" not in e.kernels["EURUSD"].ids
    problems: list[str] = []
    e.on_problem = problems.append
    e.process(Fill(TS + 4, "p1", 0.1, 1.0840))
    assert problems and "p1" in problems[0]


def test_a_clock_event_rolls_the_day_without_a_quote() -> None:
    e = engine()
    e.process(PositionOpened(TS + 1, "p1", "EURUSD", "arbitrage", "arb-1", 1, 0.01, 1.0850, None, None))
    e.process(Tick(TS + 2, "EURUSD", 1.0869, 1.0870))
    day0 = e.day.key
    e.process(Clock(TS + 3_600_000))  # 23:13 UTC: same day
    assert e.day.key == day0
    e.process(Clock(TS + 2 * 3_600_000))  # 00:13 UTC the next day: the daily reset ran
    assert e.day.key != day0 and e.day.start_equity == pytest.approx(e.equity)
    e.process(Clock(TS))  # a clock behind event time changes nothing
    assert e.day.key != day0


def test_a_reload_keeps_the_daily_loss_halt_and_drops_the_old_version(config_copy: Path) -> None:
    e = engine(config_copy)
    # stops at 0.9 risk 185 USD each, within the strategies' risk allocation of their capital (0.15 x 2 000 and 1 500)
    e.process(PositionOpened(TS + 1, "p1", "EURUSD", "trend_following", "tf-1", 1, 0.01, 1.0850, 0.9, 1.3))
    e.process(PositionOpened(TS + 2, "p2", "EURUSD", "market_making", "mm-1", 1, 0.01, 1.0850, 0.9, 1.3))
    out = e.process(Tick(TS + 3, "EURUSD", 0.93, 0.9301))  # -310 on 10 000: beyond the 2 % daily loss
    assert "halt_new_positions" in [a.type for a in out]
    old = e.version
    edit(config_copy / "strategies" / "arbitrage.yaml", "stop_loss: 0.005", "stop_loss: 0.006")
    e.reload(load_config(str(config_copy)))
    assert e.version != old and e.portfolio.versions == (e.version,)
    assert "daily loss" in (e.portfolio.halted(e.version) or "")
    out = e.process(PositionOpened(TS + 4, "p3", "EURUSD", "arbitrage", "arb-1", 1, 0.01, 0.9301, None, None))
    assert [a.type for a in out] == ["reject_position"] and out[0].rules_version == e.version


def test_the_late_fill_of_an_engine_action_is_taken_off_the_book_once() -> None:
    """An asynchronous broker: the kernel stops managing the volume when the action is emitted, the
    book when the fill arrives; a fill without an action id is a close the engine did not ask for."""
    e = Engine(load_config(str(ROOT)), equity0=100_000.0, broker=None)
    e.process(Tick(TS, "EURUSD", 1.0849, 1.0850))
    e.process(PositionOpened(TS + 1, "p1", "EURUSD", "arbitrage", "arb-1", 1, 0.04, 1.0850, None, None))
    out = e.process(Tick(TS + 2, "EURUSD", 1.0905, 1.0906))  # +0.5 %: exit level 1 takes 25 %: 0.01 lot
    partial = next(a for a in out if a.type == "close_partial")
    assert partial.params["volume"] == 0.01
    assert e.kernels["EURUSD"].state("p1").volume == 0.03
    assert e.book.positions["p1"].volume == 0.04  # not filled yet
    e.process(Fill(TS + 3, "p1", 0.01, 1.0905, partial.rule, partial.id))
    assert e.book.positions["p1"].volume == pytest.approx(0.03)
    assert e.kernels["EURUSD"].state("p1").volume == 0.03
    e.process(Fill(TS + 4, "p1", 0.01, 1.0905, "broker"))  # closed at the broker by hand
    assert e.book.positions["p1"].volume == pytest.approx(0.02)
    assert e.kernels["EURUSD"].state("p1").volume == 0.02


def test_a_partly_closed_position_taken_over_counts_its_exit_levels_as_taken() -> None:
    e = engine()
    # arbitrage: exit levels of 25 % each at +0.5 %, +0.8 %, +1.2 %, +1.5 %; 0.03 of 0.04 left: level 1 was taken
    out = e.process(PositionOpened(TS + 1, "p1", "EURUSD", "arbitrage", "arb-1", 1, 0.03, 1.0850, 1.0872, 1.10,
                                   existing=True, volume0=0.04))
    assert out == []
    p = e.book.positions["p1"]
    assert (p.volume0, p.volume, p.status.value) == (0.04, 0.03, "partially_closed")
    assert e.kernels["EURUSD"].state("p1").taken == 0b1
    out = e.process(Tick(TS + 2, "EURUSD", 1.0906, 1.0907))  # +0.52 %: level 1 again, which must not fire
    assert not [a for a in out if a.type == "close_partial"]
    out = e.process(Tick(TS + 3, "EURUSD", 1.0938, 1.0939))  # +0.81 %: level 2 takes 25 % of the original volume
    [partial] = [a for a in out if a.type == "close_partial"]
    assert partial.rule == "exit_levels.1" and partial.params["volume"] == 0.01


def test_volume0_belongs_to_a_taken_over_position_and_is_never_below_the_volume() -> None:
    base = {"type": "position_opened", "ts": TS, "position_id": "p", "symbol": "EURUSD", "strategy_type": "arbitrage",
            "action": "BUY", "volume": 0.1, "entry_price": 1.08}
    with pytest.raises(EventError, match="volume0: only a position taken over"):
        parse_event({**base, "volume0": 0.2})
    with pytest.raises(EventError, match=r"volume0: expected at least the volume 0.1"):
        parse_event({**base, "existing": True, "volume0": 0.05})
    assert parse_event({**base, "existing": True, "volume0": 0.2}).volume0 == 0.2
