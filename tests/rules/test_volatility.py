"""Volatility on a horizon (engine/rules/volatility.py): ATR and standard deviation of returns over bars
built from the quotes, hand-computed on a few bars, equal to a from-scratch computation on long paths,
and what the dynamic SL/TP does with it (the floor, nothing before the window is full)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.rules.kernel import SymbolBook
from engine.rules.params import StrategyParams
from engine.rules.volatility import Horizon, Volatility
from tests.rules.reference import bar_volatility

T0 = 1_549_238_400_000  # a whole minute (2019-02-04 00:00 UTC)
MIN = 60_000
ATR_1M_3 = Horizon(MIN, 3, "atr")
STDEV_1M_3 = Horizon(MIN, 3, "stdev")

# mids (bid = ask) by minute; minute 3 and 4 have no quote, so bar 5's true range spans the gap
QUOTES = [(T0 + 1_000, 1.1000), (T0 + 20_000, 1.1004), (T0 + 40_000, 1.0998), (T0 + 59_999, 1.1002),  # bar 0: close 1.1002
          (T0 + MIN, 1.1003), (T0 + MIN + 10_000, 1.1010), (T0 + MIN + 50_000, 1.1006),  # bar 1: H 1.1010 L 1.1003 C 1.1006
          (T0 + 2 * MIN + 5, 1.1001), (T0 + 2 * MIN + 7, 1.0995),  # bar 2: H 1.1001 L 1.0995 C 1.0995
          (T0 + 5 * MIN, 1.1000), (T0 + 5 * MIN + 30_000, 1.1012)]  # bar 5: H 1.1012 L 1.1000 C 1.1012


def feed(vol: Volatility, quotes: list[tuple[int, float]]) -> None:
    for ts, mid in quotes:
        vol.update(mid, mid, ts)


def test_atr_over_three_one_minute_bars_is_the_mean_true_range_of_the_closed_bars() -> None:
    vol = Volatility((ATR_1M_3,))
    feed(vol, QUOTES)
    # bars 1, 2 closed (bar 0 gives the first previous close), bar 5 still forming: not ready
    assert vol.values() == {} and math.isnan(vol.arrays()[1][0])
    vol.update(1.1011, 1.1011, T0 + 6 * MIN)  # the first quote of minute 6 closes bar 5
    # true ranges: bar 1 max(1.1010, 1.1002) - min(1.1003, 1.1002) = 0.0008; bar 2 max(1.1001, 1.1006) -
    # min(1.0995, 1.1006) = 0.0011; bar 5 (after the gap) max(1.1012, 1.0995) - min(1.1000, 1.0995) = 0.0017
    assert vol.values()[ATR_1M_3.key] == pytest.approx((0.0008 + 0.0011 + 0.0017) / 3, abs=1e-12)
    vol.update(1.1030, 1.1030, T0 + 6 * MIN + 59_000)  # inside the forming bar: nothing moves
    assert vol.values()[ATR_1M_3.key] == pytest.approx(0.0012, abs=1e-12)
    vol.update(1.1011, 1.1011, T0 + 7 * MIN)  # bar 6 closes: H 1.1030 L 1.1011 vs close 1.1012: 0.0019; bar 1 leaves
    assert vol.values()[ATR_1M_3.key] == pytest.approx((0.0011 + 0.0017 + 0.0019) / 3, abs=1e-12)


def test_stdev_is_the_deviation_of_bar_to_bar_returns_times_the_current_mid() -> None:
    vol = Volatility((STDEV_1M_3,))
    feed(vol, QUOTES)
    assert vol.values() == {}
    vol.update(1.1011, 1.1011, T0 + 6 * MIN)
    returns = np.array([1.1006 / 1.1002, 1.0995 / 1.1006, 1.1012 / 1.0995]) - 1
    assert vol.values()[STDEV_1M_3.key] == pytest.approx(returns.std() * 1.1011, rel=1e-9)
    vol.update(1.1020, 1.1022, T0 + 6 * MIN + 1)  # same bar, the distance follows the mid
    assert vol.values()[STDEV_1M_3.key] == pytest.approx(returns.std() * 1.1021, rel=1e-9)


def test_tick_timeframe_is_the_former_volatility_of_tick_to_tick_returns() -> None:
    rng = np.random.default_rng(3)
    mids = 1.1 * np.cumprod(1 + rng.normal(0, 1e-4, 300))
    h = Horizon.of("stdev", "tick", 100)
    vol = Volatility((h,))
    for k, mid in enumerate(mids):
        vol.update(mid, mid, -1)  # no time needed
        if k == 99:
            assert vol.values() == {}  # 100 quotes give 99 returns
    r = mids[1:] / mids[:-1] - 1
    assert vol.values()[h.key] == pytest.approx(r[-100:].std() * mids[-1], rel=1e-9)


@pytest.mark.parametrize("horizon", [Horizon(0, 20, "atr"), Horizon(0, 50, "stdev"), Horizon(1_000, 30, "atr"),
                                     Horizon(5_000, 14, "stdev"), Horizon(MIN, 14, "atr")])
def test_rolling_values_equal_a_computation_from_scratch_across_resyncs(horizon: Horizon) -> None:
    rng = np.random.default_rng(11)
    n = 4_000
    ts = T0 + np.cumsum(rng.choice([0, 90, 400, 1_300, 7_000], n))
    mids = 1.1 * np.cumprod(1 + rng.normal(0, 5e-5, n))
    spreads = rng.choice([0.0, 1e-5, 3e-5], n)
    quotes = [(int(t), float(m), float(m + s)) for t, m, s in zip(ts, mids, spreads, strict=True)]
    vol = Volatility((horizon, Horizon(0, 3, "atr")))
    for k, (t, bid, ask) in enumerate(quotes):
        vol.update(bid, ask, t)
        if k % 397 == 0 or k == n - 1:
            want = bar_volatility(quotes[: k + 1], horizon)
            got = vol.values().get(horizon.key)
            assert (got is None) == (want is None), k
            if want is not None:
                assert got == pytest.approx(want, rel=1e-9), k


def test_each_horizon_is_its_own_key_within_an_int64() -> None:
    horizons = [Horizon.of(m, tf, w) for m in ("atr", "stdev") for tf in ("tick", "1s", "1m", "9999d") for w in (2, 14, 100_000)]
    assert len({h.key for h in horizons}) == len(horizons) and all(0 < h.key < 2**63 for h in horizons)
    assert Horizon.of("atr", "4h", 14).bar_ms == 4 * 3_600_000
    with pytest.raises(ValueError, match="measure"):
        Horizon.of("range", "1m", 14)


def test_including_a_horizon_keeps_the_state_of_the_others() -> None:
    vol = Volatility((ATR_1M_3,))
    feed(vol, [*QUOTES, (T0 + 6 * MIN, 1.1011)])
    wider = vol.including((STDEV_1M_3,))
    assert wider.horizons == (ATR_1M_3, STDEV_1M_3)
    assert wider.values() == {ATR_1M_3.key: vol.values()[ATR_1M_3.key]}  # the new one starts empty
    assert vol.including((ATR_1M_3,)) is vol


# --- the dynamic SL/TP on a horizon -----------------------------------------------------------------


def dynamic(floor: int) -> StrategyParams:
    """Dynamic SL/TP only: stop 3 x ATR(3 x 1m), target 6 x, at least ``floor`` ticks (target twice that)."""
    return StrategyParams(
        name="d", stop_loss=0.01, take_profit=0.02, trail_on=False, trail_distance=math.nan, trail_activation=0.0,
        trail_max=math.inf, trail_volatility=False, trail_k=1.0, trail_horizon=ATR_1M_3, level_is_r=False, level_trigger=(),
        level_pct=(), level_sl=(), level_all=(), level_keys=(), dyn_on=True, dyn_horizon=ATR_1M_3, dyn_stop_k=3.0,
        dyn_tp_k=6.0, dyn_only_tighten=True, dyn_floor=floor)


def run_book(floor: int, quotes: list[tuple[int, float]]) -> list[tuple[int, str, float]]:
    """(quote index, kind, level) of every dynamic move of a long opened at 1.1000 with a 1 % stop and 2 % target."""
    book = SymbolBook("EURUSD", {"d": dynamic(floor)})
    book.add("L", "d", +1, 1.1000, 0.1, 1.0890, 1.1220)
    vol = Volatility((ATR_1M_3,))
    out = []
    for k, (ts, mid) in enumerate(quotes):
        out += [(k, h.kind, h.price) for h in book.on_quote(mid, mid, vol, ts)]
    return out


def test_no_dynamic_move_before_window_plus_one_bars_closed_then_k_times_atr() -> None:
    moves = run_book(1, [*QUOTES, (T0 + 6 * MIN, 1.1011)])
    # nothing until the quote that closes bar 5, then 3 x 0.0012 and 6 x 0.0012 from the bid 1.1011
    assert moves == [(len(QUOTES), "set_stop_loss", 1.1011 - 0.0036), (len(QUOTES), "set_take_profit", 1.1011 + 0.0072)]


def test_the_floor_is_the_smallest_stop_distance_and_the_target_keeps_the_ratio() -> None:
    moves = run_book(500, [*QUOTES, (T0 + 6 * MIN, 1.1011)])
    # 3 x ATR = 0.0036 (360 ticks) < 500 ticks: the stop lies 500 ticks below the bid, the target 1 000 ticks above
    assert [(kind, round(price, 5)) for _, kind, price in moves] == [("set_stop_loss", 1.0961), ("set_take_profit", 1.1111)]
