"""Pre-trade checks (DESIGN section 4): the numbers behind each reason a proposal may fail.

The checks compute; the decision is taken by the portfolio ruleset in durable-rules (a halt fact
rejects whatever these say). Each failed check gives one human reason.

Correlation: mid prices are sampled into bars of the configured timeframe; the check compares the
proposal's symbol with the symbol of each open position over the last ``window`` bar returns, signed
by both directions (a long and a short on positively correlated symbols hedge each other). It needs at
least ``MIN_BARS`` common returns, and skips positions on the proposal's own symbol, which
``max_positions``, size and risk already govern.
"""

from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

import numpy as np

MIN_BARS = 30
_UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


def timeframe_ms(timeframe: str) -> int:
    """Return the length of a bar such as ``1m`` or ``15m`` in milliseconds."""
    m = re.fullmatch(r"([1-9][0-9]*)([smhd])", timeframe)
    if m is None:
        raise ValueError(f"bad timeframe {timeframe!r}")
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


class Bars:
    """Closing mid prices of one symbol per bar, keeping the last ``window + 1`` bars."""

    def __init__(self, bar_ms: int, window: int) -> None:
        self.bar_ms = bar_ms
        self.closes: deque[tuple[int, float]] = deque(maxlen=window + 1)

    def update(self, ts: int, mid: float) -> None:
        bar = ts // self.bar_ms
        if self.closes and self.closes[-1][0] == bar:
            self.closes[-1] = (bar, mid)
        else:
            self.closes.append((bar, mid))

    def returns(self) -> dict[int, float]:
        """Return bar index -> return from the previous bar, for consecutive bars."""
        out = {}
        items = list(self.closes)
        for (b0, p0), (b1, p1) in zip(items, items[1:]):
            if p0 > 0:
                out[b1] = p1 / p0 - 1
        return out


def correlation(a: dict[int, float], b: dict[int, float]) -> float | None:
    """Return the correlation of two return series over their common bars (None when too few)."""
    common = sorted(a.keys() & b.keys())
    if len(common) < MIN_BARS:
        return None
    x = np.array([a[k] for k in common])
    y = np.array([b[k] for k in common])
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


@dataclass(frozen=True)
class CheckResult:
    """The failed checks of a proposal (empty: all passed) and a resize, when the size check resized it."""

    reasons: tuple[str, ...]
    volume: float
    resized_from: float | None = None


def pct(x: float) -> str:
    return f"{x * 100:.4g}%"


def size_check(notional: float, equity: float, limit: float, on_breach: str, volume: float) -> tuple[str | None, float, float | None]:
    """Return (reason or None, volume to open, original volume when resized)."""
    if equity <= 0 or math.isnan(notional):
        return f"cannot size the position: equity {equity:g}, notional {notional:g}", volume, None
    share = notional / equity
    if share <= limit:
        return None, volume, None
    if on_breach == "resize":
        return None, volume * limit / share, volume
    return f"position size {pct(share)} of equity exceeds max_position_size {pct(limit)}", volume, None
