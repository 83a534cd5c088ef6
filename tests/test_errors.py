"""One exception root: every public exception class of the package is a RiskrailError, and the tree
drawn in engine/errors.py is the tree the code has (warnings, such as the optimizer's
NonPSDCovarianceWarning, are not errors)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import engine
from engine import errors
from engine.errors import RiskrailError


def _exception_classes() -> dict[str, type]:
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(engine.__path__, "engine."):
        if info.name == "engine.__main__":
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            is_error = inspect.isclass(obj) and issubclass(obj, BaseException) and not issubclass(obj, Warning)
            if is_error and obj.__module__ == info.name and not name.startswith("_"):
                found[f"{info.name}.{name}"] = obj
    return found


def _drawn() -> dict[str, tuple[str, str | None]]:
    """name -> (module, parent name) from the drawing in the errors module's docstring."""
    out: dict[str, tuple[str, str | None]] = {}
    stack: list[tuple[int, str]] = []
    for line in errors.__doc__.splitlines():
        m = re.match(r"^( *)(?:[│ ]*[├└]── )?([A-Z][A-Za-z0-9]+)\s.*\((engine[\w.]*)\)\s*$", line)
        if not m:
            continue
        name, module = m.group(2), m.group(3)
        depth = line.index(name)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        out[name] = (module, stack[-1][1] if stack else None)
        stack.append((depth, name))
    return out


def test_every_public_exception_is_a_riskrail_error() -> None:
    classes = _exception_classes()
    assert len(classes) >= 10
    outside = [name for name, cls in classes.items() if not issubclass(cls, RiskrailError)]
    assert outside == []


def test_the_drawn_tree_is_the_tree_of_the_code() -> None:
    drawn = _drawn()
    classes = _exception_classes()
    assert {f"{module}.{name}" for name, (module, _) in drawn.items()} == set(classes)
    for name, (module, parent) in drawn.items():
        cls = classes[f"{module}.{name}"]
        if parent is None:
            assert cls is RiskrailError
        else:
            assert cls.__bases__[0].__name__ == parent, name
