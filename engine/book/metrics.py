"""Performance metrics of an equity curve and of closed trades (per position, strategy, portfolio).

Equity returns are taken between samples one ``period`` apart (one minute by default) and
annualised with ``periods_per_year`` (525 600 minutes: markets that trade around the clock; pass
your own for others). Sharpe and Sortino use a zero risk-free rate; Sortino's downside deviation is
the root mean square of the negative returns over all periods.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

MINUTES_PER_YEAR = 525_600


def max_drawdown(equity: Sequence[float] | np.ndarray) -> float:
    """Return the largest fall from a peak, as a fraction of that peak (0 when it never falls)."""
    e = np.asarray(equity, dtype=np.float64)
    if e.size == 0:
        return 0.0
    peak = np.maximum.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, (peak - e) / peak, 0.0)
    return float(dd.max())


def equity_metrics(equity: Sequence[float], periods_per_year: float = MINUTES_PER_YEAR) -> dict[str, float]:
    """Return total return, annualised volatility, Sharpe, Sortino and max drawdown of an equity curve."""
    e = np.asarray(equity, dtype=np.float64)
    out = {"return": 0.0, "volatility": 0.0, "sharpe": 0.0, "sortino": 0.0, "max_drawdown": max_drawdown(e)}
    if e.size < 2 or e[0] <= 0:
        return out
    r = e[1:] / e[:-1] - 1
    out["return"] = float(e[-1] / e[0] - 1)
    sd = float(r.std(ddof=1)) if r.size > 1 else 0.0
    out["volatility"] = sd * math.sqrt(periods_per_year)
    mean = float(r.mean())
    if sd > 0:
        out["sharpe"] = mean / sd * math.sqrt(periods_per_year)
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside > 0:
        out["sortino"] = mean / downside * math.sqrt(periods_per_year)
    return out


def trade_metrics(pnls: Sequence[float], holding_ms: Sequence[int], in_profit_ms: Sequence[int]) -> dict[str, float]:
    """Return win rate, profit factor, average and median holding time (s) and time in profit (share)."""
    p = np.asarray(pnls, dtype=np.float64)
    h = np.asarray(holding_ms, dtype=np.float64)
    out = {"trades": int(p.size), "win_rate": 0.0, "profit_factor": 0.0,
           "avg_holding_s": 0.0, "median_holding_s": 0.0, "time_in_profit": 0.0}
    if p.size == 0:
        return out
    gains, losses = p[p > 0].sum(), -p[p < 0].sum()
    out["win_rate"] = float((p > 0).mean())
    out["profit_factor"] = float(gains / losses) if losses > 0 else (math.inf if gains > 0 else 0.0)
    out["avg_holding_s"] = float(h.mean() / 1000)
    out["median_holding_s"] = float(np.median(h) / 1000)
    total = h.sum()
    out["time_in_profit"] = float(np.sum(in_profit_ms) / total) if total > 0 else 0.0
    return out
