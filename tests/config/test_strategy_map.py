"""The broker strategy map of rules/instruments.yaml: magic numbers, comment prefixes and a default."""

from __future__ import annotations

from pathlib import Path

from engine.config import validate_config
from engine.config.problems import dotted
from tests.conftest import edit


def test_the_default_strategy_must_be_known(config_copy: Path) -> None:
    edit(config_copy / "rules" / "instruments.yaml", "strategy_map:                    # how broker positions name their strategy\n",
         "strategy_map:\n  default: trend_folowing\n  comment_prefix: {arb: arbitrage}\n")
    result = validate_config(str(config_copy))
    [problem] = result.problems
    assert dotted(problem.path) == "strategy_map.default"
    assert problem.message == "expected a known strategy, found 'trend_folowing'; did you mean 'trend_following'?"
    assert problem.line == 10


def test_a_known_default_and_prefixes_validate(config_copy: Path) -> None:
    edit(config_copy / "rules" / "instruments.yaml", "strategy_map:                    # how broker positions name their strategy\n",
         "strategy_map:\n  default: trend_following\n  comment_prefix: {arb: arbitrage, 'news ': news_driven}\n")
    result = validate_config(str(config_copy))
    assert result.problems == []
    mapping = result.ruleset.instruments.strategy_map
    assert mapping.default == "trend_following" and mapping.comment_prefix == {"arb": "arbitrage", "news ": "news_driven"}


def test_comment_prefixes_longer_than_an_mt5_comment_and_negative_magic_numbers_are_refused(config_copy: Path) -> None:
    edit(config_copy / "rules" / "instruments.yaml", "1001: arbitrage", "-1: arbitrage")
    edit(config_copy / "rules" / "instruments.yaml", "strategy_map:                    # how broker positions name their strategy\n",
         "strategy_map:\n  comment_prefix: {" + "x" * 32 + ": arbitrage}\n")
    result = validate_config(str(config_copy))
    paths = {dotted(p.path) for p in result.problems}
    assert any(p.startswith("strategy_map.magic") for p in paths), paths
    assert any(p.startswith("strategy_map.comment_prefix") for p in paths), paths
