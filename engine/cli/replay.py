"""``riskrail replay``: an event stream through the rules; actions out as JSON lines.

Time is epoch milliseconds UTC everywhere. Each input file is put in time order first (a line that goes
back in time is reported; ``--strict-order`` refuses the file instead), then the files are merged by
time. Malformed records and ticks of symbols missing from rules/instruments.yaml are reported on stderr
with their line number and skipped: the actions of the other lines are exactly those of a replay without
them. ``--reload TS=DIR`` swaps the rules of DIR into the running engine before the first event at or
after TS, through ``Engine.reload`` as the service does (open positions keep their managed state).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.cli._common import add_config_option

if TYPE_CHECKING:
    from engine.config.load import RuleSet
    from engine.rules.evaluator import Engine

_INT = re.compile(r"-?[0-9]+")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="replay recorded events through the rules and print the actions as JSON lines",
        description="Replay a JSON-lines event stream (ticks and position_opened/position_closed events) and/or a "
        "tick file through the rules. One JSON object per action goes to stdout; malformed records and ticks of "
        "unknown symbols are reported on stderr with their line number and skipped. Times are epoch milliseconds "
        "UTC (or ISO-8601); a line that goes back in time is reported and replayed in time order.",
    )
    p.add_argument("--events", metavar="FILE", help="JSON lines of tick, position_opened and position_closed events")
    p.add_argument("--ticks", metavar="FILE", action="append", default=[],
                   help="ticks: CSV with header ts,symbol,bid,ask, or a Dukascopy JSON array (repeatable)")
    p.add_argument("--symbol", help="symbol of a Dukascopy tick file (default: from its file name)")
    add_config_option(p)
    p.add_argument("--summary", metavar="FILE", help="write per-strategy and portfolio metrics as JSON here")
    p.add_argument("--equity", type=float, default=100_000.0, help="starting equity in the account currency (default 100000)")
    add_order_option(p)
    p.add_argument("--reload", metavar="TS=DIR", type=reload_spec, action="append", default=[],
                   help="swap in the rules of folder DIR before the first event at or after TS (epoch ms or ISO-8601), "
                   "as the service's hot reload does; repeatable. An invalid DIR is reported and nothing is replayed")
    p.add_argument("--no-clock", action="store_true",
                   help="do not fill the gaps of the history with clock events (by default, when a rule depends on time "
                   "alone, a gap longer than risk_update_frequency of schedules.yaml gets a clock event on that grid, as "
                   "the service sends an idle account)")
    p.set_defaults(func=run)


def add_order_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--strict-order``: refuse an input file whose lines go back in time instead of sorting it."""
    parser.add_argument("--strict-order", action="store_true",
                        help="refuse a file whose lines go back in time (default: report each such line and "
                        "process the file in time order)")


def reload_spec(value: str) -> tuple[int, str]:
    """argparse type of ``--reload TS=DIR``: ``(epoch ms, folder)``; TS is epoch milliseconds or ISO-8601."""
    from engine.events import EventError, parse_ts

    text, sep, folder = value.partition("=")
    text = text.strip()
    if not sep or not text or not folder:
        raise argparse.ArgumentTypeError(f"expected TS=DIR, found {value!r}")
    try:
        ts = parse_ts(int(text) if _INT.fullmatch(text) else text)
    except EventError as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{value!r}: no such folder: {folder}")
    return ts, folder


def late_reporter() -> Callable[[str, int, int, int, int], None]:
    """``on_late`` for ``read_history``: one stderr line per line that goes back in time."""
    from engine.adapters.files import late_note

    def late(source: str, line: int, ts: int, latest: int, latest_line: int) -> None:
        print(f"{source}:{line}: {late_note(ts, latest, latest_line)}; processed in time order "
              "(--strict-order refuses)", file=sys.stderr)

    return late


def load_reloads(specs: list[tuple[int, str]]) -> list[tuple[int, str, RuleSet]] | None:
    """Validate and test-compile the rules of each ``--reload`` as the service's reload does; ``None``
    (every problem printed with its file:line:column) when any is invalid."""
    from engine.adapters.files import iso
    from engine.service.reload import load_checked

    out, bad = [], False
    for ts, folder in sorted(specs, key=lambda spec: spec[0]):
        ruleset, errors, _ = load_checked(folder)
        if ruleset is None:
            bad = True
            print(f"riskrail replay: --reload {iso(ts)}={folder}: the rules are invalid; nothing was replayed", file=sys.stderr)
            for error in errors:
                print(f"  {error['text']}", file=sys.stderr)
        else:
            out.append((ts, folder, ruleset))
    return None if bad else out


def run(args: argparse.Namespace) -> int:
    from engine.adapters.paper import PaperBroker
    from engine.config import load_config
    from engine.rules.evaluator import Engine

    if not args.events and not args.ticks:
        print("riskrail replay: give --events FILE and/or --ticks FILE", file=sys.stderr)
        return 2
    if args.equity <= 0:
        print("riskrail replay: --equity must be above 0", file=sys.stderr)
        return 2
    rules = load_config(args.config)
    reloads = load_reloads(args.reload)
    if reloads is None:
        return 1
    problems: list[str] = []
    engine = Engine(rules, equity0=args.equity, broker=PaperBroker(), on_problem=problems.append)
    try:
        skipped, unknown, clocks = _replay(args, engine, problems, reloads)
    except BrokenPipeError:
        raise  # the reader of the actions went away (`| head`): the entry point stops quietly
    except OSError as exc:
        print(f"riskrail replay: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    summary = engine.summary()
    summary["portfolio"]["rejects"] = skipped
    if args.summary:
        import json

        with open(args.summary, "w", encoding="utf-8") as fh:
            json.dump(finite(summary), fh, indent=2, sort_keys=True, allow_nan=False)
            fh.write("\n")
    unknown_note = f", {unknown} tick{'s' if unknown != 1 else ''} of unknown symbols skipped" if unknown else ""
    clock_note = f" and {clocks} clock events in its gaps" if clocks else ""
    print(f"replayed {engine.counts['events'] - clocks} events ({engine.counts['ticks']} ticks, {engine.counts['proposals']} proposals, "
          f"{engine.counts['rejected']} rejected){clock_note}, {engine.counts['actions']} actions, {skipped} malformed records skipped"
          f"{unknown_note}; rules version {engine.version}", file=sys.stderr)
    return 0


def _replay(args: argparse.Namespace, engine: Engine, problems: list[str],
            reloads: list[tuple[int, str, RuleSet]]) -> tuple[int, int, int]:
    """Run every event through ``engine``, writing actions to stdout; return (malformed, unknown-symbol ticks,
    clock events added in the gaps)."""
    from engine.adapters.files import iso, read_history
    from engine.events import Tick
    from engine.rules.timers import time_driven, with_clock

    skipped, unknown, clocks = 0, 0, 0

    def skip(source: str, line: int, error: Exception) -> None:
        nonlocal skipped
        skipped += 1
        print(f"{source}:{line}: skipped: {error}", file=sys.stderr)

    out = sys.stdout
    history = read_history([args.events] if args.events else [], args.ticks, args.symbol, skip, late_reporter(),
                           strict=args.strict_order)
    if not args.no_clock and time_driven(engine.rules):
        history = with_clock(history, engine.rules.schedules.risk_update_frequency)
    for source, line, event in history:
        while reloads and event.ts >= reloads[0][0]:
            _, folder, rules = reloads.pop(0)
            where = "the clock event" if source == "clock" else f"{source}:{line}"
            swap(engine, rules, f"{where} (ts {iso(event.ts)})", folder)
        if isinstance(event, Tick) and not engine.converter.known(event.symbol):
            unknown += 1  # not given to the engine: the event numbers, and so the action ids, stay those of a clean file
            print(f"{source}:{line}: skipped: tick for unknown symbol {event.symbol!r}: add it to rules/instruments.yaml",
                  file=sys.stderr)
            continue
        before = len(problems)
        clocks += source == "clock"
        for action in engine.process(event):
            out.write(action.to_line() + "\n")
        for message in problems[before:]:
            print(f"{source}:{line}: {message}", file=sys.stderr)
    for ts, folder, _ in reloads:
        print(f"riskrail replay: --reload {iso(ts)}={folder} not applied: no event at or after it", file=sys.stderr)
    return skipped, unknown, clocks


def swap(engine: Engine, rules: RuleSet, where: str, folder: str) -> None:
    """Swap ``rules`` into ``engine`` as a service worker does (``Engine.reload``; the same version is no swap)."""
    old = engine.version
    if rules.version != old:
        engine.reload(rules)
    print(f"riskrail replay: reload before {where}: rules {old} -> {engine.version} from {folder}", file=sys.stderr)


def finite(value: object) -> object:
    """Return ``value`` with every non-finite float replaced by None (JSON has no inf or nan) and every
    finite one to 12 significant digits: a summary of sums of money shows 37.4, not 37.39999999999944."""
    import math

    if isinstance(value, float):
        return float(f"{value:.12g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
