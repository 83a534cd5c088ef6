"""Positions and their lifecycle: proposed, open, partially closed, closed, rejected — with an audit trail.

Every change is recorded in the position's audit trail: when, what, which rule, which rules version
and why. Realized PnL is booked from fills, in the account currency.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from engine.book.valuation import Converter


class Status(str, enum.Enum):  # noqa: UP042 - StrEnum would change str() and format() of a member
    PROPOSED = "proposed"
    OPEN = "open"
    PARTIALLY_CLOSED = "partially_closed"
    CLOSED = "closed"
    REJECTED = "rejected"


@dataclass(frozen=True)
class AuditEntry:
    """One change of a position."""

    ts: int
    what: str
    rule: str
    rules_version: str
    why: str


@dataclass(frozen=True)
class Fill:
    """A (partial) close at a price, with the PnL it realized in the account currency; ``deal``: the
    broker's deal id when the broker named it (a deal is booked at most once per position)."""

    ts: int
    volume: float
    price: float
    pnl: float
    rule: str
    deal: str | None = None


@dataclass
class Position:
    """A position with its attribution, state and history."""

    id: str
    symbol: str
    strategy_type: str
    strategy_name: str
    side: int
    volume0: float
    entry: float
    opened_ts: int
    stop_loss: float = math.nan
    take_profit: float = math.nan
    volume: float = 0.0
    status: Status = Status.PROPOSED
    closed_ts: int | None = None
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0
    fills: list[Fill] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)
    time_in_profit_ms: int = 0
    last_mark_ts: int | None = None

    def __post_init__(self) -> None:
        if not self.volume:
            self.volume = self.volume0

    @property
    def is_open(self) -> bool:
        return self.status in (Status.OPEN, Status.PARTIALLY_CLOSED)

    @property
    def pnl(self) -> float:
        return self.realized_pnl + self.unrealized_pnl

    def record(self, ts: int, what: str, rule: str, version: str, why: str) -> None:
        self.audit.append(AuditEntry(ts, what, rule, version, why))

    def booked(self, deal: str) -> bool:
        """Whether the broker's deal ``deal`` is booked in this position's fills already."""
        return any(f.deal == deal for f in self.fills)


class Book:
    """Every position the engine has seen, with PnL in the account currency."""

    def __init__(self, converter: Converter) -> None:
        self.converter = converter
        self.positions: dict[str, Position] = {}
        self._open: dict[str, Position] = {}
        self.realized_total = 0.0
        self.realized_by: dict[str, float] = {}
        self.open_count: dict[str, int] = {}

    @property
    def n_open(self) -> int:
        return len(self._open)

    def open_positions(self, strategy: str | None = None) -> list[Position]:
        return [p for p in self._open.values() if strategy is None or p.strategy_type == strategy]

    def propose(self, p: Position, version: str) -> None:
        self.positions[p.id] = p
        side = "BUY" if p.side > 0 else "SELL"
        p.record(p.opened_ts, "proposed", "pre_trade", version, f"{side} {p.volume0:g} {p.symbol} at {p.entry:g}")

    def accept(self, pid: str, ts: int, stop: float, tp: float, version: str, why: str) -> Position:
        p = self.positions[pid]
        p.status = Status.OPEN
        p.stop_loss, p.take_profit = stop, tp
        p.last_mark_ts = ts
        self._open[pid] = p
        self.open_count[p.strategy_type] = self.open_count.get(p.strategy_type, 0) + 1
        p.record(ts, "opened", "pre_trade", version, why)
        return p

    def reject(self, pid: str, ts: int, version: str, reasons: list[str]) -> None:
        p = self.positions[pid]
        p.status = Status.REJECTED
        p.closed_ts = ts
        p.volume = 0.0
        p.record(ts, "rejected", "pre_trade", version, "; ".join(reasons))

    def open_ids(self) -> dict[str, list[str]]:
        """The ids of the open positions, by strategy."""
        out: dict[str, list[str]] = {}
        for p in self.open_positions():
            out.setdefault(p.strategy_type, []).append(p.id)
        return out

    def fill(self, pid: str, ts: int, volume: float, price: float, rule: str, version: str, deal: str | None = None) -> float:
        """Book a (partial) close (``deal``: the broker's deal id, when known); return the realized PnL of
        this fill in the account currency."""
        p = self.positions[pid]
        volume = min(volume, p.volume)
        pnl = self.converter.pnl(p.symbol, p.side, p.entry, price, volume)
        p.realized_pnl += pnl
        self.realized_total += pnl
        self.realized_by[p.strategy_type] = self.realized_by.get(p.strategy_type, 0.0) + pnl
        lots = self.converter.spec(p.symbol).lots
        # volumes on the lot step stay on it (0.15 - 0.07 is 0.08, not 0.07999999999999999)
        p.volume = lots.nearest(p.volume - volume) if lots.on(p.volume) and lots.on(volume) else p.volume - volume
        p.fills.append(Fill(ts, volume, price, pnl, rule, deal))
        if p.volume <= p.volume0 * 1e-9:
            p.volume = 0.0
            p.status = Status.CLOSED
            p.closed_ts = ts
            p.unrealized_pnl = 0.0
            del self._open[pid]
            self.open_count[p.strategy_type] -= 1
            p.record(ts, "closed", rule, version, f"closed {volume:g} at {price:g}, PnL {pnl:.2f}")
        else:
            p.status = Status.PARTIALLY_CLOSED
            p.record(ts, "partially_closed", rule, version, f"closed {volume:g} at {price:g}, PnL {pnl:.2f}, {p.volume:g} left")
        return pnl

    def move(self, pid: str, ts: int, what: str, level: float, rule: str, version: str) -> None:
        p = self.positions[pid]
        old = p.stop_loss if what == "stop_loss" else p.take_profit
        if what == "stop_loss":
            p.stop_loss = level
        else:
            p.take_profit = level
        p.record(ts, f"set_{what}", rule, version, f"{what} {old:g} -> {level:g}")

    def realized(self, strategy: str | None = None) -> float:
        """Realized PnL in the account currency, of one strategy or of all."""
        return self.realized_total if strategy is None else self.realized_by.get(strategy, 0.0)
