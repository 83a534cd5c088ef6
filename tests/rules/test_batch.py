"""The batch replay (engine/rules/batch.py) gives exactly the actions and the state of event-by-event
processing: on the shipped EURUSD ticks and on generated histories."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adapters.files import read_history
from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import Event, PositionClosed, PositionOpened, Tick
from engine.rules.batch import replay_events, tick_columns
from engine.rules.chaining import PortfolioRules
from engine.rules.evaluator import Engine
from tests.conftest import ROOT, edit

TICKS = ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"
POSITIONS = ROOT / "examples" / "replay" / "positions.jsonl"
T0 = 1_549_238_400_000  # 2019-02-04 00:00 UTC, a Monday

# Extra custom rules for the generated histories: a portfolio rule on the drawdown, a position rule
# on the clock and the profit, so runs of quotes must be proven silent, not merely rule-free.
EXTRA_RULES = """
  - name: halt-on-small-drawdown
    when: portfolio.drawdown >= 0.0001 and not portfolio.halted
    then:
      - halt_new_positions: {reason: "drawdown"}
  - name: take-half-late-in-the-hour
    when: clock.minute >= 45 and position.profit > 0.0002 and position.levels_hit == 0
    then:
      - close: {fraction: 0.5}
"""


@pytest.fixture(scope="module")
def scalping():
    return load_config(str(ROOT / "examples" / "scalping"))


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    """The scalping rules with more custom rules and a daily loss limit that a history can reach."""
    root = tmp_path_factory.mktemp("busy")
    shutil.copytree(ROOT / "examples" / "scalping", root, dirs_exist_ok=True)
    (root / "rules" / "custom.yaml").write_text((root / "rules" / "custom.yaml").read_text() + EXTRA_RULES)
    edit(root / "rules" / "limits.yaml", "max: 0.02 ", "max: 0.0005 ")
    return load_config(str(root))


def state(engine: Engine) -> dict[str, Any]:
    """Everything a tick can change, in comparable form (arrays as bytes, so nan and -0.0 count)."""
    kernels = {}
    for s, k in engine.kernels.items():
        n = k.n
        kernels[s] = (list(k.ids), list(k.strategies), k.F[:, :n].tobytes(), k.I[:, :n].tobytes(), k.B[:, :n].tobytes(),
                      k.L[:, :n].tobytes(), repr((k.bid, k.ask, k._last_ts)), dict(k.removed_time_in_profit))
    return {
        "kernels": kernels,
        "vols": {s: (v.S.tobytes(), v.bufs.tobytes()) for s, v in engine.vols.items()},
        "bars": {s: list(b.closes) for s, b in engine.bars.items()},
        "quotes": dict(engine.quotes),
        "unreal": {s: a.tobytes() for s, a in engine.open_pnl.by_symbol.items()},
        "unreal_total": engine.open_pnl.total.tobytes(),
        "curve": list(engine.curve), "strategy_curves": {k: list(v) for k, v in engine.strategy_curves.items()},
        "peak": engine.peak_equity, "day": repr(vars(engine.day)), "counts": dict(engine.counts), "seq": engine.seq,
        "last_ts": engine.last_ts, "ledgers": {k: repr(vars(v)) for k, v in engine.ledgers.items()},
        "positions": {pid: repr(vars(p)) for pid, p in engine.book.positions.items()},
        "posted": sorted(engine.custom.posted), "facts": engine.portfolio.facts(engine.version),
        "mids": dict(engine.converter._mid), "equity": engine.equity,
    }


def both(rules, events: list[Event], equity: float, portfolios: tuple[PortfolioRules, PortfolioRules] | None = None):
    """Replay event by event and in batches; return both engines, their actions and how many events went one by one."""
    a_port, b_port = portfolios or (PortfolioRules(), PortfolioRules())
    one = Engine(rules, equity0=equity, broker=PaperBroker(), portfolio=a_port)
    batched = Engine(rules, equity0=equity, broker=PaperBroker(), portfolio=b_port)
    want = [a for e in events for a in one.process(e)]
    singles = []
    process = batched.process
    batched.process = lambda e, seq=None: singles.append(e) or process(e, seq)  # type: ignore[method-assign]
    got = replay_events(batched, events, tick_columns(events))
    return one, batched, want, got, len(singles)


def assert_same(one: Engine, batched: Engine, want: list, got: list) -> None:
    assert got == want  # every field, ids included
    assert state(batched) == state(one)
    assert repr(batched.summary()) == repr(one.summary())  # repr: a nan return equals itself


def demo_history() -> list[Event]:
    return [e for _, _, e in read_history([str(POSITIONS)], [str(TICKS)], None, lambda *a: None)]


def test_batch_replay_of_the_demo_history_equals_event_by_event(scalping) -> None:
    events = demo_history()
    one, batched, want, got, singles = both(scalping, events, 100_000.0)
    assert len(want) > 40 and {a.type for a in want} >= {"close", "close_partial", "set_stop_loss", "reject_position"}
    assert_same(one, batched, want, got)
    # the quiet quotes really went through the compiled scan: most events never reached process()
    # (a busy hour: a quarter of the quotes move a stop, close, or may reach a new equity peak)
    assert singles < len(events) / 2


def test_batch_replay_with_the_shipped_rules_and_many_positions_equals_event_by_event() -> None:
    rules = load_config(str(ROOT))
    ticks = [e for e in demo_history() if isinstance(e, Tick)]
    events: list[Event] = []
    names = sorted(rules.strategies)
    for k, t in enumerate(ticks):
        events.append(t)
        if 10 <= k < 40:  # five positions per strategy, within max_positions (news_driven: its 3, then rejected)
            side = 1 if k % 2 else -1
            name = names[k % len(names)]
            stop = None if k % 3 else (t.ask - 0.0004 if side > 0 else t.bid + 0.0004)
            events.append(PositionOpened(t.ts, f"P{k}", "EURUSD", name, name, side, 0.1, t.ask if side > 0 else t.bid, stop, None))
        if k == 2000:
            events.append(PositionClosed(t.ts, "P12", None))
    one, batched, want, got, singles = both(rules, events, 1_000_000.0)
    assert_same(one, batched, want, got)
    assert any(a.rule == "dynamic_sltp" for a in want)  # news_driven moves its stop with the volatility
    assert singles < len(events) / 5


@pytest.fixture(scope="module")
def portfolios():
    """Two long-lived rule hosts (durable-rules leaks threads per host): the versions are dropped after each example."""
    return PortfolioRules(), PortfolioRules()


_SYMBOLS = {"EURUSD": (1.1455, 1e-4), "GBPUSD": (1.2950, 1e-4), "USDJPY": (110.20, 1e-2), "EURJPY": (126.20, 1e-2)}
_STEPS_MS = (40, 400, 2_500, 15_000, 61_000, 6 * 3_600_000)


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    symbols = draw(st.lists(st.sampled_from(sorted(_SYMBOLS)), min_size=1, max_size=3, unique=True))
    steps = draw(st.lists(st.tuples(st.integers(0, len(_STEPS_MS) - 1), st.integers(-4, 4), st.integers(0, 3),
                                    st.integers(0, 24), st.integers(0, 6)), min_size=10, max_size=250))
    mids = {s: _SYMBOLS[s][0] for s in symbols}
    ts = T0 + draw(st.integers(0, 3)) * 86_400_000 + draw(st.integers(0, 86_399_999))
    current = 0
    opened: list[str] = []
    events: list[Event] = []
    for k, (step, move, spread, act, size) in enumerate(steps):
        if act == 24:  # another symbol takes over the stream
            current = (current + 1) % len(symbols)
        symbol = symbols[current]
        pip = _SYMBOLS[symbol][1]
        ts += _STEPS_MS[step] if step < 5 or size == 0 else 1_000  # long gaps (days, resets) are rare
        mids[symbol] += move * pip / 2
        half = spread * pip / 10 / 2 + pip / 20
        tick = Tick(ts, symbol, round(mids[symbol] - half, 6), round(mids[symbol] + half, 6))
        events.append(tick)
        if act in (0, 1):
            side = 1 if act == 0 else -1
            entry = tick.ask if side > 0 else tick.bid
            stop = entry - side * (1 + size) * pip if size % 2 else None
            target = entry + side * (2 + size) * pip if size > 3 else None
            pid = f"p{k}"
            events.append(PositionOpened(ts, pid, symbol, "scalp_trend" if size % 3 else "scalp_revert", "gen", side,
                                         0.05 * (1 + size % 4), entry, stop, target))
            opened.append(pid)
        elif act == 2 and opened:
            events.append(PositionClosed(ts, opened.pop(0), None))
    return events


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(histories())
def test_batch_replay_of_generated_histories_equals_event_by_event(busy, portfolios, events) -> None:
    try:
        one, batched, want, got, _ = both(busy, events, 200_000.0, portfolios)
        assert_same(one, batched, want, got)
    finally:
        for p in portfolios:
            for version in p.versions:
                p.drop(version)


def test_a_batch_stops_before_the_quote_that_hits_and_leaves_it_to_the_evaluator(scalping) -> None:
    """The quote crossing a stop is processed exactly once, by the evaluator, and its close carries that quote's price."""
    ts = T0 + 1_000
    events: list[Event] = [Tick(ts, "EURUSD", 1.14500, 1.14502),
                           PositionOpened(ts, "L", "EURUSD", "scalp_revert", "x", 1, 0.1, 1.14502, 1.14480, 1.14560)]
    for k in range(1, 40):
        # below the entry: no new equity peak
        events.append(Tick(ts + k * 100, "EURUSD", 1.14495 + (k % 3) * 1e-5, 1.14497 + (k % 3) * 1e-5))
    events.append(Tick(ts + 4_000, "EURUSD", 1.14479, 1.14481))  # through the stop
    events += [Tick(ts + 4_000 + k * 100, "EURUSD", 1.14490, 1.14492) for k in range(1, 10)]
    one, batched, want, got, singles = both(scalping, events, 100_000.0)
    assert_same(one, batched, want, got)
    closes = [a for a in got if a.type == "close"]
    assert [(a.position_id, a.rule, a.params["price"], a.ts) for a in closes] == [("L", "stop_loss", 1.14479, ts + 4_000)]
    assert singles <= 4  # the first quote, the proposal, the quote that hits (and nothing else quiet)


def test_tick_columns_mark_runs_of_one_symbol() -> None:
    events: list[Event] = [Tick(1, "A", 1.0, 1.0), Tick(2, "A", 1.0, 1.0), Tick(3, "B", 1.0, 1.0),
                           PositionClosed(4, "x", None), Tick(5, "B", 1.0, 1.0), Tick(6, "B", 1.0, 1.0)]
    cols = tick_columns(events)
    assert cols.sym.tolist() == [0, 0, 1, -1, 1, 1]
    assert cols.run_end.tolist() == [2, 2, 3, 4, 6, 6]
    assert math.isnan(cols.bid[3]) and cols.symbols == ["A", "B"]
    assert np.array_equal(cols.ts, [1, 2, 3, 0, 5, 6])


def test_a_batch_hands_the_quote_that_breaches_the_daily_loss_to_the_evaluator(busy) -> None:
    """Equity drifting down through the limit in the middle of quiet quotes: the breach happens on the same quote."""
    ts = T0 + 3_600_000
    events: list[Event] = [Tick(ts, "EURUSD", 1.14500, 1.14501),
                           PositionOpened(ts, "L", "EURUSD", "scalp_revert", "x", 1, 1.0, 1.14501, 1.13000, 1.16000)]
    for k in range(1, 300):  # 0.3 pip down per quote: the 0.05 % limit ($500 at $10 a pip) goes after 50 pips
        events.append(Tick(ts + k * 100, "EURUSD", round(1.14500 - k * 3e-5, 6), round(1.14501 - k * 3e-5, 6)))
    one, batched, want, got, singles = both(busy, events, 1_000_000.0)
    assert_same(one, batched, want, got)
    breach = [a for a in got if a.rule == "daily_loss"]
    assert {a.type for a in breach} >= {"halt_new_positions", "close_all"}
    assert singles < 60  # per quote only while the drawdown rule could fire, before its halt


def _trail_at_zero(tmp_path: Path, loosen: bool):
    """Scalping rules whose trend trail arms at zero profit, wider than the stop; ``loosen``: plus a
    custom rule loosening the stop of an armed position."""
    root = tmp_path / ("loosen" if loosen else "plain")
    shutil.copytree(ROOT / "examples" / "scalping", root)
    edit(root / "strategies" / "scalp_trend.yaml", "trailing_distance: 0.0001, activation_threshold: 0.00015",
         "trailing_distance: 0.0005, activation_threshold: 0.0")
    if loosen:
        (root / "rules" / "custom.yaml").write_text((root / "rules" / "custom.yaml").read_text() + """
  - name: loosen-once-armed
    when: position.trailing_armed and position.strategy_type == "scalp_trend"
    then:
      - set_stop_loss: {profit: -0.001}
""")
    return load_config(str(root))


def _zero_profit_history() -> list[Event]:
    ts = T0 + 7_200_000
    events: list[Event] = [Tick(ts, "EURUSD", 1.14500, 1.14502),
                           PositionOpened(ts, "T", "EURUSD", "scalp_trend", "x", 1, 0.1, 1.14502, None, None)]
    bids = [1.14495, 1.14497, 1.14499, 1.14501, 1.14502, 1.14501, 1.14500, 1.14499, 1.14500, 1.14501] * 3
    return events + [Tick(ts + 100 * (k + 1), "EURUSD", b, round(b + 2e-5, 6)) for k, b in enumerate(bids)]


def test_a_trail_arming_without_a_new_best_price_is_not_skipped(tmp_path) -> None:
    """At activation 0 the trail arms when the bid comes back to the entry, which is no new best price."""
    events = _zero_profit_history()
    one, batched, want, got, singles = both(_trail_at_zero(tmp_path, loosen=False), events, 100_000.0)
    assert_same(one, batched, want, got)
    assert batched.kernels["EURUSD"].state("T").armed
    assert singles < len(events) / 2


def test_an_armed_trail_loosened_by_a_custom_rule_tightens_again_in_a_batch(tmp_path) -> None:
    """The trail takes back a stop a custom rule loosened, on the next quote, with no new best price."""
    events = _zero_profit_history()
    one, batched, want, got, singles = both(_trail_at_zero(tmp_path, loosen=True), events, 100_000.0)
    assert_same(one, batched, want, got)
    moves = [(a.rule, a.params["stop_loss"]) for a in got if a.type == "set_stop_loss"]
    # the default stop, the custom loosening at the arming quote, the trail tightening it on the next one; each on
    # the five-digit grid, rounded up for a long: 1.14502 * 0.9997 = 1.1446765, * 0.999 = 1.1438750, * 0.9995 = 1.1444475
    assert moves == [("defaults", 1.14468), ("custom:loosen-once-armed", 1.14388), ("trailing", 1.14445)]
    assert singles < len(events) / 2
