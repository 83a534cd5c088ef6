"""Exact steps of prices (the tick size) and of volumes (the lot step), and rounding onto them.

A step is an integer number of units of a power of ten: 0.00001 is 1/100000, 0.25 is 25/100, 0.01 lots
is 1/100. A value on the step is ``k`` steps, and its float is ``(k * units) / scale``: one correctly
rounded division of two exact integers, so it is the double nearest the decimal value, the very float
that parsing the decimal text gives (``float("1.1110")``). Two levels on the grid therefore compare
exactly, and a quote of 1.1110 equals a level of 1.1110 (not 1.1110000000000002).

A value computed in floating point (``entry * (1 + 0.01)``) carries a few units of rounding in its last
place; rounding up or down first forgives ``NOISE`` of a step, so a value meant to lie on the grid
stays where it is, then rounds. The compiled kernel does the same arithmetic (``engine/rules/_jit.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

#: a computed value within this fraction of a step (or 1e-12 of its size in steps) of a grid value is
#: that grid value: far above floating-point rounding, far below any real difference
NOISE = 1e-6
_REL_NOISE = 1e-12


def _noise(steps: float) -> float:
    return max(NOISE, abs(steps) * _REL_NOISE)


@dataclass(frozen=True)
class Grid:
    """A step (tick size or lot step) as ``units / scale``, with ``scale`` a power of ten.

    ``Grid.of(0.00001)`` is ``Grid(1, 100000)``; ``Grid.of(0.25)`` is ``Grid(25, 100)``. Raises
    ``ValueError`` for a step that is not finite and positive or needs more than 12 decimals.
    """

    units: int
    scale: int

    @classmethod
    def of(cls, step: float) -> Grid:
        """The grid of a step given as a float (read as its shortest decimal: 0.1 is one tenth)."""
        if not (isinstance(step, (int, float)) and math.isfinite(step) and step > 0):
            raise ValueError(f"expected a step above 0, found {step!r}")
        exact = Decimal(repr(float(step))).normalize()
        exponent = int(exact.as_tuple().exponent)
        if exponent < -12:
            raise ValueError(f"expected a step of at most 12 decimals, found {step!r}")
        decimals = max(0, -exponent)
        scale = 10 ** decimals
        return cls(int(exact * scale), scale)

    @classmethod
    def ticks(cls, digits: int, tick_size: float | None = None) -> Grid:
        """The tick grid of a symbol quoted with ``digits`` decimals: ``tick_size`` when it has one, else
        one point (``10 ** -digits``)."""
        return cls.of(tick_size) if tick_size else cls(1, 10 ** digits)

    @property
    def step(self) -> float:
        """The step as a float."""
        return self.units / self.scale

    @property
    def decimals(self) -> int:
        """Decimals a value on the grid needs (5 for 0.00001, 2 for 0.25)."""
        return len(str(self.scale)) - 1

    def steps(self, value: float) -> float:
        """``value`` in steps (a float: not rounded)."""
        return value * self.scale / self.units

    def value(self, k: float) -> float:
        """The float of ``k`` steps: the double nearest the decimal ``k * step``."""
        return (k * self.units) / self.scale

    def up(self, value: float) -> float:
        """The lowest grid value at or above ``value`` (noise forgiven)."""
        x = self.steps(value)
        return self.value(math.ceil(x - _noise(x)))

    def down(self, value: float) -> float:
        """The highest grid value at or below ``value`` (noise forgiven)."""
        x = self.steps(value)
        return self.value(math.floor(x + _noise(x)))

    def nearest(self, value: float) -> float:
        """The grid value nearest ``value`` (a half step rounds away from zero)."""
        x = self.steps(value)
        return self.value(math.copysign(math.floor(abs(x) + 0.5), x))

    def on(self, value: float) -> bool:
        """Whether ``value`` lies on the grid (within the noise of a computation)."""
        x = self.steps(value)
        return abs(x - round(x)) <= _noise(x)

    def toward_profit(self, value: float, side: int) -> float:
        """The price rule of every level the engine sets (docs/engine.md, "Prices on the tick grid"):
        a long's levels round up, a short's down, so no stop risks more and no target or profit
        threshold asks less than its rule says."""
        return self.up(value) if side > 0 else self.down(value)


__all__ = ["NOISE", "Grid"]
