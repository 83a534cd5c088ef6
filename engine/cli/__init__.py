"""The ``riskrail`` command: one sub-command per module of this package.

Exit codes: 0 success, 1 the input is invalid or the command failed, 2 usage error, 130 interrupted
(Ctrl-C), 141 the reader of standard output went away (``riskrail replay … | head -1``: the command
stops quietly, as a program killed by SIGPIPE does).

Start-up is kept near bare Python (``riskrail --help``): building the parser imports only this package's
sub-command modules, and each of them imports only the standard library at module level; the engine,
numpy, pydantic, Redis and FastAPI are imported by the ``run`` function of the command that needs them
(tests/cli/test_vocabulary.py checks it).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from engine import __version__
from engine.errors import ConfigError, RiskrailError

#: the status of a command whose standard output was closed by its reader (128 + SIGPIPE)
CLOSED_PIPE = 141

# Every public module of this package that defines ``register(subparsers)`` is a sub-command: ``register``
# adds its parser and sets ``func`` to a callable ``(args) -> int``. Private modules (``_name``) are helpers.


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command registered (no heavy module is imported)."""
    import importlib

    parser = argparse.ArgumentParser(
        prog="riskrail",
        description="Declarative position-management and portfolio-risk engine.",
    )
    parser.add_argument("--version", action="version", version=f"riskrail {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    # the folder is listed rather than walked with pkgutil, which imports inspect: a tenth of the start-up
    names = sorted(n[:-3] for n in os.listdir(os.path.dirname(__file__)) if n.endswith(".py") and not n.startswith("_"))
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``riskrail`` command line; return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        status = int(args.func(args))
        sys.stdout.flush()  # a reader that went away shows here, not as a traceback when the interpreter exits
        return status
    except BrokenPipeError:
        return _closed_pipe()
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


def _closed_pipe() -> int:
    """Standard output's reader went away: stop quietly. As the Python documentation recommends (signal
    module, "Note on SIGPIPE"), point stdout at /dev/null so that the interpreter's last flush of what is
    still buffered does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass  # stdout is not a file (the command was called in-process): nothing will flush it
    return CLOSED_PIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
