"""Time passing without a quote: clock events fill the gaps of a history on the risk_update_frequency
grid, and a strategy's max holding time closes its positions at the first event at or after it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import Clock, PositionOpened, Tick, parse_event
from engine.rules.evaluator import Engine
from engine.rules.timers import time_driven, with_clock
from tests.service.conftest import SCALPING


def test_clock_events_fill_each_gap_on_the_grid_strictly_between_events() -> None:
    history = [("f", 1, Tick(1_000, "EURUSD", 1.1, 1.1001)), ("f", 2, Tick(2_200, "EURUSD", 1.1, 1.1001)),
               ("f", 3, Tick(2_300, "EURUSD", 1.1, 1.1001)), ("f", 4, Tick(3_500, "EURUSD", 1.1, 1.1001))]
    out = list(with_clock(history, 500))
    assert [(s, e.ts) for s, _, e in out] == [
        ("f", 1_000), ("clock", 1_500), ("clock", 2_000), ("f", 2_200), ("f", 2_300), ("clock", 2_500), ("clock", 3_000), ("f", 3_500)]
    assert all(isinstance(e, Clock) for s, _, e in out if s == "clock")


def test_no_clock_before_the_first_event_nor_on_an_events_own_time() -> None:
    history = [("f", 1, Tick(500, "EURUSD", 1.1, 1.1001)), ("f", 2, Tick(1_000, "EURUSD", 1.1, 1.1001))]
    assert [e.ts for _, _, e in with_clock(history, 500)] == [500, 1_000]


def held_config(tmp_path: Path, hold: str = "2h") -> Path:
    """examples/scalping with scalp_trend's positions held at most ``hold``, and stops too far to hit."""
    dst = tmp_path / "cfg"
    shutil.copytree(SCALPING, dst)
    path = dst / "strategies" / "scalp_trend.yaml"
    text = path.read_text().replace("defaults: {stop_loss: 0.0003, take_profit: 0.0006}", "defaults: {stop_loss: 0.05, take_profit: 0.05}")
    path.write_text(text.replace("exit_levels:\n", f"max_holding_time: {hold}\nexit_levels:\n", 1).split("exit_levels:")[0])
    (dst / "rules" / "custom.yaml").write_text("rules: []\n")  # cut-stale-losers would close the position at 15 min
    return dst


T0 = 1_549_238_400_000  # 2019-02-04 00:00 UTC


def opened(ts: int = T0 + 1) -> PositionOpened:
    return parse_event({"type": "position_opened", "ts": ts, "position_id": "t1", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                        "action": "BUY", "volume": 0.1, "entry_price": 1.14502})


def test_a_position_held_two_hours_is_closed_at_two_hours_on_a_clock_event_with_no_tick(tmp_path: Path) -> None:
    engine = Engine(load_config(str(held_config(tmp_path))), broker=PaperBroker())
    assert time_driven(engine.rules)
    history = [("f", 1, Tick(T0, "EURUSD", 1.14500, 1.14502)), ("f", 2, opened()), ("f", 3, Tick(T0 + 3 * 3_600_000, "EURUSD", 1.2, 1.2))]
    closes = []
    for _, _, event in with_clock(history, engine.rules.schedules.risk_update_frequency):
        acts = engine.process(event)
        closes += [(event, a) for a in acts if a.type == "close"]
    [(event, close)] = closes
    deadline = T0 + 1 + 2 * 3_600_000
    assert isinstance(event, Clock) and event.ts == T0 + 7_200_500  # the first clock at or after the deadline
    assert event.ts - 500 < deadline <= event.ts
    assert close.rule == "max_holding_time" and close.params["price"] == 1.14500 and close.params["volume"] == 0.1
    assert "held 2h00m00s" in close.reason
    assert engine.book.positions["t1"].status.value == "closed"


def test_a_reload_that_shortens_the_max_holding_time_applies_to_the_open_position(tmp_path: Path) -> None:
    engine = Engine(load_config(str(held_config(tmp_path / "a", "2h"))), broker=PaperBroker())
    engine.process(Tick(T0, "EURUSD", 1.14500, 1.14502))
    engine.process(opened())
    engine.reload(load_config(str(held_config(tmp_path / "b", "30m"))))
    assert engine.process(Clock(T0 + 1_800_000)) == []  # 30 min after the tick, 1 ms short of 30 min held
    [close] = engine.process(Clock(T0 + 1_800_001))
    assert close.rule == "max_holding_time" and close.position_id == "t1"


def test_a_close_pending_at_the_broker_still_counts_in_equity_at_the_last_quote(tmp_path: Path) -> None:
    """Case 6 of issue 14: a broker that reports fills later (the service's pipeline, MetaTrader 5): until the
    fill comes back the position is held, and its open PnL is in the equity, the daily PnL and the views."""
    engine = Engine(load_config(str(held_config(tmp_path, "1h"))), broker=None)
    engine.process(Tick(T0, "EURUSD", 1.14500, 1.14502))
    engine.process(opened())
    engine.process(Tick(T0 + 1_000, "EURUSD", 1.14602, 1.14604))
    held = engine.unrealized()
    assert held == pytest.approx(0.1 * 100_000 * (1.14602 - 1.14502))
    [close] = engine.process(Clock(T0 + 3_600_001))
    assert close.type == "close" and "t1" in engine.pending and "t1" not in engine.kernels["EURUSD"].ids
    assert engine.unrealized() == pytest.approx(held) and engine.unrealized("scalp_trend") == pytest.approx(held)
    engine.process(parse_event({"type": "fill", "ts": T0 + 3_600_100, "position_id": "t1", "volume": 0.1, "price": 1.14602}))
    assert engine.pending == set() and engine.unrealized() == 0.0
    assert engine.equity == pytest.approx(100_000 + held)


def test_a_position_rule_on_its_age_fires_on_a_clock_event_at_the_last_quote(tmp_path: Path) -> None:
    """examples/scalping's cut-stale-losers (position.age_seconds >= 900 and a loss) acts when time passes."""
    engine = Engine(load_config(str(SCALPING)), broker=PaperBroker())
    engine.process(Tick(T0, "EURUSD", 1.14500, 1.14502))
    engine.process(parse_event({"type": "position_opened", "ts": T0 + 1, "position_id": "s1", "symbol": "EURUSD",
                                "strategy_type": "scalp_revert", "action": "BUY", "volume": 0.1, "entry_price": 1.14502}))
    engine.process(Tick(T0 + 2, "EURUSD", 1.14495, 1.14497))  # a loss, within the stop
    assert [a for a in engine.process(Clock(T0 + 900_000)) if a.position_id == "s1"] == []  # 899.999 s held
    acts = [a for a in engine.process(Clock(T0 + 900_001)) if a.position_id == "s1"]
    assert [(a.type, a.rule) for a in acts] == [("close", "custom:cut-stale-losers"), ("alert", "custom:cut-stale-losers")]
    assert acts[0].params["price"] == 1.14495 and acts[0].ts == T0 + 900_001


def test_a_rule_on_the_session_fires_when_the_session_opens_on_a_clock_event(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    shutil.copytree(SCALPING, cfg)
    instruments = cfg / "rules" / "instruments.yaml"
    london = '  - {name: london, timezone: Europe/London, open: "08:00", close: "17:00"}\n'
    instruments.write_text(instruments.read_text() + "sessions:\n" + london)
    (cfg / "rules" / "custom.yaml").write_text(
        'rules:\n  - name: london-open\n    when: clock.session == "london"\n    then:\n      - alert: "London is open"\n')
    engine = Engine(load_config(str(cfg)), broker=PaperBroker())
    assert time_driven(engine.rules)
    monday = T0  # 2019-02-04 00:00 UTC, a Monday: London opens at 08:00 GMT
    engine.process(Tick(monday, "EURUSD", 1.14500, 1.14502))
    assert engine.process(Clock(monday + 8 * 3_600_000 - 1)) == []
    [alert] = engine.process(Clock(monday + 8 * 3_600_000))
    assert alert.type == "alert" and alert.rule == "custom:london-open"


def test_position_age_is_the_age_in_seconds() -> None:
    from engine.config.conditions import parse_condition

    assert parse_condition("position.age >= 7200")


def test_a_long_gap_gets_clock_events_every_period_for_a_day_then_every_minute_then_every_hour() -> None:
    from engine.rules.timers import clock_times

    day = 86_400_000
    times = list(clock_times(0, 30 * day, 500))
    assert times[:3] == [500, 1_000, 1_500] and times[172_798] == day - 500  # dense for the first day
    assert times[172_799:172_801] == [day, day + 60_000]  # then whole minutes
    week = [t for t in times if t >= 7 * day]
    assert week[:2] == [7 * day, 7 * day + 3_600_000] and week[-1] == 30 * day - 3_600_000  # then whole hours
    assert len(times) == 172_799 + 6 * 1_440 + 23 * 24
