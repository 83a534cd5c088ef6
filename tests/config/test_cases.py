"""Invalid rule files paired with the errors they must produce (tests/data/rules/invalid)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import validate_file
from engine.config.problems import dotted
from tests.conftest import DATA

INVALID = sorted((DATA / "rules" / "invalid").glob("*.yaml"))
VALID = sorted((DATA / "rules" / "valid").glob("*.yaml"))


def expected_errors(case: Path) -> tuple[str, list[tuple[int, int, str, str]]]:
    """Read ``<case>.expected``: a ``# schema: accept|reject|skip`` line, then ``L:C PATH | message``."""
    lines = case.with_suffix(".expected").read_text().splitlines()
    schema = lines[0].removeprefix("# schema:").strip()
    errors = []
    for line in lines[1:]:
        where, message = line.split(" | ", 1)
        pos, _, path = where.partition(" ")
        ln, col = pos.split(":")
        errors.append((int(ln), int(col), path.strip(), message))
    return schema, errors


@pytest.mark.parametrize("case", INVALID, ids=lambda p: p.stem)
def test_invalid_file_reports_each_expected_error_at_its_position(case: Path) -> None:
    _, expected = expected_errors(case)
    result = validate_file(str(case))
    got = [(p.line, p.column, dotted(p.path), p.message) for p in result.problems]
    for line, column, path, message in expected:
        matches = [g for g in got if g[:3] == (line, column, path) and g[3].startswith(message)]
        assert matches, f"missing {line}:{column} {path} | {message}\ngot:\n" + "\n".join(map(str, got))
    assert len(got) == len(expected), "unexpected extra problems:\n" + "\n".join(map(str, got))
    assert all(p.file.endswith(case.name) for p in result.problems)


@pytest.mark.parametrize("case", VALID, ids=lambda p: p.stem)
def test_valid_file_has_no_problems(case: Path) -> None:
    result = validate_file(str(case))
    assert result.problems == []


def test_every_invalid_case_has_its_expectations() -> None:
    assert len(INVALID) >= 25
    for case in INVALID:
        assert case.with_suffix(".expected").is_file(), case.name
