"""Find, load and validate rule files, and assemble them into a versioned ``RuleSet``.

A configuration folder holds ``strategies/*.yaml``, ``rules/{limits,allocation,profit,custom,
instruments}.yaml`` and ``schedules.yaml``. ``strategies/`` (at least one strategy) and
``rules/limits.yaml`` are required; the other files are optional and default to the desk's standard
values of the models. Every problem of every file is collected; nothing raises for bad input except
``load_config``/``load_strategies``/``ruleset_from_texts``, which raise one ``ConfigError`` carrying
all of them.

The checks work on texts: ``load_texts`` validates a configuration given as relative path -> YAML text
(the texts the service stores per version) and reads no file. Rule files are read at the edge, by
``_read`` alone (a regular file of at most 1 MiB, as ``engine.config._yaml`` allows), and
``validate_config`` is that reader over a folder plus the checks ``load_texts`` runs. Every text goes
through the one parser of ``engine.config._yaml``, which refuses hostile input (alias bombs, deep
nesting, unsupported tags, huge texts) within its limits.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

from typing import Annotated

from pydantic import TypeAdapter, ValidationError

from engine.config import lint
from engine.config._errors import problems_from
from engine.config._yaml import _read_text, _Unreadable, load_text, read_head
from engine.config.conditions import suggest
from engine.config.models import (
    KINDS,
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
from engine.errors import ConfigError

#: rules/<file> -> kind
RULE_FILES = {
    "limits.yaml": "limits",
    "allocation.yaml": "allocation",
    "profit.yaml": "profit",
    "custom.yaml": "custom",
    "instruments.yaml": "instruments",
}
REQUIRED_RULE_FILES = ("limits.yaml",)
_YAML = (".yaml", ".yml")
_UNKNOWN_KIND = ("cannot tell which kind of rule file this is: expected it under strategies/ or rules/, named "
                 "schedules.yaml, or a first line '# yaml-language-server: $schema=.../<kind>.schema.json'")
_MODELINE = re.compile(r"#\s*yaml-language-server:\s*\$schema=(\S*)")
_SCHEMA_SUFFIX = ".schema.json"
_MODELINE_CHARS = 4096  # of a text's start, where its first line is looked for
_STRATEGIES, _RULES, _SCHEDULES = "strategies", "rules", "schedules.yaml"
_MISPLACED = "expected a rule file at strategies/NAME.yaml, rules/NAME.yaml or schedules.yaml, found {!r}"
_TOO_DEEP = ("expected values nested less deeply, found nesting too deep to check "
             "(a condition with hundreds of parentheses or 'not's?)")


@dataclass(frozen=True)
class RuleSet:
    """Every rule file of a configuration, validated, with the version of its meaning."""

    strategies: Mapping[str, Strategy]
    limits: Limits
    allocation: AllocationRules
    profit: ProfitRules
    custom: CustomRules
    instruments: Instruments
    schedules: Schedules
    version: str = ""
    files: tuple[str, ...] = ()

    def canonical(self) -> dict:
        """Return the meaning of the rule files as plain JSON data (no comments, no layout, defaults filled)."""
        return {
            "strategies": {name: s.model_dump(mode="json") for name, s in sorted(self.strategies.items())},
            "limits": self.limits.model_dump(mode="json"),
            "allocation": self.allocation.model_dump(mode="json"),
            "profit": self.profit.model_dump(mode="json"),
            "custom": self.custom.model_dump(mode="json"),
            "instruments": self.instruments.model_dump(mode="json"),
            "schedules": self.schedules.model_dump(mode="json"),
        }

    def max_positions(self, strategy: str) -> int:
        """Return the strategy's max open positions (its own, else the limits default)."""
        own = self.strategies[strategy].max_positions
        return own if own is not None else self.limits.per_strategy.max_positions

    def risk_allocation(self, strategy: str) -> float:
        """Return the strategy's max open risk / equity (its own, else the limits default)."""
        own = self.strategies[strategy].risk_allocation
        return own if own is not None else self.limits.per_strategy.risk_allocation


def rules_version(ruleset: RuleSet) -> str:
    """Return the version of a rule set: a hash of its canonical content.

    Comments, key order, layout and values equal to the defaults do not change it; any change of
    meaning does.
    """
    blob = json.dumps(ruleset.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "rv-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Validation:
    """The outcome of validating rule files: every problem, and the rule set when complete and valid."""

    problems: list[Problem] = field(default_factory=list)
    ruleset: RuleSet | None = None
    sources: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def display_path(path: str) -> str:
    """Return ``path`` relative to the current directory when it is below it, else absolute."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def kind_of(path: str) -> str | None:
    """Tell which kind of rule file ``path`` is, from where it lies or its schema modeline.

    The order is ``kind_from_text``'s. Only a regular file is opened, and only its start read; a
    FIFO, device or folder is never opened (its kind comes from its place and name alone).
    """
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return _kind(os.path.basename(path), parent, lambda: read_head(path) or "")


def kind_from_text(name: str, text: str) -> str | None:
    """Tell which kind of rule file ``text`` is from ``name``, where it would lie, and its first line.

    Reads no file: this is how a request body's kind is told. ``name`` is a display path such as
    ``strategies/arbitrage.yaml``, ``rules/limits.yaml`` or ``schedules.yaml`` (``""`` when unknown).
    In order: a file under ``strategies/`` is a strategy, ``rules/<name>.yaml`` is that rule file,
    ``schedules.yaml`` the schedules; else the first line ``# yaml-language-server:
    $schema=.../<kind>.schema.json`` tells it; else the file name alone (``limits.yaml``). None when
    nothing does.
    """
    parent = os.path.basename(os.path.dirname(name))
    return _kind(os.path.basename(name), parent, lambda: text)


def _kind(base: str, parent: str, head: Callable[[], str]) -> str | None:
    if parent == "strategies":
        return "strategy"
    if base in RULE_FILES and parent == "rules":
        return RULE_FILES[base]
    if base in ("schedules.yaml", "schedules.yml"):
        return "schedules"
    kind = _modeline_kind(head())
    return kind if kind is not None else RULE_FILES.get(base)


def _modeline_kind(text: str) -> str | None:
    """Return the kind a first-line ``# yaml-language-server: $schema=.../<kind>.schema.json`` names."""
    first = re.split(r"\r\n|\r|\n", text[:_MODELINE_CHARS], maxsplit=1)[0]
    m = _MODELINE.search(first)
    if m is None:
        return None
    # The letters right before the first ".schema.json" that follows one; string scans, where a
    # regular expression backtracks for ages on a long run of letters.
    url, start = m.group(1), 0
    while (end := url.find(_SCHEMA_SUFFIX, start)) >= 0:
        begin = end
        while begin and "a" <= url[begin - 1] <= "z":
            begin -= 1
        if begin < end:
            return url[begin:end] if url[begin:end] in KINDS else None
        start = end + 1
    return None


class _Collector:
    """Parses and checks rule-file texts one by one, keeping every problem and source text."""

    def __init__(self) -> None:
        self.result = Validation()
        self.loaded: dict[str, list[lint.Loaded]] = {}
        # Strategy names for the checks across files; None while unknown (then those checks are skipped).
        self.names: list[str] | None = None

    def problem(self, name: str, message: str) -> None:
        self.result.problems.append(Problem(name, 1, 1, (), message))

    def load(self, name: str, kind: str, text: str | Problem) -> lint.Loaded | None:
        """Parse and check the text of the file ``name``; a ``Problem`` instead of text is why it was not read."""
        self.result.files.append(name)
        if isinstance(text, Problem):
            self.result.sources[name] = ""
            self.result.problems.append(text)
            return None
        doc, problems = load_text(text, name)
        self.result.sources[name] = doc.text
        if problems:
            self.result.problems.extend(problems)
            return None
        model_cls = KINDS[kind]
        if not isinstance(doc.data, dict):
            self.result.problems.append(Problem(name, 1, 1, (), f"expected a mapping of settings, found {type(doc.data).__name__ if doc.data is not None else 'nothing'}"))
            return None
        try:
            try:
                item = lint.Loaded(doc, model_cls.model_validate(doc.data))
            except ValidationError as exc:
                self.result.problems.extend(problems_from(exc, doc, model_cls))
                # Check what did validate too, so one run reports every problem of the file.
                item = lint.Loaded(doc, _partial(model_cls, doc.data), partial=True)
            problems = _check_one(kind, item, self.names)
        except RecursionError:
            # The loader bounds the nesting of the data; a condition's text can still nest deeper
            # than the checks recurse. A last resort, so that no input ends in a traceback.
            self.result.problems.append(Problem(name, 1, 1, (), _TOO_DEEP))
            return None
        self.loaded.setdefault(kind, []).append(item)
        self.result.problems.extend(problems)
        return None if item.partial else item

    def strategies(self, texts: Sequence[tuple[str, str | Problem]], folder: str) -> int:
        """Load every strategy (display name, text) of the strategies folder ``folder``; return how many."""
        if not texts:
            self.problem(folder, "expected at least one strategy file (*.yaml) in strategies/, found none")
        for name, text in texts:
            self.load(name, "strategy", text)
        return len(texts)


def _read(path: str) -> str | Problem:
    """Return the text of the rule file at ``path``, or the problem that kept it unread.

    The one place rule files are read, by ``engine.config._yaml``'s reader: a regular file of UTF-8 of
    at most ``MAX_FILE_BYTES``; a FIFO, device or folder is refused unopened.
    """
    name = display_path(path)
    try:
        return _read_text(path)
    except _Unreadable as exc:
        return Problem(name, exc.line, exc.column, (), exc.message)
    except OSError as exc:
        return Problem(name, 1, 1, (), f"cannot read the file: {exc.strerror or exc}")


def _yaml_names(folder: str) -> list[str]:
    return sorted(f for f in os.listdir(folder) if f.endswith(_YAML))


def _partial(model_cls: type[Model], data: dict) -> Model:
    """Return a model holding only the top-level fields of ``data`` that validate on their own."""
    good = {}
    for name, info in model_cls.model_fields.items():
        if name not in data:
            continue
        try:
            good[name] = _field_adapter(model_cls, name).validate_python(data[name], strict=True)
        except ValidationError:
            item_type = _model_items(info.annotation)
            if item_type is not None and isinstance(data[name], list):
                # A list of models keeps its valid items in place (None for the others), so checks
                # of single items still run and their positions stay right.
                good[name] = [_valid_or_none(item_type, item) for item in data[name]]
    return model_cls.model_construct(**good)


def _model_items(annotation: object) -> type[Model] | None:
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, Model):
            return item
    return None


def _valid_or_none(model_cls: type[Model], value: object) -> Model | None:
    try:
        return model_cls.model_validate(value)
    except ValidationError:
        return None


@functools.lru_cache(maxsize=None)
def _field_adapter(model_cls: type[Model], name: str) -> TypeAdapter:
    info = model_cls.model_fields[name]
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation)


def _check_one(kind: str, item: lint.Loaded, names: list[str] | None) -> list[Problem]:
    checks = {
        "strategy": lint.check_strategy,
        "limits": lint.check_limits,
        "profit": lint.check_profit,
        "allocation": lambda i: lint.check_allocation(i, names),
        "custom": lambda i: lint.check_custom(i, names),
        "instruments": lambda i: lint.check_instruments(i, names),
    }
    check = checks.get(kind)
    return check(item) if check else []


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
    c = _Collector()
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
    strategies = c.loaded.get("strategy", [])
    c.result.problems.extend(lint.check_strategy_set(strategies))
    names = [getattr(s.model, "name", None) for s in strategies]
    if count and len(strategies) == count and None not in names:
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
    else:
        c.problem(show(_RULES), "expected a rules/ folder (rules/limits.yaml at least), found none")
    if _SCHEDULES in entries:
        c.load(show(_SCHEDULES), "schedules", entries[_SCHEDULES])
    c.result.problems = sort_problems(c.result.problems)
    if not c.result.problems:
        c.result.ruleset = _assemble(c.loaded, tuple(c.result.files))
    return c.result


def _single(loaded: dict[str, list[lint.Loaded]], kind: str, default: Model) -> Model:
    items = loaded.get(kind)
    return items[0].model if items else default


def _assemble(loaded: dict[str, list[lint.Loaded]], files: tuple[str, ...]) -> RuleSet:
    ruleset = RuleSet(
        strategies=MappingProxyType({i.model.name: i.model for i in loaded.get("strategy", [])}),
        limits=_single(loaded, "limits", Limits()),
        allocation=_single(loaded, "allocation", AllocationRules()),
        profit=_single(loaded, "profit", ProfitRules()),
        custom=_single(loaded, "custom", CustomRules()),
        instruments=_single(loaded, "instruments", Instruments()),
        schedules=_single(loaded, "schedules", Schedules()),
        files=files,
    )
    return RuleSet(**{**ruleset.__dict__, "version": rules_version(ruleset)})


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
    c = _Collector()
    for path in paths:
        if os.path.isdir(path):
            if _is_config_dir(path):
                sub = validate_config(path)
                c.result.problems.extend(sub.problems)
                c.result.sources.update(sub.sources)
                c.result.files.extend(sub.files)
            elif _yaml_names(path):
                before = len(c.loaded.get("strategy", []))
                for f in _yaml_names(path):
                    full = os.path.join(path, f)
                    c.load(display_path(full), kind_of(full) or "strategy", _read(full))
                strategies = c.loaded.get("strategy", [])[before:]
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
    c = _Collector()
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
    c = _Collector()
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
    c = _Collector()
    c.strategies([(display_path(p), _read(p)) for p in (os.path.join(folder, f) for f in _yaml_names(folder))], display_path(folder))
    strategies = c.loaded.get("strategy", [])
    c.result.problems.extend(lint.check_strategy_set(strategies))
    if c.result.problems:
        raise ConfigError(sort_problems(c.result.problems))
    return {i.model.name: i.model for i in strategies}
