"""Recent volatility of a symbol: the standard deviation of its last N mid-price returns.

Each window keeps a ring of its last N returns with a running sum and sum of squares (O(1) per
tick, in compiled code); they are recomputed from the ring every ``_RESYNC`` ticks so rounding never
accumulates. The kernel and the per-position reference read the same numbers from this class.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_RESYNC = 1024


@njit(cache=True)
def _push(r, sizes, bufs, state, values):
    """Add return ``r`` to every window; return how many windows (a prefix) have enough history.

    ``state`` rows: position in the ring, count, ticks since resync (ints as floats), sum, squares.
    """
    ready = 0
    for k in range(sizes.shape[0]):
        size = sizes[k]
        pos = int(state[0, k])
        count = int(state[1, k])
        old = bufs[k, pos] if count == size else 0.0
        bufs[k, pos] = r
        state[0, k] = (pos + 1) % size
        count = min(count + 1, size)
        state[1, k] = count
        state[2, k] += 1
        if state[2, k] >= _RESYNC:
            total = 0.0
            squares = 0.0
            for j in range(count):
                total += bufs[k, j]
                squares += bufs[k, j] * bufs[k, j]
            state[3, k] = total
            state[4, k] = squares
            state[2, k] = 0
        else:
            state[3, k] += r - old
            state[4, k] += r * r - old * old
        if count == size:
            mean = state[3, k] / size
            values[k] = math.sqrt(max(state[4, k] / size - mean * mean, 0.0))
            ready = k + 1
    return ready


class Volatility:
    """Rolling mid-price returns of one symbol, for every window some strategy needs."""

    def __init__(self, windows: tuple[int, ...] = ()) -> None:
        self.windows = tuple(sorted(set(windows)))
        self._sizes = np.array(self.windows, dtype=np.int64)
        self._bufs = np.zeros((len(self.windows), max(self.windows, default=1)))
        self._state = np.zeros((5, len(self.windows)))
        self._last_mid = math.nan
        # windows with enough history form a prefix, since all windows see the same returns
        self.value_array = np.zeros(len(self.windows))
        self.ready = 0

    def update(self, bid: float, ask: float) -> None:
        """Add a quote."""
        mid = (bid + ask) / 2
        if self.windows and self._last_mid > 0:  # nan > 0 is False: the first quote only sets the mid
            self.ready = _push(mid / self._last_mid - 1, self._sizes, self._bufs, self._state, self.value_array)
        self._last_mid = mid

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Return (windows, volatilities) of the windows with enough history, for the kernel."""
        return self._sizes[: self.ready], self.value_array[: self.ready]

    def sigma(self) -> dict[int, float]:
        """Return, for each window with enough history, the volatility of returns (a fraction per tick)."""
        return {int(w): float(v) for w, v in zip(self._sizes[: self.ready], self.value_array[: self.ready])}
