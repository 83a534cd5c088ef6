"""`riskrail plan`: what a reload to the proposed rules changes for each position open at the end of the history.

The history opens L1 (scalp_trend, BUY 0.1 EURUSD at 1.1000: stop 1.089, target 1.133), takes its +1 %
exit level at 1.1115 (0.05 closed, stop to break-even 1.1) and ends at 1.1082 with L1 and R1
(scalp_revert, opened at 1.1081, no exit levels) still open.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.config import load_config
from engine.events import Event, parse_event
from engine.plan.positions import reload_effects
from engine.plan.report import render_text
from engine.plan.run import make_plan, replay_engine
from engine.rules.chaining import PortfolioRules
from engine.service.plan import plan as plan_route
from tests.conftest import ROOT, edit

T0 = 1549238400000  # 2019-02-04 00:00 UTC
LEVELS = ("  - {profit_target: 0.01, exit_percentage: 0.5, sl_adjustment: 0.0}\n"
          "  - {profit_target: 0.02, exit_percentage: 0.25}\n")
TREND = ("name: scalp_trend\nallocation: {target: 0.5, min: 0.3, max: 0.7}\ndefaults: {stop_loss: 0.01, take_profit: 0.03}\n"
         "trailing: {trailing_enabled: true, trailing_distance: 0.005, activation_threshold: 0.02}\nexit_levels:\n" + LEVELS)
REVERT = "name: scalp_revert\nallocation: {target: 0.5, min: 0.3, max: 0.7}\ndefaults: {stop_loss: 0.01, take_profit: 0.05}\n"


def _tick(ms: int, bid: float) -> dict[str, Any]:
    return {"type": "tick", "ts": T0 + ms, "symbol": "EURUSD", "bid": bid, "ask": round(bid + 0.0001, 5)}


def _open(ms: int, pid: str, strategy: str, entry: float) -> dict[str, Any]:
    return {"type": "position_opened", "ts": T0 + ms, "position_id": pid, "symbol": "EURUSD", "strategy_type": strategy,
            "strategy_name": f"{strategy}-1", "action": "BUY", "volume": 0.1, "entry_price": entry}


HISTORY = [_tick(0, 1.1), _open(1, "L1", "scalp_trend", 1.1), _tick(1000, 1.1115), _tick(2000, 1.108),
           _open(2001, "R1", "scalp_revert", 1.1081), _tick(3000, 1.1082)]
# the same, but the price runs to 1.125 first: both levels taken, the trail armed (activation 1.122) and
# moved to 1.125 * (1 - 0.005) = 1.119375, up on the grid: 1.11938
ARMED = [_tick(0, 1.1), _open(1, "L1", "scalp_trend", 1.1), _tick(1000, 1.125), _tick(2000, 1.1215)]


def config(folder: Path) -> Path:
    shutil.copytree(ROOT / "examples" / "scalping", folder)
    (folder / "strategies" / "scalp_trend.yaml").write_text(TREND)
    (folder / "strategies" / "scalp_revert.yaml").write_text(REVERT)
    return folder


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return config(tmp_path / "base")


@pytest.fixture
def proposed(tmp_path: Path) -> Path:
    return config(tmp_path / "proposed")


def events(rows: list[dict[str, Any]]) -> list[Event]:
    return [parse_event(r) for r in rows]


def open_positions(base: Path, proposed: Path, rows: list[dict[str, Any]] = HISTORY) -> dict[str, Any]:
    plan = make_plan(load_config(str(base)), load_config(str(proposed)), events(rows), 100_000.0)
    assert plan.open_positions is not None
    return plan.open_positions.to_json()


def run_cli(base: Path, proposed: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    history = tmp_path / "history.jsonl"
    history.write_text("".join(json.dumps(r) + "\n" for r in HISTORY))
    return subprocess.run([sys.executable, "-m", "engine", "plan", "--base", str(base), "--config", str(proposed),
                           "--history", str(history), *args], capture_output=True, text=True, timeout=600)


def insert_half_percent_level_and_tighten_the_trail(proposed: Path) -> None:
    f = proposed / "strategies" / "scalp_trend.yaml"
    edit(f, "  - {profit_target: 0.01, exit_percentage: 0.5,", "  - {profit_target: 0.005, exit_percentage: 0.25}\n"
                                                             "  - {profit_target: 0.01, exit_percentage: 0.5,")
    edit(f, "trailing_distance: 0.005, activation_threshold: 0.02", "trailing_distance: 0.004, activation_threshold: 0.015")


def test_a_level_inserted_in_front_is_untaken_on_the_grid_and_the_taken_level_stays_taken(base: Path, proposed: Path) -> None:
    insert_half_percent_level_and_tighten_the_trail(proposed)
    report = open_positions(base, proposed)
    assert report["refused"] is None and report["open"] == 2 and report["changed"] == 1 and report["unchanged"] == ["R1"]
    l1 = report["positions"]["L1"]
    levels = {c["key"]: c for c in l1["exit_levels"]}
    assert list(levels) == ["profit_target:0.005", "profit_target:0.01", "profit_target:0.02"]  # the proposed order
    added = levels["profit_target:0.005"]
    assert added["change"] == "added" and added["before"] is None
    # 1.1 * 1.005 on the tick grid; 25 % of 0.1 lot leaves 0.08 (the close rounds down to the 0.01 step)
    assert added["after"] == {"key": "profit_target:0.005", "price": 1.1055, "leaves_open": 0.08, "stop_to": None,
                              "exit_percentage": 0.25, "taken": False}
    one = levels["profit_target:0.01"]
    # the same key: still taken, wherever it moved; its target is now 25 % + 50 % of 0.1: 0.075, down to 0.07 closed
    assert one["change"] == "edited" and one["before"]["taken"] and one["after"]["taken"]
    assert (one["before"]["price"], one["after"]["price"]) == (1.111, 1.111)
    assert (one["before"]["leaves_open"], one["after"]["leaves_open"]) == (0.05, 0.03)
    two = levels["profit_target:0.02"]
    assert not two["after"]["taken"] and (two["before"]["leaves_open"], two["after"]["leaves_open"]) == (0.03, 0.0)
    settings = {s["name"]: (s["base"], s["proposed"]) for s in l1["settings"]}
    assert settings == {"trailing.trailing_distance": (0.005, 0.004), "trailing.activation_threshold": (0.02, 0.015),
                        # 1.1 * 1.02 and 1.1 * 1.015, on the grid
                        "trailing.activation_price": (1.122, 1.1165)}
    assert l1["proposed"]["stop_loss"] == l1["base"]["stop_loss"] == 1.1  # the break-even stop is kept
    assert l1["proposed"]["take_profit"] == 1.133


def test_an_armed_trail_keeps_its_stop_and_has_no_activation_price(base: Path, proposed: Path) -> None:
    edit(proposed / "strategies" / "scalp_trend.yaml", "trailing_distance: 0.005", "trailing_distance: 0.004")
    report = open_positions(base, proposed, ARMED)
    l1 = report["positions"]["L1"]
    assert l1["volume"] == 0.03  # both levels taken: 0.05, then 0.02 closed
    for side in ("base", "proposed"):
        trailing = l1[side]["trailing"]
        assert trailing["armed"] and trailing["activation_price"] is None and trailing["stop"] == 1.11938
        assert l1[side]["stop_loss"] == 1.11938
    assert [s["name"] for s in l1["settings"]] == ["trailing.trailing_distance"]
    assert all(c["change"] == "kept" and c["after"]["taken"] for c in l1["exit_levels"])


def test_a_removed_taken_level_is_remembered_and_taken_again_when_it_comes_back(base: Path, proposed: Path) -> None:
    edit(proposed / "strategies" / "scalp_trend.yaml", "  - {profit_target: 0.01, exit_percentage: 0.5, sl_adjustment: 0.0}\n", "")
    base_rules, removed = load_config(str(base)), load_config(str(proposed))
    _, engine = replay_engine(base_rules, events(HISTORY), 100_000.0, PortfolioRules())
    first = reload_effects(engine, removed)
    l1 = next(p for p in first.positions if p.position_id == "L1")
    gone = next(c for c in l1.levels() if c.key == "profit_target:0.01")
    assert gone.change == "removed" and gone.before is not None and gone.before.taken
    assert l1.after.remembered == ("profit_target:0.01",)
    # a second reload brings the level back (the base rules again): taken, so it never closes twice
    back = reload_effects(engine, base_rules)
    l1 = next(p for p in back.positions if p.position_id == "L1")
    again = next(c for c in l1.levels() if c.key == "profit_target:0.01")
    assert again.change == "added" and again.after is not None and again.after.taken
    assert l1.after.remembered == ()


def test_removing_a_strategy_with_an_open_position_is_refused_and_the_plan_differs(base: Path, proposed: Path,
                                                                                  tmp_path: Path) -> None:
    (proposed / "strategies" / "scalp_revert.yaml").unlink()
    edit(proposed / "strategies" / "scalp_trend.yaml", "{target: 0.5, min: 0.3, max: 0.7}", "{target: 1.0, min: 0.3, max: 1.0}")
    edit(proposed / "rules" / "instruments.yaml", ", 2002: scalp_revert", "")
    proc = run_cli(base, proposed, tmp_path, "--format", "json")
    assert proc.returncode == 2, proc.stderr
    report = json.loads(proc.stdout)["open_positions"]
    assert report["refused"] == "strategy 'scalp_revert' is removed but still has 1 open position(s): R1"
    assert list(report["positions"]) == ["R1"] and report["unchanged"] == ["L1"]
    r1 = report["positions"]["R1"]
    assert r1["refused"] == "strategy 'scalp_revert' is removed while this position is open" and r1["proposed"] is None
    text = run_cli(base, proposed, tmp_path).stdout
    assert "The reload is refused (ReloadRefused): strategy 'scalp_revert' is removed" in text
    assert "R1 (scalp_revert, EURUSD BUY 0.1 at 1.1081): refused" in text


def test_the_text_report_shows_each_level_by_key_and_counts_the_unchanged(base: Path, proposed: Path, tmp_path: Path) -> None:
    insert_half_percent_level_and_tighten_the_trail(proposed)
    proc = run_cli(base, proposed, tmp_path)
    assert proc.returncode == 2, proc.stderr
    section = proc.stdout.split("Open positions at the end of the history: what the reload changes\n")[1].splitlines()
    assert section[0] == "  2 open; the reload changes 1, leaves 1 as they are."
    assert section[1] == "  L1 (scalp_trend, EURUSD BUY 0.05 of 0.1 at 1.1):"
    assert "      + profit_target:0.005         at 1.1055, leaves 0.08 open, not taken (added)" in section
    assert ("      ~ profit_target:0.01          at 1.111, leaves 0.05 -> 0.03 open, stop to 1.1, share 0.5, "
            "taken (stays taken)") in section
    assert "    trailing.activation_price: 1.122 -> 1.1165" in section
    assert "    stop loss 1.1 and take profit 1.133: kept" in section
    assert section[-1] == "  Unchanged: R1"


def test_the_same_rules_leave_every_open_position_as_it_is_and_exit_0(base: Path, tmp_path: Path) -> None:
    proc = run_cli(base, base, tmp_path, "--format", "json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)["open_positions"]
    assert (report["open"], report["changed"], report["unchanged"], report["positions"]) == (2, 0, ["L1", "R1"], {})


def test_new_default_stops_apply_to_new_positions_only(base: Path, proposed: Path) -> None:
    edit(proposed / "strategies" / "scalp_trend.yaml", "stop_loss: 0.01", "stop_loss: 0.02")
    plan = make_plan(load_config(str(base)), load_config(str(proposed)), events(HISTORY), 100_000.0)
    assert plan.open_positions is not None
    report = plan.open_positions.to_json()
    assert report["new_defaults"] == [{"strategy": "scalp_trend", "name": "stop_loss", "base": 0.01, "proposed": 0.02}]
    assert report["unchanged"] == ["L1", "R1"]  # L1 keeps its stop of 1.1
    assert ("  scalp_trend defaults.stop_loss: 0.01 -> 0.02: for positions opened after the reload; "
            "its open positions keep their stop and take profit") in render_text(plan).splitlines()


class _Journal:
    """The one Redis call ``export_history`` makes, over a journal held in a list (oldest first)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.entries = [(f"{i + 1}-0".encode(), {b"record": json.dumps({"kind": "event", "event": r}).encode()})
                        for i, r in enumerate(rows)]

    def xrevrange(self, key: str, max: str, min: str, count: int) -> list[tuple[bytes, dict[bytes, bytes]]]:
        return list(reversed(self.entries)) if max == "+" else []


class _Service:
    def __init__(self, folder: Path) -> None:
        self.default_account, self.version, self.equity0 = "acct", "rv-base", 100_000.0
        self.redis = _Journal(HISTORY)
        texts = {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*.y*ml")}
        self.rule_store = type("Store", (), {"texts": lambda _, version: texts})()
        self.keys = type("Keys", (), {"stream": lambda _, account, name: f"{account}:{name}"})()


def test_the_api_route_returns_what_the_reload_changes(base: Path) -> None:
    proposed = (base / "strategies" / "scalp_trend.yaml").read_text().replace("trailing_distance: 0.005, activation_threshold: 0.02",
                                                                               "trailing_distance: 0.005, activation_threshold: 0.015")
    out = plan_route(_Service(base), {"strategies/scalp_trend.yaml": proposed})
    assert out["changed"] is True and out["events"] == len(HISTORY)
    l1 = out["report"]["open_positions"]["positions"]["L1"]
    assert {s["name"]: (s["base"], s["proposed"]) for s in l1["settings"]} == {
        "trailing.activation_threshold": (0.02, 0.015), "trailing.activation_price": (1.122, 1.1165)}
