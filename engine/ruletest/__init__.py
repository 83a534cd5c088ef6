"""Rule unit tests: YAML cases (positions, ticks, expected actions) run through the engine.

``load_tests`` finds and checks the test files (file:line:column problems, like rule files),
``run_cases`` runs each case through a fresh engine with a paper broker and compares, and
``render_text``/``render_json`` report the results. The format is described in docs/rule-tests.md.
"""

from engine.ruletest.load import Loaded, LoadedCase, load_tests
from engine.ruletest.models import Case, Expectation, PositionSpec, Quote, TestFile
from engine.ruletest.report import render_json, render_text, summary
from engine.ruletest.runner import CaseResult, Mismatch, run_case, run_cases

__all__ = [
    "Case",
    "CaseResult",
    "Expectation",
    "Loaded",
    "LoadedCase",
    "Mismatch",
    "PositionSpec",
    "Quote",
    "TestFile",
    "load_tests",
    "render_json",
    "render_text",
    "run_case",
    "run_cases",
    "summary",
]
