"""The rules version: a hash of meaning, blind to comments, layout, key order and explicit defaults."""

from __future__ import annotations

from pathlib import Path

from engine.config import load_config
from tests.conftest import ROOT, edit


def version(folder: Path) -> str:
    return load_config(str(folder)).version


def test_version_is_stable_across_loads() -> None:
    assert version(ROOT) == version(ROOT)


def test_comments_whitespace_and_layout_do_not_change_the_version(config_copy: Path) -> None:
    before = version(config_copy)
    f = config_copy / "strategies" / "arbitrage.yaml"
    edit(f, "max_positions: 5", "max_positions:    5      # a new comment")
    edit(f, "label: Arbitrage (HFT)", "# a whole-line comment\n\nlabel: Arbitrage (HFT)")
    # flow mapping to block mapping, keys reordered
    edit(f, "defaults: {stop_loss: 0.005, take_profit: 0.01}", "defaults:\n  take_profit: 0.010\n  stop_loss: 5.0e-3")
    assert version(config_copy) == before


def test_writing_a_default_explicitly_does_not_change_the_version(config_copy: Path) -> None:
    before = version(config_copy)
    edit(config_copy / "strategies" / "market_making.yaml", "max_trailing_distance: 0.02", "max_trailing_distance: 0.02\n  mode: fixed")
    assert version(config_copy) == before


def test_equivalent_conditions_give_the_same_version(config_copy: Path) -> None:
    before = version(config_copy)
    edit(config_copy / "rules" / "custom.yaml", "when: portfolio.drawdown >= 0.05 and not portfolio.halted",
         "when: {all: ['(portfolio.drawdown >= 0.05)', 'not (portfolio.halted == true)']}")
    assert version(config_copy) == before


def test_a_duration_written_in_another_unit_keeps_the_version(config_copy: Path) -> None:
    before = version(config_copy)
    edit(config_copy / "rules" / "limits.yaml", "max_quote_age: 60s", "max_quote_age: 1m")
    assert version(config_copy) == before


def test_any_change_of_meaning_changes_the_version(config_copy: Path) -> None:
    seen = {version(config_copy)}
    changes = [
        ("strategies/trend_following.yaml", "trailing_distance: 0.015", "trailing_distance: 0.016"),
        ("rules/limits.yaml", "on_breach: reject              # or resize", "on_breach: resize"),
        ("rules/limits.yaml", "max_quote_age: 60s", "max_quote_age: 30s"),
        ("rules/custom.yaml", "position.profit <= -0.01", "position.profit < -0.01"),
        ("schedules.yaml", "seconds: 300", "seconds: 600"),
        ("strategies/htf.yaml", "label: Higher-timeframe swing", "label: HTF swing"),
    ]
    for file, old, new in changes:
        edit(config_copy / file, old, new)
        v = version(config_copy)
        assert v not in seen, f"{file}: {old} -> {new} kept the version"
        seen.add(v)
