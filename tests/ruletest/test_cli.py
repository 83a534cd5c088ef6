"""`riskrail test` end to end: the shipped rule tests pass, a changed rule fails readably, exit codes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from tests.conftest import ROOT, edit
from tests.ruletest.conftest import riskrail_test, write_cases

SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


def test_shipped_rule_tests_all_pass_through_riskrail_test() -> None:
    proc = riskrail_test("--config", str(ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    m = SUMMARY.match(lines[-1])
    assert m, lines[-1]
    passed, failed = int(m.group(1)), int(m.group(2))
    assert failed == 0 and passed >= 32
    assert sum(line.startswith("PASS ") for line in lines) == passed
    files = {line.split(": ", 1)[0].removeprefix("PASS ") for line in lines if line.startswith("PASS ")}
    for strategy in ("arbitrage", "trend_following", "market_making", "htf", "news_driven", "statistical_arbitrage", "daily_loss"):
        assert any(f.endswith(f"{strategy}.yaml") for f in files), strategy


def test_changed_trailing_distance_fails_the_trailing_cases_showing_expected_and_actual(config_copy: Path) -> None:
    edit(config_copy / "strategies" / "arbitrage.yaml", "trailing_distance: 0.002", "trailing_distance: 0.003")
    proc = riskrail_test(str(ROOT / "rules" / "tests" / "arbitrage.yaml"), "--config", str(config_copy))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "FAIL " in out and "arbitrage.yaml: long exit levels 1 and 2, trailing arms, ratchets and closes the rest" in out
    # long trailing stop after tick 2: expected 1.1060 x 0.998, the changed rule gives 1.1060 x 0.997 (each up to the tick)
    assert "    expected set_stop_loss p1 stop_loss 1.10379 (rule trailing)" in out
    assert "    actual   set_stop_loss p1 stop_loss 1.10269 (rule trailing: trailing stop moves the stop loss" in out
    assert "tick 2 (bid 1.106, ask 1.1061)" in out
    m = SUMMARY.match(out.splitlines()[-1])
    assert m and int(m.group(2)) >= 1 and int(m.group(1)) >= 1


def test_json_format_lists_each_case_with_its_mismatches(config_copy: Path) -> None:
    edit(config_copy / "strategies" / "arbitrage.yaml", "trailing_distance: 0.002", "trailing_distance: 0.003")
    proc = riskrail_test(str(ROOT / "rules" / "tests" / "arbitrage.yaml"), "--config", str(config_copy),
                         "--format", "json", "-k", "SHORT exit level")
    assert proc.returncode == 1, proc.stderr
    (case,) = json.loads(proc.stdout)
    assert case["name"].startswith("short exit level 1") and case["file"].endswith("arbitrage.yaml")
    assert case["passed"] is False
    first = case["mismatches"][0]
    assert first["tick"] == 2 and first["kind"] == "missing" and first["quote"] == {"bid": 1.0938, "ask": 1.0940}
    assert first["expected"]["stop_loss"] == 1.09618 and first["actual"]["rule"] == "trailing"


def test_default_path_is_rules_tests_of_the_config_and_k_selects_cases(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "strategies", tmp_path / "strategies")
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("tests"))
    shutil.copy(ROOT / "schedules.yaml", tmp_path / "schedules.yaml")
    (tmp_path / "rules" / "tests").mkdir()
    write_cases(tmp_path / "rules" / "tests", """\
        tests:
          - name: quiet market
            strategy: arbitrage
            positions: [{id: p1, side: long, entry: 1.1, volume: 0.1, stop_loss: 1.09, take_profit: 1.12}]
            ticks: [1.1, 1.1001]
          - name: another quiet market
            strategy: arbitrage
            positions: [{id: p1, side: long, entry: 1.1, volume: 0.1, stop_loss: 1.09, take_profit: 1.12}]
            ticks: [1.1]
        """)
    proc = riskrail_test("--config", str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "2 passed, 0 failed"
    proc = riskrail_test("--config", str(tmp_path), "-k", "another")
    assert proc.stdout.splitlines()[-1] == "1 passed, 0 failed"
    proc = riskrail_test("--config", str(tmp_path), "-k", "no such case")
    assert proc.returncode == 1 and "no test case matching -k 'no such case'" in proc.stderr


def test_a_path_that_does_not_exist_is_a_usage_error() -> None:
    proc = riskrail_test(str(ROOT / "rules" / "tests" / "nope.yaml"), "--config", str(ROOT))
    assert proc.returncode == 2
    assert "no such file or folder" in proc.stderr and proc.stdout == ""


def test_malformed_test_file_is_reported_like_validate_and_nothing_runs(tmp_path: Path) -> None:
    bad = ROOT / "tests" / "data" / "ruletest" / "invalid" / "unknown_key.yaml"
    proc = riskrail_test(str(bad), "--config", str(ROOT), cwd=ROOT)
    assert proc.returncode == 1
    assert "tests/data/ruletest/invalid/unknown_key.yaml\n" in proc.stdout
    assert "  5:5  tests.0.tick: unknown key 'tick'; did you mean 'ticks'?" in proc.stdout
    assert "     5 |     tick: [1.1]" in proc.stdout
    assert "PASS" not in proc.stdout and "FAIL" not in proc.stdout
    proc = riskrail_test(str(bad), "--config", str(ROOT), "--format", "json", cwd=ROOT)
    problems = json.loads(proc.stdout)
    assert {"file": "tests/data/ruletest/invalid/unknown_key.yaml", "line": 5, "column": 5, "path": "tests.0.tick",
            "message": "unknown key 'tick'; did you mean 'ticks'?"} in problems
