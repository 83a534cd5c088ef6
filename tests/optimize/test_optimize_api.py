"""The public surface of engine.optimize: exports, purity, determinism."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from optdata import STOCKS

import engine.optimize as opt
from engine.cli import main

PACKAGE = Path(opt.__file__).parent


def test_every_exported_name_exists_and_is_documented():
    for name in opt.__all__:
        obj = getattr(opt, name)
        if callable(obj):
            assert obj.__doc__, f"{name} has no docstring"
    assert len(set(opt.__all__)) == len(opt.__all__)


def test_core_reads_no_clock_and_does_no_io():
    banned_calls = {"now", "utcnow", "today", "time", "perf_counter", "monotonic", "open"}
    banned_modules = {"time", "datetime", "os", "pathlib", "random", "socket", "subprocess"}
    for path in PACKAGE.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & banned_modules, path.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] not in banned_modules, path.name
            elif isinstance(node, ast.Call):
                f = node.func
                name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
                assert name not in banned_calls, f"{path.name}:{node.lineno} calls {name}"


def test_same_inputs_give_byte_identical_json(capsys):
    argv = ["optimize", "--prices", str(STOCKS), "--format", "json", "--method", "max_sharpe", "--method",
            "resampled_max_sharpe", "--samples", "10", "--seed", "3"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    assert capsys.readouterr().out == first
    assert "resampled_max_sharpe" in json.loads(first)["methods"]
