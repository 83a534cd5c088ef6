"""Helpers of the rule unit test tests: the shipped rules, and cases written inline."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.config import RuleSet, load_config
from engine.ruletest import CaseResult, load_tests, run_cases
from tests.conftest import ROOT


@pytest.fixture(scope="session")
def shipped_rules() -> RuleSet:
    return load_config(str(ROOT))


def write_cases(tmp_path: Path, text: str, name: str = "cases.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run_text(tmp_path: Path, rules: RuleSet, text: str) -> list[CaseResult]:
    """Load the cases of ``text`` (they must be valid) and run them."""
    loaded = load_tests([str(write_cases(tmp_path, text))], rules)
    assert loaded.ok, "\n".join(map(str, loaded.problems))
    return run_cases(loaded.cases)


def riskrail_test(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", "test", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)
