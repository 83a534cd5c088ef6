"""The public API of the ``engine`` package: the names users import, pinned; each documented."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import engine

PUBLIC = [
    "Action", "Broker", "Clock", "ConfigError", "Coordinator", "Engine", "Event", "EventError", "Fill", "FillReport",
    "OptimizationError", "PositionClosed", "PositionOpened", "Problem", "RiskrailError", "RuleSet", "Tick", "Validation",
    "__version__", "decode", "load_config", "load_texts", "parse_event", "validate_config",
]


def test_the_public_names_are_exactly_these() -> None:
    assert sorted(engine.__all__) == sorted(PUBLIC)
    assert sorted(dir(engine)) == sorted(PUBLIC)
    assert sorted(["__version__", *engine._EXPORTS]) == sorted(PUBLIC)  # the lazy table and __all__ agree


def test_every_public_name_resolves_and_has_a_docstring() -> None:
    for name in PUBLIC:
        value = getattr(engine, name)
        if name == "__version__":
            assert isinstance(value, str)
            continue
        if name == "Event":  # a Union alias: documented in engine.events
            continue
        assert inspect.getdoc(value), f"engine.{name} has no docstring"


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        engine.no_such_name  # noqa: B018


def test_importing_the_package_loads_neither_the_engine_nor_the_service() -> None:
    code = ("import sys, engine; heavy = [m for m in ('engine.rules.evaluator', 'engine.service.coordinator', 'durable', "
            "'numba', 'fastapi', 'redis') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
