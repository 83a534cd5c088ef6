"""What a position remembers of its exit levels: the levels taken, as bits over the strategy's list and
known across reloads by key (``ExitLevel.key``), and what a position taken over partly closed has taken.

A reload can add, remove, reorder or edit levels (docs/engine.md, "Reloads and open positions"):
``remap_taken`` carries the bits from the old list to the new one by key, so a level taken stays taken
wherever it moved, and a level never taken is never counted as taken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.config.models import Instrument, Strategy
from engine.events import PositionOpened
from engine.rules.params import level_targets

Ints = NDArray[np.int64]


@dataclass
class PositionState:
    """A position's managed state, as the kernel holds it (for snapshots, restarts and reloads).

    Prices are in the symbol's quote currency, volumes in lots, times in epoch ms; ``stop``,
    ``take_profit``, ``best`` and ``risk`` are nan when there is none; ``risk`` is the initial risk as a
    fraction of entry (what r_multiple levels are measured in).
    """

    position_id: str
    strategy: str
    side: int
    entry: float
    volume0: float
    volume: float
    stop: float
    take_profit: float
    best: float
    armed: bool
    trailed: bool
    taken: int  # the exit levels taken: bit j is level j of the strategy's levels (SymbolBook.reload remaps it by key)
    risk: float
    taken_keys: frozenset[str] = frozenset()  # keys of levels taken that a reload removed (a level re-added stays taken)
    opened: int = 0  # when the kernel started managing it (position.age_seconds counts from here)
    time_in_profit: int = 0  # ms spent in profit so far
    in_profit: bool = False  # in profit at the last quote

    @property
    def levels_hit(self) -> int:
        """How many exit levels are taken."""
        return int(self.taken).bit_count()


def taken_over(e: PositionOpened, strategy: Strategy, volume0: float, stop: float, take_profit: float,
               instrument: Instrument) -> PositionState | None:
    """The managed state of a position taken over partly closed (``volume0`` > its volume), None when whole.

    The exit levels taken are derived from what actually closed: a level whose target (the volume it
    leaves open) is at or above the volume still open, within one lot step (a broker may round a close
    up or down), counts as taken. The initial risk (for r_multiple levels) is the strategy's default stop.
    """
    if volume0 <= e.volume:
        return None
    lots = instrument.lots
    targets = level_targets(volume0, tuple(lv.exit_percentage for lv in strategy.exit_levels), lots)
    taken = sum(1 << j for j, target in enumerate(targets) if e.volume <= target + lots.step * (1 - 1e-6))
    return PositionState(e.position_id, e.strategy_type, e.side, e.entry_price, volume0, e.volume, stop, take_profit, e.entry_price,
                         False, False, taken, strategy.defaults.stop_loss, opened=e.ts)


def remap_taken(taken: int, before: Sequence[str], after: Sequence[str]) -> int:
    """The taken-levels bits of ``taken`` (over levels keyed ``before``) over the levels keyed ``after``: a
    level stays taken wherever it moved, a level removed is forgotten, a level added is not taken."""
    keys = {key for j, key in enumerate(before) if (taken >> j) & 1}
    return sum(1 << j for j, key in enumerate(after) if key in keys)


def levels_hit(taken: Ints) -> Ints:
    """How many exit levels each position took (the bits set in each ``taken``)."""
    bits = taken.copy()
    out: Ints = np.zeros(bits.shape, dtype=np.int64)
    while bits.any():  # numpy before 2.0 has no bitwise_count; a strategy has at most 20 levels
        out += bits & 1
        bits >>= 1
    return out
