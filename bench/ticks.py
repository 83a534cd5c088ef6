"""Benchmark the tick path: the engine against the per-position reference and durable-rules, in one run.

    .venv/bin/python bench/ticks.py [--quick]

Workload: 1 000, 10 000 and 100 000 open positions over 20 symbols (strategies, sides and entries
drawn with a fixed seed), and a synthetic tick stream calibrated on the shipped EURUSD ticks: each
tick moves one symbol (round robin) by a mid return and spread resampled from the 3 733 real ticks of
2019-02-04 00:00-00:59 UTC. The shipped rules run in full (stops, targets, exit levels, trailing,
dynamic SL/TP, the daily loss limit and the custom rules, through the vectorised pre-filter and
durable-rules).

Measured, per size:
- kernel: ``SymbolBook.on_quote`` alone (the compiled loop, with the volatility update it needs in the
  same call), the same work the reference does; the median of 5 passes;
- engine: ``Engine.process(tick)``, tick to actions; ticks/s, position evaluations/s (open positions
  of the ticked symbol, summed over ticks), p50 and p99 latency;
- reference: the per-position reference of tests/rules/reference.py on the same positions and ticks
  (the median of 3 passes, each within a time budget);
- durable: one durable-rules event per position per tick (a stop / take-profit / exit-level ruleset),
  the design the kernel replaces.
Targets: at 10 000 positions >= 5 million evaluations/s on one core, the kernel >= 50x the reference; p99
tick-to-actions <= 1 ms at 1 000 positions.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from durable import engine as durable  # noqa: E402

from engine.adapters.paper import PaperBroker  # noqa: E402
from engine.book.positions import Position  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.events import Tick  # noqa: E402
from engine.rules.evaluator import Engine  # noqa: E402
from engine.rules.params import compile_params  # noqa: E402
from engine.rules.volatility import Volatility  # noqa: E402
from tests.rules.reference import RefPosition, on_tick  # noqa: E402

SYMBOLS = [f"S{i:02d}USD" for i in range(20)]
TICKS = ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"
T0 = 1_549_238_400_000


def bench_config(tmp: Path) -> Path:
    """The shipped rules with 20 USD-quoted symbols."""
    for name in ("strategies", "rules"):
        shutil.copytree(ROOT / name, tmp / name)
    shutil.copy(ROOT / "schedules.yaml", tmp / "schedules.yaml")
    lines = ["account_currency: USD", "instruments:"]
    lines += [f"  {s}: {{quote_currency: USD, contract_size: 100000, pip_size: 0.0001}}" for s in SYMBOLS]
    (tmp / "rules" / "instruments.yaml").write_text("\n".join(lines) + "\n")
    return tmp


def calibration() -> tuple[np.ndarray, np.ndarray]:
    rows = np.array(json.loads(TICKS.read_text()))
    ask, bid = rows[:, 1], rows[:, 2]
    mid = (ask + bid) / 2
    return np.diff(mid) / mid[:-1], (ask - bid) / mid


def tick_stream(n: int, rng: np.random.Generator) -> list[Tick]:
    returns, spreads = calibration()
    mids = {s: 1.0 + 0.05 * i for i, s in enumerate(SYMBOLS)}
    out = []
    r = rng.choice(returns, n)
    sp = rng.choice(spreads, n)
    for k in range(n):
        s = SYMBOLS[k % len(SYMBOLS)]
        mids[s] *= 1 + r[k]
        half = mids[s] * sp[k] / 2
        out.append(Tick(T0 + 60_000 + k * 50, s, mids[s] - half, mids[s] + half))
    return out


def positions(n: int, rules, rng: np.random.Generator) -> list[Position]:
    names = sorted(rules.strategies)
    out = []
    for i in range(n):
        s = SYMBOLS[i % len(SYMBOLS)]
        strat = names[int(rng.integers(len(names)))]
        side = 1 if rng.random() < 0.5 else -1
        entry = (1.0 + 0.05 * SYMBOLS.index(s)) * (1 + rng.normal(0, 0.002))
        d = rules.strategies[strat].defaults
        p = Position(f"p{i}", s, strat, f"{strat}-{i % 7}", side, 0.01, entry, T0)
        p.stop_loss, p.take_profit = entry * (1 - side * d.stop_loss), entry * (1 + side * d.take_profit)
        out.append(p)
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def median_of(runs: list[dict]) -> dict:
    """Each figure's median over repeated passes."""
    return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}


def run_engine(rules, pos: list[Position], ticks: list[Tick]) -> dict:
    engine = Engine(rules, equity0=1e9, broker=PaperBroker())
    for s in SYMBOLS:
        engine.process(Tick(T0, s, 1.0 + 0.05 * SYMBOLS.index(s), 1.0 + 0.05 * SYMBOLS.index(s)))
    for p in pos:
        engine.adopt(Position(p.id, p.symbol, p.strategy_type, p.strategy_name, p.side, p.volume0, p.entry, p.opened_ts,
                              p.stop_loss, p.take_profit))
    lat, evals, actions = [], 0, 0
    start = time.perf_counter()
    for t in ticks:
        evals += engine.kernels[t.symbol].n
        t0 = time.perf_counter_ns()
        actions += len(engine.process(t))
        lat.append((time.perf_counter_ns() - t0) / 1e3)
    wall = time.perf_counter() - start
    return {"ticks_s": len(ticks) / wall, "evals_s": evals / wall, "p50_us": pct(lat, 50), "p99_us": pct(lat, 99), "actions": actions}


def run_kernel(rules, pos: list[Position], ticks: list[Tick]) -> dict:
    """The vectorised kernel alone (with the volatility it needs), as the reference runs: no book, no portfolio rules."""
    from engine.rules.kernel import SymbolBook

    params = compile_params(rules.strategies)
    books = {s: SymbolBook(s, params) for s in SYMBOLS}
    for p in pos:
        books[p.symbol].add(p.id, p.strategy_type, p.side, p.entry, p.volume0, p.stop_loss, p.take_profit, p.opened_ts)
    vols = {s: Volatility(tuple(sorted({w for q in params.values() for w in q.windows}))) for s in SYMBOLS}
    evals = 0
    start = time.perf_counter()
    for t in ticks:
        book = books[t.symbol]
        evals += book.n
        book.on_quote(t.bid, t.ask, vols[t.symbol], t.ts)
    wall = time.perf_counter() - start
    return {"ticks_s": len(ticks) / wall, "evals_s": evals / wall}


def run_reference(rules, pos: list[Position], ticks: list[Tick], budget_s: float) -> dict:
    params = compile_params(rules.strategies)
    by_symbol: dict[str, list[RefPosition]] = {s: [] for s in SYMBOLS}
    for p in pos:
        by_symbol[p.symbol].append(RefPosition(p.id, params[p.strategy_type], p.side, p.entry, p.volume0, p.stop_loss, p.take_profit))
    vols = {s: Volatility(tuple(sorted({w for q in params.values() for w in q.windows}))) for s in SYMBOLS}
    evals, n = 0, 0
    start = time.perf_counter()
    for t in ticks:
        vol = vols[t.symbol]
        vol.update(t.bid, t.ask, t.ts)
        sigma = vol.values()
        book = by_symbol[t.symbol]
        evals += len(book)
        keep = []
        for rp in book:
            _, closed = on_tick(rp, t.bid, t.ask, sigma)
            if not closed:
                keep.append(rp)
        by_symbol[t.symbol] = keep
        n += 1
        if time.perf_counter() - start > budget_s:
            break
    wall = time.perf_counter() - start
    return {"ticks_s": n / wall, "evals_s": evals / wall}


class _Host(durable.Host):
    def __init__(self) -> None:
        self.hits = 0
        super().__init__()

    def get_action(self, name):
        def act(c):
            self.hits += 1
        return act


def run_durable(rules, pos: list[Position], ticks: list[Tick], budget_s: float) -> dict:
    """One event per position per tick through a stop / target / first-exit-level ruleset."""
    host = _Host()
    host.set_rulesets({"bench_per_position": {
        "stop": {"all": [{"m": {"$lte": {"profit": -0.005}}}], "run": "a"},
        "target": {"all": [{"m": {"$gte": {"profit": 0.01}}}], "run": "a"},
        "level": {"all": [{"m": {"$and": [{"$gte": {"profit": 0.005}}, {"$lt": {"profit": 0.01}}]}}], "run": "a"},
    }})
    by_symbol: dict[str, list[Position]] = {s: [] for s in SYMBOLS}
    for p in pos:
        by_symbol[p.symbol].append(p)
    events, n = 0, 0
    start = time.perf_counter()
    for t in ticks:
        for p in by_symbol[t.symbol]:
            price = t.bid if p.side > 0 else t.ask
            profit = round(p.side * (price - p.entry) / p.entry, 8)
            try:
                host.post("bench_per_position", {"sid": "0", "profit": profit})
            except durable.MessageNotHandledException:
                pass
            events += 1
        n += 1
        if time.perf_counter() - start > budget_s:
            break
    wall = time.perf_counter() - start
    return {"ticks_s": n / wall, "evals_s": events / wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer ticks (a smoke run)")
    args = ap.parse_args()
    rng = np.random.default_rng(20190204)
    with tempfile.TemporaryDirectory() as tmp:
        rules = load_config(str(bench_config(Path(tmp))))
    sizes = [(1_000, 20_000), (10_000, 10_000), (100_000, 2_000)]
    if args.quick:
        sizes = [(n, t // 10) for n, t in sizes]
    # warm-up: load the compiled tick loop (numba) before anything is timed
    run_kernel(rules, positions(100, rules, np.random.default_rng(0)), tick_stream(200, np.random.default_rng(0)))
    print(f"tick path, shipped rules, 20 symbols, ticks resampled from {TICKS.name}; one core, BLAS pinned;\n"
          "engine and durable: one pass; kernel: median of 5 passes; reference: median of 3 passes\n")
    head = (f"{'positions':>10} {'engine ticks/s':>15} {'engine evals/s':>15} {'p50 us':>8} {'p99 us':>8} {'kernel evals/s':>15} "
            f"{'ref evals/s':>12} {'engine/ref':>11} {'kernel/ref':>11} {'durable ev/s':>13} {'engine/durable':>15}")
    print(head)
    print("-" * len(head))
    results = {}
    for n, nticks in sizes:
        pos = positions(n, rules, rng)
        ticks = tick_stream(nticks, rng)
        eng = run_engine(rules, pos, ticks)
        ker = median_of([run_kernel(rules, pos, ticks) for _ in range(5)])
        ref = median_of([run_reference(rules, pos, ticks, budget_s=4.0) for _ in range(3)])
        dur = run_durable(rules, pos, ticks, budget_s=5.0)
        results[n] = (eng, ref, dur, ker)
        print(f"{n:>10,} {eng['ticks_s']:>15,.0f} {eng['evals_s']:>15,.0f} {eng['p50_us']:>8.0f} {eng['p99_us']:>8.0f} "
              f"{ker['evals_s']:>15,.0f} {ref['evals_s']:>12,.0f} {eng['evals_s'] / ref['evals_s']:>11.1f} "
              f"{ker['evals_s'] / ref['evals_s']:>11.1f} {dur['evals_s']:>13,.0f} {eng['evals_s'] / dur['evals_s']:>15.1f}")
    print()
    e10, r10, _, k10 = results[10_000]
    e1 = results[1_000][0]
    checks = [
        (f"10 000 positions: {e10['evals_s'] / 1e6:.2f} M evaluations/s (target >= 5 M)", e10["evals_s"] >= 5e6),
        ((f"10 000 positions: kernel {k10['evals_s'] / r10['evals_s']:.1f}x the per-position reference (target >= 50x; "
          f"the whole engine, book and portfolio rules included: {e10['evals_s'] / r10['evals_s']:.1f}x)"),
         k10["evals_s"] / r10["evals_s"] >= 50),
        (f"1 000 positions: p99 tick-to-actions {e1['p99_us']:.0f} us (target <= 1 000 us)", e1["p99_us"] <= 1000),
    ]
    ratios = (f"{n:,} positions {k['evals_s'] / r['evals_s']:.1f}x" for n, (_, r, _, k) in results.items())
    print("kernel / reference (medians): " + ", ".join(ratios))
    for text, ok in checks:
        print(f"[{'met' if ok else 'MISSED'}] {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
