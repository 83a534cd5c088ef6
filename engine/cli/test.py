"""``riskrail test [PATHS...]``: rule unit tests; exit 0 when all pass, 1 when any fails, 2 on usage errors."""

from __future__ import annotations

import argparse
import os
import sys

from engine.cli._common import add_config_option, add_format_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "test",
        help="run the rule unit tests (rules/tests/*.yaml) and show expected vs actual actions",
        description="Run rule unit tests: each case proposes positions, feeds ticks through the rules of --config and "
        "compares the actions with the expected ones (docs/rule-tests.md). With no PATHS: rules/tests/ of --config. "
        "Exit 0 when every case passes, 1 when one fails or a test file is malformed, 2 on usage errors.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="test files or folders (default: rules/tests/ of --config)")
    add_config_option(p)
    add_format_option(p)
    p.add_argument("-k", dest="pattern", metavar="PATTERN", help="run only the cases whose name contains PATTERN (case-insensitive)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.config import render_json as problems_json
    from engine.config import render_text as problems_text
    from engine.config import validate_config
    from engine.ruletest import load_tests, render_json, render_text, run_cases

    paths = args.paths or [os.path.join(args.config, "rules", "tests")]
    for path in paths:
        if not os.path.exists(path):
            print(f"riskrail test: no such file or folder: {path}", file=sys.stderr)
            return 2
    config = validate_config(args.config)
    if config.ruleset is None:
        print(f"riskrail test: the rules of {args.config} are invalid:\n", file=sys.stderr)
        print(problems_text(config.problems, config.sources), file=sys.stderr)
        return 1
    loaded = load_tests(paths, config.ruleset)
    if not loaded.ok:
        if args.format == "json":
            print(problems_json(loaded.problems))
        else:
            print(problems_text(loaded.problems, loaded.sources))
            n, nfiles = len(loaded.problems), len({p.file for p in loaded.problems})
            print(f"\n{n} problem{'s' if n != 1 else ''} in {nfiles} test file{'s' if nfiles != 1 else ''}; no case was run")
        return 1
    cases = loaded.cases
    if args.pattern:
        cases = [c for c in cases if args.pattern.lower() in c.case.name.lower()]
    if not cases:
        what = f"matching -k {args.pattern!r} " if args.pattern else ""
        print(f"riskrail test: no test case {what}found in {', '.join(paths)}", file=sys.stderr)
        return 1
    results = run_cases(cases)
    print(render_json(results) if args.format == "json" else render_text(results))
    return 0 if all(r.passed for r in results) else 1
