"""`riskrail replay` and the evaluator end to end: section 4 through the CLI, determinism, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import PositionOpened, Tick, parse_event
from engine.rules.evaluator import Engine
from tests.conftest import DATA, ROOT

TICKS = ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"
DEMO = ROOT / "examples" / "replay" / "positions.jsonl"


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", "replay", *args], capture_output=True, text=True, timeout=600)


def actions(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_arbitrage_long_gets_the_actions_section_4_predicts() -> None:
    got = actions(replay("--events", str(DATA / "replay" / "arbitrage_long.jsonl"), "--config", str(ROOT)))
    summary = [(a["type"], a["rule"]) for a in got if a["type"] != "lock_profit"]
    assert summary == [
        ("set_stop_loss", "defaults"), ("set_take_profit", "defaults"),          # accepted: default SL 0.5 %, TP 1 %
        ("close_partial", "exit_levels.0"), ("set_stop_loss", "exit_levels.0"),  # +0.5 %: 25 %, stop to entry + 0.2 %
        ("set_stop_loss", "trailing"),                                           # trailing arms at +0.5 %
        ("close_partial", "exit_levels.1"), ("set_stop_loss", "exit_levels.1"),  # +0.8 %: 25 %, stop to entry + 0.3 %
        ("set_stop_loss", "trailing"),
        ("close", "trailing_stop"),                                              # 1.0910 < 1.0937 * 0.998
    ]
    by = {(a["type"], a["rule"]): a for a in got}
    assert got[0]["params"]["stop_loss"] == 1.07958  # entry * 0.995 = 1.079575, a long's stop rounded up to the tick
    assert got[1]["params"]["take_profit"] == 1.09585  # entry * 1.01, on the grid
    # 25 % of 0.1 lot is 0.025: on the 0.01 lot step the first level closes 0.02 and carries 0.005, the second 0.03
    assert by[("close_partial", "exit_levels.0")]["params"] == {"volume": 0.02, "fraction": 0.2, "price": 1.09043, "level": 0}
    assert by[("close_partial", "exit_levels.1")]["params"]["volume"] == 0.03
    assert by[("set_stop_loss", "exit_levels.0")]["params"]["stop_loss"] == 1.08717  # entry * 1.002
    assert by[("close", "trailing_stop")]["params"] == {"price": 1.0910, "volume": 0.05, "reason": "trailing_stop"}
    assert all(set(a) == {"id", "ts", "type", "position_id", "strategy", "params", "rule", "rules_version", "reason"} for a in got)
    assert {a["rules_version"] for a in got} == {load_config(str(ROOT)).version}


def test_replaying_the_same_events_twice_gives_byte_identical_output(tmp_path: Path) -> None:
    args = ("--events", str(DEMO), "--ticks", str(TICKS), "--config", str(ROOT / "examples" / "scalping"))
    one, two = replay(*args, "--summary", str(tmp_path / "s1.json")), replay(*args, "--summary", str(tmp_path / "s2.json"))
    assert one.returncode == 0, one.stderr
    assert one.stdout == two.stdout and one.stdout.count("\n") > 20
    assert (tmp_path / "s1.json").read_bytes() == (tmp_path / "s2.json").read_bytes()
    ids = [json.loads(line)["id"] for line in one.stdout.splitlines()]
    assert len(ids) == len(set(ids))


def test_demo_replay_on_real_eurusd_ticks_exercises_every_rule(tmp_path: Path) -> None:
    got = actions(replay("--events", str(DEMO), "--ticks", str(TICKS), "--config", str(ROOT / "examples" / "scalping"),
                         "--summary", str(tmp_path / "summary.json")))
    rules = {a["rule"] for a in got}
    assert {"stop_loss", "trailing_stop", "exit_levels.0", "exit_levels.1", "trailing", "custom:cut-stale-losers", "pre_trade"} <= rules
    rejected = {a["position_id"]: a["params"]["reasons"] for a in got if a["type"] == "reject_position"}
    assert rejected["X1"] == ["unknown strategy 'swing'"]
    assert "exceeds max_position_size" in rejected["BIG"][0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"portfolio", "strategies", "positions"}
    metrics = {"sharpe", "sortino", "max_drawdown", "win_rate", "profit_factor", "avg_holding_s", "median_holding_s", "time_in_profit"}
    assert metrics <= set(summary["portfolio"])
    assert summary["portfolio"]["ticks"] == 3733 and summary["portfolio"]["rejected"] == 2
    realized = sum(p["realized_pnl"] for p in summary["positions"].values())
    assert summary["portfolio"]["realized_pnl"] == pytest.approx(realized)


def test_malformed_lines_are_reported_with_their_line_and_skipped(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = (DATA / "replay" / "arbitrage_long.jsonl").read_text().splitlines()
    lines.insert(2, '{"type": "tick", "ts": "2024-03-04T10:00:00.700Z", "symbol": "EURUSD", "bid": NaN, "ask": 1.1}')
    lines.insert(3, "not json at all")
    lines.insert(4, '{"type": "tick", "ts": "2024-03-04T10:00:00.800Z", "symbol": "GBPJPY", "bid": 190.1, "ask": 190.2}')
    events.write_text("\n".join(lines) + "\n")
    proc = replay("--events", str(events), "--config", str(ROOT), "--summary", str(tmp_path / "s.json"))
    assert proc.returncode == 0, proc.stderr
    assert f"{events}:3: skipped: bid: expected a finite number, found NaN" in proc.stderr
    assert f"{events}:4: skipped: invalid JSON" in proc.stderr
    assert "unknown symbol 'GBPJPY'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert json.loads((tmp_path / "s.json").read_text())["portfolio"]["rejects"] == 2
    got = [(a["type"], a["rule"]) for a in map(json.loads, proc.stdout.splitlines()) if a["type"] != "lock_profit"]
    assert got[-1] == ("close", "trailing_stop")  # the good lines around the bad ones still replay in full


def test_daily_loss_breach_halts_and_rejects_the_next_proposal_through_durable_rules() -> None:
    rules = load_config(str(ROOT))
    engine = Engine(rules, equity0=10_000.0, broker=PaperBroker())
    ts = 1_700_000_000_000
    engine.process(Tick(ts, "EURUSD", 1.0849, 1.0850))
    # small positions: 0.01 lot is 1 085 notional, within 15 % of a 10 000 equity
    out = engine.process(PositionOpened(ts + 1, "p1", "EURUSD", "trend_following", "tf-1", 1, 0.01, 1.0850, None, None))
    assert [a.type for a in out] == ["set_stop_loss", "set_take_profit"]
    out = engine.process(PositionOpened(ts + 2, "p2", "EURUSD", "market_making", "mm-1", 1, 0.01, 1.0850, 0.9, 1.3))
    assert [a.type for a in out] == []  # explicit SL/TP: nothing to set
    out = engine.process(Tick(ts + 3, "EURUSD", 0.93, 0.9301))  # a crash: -310 on 10 000 equity is -3.1 % < -2 %
    types = [a.type for a in out]
    assert "halt_new_positions" in types and "close_all" in types and "alert" in types
    halt = next(a for a in out if a.type == "halt_new_positions")
    assert halt.rule == "daily_loss"
    out = engine.process(PositionOpened(ts + 4, "p3", "EURUSD", "arbitrage", "arb-1", 1, 0.01, 0.9301, None, None))
    assert [a.type for a in out] == ["reject_position"]
    assert "daily loss" in out[0].reason
    assert engine.summary()["portfolio"]["breaches"] == 1


def test_a_custom_rule_added_to_the_files_takes_effect_without_code_changes(config_copy: Path) -> None:
    (config_copy / "rules" / "custom.yaml").write_text(
        "rules:\n"
        "  - name: warn-deep-loser\n"
        "    when: position.profit <= -0.001 and position.strategy_type == 'arbitrage'\n"
        "    then:\n"
        "      - alert: {message: arbitrage position down 0.1 %, level: warning}\n")
    engine = Engine(load_config(str(config_copy)), broker=PaperBroker())
    ts = 1_700_000_000_000
    engine.process(Tick(ts, "EURUSD", 1.0849, 1.0850))
    engine.process(PositionOpened(ts + 1, "p1", "EURUSD", "arbitrage", "arb-1", 1, 0.1, 1.0850, None, None))
    assert engine.process(Tick(ts + 2, "EURUSD", 1.0845, 1.0846)) == []
    out = engine.process(Tick(ts + 3, "EURUSD", 1.0838, 1.0839))   # -0.11 %
    assert [(a.type, a.rule, a.params["message"]) for a in out] == [("alert", "custom:warn-deep-loser", "arbitrage position down 0.1 %")]
    assert engine.process(Tick(ts + 4, "EURUSD", 1.0837, 1.0838)) == []  # fires once per position


def test_parse_event_accepts_iso_and_epoch_times_and_refuses_bad_fields() -> None:
    a = parse_event({"type": "tick", "ts": "2019-02-04T00:00:00.994Z", "symbol": "EURUSD", "price": 1.1})
    b = parse_event({"type": "tick", "ts": 1549238400994, "symbol": "EURUSD", "bid": 1.1, "ask": 1.1})
    assert a == b
    for bad, message in [({"type": "tick", "ts": 1549238400994, "symbol": "X", "bid": 2, "ask": 1}, "below bid"),
                         ({"type": "position_opened", "ts": 1549238400994, "position_id": "p", "symbol": "X", "strategy_type": "s",
                           "action": "HOLD", "volume": 1, "entry_price": 1}, "BUY or SELL"),
                         ({"type": "order", "ts": 1549238400994}, "position_closed, fill, clock or broker_alert"),
                         ({"type": "tick", "symbol": "X", "price": 1}, "ts: missing")]:
        with pytest.raises(Exception, match=message):
            parse_event(bad)
