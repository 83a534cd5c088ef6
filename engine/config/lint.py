"""Semantic checks beyond types (DESIGN 3.1): each problem points at the node that causes it.

Per strategy: min <= target <= max; exit levels strictly increasing and of one kind; exit percentages
summing to at most 1; each level's ``sl_adjustment`` below its profit target; ``trailing_distance`` at
most ``max_trailing_distance``; profit-locking shares summing to 1.
Across strategies: unique names; targets summing to 1; sum of mins <= 1 <= sum of maxes.
Across files: custom rules name known strategies and have a position for position actions; allocation
methods have their parameters; every instrument's quote currency converts to the account currency;
the broker strategy map names known strategies.
On reload: a change that removes a strategy with open positions is refused (``check_removed_strategies``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeGuard, TypeVar

from engine.config import conditions, custom_lint
from engine.config._yaml import Document
from engine.config.grid import Grid
from engine.config.models import (
    AllocationRules,
    Band,
    CustomRules,
    ExitLevel,
    Instrument,
    Instruments,
    Limits,
    Model,
    ProfitRules,
    ProfitSplit,
    StopDefaults,
    Strategy,
    StrategyMap,
)
from engine.config.problems import Path, Problem
from engine.config.scopes import scope_of

M = TypeVar("M", bound=Model)
T = TypeVar("T")
_EPS = 1e-9


@dataclass(frozen=True)
class Loaded(Generic[M]):
    """A validated rule file: its document (for positions) and its model."""

    doc: Document
    model: M
    # True when the file had type errors: ``model`` then holds only the fields that validated
    # (``model_construct``), and a check that needs a missing field is skipped.
    partial: bool = False


def holds(item: Loaded[Model], model_cls: type[M]) -> TypeGuard[Loaded[M]]:
    """Tell whether ``item`` holds a ``model_cls`` model (a partial one included): its file's kind."""
    return isinstance(item.model, model_cls)


def at(doc: Document, path: Path, message: str, *, key: bool = False) -> Problem:
    """Return a problem located at ``path`` of ``doc`` (its key with ``key=True``)."""
    mark = doc.mark(path, key=key)
    return Problem(doc.file, mark.line, mark.column, tuple(path), message)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _field(model: M, read: Callable[[M], T]) -> T | None:
    """Return a field of a possibly partial model (see ``Loaded.partial``), None when it is missing."""
    try:
        return read(model)
    except AttributeError:  # a required field that did not validate is no attribute of a partial model
        return None


def _items(model: M, read: Callable[[M], Sequence[T]]) -> list[T | None]:
    """Return a list field of models of a possibly partial model: an item that did not validate is None."""
    return list(_field(model, read) or [])


def check_strategy(item: Loaded[Strategy]) -> list[Problem]:
    """Return the problems of one strategy file."""
    doc, s = item.doc, item.model
    out: list[Problem] = []
    band = _field(s, lambda m: m.allocation)
    if band is not None:
        out.extend(_check_band(doc, band))
    listed = _items(s, lambda m: m.exit_levels)
    # Some levels did not validate (see Loaded.partial): the set is unknown, and so are its checks.
    levels = [lv for lv in listed if lv is not None] if None not in listed else []
    out.extend(_check_levels(doc, levels, _field(s, lambda m: m.defaults)))
    t = _field(s, lambda m: m.trailing)
    distance, cap = (t.trailing_distance, t.max_trailing_distance) if t is not None else (None, None)
    if distance is not None and cap is not None and distance > cap:
        message = f"expected trailing_distance <= max_trailing_distance {_fmt(cap)}, found {_fmt(distance)}"
        out.append(at(doc, ("trailing", "trailing_distance"), message))
    split = _field(s, lambda m: m.profit_locking)
    if split is not None:
        out.extend(_check_split(doc, ("profit_locking",), split))
    return out


def _check_band(doc: Document, band: Band) -> list[Problem]:
    out: list[Problem] = []
    lo, target, hi = _fmt(band.min), _fmt(band.target), _fmt(band.max)
    if band.min > band.target:
        out.append(at(doc, ("allocation", "min"), f"expected min <= target, found min {lo} above target {target}"))
    if band.target > band.max:
        out.append(at(doc, ("allocation", "max"), f"expected target <= max, found max {hi} below target {target}"))
    elif band.min > band.max:
        out.append(at(doc, ("allocation", "max"), f"expected min <= max, found max {hi} below min {lo}"))
    return out


def _trigger(level: ExitLevel) -> tuple[str, float]:
    """Return what triggers an exit level: ``profit_target`` or ``r_multiple``, and its value."""
    if level.profit_target is not None:
        return "profit_target", level.profit_target
    if level.r_multiple is not None:
        return "r_multiple", level.r_multiple
    raise ValueError("expected an exit level with a profit_target or an r_multiple")  # ExitLevel validates one


def _check_levels(doc: Document, levels: Sequence[ExitLevel], defaults: StopDefaults | None) -> list[Problem]:
    out: list[Problem] = []
    triggers = [_trigger(lv) for lv in levels]
    kinds = {kind for kind, _ in triggers}
    if len(kinds) > 1:
        first = triggers[0][0]
        for i, (kind, _) in enumerate(triggers):
            if kind != first:
                message = f"expected every exit level to use {first} like the first one, found {kind}"
                out.append(at(doc, ("exit_levels", i, kind), message, key=True))
    else:
        previous: float | None = None
        for i, (kind, trigger) in enumerate(triggers):
            if previous is not None and trigger <= previous:
                message = f"expected exit levels strictly increasing, found {kind} {_fmt(trigger)} after {_fmt(previous)}"
                out.append(at(doc, ("exit_levels", i, kind), message))
            previous = trigger
    seen: dict[str, int] = {}
    for i, lv in enumerate(levels):
        if lv.id is not None and lv.id in seen:
            out.append(at(doc, ("exit_levels", i, "id"), f"expected each exit level id once, found {lv.id!r} again"))
        seen.setdefault(lv.id or "", i)
    total = 0.0
    for i, lv in enumerate(levels):
        total += lv.exit_percentage
        if total > 1 + _EPS:
            shares = " + ".join(_fmt(x.exit_percentage) for x in levels[: i + 1])
            message = f"expected exit percentages summing to at most 1, found {shares} = {_fmt(total)}"
            out.append(at(doc, ("exit_levels", i, "exit_percentage"), message))
            break
    for i, (lv, (kind, trigger)) in enumerate(zip(levels, triggers, strict=True)):
        if lv.sl_adjustment is None:
            continue
        if kind == "profit_target":
            target, what = trigger, f"its profit_target {_fmt(trigger)}"
        elif defaults is None:
            continue
        else:
            # An r_multiple level's profit, in entry terms, with the default stop as the initial risk.
            target = trigger * defaults.stop_loss
            what = f"its target {_fmt(trigger)}R = {_fmt(target)} at the default stop_loss {_fmt(defaults.stop_loss)}"
        if lv.sl_adjustment >= target:
            message = f"expected sl_adjustment below {what}, found {_fmt(lv.sl_adjustment)}"
            out.append(at(doc, ("exit_levels", i, "sl_adjustment"), message))
    return out


def _check_split(doc: Document, path: Path, split: ProfitSplit) -> list[Problem]:
    total = split.big_trades + split.weekly_target + split.compound
    if abs(total - 1) > 1e-6:
        return [at(doc, path, f"expected big_trades + weekly_target + compound = 1, found {_fmt(total)}", key=True)]
    return []


def check_strategy_set(items: Sequence[Loaded[Strategy]]) -> list[Problem]:
    """Return the problems of the strategies taken together (names, targets, bands)."""
    out: list[Problem] = []
    seen: dict[str, Loaded[Strategy]] = {}
    for item in items:
        name = _field(item.model, lambda m: m.name)
        if name is None:
            continue
        if name in seen:
            message = f"expected a unique strategy name, found {name!r} again (also in {seen[name].doc.file})"
            out.append(at(item.doc, ("name",), message))
        else:
            seen[name] = item
    # A strategy whose allocation did not validate has its own error; the sums are then unknown.
    if not items or any(_field(i.model, lambda m: m.allocation) is None or _field(i.model, lambda m: m.name) is None for i in items):
        return out
    first = items[0]
    targets = sum(i.model.allocation.target for i in items)
    if abs(targets - 1) > 1e-6:
        listing = ", ".join(f"{i.model.name} {_fmt(i.model.allocation.target)}" for i in items)
        message = f"expected allocation targets summing to 1 across strategies, found {_fmt(targets)} ({listing})"
        out.append(at(first.doc, ("allocation", "target"), message))
    mins = sum(i.model.allocation.min for i in items)
    maxes = sum(i.model.allocation.max for i in items)
    if mins > 1 + 1e-6:
        message = f"expected the sum of allocation mins <= 1 across strategies, found {_fmt(mins)}"
        out.append(at(first.doc, ("allocation", "min"), message))
    if maxes < 1 - 1e-6:
        message = f"expected the sum of allocation maxes >= 1 across strategies, found {_fmt(maxes)}"
        out.append(at(first.doc, ("allocation", "max"), message))
    return out


_POSITION_ACTIONS = ("close", "set_stop_loss", "set_take_profit", "reject_position")


def check_custom(item: Loaded[CustomRules], strategies: Iterable[str] | None) -> list[Problem]:
    """Return the problems of rules/custom.yaml (``strategies``: known names, None to skip that check)."""
    doc, custom = item.doc, item.model
    known = set(strategies) if strategies is not None else None
    out: list[Problem] = []
    names: dict[str, int] = {}
    valid = [(i, r) for i, r in enumerate(_items(custom, lambda m: m.rules)) if r is not None]
    # a file with rules that did not validate: its valid rules are still checked (scopes, cycles), but facts
    # and templates only when the whole file validated (its facts section may be what failed)
    out.extend(at(doc, path, message) for path, message in custom_lint.check_rules(custom, valid, facts_known=not item.partial))
    for i, rule in enumerate(_items(custom, lambda m: m.rules)):
        if rule is None:  # did not validate; its own errors are reported
            continue
        if rule.name in names:
            message = f"expected a unique rule name, found {rule.name!r} again (first at rules.{names[rule.name]})"
            out.append(at(doc, ("rules", i, "name"), message))
        names.setdefault(rule.name, i)
        read = conditions.fields_of(rule.when)
        for j, action in enumerate(rule.then):
            if action.kind in _POSITION_ACTIONS and scope_of(rule.when) != "position":
                message = (f"'{action.kind}' acts on a position: expected a position.* field in 'when', "
                           f"found only {', '.join(sorted(read))}")
                out.append(at(doc, ("rules", i, "then", j, action.kind), message, key=True))
        if known is not None:
            for field in ("position.strategy_type", "strategy.name"):
                for value in conditions.literals_of(rule.when, field):
                    if isinstance(value, str) and value not in known:
                        hint = conditions.suggest(value, known)
                        message = f"expected a known strategy for {field}, found {value!r}{hint}"
                        out.append(_in_condition(doc, ("rules", i, "when"), value, message))
    return out


def _in_condition(doc: Document, base: Path, literal: str, message: str) -> Problem:
    """Locate ``literal`` inside the condition strings below ``base`` (else the condition itself)."""
    for path, mark in sorted(doc.string_starts.items(), key=lambda kv: (kv[1].line, kv[1].column)):
        if path[: len(base)] != base:
            continue
        line = doc.line_text(mark.line)
        col = line.find(literal, mark.column - 1)
        if col > 0 and line[col - 1] in "\"'":
            return Problem(doc.file, mark.line, col, path, message)  # at the opening quote
    return at(doc, base, message)


def check_allocation(item: Loaded[AllocationRules], strategies: Iterable[str] | None) -> list[Problem]:
    """Return the problems of rules/allocation.yaml."""
    doc, a = item.doc, item.model
    out: list[Problem] = []
    needs = {
        "efficient_risk": ("target_volatility", _field(a, lambda m: m.target_volatility)),
        "efficient_return": ("target_return", _field(a, lambda m: m.target_return)),
    }
    methods = _field(a, lambda m: m.methods) or []
    for i, method in enumerate(methods):
        if method in needs and needs[method][1] is None:
            out.append(at(doc, ("methods", i), f"method {method} needs '{needs[method][0]}', found none"))
        if method in methods[:i]:
            out.append(at(doc, ("methods", i), f"expected each method once, found {method!r} again"))
    budgets = _field(a, lambda m: m.risk_budgets)
    if budgets is not None and strategies is not None:
        known = set(strategies)
        for name in budgets:
            if name not in known:
                message = f"expected a known strategy, found {name!r}{conditions.suggest(name, known)}"
                out.append(at(doc, ("risk_budgets", name), message, key=True))
    return out


def check_limits(item: Loaded[Limits]) -> list[Problem]:
    """Return the problems of rules/limits.yaml."""
    doc, limits = item.doc, item.model
    out: list[Problem] = []
    daily = _field(limits, lambda m: m.daily_loss)
    actions = daily.on_breach if daily is not None else []
    for i, action in enumerate(actions):
        if action in actions[:i]:
            out.append(at(doc, ("daily_loss", "on_breach", i), f"expected each breach action once, found {action!r} again"))
    return out


def check_profit(item: Loaded[ProfitRules]) -> list[Problem]:
    """Return the problems of rules/profit.yaml."""
    split = _field(item.model, lambda m: m.split)
    return _check_split(item.doc, ("split",), split) if split is not None else []


def check_instruments(item: Loaded[Instruments], strategies: Iterable[str] | None) -> list[Problem]:
    """Return the problems of rules/instruments.yaml."""
    doc, inst = item.doc, item.model
    out: list[Problem] = []
    account = _field(inst, lambda m: m.account_currency)
    instruments = _field(inst, lambda m: m.instruments) or {}
    symbols = set(instruments)
    for symbol, spec in instruments.items():
        out += _check_steps(doc, symbol, spec)
        quote = spec.quote_currency
        if account is not None and quote != account and not ({quote + account, account + quote} & symbols):
            message = (f"expected a conversion pair {account}{quote} or {quote}{account} among the instruments "
                       f"to value {quote} PnL in {account}, found none")
            out.append(at(doc, ("instruments", symbol, "quote_currency"), message))
    mapping = _field(inst, lambda m: m.strategy_map)
    if strategies is not None and mapping is not None:
        out += check_strategy_map(doc, mapping, strategies)
    return out


def _check_steps(doc: Document, symbol: str, spec: Instrument) -> list[Problem]:
    """Return the problems of an instrument's tick size and volumes: a tick of whole points, and a
    volume range on the lot step, lowest first."""
    out: list[Problem] = []
    if spec.tick_size is not None and (spec.tick_size < spec.point or not Grid.ticks(spec.digits).on(spec.tick_size)):
        message = f"expected a tick size of whole points ({_fmt(spec.point)} with digits {spec.digits}), found {_fmt(spec.tick_size)}"
        out.append(at(doc, ("instruments", symbol, "tick_size"), message))
    if spec.volume_min > spec.volume_max:
        message = f"expected volume_min <= volume_max {_fmt(spec.volume_max)}, found {_fmt(spec.volume_min)}"
        out.append(at(doc, ("instruments", symbol, "volume_min"), message))
    lots = spec.lots
    for name, value in (("volume_min", spec.volume_min), ("volume_max", spec.volume_max)):
        if not lots.on(value):
            message = f"expected a multiple of the volume_step {_fmt(spec.volume_step)}, found {_fmt(value)}"
            out.append(at(doc, ("instruments", symbol, name), message))
    return out


def check_strategy_map(doc: Document, mapping: StrategyMap, strategies: Iterable[str]) -> list[Problem]:
    """Return the problems of the broker strategy map: every strategy it names (by magic number, comment
    prefix or as the default) must exist, or the broker's positions would go unmanaged."""
    known = set(strategies)
    out: list[Problem] = []
    named: list[tuple[str, int | str, str]] = [
        *(("magic", key, name) for key, name in mapping.magic.items()),
        *(("comment_prefix", key, name) for key, name in mapping.comment_prefix.items()),
    ]
    for section, key, name in named:
        if name not in known:
            message = f"expected a known strategy, found {name!r}{conditions.suggest(name, known)}"
            out.append(at(doc, ("strategy_map", section, key), message))
    default = mapping.default
    if default is not None and default not in known:
        message = f"expected a known strategy, found {default!r}{conditions.suggest(default, known)}"
        out.append(at(doc, ("strategy_map", "default"), message))
    return out


def check_removed_strategies(old: Iterable[str], new: Iterable[str], open_positions: Mapping[str, Sequence[str]]) -> list[str]:
    """Return why a reload from strategies ``old`` to ``new`` must be refused (empty: it may go ahead).

    ``open_positions`` maps a strategy name to the ids of its open positions.
    """
    reasons: list[str] = []
    for name in sorted(set(old) - set(new)):
        ids = list(open_positions.get(name, ()))
        if ids:
            reasons.append(f"strategy {name!r} is removed but still has {len(ids)} open position(s): {', '.join(ids)}")
    return reasons
