"""Proposal checks of issue 13: the side of stop and target, the entry against the quote, the quote's
age, the volume on the lot step and within its bounds; resizes on the lot step and levels on the tick
grid. Every failed check is reported in one rejection."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import PositionOpened, Tick
from engine.rules import checks
from engine.rules.capital_checks import Capacity
from engine.rules.checks import PreTrade, check_proposal, default_levels
from engine.rules.evaluator import Engine
from tests.conftest import ROOT, edit

TS = 1_709_546_400_000  # 2024-03-04 10:00 UTC, a Monday
BID, ASK = 1.1456, 1.1457  # EURUSD in the issue


def quotes_of(engine: Engine) -> dict[str, tuple[int, float, float]]:
    """The last quote of each symbol as the checks take it: (ts, bid, ask)."""
    return {s: (k.last_ts, k.bid, k.ask) for s, k in engine.kernels.items() if k.last_ts is not None}


def engine(config: Path = ROOT, equity: float = 100_000.0, bid: float = BID, ask: float = ASK) -> Engine:
    e = Engine(load_config(str(config)), equity0=equity, broker=PaperBroker())
    e.process(Tick(TS, "EURUSD", bid, ask))
    return e


def proposal(side: int = 1, entry: float = ASK, volume: float = 0.01, stop: float | None = None, tp: float | None = None,
             pid: str = "p1", ts: int = TS + 500, symbol: str = "EURUSD", strategy: str = "arbitrage") -> PositionOpened:
    return PositionOpened(ts, pid, symbol, strategy, "s-1", side, volume, entry, stop, tp)


def check(e: Engine, p: PositionOpened) -> PreTrade:
    return check_proposal(p, e.rules, e.converter, e.book, e.bars, e.equity, quotes_of(e), Capacity(e))


# --- issue 13, case 3: take profit on the losing side, a price far from the market -------------------

def test_a_sell_priced_far_from_the_market_is_rejected_and_books_no_profit() -> None:
    e = engine()
    [reject] = e.process(proposal(side=-1, entry=1.30))
    assert reject.type == "reject_position"
    assert reject.params["reasons"] == ["entry 1.3 is 13.48% from the bid 1.1456 (max_entry_deviation 0.5%)"]
    assert e.process(Tick(TS + 1_000, "EURUSD", BID, ASK)) == []
    assert e.book.positions["p1"].status.value == "rejected" and e.book.realized() == 0 and e.unrealized() == 0


def test_a_long_with_its_target_below_the_entry_is_rejected_and_never_closes_as_take_profit() -> None:
    e = engine()
    [reject] = e.process(proposal(entry=ASK, tp=1.14))
    assert reject.type == "reject_position"
    assert reject.params["reasons"] == ["take_profit 1.14 is on the losing side of the entry 1.1457 for a BUY"]
    assert e.process(Tick(TS + 1_000, "EURUSD", BID, ASK)) == []


def test_a_short_with_its_target_above_the_entry_is_rejected() -> None:
    assert check(engine(), proposal(side=-1, entry=BID, tp=1.15)).reasons == [
        "take_profit 1.15 is on the losing side of the entry 1.1456 for a SELL"]


def test_a_target_at_the_entry_is_on_the_losing_side() -> None:
    assert [f.check for f in check(engine(), proposal(entry=ASK, tp=ASK)).failed] == ["take_profit_side"]


# --- issue 13, case 2: a resize lands on the lot step, under the limit ------------------------------

def resize_config(config: Path) -> Path:
    edit(config / "rules" / "limits.yaml", "on_breach: reject              # or resize", "on_breach: resize")
    return config


def test_a_resize_rounds_down_to_the_lot_step(config_copy: Path) -> None:
    # 0.5 lots at 1.1000 is 55 % of 100 000; 15 % allows 0.136364 lots, and the broker's step 0.01 gives 0.13
    e = engine(resize_config(config_copy), bid=1.0999, ask=1.1000)
    out = e.process(proposal(entry=1.1000, volume=0.5))
    [resize] = [a for a in out if a.type == "close_partial"]
    assert resize.params["volume"] == 0.37 and resize.reason.startswith("resized from 0.5 to 0.13 lots")
    assert e.book.positions["p1"].volume == 0.13 and e.kernels["EURUSD"].state("p1").volume == 0.13
    assert 0.13 * 100_000 * 1.1 / 100_000 <= 0.15


def test_the_resized_volume_prints_as_a_clean_decimal_in_the_replayed_json(config_copy: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(x) for x in [
        {"type": "tick", "ts": TS, "symbol": "EURUSD", "bid": 1.0999, "ask": 1.1000},
        {"type": "position_opened", "ts": TS + 500, "position_id": "p1", "symbol": "EURUSD", "strategy_type": "arbitrage",
         "strategy_name": "arb-1", "action": "BUY", "volume": 0.5, "entry_price": 1.1000},
    ]) + "\n")
    proc = subprocess.run([sys.executable, "-m", "engine", "replay", "--events", str(events), "--config",
                           str(resize_config(config_copy))], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    [line] = [x for x in proc.stdout.splitlines() if '"close_partial"' in x]
    assert re.search(r'"volume": ?0\.37[,}]', line) and "to 0.13 lots" in line and json.loads(line)["params"]["volume"] == 0.37
    assert not re.search(r"\d\.\d*(0000|9999)\d", proc.stdout)  # no float noise in any number


def test_a_resize_below_volume_min_is_rejected(config_copy: Path) -> None:
    # equity 1 000: 15 % allows 0.00136 lots, nothing on a 0.01 step
    e = engine(resize_config(config_copy), equity=1_000.0, bid=1.0999, ask=1.1000)
    result = check(e, proposal(entry=1.1000, volume=0.5))
    assert [f.check for f in result.failed] == ["max_position_size", "risk_allocation", "utilization"] and result.resized_from is None
    assert result.reasons[0] == ("position size 5,500% of equity exceeds max_position_size 15%, and the largest volume "
                                 "within it, 0.001364 lots, is below the volume_min 0.01")


# --- every check in one rejection -------------------------------------------------------------------

def test_a_proposal_failing_four_checks_reports_four_reasons() -> None:
    e = engine()
    [reject] = e.process(proposal(entry=1.30, volume=0.015, stop=1.35, tp=1.2))
    assert reject.type == "reject_position" and reject.params["reasons"] == [
        "entry 1.3 is 13.47% from the ask 1.1457 (max_entry_deviation 0.5%)",
        "stop_loss 1.35 is on the wrong side of the entry 1.3 for a BUY",
        "take_profit 1.2 is on the losing side of the entry 1.3 for a BUY",
        "volume 0.015 is not a multiple of the volume step 0.01 of EURUSD",
    ]


def test_an_unknown_strategy_and_a_bad_volume_are_reported_together() -> None:
    result = check(engine(), proposal(strategy="nope", volume=0.015))
    assert [f.check for f in result.failed] == ["strategy", "volume_step"]


# --- the entry against the quote --------------------------------------------------------------------

def test_an_entry_within_max_entry_deviation_passes_and_opens_as_proposed() -> None:
    result = check(engine(), proposal(entry=ASK * 1.004))
    assert result.passed and result.entry_price != result.entry_price  # nan: as proposed


def test_reprice_opens_at_the_quote_with_defaults_from_it(config_copy: Path) -> None:
    edit(config_copy / "rules" / "limits.yaml", "on_breach: reject              # or reprice:", "on_breach: reprice             #")
    e = engine(config_copy)
    out = e.process(proposal(entry=1.2))
    assert [a.type for a in out] == ["set_stop_loss", "set_take_profit"]
    assert e.book.positions["p1"].entry == ASK and e.kernels["EURUSD"].state("p1").entry == ASK
    # arbitrage: stop 0.5 %, target 1 % of the ask 1.1457, rounded toward profit (a long's up)
    assert out[0].params["stop_loss"] == 1.13998 and out[1].params["take_profit"] == 1.15716
    short = check(e, proposal(side=-1, entry=1.0, pid="p2"))
    assert short.passed and short.entry_price == BID and short.stop_loss == 1.15132  # 1.1456 * 1.005 = 1.151328, down


def test_a_stale_quote_is_rejected() -> None:
    result = check(engine(), proposal(ts=TS + 75_000))
    assert result.reasons == ["no EURUSD quote for 75 s (max_quote_age 60 s)"]
    assert check(engine(), proposal(ts=TS + 60_000)).passed  # at the limit is within it


def test_a_symbol_never_quoted_is_rejected() -> None:
    result = check(engine(), proposal(symbol="GBPUSD", entry=1.27))
    assert result.reasons == ["no GBPUSD quote yet (max_quote_age 60 s)"]


def test_without_max_quote_age_an_unquoted_symbol_fails_the_deviation_check(config_copy: Path) -> None:
    edit(config_copy / "rules" / "limits.yaml", "max_quote_age: 60s", "max_quote_age: null")
    e = engine(config_copy)
    assert check(e, proposal(ts=TS + 3_600_000)).passed  # an hour-old quote: no limit
    assert check(e, proposal(symbol="GBPUSD", entry=1.27)).reasons == [
        "no GBPUSD quote to check the entry 1.27 against (max_entry_deviation 0.5%)"]
    edit(config_copy / "rules" / "limits.yaml", "  max: 0.005                     # |entry - quote| / quote\n", "")
    edit(config_copy / "rules" / "limits.yaml", "  on_breach: reject              # or reprice:", "#")
    edit(config_copy / "rules" / "limits.yaml", "max_entry_deviation:  ", "max_entry_deviation: null  ")
    e = engine(config_copy)
    assert check(e, proposal(symbol="GBPUSD", entry=1.27)).passed and check(e, proposal(entry=1.30)).passed


def test_without_quotes_the_quote_checks_are_skipped() -> None:
    e = engine()
    assert check_proposal(proposal(entry=1.30), e.rules, e.converter, e.book, e.bars, e.equity, None, Capacity(e)).passed


# --- volumes ----------------------------------------------------------------------------------------

def test_a_volume_off_the_lot_step_is_rejected() -> None:
    assert check(engine(), proposal(volume=0.015)).reasons == [
        "volume 0.015 is not a multiple of the volume step 0.01 of EURUSD"]


def test_a_volume_below_volume_min_or_above_volume_max_is_rejected(config_copy: Path) -> None:
    edit(config_copy / "rules" / "instruments.yaml", "pip_size: 0.0001, digits: 5}\n  GBPUSD",
         "pip_size: 0.0001, digits: 5, volume_min: 0.05, volume_max: 2}\n  GBPUSD")
    e = engine(config_copy, equity=10_000_000.0)
    assert check(e, proposal(volume=0.02)).reasons == ["volume 0.02 is below the volume_min 0.05 of EURUSD"]
    assert check(e, proposal(volume=2.5)).reasons == ["volume 2.5 is above the volume_max 2 of EURUSD"]
    assert check(e, proposal(volume=2.0)).passed and check(e, proposal(volume=0.05)).passed


def test_a_volume_on_the_step_opens_as_its_clean_decimal() -> None:
    result = check(engine(equity=1_000_000.0), proposal(volume=0.1 + 0.2))  # 0.30000000000000004
    assert result.passed and repr(result.volume) == "0.3"


# --- prices on the tick grid ------------------------------------------------------------------------

def test_default_levels_round_toward_profit_onto_the_tick_grid() -> None:
    e = engine(bid=1.10002, ask=1.10003)
    long = check(e, proposal(entry=1.10003))
    assert (long.stop_loss, long.take_profit) == (1.09453, 1.11104)  # 1.09452985 and 1.1110303, up
    short = check(e, proposal(side=-1, entry=1.10002))
    assert (short.stop_loss, short.take_profit) == (1.10552, 1.08901)  # 1.1055201 and 1.0890198, down


def test_a_proposals_own_levels_are_put_on_the_tick_grid() -> None:
    result = check(engine(bid=1.0999, ask=1.1000), proposal(entry=1.1000, stop=1.0945499999, tp=1.1100000001))
    assert result.passed and (result.stop_loss, result.take_profit) == (1.09455, 1.11001)


def test_default_levels_without_a_spec_are_returned_as_computed() -> None:
    e = engine()
    p = proposal(entry=1.10003)
    d = e.rules.strategies["arbitrage"].defaults
    assert default_levels(p, d) == (1.10003 * (1 - 0.005), 1.10003 * (1 + 0.01))
    assert default_levels(p, d, e.converter.spec("EURUSD")) == (1.09453, 1.11104)
    assert default_levels(p, d, e.converter.spec("EURUSD"), entry=ASK) == (1.13998, 1.15716)


def test_a_long_silence_is_told_in_a_unit_people_read() -> None:
    assert check(engine(), proposal(ts=TS + 3 * 86_400_000)).reasons == ["no EURUSD quote for 3 days (max_quote_age 60 s)"]
    assert [checks.seconds(ms) for ms in (1_500, 600_000, 12_600_000)] == ["1.5 s", "10 min", "3.5 h"]
