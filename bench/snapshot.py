"""Benchmark an engine snapshot: the engine-state record (JSON, ``engine.rules.state``) against a pickle of
the same state, in one run.

    .venv/bin/python bench/snapshot.py [--positions 1000,20000] [--repeats 5]

For each size, an engine on the shipped rules takes over that many open positions (``existing: true``,
spread over the strategies and the four shipped symbols) and is quoted until every symbol's volatility
has history. Then, ``repeats`` times each, alternating: the record written (``record`` + ``dumps``) and
read back into a new engine (``loads`` + ``restore``), and the baseline, the engine's state attributes
pickled and unpickled (what snapshots held before the record; the rebuild of derived state is not
counted there, so the baseline is a lower bound). Prints medians, sizes and the ratios.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import pickle  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.adapters.paper import PaperBroker  # noqa: E402
from engine.config import load_config  # noqa: E402
from engine.events import PositionOpened, Tick  # noqa: E402
from engine.rules import state  # noqa: E402
from engine.rules.evaluator import Engine  # noqa: E402

T0 = 1_549_238_400_000
QUOTES = {"EURUSD": 1.1450, "GBPUSD": 1.3000, "USDJPY": 110.00, "EURJPY": 125.00}
NOT_STATE = ("rules", "portfolio", "broker", "on_problem")


def engine_with(n: int) -> Engine:
    """An engine on the shipped rules holding ``n`` open positions, quoted for 20 minutes on every symbol."""
    rules = load_config(str(ROOT))
    engine = Engine(rules, equity0=1e9, broker=PaperBroker())
    strategies = sorted(rules.strategies)
    for symbol, mid in QUOTES.items():
        engine.process(Tick(T0, symbol, mid, mid * 1.00001))
    for i in range(n):
        symbol = list(QUOTES)[i % len(QUOTES)]
        mid = QUOTES[symbol]
        engine.process(PositionOpened(T0 + 1 + i, f"p{i}", symbol, strategies[i % len(strategies)], "bench", 1 if i % 2 else -1,
                                      0.1, mid, None, None, existing=True))
    for k in range(1, 121):  # a quote every 10 s for 20 minutes: the one-minute horizons have closed bars
        for symbol, mid in QUOTES.items():
            step = mid * 0.00002 * ((k * 7) % 11 - 5)
            engine.process(Tick(T0 + n + k * 10_000, symbol, round(mid + step, 5), round(mid + step + mid * 0.00001, 5)))
    return engine


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(n: int, repeats: int) -> dict[str, float]:
    engine = engine_with(n)
    rules = engine.rules
    open_now = engine.book.n_open
    rec_w: list[float] = []
    rec_r: list[float] = []
    pic_w: list[float] = []
    pic_r: list[float] = []
    def restore(blob: bytes) -> Engine:
        new = Engine(rules, equity0=1e9, broker=PaperBroker())
        state.restore(new, state.loads(blob))
        return new

    blob = pickled = b""
    for _ in range(repeats):
        dt, blob = timed(lambda: state.dumps(state.record(engine)))
        rec_w.append(dt)
        dt, restored = timed(lambda b=blob: restore(b))
        rec_r.append(dt)
        assert restored.book.n_open == open_now
        dt, pickled = timed(lambda: pickle.dumps({k: v for k, v in engine.__dict__.items() if k not in NOT_STATE}, protocol=5))
        pic_w.append(dt)
        dt, _ = timed(lambda b=pickled: pickle.loads(b))
        pic_r.append(dt)
    return {"open": open_now, "record_write": statistics.median(rec_w), "record_read": statistics.median(rec_r),
            "pickle_write": statistics.median(pic_w), "pickle_read": statistics.median(pic_r),
            "record_bytes": len(blob), "pickle_bytes": len(pickled)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", default="1000,20000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="one small size, two repeats")
    args = ap.parse_args()
    sizes = [500] if args.quick else [int(x) for x in args.positions.split(",")]
    repeats = 2 if args.quick else args.repeats
    print(f"engine snapshot: JSON record vs pickle of the same state (medians of {repeats}; CPU count {os.cpu_count()})")
    print(f"{'open':>7} | {'record write':>12} {'pickle write':>12} {'ratio':>6} | {'record read':>11} {'pickle read':>11} "
          f"{'ratio':>6} | {'record':>9} {'pickle':>9} {'ratio':>6}")
    for n in sizes:
        m = measure(n, repeats)
        write, read = m["record_write"] / m["pickle_write"], m["record_read"] / m["pickle_read"]
        size = m["record_bytes"] / m["pickle_bytes"]
        print(f"{m['open']:>7} | {m['record_write'] * 1e3:>10.1f}ms {m['pickle_write'] * 1e3:>10.1f}ms {write:>6.2f} | "
              f"{m['record_read'] * 1e3:>9.1f}ms {m['pickle_read'] * 1e3:>9.1f}ms {read:>6.2f} | "
              f"{m['record_bytes'] / 1e6:>7.2f}MB {m['pickle_bytes'] / 1e6:>7.2f}MB {size:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
