"""The example of docs/rule-tests.md passes, and fails as the page shows when the rule changes."""

from __future__ import annotations

import re
from pathlib import Path

from engine.config import RuleSet, load_config
from engine.ruletest import load_tests, render_text, run_cases
from tests.conftest import ROOT, edit

DOC = (ROOT / "docs" / "rule-tests.md").read_text()


def _example(tmp_path: Path) -> Path:
    path = tmp_path / "example.yaml"
    path.write_text(re.search(r"```yaml\n(tests:.*?)```", DOC, re.S).group(1))
    return path


def test_documented_example_passes_and_fails_as_documented(tmp_path: Path, shipped_rules: RuleSet, config_copy: Path) -> None:
    loaded = load_tests([str(_example(tmp_path))], shipped_rules)
    assert loaded.ok and run_cases(loaded.cases)[0].passed
    edit(config_copy / "strategies" / "arbitrage.yaml", "trailing_distance: 0.002", "trailing_distance: 0.003")
    (item,) = load_tests([str(_example(tmp_path))], load_config(str(config_copy))).cases
    text = render_text(run_cases([item]))
    shown = re.search(r"```\n(FAIL .*?)```", DOC, re.S).group(1)
    body = lambda t: t.split("\n", 1)[1].strip()  # noqa: E731  (the first line names the file)
    assert body(text) == body(shown)
