"""The ``riskrail`` command: one sub-command per module of this package.

Exit codes: 0 success, 1 the input is invalid or the command failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from engine.errors import ConfigError, RiskrailError

# Every module of this package that defines ``register(subparsers)`` is a sub-command: ``register``
# adds its parser and sets ``func`` to a callable ``(args) -> int``.


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command registered."""
    import importlib
    import pkgutil

    parser = argparse.ArgumentParser(
        prog="riskrail",
        description="Declarative position-management and portfolio-risk engine.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``riskrail`` command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        from engine.config.problems import render_text

        print(f"riskrail {args.command}: {len(exc.problems)} problem(s) in the rule files:\n", file=sys.stderr)
        print(render_text(exc.problems), file=sys.stderr)
        return 1
    except RiskrailError as exc:
        print(f"riskrail {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: say so plainly; RISKRAIL_DEBUG=1 shows the traceback
        if os.environ.get("RISKRAIL_DEBUG"):
            raise
        print(f"riskrail {args.command}: internal error: {type(exc).__name__}: {exc} "
              "(set RISKRAIL_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
