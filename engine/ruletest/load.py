"""Find, load and check rule unit test files, and build each case's rule set.

Everything is checked before anything runs (as rule files are): the YAML and the models of
``engine.ruletest.models``, then per case the references (the strategy exists, tick indices lie within
the ticks, expectations name known positions) and the overrides, deep-merged into the configuration's
models and validated again with the rule files' own checks. Every problem names file:line:column.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from engine.config import lint
from engine.config._errors import problems_from
from engine.config._yaml import Document, load_file
from engine.config.conditions import suggest
from engine.config.load import RuleSet, display_path, rules_version
from engine.config.models import AllocationRules, CustomRules, Limits, Model, ProfitRules, Strategy
from engine.config.problems import Path, Problem, sort_problems
from engine.ruletest.models import Case, TestFile

_YAML = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedCase:
    """A checked case, ready to run: its file, its place in the file, and its rule set."""

    file: str
    index: int
    case: Case
    rules: RuleSet


@dataclass
class Loaded:
    """Every case of the test files, and every problem found in them."""

    cases: list[LoadedCase] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_files(paths: Sequence[str]) -> list[str]:
    """Return the test files of ``paths``: files as given, folders searched recursively for *.yaml."""
    out: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(_YAML))
        else:
            out.append(path)
    return out


def load_tests(paths: Sequence[str], rules: RuleSet) -> Loaded:
    """Load and check the test files of ``paths`` against the configuration ``rules``."""
    result = Loaded()
    for path in find_files(paths):
        name = display_path(path)
        doc, problems = load_file(path, name)
        result.files.append(name)
        result.sources[name] = doc.text
        if problems:
            result.problems.extend(problems)
            continue
        if not isinstance(doc.data, dict):
            found = "an empty file" if doc.data is None else "a list" if isinstance(doc.data, list) else repr(doc.data)
            result.problems.append(Problem(name, 1, 1, (), f"expected a mapping with a 'tests' list, found {found}"))
            continue
        try:
            model = TestFile.model_validate(doc.data)
        except ValidationError as exc:
            result.problems.extend(problems_from(exc, doc, TestFile))
            continue
        for i, case in enumerate(model.tests):
            problems, case_rules = _check_case(doc, i, case, rules)
            result.problems.extend(problems)
            if case_rules is not None and not problems:
                result.cases.append(LoadedCase(name, i, case, case_rules))
    result.problems = sort_problems(result.problems)
    return result


def _at(doc: Document, path: Path, message: str) -> Problem:
    mark = doc.mark(path)
    return Problem(doc.file, mark.line, mark.column, path, message)


def _hint(name: str, known: list[str], where: str = "") -> str:
    return suggest(name, known) or f"; expected one{where}: {', '.join(sorted(known))}"


def _check_case(doc: Document, i: int, case: Case, rules: RuleSet) -> tuple[list[Problem], RuleSet | None]:
    base: Path = ("tests", i)
    out: list[Problem] = []
    if case.strategy not in rules.strategies:
        out.append(_at(doc, (*base, "strategy"), f"unknown strategy {case.strategy!r}" + _hint(case.strategy, list(rules.strategies))))
    if case.symbol not in rules.instruments.instruments:
        known = sorted(rules.instruments.instruments)
        out.append(_at(doc, (*base, "symbol"), f"unknown symbol {case.symbol!r}" + _hint(case.symbol, known, " of rules/instruments.yaml")))
    n = len(case.ticks)
    ids: dict[str, int] = {}
    for j, p in enumerate(case.positions):
        if p.id in ids:
            out.append(_at(doc, (*base, "positions", j, "id"), f"duplicate position id {p.id!r} (also position {ids[p.id] + 1})"))
        ids.setdefault(p.id, j)
        if p.at > n:
            out.append(_at(doc, (*base, "positions", j, "at"),
                           f"expected a tick index from 0 to {n} (the case has {n} ticks), found {p.at}"))
        if p.stop_loss is not None and (p.stop_loss - p.entry) * (1 if p.side == "long" else -1) >= 0:
            out.append(_at(doc, (*base, "positions", j, "stop_loss"),
                           f"expected a stop {'below' if p.side == 'long' else 'above'} the entry {p.entry:g} of a {p.side} position, "
                           f"found {p.stop_loss:g}"))
    for j, e in enumerate(case.expect):
        if e.at > n:
            out.append(_at(doc, (*base, "expect", j, "at"), f"expected a tick index from 0 to {n} (the case has {n} ticks), found {e.at}"))
        if e.position is not None and e.position not in ids:
            out.append(_at(doc, (*base, "expect", j, "position"),
                           f"unknown position {e.position!r}" + _hint(e.position, list(ids), " proposed by the case")))
    if out:
        return out, None
    return apply_overrides(doc, base, case, rules)


# --- overrides -------------------------------------------------------------------------------------

#: portfolio rule files a case may override: key -> (RuleSet field, model, check)
_PORTFOLIO: dict[str, tuple[str, type[Model], Callable[[lint.Loaded, list[str]], list[Problem]]]] = {
    "limits": ("limits", Limits, lambda item, names: lint.check_limits(item)),
    "allocation": ("allocation", AllocationRules, lint.check_allocation),
    "profit": ("profit", ProfitRules, lambda item, names: lint.check_profit(item)),
    "custom": ("custom", CustomRules, lint.check_custom),
}


def _check_with_names(check: Callable[[lint.Loaded, list[str]], list[Problem]], names: list[str],
                      item: lint.Loaded) -> list[Problem]:
    return check(item, names)


def deep_merge(base: Any, override: Any) -> Any:
    """Return ``base`` with ``override`` merged in: mappings key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override


def _subdocument(doc: Document, prefix: Path, data: Any) -> Document:
    """A view of ``doc`` rooted at ``prefix`` holding ``data``: errors in merged data point into the override."""
    n = len(prefix)
    sub = Document(file=doc.file, text=doc.text, data=data)
    sub.values = {p[n:]: m for p, m in doc.values.items() if p[:n] == prefix}
    sub.keys = {p[n:]: m for p, m in doc.keys.items() if p[:n] == prefix and len(p) > n}
    sub.string_starts = {p[n:]: m for p, m in doc.string_starts.items() if p[:n] == prefix}
    sub.values.setdefault((), doc.mark(prefix))
    return sub


def _revalidate(doc: Document, prefix: Path, model_cls: type[Model], current: Model, override: Any,
                check: Callable[[lint.Loaded], list[Problem]]) -> tuple[Model | None, list[Problem]]:
    if not isinstance(override, dict):
        return None, [_at(doc, prefix, f"expected a mapping of {model_cls.__name__} settings to merge, found {type(override).__name__}")]
    data = deep_merge(current.model_dump(mode="python"), override)
    sub = _subdocument(doc, prefix, data)
    try:
        model = model_cls.model_validate(data)
    except ValidationError as exc:
        return None, [_reroot(p, prefix) for p in problems_from(exc, sub, model_cls)]
    problems = [_reroot(p, prefix) for p in check(lint.Loaded(sub, model))]
    return (None if problems else model), problems


def _reroot(p: Problem, prefix: Path) -> Problem:
    return dataclasses.replace(p, path=(*prefix, *p.path))


def apply_overrides(doc: Document, base: Path, case: Case, rules: RuleSet) -> tuple[list[Problem], RuleSet | None]:
    """Return the case's rule set: ``rules`` with the case's overrides merged in and validated again."""
    if not case.overrides:
        return [], rules
    prefix: Path = (*base, "overrides")
    strategy_part = {k: v for k, v in case.overrides.items() if k not in _PORTFOLIO}
    problems: list[Problem] = []
    changes: dict[str, Any] = {}
    if "name" in strategy_part:
        problems.append(_at(doc, (*prefix, "name"),
                            "the strategy's name cannot be overridden: the case names its strategy with 'strategy'"))
    elif strategy_part:
        strategy, found = _revalidate(doc, prefix, Strategy, rules.strategies[case.strategy], strategy_part, lint.check_strategy)
        problems.extend(found)
        if strategy is not None:
            changes["strategies"] = MappingProxyType({**rules.strategies, case.strategy: strategy})
    names = list(rules.strategies)
    for key, (attr, model_cls, check) in _PORTFOLIO.items():
        if key in case.overrides:
            model, found = _revalidate(doc, (*prefix, key), model_cls, getattr(rules, attr), case.overrides[key],
                                       functools.partial(_check_with_names, check, names))
            problems.extend(found)
            if model is not None:
                changes[attr] = model
    if problems:
        return problems, None
    built = dataclasses.replace(rules, **changes)
    return [], dataclasses.replace(built, version=rules_version(built))
