"""``riskrail plan --base REF``: what a rule change would have done over recorded history.

Exit 0 when both rule sets take exactly the same actions and a reload to the proposed rules would leave
the positions open at the end of the history as they are; 2 when the actions differ, the reload changes
an open position or is refused; 1 on error (invalid rules are reported like ``riskrail validate``; with
``--strict-order``, a history file whose lines go back in time). History is read as ``riskrail
replay`` reads it: malformed lines reported and skipped, each file put in time order.
"""

from __future__ import annotations

import argparse
import sys

from engine.cli._common import add_config_option, add_format_option
from engine.cli.replay import add_order_option, late_reporter


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="dry-run a rule change against recorded history and report what changes",
        description="Replay recorded history through the base rules (--base: a git revision or a folder of rule "
        "files) and the rules of --config, and report the parameters that change and their effects: actions per "
        "position and per rule, realized PnL, drawdown, limit breaches and rejected proposals; and, for each "
        "position open at the end of the history, what a reload to the proposed rules changes for it. "
        "Exit 0 when the effects are identical, 2 when they differ (or the reload changes an open position or is "
        "refused), 1 on error.",
    )
    p.add_argument("--base", required=True, metavar="REF", help="git revision (e.g. HEAD, main~1) or folder holding the base rule files")
    p.add_argument("--history", metavar="FILE", action="append", default=[],
                   help="recorded events, JSON lines as `riskrail replay` reads them (repeatable)")
    p.add_argument("--ticks", metavar="FILE", action="append", default=[],
                   help="ticks: CSV ts,symbol,bid,ask or a Dukascopy JSON array (repeatable)")
    p.add_argument("--symbol", help="symbol of a Dukascopy tick file (default: from its file name)")
    add_config_option(p)
    p.add_argument("--equity", type=float, default=100_000.0, help="starting equity (default 100000)")
    add_order_option(p)
    add_format_option(p)
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw the most changed positions (price, both stop paths, exits) and both equity curves")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import tempfile

    from engine.adapters.files import read_history
    from engine.config import render_text as render_problems
    from engine.config import validate_config
    from engine.plan.base import materialize
    from engine.plan.report import render_text, to_json
    from engine.plan.run import make_plan, progress_bar
    from engine.rules.chaining import PortfolioRules
    from engine.rules.timers import time_driven, with_clock

    if not args.history and not args.ticks:
        print("riskrail plan: give the history: --history FILE and/or --ticks FILE", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="riskrail-plan-") as tmp:
        base_dir = materialize(args.base, args.config, tmp)
        results = {"base": validate_config(base_dir), "proposed": validate_config(args.config)}
        bad = False
        for name, result in results.items():
            if result.ruleset is None:
                bad = True
                print(f"riskrail plan: the {name} rules are invalid:\n", file=sys.stderr)
                print(render_problems(result.problems, result.sources), file=sys.stderr)
        if bad:
            return 1
        portfolio = PortfolioRules()
        # the proposed rules are untrusted: compile them in a child process first (DESIGN 9)
        for result in results.values():
            assert result.ruleset is not None  # invalid rules returned above
            portfolio.load(result.ruleset, check=True)
    def skip(source: str, line: int, error: Exception) -> None:
        print(f"{source}:{line}: skipped: {error}", file=sys.stderr)

    base, proposed = results["base"].ruleset, results["proposed"].ruleset
    assert base is not None and proposed is not None  # both validated above
    try:
        history = read_history(args.history, args.ticks, args.symbol, skip, late_reporter(), strict=args.strict_order)
        if time_driven(base) or time_driven(proposed):  # as riskrail replay: time passes in the gaps, for both
            history = with_clock(history, base.schedules.risk_update_frequency)
        events = [event for _, _, event in history]
    except OSError as exc:
        print(f"riskrail plan: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    plan = make_plan(base, proposed, events, args.equity, portfolio,
                     progress_bar(len(events)))
    if args.format == "json":
        print(json.dumps(to_json(plan), indent=2, allow_nan=False))
    else:
        print(render_text(plan))
    if args.plot:
        from engine.plan.plot import draw

        draw(plan, events, args.plot)
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 2 if plan.differs else 0
