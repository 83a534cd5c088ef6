"""`riskrail replay --reload TS=DIR`: a rule change swapped in mid-stream, as the service's hot reload does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from engine.config import load_config
from tests.conftest import DATA, ROOT, break_arbitrage, edit

EVENTS = DATA / "replay" / "arbitrage_long.jsonl"  # p1 opens at 10:00:00.5, exit level 0 is reached at 10:00:02
TS = "2024-03-04T10:00:01.500Z"
TS_MS = 1709546401500


def riskrail(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=600)


def half_at_first_level(config: Path) -> str:
    """Make arbitrage take half the position at its first exit level (its last level dropped: the sum stays 1)."""
    f = config / "strategies" / "arbitrage.yaml"
    edit(f, "{profit_target: 0.005, exit_percentage: 0.25,", "{profit_target: 0.005, exit_percentage: 0.5,")
    edit(f, "  - {profit_target: 0.015, exit_percentage: 0.25, sl_adjustment: 0.008}\n", "")
    return load_config(str(config)).version


def test_a_reload_changes_the_actions_from_its_time_on_and_keeps_the_open_position(config_copy: Path) -> None:
    old, new = load_config(str(ROOT)).version, half_at_first_level(config_copy)
    before = [json.loads(line) for line in riskrail("replay", "--events", str(EVENTS), "--config", str(ROOT)).stdout.splitlines()]
    proc = riskrail("replay", "--events", str(EVENTS), "--config", str(ROOT), "--reload", f"{TS}={config_copy}")
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in proc.stdout.splitlines()]
    # the shipped rules read the clock (flatten-losing-trend-before-weekend), so time passes in the gaps of the
    # history on the 500 ms grid: the reload lands before the clock event at its own time
    said = f"riskrail replay: reload before the clock event (ts 2024-03-04T10:00:01.500Z): rules {old} -> {new} from {config_copy}"
    assert said in proc.stderr
    assert {a["rules_version"] for a in got if a["ts"] < TS_MS} == {old}
    assert {a["rules_version"] for a in got if a["ts"] >= TS_MS} == {new}
    # the position opened under the old rules is managed by the new ones: half of it goes at level 0
    first = next(a for a in got if a["rule"] == "exit_levels.0" and a["type"] == "close_partial")
    was = next(a for a in before if a["rule"] == "exit_levels.0" and a["type"] == "close_partial")
    assert first["params"]["fraction"] == 0.5 and first["params"]["volume"] == 0.05 and first["position_id"] == "p1"
    assert was["params"]["volume"] < 0.05  # a quarter under the old rules
    assert [a["id"] for a in got if a["ts"] < TS_MS] == [a["id"] for a in before if a["ts"] < TS_MS]


def test_a_reload_at_an_epoch_ms_time_after_the_last_event_is_said_not_applied(config_copy: Path) -> None:
    proc = riskrail("replay", "--events", str(EVENTS), "--config", str(ROOT), "--reload", f"1709550000000={config_copy}")
    assert proc.returncode == 0, proc.stderr
    assert f"--reload 2024-03-04T11:00:00.000Z={config_copy} not applied: no event at or after it" in proc.stderr
    assert {json.loads(line)["rules_version"] for line in proc.stdout.splitlines()} == {load_config(str(ROOT)).version}


def test_an_invalid_reload_folder_is_reported_with_file_line_column_and_nothing_replays(config_copy: Path, tmp_path: Path) -> None:
    good = tmp_path / "good"
    shutil.copytree(config_copy, good, ignore=shutil.ignore_patterns("good"))
    half_at_first_level(good)
    break_arbitrage(config_copy)
    proc = riskrail("replay", "--events", str(EVENTS), "--config", str(ROOT),
                    "--reload", f"{TS}={good}", "--reload", f"{TS_MS + 1}={config_copy}")
    assert proc.returncode == 1
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert f"--reload 2024-03-04T10:00:01.501Z={config_copy}: the rules are invalid; nothing was replayed" in proc.stderr
    arbitrage = config_copy / "strategies" / "arbitrage.yaml"
    for where in ("4:33: allocation.min", "5:16: max_positions", "10:3: trailing.trailing_distanse", "18:45: exit_levels.3"):
        assert f"{arbitrage}:{where}" in proc.stderr
    assert str(good) not in proc.stderr  # the valid folder is not reported


def test_a_reload_time_in_seconds_is_a_usage_error(config_copy: Path) -> None:
    proc = riskrail("replay", "--events", str(EVENTS), "--config", str(ROOT), "--reload", f"{TS_MS // 1000}={config_copy}")
    assert proc.returncode == 2
    assert "which looks like epoch seconds" in proc.stderr and proc.stdout == ""
