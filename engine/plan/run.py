"""Replay one decoded history through two rule sets and compare what they did.

The history is decoded once (a list of validated events) and both replays read it, so the plan pays
for parsing once. Each replay runs the same evaluator as the live service, with the paper broker;
runs of quotes on which nothing happens go through the compiled kernel in one call
(``engine.rules.batch``), with exactly the actions and state of the event-by-event replay.
Actions are compared on what they do — time, type, position, rule and parameters — not on their
ids, which carry the rules version. After both replays, the base replay's engine takes the reload to
the proposed rules (``engine.plan.positions``): what it changes for the positions open at the end.
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.actions import Action
from engine.adapters.paper import PaperBroker
from engine.book.metrics import max_drawdown
from engine.config.load import RuleSet
from engine.events import Clock, Event
from engine.plan.positions import ReloadEffects, reload_effects
from engine.plan.semantic import Change, semantic_diff
from engine.rules.batch import TickColumns, replay_events, tick_columns
from engine.rules.chaining import PortfolioRules
from engine.rules.evaluator import Engine


@dataclass
class Run:
    """The outcome of one replay."""

    version: str
    actions: list[Action]
    summary: dict[str, Any]
    by_position: dict[str, list[Action]] = field(default_factory=dict)
    strategy_of: dict[str, str] = field(default_factory=dict)
    symbol_of: dict[str, str] = field(default_factory=dict)
    curve: list[tuple[int, float]] = field(default_factory=list)


def replay(rules: RuleSet, events: Sequence[Event], equity: float, portfolio: PortfolioRules,
           progress: Callable[[int], None] | None = None, *, batch: bool = True,
           columns: TickColumns | None = None) -> Run:
    """Replay ``events`` through ``rules``; return every action and the metrics.

    ``batch``: quiet runs of quotes in compiled code (the same result; ``False`` processes the events
    one by one, the reference the batch path is tested against). ``columns``: the quotes of
    ``events`` already decoded (``tick_columns``), shared by the replays of one plan.
    """
    return replay_engine(rules, events, equity, portfolio, progress, batch=batch, columns=columns)[0]


def replay_engine(rules: RuleSet, events: Sequence[Event], equity: float, portfolio: PortfolioRules,
                  progress: Callable[[int], None] | None = None, *, batch: bool = True,
                  columns: TickColumns | None = None) -> tuple[Run, Engine]:
    """``replay``, and the engine after the last event: the book a reload at the end would meet."""
    engine = Engine(rules, equity0=equity, broker=PaperBroker(), portfolio=portfolio)
    actions: list[Action] = []
    if batch:
        actions = replay_events(engine, events, columns, progress)
    else:
        for n, event in enumerate(events, 1):
            actions.extend(engine.process(event))
            if progress is not None and n % 10_000 == 0:
                progress(n)
    run = Run(engine.version, actions, engine.summary(), curve=list(engine.curve))
    for a in actions:
        if a.position_id is not None:
            run.by_position.setdefault(a.position_id, []).append(a)
    run.strategy_of = {pid: p.strategy_type for pid, p in engine.book.positions.items()}
    run.symbol_of = {pid: p.symbol for pid, p in engine.book.positions.items()}
    run.summary["strategy_curves"] = {k: list(v) for k, v in engine.strategy_curves.items()}
    return run, engine


def effect(a: Action) -> tuple:
    """What an action does, for comparison across rule sets."""
    return (a.ts, a.type, a.position_id, a.strategy, a.rule, tuple(sorted((k, _freeze(v)) for k, v in a.params.items())))


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


@dataclass
class Plan:
    """The comparison of a base and a proposed replay, and what a reload at the end of the history
    would change for the positions then open (``open_positions``; None when not computed)."""

    changes: list[Change]
    base: Run
    proposed: Run
    events: int
    open_positions: ReloadEffects | None = None

    @property
    def identical(self) -> bool:
        """Whether both rule sets take exactly the same actions on the history."""
        return [effect(a) for a in self.base.actions] == [effect(a) for a in self.proposed.actions]

    @property
    def differs(self) -> bool:
        """Whether the change has any effect: other actions, or a reload that changes an open position
        or is refused."""
        return not self.identical or (self.open_positions is not None and self.open_positions.differs)

    def changed_positions(self) -> list[str]:
        """Positions whose actions differ, most changed first."""
        ids = set(self.base.by_position) | set(self.proposed.by_position)
        scored = []
        for pid in ids:
            b = Counter(effect(a) for a in self.base.by_position.get(pid, []))
            p = Counter(effect(a) for a in self.proposed.by_position.get(pid, []))
            diff = sum(((b - p) + (p - b)).values())
            if diff:
                scored.append((-diff, pid))
        return [pid for _, pid in sorted(scored)]

    def rules_table(self) -> dict[str, dict[str, int]]:
        """Per rule: actions in each run, and how many were added, removed or moved (same kind, other time or values)."""
        groups: dict[tuple, list[list[tuple]]] = defaultdict(lambda: [[], []])
        for side, run in enumerate((self.base, self.proposed)):
            for a in run.actions:
                groups[(a.rule, a.type, a.position_id or a.strategy or "")][side].append(effect(a))
        table: dict[str, dict[str, int]] = {}
        for (rule, _, _), (b, p) in groups.items():
            row = table.setdefault(rule, {"base": 0, "proposed": 0, "added": 0, "removed": 0, "moved": 0})
            row["base"] += len(b)
            row["proposed"] += len(p)
            common = Counter(b) & Counter(p)
            rest_b, rest_p = len(b) - sum(common.values()), len(p) - sum(common.values())
            moved = min(rest_b, rest_p)
            row["moved"] += moved
            row["removed"] += rest_b - moved
            row["added"] += rest_p - moved
        return {k: v for k, v in sorted(table.items()) if v["added"] or v["removed"] or v["moved"] or v["base"] != v["proposed"]}

    def totals(self) -> dict[str, dict[str, float]]:
        """Realized PnL, max drawdown, limit breaches and rejected proposals: per strategy and in total, with deltas."""
        def figures(run: Run, strategy: str | None) -> dict[str, float]:
            if strategy is None:
                p = run.summary["portfolio"]
                rejected = p["rejected"]
                breaches = p["breaches"]
                pnl = p["realized_pnl"]
                dd = max_drawdown([e for _, e in run.curve])
            else:
                s = run.summary["strategies"].get(strategy, {})
                pnl = s.get("realized_pnl", 0.0)
                dd = max_drawdown(run.summary["strategy_curves"].get(strategy) or [1.0])
                rejected = sum(1 for a in run.actions if a.type == "reject_position" and a.strategy == strategy)
                breaches = 0
            return {"realized_pnl": pnl, "max_drawdown": dd, "breaches": breaches, "rejected": rejected}

        names = sorted(set(self.base.summary["strategies"]) | set(self.proposed.summary["strategies"]))
        out = {}
        for name in [None, *names]:
            b, p = figures(self.base, name), figures(self.proposed, name)
            out[name or "total"] = {f"{k}_{side}": v for k in b for side, v in (("base", b[k]), ("proposed", p[k]))}
            for k in b:
                out[name or "total"][f"{k}_delta"] = p[k] - b[k]
        return out


def make_plan(base: RuleSet, proposed: RuleSet, events: Sequence[Event], equity: float,
              portfolio: PortfolioRules | None = None, progress: Callable[[int], None] | None = None,
              *, batch: bool = True) -> Plan:
    """Replay ``events`` through both rule sets and compare (one replay when their meaning is equal); then
    reload the base replay's engine to ``proposed`` and report what that changes for its open positions.

    ``batch=False`` replays event by event (the same plan, slower).
    """
    portfolio = portfolio or PortfolioRules()
    changes = semantic_diff(base, proposed)
    columns = tick_columns(events) if batch else None
    base_run, engine = replay_engine(base, events, equity, portfolio, progress, batch=batch, columns=columns)
    # the same meaning: the proposed replay would be this one, action for action
    proposed_run = base_run if base.version == proposed.version else replay(proposed, events, equity, portfolio, progress,
                                                                             batch=batch, columns=columns)
    # last: the reload moves the shared portfolio layer's facts to the proposed version and drops the base one
    history = sum(not isinstance(e, Clock) for e in events)  # the clock events a replay adds are not the history's
    return Plan(changes, base_run, proposed_run, history, reload_effects(engine, proposed))


def progress_bar(total: int, stream=sys.stderr) -> Callable[[int], None] | None:
    """A progress bar on a terminal for long histories (two replays), else nothing."""
    if total < 50_000 or not getattr(stream, "isatty", lambda: False)():
        return None
    done = {"n": 0}

    def tick(n: int) -> None:
        done["n"] += 10_000
        share = min(done["n"] / (2 * total), 1.0)
        stream.write(f"\r[{'#' * int(share * 40):<40}] {share:4.0%}")
        stream.flush()

    return tick
