"""Whole configurations: the shipped one, checks across files, and every problem in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config, load_strategies, validate_config, validate_paths
from engine.config.lint import check_removed_strategies
from engine.config.problems import dotted
from engine.errors import ConfigError
from tests.conftest import ROOT, break_arbitrage, edit


def located(result) -> set[tuple[str, int, int, str]]:
    return {(Path(p.file).name, p.line, p.column, dotted(p.path)) for p in result.problems}


def test_shipped_configuration_is_the_desks_standard() -> None:
    rules = load_config(str(ROOT))
    bands = {n: (s.allocation.min, s.allocation.target, s.allocation.max) for n, s in rules.strategies.items()}
    assert bands == {
        "arbitrage": (0.15, 0.25, 0.35),
        "trend_following": (0.10, 0.20, 0.30),
        "market_making": (0.05, 0.15, 0.25),
        "htf": (0.05, 0.15, 0.25),
        "news_driven": (0.05, 0.15, 0.25),
        "statistical_arbitrage": (0.05, 0.10, 0.20),
    }
    assert all(s.allocation.rebalance_threshold == 0.05 for s in rules.strategies.values())
    sltp = {n: (s.defaults.stop_loss, s.defaults.take_profit) for n, s in rules.strategies.items()}
    assert sltp["arbitrage"] == (0.005, 0.01)
    assert sltp["trend_following"] == (0.03, 0.06)
    assert sltp["market_making"] == (0.02, 0.04)
    assert [lv.r_multiple for lv in rules.strategies["htf"].exit_levels] == [2, 3, 5]
    assert rules.limits.daily_loss.max == 0.02
    assert rules.limits.max_position_size.max == 0.15
    assert rules.limits.max_correlation.max == 0.70
    assert rules.max_positions("arbitrage") == 5 and rules.risk_allocation("arbitrage") == 0.15
    split = rules.profit.split
    assert (split.big_trades, split.weekly_target, split.compound) == (0.5, 0.3, 0.2)
    assert rules.profit.weekly_growth_target == 0.20
    jobs = rules.schedules.jobs
    assert jobs.optimize_portfolio.interval_seconds() == 300
    assert jobs.snapshot_metrics.interval_seconds() == 1
    assert jobs.daily_reset.trigger == "cron" and jobs.weekly_reset.trigger == "cron"
    assert rules.version.startswith("rv-")


def test_four_problems_of_one_file_are_reported_in_one_run(config_copy: Path) -> None:
    break_arbitrage(config_copy)
    result = validate_config(str(config_copy))
    assert located(result) == {
        ("arbitrage.yaml", 4, 33, "allocation.min"),
        ("arbitrage.yaml", 5, 16, "max_positions"),
        ("arbitrage.yaml", 10, 3, "trailing.trailing_distanse"),
        ("arbitrage.yaml", 18, 45, "exit_levels.3.exit_percentage"),
    }
    assert result.ruleset is None


def test_errors_of_several_files_are_reported_together(config_copy: Path) -> None:
    edit(config_copy / "strategies" / "htf.yaml", "stop_loss: 0.015", "stop_loss: -1")
    edit(config_copy / "rules" / "limits.yaml", "max: 0.02", "max: two")
    edit(config_copy / "schedules.yaml", "seconds: 300", "seconds: [300]")
    result = validate_config(str(config_copy))
    assert {Path(p.file).name for p in result.problems} == {"htf.yaml", "limits.yaml", "schedules.yaml"}


def test_targets_must_sum_to_one_across_strategies(config_copy: Path) -> None:
    edit(config_copy / "strategies" / "htf.yaml", "target: 0.15", "target: 0.20")
    result = validate_config(str(config_copy))
    [problem] = result.problems
    assert dotted(problem.path) == "allocation.target"
    assert "summing to 1" in problem.message and "1.05" in problem.message


def test_sum_of_mins_and_maxes_must_bracket_one(config_copy: Path) -> None:
    edit(config_copy / "strategies" / "htf.yaml", "min: 0.05, max: 0.25", "min: 0.70, max: 0.75")
    result = validate_config(str(config_copy))
    assert any("sum of allocation mins <= 1 across strategies, found 1.1" in p.message for p in result.problems)
    for name in ("htf", "news_driven", "market_making", "statistical_arbitrage"):
        (config_copy / "strategies" / f"{name}.yaml").unlink()
    result = validate_config(str(config_copy))
    assert any("sum of allocation maxes >= 1 across strategies, found 0.65" in p.message for p in result.problems)


def test_duplicate_strategy_names_point_at_the_second(config_copy: Path) -> None:
    edit(config_copy / "strategies" / "htf.yaml", "name: htf", "name: arbitrage")
    result = validate_config(str(config_copy))
    dup = [p for p in result.problems if "unique strategy name" in p.message]
    assert [(Path(p.file).name, p.line, p.column) for p in dup] == [("htf.yaml", 2, 7)]


def test_custom_rule_naming_an_unknown_strategy_is_an_error(config_copy: Path) -> None:
    edit(config_copy / "rules" / "custom.yaml", '"trend_following"', '"trend_folowing"')
    result = validate_config(str(config_copy))
    [problem] = result.problems
    assert problem.message == (
        "expected a known strategy for position.strategy_type, found 'trend_folowing'; did you mean 'trend_following'?")
    # points inside the expression, at the literal
    line = next(i for i, text in enumerate((config_copy / "rules" / "custom.yaml").read_text().splitlines(), 1) if "trend_folowing" in text)
    assert (problem.line, problem.column, dotted(problem.path)) == (line, 37, "rules.0.when.all.0")


def test_broker_map_and_risk_budgets_name_known_strategies(config_copy: Path) -> None:
    edit(config_copy / "rules" / "instruments.yaml", "1006: statistical_arbitrage", "1006: stat_arb")
    (config_copy / "rules" / "allocation.yaml").write_text("risk_budgets: {arbitrage: 0.5, trend: 0.5}\n")
    result = validate_config(str(config_copy))
    assert {dotted(p.path) for p in result.problems} == {"strategy_map.magic.1006", "risk_budgets.trend"}


def test_unknown_and_missing_rule_files_are_reported(config_copy: Path) -> None:
    (config_copy / "rules" / "limits.yaml").rename(config_copy / "rules" / "limit.yaml")
    result = validate_config(str(config_copy))
    messages = sorted(p.message for p in result.problems)
    assert any("unknown rule file 'limit.yaml'; did you mean 'limits.yaml'?" in m for m in messages)
    assert any("expected rules/limits.yaml" in m for m in messages)


def test_optional_rule_files_default_to_the_models_defaults(config_copy: Path) -> None:
    for name in ("allocation", "profit", "custom", "instruments"):
        (config_copy / "rules" / f"{name}.yaml").unlink()
    (config_copy / "schedules.yaml").unlink()
    rules = load_config(str(config_copy))
    assert rules.allocation.methods == ["risk_parity", "min_volatility", "max_sharpe"]
    assert rules.custom.rules == []


def test_load_config_raises_one_error_with_every_problem(config_copy: Path) -> None:
    edit(config_copy / "strategies" / "htf.yaml", "stop_loss: 0.015", "stop_loss: x")
    edit(config_copy / "rules" / "limits.yaml", "window: 240", "window: 2")
    with pytest.raises(ConfigError) as info:
        load_config(str(config_copy))
    assert {(Path(p.file).name, p.line) for p in info.value.problems} == {("htf.yaml", 7), ("limits.yaml", 11)}
    assert str(info.value).startswith("2 problem(s) in the rule files; first: ")


def test_load_strategies_accepts_a_config_or_strategies_folder() -> None:
    assert set(load_strategies(str(ROOT))) == set(load_strategies(str(ROOT / "strategies")))
    assert len(load_strategies(str(ROOT))) == 6


def test_validate_paths_checks_files_and_strategy_folders(config_copy: Path) -> None:
    edit(config_copy / "strategies" / "htf.yaml", "target: 0.15", "target: 0.2")
    one = validate_paths([str(config_copy / "strategies" / "htf.yaml")])
    assert one.ok and one.ruleset is None  # a file alone: no checks across strategies
    folder = validate_paths([str(config_copy / "strategies")])
    assert any("summing to 1" in p.message for p in folder.problems)
    whole = validate_paths([str(config_copy)])
    assert not whole.ok


def test_reload_that_removes_a_strategy_with_open_positions_is_refused() -> None:
    reasons = check_removed_strategies(["arbitrage", "htf"], ["arbitrage"], {"htf": ["p7", "p9"], "arbitrage": ["p1"]})
    assert reasons == ["strategy 'htf' is removed but still has 2 open position(s): p7, p9"]
    assert check_removed_strategies(["arbitrage", "htf"], ["arbitrage"], {"arbitrage": ["p1"]}) == []
