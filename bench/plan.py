"""Benchmark ``riskrail plan``: a dry run of a rule change over 1 000 000 ticks with 500 open positions.

    .venv/bin/python bench/plan.py [--quick]

Input, built from the shipped real EURUSD ticks (examples/data, 3 733 quotes of 2019-02-04
00:00-00:59 UTC): the hour is repeated with its timestamps shifted by one hour per repetition
(prices as recorded), up to 1 000 000 quotes, about eleven days, so daily and weekly resets happen.
Positions: 500 opened over the first minute (the five strategies without dynamic SL/TP, at the
quote, with the strategy's default SL/TP: they stay open), plus one short-lived position every 600
quotes (all six strategies in turn, stop and target 2-5 pips away), closed from outside 3 000 quotes
later when its stop or target has not closed it: about 505 open positions throughout.
Rules: the shipped rule set (strategies, limits, custom rules, schedules) with max_positions raised
so that 500 positions pass the pre-trade checks. The proposed change: news_driven's dynamic stop
multiple 3.0 -> 3.5 (it changes actions, so the plan replays twice).

Measured: ``make_plan`` (both replays and the comparison), the batch path (engine/rules/batch.py,
the default) on the whole input; the event-by-event path (``batch=False``) on the first 100 000
quotes only, extrapolated linearly to 1 000 000 and labelled so (it runs at ~20 k quotes/s per
replay); and the batch path on the same 100 000 quotes, for a like-for-like ratio. The two paths
must give identical actions on the subset (checked here, and by tests/rules/test_batch.py).
Target: under 20 s for the whole plan on one core.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.config import load_config  # noqa: E402
from engine.events import Event, PositionClosed, PositionOpened, Tick  # noqa: E402
from engine.plan.run import effect, make_plan  # noqa: E402

TICKS = ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"
HOUR_MS = 3_600_000
EQUITY = 1_000_000.0
LONG_LIVED = ("arbitrage", "htf", "market_making", "statistical_arbitrage", "trend_following")
ALL = ("arbitrage", "htf", "market_making", "news_driven", "statistical_arbitrage", "trend_following")


def config(into: Path, proposed: bool) -> Path:
    """The shipped rules, max_positions raised; ``proposed``: news_driven's dynamic stop multiple 3.5."""
    for name in ("strategies", "rules"):
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("tests"))
    shutil.copy(ROOT / "schedules.yaml", into / "schedules.yaml")
    for f in (into / "strategies").glob("*.yaml"):
        f.write_text(re.sub(r"^max_positions: \d+", "max_positions: 5000", f.read_text(), flags=re.M))
    if proposed:
        f = into / "strategies" / "news_driven.yaml"
        text = f.read_text()
        assert "stop_multiple: 3.0" in text
        f.write_text(text.replace("stop_multiple: 3.0", "stop_multiple: 3.5"))
    return into


def history(n_ticks: int) -> list[Event]:
    """Quotes of the shipped hour, repeated with shifted timestamps, and the position events among them."""
    rows = json.loads(TICKS.read_text())  # [ts, ask, bid, ask volume, bid volume]
    events: list[Event] = []
    opened = 0
    k = 0
    while k < n_ticks:
        shift = (k // len(rows)) * HOUR_MS
        ts, ask, bid = rows[k % len(rows)][:3]
        tick = Tick(int(ts) + shift, "EURUSD", float(bid), float(ask))
        events.append(tick)
        k += 1
        if k <= 500:  # the book: 500 positions over the first quotes, default SL/TP
            name = LONG_LIVED[opened % len(LONG_LIVED)]
            side = 1 if opened % 2 == 0 else -1
            events.append(PositionOpened(tick.ts, f"L{opened}", "EURUSD", name, f"{name}-book", side, 0.01,
                                         tick.ask if side > 0 else tick.bid, None, None))
            opened += 1
        elif k % 600 == 0:  # churn: a short-lived position, stop and target a few pips away
            name = ALL[(k // 600) % len(ALL)]
            side = 1 if (k // 600) % 2 == 0 else -1
            entry = tick.ask if side > 0 else tick.bid
            pips = 2 + (k // 600) % 4
            events.append(PositionOpened(tick.ts, f"C{k}", "EURUSD", name, f"{name}-churn", side, 0.01, entry,
                                         entry - side * pips * 1e-4, entry + side * pips * 1e-4))
        if k > 3000 and (k - 3000) % 600 == 0 and k - 3000 > 500:  # the trader closes what is left after 3 000 quotes
            events.append(PositionClosed(tick.ts, f"C{k - 3000}", None))
    return events


def first_ticks(events: list[Event], n: int) -> list[Event]:
    out, seen = [], 0
    for e in events:
        if isinstance(e, Tick):
            seen += 1
            if seen > n:
                break
        out.append(e)
    return out


def timed_plan(base, proposed, events, batch: bool):
    start = time.perf_counter()
    plan = make_plan(base, proposed, events, EQUITY, batch=batch)
    return plan, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="100 000 quotes and a 20 000-quote baseline (a smoke run)")
    args = ap.parse_args()
    total, subset = (100_000, 20_000) if args.quick else (1_000_000, 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        base = load_config(str(config(Path(tmp) / "base", proposed=False)))
        proposed = load_config(str(config(Path(tmp) / "proposed", proposed=True)))
    t0 = time.perf_counter()
    events = history(total)
    build_s = time.perf_counter() - t0
    small = first_ticks(events, subset)
    # warm-up: load the compiled kernel before anything is timed
    make_plan(base, proposed, first_ticks(events, 2_000), EQUITY)

    print(f"plan dry run, shipped rules (+ max_positions), proposed: news_driven dynamic stop_multiple 3.0 -> 3.5;\n"
          f"{total:,} quotes = {TICKS.name} repeated with shifted timestamps; {len(events) - total:,} position events; "
          f"one core, BLAS pinned\n(building the {len(events):,} events: {build_s:.1f} s, not counted)\n")
    per_tick, per_tick_s = timed_plan(base, proposed, small, batch=False)
    batch_small, batch_small_s = timed_plan(base, proposed, small, batch=True)
    same = ([effect(a) for a in per_tick.base.actions] == [effect(a) for a in batch_small.base.actions]
            and [a.id for a in per_tick.proposed.actions] == [a.id for a in batch_small.proposed.actions]
            and repr(per_tick.base.summary) == repr(batch_small.base.summary))  # repr: nan equals itself
    full, full_s = timed_plan(base, proposed, events, batch=True)
    extrapolated = per_tick_s * total / subset
    open_end = full.proposed.summary["portfolio"]
    print(f"{'run':<52} {'quotes':>10} {'seconds':>9} {'quotes/s per replay':>20}")
    print("-" * 94)
    print(f"{'event by event (batch=False), measured':<52} {subset:>10,} {per_tick_s:>9.2f} {2 * subset / per_tick_s:>20,.0f}")
    print(f"{'batch path, measured':<52} {subset:>10,} {batch_small_s:>9.2f} {2 * subset / batch_small_s:>20,.0f}")
    print(f"{'event by event, EXTRAPOLATED from the subset':<52} {total:>10,} {extrapolated:>9.1f} {'':>20}")
    print(f"{'batch path, measured':<52} {total:>10,} {full_s:>9.2f} {2 * total / full_s:>20,.0f}")
    print()
    print(f"actions: base {len(full.base.actions):,}, proposed {len(full.proposed.actions):,}; "
          f"{len(full.changed_positions())} positions changed; open positions at the end: "
          f"{sum(1 for p in full.proposed.summary['positions'].values() if p['status'] == 'open')} "
          f"(events {open_end['events']:,}, ticks {open_end['ticks']:,})")
    print(f"batch / event by event on the {subset:,}-quote subset: {per_tick_s / batch_small_s:.1f}x (measured); "
          f"on {total:,} quotes: {extrapolated / full_s:.1f}x (against the extrapolated baseline)")
    checks = [
        (f"the batch path gives the event-by-event actions and metrics on the {subset:,}-quote subset", same),
        (f"plan over {total:,} quotes with 500 open positions: {full_s:.1f} s (target < 20 s)", full_s < 20 or args.quick),
    ]
    for text, ok in checks:
        print(f"[{'met' if ok else 'MISSED'}] {text}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
