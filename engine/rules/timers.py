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
from typing import TYPE_CHECKING

from engine.actions import Action
from engine.book.positions import Position
from engine.config.load import RuleSet
from engine.config.models import Strategy
from engine.events import BrokerPositions, Clock, Event, Fill, PositionClosed
from engine.rules.contexts import reads_time
from engine.rules.firing import Fired

if TYPE_CHECKING:
    from engine.rules.evaluator import Engine

RULE = "max_holding_time"


def time_driven(rules: RuleSet) -> bool:
    """Whether some rule of ``rules`` depends on time alone: a strategy's max holding time, or a custom
    rule that reads the clock, a position's age, a trailing window or a fact (``contexts.reads_time``)."""
    if any(s.max_holding_time is not None for s in rules.strategies.values()):
        return True
    return any(r.enabled and reads_time(r) for r in rules.custom.rules)


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


def after(engine: Engine, event: Event) -> Iterator[Fired]:
    """What an event that is no tick or proposal lets the rules decide, after the event itself: the custom
    rules on a broker's report (a close moves the counters) and, as time passes, on a clock event (every
    scope, the positions at their symbol's last quote); then the max holding times due at its time. Lazy:
    each is decided after the engine carried out the ones before (a position a rule closed is not closed
    again). An event older than the last quote decides nothing here."""
    late = engine.last_ts is not None and event.ts < engine.last_ts
    if engine.custom and isinstance(event, (PositionClosed, Fill, BrokerPositions)):
        yield from engine.custom.fire_at(engine, event.ts)
    elif engine.custom and isinstance(event, Clock) and not late:
        yield from engine.custom.fire_at(engine, event.ts, at_last_quotes=True)
    if engine.deadlines.heap and not late:
        yield from expired(engine, event.ts)


def expired(engine: Engine, ts: int) -> Iterator[Fired]:
    """The closes that the max holding times due at ``ts`` call for, in deadline order (ties by id), of the
    positions the engine still manages."""
    for pid in engine.deadlines.due(ts):
        p = engine.book.positions.get(pid)
        strategy = engine.rules.strategies.get(p.strategy_type) if p is not None else None
        kernel = engine.kernels.get(p.symbol) if p is not None else None
        if p is None or not p.is_open or kernel is None or pid not in kernel.ids or strategy is None or strategy.max_holding_time is None:
            continue
        held = strategy.max_holding_time
        yield Fired(RULE, "close", p.id, p.strategy_type, {"fraction": 1.0},
                    f"held {_text(ts - p.opened_ts)}, the max holding time of {p.strategy_type} is {_text(held)}")


def closed_ids(action: Action) -> list[str]:
    """The positions a ``close`` or ``close_all`` action closes."""
    if action.type == "close_all":
        return [str(item["position_id"]) for item in action.params.get("positions", [])]
    return [action.position_id] if action.position_id is not None else []


def with_clock(history: Iterable[tuple[str, int, Event]], every_ms: int) -> Iterator[tuple[str, int, Event]]:
    """``history`` (source, line, event) in time order, with ``clock`` events (source ``clock``, line 0) in
    every gap between two events: time passing as the service makes it pass for an idle account, on event
    time. They fall on the multiples of ``every_ms`` for the first day of a gap, then on whole minutes for
    the rest of its first week, then on whole hours (``clock_times``), so a gap of months or years (a
    history with a hole in it) costs a few hundred thousand events, not billions."""
    last: int | None = None
    for source, line, event in history:
        if last is not None:
            for t in clock_times(last, event.ts, every_ms):
                yield "clock", 0, Clock(t)
        last = event.ts if last is None else max(last, event.ts)
        yield source, line, event


DAY_MS = 86_400_000


def clock_times(after: int, before: int, every_ms: int) -> Iterator[int]:
    """The times of the clock events strictly between ``after`` and ``before`` (epoch ms): every multiple of
    ``every_ms`` up to a day after ``after``, every whole minute up to a week after it, every whole hour after."""
    t = (after // every_ms + 1) * every_ms
    for step, until in ((every_ms, after + DAY_MS), (60_000, after + 7 * DAY_MS), (3_600_000, before)):
        t = -(-t // step) * step  # the next multiple of this step
        while t < min(until, before):
            yield t
            t += step


def _text(ms: int) -> str:
    s = ms // 1000
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"
