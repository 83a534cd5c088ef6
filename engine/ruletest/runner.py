"""Run one rule unit test: its events through a fresh engine and paper broker, then compare.

Events: a position with ``at: k`` is proposed right after tick k (k = 0: before the first tick), at
the tick's time + half of ``min(interval, 1 s)``; tick i (1-based) comes at ``EPOCH + i`` intervals
(``interval``, default 1 s). The epoch is a Monday
10:00 UTC, far from a daily reset and from weekend rules, so a case sees one trading day.

Comparison, tick by tick: each expectation is matched with an unmatched action of its tick that
agrees on every field the expectation gives (numbers within the relative tolerance; ``reason`` as a
substring). An expectation left over is *missing* (reported next to the closest action of that
tick, when there is one); in a strict case an action left over is *unexpected*, except
``lock_profit``, which is only checked where it is expected. Order within a tick is not compared.

Quote checks: a case's positions are mostly proposed before the first tick, when the symbol has no
quote, so the pre-trade checks against the quote (``max_quote_age``, ``max_entry_deviation`` of
``rules/limits.yaml``) are off in a case unless its ``overrides.limits`` sets them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.actions import Action
from engine.adapters.paper import PaperBroker
from engine.config.load import RuleSet
from engine.errors import RiskrailError
from engine.events import PositionOpened, Tick
from engine.rules.chaining import PortfolioRules
from engine.rules.evaluator import Engine
from engine.ruletest.load import LoadedCase
from engine.ruletest.models import Case, Expectation

#: 2024-03-04 10:00:00 UTC, a Monday, in epoch milliseconds
EPOCH_MS = 1_709_546_400_000
TICK_MS = 1_000

#: the numeric fields an expectation may give, compared within the tolerance
NUMBERS = ("fraction", "volume", "price", "stop_loss", "take_profit")
#: actions a strict case does not require to be expected
LENIENT_TYPES = frozenset({"lock_profit"})


@dataclass(frozen=True)
class Mismatch:
    """One difference between what a case expects and what the engine did, at one tick.

    ``kind``: ``missing`` (expected, not done; ``actual`` is the closest action of that tick, if any)
    or ``unexpected`` (done, not expected, in a strict case).
    """

    at: int
    kind: str
    expected: Expectation | None = None
    actual: Action | None = None


@dataclass
class CaseResult:
    """The outcome of one case."""

    file: str
    name: str
    passed: bool
    skipped: str | None = None
    error: str | None = None
    mismatches: list[Mismatch] = field(default_factory=list)
    quotes: list[tuple[float, float]] = field(default_factory=list)
    actions: list[tuple[int, Action]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def tick_ts(i: int, interval: int = TICK_MS) -> int:
    """Return the time of tick ``i`` (1-based) ``interval`` ms apart, epoch ms."""
    return EPOCH_MS + i * interval


def simulate(case: Case, engine: Engine) -> list[tuple[int, Action]]:
    """Feed the case's proposals and ticks to ``engine``; return every action with its tick index."""
    out: list[tuple[int, Action]] = []
    by_tick: dict[int, list] = {}
    for p in case.positions:
        by_tick.setdefault(p.at, []).append(p)
    quotes = case.quotes()
    for i in range(len(quotes) + 1):
        if i:
            bid, ask = quotes[i - 1]
            out.extend((i, a) for a in engine.process(Tick(tick_ts(i, case.interval), case.symbol, bid, ask)))
        for p in by_tick.get(i, ()):
            ts = tick_ts(i, case.interval) + min(case.interval, TICK_MS) // 2
            event = PositionOpened(ts, p.id, case.symbol, case.strategy, f"test:{case.strategy}",
                                   1 if p.side == "long" else -1, p.volume, p.entry, p.stop_loss, p.take_profit)
            out.extend((i, a) for a in engine.process(event))
    return out


QUOTE_CHECKS = ("max_quote_age", "max_entry_deviation")


def without_quote_checks(rules: RuleSet, case: Case) -> RuleSet:
    """Return ``rules`` with the quote checks off, but those the case's ``overrides.limits`` sets."""
    own = case.overrides.get("limits")
    off = {k: None for k in QUOTE_CHECKS if not (isinstance(own, dict) and k in own)}
    return dataclasses.replace(rules, limits=rules.limits.model_copy(update=off)) if off else rules


def run_case(item: LoadedCase, portfolio: PortfolioRules | None = None) -> CaseResult:
    """Run one checked case and compare its actions with its expectations.

    ``portfolio`` (one durable-rules host) may be shared by the cases of one run; each case's rules
    version is dropped from it afterwards, so no fact of one case reaches the next.
    """
    case = item.case
    result = CaseResult(item.file, case.name, passed=False, quotes=case.quotes())
    if case.skip is not None:
        result.skipped = case.skip
        result.passed = True
        return result
    portfolio = portfolio or PortfolioRules()
    engine = None
    try:
        engine = Engine(without_quote_checks(item.rules, case), equity0=case.equity, broker=PaperBroker(), portfolio=portfolio,
                        on_problem=result.problems.append)
        result.actions = simulate(case, engine)
    except RiskrailError as exc:
        result.error = str(exc)
        return result
    except Exception as exc:  # an engine bug: report it on this case and go on with the others
        result.error = f"internal error: {type(exc).__name__}: {exc}"
        return result
    finally:
        if engine is not None:
            portfolio.drop(engine.version)
    result.mismatches = compare(case, result.actions)
    result.passed = not result.mismatches
    return result


def run_cases(items: Iterable[LoadedCase]) -> list[CaseResult]:
    """Run cases in order, sharing one durable-rules host."""
    portfolio = PortfolioRules()
    return [run_case(item, portfolio) for item in items]


# --- comparison ------------------------------------------------------------------------------------


def actual_value(action: Action, key: str, position: str | None = None) -> Any:
    """Return the value of expectation field ``key`` in ``action`` (close_all: of ``position``'s item)."""
    if key == "position":
        return action.position_id
    if key == "rule":
        return action.rule
    if key == "reason":
        return action.reason
    if action.type == "close_all" and key in ("volume", "price"):
        for item in action.params.get("positions", []):
            if position is None or item.get("position_id") == position:
                return item.get(key)
        return None
    return action.params.get(key)


def _close(expected: float, actual: Any, tolerance: float) -> bool:
    if not isinstance(actual, (int, float)) or isinstance(actual, bool) or not math.isfinite(actual):
        return False
    return abs(actual - expected) <= tolerance * abs(expected)


def matches(e: Expectation, action: Action, tolerance: float) -> bool:
    """Tell whether ``action`` is what ``e`` expects (only the fields ``e`` gives)."""
    if action.type != e.type:
        return False
    if e.position is not None:
        if action.type == "close_all":
            if e.position not in {item.get("position_id") for item in action.params.get("positions", [])}:
                return False
        elif action.position_id != e.position:
            return False
    if e.rule is not None and action.rule != e.rule:
        return False
    if e.reason is not None and e.reason not in action.reason:
        return False
    tol = e.tolerance if e.tolerance is not None else tolerance
    return all(_close(getattr(e, key), actual_value(action, key, e.position), tol)
               for key in NUMBERS if getattr(e, key) is not None)


def _closest(e: Expectation, candidates: list[Action]) -> Action | None:
    same_type = [a for a in candidates if a.type == e.type]
    same_subject = [a for a in same_type if e.position is None or a.position_id == e.position or a.type == "close_all"]
    same_rule = [a for a in same_subject if e.rule is None or a.rule == e.rule]
    for group in (same_rule, same_subject, same_type):
        if group:
            return group[0]
    return None


def compare(case: Case, actions: list[tuple[int, Action]]) -> list[Mismatch]:
    """Return the mismatches between the case's expectations and ``actions``, by tick."""
    ticks = sorted({e.at for e in case.expect} | {i for i, _ in actions})
    out: list[Mismatch] = []
    for at in ticks:
        left = [a for i, a in actions if i == at]
        missing: list[Expectation] = []
        for e in (e for e in case.expect if e.at == at):
            hit = next((a for a in left if matches(e, a, case.tolerance)), None)
            if hit is None:
                missing.append(e)
            else:
                left.remove(hit)
        for e in missing:
            # Pair a miss with the closest action of the tick, so the report shows what happened instead.
            near = _closest(e, [a for a in left if a.type not in LENIENT_TYPES or e.type in LENIENT_TYPES])
            if near is not None:
                left.remove(near)
            out.append(Mismatch(at, "missing", e, near))
        if case.strict:
            out.extend(Mismatch(at, "unexpected", None, a) for a in left if a.type not in LENIENT_TYPES)
    return out
