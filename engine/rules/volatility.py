"""Recent volatility of a symbol: the standard deviation of its last N mid-price returns.

Each window keeps a ring of its last N returns with a running sum and sum of squares (O(1) per
tick, in compiled code); they are recomputed from the ring every ``_RESYNC`` ticks so rounding never
accumulates. The kernel and the per-position reference read the same numbers from this class.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numpy.typing import NDArray

_RESYNC = 1024


@njit(cache=True)
def _push(r: float, sizes: NDArray[np.int64], bufs: NDArray[np.float64], S: NDArray[np.float64]) -> int:
    """Add return ``r`` to every window; return how many windows (a prefix) have enough history.

    ``S`` rows: position in the ring, count, ticks since resync (ints as floats), sum, squares,
    volatility; row 6 holds the last mid and the ready count (see ``update``).
    """
    ready = 0
    for k in range(sizes.shape[0]):
        size = sizes[k]
        pos = int(S[0, k])
        count = int(S[1, k])
        old = bufs[k, pos] if count == size else 0.0
        bufs[k, pos] = r
        S[0, k] = (pos + 1) % size
        count = min(count + 1, size)
        S[1, k] = count
        S[2, k] += 1
        if S[2, k] >= _RESYNC:
            total = 0.0
            squares = 0.0
            for j in range(count):
                total += bufs[k, j]
                squares += bufs[k, j] * bufs[k, j]
            S[3, k] = total
            S[4, k] = squares
            S[2, k] = 0
        else:
            S[3, k] += r - old
            S[4, k] += r * r - old * old
        if count == size:
            mean = S[3, k] / size
            S[5, k] = math.sqrt(max(S[4, k] / size - mean * mean, 0.0))
            ready = k + 1
    return ready


@njit(cache=True)
def update(bid: float, ask: float, sizes: NDArray[np.int64], bufs: NDArray[np.float64], S: NDArray[np.float64]) -> None:
    """Add a quote: the return of its mid from the last one (the first quote only sets the mid)."""
    mid = (bid + ask) / 2
    if sizes.shape[0] > 0 and S[6, 0] > 0:  # nan > 0 is False
        S[6, 1] = _push(mid / S[6, 0] - 1, sizes, bufs, S)
    S[6, 0] = mid


class Volatility:
    """Rolling mid-price returns of one symbol, for every window some strategy needs.

    The whole state is three arrays (``sizes``, ``bufs``, ``S``), so the compiled kernel can update it
    in the same call that applies the quote (``SymbolBook.on_quote``).
    """

    def __init__(self, windows: tuple[int, ...] = ()) -> None:
        self.windows = tuple(sorted(set(windows)))
        self.sizes = np.array(self.windows, dtype=np.int64)
        self.bufs = np.zeros((len(self.windows), max(self.windows, default=1)))
        self.S = np.zeros((7, max(len(self.windows), 2)))
        self.S[6, 0] = math.nan
        # windows with enough history form a prefix, since all windows see the same returns
        self.value_array = self.S[5, : len(self.windows)]

    @property
    def ready(self) -> int:
        """How many windows (a prefix of ``windows``) have enough history."""
        return int(self.S[6, 1])

    def update(self, bid: float, ask: float) -> None:
        """Add a quote."""
        update(bid, ask, self.sizes, self.bufs, self.S)

    def arrays(self) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Return (windows, volatilities) of the windows with enough history, for the kernel."""
        ready = int(self.S[6, 1])
        return self.sizes[:ready], self.value_array[:ready]

    def sigma(self) -> dict[int, float]:
        """Return, for each window with enough history, the volatility of returns (a fraction per tick)."""
        ready = int(self.S[6, 1])
        return {int(w): float(v) for w, v in zip(self.sizes[:ready], self.value_array[:ready], strict=True)}
