"""Find, load and validate rule files, and assemble them into a versioned ``RuleSet``.

A configuration folder holds ``strategies/*.yaml``, ``rules/{limits,allocation,profit,custom,
instruments,alerts}.yaml`` and ``schedules.yaml``. ``strategies/`` (at least one strategy) and
``rules/limits.yaml`` are required; the other files are optional and default to the desk's standard
values of the models. Every problem of every file is collected; nothing raises for bad input except
``load_config``/``load_strategies``/``ruleset_from_texts``, which raise one ``ConfigError`` carrying
all of them.

The checks work on texts: ``load_texts`` validates a configuration given as relative path -> YAML text
(the texts the service stores per version) and reads no file. Rule files are read at the edge, by
``_read`` alone (a regular file of at most 1 MiB, as ``engine.config.read`` allows), and
``validate_config`` is that reader over a folder plus the checks ``load_texts`` runs. Every text goes
through the one parser of ``engine.config._yaml``, which refuses hostile input (alias bombs, deep
nesting, unsupported tags, huge texts) within its limits.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TypeVar

from engine.config import capital_lint, lint
from engine.config._yaml import load_text
from engine.config.collect import Collector
from engine.config.conditions import suggest
from engine.config.kinds import RULE_FILES, kind_from_text, kind_of
from engine.config.models import (
    AlertRouting,
    AllocationRules,
    CustomRules,
    Instruments,
    Limits,
    Model,
    ProfitRules,
    Schedules,
    Strategy,
)
from engine.config.problems import Problem, sort_problems
from engine.config.read import read_rule_file
from engine.config.ruleset import RuleSet, Validation, rules_version
from engine.errors import ConfigError

M = TypeVar("M", bound=Model)

# Names that other code imports from here: the loader is the configuration's front door.
__all__ = [
    "REQUIRED_RULE_FILES",
    "RULE_FILES",
    "RuleSet",
    "Validation",
    "display_path",
    "kind_from_text",
    "kind_of",
    "load_config",
    "load_strategies",
    "load_texts",
    "rules_version",
    "ruleset_from_texts",
    "validate_config",
    "validate_file",
    "validate_paths",
    "validate_text",
]

REQUIRED_RULE_FILES = ("limits.yaml",)
_YAML = (".yaml", ".yml")
_UNKNOWN_KIND = ("cannot tell which kind of rule file this is: expected it under strategies/ or rules/, named "
                 "schedules.yaml, or a first line '# yaml-language-server: $schema=.../<kind>.schema.json'")
_STRATEGIES, _RULES, _SCHEDULES = "strategies", "rules", "schedules.yaml"
_MISPLACED = "expected a rule file at strategies/NAME.yaml, rules/NAME.yaml or schedules.yaml, found {!r}"


def display_path(path: str) -> str:
    """Return ``path`` relative to the current directory when it is below it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _read(path: str) -> str | Problem:
    """Return the text of the rule file at ``path``, or the problem that kept it unread.

    The one place the loader reads a rule file, by ``engine.config.read``: a regular file of UTF-8 of
    at most ``MAX_FILE_BYTES``; a FIFO, device or folder is refused unopened.
    """
    return read_rule_file(path, display_path(path))


def _yaml_names(folder: str) -> list[str]:
    return sorted(f for f in os.listdir(folder) if f.endswith(_YAML))


def load_texts(files: Mapping[str, str]) -> Validation:
    """Validate a configuration given as texts; on success ``ruleset`` is set. Reads no file.

    ``files`` maps a path relative to the configuration folder (``strategies/arbitrage.yaml``,
    ``rules/limits.yaml``, ``schedules.yaml``) to the file's YAML text. The checks, the problems and
    the version are ``validate_config``'s on a folder holding those files, with every problem and
    ``sources`` naming a file by that relative path. A path that is no rule file's place
    (``notes.txt``, ``strategies/old/a.yaml``, an absolute path) is a problem rather than left out.
    """
    folders = {rel.split("/", 1)[0] for rel in files if "/" in rel} & {_STRATEGIES, _RULES}
    return _validate(files, frozenset(folders), lambda rel: rel)


def ruleset_from_texts(files: Mapping[str, str]) -> RuleSet:
    """Load a configuration given as texts (see ``load_texts``); raise ``ConfigError`` with every problem."""
    result = load_texts(files)
    if result.ruleset is None:
        raise ConfigError(result.problems)
    return result.ruleset


def validate_config(config_dir: str = ".") -> Validation:
    """Validate the whole configuration in ``config_dir``; on success ``ruleset`` is set.

    The folder's rule files are read (``_read_folder``) and checked as ``load_texts`` checks texts;
    problems name the files by their path from the current directory (absolute when outside it).
    """
    entries, folders = _read_folder(config_dir)
    return _validate(entries, folders, lambda rel: display_path(os.path.join(config_dir, *rel.split("/"))))


def _read_folder(config_dir: str) -> tuple[dict[str, str | Problem], frozenset[str]]:
    """Read the rule files of the folder ``config_dir``: (relative path -> text, or the problem that kept
    it unread) and which of strategies/ and rules/ exist.

    Only what the checks load is read: every ``strategies/*.yaml``, the known ``rules/`` files that are
    regular files (another kind of file there counts as missing), and ``schedules.yaml`` when it is a
    regular file. An unknown ``rules/*.yaml`` is listed, unread, with its problem.
    """
    entries: dict[str, str | Problem] = {}
    folders = set()
    for sub in (_STRATEGIES, _RULES):
        folder = os.path.join(config_dir, sub)
        if not os.path.isdir(folder):
            continue
        folders.add(sub)
        for f in _yaml_names(folder):
            path = os.path.join(folder, f)
            if sub == _RULES and f not in RULE_FILES:
                entries[f"{sub}/{f}"] = Problem(display_path(path), 1, 1, (), _unknown_rule_file(f))
            elif sub == _STRATEGIES or os.path.isfile(path):
                entries[f"{sub}/{f}"] = _read(path)
    schedules = os.path.join(config_dir, _SCHEDULES)
    if os.path.isfile(schedules):
        entries[_SCHEDULES] = _read(schedules)
    return entries, frozenset(folders)


def _unknown_rule_file(f: str) -> str:
    return f"unknown rule file {f!r}{suggest(f, RULE_FILES)}; expected one of {', '.join(RULE_FILES)}"


def _place(rel: str) -> str | None:
    """Return where a relative path lies (strategies, rules, or "" for schedules.yaml); None: no rule file's place."""
    parts = rel.split("/")
    if len(parts) == 2 and parts[0] in (_STRATEGIES, _RULES) and parts[1].endswith(_YAML):
        return parts[0]
    return "" if rel == _SCHEDULES else None


def _validate(entries: Mapping[str, str | Problem], folders: frozenset[str], show: Callable[[str], str]) -> Validation:
    """Check a configuration: ``entries`` by relative path, ``folders`` the ones of strategies/ and rules/
    that exist, ``show`` the display name of a relative path."""
    c = Collector()
    placed: dict[str, list[str]] = {_STRATEGIES: [], _RULES: [], "": []}
    for rel in entries:
        where = _place(rel)
        if where is None:
            c.problem(show(rel), _MISPLACED.format(rel))
        else:
            placed[where].append(rel)
    count = 0
    if _STRATEGIES in folders:
        count = c.strategies([(show(rel), entries[rel]) for rel in sorted(placed[_STRATEGIES])], show(_STRATEGIES))
    else:
        c.problem(show(_STRATEGIES), "expected a strategies/ folder with one YAML file per strategy, found none")
    strategies = c.loaded_as("strategy", Strategy)
    c.result.problems.extend(lint.check_strategy_set(strategies))
    # A partial strategy may lack its name; the names are known only when every strategy has one.
    names = [s.model.name for s in strategies if hasattr(s.model, "name")]
    if count and len(strategies) == count and len(names) == count:
        c.names = names
    if _RULES in folders:
        for rel in sorted(placed[_RULES]):
            f = rel.split("/")[1]
            if f not in RULE_FILES:
                c.problem(show(rel), _unknown_rule_file(f))
        for f, kind in RULE_FILES.items():
            rel = f"{_RULES}/{f}"
            if rel in entries:
                c.load(show(rel), kind, entries[rel])
            elif f in REQUIRED_RULE_FILES:
                c.problem(show(rel), f"expected rules/{f}, found no such file")
        c.result.problems.extend(capital_lint.check_capital(
            _one(c, "limits", Limits), _one(c, "allocation", AllocationRules), _one(c, "instruments", Instruments)))
    else:
        c.problem(show(_RULES), "expected a rules/ folder (rules/limits.yaml at least), found none")
    if _SCHEDULES in entries:
        c.load(show(_SCHEDULES), "schedules", entries[_SCHEDULES])
    c.result.problems = sort_problems(c.result.problems)
    if not c.result.problems:
        c.result.ruleset = _assemble(c, tuple(c.result.files))
    return c.result


def _one(c: Collector, kind: str, model_cls: type[M]) -> lint.Loaded[M] | None:
    """The loaded file of ``kind`` (partial ones included), None when there is none."""
    items = c.loaded_as(kind, model_cls)
    return items[0] if items else None


def _single(c: Collector, kind: str, model_cls: type[M]) -> M:
    """Return the model of the file of ``kind``, else the defaults of ``model_cls`` (the file is optional)."""
    items = c.loaded_as(kind, model_cls)
    return items[0].model if items else model_cls()


def _assemble(c: Collector, files: tuple[str, ...]) -> RuleSet:
    ruleset = RuleSet(
        strategies=MappingProxyType({i.model.name: i.model for i in c.loaded_as("strategy", Strategy)}),
        limits=_single(c, "limits", Limits),
        allocation=_single(c, "allocation", AllocationRules),
        profit=_single(c, "profit", ProfitRules),
        custom=_single(c, "custom", CustomRules),
        instruments=_single(c, "instruments", Instruments),
        schedules=_single(c, "schedules", Schedules),
        files=files,
        alerts=_single(c, "alerts", AlertRouting),
    )
    return dataclasses.replace(ruleset, version=rules_version(ruleset))


def validate_paths(paths: Sequence[str], config_dir: str = ".") -> Validation:
    """Validate the given files and folders (none: the whole configuration in ``config_dir``).

    A folder holding ``strategies/`` or ``rules/`` is validated as a whole configuration; a folder of
    strategy files is validated with the checks across strategies; a file is validated on its own,
    its kind told by where it lies (strategies/, rules/<name>.yaml, schedules.yaml) or by its
    ``# yaml-language-server: $schema=...`` first line.
    """
    if not paths:
        return validate_config(config_dir)
    if len(paths) == 1 and _is_config_dir(paths[0]):
        return validate_config(paths[0])
    c = Collector()
    for path in paths:
        if os.path.isdir(path):
            if _is_config_dir(path):
                sub = validate_config(path)
                c.result.problems.extend(sub.problems)
                c.result.sources.update(sub.sources)
                c.result.files.extend(sub.files)
            elif _yaml_names(path):
                before = len(c.loaded_as("strategy", Strategy))
                for f in _yaml_names(path):
                    full = os.path.join(path, f)
                    c.load(display_path(full), kind_of(full) or "strategy", _read(full))
                strategies = c.loaded_as("strategy", Strategy)[before:]
                c.result.problems.extend(lint.check_strategy_set(strategies))
            else:
                c.problem(display_path(path), "expected rule files (*.yaml) in this folder, found none")
        elif os.path.isfile(path):
            kind = kind_of(path)
            if kind is None:
                c.problem(display_path(path), _UNKNOWN_KIND)
            else:
                c.load(display_path(path), kind, _read(path))
        elif os.path.exists(path):  # a FIFO, a device, a socket: the reader says which, unopened
            c.result.problems.extend(_unread(path))
        else:
            c.problem(display_path(path), "no such file or folder")
    c.result.problems = sort_problems(c.result.problems)
    return c.result


def validate_file(path: str, kind: str | None = None) -> Validation:
    """Validate one rule file on its own; ``kind`` (a key of ``KINDS``) defaults to ``kind_of(path)``."""
    c = Collector()
    kind = kind or kind_of(path)
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO, a device, a folder: refused unopened
        c.result.problems.extend(_unread(path))
    elif kind is None:
        c.problem(display_path(path), _UNKNOWN_KIND)
    else:
        c.load(display_path(path), kind, _read(path))
    c.result.problems = sort_problems(c.result.problems)
    return c.result


def validate_text(text: str, kind: str, file: str = "<text>") -> Validation:
    """Validate the contents of one rule file of ``kind`` given as text (``file`` names it in problems)."""
    c = Collector()
    c.load(file, kind, text)
    c.result.problems = sort_problems(c.result.problems)
    return c.result


def _unread(path: str) -> list[Problem]:
    """Return why ``path``, no regular file (a FIFO, a device, a folder), is not read."""
    entry = _read(path)
    # a regular file put there since it was looked at: its problems, as any file's
    return [entry] if isinstance(entry, Problem) else load_text(entry, display_path(path))[1]


def _is_config_dir(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "strategies")) or os.path.isdir(os.path.join(path, "rules"))


def load_config(config_dir: str = ".") -> RuleSet:
    """Load and validate the configuration in ``config_dir``; raise ``ConfigError`` with every problem."""
    result = validate_config(config_dir)
    if result.ruleset is None:
        raise ConfigError(result.problems)
    return result.ruleset


def load_strategies(folder: str) -> dict[str, Strategy]:
    """Load and validate the strategy files of ``folder`` (a strategies/ folder or a configuration folder)."""
    if os.path.isdir(os.path.join(folder, "strategies")):
        folder = os.path.join(folder, "strategies")
    if not os.path.isdir(folder):
        raise ConfigError([Problem(display_path(folder), 1, 1, (), "expected a folder of strategy files, found none")])
    c = Collector()
    paths = [os.path.join(folder, f) for f in _yaml_names(folder)]
    c.strategies([(display_path(p), _read(p)) for p in paths], display_path(folder))
    strategies = c.loaded_as("strategy", Strategy)
    c.result.problems.extend(lint.check_strategy_set(strategies))
    if c.result.problems:
        raise ConfigError(sort_problems(c.result.problems))
    return {i.model.name: i.model for i in strategies}
