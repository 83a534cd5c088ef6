#!/usr/bin/env bash
# Run the three static checks as configured in pyproject.toml ([tool.ruff], [tool.mypy], [tool.vulture]):
# ruff over the repository, mypy over engine (strict on the packages listed there), vulture over engine
# with vulture_allowlist.py. Every check runs even when an earlier one fails; exit non-zero on any finding.
set -u
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"

status=0
run() {
    echo "== $*"
    "$@" || status=1
}

run "$BIN/ruff" check .
run "$BIN/mypy"
run "$BIN/vulture"

if [ "$status" -ne 0 ]; then
    echo "lint: findings above" >&2
fi
exit "$status"
