"""Benchmark the compiled kernel of this checkout against the kernel of another revision, in one run.

    .venv/bin/python bench/kernel_at.py [--against REV] [--passes N] [--quick]

The workload is bench/ticks.py's kernel measurement (``run_kernel``: ``SymbolBook.on_quote`` over the
shipped strategies, 1 000 / 10 000 / 100 000 positions on 20 symbols, ticks resampled from the shipped
EURUSD ticks), run by each revision's own code: REV is checked out into a temporary git worktree, and
passes of the two alternate (this, REV, this, REV, ...) so that the noise of a shared machine falls on
both alike. Each pass is a fresh process that compiles (or loads from its cache) and warms its kernel
before it is timed. Prints the median evaluations/s of each side per size, and the ratio.

The default REV is the last revision before prices went on the tick grid (``7eecb27``): issue 13 asks
that exactness cost the kernel no more than 10 %.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "7eecb27"

# One pass, run inside a revision's tree: its own bench/ticks.py workload and its own kernel.
_PASS = """
import json, sys, tempfile
from pathlib import Path
import numpy as np
sys.path.insert(0, sys.argv[1])
from bench import ticks as b
from engine.config import load_config
sizes = json.loads(sys.argv[2])
with tempfile.TemporaryDirectory() as tmp:
    rules = load_config(str(b.bench_config(Path(tmp))))
b.run_kernel(rules, b.positions(100, rules, np.random.default_rng(0)), b.tick_stream(200, np.random.default_rng(0)))
rng = np.random.default_rng(20190204)
out = {}
for n, nticks in sizes:
    pos = b.positions(n, rules, rng)
    ticks = b.tick_stream(nticks, rng)
    out[n] = b.run_kernel(rules, pos, ticks)["evals_s"]
print(json.dumps(out))
"""


def one_pass(tree: Path, sizes: list[tuple[int, int]]) -> dict[str, float]:
    """Evaluations/s per size of the kernel in ``tree`` (a fresh process)."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    proc = subprocess.run([sys.executable, "-c", _PASS, str(tree), json.dumps(sizes)], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"kernel pass in {tree} failed:\n{proc.stderr[-2000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", default=BASELINE, help=f"the baseline revision (default {BASELINE})")
    ap.add_argument("--passes", type=int, default=5, help="passes of each side (default 5)")
    ap.add_argument("--quick", action="store_true", help="a tenth of the ticks (a smoke run)")
    args = ap.parse_args()
    sizes = [(1_000, 20_000), (10_000, 10_000), (100_000, 2_000)]
    if args.quick:
        sizes = [(n, t // 10) for n, t in sizes]
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{args.against}^{{commit}}"],
                      capture_output=True, check=False).returncode != 0:
        print(f"kernel_at: {args.against!r} is no revision of this git checkout; nothing measured", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(base), args.against], check=True)
        try:
            ours: list[dict[str, float]] = []
            theirs: list[dict[str, float]] = []
            for _ in range(args.passes):
                ours.append(one_pass(ROOT, sizes))
                theirs.append(one_pass(base, sizes))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)], check=False)
    print(f"kernel (SymbolBook.on_quote), shipped strategies, 20 symbols; this checkout against {args.against} in the same run, "
          f"{args.passes} alternating passes each, medians; one core, BLAS pinned\n")
    head = f"{'positions':>10} {'this evals/s':>15} {'baseline evals/s':>17} {'this/baseline':>14}"
    print(head)
    print("-" * len(head))
    worst = 1.0
    for n, _ in sizes:
        a = statistics.median(p[str(n)] for p in ours)
        b = statistics.median(p[str(n)] for p in theirs)
        worst = min(worst, a / b)
        print(f"{n:>10,} {a:>15,.0f} {b:>17,.0f} {a / b:>14.2f}")
    print(f"\n[{'met' if worst >= 0.9 else 'MISSED'}] the kernel within 10 % of the baseline's speed (worst ratio {worst:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
