"""Volatility of a symbol on a horizon: ATR, or the standard deviation of returns, over bars of its quotes.

A ``Horizon`` names one estimate: its measure (``atr`` or ``stdev``), the length of its bars (``1m``;
``tick``: every quote is a bar of its own) and its window (how many bars). Bars are built from the mid
prices of the symbol's quotes by event time, aligned on the epoch (a ``1m`` bar is a UTC minute; a
``1d`` bar a UTC day): a bar closes when the first quote of a later bar arrives, and a period without
quotes makes no bar (the next bar's true range or return spans the gap). Each closed bar adds one value,
measured against the close of the bar before it (the first bar of the symbol only gives that close):

- ``atr``: its true range, ``max(high, previous close) - min(low, previous close)``, a price;
- ``stdev``: its return, ``close / previous close - 1``.

Once ``window`` values exist (``window + 1`` bars closed), the volatility is their mean (``atr``: the
average true range, a price) or their standard deviation (population form) times the mid of the
current quote (``stdev``: a price too). Before that it is ``nan``: not ready. The values of each
horizon sit in a ring with a running sum and sum of squares (O(1) per quote, in compiled code),
recomputed from the ring every ``_RESYNC`` values so rounding never accumulates. The kernel
(``engine/rules/_jit.py``) and the per-position reference read the same numbers from this class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from engine.rules.checks import timeframe_ms

_RESYNC = 1024
#: ``Horizon.key`` = bar length (ms) x ``_BAR`` + window x 2 + measure (0: atr, 1: stdev)
_BAR = 2_000_000
MEASURES = ("atr", "stdev")
# rows of ``Volatility.S``, one column per horizon: ring position, values held, values since the last
# resync, sum, sum of squares, the volatility (a price; nan: not ready), the forming bar (its index;
# nan: none yet), its high, low and last mid, the close of the last bar closed (nan: none), the
# standard deviation of returns (stdev horizons)
POS, COUNT, SINCE, SUM, SQUARES, VALUE, BAR, HIGH, LOW, CLOSE, PREV, SIGMA = range(12)
_ROWS = 12


@dataclass(frozen=True, order=True)
class Horizon:
    """One volatility estimate: ``measure`` over ``window`` bars of ``bar_ms`` milliseconds (0: a bar per quote)."""

    bar_ms: int
    window: int
    measure: str = "atr"

    @classmethod
    def of(cls, measure: str, timeframe: str, window: int) -> Horizon:
        """The horizon of a rule file's ``measure``, ``timeframe`` (``1m``, ``4h``, ``tick``) and ``window``.

        Raises ``ValueError`` for an unknown measure or timeframe (the rule files' models refuse them first).
        """
        if measure not in MEASURES:
            raise ValueError(f"bad volatility measure {measure!r}")
        return cls(0 if timeframe == "tick" else timeframe_ms(timeframe), window, measure)

    @property
    def key(self) -> int:
        """The horizon as one integer, as the compiled kernel matches a position's horizon with the symbol's."""
        return self.bar_ms * _BAR + self.window * 2 + MEASURES.index(self.measure)


@njit(cache=True)
def _close_bar(k: int, key: int, high: float, low: float, close: float, bufs: NDArray[np.float64],
               S: NDArray[np.float64]) -> None:
    """Close horizon ``k``'s bar: push its true range or return into the ring, and update the volatility."""
    prev = S[PREV, k]
    S[PREV, k] = close
    if not prev > 0:  # the first bar (nan), or a price that is not one
        return
    stdev = key % 2 == 1
    r = close / prev - 1 if stdev else max(high, prev) - min(low, prev)
    size = (key % _BAR) // 2
    pos = int(S[POS, k])
    count = int(S[COUNT, k])
    old = bufs[k, pos] if count == size else 0.0
    bufs[k, pos] = r
    S[POS, k] = (pos + 1) % size
    count = min(count + 1, size)
    S[COUNT, k] = count
    S[SINCE, k] += 1
    if S[SINCE, k] >= _RESYNC:
        total = 0.0
        squares = 0.0
        for j in range(count):
            total += bufs[k, j]
            squares += bufs[k, j] * bufs[k, j]
        S[SUM, k] = total
        S[SQUARES, k] = squares
        S[SINCE, k] = 0
    else:
        S[SUM, k] += r - old
        S[SQUARES, k] += r * r - old * old
    if count == size:
        mean = S[SUM, k] / size
        if stdev:
            S[SIGMA, k] = math.sqrt(max(S[SQUARES, k] / size - mean * mean, 0.0))
        else:
            S[VALUE, k] = mean


@njit(cache=True)
def update(bid: float, ask: float, ts: int, keys: NDArray[np.int64], bufs: NDArray[np.float64], S: NDArray[np.float64]) -> None:
    """Add a quote at ``ts`` (epoch ms; -1: unknown, time bars then never close) to every horizon of ``keys``."""
    mid = (bid + ask) / 2
    for k in range(keys.shape[0]):
        key = keys[k]
        bar_ms = key // _BAR
        if bar_ms == 0:
            _close_bar(k, key, mid, mid, mid, bufs, S)
        else:
            bar = float(ts // bar_ms) if ts >= 0 else -1.0
            current = S[BAR, k]
            if math.isnan(current) or bar > current:
                if not math.isnan(current):
                    _close_bar(k, key, S[HIGH, k], S[LOW, k], S[CLOSE, k], bufs, S)
                S[BAR, k] = bar
                S[HIGH, k] = mid
                S[LOW, k] = mid
            else:  # the forming bar (a quote older than it counts in it)
                S[HIGH, k] = max(S[HIGH, k], mid)
                S[LOW, k] = min(S[LOW, k], mid)
            S[CLOSE, k] = mid
        if key % 2 == 1 and not math.isnan(S[SIGMA, k]):
            S[VALUE, k] = S[SIGMA, k] * mid


class Volatility:
    """The volatility of one symbol on every horizon some strategy needs.

    The whole state is three arrays: ``keys`` (the horizons' ``Horizon.key``, sorted), ``bufs`` (the rings,
    one row per horizon) and ``S`` (the rows named above, one column per horizon), so the compiled kernel
    updates it in the same call that applies the quote (``SymbolBook.on_quote``).
    """

    def __init__(self, horizons: tuple[Horizon, ...] = ()) -> None:
        self.horizons = tuple(sorted(set(horizons)))
        self.keys = np.array([h.key for h in self.horizons], dtype=np.int64)
        self.bufs = np.zeros((len(self.horizons), max((h.window for h in self.horizons), default=1)))
        self.S = np.zeros((_ROWS, max(len(self.horizons), 1)))
        self.S[[VALUE, BAR, PREV, SIGMA]] = math.nan
        self.value_array = self.S[VALUE, : len(self.horizons)]  # a view: the volatility per horizon, nan when not ready

    @property
    def sizes(self) -> NDArray[np.int64]:
        """``keys``, by the name the batch replay (``engine.rules.batch``) passes them on under."""
        return self.keys

    def update(self, bid: float, ask: float, ts: int) -> None:
        """Add a quote at ``ts`` (epoch ms)."""
        update(bid, ask, ts, self.keys, self.bufs, self.S)

    def arrays(self) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Return (keys, volatilities) of every horizon, for the kernel: a price, ``nan`` while not ready."""
        return self.keys, self.value_array

    def values(self) -> dict[int, float]:
        """Return the volatility (a price distance) of each horizon that is ready, by ``Horizon.key``."""
        return {int(k): float(v) for k, v in zip(self.keys, self.value_array, strict=True) if not math.isnan(v)}

    def including(self, horizons: tuple[Horizon, ...]) -> Volatility:
        """A ``Volatility`` of this one's horizons and ``horizons``: those kept keep their state, new ones
        start empty (the rules reloaded with another horizon: its bars fill from the next quotes)."""
        new = Volatility(self.horizons + tuple(horizons))
        if new.horizons == self.horizons:
            return self
        for k, h in enumerate(self.horizons):
            j = new.horizons.index(h)
            new.S[:, j] = self.S[:, k]
            new.bufs[j, : h.window] = self.bufs[k, : h.window]
        return new
