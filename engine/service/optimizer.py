"""The optimize_portfolio job: strategy weights from the strategies' own equity curves, within the bands.

Inputs: each strategy's equity (its allocation target times the starting equity, plus its realized and
open PnL) sampled once a minute of event time by the engine; the last ``lookback`` returns of those
curves (``rules/allocation.yaml``). Output: every method's weights, their consensus, the per-strategy
recommendations against the current allocation with the staged transfer plan and its expected impact.
With ``auto_apply`` the consensus becomes the engine's new allocation targets (``apply_targets``).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from engine.errors import OptimizationError
from engine.optimize import consensus_of, covariance, expected_returns, recommend, run_method
from engine.optimize.bounds import resolve_bounds
from engine.rules.evaluator import Engine

MIN_OBSERVATIONS = 10


def _f(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def optimize(engine: Engine, ts: int) -> dict[str, Any]:
    """Run the configured methods on the strategies' returns; return the JSON result (raises OptimizationError)."""
    alloc = engine.rules.allocation
    names = sorted(engine.rules.strategies)
    if len(names) < 2:
        raise OptimizationError("the optimizer needs at least two strategies")
    curves = np.array([engine.strategy_curves[n] for n in names], dtype=float)
    if curves.ndim != 2 or curves.shape[1] < MIN_OBSERVATIONS + 1:
        have = 0 if curves.ndim != 2 else max(curves.shape[1] - 1, 0)
        raise OptimizationError(f"not enough history yet: {have} return observations of the strategies, need {MIN_OBSERVATIONS} "
                                "(one per minute of event time)")
    curves = curves[:, -(alloc.lookback + 1):]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = (np.diff(curves, axis=1) / curves[:, :-1]).T
    if not np.isfinite(returns).all():
        raise OptimizationError("a strategy's equity reached zero: its returns are undefined")
    returns = returns + np.random.default_rng(0).normal(0.0, 1e-12, returns.shape)  # idle strategies: a PSD covariance
    freq = alloc.periods_per_year
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mu = expected_returns(returns, alloc.expected_returns, frequency=freq, span=alloc.ewma_span)
        S = covariance(returns, alloc.covariance, frequency=freq, span=alloc.ewma_span)
    lo, hi = resolve_bounds((np.array([engine.rules.strategies[n].allocation.min for n in names]),
                             np.array([engine.rules.strategies[n].allocation.max for n in names])), len(names))
    options: dict[str, Any] = {"risk_aversion": alloc.risk_aversion}
    if alloc.target_volatility is not None:
        options["target_volatility"] = alloc.target_volatility
    if alloc.target_return is not None:
        options["target_return"] = alloc.target_return
    if alloc.risk_budgets:
        options["risk_budgets"] = np.array([alloc.risk_budgets.get(n, 1.0) for n in names])
    results, failures = [], {}
    for method in alloc.methods:
        try:
            results.append(run_method(method, mu, S, bounds=(lo, hi), risk_free=alloc.risk_free_rate, options=options))
        except OptimizationError as exc:
            failures[method] = str(exc)
    if not results:
        raise OptimizationError("every method failed: " + "; ".join(f"{m}: {e}" for m, e in failures.items()))
    cons = consensus_of(results, S, lo, hi, mu=mu, rule=alloc.consensus.combine, risk_free=alloc.risk_free_rate)
    equity = engine.equity
    current = np.array([max(engine.strategy_equity(n), 0.0) for n in names])
    current = current / current.sum() if current.sum() > 0 else np.full(len(names), 1 / len(names))
    thresholds = [engine.rules.strategies[n].allocation.rebalance_threshold for n in names]
    recs = recommend(names, current, cons.weights, thresholds, covariance=S, expected_returns=mu,
                     risk_free=alloc.risk_free_rate, max_step=alloc.max_transfer_per_step)
    return {
        "ts": ts,
        "rules_version": engine.version,
        "observations": int(returns.shape[0]),
        "methods": {r.method: {"weights": dict(zip(names, map(float, r.weights), strict=True)),
                               **{k: _f(v) for k, v in r.performance.as_dict().items()}}
                    for r in results},
        "failed_methods": failures,
        "targets": dict(zip(names, map(float, cons.weights), strict=True)),
        "current": dict(zip(names, map(float, current), strict=True)),
        "recommendations": [
            {"strategy": s.name, "current": s.current, "target": s.target, "drift": s.drift, "threshold": s.threshold,
             "action": s.action, "priority": s.priority}
            for s in recs.strategies
        ],
        "implementation_plan": [
            {"step": t.step, "from": t.source, "to": t.destination, "amount": t.amount, "amount_equity": t.amount * equity}
            for t in recs.transfers
        ],
        "expected_impact": None if recs.impact is None else {
            "before": {k: _f(v) for k, v in recs.impact.before.as_dict().items()},
            "after": {k: _f(v) for k, v in recs.impact.after.as_dict().items()},
            "risk_contributions_before": recs.impact.risk_contributions_before,
            "risk_contributions_after": recs.impact.risk_contributions_after,
        },
        "agreement": {"mean_pairwise_l1": _f(cons.agreement.mean_pairwise_l1), "max_pairwise_l1": _f(cons.agreement.max_pairwise_l1),
                      "max_deviation": dict(zip(names, map(float, cons.agreement.max_deviation), strict=True))},
        "auto_apply": alloc.auto_apply,
        "applied": False,
    }


def apply(engine: Engine, result: dict[str, Any], seq: int, key: str) -> list:
    """Make the consensus the allocation targets (``auto_apply``); return one ``rebalance`` action per transfer.

    The targets live on the engine (``engine.targets``, shown by the portfolio summary); the transfers
    are the staged plan of the recommendations, for the desk or a pipeline to carry out.
    """
    from engine.actions import Action, action_id

    engine.targets = dict(result["targets"])
    result["applied"] = True
    out = []
    for i, t in enumerate(result["implementation_plan"]):
        params = {"step": t["step"], "from": t["from"], "to": t["to"], "amount": t["amount"], "amount_equity": t["amount_equity"]}
        aid = action_id(engine.version, seq, f"{t['to']}#{key}", "rebalance", "optimize_portfolio", i)
        out.append(Action(aid, result["ts"], "rebalance", None, t["to"], params, "optimize_portfolio", engine.version,
                          f"stage {t['step']}: move {t['amount']:.2%} of equity from {t['from']} to {t['to']} (auto_apply)"))
    return out
