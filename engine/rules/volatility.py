"""Recent volatility of a symbol: the standard deviation of its last N mid-price returns."""

from __future__ import annotations

import math
from collections import deque

import numpy as np


class Volatility:
    """Rolling mid-price returns of one symbol, kept for the longest window any strategy needs."""

    def __init__(self, windows: tuple[int, ...] = ()) -> None:
        self.windows = tuple(sorted(set(windows)))
        self._returns: deque[float] = deque(maxlen=max(self.windows, default=1))
        self._last_mid = math.nan

    def update(self, bid: float, ask: float) -> None:
        """Add a quote."""
        mid = (bid + ask) / 2
        if not math.isnan(self._last_mid) and self._last_mid > 0:
            self._returns.append(mid / self._last_mid - 1)
        self._last_mid = mid

    def sigma(self) -> dict[int, float]:
        """Return, for each window with enough history, the volatility of returns (a fraction per tick)."""
        if not self.windows or len(self._returns) < self.windows[0]:
            return {}
        r = np.fromiter(self._returns, dtype=np.float64, count=len(self._returns))
        return {w: float(r[-w:].std()) for w in self.windows if len(r) >= w}
