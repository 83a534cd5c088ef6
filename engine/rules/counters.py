"""Windowed counters of closed positions, per strategy and per symbol: the fields protections read.

Each close of a position is kept for ``KEEP_MS`` (24 h) of event time as a ``Closed``: when, which
strategy and symbol, whether it was a stop-out (closed by its stop, fixed or trailed, at a loss: the
freqtrade StoplossGuard's definition), and its return (realized PnL / entry notional, both in the
account currency). A field over window W counts the closes at times t with ``now - W < t <= now``:

    stop_outs_1h, stop_outs_4h, stop_outs_24h    stop-outs in the window
    trades_24h                                   closes in the window
    profit_24h                                   sum of their returns

The closes are part of the engine's state (``engine.rules.state`` records them as ``custom_closes``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from typing import Any

HOUR_MS = 3_600_000
KEEP_MS = 24 * HOUR_MS
_WINDOWS = {"1h": HOUR_MS, "4h": 4 * HOUR_MS, "24h": KEEP_MS}
STOP_RULES = frozenset({"stop_loss", "trailing_stop", "broker_sl"})  # broker_sl: the broker-side stop (MetaTrader 5)


@dataclass(frozen=True)
class Closed:
    """One position's close: time (epoch ms), strategy, symbol, stop-out or not, return (a fraction)."""

    ts: int
    strategy: str
    symbol: str
    stop_out: bool
    ret: float


class Closes:
    """The closes of the last ``KEEP_MS`` of event time, oldest first."""

    def __init__(self, items: Iterable[Closed] = ()) -> None:
        self.items: list[Closed] = list(items)

    def add(self, closed: Closed) -> None:
        """Keep a close (and forget those older than ``KEEP_MS`` before it)."""
        self.items.append(closed)
        self.items.sort(key=lambda c: c.ts)
        self.prune(closed.ts)

    def prune(self, now: int) -> None:
        """Forget the closes at or before ``now - KEEP_MS``."""
        if self.items and self.items[0].ts <= now - KEEP_MS:
            self.items = [c for c in self.items if c.ts > now - KEEP_MS]

    def fields(self, now: int, key: str, value: str) -> dict[str, Any]:
        """The windowed fields (``stop_outs_1h``, ...) of the closes whose ``key`` (strategy or symbol) is ``value``."""
        mine = [c for c in self.items if getattr(c, key) == value and now - KEEP_MS < c.ts <= now]
        out: dict[str, Any] = {f"stop_outs_{w}": sum(1 for c in mine if c.stop_out and c.ts > now - ms) for w, ms in _WINDOWS.items()}
        out["trades_24h"] = len(mine)
        out["profit_24h"] = sum(c.ret for c in mine)
        return out

    def record(self) -> list[list[Any]]:
        """The closes as JSON data: ``[ts, strategy, symbol, stop_out, return]`` each."""
        return [list(astuple(c)) for c in self.items]

    @classmethod
    def restore(cls, data: Iterable[list[Any]]) -> Closes:
        """The closes of ``record``'s data."""
        return cls(Closed(int(ts), str(s), str(y), bool(stop), float(ret)) for ts, s, y, stop, ret in data)


def closed(ts: int, strategy: str, symbol: str, last_rule: str, pnl: float, notional: float) -> Closed:
    """Return the close of a position: its last fill's rule tells a stop-out, when it lost money."""
    return Closed(ts, strategy, symbol, last_rule in STOP_RULES and pnl < 0, pnl / notional if notional > 0 else 0.0)
