"""Exact at the instrument, through the whole engine: prices on the tick grid, volumes on the lot step,
and a quote equal to a level triggers it (docs/engine.md, "Exact at the instrument")."""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.actions import Action
from engine.adapters.paper import PaperBroker
from engine.config.grid import Grid
from engine.config.load import RuleSet, ruleset_from_texts
from engine.events import parse_event
from engine.rules.evaluator import Engine
from tests.conftest import ROOT

TICKS = [0.00001, 0.001, 0.01, 0.25, 1.0]
STEPS = [0.01, 0.1, 1.0]
T0 = 1_700_000_000_000


def _digits(tick: float) -> int:
    return Grid.of(tick).decimals


def shipped_texts() -> dict[str, str]:
    """The shipped configuration as texts (``load_texts``' input)."""
    out = {}
    for path in itertools.chain((ROOT / "strategies").glob("*.yaml"), (ROOT / "rules").glob("*.yaml"), [ROOT / "schedules.yaml"]):
        out[str(path.relative_to(ROOT))] = path.read_text()
    return out


def symbol(tick: float, step: float) -> str:
    return f"X{TICKS.index(tick)}{STEPS.index(step)}"


def grid_rules(**replace: str) -> RuleSet:
    """The shipped rules with an instrument per tick size and lot step (quoted in the account currency, one
    unit a lot, so sizes and risk stay far inside the limits), ``replace`` (old=new) applied to arbitrage."""
    texts = shipped_texts()
    specs = "".join(f"  {symbol(tick, step)}: {{quote_currency: USD, contract_size: 1, pip_size: {tick}, digits: {_digits(tick)}, "
                    f"tick_size: {tick}, volume_step: {step}, volume_min: {step}, volume_max: 100000}}\n"
                    for tick, step in itertools.product(TICKS, STEPS))
    assert texts["rules/instruments.yaml"].count("\nstrategy_map:") == 1
    texts["rules/instruments.yaml"] = texts["rules/instruments.yaml"].replace("\nstrategy_map:", "\n" + specs + "strategy_map:")
    for old, new in replace.items():
        assert texts["strategies/arbitrage.yaml"].count(old) == 1, old
        texts["strategies/arbitrage.yaml"] = texts["strategies/arbitrage.yaml"].replace(old, new)
    return ruleset_from_texts(texts)


RULES = grid_rules()


def tick(ts: int, sym: str, bid: float, ask: float) -> dict:
    return {"type": "tick", "ts": ts, "symbol": sym, "bid": bid, "ask": ask}


def proposal(ts: int, sym: str, side: int, volume: float, entry: float, pid: str = "p1") -> dict:
    return {"type": "position_opened", "ts": ts, "position_id": pid, "symbol": sym, "strategy_type": "arbitrage",
            "strategy_name": "arbitrage", "action": "BUY" if side > 0 else "SELL", "volume": volume, "entry_price": entry}


def run(rules: RuleSet, events: list[dict], equity: float = 1e9) -> list[Action]:
    engine = Engine(rules, equity0=equity, broker=PaperBroker())
    out: list[Action] = []
    for e in events:
        out.extend(engine.process(parse_event(e)))
    return out


def quote_at(level: float, side: int, prices: Grid) -> tuple[float, float]:
    """A quote whose side's price (bid for a long, ask for a short) is exactly ``level``, one tick wide."""
    k = round(prices.steps(level))
    return (level, prices.value(k + 1)) if side > 0 else (prices.value(k - 1), level)


# --- the cases, with their right values ---------------------------------------------------------------


def eurusd_long(*quotes: tuple[float, float]) -> list[Action]:
    events = [tick(T0, "EURUSD", 1.0999, 1.1000), proposal(T0 + 100, "EURUSD", +1, 0.1, 1.1000)]
    events += [tick(T0 + 1000 * (i + 1), "EURUSD", bid, ask) for i, (bid, ask) in enumerate(quotes)]
    return run(RULES, events, equity=100_000.0)


def test_a_bid_exactly_at_the_take_profit_closes_the_whole_position_there() -> None:
    out = eurusd_long((1.1110, 1.1111))
    assert [a.params["take_profit"] for a in out if a.type == "set_take_profit"] == [1.111]  # not 1.1110000000000002
    closes = [a for a in out if a.type in ("close", "close_partial")]
    assert [(a.type, a.rule, a.params["volume"], a.params["price"]) for a in closes] == [("close", "take_profit", 0.1, 1.111)]


def test_a_bid_exactly_at_the_first_exit_level_takes_it_moves_the_stop_and_arms_the_trail() -> None:
    out = eurusd_long((1.1055, 1.1056))  # +0.5 % exactly: the first level and the trailing activation
    assert [(a.type, a.rule) for a in out if a.ts > T0 + 100 and a.type != "lock_profit"] == [
        ("close_partial", "exit_levels.0"), ("set_stop_loss", "exit_levels.0"), ("set_stop_loss", "trailing")]
    partial, level_stop, trail = (a for a in out if a.ts > T0 + 100 and a.type != "lock_profit")
    # 25 % of 0.1 lot is 0.025: on the 0.01 lot step the level closes 0.02 and carries 0.005 to the next level
    assert (partial.params["volume"], partial.params["price"]) == (0.02, 1.1055)
    assert level_stop.params["stop_loss"] == 1.1022  # entry + 0.2 %
    assert trail.params["stop_loss"] == 1.10329      # 1.1055 * 0.998 = 1.103289, a long's stop rounded up to the tick


def test_exit_levels_carry_what_the_lot_step_leaves_so_their_sum_stays_within_a_step_of_the_rule() -> None:
    out = eurusd_long((1.1055, 1.1056), (1.1088, 1.1089))  # +0.5 %, +0.8 %: 25 % + 25 % of 0.1
    volumes = [a.params["volume"] for a in out if a.type == "close_partial"]
    assert volumes == [0.02, 0.03]  # 0.025 -> 0.02, then 0.05 in all -> 0.03
    for a in out:  # clean decimals in JSON: no 0.04000000000000001, no 27.499999999999748
        params = json.dumps(a.to_json()["params"])
        assert re.search(r"\d\.\d*(0{6,}|9{6,})\d", params) is None, params


# --- every instrument, longs and shorts -----------------------------------------------------------------------


@st.composite
def openings(draw: st.DrawFn) -> tuple[float, float, int, int, int]:
    return (draw(st.sampled_from(TICKS)), draw(st.sampled_from(STEPS)), draw(st.sampled_from([1, -1])),
            draw(st.integers(50_000, 150_000)), draw(st.integers(1, 400)))


def open_position(tick_size: float, step: float, side: int, entry_ticks: int, lots: int) -> tuple[list[dict], str, Grid, float]:
    sym = symbol(tick_size, step)
    prices = Grid.of(tick_size)
    entry = prices.value(entry_ticks)
    bid, ask = quote_at(entry, -side, prices)  # a long buys at the ask, a short sells at the bid
    events = [tick(T0, sym, bid, ask), proposal(T0 + 1, sym, side, Grid.of(step).value(lots), entry)]
    return events, sym, prices, entry


def assert_exact(out: list[Action], prices: Grid, lots: Grid) -> None:
    for a in out:
        for key in ("stop_loss", "take_profit", "price"):
            value = a.params.get(key)
            if isinstance(value, float):
                assert prices.on(value) and value == prices.nearest(value), (a.type, a.rule, key, value)
        if "volume" in a.params:
            assert lots.on(a.params["volume"]) and a.params["volume"] == lots.nearest(a.params["volume"]), a


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(openings(), st.sampled_from(["stop_loss", "take_profit", "exit_levels.0"]))
def test_a_quote_equal_to_a_level_triggers_it_and_one_tick_short_does_not(opening, level_name: str) -> None:
    _, step, side, _, _ = opening
    events, sym, prices, entry = open_position(*opening)
    opened = run(RULES, events)
    assert_exact(opened, prices, Grid.of(step))
    levels = {a.type.removeprefix("set_"): a.params[a.type.removeprefix("set_")] for a in opened if a.rule == "defaults"}
    levels["exit_levels.0"] = prices.toward_profit(entry * (1 + side * 0.005), side)  # the arbitrage file's first level
    level = levels[level_name]
    outward = -side if level_name == "stop_loss" else side  # the direction in which the price reaches the level
    short_of = prices.value(round(prices.steps(level)) - outward)
    missed = run(RULES, [*events, tick(T0 + 2, sym, *quote_at(short_of, side, prices))])
    assert [a for a in missed if a.ts == T0 + 2 and a.rule == level_name] == []
    hit = run(RULES, [*events, tick(T0 + 2, sym, *quote_at(level, side, prices))])
    assert_exact(hit, prices, Grid.of(step))
    fired = [(a.type, a.rule) for a in hit if a.ts == T0 + 2 and a.type != "lock_profit"]
    if level_name.startswith("exit"):
        # the level closes its share, or (below the lot step: carried to the next level) only moves the stop
        assert fired[:1] in ([("close_partial", level_name)], [("set_stop_loss", level_name)]), (level, fired)
    else:
        assert fired[:1] == [("close", level_name)], (level, fired)


def test_stops_the_engine_moves_stay_on_the_grid_for_every_instrument() -> None:
    for tick_size, step, side in itertools.product(TICKS, STEPS, (1, -1)):
        events, sym, prices, entry = open_position(tick_size, step, side, 100_003, 37)
        path = [prices.nearest(entry * (1 + side * x / 1000)) for x in (3, 5, 6, 8, 9, 12, 11, 13)]
        events += [tick(T0 + 10 * (i + 2), sym, *quote_at(p, side, prices)) for i, p in enumerate(path)]
        out = run(RULES, events)
        assert {a.rule for a in out if a.type == "set_stop_loss"} >= {"defaults", "exit_levels.0", "trailing"}, (sym, side)
        assert_exact(out, prices, Grid.of(step))


# --- the trailing stop moves by min_step ticks or more --------------------------------------------------------


def test_a_thousand_new_highs_move_the_trailing_stop_only_by_its_min_step() -> None:
    rules = grid_rules(**{"mode: fixed": "mode: fixed\n  min_step: 10"})
    sym, prices = symbol(0.00001, 0.01), Grid.of(0.00001)
    events = [tick(T0, sym, 9.99999, 10.0), proposal(T0 + 1, sym, +1, 1.0, 10.0)]
    first = 1_005_100  # +0.51 %: past the trail's activation and the first exit level; 1 000 ticks more stay below the second
    events += [tick(T0 + 10 * (i + 2), sym, prices.value(first + i), prices.value(first + i + 1)) for i in range(1000)]
    trail = [a for a in run(rules, events) if a.rule == "trailing"]
    assert len(trail) == 100  # one new high a tick: the first move, then one every 10 ticks, not 1 000 broker requests
    for a in trail[1:]:
        assert round(prices.steps(a.params["stop_loss"] - a.params["previous"])) == 10


def test_the_default_min_step_moves_the_trail_on_every_new_tick_high() -> None:
    sym, prices = symbol(0.00001, 0.01), Grid.of(0.00001)
    events = [tick(T0, sym, 9.99999, 10.0), proposal(T0 + 1, sym, +1, 1.0, 10.0)]
    events += [tick(T0 + 10 * (i + 2), sym, prices.value(1_005_100 + i), prices.value(1_005_101 + i)) for i in range(50)]
    trail = [a for a in run(RULES, events) if a.rule == "trailing"]
    assert len(trail) == 50


def test_replayed_actions_print_clean_decimals(tmp_path: Path) -> None:
    out = eurusd_long((1.1055, 1.1056), (1.1088, 1.1089), (1.1110, 1.1111))
    for a in out:
        for key, value in a.to_json()["params"].items():
            if isinstance(value, float):
                assert len(json.dumps(value)) <= 12, (a.type, key, value)


@pytest.mark.parametrize(("tick_size", "expected"), [(0.00001, (1, 100_000)), (0.25, (25, 100)), (1.0, (1, 1)), (5.0, (5, 1))])
def test_grid_of_a_step(tick_size: float, expected: tuple[int, int]) -> None:
    g = Grid.of(tick_size)
    assert (g.units, g.scale) == expected
    assert g.step == tick_size


def test_a_reload_brings_new_instruments_and_grids_to_the_engine() -> None:
    engine = Engine(RULES, equity0=1e9, broker=PaperBroker())
    problems: list[str] = []
    engine.on_problem = problems.append
    sym = symbol(0.00001, 0.01)
    for e in (tick(T0, sym, 0.99999, 1.0), proposal(T0 + 1, sym, +1, 1.0, 1.0), tick(T0 + 2, "NEW", 1.0, 1.0001)):
        engine.process(parse_event(e))
    assert problems and "NEW" in problems[-1]  # not in the instruments yet: reported, ignored
    coarse = RULES.instruments.instruments[sym].model_copy(update={"tick_size": 0.001, "digits": 3})
    added = RULES.instruments.instruments | {sym: coarse, "NEW": coarse}
    engine.reload(dataclasses.replace(RULES, instruments=RULES.instruments.model_copy(update={"instruments": added})))
    assert engine.process(parse_event(tick(T0 + 3, "NEW", 1.0, 1.001))) == [] and engine.counts["ticks"] == 2
    out = engine.process(parse_event(tick(T0 + 4, sym, 1.006, 1.007)))  # +0.6 %: the trail arms, on the new 0.001 grid
    trail = [a.params["stop_loss"] for a in out if a.rule == "trailing"]
    assert trail == [1.004]  # 1.006 x 0.998 = 1.003988, up to the 0.001 tick


def test_the_position_view_shows_the_exact_prices_the_kernel_compares_quotes_with() -> None:
    from engine.service.views import position

    engine = Engine(RULES, equity0=100_000.0, broker=PaperBroker())
    for e in (tick(T0, "EURUSD", 1.0999, 1.1000), proposal(T0 + 100, "EURUSD", +1, 0.1, 1.1000),
              tick(T0 + 1000, "EURUSD", 1.1030, 1.1031)):
        engine.process(parse_event(e))
    view = position(engine, engine.book.positions["p1"])
    assert (view["stop_loss"], view["take_profit"]) == (1.0945, 1.111)
    assert view["trailing"]["activation_price"] == 1.1055
    assert view["partial_profit"]["next_level"] | {} == {"profit_target": 0.005, "exit_percentage": 0.25, "sl_adjustment": 0.002,
                                                         "price": 1.1055, "leaves_open": 0.08}
    assert view["instrument"] == {"tick_size": 0.00001, "digits": 5, "volume_step": 0.01, "volume_min": 0.01, "volume_max": 100.0}
    json.dumps(view, allow_nan=False)  # the API answers it as JSON


def test_a_proposals_own_levels_off_the_grid_are_put_on_it_and_announced() -> None:
    sym, prices = symbol(0.25, 0.1), Grid.of(0.25)
    own = {**proposal(T0 + 1, sym, -1, 1.0, 4500.0), "stop_loss": 4518.213175, "take_profit": 4447.1811525}
    out = run(RULES, [tick(T0, sym, 4500.0, 4500.25), own])
    moves = [(a.type, a.rule, a.params) for a in out]
    # a short's levels round down: the stop tighter, the target asking at least the profit it was given
    assert moves == [("set_stop_loss", "tick_grid", {"stop_loss": 4518.0, "previous": 4518.213175}),
                     ("set_take_profit", "tick_grid", {"take_profit": 4447.0, "previous": 4447.1811525})]
    assert all(prices.on(p[next(iter(p))]) for _, _, p in moves)
    on_grid = {**own, "stop_loss": 4518.0, "take_profit": 4447.0}
    assert run(RULES, [tick(T0, sym, 4500.0, 4500.25), on_grid]) == []  # levels already on the grid: nothing to say


def test_a_position_whose_close_is_pending_at_the_broker_is_valued_at_the_last_quote() -> None:
    # issue 14, case 6: an asynchronous broker (no fills until the broker reports them); the take profit hits,
    # the engine stops managing the position, the book keeps it open until the fill: the view values it
    from engine.service.views import position

    engine = Engine(RULES, equity0=100_000.0, broker=None)
    for e in (tick(T0, "EURUSD", 1.0999, 1.1000), proposal(T0 + 100, "EURUSD", +1, 0.1, 1.1000)):
        engine.process(parse_event(e))
    out = engine.process(parse_event(tick(T0 + 1000, "EURUSD", 1.1110, 1.1111)))
    assert [a.type for a in out if a.type == "close"] == ["close"] and "p1" not in engine.kernels["EURUSD"].ids
    view = position(engine, engine.book.positions["p1"])
    assert view["status"] == "open" and view["close_pending"] is True
    assert (view["price"], view["unrealized_pnl"]) == (1.111, pytest.approx(110.0))
