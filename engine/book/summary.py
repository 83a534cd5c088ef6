"""The account's summary: portfolio and per-strategy metrics, and each position's results.

Built from the book, the equity curves sampled once a minute and the profit-locking ledgers; the
metrics themselves are in ``engine.book.metrics``. Open positions are marked at their last quote by
the caller before (``Position.unrealized_pnl``, ``time_in_profit_ms``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engine.book.ledgers import Ledger
from engine.book.metrics import equity_metrics, trade_metrics
from engine.book.positions import Book, Position, Status
from engine.book.valuation import Converter


def summarize(book: Book, converter: Converter, *, equity: float, unrealized: Callable[[str | None], float],
              curve: list[tuple[int, float]], strategy_curves: Mapping[str, list[float]], ledgers: Mapping[str, Ledger],
              strategies: Iterable[str], header: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``{"portfolio", "strategies", "positions"}``: the metrics of the whole account, of each of
    ``strategies`` (sorted) and the results of every position not rejected.

    ``unrealized(name)``: a strategy's open PnL (``None``: all); ``header``: fields the portfolio entry
    carries as they are (the rules version, the event counts).
    """
    positions = [p for p in book.positions.values() if p.status != Status.REJECTED]
    portfolio = {
        "equity": equity, "realized_pnl": book.realized(), "unrealized_pnl": unrealized(None),
        **equity_metrics([e for _, e in curve]), **_trades(positions), **header,
    }
    out = {}
    for name in sorted(strategies):
        mine = [p for p in positions if p.strategy_type == name]
        out[name] = {
            "realized_pnl": book.realized(name), "unrealized_pnl": unrealized(name),
            "open_positions": book.open_count.get(name, 0), **equity_metrics(strategy_curves[name]),
            **_trades(mine), "profit_locking": vars(ledgers[name]).copy(),
        }
    per_position = {p.id: _position(p, converter) for p in book.positions.values()}
    return {"portfolio": portfolio, "strategies": out, "positions": per_position}


def _trades(ps: Iterable[Position]) -> dict[str, float]:
    done = [p for p in ps if p.status == Status.CLOSED]
    return trade_metrics([p.realized_pnl for p in done], [(p.closed_ts or p.opened_ts) - p.opened_ts for p in done],
                         [p.time_in_profit_ms for p in done])


def _position(p: Position, converter: Converter) -> dict[str, Any]:
    return {"strategy": p.strategy_type, "status": p.status.value, "realized_pnl": p.realized_pnl,
            "unrealized_pnl": p.unrealized_pnl,
            "return": p.pnl / converter.notional(p.symbol, p.entry, p.volume0) if converter.known(p.symbol) and p.volume0 else 0.0,
            "holding_s": ((p.closed_ts or (p.last_mark_ts or p.opened_ts)) - p.opened_ts) / 1000,
            "time_in_profit_s": p.time_in_profit_ms / 1000, "fills": len(p.fills)}
