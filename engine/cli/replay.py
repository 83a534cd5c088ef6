"""``riskrail replay``: an event stream through the rules; actions out as JSON lines."""

from __future__ import annotations

import argparse
import json
import math
import sys

from engine.cli._common import add_config_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "replay",
        help="replay recorded events through the rules and print the actions as JSON lines",
        description="Replay a JSON-lines event stream (ticks and position_opened/position_closed events) and/or a "
        "tick file through the rules. One JSON object per action goes to stdout; malformed records are reported on "
        "stderr with their line number and skipped.",
    )
    p.add_argument("--events", metavar="FILE", help="JSON lines of tick, position_opened and position_closed events")
    p.add_argument("--ticks", metavar="FILE", action="append", default=[],
                   help="ticks: CSV with header ts,symbol,bid,ask, or a Dukascopy JSON array (repeatable)")
    p.add_argument("--symbol", help="symbol of a Dukascopy tick file (default: from its file name)")
    add_config_option(p)
    p.add_argument("--summary", metavar="FILE", help="write per-strategy and portfolio metrics as JSON here")
    p.add_argument("--equity", type=float, default=100_000.0, help="starting equity in the account currency (default 100000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.adapters.files import read_history
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
    problems: list[str] = []
    engine = Engine(rules, equity0=args.equity, broker=PaperBroker(), on_problem=problems.append)
    skipped: list[int] = []

    def skip(source: str, line: int, error: Exception) -> None:
        skipped.append(line)
        print(f"{source}:{line}: skipped: {error}", file=sys.stderr)

    try:
        out = sys.stdout
        for source, line, event in read_history([args.events] if args.events else [], args.ticks, args.symbol, skip):
            before = len(problems)
            for action in engine.process(event):
                out.write(action.to_line() + "\n")
            for message in problems[before:]:
                print(f"{source}:{line}: {message}", file=sys.stderr)
    except OSError as exc:
        print(f"riskrail replay: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    summary = engine.summary()
    rejects = len(skipped)
    summary["portfolio"]["rejects"] = rejects
    if args.summary:
        with open(args.summary, "w", encoding="utf-8") as fh:
            json.dump(finite(summary), fh, indent=2, sort_keys=True, allow_nan=False)
            fh.write("\n")
    print(f"replayed {engine.counts['events']} events ({engine.counts['ticks']} ticks, {engine.counts['proposals']} proposals, "
          f"{engine.counts['rejected']} rejected), {engine.counts['actions']} actions, {rejects} malformed records skipped; "
          f"rules version {engine.version}", file=sys.stderr)
    return 0


def finite(value: object) -> object:
    """Return ``value`` with every non-finite float replaced by None (JSON has no inf or nan)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
