"""Strategy capital binds positions: capital shares, utilization, risk against capital, sizing, exposure caps,
bands, the weekly target and rebalancing that moves capital (engine.rules.allocation, capital_checks).

The shipped rules give an equity of 100 000 USD; arbitrage's target is 0.25 (capital 25 000 USD), its
stop default 0.5 %; one lot of EURUSD is 100 000 EUR.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import PositionOpened, Tick
from engine.rules import allocation, state
from engine.rules.evaluator import Engine
from tests.conftest import edit

T = 1_549_238_400_000  # Monday 2019-02-04 00:00 UTC
MIN = 60_000


def engine_at(config: Path, bid: float = 1.1000, ask: float = 1.1000) -> Engine:
    engine = Engine(load_config(str(config)), broker=PaperBroker())
    engine.process(Tick(T, "EURUSD", bid, ask))
    return engine


def buy(pid: str, volume: float, strategy: str = "arbitrage", price: float = 1.1000, stop: float | None = None,
        ts: int = T + 1, symbol: str = "EURUSD") -> PositionOpened:
    return PositionOpened(ts, pid, symbol, strategy, strategy, 1, volume, price, stop, None)


SHIPPED_UTILIZATION = "utilization: {basis: notional, max: 1.4, on_breach: reject}"


def utilization(config: Path, on_breach: str = "reject", basis: str = "notional", max_: float = 1.4) -> None:
    edit(config / "rules" / "allocation.yaml", SHIPPED_UTILIZATION,
         f"utilization: {{basis: {basis}, max: {max_}, on_breach: {on_breach}}}")


def types(actions: list) -> list[str]:
    return [a.type for a in actions]


def test_three_arbitrage_longs_fit_its_capital_and_a_fourth_is_rejected(config_copy: Path):
    utilization(config_copy)
    engine = engine_at(config_copy)
    # 0.1 lot at 1.1000 is 11 000 USD of notional; arbitrage's capital 25 000 x 1.4 = 35 000 USD
    for i in range(3):
        assert "reject_position" not in types(engine.process(buy(f"a{i}", 0.1)))
    fig = allocation.figures(engine)["arbitrage"]
    assert fig["capital"] == pytest.approx(25_000) and fig["exposure"] == pytest.approx(33_000)
    assert fig["utilization"] == pytest.approx(1.32)
    out = engine.process(buy("a3", 0.1))
    assert types(out) == ["reject_position"]
    assert "notional exposure of arbitrage would be 44,000.00, 176.00% of its capital 25,000.00 (utilization max 1.4)" \
        in out[0].params["reasons"]


def test_the_fourth_long_is_resized_to_one_hundredth_of_a_lot_when_the_file_says_resize(config_copy: Path):
    utilization(config_copy, on_breach="resize")
    engine = engine_at(config_copy)
    for i in range(3):
        engine.process(buy(f"a{i}", 0.1))
    out = engine.process(buy("a3", 0.1))
    # room: 35 000 - 33 000 = 2 000 USD = 0.018 lot, down to the lot step: 0.01
    resize = [a for a in out if a.type == "close_partial"]
    assert len(resize) == 1 and resize[0].rule == "utilization" and resize[0].params["volume"] == pytest.approx(0.09)
    assert engine.book.positions["a3"].volume == pytest.approx(0.01)
    assert allocation.figures(engine)["arbitrage"]["utilization"] <= 1.4


def test_a_strategy_with_no_position_shows_utilization_zero_and_its_capital_share(config_copy: Path):
    engine = engine_at(config_copy)
    engine.process(buy("a0", 0.1))
    figs = allocation.figures(engine)
    assert figs["htf"]["utilization"] == 0.0 and figs["htf"]["capital_share"] == pytest.approx(0.15)
    assert figs["arbitrage"]["utilization"] == pytest.approx(11_000 / 25_000)
    assert sum(f["capital_share"] for f in figs.values()) == pytest.approx(1.0)


def test_open_risk_is_measured_against_the_strategy_capital_not_the_equity(config_copy: Path):
    engine = engine_at(config_copy)
    # arbitrage may risk 0.15 x 25 000 = 3 750 USD; 0.5 lot with a stop 0.0800 away risks 4 000 USD (4 % of equity)
    out = engine.process(buy("r1", 0.5, stop=1.0200))
    assert types(out) == ["reject_position"]
    assert any("open risk of arbitrage would be 4,000.00, 16.00% of its capital 25,000.00" in r for r in out[0].params["reasons"])


def test_open_risk_past_the_allocation_is_resized_down_to_the_lot_step_when_the_file_says_resize(config_copy: Path):
    edit(config_copy / "rules" / "limits.yaml", "  risk_allocation: 0.15\n", "  risk_allocation: 0.15\n  on_breach: resize\n")
    engine = engine_at(config_copy)
    out = engine.process(buy("r1", 0.13, stop=0.8000))  # 3 900 USD at risk, 14 300 USD of notional (within 15 %)
    # 3 750 USD at 30 000 USD a lot: 0.125 lot, down to 0.12
    assert engine.book.positions["r1"].is_open and engine.book.positions["r1"].volume == pytest.approx(0.12)
    assert [a.rule for a in out if a.type == "close_partial"] == ["risk_allocation"]


def test_a_proposal_without_a_volume_is_sized_from_its_stop_and_the_strategy_capital(config_copy: Path):
    edit(config_copy / "strategies" / "arbitrage.yaml", "max_positions: 5", "max_positions: 5\nsizing: {risk_per_trade: 0.005}")
    engine = engine_at(config_copy)
    out = engine.process(buy("s1", math.nan, stop=1.0900))
    # 0.5 % of 25 000 = 125 USD over a stop 0.0100 away (1 000 USD a lot): 0.125 lot, down to the lot step
    sized = [a for a in out if a.type == "size_position"]
    assert len(sized) == 1 and sized[0].params["volume"] == pytest.approx(0.12) and sized[0].params["sized_by"] == "risk_per_trade"
    assert "125.00 at risk" in sized[0].params["how"] and sized[0].params["limited_by"] is None
    assert engine.book.positions["s1"].volume == pytest.approx(0.12)
    assert engine.open_risk("arbitrage") <= 0.005 * 25_000 + 1e-6
    # a tighter stop would size 0.25 lot; max_position_size (15 % of equity: 0.136 lot) caps it at 0.13
    capped = [a for a in engine.process(buy("s2", math.nan, stop=1.0950)) if a.type == "size_position"]
    assert capped[0].params["volume"] == pytest.approx(0.13) and capped[0].params["limited_by"] == "max_position_size"


def test_a_proposal_without_a_volume_of_a_strategy_without_sizing_is_rejected_with_a_reason(config_copy: Path):
    engine = engine_at(config_copy)
    out = engine.process(buy("s1", math.nan, stop=1.0950))
    assert types(out) == ["reject_position"]
    assert "no volume, and strategy arbitrage has no sizing" in out[0].reason


def test_a_net_currency_cap_rejects_and_a_hedge_passes(config_copy: Path):
    with (config_copy / "rules" / "limits.yaml").open("a") as f:
        f.write("exposure:\n  currencies: {USD: {net: 0.4}}\n  groups: {majors: {symbols: [EURUSD, GBPUSD], gross: 0.6}}\n")
    engine = engine_at(config_copy)
    engine.process(Tick(T, "GBPUSD", 1.3000, 1.3000))
    # a long EURUSD is short USD: 0.1 lot is -11 000 USD; a net cap of 40 000 USD holds three and refuses a fourth
    for i, strategy in enumerate(["arbitrage", "trend_following", "htf"]):
        assert "reject_position" not in types(engine.process(buy(f"e{i}", 0.1, strategy=strategy)))
    out = engine.process(buy("e3", 0.1, strategy="market_making"))
    assert types(out) == ["reject_position"] and "net USD exposure would be 44,000.00, 44.00% of equity (cap 0.4)" in out[0].reason
    # a short GBPUSD is long USD: it brings the net toward zero, and the group's gross (33 000 + 13 000) is within 60 000
    short = PositionOpened(T + 2, "g1", "GBPUSD", "market_making", "mm", -1, 0.1, 1.3000, None, None)
    assert "reject_position" not in types(engine.process(short))


def large_positions(config: Path) -> None:
    """Positions far larger than the shipped limits allow, for the tests of what large PnL does."""
    edit(config / "rules" / "limits.yaml", "  max: 0.15                      # notional", "  max: 2.0  # notional")
    utilization(config, max_=100)


def test_a_capital_share_leaving_its_band_alerts_once_with_the_numbers(config_copy: Path):
    large_positions(config_copy)
    engine = engine_at(config_copy)
    engine.process(buy("b1", 1.0, strategy="htf", stop=1.0900))
    # htf (capital 15 000, band max 0.25) makes 0.15 x 100 000 = 15 000 USD at 1.2500: 30 000 / 115 000 = 26.1 % > 25 %
    out = engine.process(Tick(T + MIN, "EURUSD", 1.2500, 1.2500))
    alerts = [a for a in out if a.rule == "allocation_band"]
    assert len(alerts) == 1 and alerts[0].strategy == "htf" and alerts[0].params["capital_share"] == pytest.approx(30_000 / 115_000)
    assert "above its max 25.00%" in alerts[0].reason
    again = engine.process(Tick(T + 2 * MIN, "EURUSD", 1.2600, 1.2600))
    assert not [a for a in again if a.rule == "allocation_band"]


def test_a_rebalance_moves_capital_the_shares_sum_to_one_and_a_restart_keeps_them(config_copy: Path):
    engine = engine_at(config_copy)
    engine.process(buy("b1", 0.1, strategy="htf", stop=1.0900))
    engine.process(Tick(T + MIN, "EURUSD", 1.1100, 1.1100))  # htf made 100 USD
    shares = {"arbitrage": 0.30, "htf": 0.10, "market_making": 0.15, "news_driven": 0.15, "statistical_arbitrage": 0.10,
              "trend_following": 0.20}
    allocation.rebalance(engine, shares, T + MIN)
    figs = allocation.figures(engine)
    assert {n: f["capital_share"] for n, f in figs.items()} == pytest.approx(shares)
    assert figs["arbitrage"]["capital"] == pytest.approx(0.30 * 100_100)
    engine.process(Tick(T + 2 * MIN, "EURUSD", 1.1200, 1.1200))  # htf makes 100 more, on its new capital
    assert allocation.capital(engine, "htf") == pytest.approx(0.10 * 100_100 + 100)
    assert sum(allocation.capital(engine, n) for n in shares) == pytest.approx(engine.equity)
    restored = Engine(engine.rules, broker=PaperBroker())
    state.restore(restored, state.loads(state.dumps(state.record(engine))))
    before, after = allocation.figures(engine), allocation.figures(restored)
    assert {n: pytest.approx(f) for n, f in before.items()} == after


def test_the_weekly_target_alerts_once_reached_and_halts_when_the_file_says_so(config_copy: Path):
    edit(config_copy / "rules" / "profit.yaml", "weekly_growth_target: 0.20", "weekly_growth_target: 0.02")
    edit(config_copy / "rules" / "profit.yaml", "on_reached: {alert: true, scale_risk_per_trade: 1.0, halt_new_positions: false}",
         "on_reached: {alert: true, halt_new_positions: true, scale_risk_per_trade: 0.5}")
    large_positions(config_copy)
    engine = engine_at(config_copy)
    engine.process(buy("w1", 1.0, strategy="htf", stop=1.0900))
    out = engine.process(Tick(T + MIN, "EURUSD", 1.1210, 1.1210))  # +2 100 USD on 100 000: 2.1 % >= 2 %
    alerts = [a for a in out if a.rule == "weekly_target"]
    assert len(alerts) == 1 and alerts[0].params["return"] == pytest.approx(0.021)
    week = allocation.week(engine)
    assert week["reached"] and week["progress"] == pytest.approx(1.05) and week["halted"] and week["risk_scale"] == 0.5
    rejected = engine.process(buy("w2", 0.01, ts=T + MIN + 1, price=1.1210))
    assert types(rejected) == ["reject_position"] and "weekly growth target is reached" in rejected[0].reason
    assert not [a for a in engine.process(Tick(T + 2 * MIN, "EURUSD", 1.1300, 1.1300)) if a.rule == "weekly_target"]
