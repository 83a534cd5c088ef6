"""Parse and check rule-file texts one at a time, keeping every problem and every source text.

A text goes through the one parser (``engine.config._yaml``), then its kind's model; when the model
refuses it, what did validate is checked all the same (``partial``), so one run reports every problem
of a file. The checks that span files (strategy names) run once the names are known.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from engine.config import lint
from engine.config._errors import problems_from
from engine.config._yaml import load_text
from engine.config.alerts_lint import check_alerts
from engine.config.models import KINDS, AlertRouting, AllocationRules, CustomRules, Instruments, Limits, Model, ProfitRules, Strategy
from engine.config.problems import Problem
from engine.config.ruleset import Validation

M = TypeVar("M", bound=Model)

_TOO_DEEP = ("expected values nested less deeply, found nesting too deep to check "
             "(a condition with hundreds of parentheses or 'not's?)")


class Collector:
    """Parses and checks rule-file texts one by one, keeping every problem and source text."""

    def __init__(self) -> None:
        self.result = Validation()
        self.loaded: dict[str, list[lint.Loaded[Model]]] = {}
        # Strategy names for the checks across files; None while unknown (then those checks are skipped).
        self.names: list[str] | None = None

    def problem(self, name: str, message: str) -> None:
        """Add a problem about the file or folder ``name`` as a whole (located at its start)."""
        self.result.problems.append(Problem(name, 1, 1, (), message))

    def loaded_as(self, kind: str, model_cls: type[M]) -> list[lint.Loaded[M]]:
        """Return the files of ``kind`` loaded so far (partial ones included), typed by their model ``model_cls``."""
        return [item for item in self.loaded.get(kind, []) if lint.holds(item, model_cls)]

    def load(self, name: str, kind: str, text: str | Problem) -> lint.Loaded[Model] | None:
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
            found = type(doc.data).__name__ if doc.data is not None else "nothing"
            self.result.problems.append(Problem(name, 1, 1, (), f"expected a mapping of settings, found {found}"))
            return None
        try:
            try:
                item = lint.Loaded(doc, model_cls.model_validate(doc.data))
            except ValidationError as exc:
                self.result.problems.extend(problems_from(exc, doc, model_cls))
                # Check what did validate too, so one run reports every problem of the file.
                item = lint.Loaded(doc, _partial(model_cls, doc.data), partial=True)
            problems = _check_one(item, self.names)
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


def _partial(model_cls: type[Model], data: Mapping[str | int, object]) -> Model:
    """Return a model holding only the top-level fields of ``data`` that validate on their own."""
    good: dict[str, Any] = {}  # field values of every type, as ``model_construct`` takes them
    for name, info in model_cls.model_fields.items():
        if name not in data:
            continue
        value = data[name]
        try:
            good[name] = _field_adapter(model_cls, name).validate_python(value, strict=True)
        except ValidationError:
            item_type = _model_items(info.annotation)
            if item_type is not None and isinstance(value, list):
                # A list of models keeps its valid items in place (None for the others), so checks
                # of single items still run and their positions stay right.
                good[name] = [_valid_or_none(item_type, item) for item in value]
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


@functools.cache
def _field_adapter(model_cls: type[Model], name: str) -> TypeAdapter[Any]:
    # The field's annotation with its constraints put back (as Annotated); what it validates to varies by field.
    return TypeAdapter(model_cls.model_fields[name].rebuild_annotation())


def _check_one(item: lint.Loaded[Model], names: list[str] | None) -> list[Problem]:
    """Run the checks of the file's kind, told by its model's class; ``names``: the known strategies, None if unknown."""
    if lint.holds(item, Strategy):
        return lint.check_strategy(item)
    if lint.holds(item, Limits):
        return lint.check_limits(item)
    if lint.holds(item, ProfitRules):
        return lint.check_profit(item)
    if lint.holds(item, AllocationRules):
        return lint.check_allocation(item, names)
    if lint.holds(item, CustomRules):
        return lint.check_custom(item, names)
    if lint.holds(item, Instruments):
        return lint.check_instruments(item, names)
    if lint.holds(item, AlertRouting):
        return check_alerts(item, names)
    return []
