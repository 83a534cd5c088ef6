"""Rebalancing recommendations: from a current allocation to targets, per strategy.

Rules (fractions of equity):

- drift = target - current;
- action: ``hold`` when ``|drift| <= threshold`` (within the rebalance threshold), else ``increase``
  (drift > 0) or ``decrease``;
- priority from the drift against the threshold: ``high`` when ``|drift| >= 2 x threshold``,
  ``medium`` when ``|drift| > threshold``, ``low`` otherwise (every hold is low);
- plan: every non-hold strategy moves all the way to its target. Decreases fund increases greedily,
  largest drift first (ties by name); when the two sides do not balance, the strategies that hold make
  up the difference, those drifting the same way, never past their own targets (the drifts sum to zero,
  so they always can), and the allocation still sums to 1. Transfers are staged into steps that move at
  most ``max_step`` in total each (default 0.05).
- impact: expected return, volatility, Sharpe and risk contributions before and after the plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.errors import OptimizationError
from engine.optimize.results import Performance, portfolio_performance, risk_contributions

__all__ = ["Impact", "Recommendations", "StrategyRecommendation", "Transfer", "recommend"]

_EPS = 1e-12  # tolerance for comparing decimal fractions (0.05 vs 0.05000000000000002)


@dataclass(frozen=True)
class StrategyRecommendation:
    """What to do with one strategy's allocation."""

    name: str
    current: float
    target: float
    drift: float
    threshold: float
    action: str
    priority: str


@dataclass(frozen=True)
class Transfer:
    """Move ``amount`` of equity from ``source`` to ``destination`` in stage ``step`` (1-based)."""

    step: int
    source: str
    destination: str
    amount: float


@dataclass(frozen=True)
class Impact:
    """Portfolio measures before and after the plan (risk contributions keyed by strategy)."""

    before: Performance
    after: Performance
    risk_contributions_before: dict[str, float]
    risk_contributions_after: dict[str, float]


@dataclass(frozen=True)
class Recommendations:
    """Per-strategy recommendations, the staged transfer plan, the resulting allocation and its impact."""

    strategies: tuple[StrategyRecommendation, ...]
    transfers: tuple[Transfer, ...]
    after: dict[str, float]
    impact: Impact | None


def recommend(names: Sequence[str], current: Sequence[float] | np.ndarray, target: Sequence[float] | np.ndarray,
              thresholds: float | Sequence[float] | np.ndarray, *, covariance: np.ndarray | None = None,
              expected_returns: np.ndarray | None = None, risk_free: float = 0.0,
              max_step: float = 0.05) -> Recommendations:
    """Return the recommendations to move ``current`` towards ``target`` (see the module docstring)."""
    names = [str(n) for n in names]
    k = len(names)
    if len(set(names)) != k:
        raise OptimizationError("strategy names must be unique")
    cur = _vector(current, k, "current allocation")
    tgt = _vector(target, k, "target allocation")
    thr = np.full(k, float(np.asarray(thresholds))) if np.ndim(thresholds) == 0 else _vector(thresholds, k, "thresholds")
    if (thr < 0).any():
        raise OptimizationError("rebalance thresholds must not be negative")
    if not (np.isfinite(max_step) and max_step > 0):
        raise OptimizationError(f"max step must be positive, got {max_step}")
    for label, v in (("current", cur), ("target", tgt)):
        if abs(v.sum() - 1.0) > 1e-6:
            raise OptimizationError(f"the {label} allocation sums to {v.sum():.6g}, not 1")

    items = []
    for i, name in enumerate(names):
        d = float(tgt[i] - cur[i])
        a = abs(d)
        if a <= thr[i] + _EPS:
            action = "hold"
        else:
            action = "increase" if d > 0 else "decrease"
        if a >= 2 * thr[i] - _EPS and action != "hold":
            priority = "high"
        elif action != "hold":
            priority = "medium"
        else:
            priority = "low"
        items.append(StrategyRecommendation(name, float(cur[i]), float(tgt[i]), d, float(thr[i]), action, priority))

    transfers = _plan(items, max_step)
    after = cur.copy()
    pos = {n: i for i, n in enumerate(names)}
    for t in transfers:
        after[pos[t.source]] -= t.amount
        after[pos[t.destination]] += t.amount
    impact = None
    if covariance is not None:
        S = np.asarray(covariance, dtype=float)
        if S.shape != (k, k):
            raise OptimizationError(f"covariance must be {k}x{k} for {k} strategies, got {S.shape}")
        mu = np.full(k, np.nan) if expected_returns is None else _vector(expected_returns, k, "expected returns")
        impact = Impact(
            portfolio_performance(cur, mu, S, risk_free),
            portfolio_performance(after, mu, S, risk_free),
            dict(zip(names, map(float, risk_contributions(cur, S)), strict=True)),
            dict(zip(names, map(float, risk_contributions(after, S)), strict=True)),
        )
    return Recommendations(tuple(items), tuple(transfers), dict(zip(names, map(float, after), strict=True)), impact)


def _plan(items: list[StrategyRecommendation], max_step: float) -> list[Transfer]:
    """Match decreases to increases greedily, then cut the transfers into stages of at most ``max_step``.

    Every strategy to move (``increase``/``decrease``) moves all the way to its target; what one side
    lacks is taken from (or given to) the strategies that hold, those whose drift points the same way
    first, largest drift first, never past their own target. The drifts sum to zero, so the holds always
    have room: a decrease is never left without a destination, nor an increase without a source.
    """
    order = lambda it: (-abs(it.drift), it.name)  # noqa: E731 - a sort key
    movers = sorted((it for it in items if it.action != "hold"), key=order)
    holds = sorted((it for it in items if it.action == "hold"), key=order)
    # [name, amount left] pairs, consumed in place: movers first, then the holds that drift the same way
    sources: list[list[Any]] = [[it.name, -it.drift] for it in movers if it.action == "decrease"]
    sinks: list[list[Any]] = [[it.name, it.drift] for it in movers if it.action == "increase"]
    need_in, need_out = sum(s[1] for s in sinks), sum(s[1] for s in sources)
    if need_out > need_in + _EPS:
        sinks += [[it.name, it.drift] for it in holds if it.drift > _EPS]
    elif need_in > need_out + _EPS:
        sources += [[it.name, -it.drift] for it in holds if it.drift < -_EPS]
    moves: list[tuple[str, str, float]] = []
    i = j = 0
    while i < len(sources) and j < len(sinks):
        amount = min(sources[i][1], sinks[j][1])
        if amount > _EPS:
            moves.append((sources[i][0], sinks[j][0], amount))
        sources[i][1] -= amount
        sinks[j][1] -= amount
        if sources[i][1] <= _EPS:
            i += 1
        if sinks[j][1] <= _EPS:
            j += 1
    staged: list[Transfer] = []
    step, room = 1, max_step
    for src, dst, amount in moves:
        left = amount
        while left > _EPS:
            if room <= _EPS:
                step, room = step + 1, max_step
            chunk = min(left, room)
            staged.append(Transfer(step, src, dst, float(chunk)))
            left -= chunk
            room -= chunk
    return staged


def _vector(x: float | Sequence[float] | np.ndarray, k: int, what: str) -> np.ndarray:
    v = np.asarray(x, dtype=float).reshape(-1)
    if v.shape != (k,):
        raise OptimizationError(f"{what} must have {k} entries, got {v.size}")
    if not np.isfinite(v).all():
        raise OptimizationError(f"{what} has missing or infinite entries")
    return v
