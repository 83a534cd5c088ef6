"""``riskrail schema --out DIR``: one JSON Schema per rule-file kind."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "schema",
        help="write JSON Schemas of the rule files for editors",
        description="Write <kind>.schema.json for strategy, limits, allocation, profit, custom, instruments and "
        "schedules files. The shipped YAML files name theirs in a '# yaml-language-server: $schema=' first line.",
    )
    p.add_argument("--out", metavar="DIR", default="schemas", help="folder to write into (default: schemas)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.config.schema import write_schemas

    for path in write_schemas(args.out):
        print(path)
    return 0
