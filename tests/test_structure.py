"""The engine's shape: every module readable in one sitting, and its seams kept.

Read from the source with ``ast`` alone (nothing is imported or run):

- no module under ``engine/`` longer than ``MAX_MODULE_LINES`` (a file past it is usually two concepts);
- no function longer than ``MAX_FUNCTION_LINES`` (``LONG_FUNCTIONS`` would name an exception; it is empty);
- the adapters import only the ports, events, actions, errors and config, and their own package;
- no private name crosses a module boundary: ``from engine.x import _name`` only from a module of the
  same package, and ``obj._name`` (not on ``self``/``cls``) only for a name the module itself defines,
  or a third-party private name listed in ``THIRD_PARTY_PRIVATE``.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ROOT / "engine"

MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80

#: Modules allowed past ``MAX_MODULE_LINES``.
LONG_MODULES = {
    "engine/testing/mt5.py": "the MetaTrader 5 test kit: one fake, kept whole so a test reads it top to bottom",
}

#: Functions allowed past ``MAX_FUNCTION_LINES``, as "path:qualified name" (none today).
LONG_FUNCTIONS: dict[str, str] = {}

#: What a module under ``engine/adapters`` may import from the engine, besides its own package.
ADAPTER_IMPORTS = ("engine.ports", "engine.events", "engine.actions", "engine.errors", "engine.config", "engine.adapters")

#: Private attributes of third-party objects read on purpose: attribute -> (where, why). ``where`` is a
#: file, or a folder ending in "/".
THIRD_PARTY_PRIVATE = {
    # argparse names the type of add_subparsers()'s result only privately; each sub-command annotates with it.
    "_SubParsersAction": ("engine/cli/", "argparse's sub-command registry, in type annotations"),
    "_fields": ("engine/", "a namedtuple's field names: public API despite the underscore"),
    # durable-rules hands an action its message as an object whose plain dict is only ``_d``.
    "_d": ("engine/rules/firing.py", "durable-rules' message data inside an action"),
    # the C engine frees a compiled ruleset by its handle; the Python Host keeps it privately.
    "_handle": ("engine/rules/chaining.py", "durable-rules' compiled ruleset, freed by delete_ruleset"),
}


def _third_party(path: Path, attr: str) -> bool:
    where = THIRD_PARTY_PRIVATE.get(attr, ("", ""))[0]
    rel = _rel(path)
    return bool(where) and (rel == where or (where.endswith("/") and rel.startswith(where)))


def _modules() -> list[Path]:
    return sorted(ENGINE.rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _functions(node: ast.AST, prefix: str = ""):
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = prefix + child.name
            yield name, child
            yield from _functions(child, name + ".")
        elif isinstance(child, ast.ClassDef):
            yield from _functions(child, prefix + child.name + ".")
        else:
            yield from _functions(child, prefix)


def _imports(path: Path):
    """Yield (line, imported module, names) for every ``engine`` import of the module, relative ones resolved."""
    package = ".".join(path.relative_to(ROOT).parent.parts)
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            yield node.lineno, module, tuple(a.name for a in node.names)


def test_no_module_is_longer_than_a_sitting() -> None:
    long = {
        _rel(p): n for p in _modules()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES and _rel(p) not in LONG_MODULES
    }
    assert long == {}, f"split these by concept (one concept per module): {long}"


def test_no_function_is_longer_than_a_screenful_or_two() -> None:
    long = {}
    for path in _modules():
        for name, fn in _functions(_tree(path)):
            size = fn.end_lineno - fn.lineno + 1
            key = f"{_rel(path)}:{name}"
            if size > MAX_FUNCTION_LINES and key not in LONG_FUNCTIONS:
                long[key] = size
    assert long == {}, f"split these functions: {long}"


def test_the_allow_lists_name_what_exists() -> None:
    for key in LONG_FUNCTIONS:
        file, name = key.split(":")
        assert name in dict(_functions(_tree(ROOT / file))), f"{key} is allowed to be long but does not exist"
    for file in LONG_MODULES:
        assert (ROOT / file).is_file(), f"{file} is allowed to be long but does not exist"
    for attr, (where, _) in THIRD_PARTY_PRIVATE.items():
        files = [ROOT / where] if not where.endswith("/") else sorted((ROOT / where).rglob("*.py"))
        used = {n.attr for f in files for n in ast.walk(_tree(f)) if isinstance(n, ast.Attribute)}
        assert attr in used, f"{attr} is allowed in {where} but no longer used there: strike it"


def test_adapters_import_only_the_ports_and_the_shared_types() -> None:
    wrong = []
    for path in sorted((ENGINE / "adapters").rglob("*.py")):
        for line, module, _ in _imports(path):
            if module.split(".")[0] == "engine" and not any(module == a or module.startswith(a + ".") for a in ADAPTER_IMPORTS):
                wrong.append(f"{_rel(path)}:{line}: {module}")
    assert wrong == [], "adapters import the engine's core: " + ", ".join(wrong)


def _folder(module: str) -> str:
    """Return the package folder of a dotted module: itself for a package, else its parent."""
    return module if (ROOT / module.replace(".", "/")).is_dir() else module.rpartition(".")[0]


def test_no_private_name_is_imported_from_another_package() -> None:
    wrong = []
    for path in _modules():
        here = ".".join(path.relative_to(ROOT).parent.parts)
        for line, module, names in _imports(path):
            if module.split(".")[0] == "engine" and _folder(module) != here:
                wrong += [f"{_rel(path)}:{line}: from {module} import {n}" for n in names if _private(n)]
    assert wrong == [], "private names imported across packages: " + ", ".join(wrong)


def _on_self(node: ast.Attribute) -> bool:
    return isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")


def _defined_names(tree: ast.Module) -> set[str]:
    """Every name the module defines: functions, classes, variables and fields, attributes set on
    ``self``/``cls``, and the modules it imports (an assignment to another object's attribute defines none)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and _on_self(node):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.split(".")[-1])
    return names


def test_no_private_attribute_is_read_across_modules() -> None:
    wrong = []
    for path in _modules():
        tree = _tree(path)
        own = _defined_names(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            if _on_self(node):
                continue
            if node.attr in own or _third_party(path, node.attr):
                continue
            wrong.append(f"{_rel(path)}:{node.lineno}: .{node.attr}")
    assert wrong == [], "private attributes read across modules: " + ", ".join(wrong)
