"""Benchmark riskrail's optimizers against PyPortfolioOpt and skfolio, measured in the same run.

    .venv/bin/python bench/optimize.py [--repeats N] [--quick]

Needs the ``bench`` extra (pyportfolioopt, skfolio, clarabel). Every solver gets the same annualised
expected returns and covariance: PyPortfolioOpt's own estimators on its stock_prices.csv (20 assets,
late listings), and a seeded 5-factor model at 200 and 500 assets. Times are medians of repeated
calls, each call the whole user-facing operation (model construction and solve; for riskrail also
input validation and the KKT verification). The gap is the relative objective difference to the peer,
signed so that a positive number means riskrail's portfolio is better (higher Sharpe, lower
volatility); for risk parity it is the largest deviation of a risk contribution from 1/n.

Targets: the same optimum within 1e-6 relative and at least 5x faster than the fastest peer for max
Sharpe and min volatility at 200 and 500 assets. The last universe repeats the 500 assets with every
weight capped at 2 % (about 60 weights on their cap), to time the bands as hard constraints.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import optimize as rr  # noqa: E402
from tests.optimize.optdata import factor_model  # noqa: E402  (the tests' seeded universe, one definition)

DATA = Path(__file__).resolve().parent.parent / "examples" / "data" / "pypfopt_stock_prices.csv"
RF = 0.02
SPEED_TARGET = 5.0
GAP_TARGET = 1e-6


@dataclass
class Timing:
    seconds: float | None  # None: the solver failed
    value: float | None  # objective: Sharpe, volatility, or max |rc - 1/n|
    note: str = ""


def median_time(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (imports, caches), not timed
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def stock_universe() -> tuple[str, np.ndarray, np.ndarray]:
    import pandas as pd
    from pypfopt import expected_returns, risk_models

    df = pd.read_csv(DATA, parse_dates=True, index_col="date")
    mu = expected_returns.mean_historical_return(df).to_numpy()
    S = risk_models.sample_cov(df).to_numpy()
    return "stocks-20", mu, S


def factor_universe(n: int, seed: int = 0, k: int = 5) -> tuple[str, np.ndarray, np.ndarray]:
    mu, S = factor_model(n, seed, k)
    return f"factor-{n}", mu, S


def sharpe(w, mu, S):
    return float((mu @ w - RF) / np.sqrt(w @ S @ w))


def vol(w, S):
    return float(np.sqrt(w @ S @ w))


def rc_dev(w, S):
    return float(np.max(np.abs(rr.risk_contributions(w, S) - 1.0 / len(w))))


# --- riskrail ---------------------------------------------------------------------------------------

def ours(method, mu, S, repeats, cap=1.0):
    fns = {
        "max_sharpe": lambda: rr.max_sharpe(mu, S, bounds=(0.0, cap), risk_free=RF).weights,
        "min_volatility": lambda: rr.min_volatility(mu, S, bounds=(0.0, cap)).weights,
        "equal_risk": lambda: rr.risk_parity(S, bounds=(0.0, cap)).weights,
    }
    t, w = median_time(fns[method], repeats)
    return Timing(t, objective(method, w, mu, S)), w


def objective(method, w, mu, S):
    w = np.asarray(w, dtype=float)
    return {"max_sharpe": lambda: sharpe(w, mu, S), "min_volatility": lambda: vol(w, S),
            "equal_risk": lambda: rc_dev(w, S)}[method]()


# --- peers ------------------------------------------------------------------------------------------

def pypfopt_peer(method, mu, S, repeats, solver, cap=1.0):
    from pypfopt import EfficientFrontier

    def run():
        ef = EfficientFrontier(mu, S, weight_bounds=(0.0, cap), solver=solver)
        if method == "max_sharpe":
            ef.max_sharpe(risk_free_rate=RF)
        else:
            ef.min_volatility()
        return np.array([ef.weights[i] for i in range(len(mu))]), ef._opt.solver_stats.solver_name

    try:
        t, (w, name) = median_time(run, repeats)
    except Exception as exc:  # a peer failing is a result to report, not a crash
        return Timing(None, None, f"failed: {exc.args[-1] if exc.args else exc}")
    return Timing(t, objective(method, w, mu, S), name)



def skfolio_peer(method, mu, S, repeats, cap=1.0):
    from skfolio import RiskMeasure
    from skfolio.optimization import MeanRisk, ObjectiveFunction, RiskBudgeting
    from skfolio.prior import BasePrior, ReturnDistribution

    class FixedPrior(BasePrior):
        def __init__(self, mu=None, covariance=None):
            self.mu = mu
            self.covariance = covariance

        def fit(self, X, y=None, **fit_params):
            self.return_distribution_ = ReturnDistribution(mu=self.mu, covariance=self.covariance,
                                                           returns=np.asarray(X, dtype=float))
            return self

    X = np.random.default_rng(0).normal(0, 0.01, (60, len(mu)))  # shape only: the prior supplies mu and S
    prior = FixedPrior(mu, S)

    def run():
        if method == "max_sharpe":
            m = MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO,
                         risk_measure=RiskMeasure.STANDARD_DEVIATION, risk_free_rate=RF, prior_estimator=prior,
                         max_weights=cap)
        elif method == "min_volatility":
            m = MeanRisk(objective_function=ObjectiveFunction.MINIMIZE_RISK, risk_measure=RiskMeasure.VARIANCE,
                         prior_estimator=prior, max_weights=cap)
        else:
            m = RiskBudgeting(risk_measure=RiskMeasure.VARIANCE, prior_estimator=prior)
        m.fit(X)
        return np.asarray(m.weights_, dtype=float)

    try:
        t, w = median_time(run, repeats)
    except Exception as exc:
        return Timing(None, None, f"failed: {exc.args[-1] if exc.args else exc}")
    return Timing(t, objective(method, w, mu, S), "CLARABEL")


def gap(method, ours_value, peer_value):
    """Relative objective difference, positive when riskrail is better."""
    if peer_value is None:
        return None
    if method == "max_sharpe":
        return (ours_value - peer_value) / abs(peer_value)
    if method == "min_volatility":
        return (peer_value - ours_value) / abs(peer_value)
    return peer_value - ours_value  # risk parity: absolute rc deviation, lower is better


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed calls per solver (median reported)")
    ap.add_argument("--quick", action="store_true", help="20 and 200 assets only, 3 repeats")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    repeats = 3 if args.quick else args.repeats
    universes = [(*stock_universe(), 1.0), (*factor_universe(200), 1.0)]
    if not args.quick:
        universes += [(*factor_universe(500), 1.0), ("f500 <=2%", *factor_universe(500)[1:], 0.02)]
    peer_repeats = max(3, repeats // 2)

    header = (f"{'universe':<11} {'method':<15} {'riskrail':>10} {'peer':<24} {'peer time':>10} "
              f"{'ratio':>8} {'gap':>10}  note")
    print(f"BLAS threads pinned: OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; "
          f"median of {repeats} (riskrail) / {peer_repeats} (peers) timed calls after one warm-up\n")
    print(header)
    print("-" * len(header))
    summary = []
    for name, mu, S, cap in universes:
        for method in ("max_sharpe", "min_volatility", "equal_risk"):
            if method == "equal_risk" and cap < 1:
                continue  # bounded risk parity: skfolio uses another definition (docs/optimize.md)
            mine, _ = ours(method, mu, S, repeats, cap)
            if method == "equal_risk":
                peers = {"skfolio RiskBudgeting": skfolio_peer(method, mu, S, peer_repeats)}
            else:
                peers = {
                    "pypfopt default": pypfopt_peer(method, mu, S, peer_repeats, None, cap),
                    "pypfopt CLARABEL": pypfopt_peer(method, mu, S, peer_repeats, "CLARABEL", cap),
                    "skfolio": skfolio_peer(method, mu, S, peer_repeats, cap),
                }
            for pname, p in peers.items():
                ratio = f"{p.seconds / mine.seconds:7.1f}x" if p.seconds else "     n/a"
                g = gap(method, mine.value, p.value)
                gtxt = f"{g:10.1e}" if g is not None else "       n/a"
                ptime = f"{p.seconds * 1e3:8.2f}ms" if p.seconds else "       n/a"
                print(f"{name:<11} {method:<15} {mine.seconds * 1e3:8.2f}ms {pname:<24} {ptime:>10} {ratio:>8} "
                      f"{gtxt}  {p.note}")
            ok = {k: v for k, v in peers.items() if v.seconds is not None}
            if method in ("max_sharpe", "min_volatility") and name != "stocks-20" and ok:
                fastest = min(ok, key=lambda k: ok[k].seconds)
                ratio = ok[fastest].seconds / mine.seconds
                g = gap(method, mine.value, ok[fastest].value)
                worst = min(gap(method, mine.value, v.value) for v in ok.values())
                speed_ok = ratio >= SPEED_TARGET
                same_ok = worst >= -GAP_TARGET
                summary.append(
                    f"{'MET ' if speed_ok and same_ok else 'MISSED'} {name} {method}: {ratio:.1f}x faster than the "
                    f"fastest peer ({fastest}, {ok[fastest].seconds * 1e3:.1f} ms vs {mine.seconds * 1e3:.2f} ms; "
                    f"target {SPEED_TARGET:.0f}x); objective gap to it {g:+.1e}, worst over peers {worst:+.1e} "
                    f"(target >= -{GAP_TARGET:.0e})"
                )
            elif method == "equal_risk" and ok:
                p = next(iter(ok.values()))
                summary.append(
                    f"info  {name} equal risk: {p.seconds / mine.seconds:.1f}x vs skfolio; max |rc - 1/n| riskrail "
                    f"{mine.value:.1e}, skfolio {p.value:.1e}"
                )
        print()
    print("summary")
    for line in summary:
        print("  " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
