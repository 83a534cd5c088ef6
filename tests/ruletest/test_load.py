"""Malformed rule test files paired with the errors they must produce (tests/data/ruletest/invalid)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import RuleSet
from engine.config.problems import dotted
from engine.ruletest import load_tests
from tests.conftest import DATA
from tests.ruletest.conftest import write_cases

INVALID = sorted((DATA / "ruletest" / "invalid").glob("*.yaml"))


def expected_errors(case: Path) -> list[tuple[int, int, str, str]]:
    """Read ``<case>.expected``: one ``LINE:COLUMN PATH | message`` per line."""
    errors = []
    for line in case.with_suffix(".expected").read_text().splitlines():
        where, message = line.split(" | ", 1)
        pos, _, path = where.partition(" ")
        ln, col = pos.split(":")
        errors.append((int(ln), int(col), path.strip(), message))
    return errors


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.stem)
def test_malformed_test_file_reports_each_error_at_its_line_and_column(case: Path, shipped_rules: RuleSet) -> None:
    loaded = load_tests([str(case)], shipped_rules)
    got = [(p.line, p.column, dotted(p.path), p.message) for p in loaded.problems]
    assert got == expected_errors(case)
    assert all(p.file.endswith(case.name) for p in loaded.problems)
    assert loaded.cases == []


def test_every_invalid_case_has_its_expectations() -> None:
    assert len(INVALID) >= 5
    for case in INVALID:
        assert case.with_suffix(".expected").is_file(), case.name


def test_a_valid_case_next_to_a_bad_override_is_kept_and_the_bad_one_reported(tmp_path: Path, shipped_rules: RuleSet) -> None:
    path = write_cases(tmp_path, """\
        tests:
          - name: fine
            strategy: htf
            positions: [{id: p1, side: long, entry: 1.1, volume: 0.1}]
            ticks: [1.1]
          - name: bad exit levels
            strategy: htf
            overrides:
              exit_levels: [{r_multiple: 2, exit_percentage: 0.7}, {r_multiple: 3, exit_percentage: 0.7}]
            positions: [{id: p1, side: long, entry: 1.1, volume: 0.1}]
            ticks: [1.1]
        """)
    loaded = load_tests([str(path)], shipped_rules)
    assert [c.case.name for c in loaded.cases] == ["fine"]
    (problem,) = loaded.problems
    assert (problem.line, dotted(problem.path)) == (9, "tests.1.overrides.exit_levels.1.exit_percentage")
    assert "sum" in problem.message


def test_overrides_leave_the_configuration_untouched_and_get_their_own_rules_version(tmp_path: Path, shipped_rules: RuleSet) -> None:
    path = write_cases(tmp_path, """\
        tests:
          - name: tighter trailing, smaller daily loss
            strategy: arbitrage
            overrides:
              trailing: {trailing_distance: 0.001}
              limits: {daily_loss: {max: 0.001}}
            positions: [{id: p1, side: long, entry: 1.1, volume: 0.1}]
            ticks: [1.1]
        """)
    (item,) = load_tests([str(path)], shipped_rules).cases
    assert item.rules.strategies["arbitrage"].trailing.trailing_distance == 0.001
    assert item.rules.strategies["arbitrage"].trailing.activation_threshold == 0.005  # merged, not replaced
    assert item.rules.limits.daily_loss.max == 0.001
    assert item.rules.limits.daily_loss.on_breach == shipped_rules.limits.daily_loss.on_breach
    assert shipped_rules.strategies["arbitrage"].trailing.trailing_distance == 0.002
    assert item.rules.version != shipped_rules.version
