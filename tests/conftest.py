"""Shared fixtures: the repository's own configuration, copied where a test may change it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def config_copy(tmp_path: Path) -> Path:
    """A copy of the shipped configuration (strategies/, rules/, schedules.yaml) in a temp folder."""
    for name in ("strategies", "rules"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(ROOT / "schedules.yaml", tmp_path / "schedules.yaml")
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    """Replace exactly one occurrence of ``old`` in the file at ``path``."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def break_arbitrage(config: Path) -> None:
    """Make four independent mistakes in strategies/arbitrage.yaml: a key typo, a string for a number,
    exit percentages summing past 1, and a band whose min exceeds its target."""
    f = config / "strategies" / "arbitrage.yaml"
    edit(f, "trailing_distance: 0.002", "trailing_distanse: 0.002")
    edit(f, "max_positions: 5", 'max_positions: "five"')
    edit(f, "{profit_target: 0.015, exit_percentage: 0.25", "{profit_target: 0.015, exit_percentage: 0.5")
    edit(f, "min: 0.15, max: 0.35", "min: 0.3, max: 0.35")
