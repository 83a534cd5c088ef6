"""``riskrail validate [PATHS...]``: every problem of the rule files, located; exit 1 if any."""

from __future__ import annotations

import argparse
import os
import sys

from engine.cli._common import add_config_option, add_format_option


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="check rule files and report every error with file:line:column",
        description="Validate rule files. With no PATHS: strategies/, rules/ and schedules.yaml of --config. "
        "Exit 0 when valid (the rules version is printed), 1 when not, 2 on usage errors.",
    )
    p.add_argument("paths", nargs="*", metavar="PATH", help="rule files or folders (default: the whole configuration)")
    add_config_option(p)
    add_format_option(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.config import render_json, render_text, validate_paths
    from engine.config.custom_lint import halts_nothing_lifts
    from engine.config.problems import dotted

    for path in args.paths:
        if not os.path.exists(path):
            print(f"riskrail validate: no such file or folder: {path}", file=sys.stderr)
            return 2
    result = validate_paths(args.paths, args.config)
    if result.ruleset is not None:  # warnings: valid rules that may not do what the desk expects
        for path, message in halts_nothing_lifts(result.ruleset.custom):
            print(f"warning: rules/custom.yaml: {dotted(path)}: {message}", file=sys.stderr)
    if args.format == "json":
        print(render_json(result.problems))
        if result.ruleset is not None:
            print(f"rules version {result.ruleset.version}", file=sys.stderr)
        return 0 if result.ok else 1
    if result.ok:
        files = len(result.files)
        version = f", rules version {result.ruleset.version}" if result.ruleset is not None else ""
        print(f"ok: {files} file{'s' if files != 1 else ''} valid{version}")
        return 0
    print(render_text(result.problems, result.sources))
    nfiles = len({p.file for p in result.problems})
    n = len(result.problems)
    print(f"\n{n} problem{'s' if n != 1 else ''} in {nfiles} file{'s' if nfiles != 1 else ''}")
    return 1
