"""The volatility in the engine-state record (engine/rules/state.py): its horizons and bars survive a
restart, and a record written before horizons (tick windows) restores with the volatility rebuilt."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import Event, PositionOpened, Tick
from engine.rules import state
from engine.rules.evaluator import Engine
from engine.rules.volatility import Horizon
from tests.conftest import ROOT

T0 = 1_549_238_400_000
NEWS = Horizon(60_000, 14, "atr")  # strategies/news_driven.yaml
TREND = Horizon(86_400_000, 14, "atr")  # strategies/trend_following.yaml


def events(minutes: int, start: int = 0) -> list[Event]:
    """A quote every 10 s for ``minutes`` minutes, the mid walking up and down a pip at a time; a news_driven long first."""
    out: list[Event] = []
    for k in range(start * 6, (start + minutes) * 6):
        mid = 1.1450 + 0.0001 * ((k * 7) % 11 - 5)
        out.append(Tick(T0 + k * 10_000, "EURUSD", round(mid - 0.00002, 5), round(mid + 0.00002, 5)))
        if k == 0:
            out.append(PositionOpened(T0, "N1", "EURUSD", "news_driven", "n", 1, 0.1, 1.14552, 1.1400, 1.1600))
    return out


def run(engine: Engine, evs: list[Event]) -> list[str]:
    return [a.to_line() for e in evs for a in engine.process(e)]


def test_the_bars_and_their_volatility_survive_a_restart() -> None:
    rules = load_config(str(ROOT))
    a = Engine(rules, broker=PaperBroker())
    run(a, events(20))
    vol = a.vols["EURUSD"]
    assert NEWS in vol.horizons and not math.isnan(vol.values()[NEWS.key])
    rec = state.loads(state.dumps(state.record(a)))
    assert rec["volatility"]["EURUSD"]["horizons"] == [["atr", 60_000, 14], ["atr", 86_400_000, 14]]
    b = Engine(rules, broker=PaperBroker())
    state.restore(b, rec)
    assert b.vols["EURUSD"].values() == vol.values()
    later = events(10, start=20)
    assert run(b, later) == run(a, later)


def test_a_record_of_tick_windows_restores_with_the_volatility_rebuilt_from_the_next_quotes() -> None:
    rules = load_config(str(ROOT))
    a = Engine(rules, broker=PaperBroker())
    run(a, events(20))
    rec = state.loads(state.dumps(state.record(a)))
    # as the release before horizons wrote it: a ring of tick-to-tick returns per window of ticks
    rec["volatility"]["EURUSD"] = {"windows": [100], "buffers": [[0.0] * 100], "sums": [[0.0, 0.0]] * 7}
    b = Engine(rules, broker=PaperBroker())
    state.restore(b, rec)
    vol = b.vols["EURUSD"]
    assert vol.horizons == (NEWS, TREND) and vol.values() == {}  # the rules' horizons, empty: their bars fill again
    run(b, events(16, start=20))
    assert not math.isnan(vol.values()[NEWS.key])  # 15 bars closed after the restart


def test_a_reload_that_brings_a_new_horizon_builds_its_bars_and_keeps_the_others(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    for part in ("rules", "strategies"):
        shutil.copytree(ROOT / part, cfg / part)
    shutil.copy(ROOT / "schedules.yaml", cfg / "schedules.yaml")
    engine = Engine(load_config(str(cfg)), broker=PaperBroker())
    run(engine, events(20))
    before = dict(engine.vols["EURUSD"].values())
    assert not math.isnan(before[NEWS.key])
    path = cfg / "strategies" / "news_driven.yaml"
    path.write_text(path.read_text().replace("timeframe: 1m", "timeframe: 5m"))
    engine.reload(load_config(str(cfg)))
    five = Horizon(300_000, 14, "atr")
    after = engine.vols["EURUSD"]
    assert five in after.horizons and NEWS in after.horizons
    assert after.values()[NEWS.key] == before[NEWS.key] and five.key not in after.values()  # a new horizon starts empty
    run(engine, events(80, start=20))  # 16 five-minute bars
    assert not math.isnan(engine.vols["EURUSD"].values()[five.key])
