"""`riskrail validate`, `schema` and `strategies` end to end: output, JSON shape, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main
from tests.conftest import ROOT, break_arbitrage


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run the installed command as a user would, in a separate process."""
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_shipped_rules_are_valid_and_the_version_is_printed() -> None:
    proc = run("validate", "--config", str(ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok: 12 files valid, rules version rv-")


def test_broken_copy_reports_all_four_problems_with_lines_and_exits_1(config_copy: Path) -> None:
    break_arbitrage(config_copy)
    proc = run("validate", cwd=config_copy)
    assert proc.returncode == 1
    out = proc.stdout
    assert "Traceback" not in out + proc.stderr
    for expected in (
        "4:33  allocation.min: expected min <= target, found min 0.3 above target 0.25",
        "5:16  max_positions: expected a whole number, found the string 'five'",
        "10:3  trailing.trailing_distanse: unknown key 'trailing_distanse'; did you mean 'trailing_distance'?",
        "18:45  exit_levels.3.exit_percentage: expected exit percentages summing to at most 1, found 0.25 + 0.25 + 0.25 + 0.5 = 1.25",
    ):
        assert expected in out, out
    assert '    10 |   trailing_distanse: 0.002' in out  # the offending line is shown
    assert out.rstrip().endswith("4 problems in 1 file")


def test_json_format_has_exactly_the_documented_keys(config_copy: Path) -> None:
    break_arbitrage(config_copy)
    proc = run("validate", "--format", "json", "--config", str(config_copy))
    assert proc.returncode == 1
    errors = json.loads(proc.stdout)
    assert len(errors) == 4
    assert all(set(e) == {"file", "line", "column", "path", "message"} for e in errors)
    assert [(e["line"], e["column"], e["path"]) for e in errors] == [
        (4, 33, "allocation.min"), (5, 16, "max_positions"), (10, 3, "trailing.trailing_distanse"),
        (18, 45, "exit_levels.3.exit_percentage"),
    ]
    assert all(e["file"].endswith("strategies/arbitrage.yaml") for e in errors)


def test_json_format_of_valid_rules_is_an_empty_array() -> None:
    proc = run("validate", "--format", "json", "--config", str(ROOT))
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == []
    assert "rules version rv-" in proc.stderr


def test_single_files_can_be_validated(config_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(config_copy / "strategies" / "htf.yaml"), str(config_copy / "rules" / "limits.yaml")]) == 0
    assert capsys.readouterr().out.strip() == "ok: 2 files valid"


@pytest.mark.parametrize("args", [
    ["validate", "--format", "xml"], ["validate", "does/not/exist.yaml"], ["validate", "--config", "/no/such/dir"], ["nonsense"],
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    proc = run(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


def test_schema_command_writes_one_schema_per_kind(tmp_path: Path) -> None:
    proc = run("schema", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    kinds = ("strategy", "limits", "allocation", "profit", "custom", "instruments", "schedules", "alerts")
    assert names == sorted(f"{k}.schema.json" for k in kinds)
    strategy = json.loads((tmp_path / "out" / "strategy.schema.json").read_text())
    assert "trailing_distance" in json.dumps(strategy)


def test_strategies_table_lists_every_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["strategies", "--config", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "arbitrage              15%-25%-35%            0.5% / 1%" in out
    assert "30%@2R, 30%@3R, 40%@5R" in out
    assert out.count("\n") >= 8


def test_strategies_on_invalid_rules_prints_problems_without_traceback(config_copy: Path) -> None:
    break_arbitrage(config_copy)
    proc = run("strategies", "--config", str(config_copy))
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "4 problem(s) in the rule files" in proc.stderr
