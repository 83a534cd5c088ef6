"""The optimize_portfolio job: strategy weights from the strategies' own equity curves, within the bands.

Inputs: each strategy's performance curve (its configured target of the starting equity plus its
realized and open PnL, so that moving capital is not mistaken for a return) sampled once a minute of
event time by the engine; the last ``lookback`` returns of those curves (``rules/allocation.yaml``).
Output: every method's weights, their consensus, the per-strategy recommendations against the current
capital shares, the staged transfer plan (or why there is none), the allocation it leads to
(``after``), its expected impact (return, volatility, Sharpe, max drawdown on the same history) and a
warning when the plan lowers the expected Sharpe ratio, with the reason.

Applying a result (``auto_apply``, or an operator's ``accept_rebalance``) moves the capital: the
strategies' capital becomes the plan's ``after`` shares of the equity (``engine.rules.allocation.rebalance``),
which the checks, the sizing and the views use from then on, and one ``rebalance`` action per transfer is
emitted. A second run on unchanged estimates finds every strategy within its threshold: no transfer, no action.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import OptimizationError
from engine.optimize import consensus_of, covariance, expected_returns, recommend, run_method
from engine.optimize.bounds import resolve_bounds
from engine.rules import allocation
from engine.rules.evaluator import Engine
from engine.service.intake import Job
from engine.service.journal import Decision

if TYPE_CHECKING:
    from engine.service.worker import AccountWorker

log = logging.getLogger("riskrail.optimizer")

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
    current = np.array([max(allocation.capital(engine, n), 0.0) for n in names])
    current = current / current.sum() if current.sum() > 0 else np.full(len(names), 1 / len(names))
    thresholds = [engine.rules.strategies[n].allocation.rebalance_threshold for n in names]
    recs = recommend(names, current, cons.weights, thresholds, covariance=S, expected_returns=mu,
                     risk_free=alloc.risk_free_rate, max_step=alloc.max_transfer_per_step)
    impact = _impact(recs, returns, current, np.array([recs.after[n] for n in names]))
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
        "plan_note": None if recs.transfers else "no transfer: every strategy's capital share is within its rebalance threshold "
                                                  "of the consensus target",
        "after": recs.after,
        "expected_impact": impact,
        "warnings": plan_warnings(impact, alloc.methods, names, cons.weights, lo, hi),
        "agreement": {"mean_pairwise_l1": _f(cons.agreement.mean_pairwise_l1), "max_pairwise_l1": _f(cons.agreement.max_pairwise_l1),
                      "max_deviation": dict(zip(names, map(float, cons.agreement.max_deviation), strict=True))},
        "auto_apply": alloc.auto_apply,
        "applied": False,
    }


def _impact(recs: Any, returns: np.ndarray, current: np.ndarray, after: np.ndarray) -> dict[str, Any] | None:
    """The plan's expected impact as JSON: the estimates before and after, with the max drawdown of the
    same return history at the current and the planned weights, and the risk contributions."""
    if recs.impact is None:
        return None
    return {
        "before": {**{k: _f(v) for k, v in recs.impact.before.as_dict().items()}, "max_drawdown": _f(max_drawdown(returns, current))},
        "after": {**{k: _f(v) for k, v in recs.impact.after.as_dict().items()}, "max_drawdown": _f(max_drawdown(returns, after))},
        "risk_contributions_before": recs.impact.risk_contributions_before,
        "risk_contributions_after": recs.impact.risk_contributions_after,
    }


def max_drawdown(returns: np.ndarray, weights: np.ndarray) -> float:
    """The largest fall from a peak (a fraction, >= 0) of the portfolio with ``weights`` over ``returns``
    (observations x strategies, simple returns): the history the estimates came from."""
    curve = np.cumprod(1.0 + returns @ np.asarray(weights, dtype=float))
    peaks = np.maximum.accumulate(np.concatenate(([1.0], curve)))[1:]
    return float(np.max(1.0 - curve / peaks)) if curve.size else 0.0


def plan_warnings(impact: dict[str, Any] | None, methods: Sequence[str], names: list[str], targets: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray) -> list[str]:
    """A warning when the plan lowers the expected Sharpe ratio, with the reasons that explain it."""
    if impact is None:
        return []
    before, after = impact["before"]["sharpe"], impact["after"]["sharpe"]
    if before is None or after is None or after >= before - 1e-9:
        return []
    why = [f"{n} at its band {'max' if t >= h - 1e-9 else 'min'} {h if t >= h - 1e-9 else lo_:.4g}"
           for n, t, lo_, h in zip(names, targets, lo, hi, strict=True) if t <= lo_ + 1e-9 or t >= h - 1e-9]
    reasons = [f"the bands bind ({', '.join(why)})"] if why else []
    other = [m for m in methods if m not in ("max_sharpe",)]
    if other:
        reasons.append(f"the consensus includes {', '.join(other)}, whose objective is not the Sharpe ratio")
    vol0, vol1 = impact["before"]["volatility"], impact["after"]["volatility"]
    if vol0 is not None and vol1 is not None and vol1 < vol0:
        reasons.append(f"it lowers the expected volatility from {vol0:.4g} to {vol1:.4g}")
    return [f"the plan lowers the expected Sharpe ratio from {before:.3g} to {after:.3g}: " + "; ".join(reasons or ["no band binds"])]


def apply(engine: Engine, result: dict[str, Any], seq: int, key: str, by: str = "auto_apply") -> list:
    """Move the capital to the plan's ``after`` shares and make the consensus the targets; return one
    ``rebalance`` action per transfer (``by``: ``auto_apply``, or the operator who accepted the plan).

    The capital base lives on the engine (``engine.capital``, shown by the views, used by the checks);
    the transfers are the staged plan, for the desk or a pipeline to carry out in the books.
    """
    from engine.actions import Action, action_id

    allocation.rebalance(engine, dict(result["after"]), int(result["ts"]), dict(result["targets"]))
    result["applied"], result["applied_by"] = True, by
    out = []
    for i, t in enumerate(result["implementation_plan"]):
        params = {"step": t["step"], "from": t["from"], "to": t["to"], "amount": t["amount"], "amount_equity": t["amount_equity"]}
        aid = action_id(engine.version, seq, f"{t['to']}#{key}", "rebalance", "optimize_portfolio", i)
        out.append(Action(aid, result["ts"], "rebalance", None, t["to"], params, "optimize_portfolio", engine.version,
                          f"stage {t['step']}: move {t['amount']:.2%} of equity from {t['from']} to {t['to']} ({by})"))
    return out


def run_job(worker: AccountWorker, entry_id: str, job: Job) -> Decision:
    """Decide a job entry of ``worker``'s account: ``optimize_portfolio`` (run the optimizers; with
    ``auto_apply`` apply the result) or ``accept_rebalance`` (an operator applies the last result, named by
    its ``ts``, as ``by``); anything else is refused. The decision is journaled like an event's."""
    from engine.errors import OptimizationError

    raw = json.dumps({"job": job.name, **job.args})
    if job.name == "accept_rebalance":
        return _accept(worker, entry_id, job, raw)
    if job.name != "optimize_portfolio":
        return Decision(entry_id, None, raw, error=f"unknown job {job.name!r}")
    metrics, engine = worker.rt.metrics, worker.engine
    assert engine is not None, "a job is decided by a rebuilt engine"
    d = Decision(entry_id, None, raw, job=job.name)
    ts = engine.last_ts or int(entry_id.split("-")[0])
    try:
        result = optimize(engine, ts)
    except OptimizationError as exc:
        metrics.optimizations.labels(result="failed").inc()
        metrics.jobs.labels(job=job.name, result="failed").inc()
        result = {"ts": ts, "rules_version": engine.version, "error": str(exc)}
        log.warning("account %s: optimizer: %s", worker.account, exc)
    else:
        metrics.optimizations.labels(result="ok").inc()
        metrics.jobs.labels(job=job.name, result="ok").inc()
        if result["auto_apply"]:
            d.actions = apply(engine, result, worker.at.seq, entry_id)
    result["account"] = worker.account
    last = worker.last_optimization  # a failed run keeps the last good result, with the error
    worker.last_optimization = {**last, "last_error": result["error"]} if "error" in result and last is not None else result
    d.result = result
    return d


def refusal(last: dict[str, Any] | None, wanted: str) -> str | None:
    """Why the optimization result of ``ts`` ``wanted`` cannot be accepted, given the account's ``last`` result
    (None when it can): none produced yet, not the last one, or applied already."""
    if last is None or "after" not in last:  # a failed run keeps the last good result: a result with no plan is none
        return "no optimization result to accept: run the optimizer first"
    if str(last["ts"]) != wanted:
        return f"optimization {wanted[:40]!r} is not the last result ({last['ts']}): read the results again"
    if last.get("applied"):
        return f"optimization {wanted} is applied already (by {last.get('applied_by')})"
    return None


def _accept(worker: AccountWorker, entry_id: str, job: Job, raw: str) -> Decision:
    """An operator's acceptance of the last optimization result (``args.optimization``: its ``ts``); checked
    again here, in stream order, since the API's check (``refusal``) may race another acceptance."""
    last = worker.last_optimization
    why = refusal(last, job.args.get("optimization", ""))
    if why is not None or last is None:
        return Decision(entry_id, None, raw, error=why)
    d = Decision(entry_id, None, raw, job=job.name)
    assert worker.engine is not None, "a job is decided by a rebuilt engine"
    d.actions = apply(worker.engine, last, worker.at.seq, entry_id, by=job.args.get("by") or "operator")
    worker.rt.metrics.jobs.labels(job=job.name, result="ok").inc()
    d.result = last
    return d
