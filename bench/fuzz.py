"""Fuzz every input boundary with many cases: the properties of tests/fuzz, counted instead of stopped.

Runs each property of tests/fuzz on its share of ``--cases`` generated inputs (100 000 by default),
goes on past a failing case, and prints per property the cases run, the failures, the time, and how
long one case takes against a baseline measured in the same run: the same check on ordinary input
(the demo events, the shipped rule files, a well-formed request; for the engine and service runs, a
run without hostile entries). ``max / base`` is how much the worst hostile case costs over ordinary
input: it stays small when hostile input is bounded. Then the first failing inputs of each property.

A case is one input: bytes or text to decode, an event, a rule-file text, an HTTP request, or one
hostile event or entry of an engine or service run (those go in batches, one run per batch; their
failures count failed runs). Not part of the default test run (``make fuzz``).

    python bench/fuzz.py [--cases 100000] [--only decode,api] [--seed N]
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from contextlib import ExitStack  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzz import strategies as fs  # noqa: E402
from tests.fuzz import test_api_fuzz as api_fuzz  # noqa: E402
from tests.fuzz import test_events_fuzz as events_fuzz  # noqa: E402
from tests.fuzz import test_rules_fuzz as rules_fuzz  # noqa: E402

ENGINE_BATCH = 25  # accepted extreme events per engine run
SERVICE_BATCH = 100  # bad entries per service run


@dataclass
class Property:
    """One property: its inputs, its check, the same check on ordinary input, its share of the cases."""

    name: str
    group: str
    share: float
    inputs: Callable[[], st.SearchStrategy]
    check: Callable[[Any], None]
    baseline: Callable[[int], None]  # the i-th ordinary case
    batch: int = 1  # cases per example


@dataclass
class Result:
    cases: int = 0
    failures: int = 0
    seconds: float = 0.0
    times: list[float] = field(default_factory=list)
    base: float = 0.0
    first: list[tuple[str, str]] = field(default_factory=list)
    slowest: str = ""


class Resources:
    """What the service, engine and API properties share, started on first use and stopped at the end."""

    def __init__(self, stack: ExitStack) -> None:
        self.stack = stack
        self._poison = self._api = self._rules = None
        self.demo = events_fuzz.demo_events()
        self.counter = itertools.count()

    @property
    def poison(self) -> events_fuzz.PoisonRun:
        if self._poison is None:
            self._poison = self.stack.enter_context(events_fuzz.poison_run())
        return self._poison

    @property
    def api(self) -> api_fuzz.ApiRun:
        if self._api is None:
            self._api = self.stack.enter_context(api_fuzz.api_run())
        return self._api

    @property
    def rules(self) -> Any:
        if self._rules is None:
            from engine.config import load_config

            self._rules = load_config(str(fs.ROOT / "examples" / "scalping"))
        return self._rules

    @property
    def plan_body(self) -> bytes:
        """A plan that validates (the scalping example's own strategy), for the quiet account: 409, no events."""
        name = "strategies/scalp_trend.yaml"
        return json.dumps({"files": {name: (fs.ROOT / "examples" / "scalping" / name).read_text(encoding="utf-8")}}).encode()

    def demo_event(self, i: int) -> dict:
        return self.demo[i % len(self.demo)]

    def proposal(self, i: int) -> fs.Request:
        body = {"position_id": f"bench-{next(self.counter)}", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                "strategy_name": "bench", "action": "BUY", "volume": 0.01, "entry_price": 1.1457}
        return fs.Request("/api/positions", {}, json.dumps(body).encode())


def properties(res: Resources) -> list[Property]:
    seeds = fs.SEEDS
    good = res.demo[: events_fuzz.GOOD]
    return [
        Property("decode: any bytes", "decode", 28, fs.raw_events, events_fuzz.check_decode,
                 lambda i: events_fuzz.check_decode(json.dumps(res.demo_event(i)).encode())),
        Property("decode: memory", "decode", 3, fs.raw_events, events_fuzz.check_bounded,
                 lambda i: events_fuzz.check_bounded(json.dumps(res.demo_event(i)).encode())),
        Property("decode: event objects", "decode", 25, lambda: fs.events, events_fuzz.check_event_object,
                 lambda i: events_fuzz.check_event_object(res.demo_event(i))),
        Property("decode: well-formed", "decode", 8, fs.valid_events, events_fuzz.check_well_formed,
                 lambda i: events_fuzz.check_well_formed(res.demo_event(i))),
        Property("decode: not bytes", "decode", 1, lambda: st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.none())),
                 _refused_type, lambda i: events_fuzz.check_decode(json.dumps(res.demo_event(i)))),
        Property("engine: accepted extremes", "engine", 3,
                 lambda: st.tuples(st.integers(0, events_fuzz.GOOD), events_fuzz.engine_events().filter(events_fuzz.accepted)),
                 lambda batch: events_fuzz.check_engine(res.rules, good, batch), lambda i: events_fuzz.check_engine(res.rules, good, []),
                 ENGINE_BATCH),
        Property("service: bad entries", "service", 5,
                 lambda: st.tuples(st.integers(0, events_fuzz.GOOD), events_fuzz.stream_entries),
                 lambda batch: res.poison.check(batch), lambda i: res.poison.check([]), SERVICE_BATCH),
        Property("service: accepted extremes", "service", 2,
                 lambda: st.tuples(st.integers(0, events_fuzz.GOOD), events_fuzz.accepted_entries),
                 lambda batch: res.poison.check(batch), lambda i: res.poison.check([]), ENGINE_BATCH),
        Property("rules: load_text", "rules", 6, lambda: fs.yaml_texts, rules_fuzz.check_load_text,
                 lambda i: rules_fuzz.check_load_text(seeds[i % len(seeds)].text)),
        Property("rules: load_text CPU time", "rules", 2, lambda: fs.yaml_texts, rules_fuzz.check_load_time,
                 lambda i: rules_fuzz.check_load_time(seeds[i % len(seeds)].text)),
        Property("rules: validate_text", "rules", 6, lambda: fs.rule_files, lambda case: rules_fuzz.check_validate_text(*case),
                 lambda i: rules_fuzz.check_validate_text(*_seed_case(seeds[i % len(seeds)]))),
        Property("api: POST /api/positions", "api", 4, fs.position_requests, lambda r: res.api.check(r),
                 lambda i: res.api.check(res.proposal(i))),
        Property("api: positions, unknown account", "api", 1, lambda: fs.position_requests(fs.unknown_accounts),
                 lambda r: res.api.check(r), lambda i: res.api.check(res.proposal(i))),
        Property("api: POST /api/rules/validate", "api", 3, fs.validate_requests, lambda r: res.api.check(r),
                 lambda i: res.api.check(fs.Request("/api/rules/validate", {"kind": seeds[i % len(seeds)].kind},
                                                    seeds[i % len(seeds)].text.encode(), "text/plain"))),
        Property("api: POST /api/rules/plan", "api", 3, fs.plan_requests, lambda r: res.api.check(r),
                 lambda i: res.api.check(fs.Request("/api/rules/plan", {"account": "quiet"}, res.plan_body))),
    ]


def _seed_case(seed_file: Any) -> tuple[str, str, str]:
    """A shipped rule file as a ``check_validate_text`` case: (kind, name, text)."""
    return seed_file.kind, seed_file.name, seed_file.text


def _refused_type(value: Any) -> None:
    from engine.events import EventError, decode

    try:
        decode(value)
    except EventError:
        return
    raise AssertionError(f"decode({value!r}) did not raise EventError")


def run(prop: Property, cases: int, seed_value: int | None) -> Result:
    """Run ``prop`` on ``cases`` generated cases, counting failures. A batched property draws one case
    per example and checks them ``batch`` at a time (a list of a hundred drawn at once would overrun
    hypothesis's buffer and be thrown away again and again)."""
    res = Result()
    pending: list[Any] = []

    def check(value: Any, size: int) -> None:
        start = time.perf_counter()
        try:
            prop.check(value)
        except Exception as exc:  # count it and go on: the table says how many, the report shows a few
            res.failures += 1
            if len(res.first) < 3:
                res.first.append((_short(repr(value)), _short(f"{type(exc).__name__}: {exc}")))
        finally:
            took = time.perf_counter() - start
            if not res.times or took > max(res.times):
                res.slowest = _short(repr(value), 200)
            res.times.append(took)
            res.cases += size

    def once(value: Any) -> None:
        if prop.batch == 1:
            check(value, 1)
            return
        pending.append(value)
        if len(pending) == prop.batch:
            check(list(pending), len(pending))
            pending.clear()

    test = settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
                    suppress_health_check=list(HealthCheck))(given(prop.inputs())(once))
    if seed_value is not None:
        test = seed(seed_value)(test)
    base = []
    try:
        prop.baseline(0)  # warm: the first call pays for imports and compilation
        for i in range(3 if prop.batch > 1 else 20):
            start = time.perf_counter()
            prop.baseline(i)
            base.append(time.perf_counter() - start)
    except Exception as exc:  # ordinary input fails: say so, and fuzz all the same
        res.first.append(("(the baseline's ordinary input)", _short(f"{type(exc).__name__}: {exc}")))
    res.base = statistics.median(base) if base else 0.0
    start = time.perf_counter()
    test()
    if pending:
        check(list(pending), len(pending))
    res.seconds = time.perf_counter() - start
    return res


def _short(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=100_000, help="total cases, split across the properties by their shares")
    ap.add_argument("--only", default="", help="comma-separated groups or property names to run (decode, engine, service, rules, api)")
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed, to repeat a run")
    args = ap.parse_args()
    logging.disable(logging.CRITICAL)  # dead-letters and refusals are logged by the thousand: the table says it
    warnings.filterwarnings("ignore")
    with ExitStack() as stack:
        res = Resources(stack)
        props = properties(res)
        if args.only:
            wanted = {w.strip() for w in args.only.split(",")}
            props = [p for p in props if p.group in wanted or p.name in wanted]
        total = sum(p.share for p in props)
        results: list[tuple[Property, Result]] = []
        started = time.perf_counter()
        threads = os.environ["OPENBLAS_NUM_THREADS"]
        print(f"fuzz: {args.cases} cases across {len(props)} properties (OPENBLAS_NUM_THREADS={threads})", flush=True)
        for p in props:
            n = max(p.batch, round(args.cases * p.share / total))
            r = run(p, n, args.seed)
            results.append((p, r))
            print(f"  {p.name:<34} {r.cases:>7} cases {r.failures:>5} failures {r.seconds:8.1f} s", flush=True)
        elapsed = time.perf_counter() - started
    print()
    print(table(results))
    print(f"\n{sum(r.cases for _, r in results)} cases, {sum(r.failures for _, r in results)} failures, {elapsed:.0f} s "
          "(per case: the check alone, without generating the input; engine and service: per run)")
    print("\nslowest case of each property:")
    for p, r in results:
        if p.batch == 1 and r.times:
            print(f"  {p.name}: {max(r.times) * 1000:.1f} ms: {r.slowest}")
    for p, r in results:
        for value, error in r.first:
            print(f"\n{p.name}: {error}\n  input: {value}")
    return 1 if any(r.failures for _, r in results) else 0


def table(results: list[tuple[Property, Result]]) -> str:
    head = ("property", "cases", "failures", "time s", "mean ms", "max ms", "base ms", "max/base")
    rows = [head]
    for p, r in results:
        mean = statistics.fmean(r.times) * 1000 if r.times else 0.0
        worst = max(r.times) * 1000 if r.times else 0.0
        base = r.base * 1000
        rows.append((p.name + (f" (runs of {p.batch})" if p.batch > 1 else ""), str(r.cases), str(r.failures), f"{r.seconds:.1f}",
                     f"{mean:.2f}", f"{worst:.1f}", f"{base:.2f}", f"{worst / base:.0f}" if base else "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
