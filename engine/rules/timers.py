"""Rules that act when time passes: a strategy's max holding time, and whether a rule set needs clock events.

A position of a strategy with ``max_holding_time`` (strategies/<name>.yaml) is closed whole, at the
last quote, by the first event at or after ``opened + max_holding_time`` (event time, epoch ms): a
tick of any symbol or a ``clock`` event. So that this happens without a tick, the service sends an
idle account a clock event every ``risk_update_frequency`` (schedules.yaml) and ``riskrail replay``
fills the gaps of its history with clock events on that grid, whenever ``time_driven`` says some rule
depends on time.

The deadlines are derived state: ``Deadlines.rebuild`` makes them again from the open positions and
the rules (a restart, a reload that changes a strategy's max holding time), so snapshots hold none.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping

from engine.actions import Action
from engine.book.positions import Position
from engine.config.conditions import fields_of
from engine.config.load import RuleSet
from engine.config.models import Strategy
from engine.events import Clock, Event
from engine.rules.firing import Fired

#: the condition fields whose value changes with time alone, without a quote
TIME_FIELDS = frozenset({"clock.weekday", "clock.hour", "clock.minute", "clock.session", "position.age", "position.age_seconds"})
RULE = "max_holding_time"


def time_driven(rules: RuleSet) -> bool:
    """Whether some rule of ``rules`` depends on time alone: a strategy's max holding time, or a custom
    rule that reads a clock field or a position's age."""
    if any(s.max_holding_time is not None for s in rules.strategies.values()):
        return True
    return any(r.enabled and fields_of(r.when) & TIME_FIELDS for r in rules.custom.rules)


class Deadlines:
    """When each open position's max holding time runs out: a heap of (deadline in epoch ms, position id).

    An entry of a position closed meanwhile is dropped when it comes due (``due`` returns ids; the
    caller checks each is still open).
    """

    def __init__(self) -> None:
        self.heap: list[tuple[int, str]] = []

    def add(self, p: Position, strategy: Strategy | None) -> None:
        """Start the clock of ``p`` (opened at ``p.opened_ts``) if its strategy has a max holding time."""
        if strategy is not None and strategy.max_holding_time is not None:
            heapq.heappush(self.heap, (p.opened_ts + strategy.max_holding_time, p.id))

    def rebuild(self, positions: Iterable[Position], strategies: Mapping[str, Strategy]) -> None:
        """Make the deadlines again from the open ``positions`` and the strategies now in force."""
        self.heap = []
        for p in positions:
            self.add(p, strategies.get(p.strategy_type))

    def due(self, ts: int) -> Iterator[str]:
        """The ids of the positions whose deadline is at or before ``ts`` (each given once)."""
        while self.heap and self.heap[0][0] <= ts:
            yield heapq.heappop(self.heap)[1]


def expired(deadlines: Deadlines, positions: Mapping[str, Position], strategies: Mapping[str, Strategy], ts: int) -> list[Fired]:
    """The closes that the max holding times due at ``ts`` call for, in deadline order (ties by id)."""
    out = []
    for pid in deadlines.due(ts):
        p = positions.get(pid)
        strategy = strategies.get(p.strategy_type) if p is not None else None
        if p is None or not p.is_open or strategy is None or strategy.max_holding_time is None:
            continue
        held = strategy.max_holding_time
        out.append(Fired(RULE, "close", p.id, p.strategy_type, {"fraction": 1.0},
                         f"held {_text(ts - p.opened_ts)}, the max holding time of {p.strategy_type} is {_text(held)}"))
    return out


def closed_ids(action: Action) -> list[str]:
    """The positions a ``close`` or ``close_all`` action closes."""
    if action.type == "close_all":
        return [str(item["position_id"]) for item in action.params.get("positions", [])]
    return [action.position_id] if action.position_id is not None else []


def with_clock(history: Iterable[tuple[str, int, Event]], every_ms: int) -> Iterator[tuple[str, int, Event]]:
    """``history`` (source, line, event) in time order, with a ``clock`` event (source ``clock``, line 0) at
    every multiple of ``every_ms`` strictly between two events: time passing as the service makes it pass
    for an idle account, on event time."""
    last: int | None = None
    for source, line, event in history:
        if last is not None:
            t = (last // every_ms + 1) * every_ms
            while t < event.ts:
                yield "clock", 0, Clock(t)
                t += every_ms
        last = event.ts if last is None else max(last, event.ts)
        yield source, line, event


def _text(ms: int) -> str:
    s = ms // 1000
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"
