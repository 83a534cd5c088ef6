"""``riskrail optimize --prices FILE.csv``: portfolio weights from a price table, per method and in consensus.

Reads the files (prices, bounds or strategy bands), hands numpy arrays to ``engine.optimize`` and
prints a table or JSON; ``--plot`` draws the efficient frontier, each method's portfolio and the bands.
Exit 0 on success, 1 when an input is invalid or the problem is infeasible, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from engine.cli._common import add_format_option
from engine.errors import OptimizationError, RiskrailError
from engine.names import CLI_METHODS, COVARIANCES, unknown

if TYPE_CHECKING:  # numpy is imported by the functions that run: the parser is built without it
    import numpy as np

DEFAULT_METHODS = ("max_sharpe", "min_volatility", "risk_parity", "hrp")
METHOD_CHOICES = CLI_METHODS


def _name_of(names: tuple[str, ...], what: str) -> Callable[[str], str]:
    """argparse type: one of ``names``; an old spelling (``max-sharpe``) is refused naming the new one."""

    def check(value: str) -> str:
        if value not in names:
            raise argparse.ArgumentTypeError(unknown(value, names, what))
        return value

    return check


class InputError(RiskrailError):
    """A file given to ``riskrail optimize`` cannot be read or has the wrong content."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "optimize",
        help="optimize portfolio weights from a price CSV (risk parity, mean-variance, max Sharpe, HRP)",
        description="Estimate expected returns and covariance from a price table (first column the date, one "
        "column per asset, blanks before a listing) and optimize long-only weights inside per-asset bands. "
        "Several methods are combined into a consensus. Exit 0 on success, 1 on invalid input or an "
        "infeasible problem, 2 on usage errors.",
    )
    p.add_argument("--prices", required=True, metavar="FILE.csv", help="price table: date column, then one column per asset")
    p.add_argument("--method", action="append", type=_name_of(METHOD_CHOICES, "method"), metavar="M",
                   help=f"method to run, repeatable; one of {', '.join(METHOD_CHOICES)} "
                   f"(default: {' '.join(DEFAULT_METHODS)})")
    p.add_argument("--expected-returns", choices=("mean", "cagr", "ewma"), default="mean",
                   help="expected-return estimator (default: mean, the annualised arithmetic mean)")
    p.add_argument("--covariance", type=_name_of(COVARIANCES, "covariance estimator"), default="ledoit_wolf",
                   metavar="{" + ",".join(COVARIANCES) + "}", help="covariance estimator (default: ledoit_wolf)")
    p.add_argument("--risk-free", type=float, default=0.0, metavar="R", help="annual risk-free rate (default 0)")
    band = p.add_mutually_exclusive_group()
    band.add_argument("--bounds", metavar="FILE", help="per-asset bands: CSV or YAML with asset, min, max")
    band.add_argument("--strategies", metavar="DIR", help="take the bands from the strategy files of DIR "
                      "(the price columns are then the strategies' return indices)")
    p.add_argument("--consensus", choices=("mean", "median"), default="mean", help="how to combine several methods")
    p.add_argument("--target-volatility", type=float, metavar="V", help="for efficient_risk")
    p.add_argument("--target-return", type=float, metavar="R", help="for efficient_return")
    p.add_argument("--risk-aversion", type=float, default=1.0, metavar="D", help="for max_quadratic_utility")
    p.add_argument("--samples", type=int, default=200, help="samples of resampled_max_sharpe (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of resampled_max_sharpe (default 0)")
    p.add_argument("--lookback", type=int, metavar="ROWS", help="use only the last ROWS prices")
    add_format_option(p, "a table of the weights")
    p.add_argument("--plot", metavar="FILE.png", help="write the efficient frontier, portfolios and bands as a PNG")
    p.set_defaults(func=run)


class Bands(NamedTuple):
    """Per-asset weight bands (``lo``, ``hi``) and, from strategy files, the targets and rebalance thresholds."""

    lo: np.ndarray
    hi: np.ndarray
    targets: np.ndarray | None = None
    thresholds: np.ndarray | None = None


def run(args: argparse.Namespace) -> int:
    import warnings

    import numpy as np

    from engine import optimize as opt

    try:
        names, prices = read_prices(args.prices)
    except InputError as exc:
        print(f"riskrail optimize: {exc}", file=sys.stderr)
        return 1
    if args.strategies:
        bands, names, prices = _strategy_bands(args.strategies, names, prices)
    elif args.bounds:
        try:
            bands = read_bounds(args.bounds, names)
        except InputError as exc:
            print(f"riskrail optimize: {exc}", file=sys.stderr)
            return 1
    else:
        bands = Bands(np.zeros(len(names)), np.ones(len(names)))
    if args.lookback is not None:
        if args.lookback < 3:
            raise OptimizationError("--lookback needs at least 3 rows")
        prices = prices[-args.lookback:]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", opt.NonPSDCovarianceWarning)
        R = opt.returns_from_prices(prices)
        mu = opt.expected_returns(R, args.expected_returns)
        S = opt.covariance(R, args.covariance)
    for w in caught:
        print(f"riskrail optimize: note: {w.message}", file=sys.stderr)

    methods = list(dict.fromkeys(args.method or DEFAULT_METHODS))
    options = {"risk_aversion": args.risk_aversion}
    if args.target_volatility is not None:
        options["target_volatility"] = args.target_volatility
    if args.target_return is not None:
        options["target_return"] = args.target_return
    results = {}
    for key in methods:
        if key == "resampled_max_sharpe":
            results[key] = opt.resampled_max_sharpe(mu, S, R.shape[0], bounds=(bands.lo, bands.hi),
                                                    risk_free=args.risk_free, samples=args.samples, seed=args.seed)
        else:
            results[key] = opt.run_method(key, mu, S, bounds=(bands.lo, bands.hi), risk_free=args.risk_free,
                                          options=options)
    cons = None
    if len(results) > 1:
        cons = opt.consensus_of(list(results.values()), S, bands.lo, bands.hi, mu=mu, rule=args.consensus,
                                risk_free=args.risk_free)
    recs = None
    if bands.targets is not None and bands.thresholds is not None:
        final = cons.weights if cons is not None else next(iter(results.values())).weights
        recs = opt.recommend(names, bands.targets, final, bands.thresholds, covariance=S, expected_returns=mu,
                             risk_free=args.risk_free)

    doc = _document(args, names, prices.shape[0], bands, results, cons, recs)
    if args.plot:
        _plot(args.plot, names, mu, S, bands, results, cons)
        doc["plot"] = args.plot
    if args.format == "json":
        import json

        print(json.dumps(doc, indent=2, allow_nan=False, default=_json_default))
    else:
        print(_table(doc))
    return 0


def read_prices(path: str) -> tuple[list[str], np.ndarray]:
    """Read a price CSV (gzip if it ends in .gz): header ``date,A,B,...``; blank, ``NA`` or ``nan`` are missing."""
    import csv

    import numpy as np

    try:
        opener: Callable[..., Any]
        if path.endswith(".gz"):
            import gzip

            opener = gzip.open
        else:
            opener = open
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            rows = [r for r in csv.reader(fh) if r and any(c.strip() for c in r)]
    except OSError as exc:
        raise InputError(f"cannot read prices {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: not a readable CSV file ({exc})") from None
    if len(rows) < 3:
        raise InputError(f"{path}: expected a header and at least 2 rows of prices, found {len(rows)} line(s)")
    header = [h.strip() for h in rows[0]]
    names = header[1:]
    if not names:
        raise InputError(f"{path}: expected a date column followed by one column per asset")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or "" in names:
        raise InputError(f"{path}: asset names must be unique and non-empty (check {', '.join(dup) or 'the header'})")
    data = np.full((len(rows) - 1, len(names)), np.nan)
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise InputError(f"{path}:{i}: expected {len(header)} cells, found {len(row)}")
        for j, cell in enumerate(row[1:]):
            cell = cell.strip()
            if cell == "" or cell.lower() in ("na", "nan", "null"):
                continue
            try:
                data[i - 2, j] = float(cell)
            except ValueError:
                raise InputError(f"{path}:{i}: column {names[j]!r}: {cell!r} is not a number") from None
    return names, data


def read_bounds(path: str, names: Sequence[str]) -> Bands:
    """Read per-asset bands from CSV (``asset,min,max``) or YAML (``ASSET: {min: .., max: ..}``).

    An asset named ``*`` sets the default band of the assets not listed (otherwise 0 to 1).
    """
    import numpy as np

    entries = _bounds_entries(path)
    index = {n: i for i, n in enumerate(names)}
    lo, hi = np.zeros(len(names)), np.ones(len(names))
    if "*" in entries:
        lo[:], hi[:] = entries.pop("*")
    unknown = sorted(set(entries) - set(index))
    if unknown:
        raise InputError(f"{path}: unknown asset(s) {', '.join(unknown)}; the price columns are {', '.join(names)}")
    for name, (a, b) in entries.items():
        lo[index[name]], hi[index[name]] = a, b
    return Bands(lo, hi)


def _bounds_entries(path: str) -> dict[str, tuple[float, float]]:
    import csv
    import math

    try:
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
    except OSError as exc:
        raise InputError(f"cannot read bounds {path}: {exc.strerror or exc}") from None
    raw: list[tuple[str, object, object]] = []
    if path.lower().endswith((".yaml", ".yml")):
        from ruamel.yaml import YAML
        from ruamel.yaml.error import YAMLError

        try:
            doc = YAML(typ="safe").load(text)
        except YAMLError as exc:
            raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if isinstance(doc, dict):
            for k, v in doc.items():
                if not isinstance(v, dict):
                    raise InputError(f"{path}: {k}: expected a mapping with min and max")
                raw.append((str(k), v.get("min", 0.0), v.get("max", 1.0)))
        elif isinstance(doc, list):
            for v in doc:
                if not isinstance(v, dict) or "asset" not in v:
                    raise InputError(f"{path}: each list item needs asset, min and max")
                raw.append((str(v["asset"]), v.get("min", 0.0), v.get("max", 1.0)))
        else:
            raise InputError(f"{path}: expected a mapping of asset to {{min, max}}")
    else:
        rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
        if not rows or [c.strip().lower() for c in rows[0]] != ["asset", "min", "max"]:
            raise InputError(f"{path}: expected the CSV header asset,min,max")
        for i, r in enumerate(rows[1:], start=2):
            if len(r) != 3:
                raise InputError(f"{path}:{i}: expected 3 cells (asset,min,max), found {len(r)}")
            raw.append((r[0].strip(), r[1].strip(), r[2].strip()))
    out: dict[str, tuple[float, float]] = {}
    for name, a, b in raw:
        try:
            lo, hi = float(a), float(b)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InputError(f"{path}: {name}: min and max must be numbers, got {a!r} and {b!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(f"{path}: {name}: min and max must be finite")
        if name in out:
            raise InputError(f"{path}: {name} is listed twice")
        out[name] = (lo, hi)
    return out


def _strategy_bands(folder: str, names: list[str], prices: np.ndarray) -> tuple[Bands, list[str], np.ndarray]:
    import numpy as np

    from engine.config import load_strategies  # lazily: the optimizer runs without the config package

    strategies = load_strategies(folder)
    missing = [s for s in strategies if s not in names]
    if missing:
        raise OptimizationError(
            f"the price file has no column for strateg{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)}"
        )
    order = list(strategies)
    cols = [names.index(s) for s in order]
    alloc = [strategies[s].allocation for s in order]
    bands = Bands(
        np.array([float(a.min) for a in alloc]),
        np.array([float(a.max) for a in alloc]),
        np.array([float(a.target) for a in alloc]),
        np.array([float(a.rebalance_threshold) for a in alloc]),
    )
    return bands, order, prices[:, cols]


def _weights(names: Sequence[str], w: np.ndarray) -> dict[str, float]:
    return {n: float(x) for n, x in zip(names, w, strict=True)}


def _finite(x: float) -> float | None:
    import math

    return float(x) if math.isfinite(x) else None


def _perf(p) -> dict[str, float | None]:
    return {k: _finite(v) for k, v in p.as_dict().items()}


def _document(args, names, rows, bands, results, cons, recs) -> dict:
    bounded = bool((bands.lo > 0).any() or (bands.hi < 1).any())
    doc: dict = {
        "assets": list(names),
        "inputs": {
            "prices": args.prices,
            "rows": int(rows),
            "expected_returns": args.expected_returns,
            "covariance": args.covariance,
            "risk_free": args.risk_free,
            "frequency": 252,
            "bounds": {n: [float(a), float(b)] for n, a, b in zip(names, bands.lo, bands.hi, strict=True)} if bounded else None,
        },
        "methods": {},
    }
    for key, r in results.items():
        doc["methods"][key] = {
            "weights": _weights(names, r.weights),
            "performance": _perf(r.performance),
            "risk_contributions": _weights(names, r.risk_contributions),
            "verification": {
                "condition": r.verification.condition,
                "optimality_residual": r.verification.optimality_residual,
                "max_bound_violation": r.verification.max_bound_violation,
                "budget_error": r.verification.budget_error,
            },
        }
    if cons is not None:
        doc["consensus"] = {
            "rule": cons.rule,
            "methods": list(results),
            "weights": _weights(names, cons.weights),
            "performance": _perf(cons.performance),
            "risk_contributions": _weights(names, cons.risk_contributions),
            "agreement": {
                "mean_pairwise_l1": cons.agreement.mean_pairwise_l1,
                "max_pairwise_l1": cons.agreement.max_pairwise_l1,
                "max_deviation": _weights(names, cons.agreement.max_deviation),
            },
        }
    if recs is not None:
        imp = recs.impact
        doc["recommendations"] = {
            "strategies": [s.__dict__.copy() for s in recs.strategies],
            "transfers": [t.__dict__.copy() for t in recs.transfers],
            "after": recs.after,
            "impact": None if imp is None else {
                "before": _perf(imp.before),
                "after": _perf(imp.after),
                "risk_contributions_before": imp.risk_contributions_before,
                "risk_contributions_after": imp.risk_contributions_after,
            },
        }
    return doc


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _table(doc: dict) -> str:
    cols = list(doc["methods"]) + (["consensus"] if "consensus" in doc else [])
    blocks = [doc["methods"][c] for c in doc["methods"]] + ([doc["consensus"]] if "consensus" in doc else [])
    width = max(10, *(len(c) for c in cols))
    name_w = max(10, *(len(a) for a in doc["assets"]))
    bounded = doc["inputs"]["bounds"] is not None
    head = f"{'asset':<{name_w}}" + ("  band         " if bounded else "") + "".join(f"  {c:>{width}}" for c in cols)
    lines = [head, "-" * len(head)]
    for a in doc["assets"]:
        band = ""
        if bounded:
            lo, hi = doc["inputs"]["bounds"][a]
            band = f"  {lo:5.1%}-{hi:6.1%}"
        lines.append(f"{a:<{name_w}}{band}" + "".join(f"  {b['weights'][a]:>{width}.2%}" for b in blocks))
    lines.append("-" * len(head))
    pad = " " * (15 if bounded else 0)
    for key, label in (("expected_return", "return"), ("volatility", "volatility"), ("sharpe", "sharpe")):
        cells = []
        for b in blocks:
            v = b["performance"][key]
            cells.append(f"  {'n/a':>{width}}" if v is None else
                         f"  {v:>{width}.3f}" if key == "sharpe" else f"  {v:>{width}.2%}")
        lines.append(f"{label:<{name_w}}{pad}" + "".join(cells))
    if "consensus" in doc:
        ag = doc["consensus"]["agreement"]
        lines.append(f"\nconsensus ({doc['consensus']['rule']}): mean pairwise L1 distance {ag['mean_pairwise_l1']:.3f}, "
                     f"largest {ag['max_pairwise_l1']:.3f}; largest deviation of one asset "
                     f"{max(ag['max_deviation'].values()):.2%}")
    if "recommendations" in doc:
        lines.append("\nstrategy                current   target   action    priority")
        for s in doc["recommendations"]["strategies"]:
            lines.append(f"{s['name']:<22} {s['current']:>8.2%} {s['target']:>8.2%}   {s['action']:<9} {s['priority']}")
        for t in doc["recommendations"]["transfers"]:
            lines.append(f"  step {t['step']}: move {t['amount']:.2%} from {t['source']} to {t['destination']}")
    if "plot" in doc:
        lines.append(f"\nplot written to {doc['plot']}")
    return "\n".join(lines)


def _plot(path: str, names, mu, S, bands, results, cons) -> None:
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from engine.optimize import efficient_frontier

    vols, rets = efficient_frontier(mu, S, bounds=(bands.lo, bands.hi), points=40)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [1, 1.3]})
    ax1.plot(vols, rets, color="black", lw=1.5, label="efficient frontier")
    sd = np.sqrt(np.diag(S))
    ax1.scatter(sd, mu, s=12, color="0.6", label="assets")
    for n, x, y in zip(names, sd, mu, strict=True):
        ax1.annotate(n, (x, y), fontsize=7, color="0.4", xytext=(2, 2), textcoords="offset points")
    markers = "o^sDvP*X"
    portfolios = list(results.items()) + ([("consensus", cons)] if cons is not None else [])
    for k, (key, r) in enumerate(portfolios):
        ax1.scatter(r.performance.volatility, r.performance.expected_return, s=70, marker=markers[k % len(markers)],
                    label=key, zorder=3, edgecolors="black", linewidths=0.5)
    ax1.set_xlabel("volatility (annualised)")
    ax1.set_ylabel("expected return (annualised)")
    ax1.set_title("Efficient frontier and portfolios")
    ax1.legend(fontsize=8, loc="best")
    ax1.grid(alpha=0.3)

    x = np.arange(len(names))
    width = 0.8 / max(len(portfolios), 1)
    if (bands.lo > 0).any() or (bands.hi < 1).any():
        ax2.bar(x, bands.hi - bands.lo, bottom=bands.lo, width=0.9, color="0.9", edgecolor="0.7", label="band (min-max)")
    for k, (key, r) in enumerate(portfolios):
        ax2.bar(x - 0.4 + width * (k + 0.5), r.weights, width=width, label=key)
    ax2.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax2.set_ylabel("weight")
    ax2.set_title("Weights per method")
    ax2.legend(fontsize=8, ncol=2)
    ax2.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise InputError(f"cannot write plot {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
