"""Recent volatility of a symbol: the standard deviation of its last N mid-price returns.

Each window keeps a running sum and sum of squares of its returns (O(1) per tick); they are
recomputed from the window's returns every ``_RESYNC`` ticks so rounding never accumulates. The
kernel and the per-position reference read the same numbers from this class.
"""

from __future__ import annotations

import math

import numpy as np

_RESYNC = 1024


class _Window:
    __slots__ = ("size", "buf", "pos", "count", "total", "squares", "since")

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf = [0.0] * size  # a list: item access is several times cheaper than on an array
        self.pos = 0
        self.count = 0
        self.total = 0.0
        self.squares = 0.0
        self.since = 0

    def push(self, r: float) -> None:
        old = self.buf[self.pos] if self.count == self.size else 0.0
        self.buf[self.pos] = r
        self.pos = (self.pos + 1) % self.size
        self.count = min(self.count + 1, self.size)
        self.since += 1
        if self.since >= _RESYNC:
            data = np.asarray(self.buf[: self.count]) if self.count < self.size else np.asarray(self.buf)
            self.total, self.squares, self.since = float(data.sum()), float((data * data).sum()), 0
        else:
            self.total += r - old
            self.squares += r * r - old * old

    def sigma(self) -> float:
        mean = self.total / self.size
        return math.sqrt(max(self.squares / self.size - mean * mean, 0.0))


class Volatility:
    """Rolling mid-price returns of one symbol, for every window some strategy needs."""

    def __init__(self, windows: tuple[int, ...] = ()) -> None:
        self.windows = tuple(sorted(set(windows)))
        self._w = [_Window(w) for w in self.windows]
        self._last_mid = math.nan

    def update(self, bid: float, ask: float) -> None:
        """Add a quote."""
        mid = (bid + ask) / 2
        if not math.isnan(self._last_mid) and self._last_mid > 0 and self._w:
            r = mid / self._last_mid - 1
            for w in self._w:
                w.push(r)
        self._last_mid = mid

    def sigma(self) -> dict[int, float]:
        """Return, for each window with enough history, the volatility of returns (a fraction per tick)."""
        return {w.size: w.sigma() for w in self._w if w.count == w.size}
