"""The vectorised kernel against the per-position reference, and section 4 on concrete paths."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import load_config
from engine.config.grid import Grid
from engine.config.models import Instrument
from engine.rules.kernel import Hit, SymbolBook
from engine.rules.params import StrategyParams, compile_params
from engine.rules.volatility import Horizon, Volatility
from tests.conftest import ROOT
from tests.rules.reference import RefPosition, on_tick

NAN = math.nan
#: the volatility horizons of the property tests: a bar per quote, and bars of one and two seconds
HORIZONS = (Horizon(0, 5, "stdev"), Horizon(0, 4, "atr"), Horizon(1_000, 3, "atr"), Horizon(2_000, 2, "stdev"))


def key(h: Hit) -> tuple:
    fields = (h.position_id, h.kind, h.rule, h.price, h.volume, h.fraction, h.previous)
    return tuple(None if isinstance(v, float) and math.isnan(v) else v for v in fields)


def by_position(hits: list[Hit]) -> dict[str, list[tuple]]:
    out: dict[str, list[tuple]] = defaultdict(list)
    for h in hits:
        out[h.position_id].append(key(h))
    return dict(out)


@st.composite
def params(draw: st.DrawFn, name: str) -> StrategyParams:
    is_r = draw(st.booleans())
    k = draw(st.integers(0, 4))
    steps = draw(st.lists(st.floats(0.0005, 0.01) if not is_r else st.floats(0.25, 2.0), min_size=k, max_size=k))
    triggers = tuple(np.cumsum(steps).tolist())
    pcts = draw(st.lists(st.sampled_from([0.1, 0.2, 0.25, 0.3, 1 / 3, 0.4, 0.5]), min_size=k, max_size=k))
    total = 0.0
    level_pct, level_all = [], []
    for pct in pcts:
        pct = min(pct, max(1.0 - total, 0.05))
        total += pct
        level_pct.append(pct)
        level_all.append(total >= 1 - 1e-9)
    sls = tuple(draw(st.one_of(st.just(NAN), st.floats(-0.002, t * (0.9 if not is_r else 0.004)))) for t in triggers)
    d = draw(st.floats(0.0002, 0.01))
    return StrategyParams(
        name=name, stop_loss=0.005, take_profit=0.01,
        trail_on=draw(st.booleans()), trail_distance=d, trail_activation=draw(st.floats(0.0, 0.01)),
        trail_max=draw(st.one_of(st.just(math.inf), st.floats(d, 0.03))), trail_volatility=draw(st.booleans()),
        trail_k=draw(st.floats(0.5, 50.0)), trail_horizon=draw(st.sampled_from(HORIZONS)),
        level_is_r=is_r, level_trigger=triggers, level_pct=tuple(level_pct), level_sl=sls, level_all=tuple(level_all),
        level_keys=tuple(f"{'r_multiple' if is_r else 'profit_target'}:{t!r}" for t in triggers),
        dyn_on=draw(st.booleans()), dyn_horizon=draw(st.sampled_from(HORIZONS)), dyn_stop_k=draw(st.floats(1.0, 30.0)),
        dyn_tp_k=draw(st.floats(1.0, 60.0)), dyn_only_tighten=draw(st.booleans()), dyn_floor=draw(st.sampled_from([1, 3, 50])),
    )


#: the instruments of the property tests: tick sizes and lot steps of currency pairs, metals, index futures
TICKS = [0.00001, 0.001, 0.01, 0.25, 1.0]
STEPS = [0.01, 0.1, 1.0]


@st.composite
def instruments(draw: st.DrawFn) -> Instrument:
    tick = draw(st.sampled_from(TICKS))
    step = draw(st.sampled_from(STEPS))
    digits = Grid.of(tick).decimals
    return Instrument(quote_currency="USD", pip_size=tick, digits=digits, tick_size=tick, volume_step=step,
                      volume_min=step * draw(st.sampled_from([1, 1, 2, 5])))


@st.composite
def scenario(draw: st.DrawFn):
    names = ["a", "b", "c"]
    prm = {n: draw(params(n)) for n in names}
    reload_at = draw(st.one_of(st.none(), st.integers(1, 60)))
    new_prm = {n: draw(params(n)) for n in names}
    n_ticks = draw(st.integers(5, 80))
    moves = draw(st.lists(st.one_of(st.floats(-0.001, 0.001), st.floats(-0.02, 0.02)), min_size=n_ticks, max_size=n_ticks))
    spreads = draw(st.lists(st.floats(0.0, 0.0003), min_size=n_ticks, max_size=n_ticks))
    opens = draw(st.lists(
        st.tuples(st.integers(0, n_ticks - 1), st.sampled_from(names), st.sampled_from([1, -1]), st.integers(1, 1000),
                  st.one_of(st.just(NAN), st.floats(0.001, 0.03)), st.one_of(st.just(NAN), st.floats(0.001, 0.05))),
        min_size=1, max_size=12))
    inst = draw(instruments())
    on_grid = draw(st.booleans())  # quotes on the tick grid (as brokers send them), or anywhere
    gaps = draw(st.lists(st.sampled_from([0, 150, 700, 2_500]), min_size=n_ticks, max_size=n_ticks))  # ms between quotes
    return prm, new_prm, reload_at, moves, spreads, opens, inst, on_grid, gaps


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario())
def test_kernel_emits_exactly_the_reference_hits(sc) -> None:
    prm, new_prm, reload_at, moves, spreads, opens, inst, on_grid, gaps = sc
    book = SymbolBook("X", prm, capacity=2, instrument=inst)
    fused = SymbolBook("X", prm, capacity=2, instrument=inst)  # on_quote: volatility and quote in one call
    refs: dict[str, RefPosition] = {}
    vol, fused_vol = Volatility(HORIZONS), Volatility(HORIZONS)
    prices, lots = inst.prices, inst.lots
    base = prices.step * 100_000  # some 100 000 ticks: 1.00000 for a five-digit pair, 25 000 for a 0.25 tick
    mid = base
    ts = 1_549_238_400_000
    for t, (move, spread, gap) in enumerate(zip(moves, spreads, gaps, strict=True)):
        ts += gap
        if reload_at == t:
            book.reload(new_prm)
            fused.reload(new_prm)
            for r in refs.values():
                r.params = new_prm[r.params.name]
        bid, ask = mid, mid + spread * base
        if on_grid:
            bid, ask = prices.nearest(bid), prices.nearest(ask)
        for n, (at, strat, side, steps, sl, tp) in enumerate(opens):
            if at == t:
                pid = f"p{n}"
                entry = ask if side > 0 else bid
                volume = max(lots.value(steps), inst.volume_min)  # the pre-trade checks hold volumes to the minimum
                stop = prices.toward_profit(entry * (1 - side * sl), side) if not math.isnan(sl) else NAN
                target = prices.toward_profit(entry * (1 + side * tp), side) if not math.isnan(tp) else NAN
                book.add(pid, strat, side, entry, volume, stop, target)
                fused.add(pid, strat, side, entry, volume, stop, target)
                current = new_prm if reload_at is not None and t >= reload_at else prm
                refs[pid] = RefPosition(pid, current[strat], side, entry, volume, stop, target, inst)
        vol.update(bid, ask, ts)
        sigma = vol.values()
        got = book.on_tick(bid, ask, sigma, ts)
        assert [key(h) for h in fused.on_quote(bid, ask, fused_vol, ts)] == [key(h) for h in got], f"tick {t}"
        want: list[Hit] = []
        for pid in list(refs):
            hits, closed = on_tick(refs[pid], bid, ask, sigma)
            want.extend(hits)
            if closed:
                del refs[pid]
        assert by_position(got) == by_position(want), f"tick {t}"
        assert sorted(book.ids) == sorted(refs)
        for h in got:  # every level set is on the tick grid, every volume closed on the lot step
            if h.kind in ("set_stop_loss", "set_take_profit"):
                assert prices.on(h.price) and h.price == prices.nearest(h.price), h
            else:
                assert lots.on(h.volume) and h.volume == lots.nearest(h.volume), h
                assert h.volume >= inst.volume_min * (1 - 1e-9) or h.kind == "close", h
        mid = max(mid * (1 + move), base / 100)


# --- section 4 on the shipped arbitrage rules ------------------------------------------------------


def arbitrage_book() -> SymbolBook:
    rules = load_config(str(ROOT))
    return SymbolBook("EURUSD", compile_params(rules.strategies))


def test_long_arbitrage_position_takes_levels_trails_and_closes_as_section_4_predicts() -> None:
    book = arbitrage_book()
    entry = 1.0850
    # shipped arbitrage: SL 0.5 %, TP 1 %, trailing 0.2 % armed at 0.5 %, levels 0.5/0.8/1.2/1.5 % x 25 %
    book.add("p1", "arbitrage", +1, entry, 1.0, 1.07958, 1.09585)  # 0.5 % and 1 % from entry, on the grid (up for a long)
    assert book.on_tick(1.0860, 1.0861) == []          # +0.09 %: nothing
    assert book.on_tick(1.09042, 1.09044) == []        # one tick short of +0.5 % (1.090425 rounds up to 1.09043)
    hits = book.on_tick(1.09043, 1.09045)              # +0.5 %: level 0, stop to entry*(1.002), trailing arms
    assert [(h.kind, h.rule) for h in hits] == [
        ("close_partial", "exit_levels.0"), ("set_stop_loss", "exit_levels.0"), ("set_stop_loss", "trailing")]
    assert hits[0].volume == 0.25 and hits[0].price == 1.09043
    assert hits[1].price == 1.08717                    # entry * 1.002 = 1.087170
    assert hits[2].price == 1.08825                    # 1.09043 * 0.998 = 1.0882491 rounds up (tighter) to the grid
    hits = book.on_tick(1.0937, 1.0938)                # +0.8 %: level 1; entry*1.003 = 1.088255 -> 1.08826 beats the trail
    assert [(h.kind, h.rule) for h in hits] == [
        ("close_partial", "exit_levels.1"), ("set_stop_loss", "exit_levels.1"), ("set_stop_loss", "trailing")]
    assert hits[1].price == 1.08826 and hits[1].previous == 1.08825
    assert hits[2].price == 1.09152                    # 1.0937 * 0.998 = 1.0915126
    assert book.on_tick(1.0930, 1.0931) == []          # pull-back above the stop: the stop never loosens
    hits = book.on_tick(1.0910, 1.0911)                # below the trailed stop: close at the bid
    assert [(h.kind, h.rule, h.price, h.volume) for h in hits] == [("close", "trailing_stop", 1.0910, 0.5)]
    assert book.n == 0


def test_gap_through_two_levels_fires_both_on_one_tick() -> None:
    book = arbitrage_book()
    entry = 1.0850
    book.add("p1", "arbitrage", +1, entry, 1.0, 1.07958, math.nan)
    hits = book.on_tick(1.0940, 1.0941)  # +0.83 %: through 0.5 % and 0.8 %
    assert [(h.kind, h.rule) for h in hits][:3] == [
        ("close_partial", "exit_levels.0"), ("set_stop_loss", "exit_levels.0"), ("close_partial", "exit_levels.1")]
    assert sum(h.volume for h in hits if h.kind == "close_partial") == 0.5


def test_short_mirrors_long() -> None:
    long_book, short_book = arbitrage_book(), arbitrage_book()
    entry = 1.0850
    grid = arbitrage_book().prices
    long_book.add("L", "arbitrage", +1, entry, 1.0, grid.up(entry * 0.995), grid.up(entry * 1.01))
    short_book.add("S", "arbitrage", -1, entry, 1.0, grid.down(entry * 1.005), grid.down(entry * 0.99))
    for up in (0.001, 0.0051, 0.0082, 0.0079, 0.006, 0.0055):
        lh = long_book.on_tick(grid.nearest(entry * (1 + up)), grid.nearest(entry * (1 + up)))
        sh = short_book.on_tick(grid.nearest(entry * (1 - up)), grid.nearest(entry * (1 - up)))
        assert [(h.kind, h.rule, h.volume) for h in lh] == [(h.kind, h.rule, h.volume) for h in sh]
        for a, b in zip(lh, sh, strict=True):
            assert grid.on(a.price) and grid.on(b.price)
            if a.rule.startswith("exit_levels") and a.kind == "set_stop_loss":  # entry * (1 +- sl_adjustment), rounded toward profit
                assert a.price == grid.up(entry * (1 + 0.002 if a.rule.endswith("0") else 1 + 0.003))
                assert b.price == grid.down(entry * (1 - 0.002 if b.rule.endswith("0") else 1 - 0.003))
            if a.rule == "trailing":  # best * (1 -+ d), each rounded toward its side's profit
                assert a.price == grid.up(long_book.state("L").best * 0.998)
                assert b.price == grid.down(short_book.state("S").best * 1.002)
    assert long_book.n == short_book.n == 0


def test_reload_keeps_position_state_and_applies_new_parameters() -> None:
    rules = load_config(str(ROOT))
    prm = compile_params(rules.strategies)
    book = SymbolBook("EURUSD", prm)
    book.add("p1", "arbitrage", +1, 1.0, 1.0, 0.995, 1.01)  # on the five-digit grid already
    book.on_tick(1.0051, 1.0052)  # level 0 taken, armed
    before = book.state("p1")
    wider = {**prm, "arbitrage": StrategyParams(**{**prm["arbitrage"].__dict__, "trail_distance": 0.004})}
    book.reload(wider)
    after = book.state("p1")
    assert (after.taken, after.armed, after.best, after.stop, after.volume) == (
        before.taken, before.armed, before.best, before.stop, before.volume)
    # a wider trail at +0.7 % would loosen the stop (1.007 * 0.996 < 1.0051 * 0.998): it stays
    assert [h for h in book.on_tick(1.0070, 1.0071) if h.rule == "trailing"] == []
    hits = book.on_tick(1.0090, 1.0091)
    trail = [h for h in hits if h.rule == "trailing"]
    assert trail and trail[0].price == 1.00497 and trail[0].previous == 1.00309  # 1.0090 * 0.996 = 1.004964; 1.0051 * 0.998 = 1.0030898


def test_levels_and_trailing_fire_at_exactly_their_threshold() -> None:
    # 0.5 and 1.5 are exact in binary: profit (1.5 - 1.0) / 1.0 is exactly 0.5
    base = compile_params(load_config(str(ROOT)).strategies)["arbitrage"]
    exact = StrategyParams(**{**base.__dict__, "trail_activation": 0.5, "level_trigger": (0.5,), "level_pct": (0.5,),
                              "level_sl": (math.nan,), "level_all": (False,), "level_keys": ("profit_target:0.5",),
                              "trail_distance": 0.25, "trail_max": math.inf})
    book = SymbolBook("X", {"arbitrage": exact})
    book.add("p", "arbitrage", +1, 1.0, 2.0, 0.5, 3.0)
    hits = book.on_tick(1.5, 1.5)
    assert [(h.kind, h.rule) for h in hits] == [("close_partial", "exit_levels.0"), ("set_stop_loss", "trailing")]
    assert hits[1].price == 1.5 * 0.75


def test_each_named_column_is_its_row_of_the_matrices_even_after_the_book_grows() -> None:
    book = SymbolBook("X", compile_params(load_config(str(ROOT)).strategies), capacity=2)
    for i in range(5):  # past the capacity, twice: the matrices are reallocated and the names bound again
        book.add(f"p{i}", "arbitrage", +1, 1.0 + i, 1.0, 0.99, 1.01, ts=i)
    for matrix, names in ((book.F, book._FLOATS), (book.I, book._INTS), (book.B, book._BOOLS)):
        for r, name in enumerate(names):
            column = getattr(book, name)
            assert column.base is matrix and column.shape == matrix[r].shape and np.shares_memory(column, matrix[r]), name
    assert book.entry[:5].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0] and book.opened[:5].tolist() == [0, 1, 2, 3, 4]
