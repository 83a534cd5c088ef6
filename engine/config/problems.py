"""What a rule file got wrong, where, and how a person or a CI job reads it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypedDict

#: A key path into a rule file: mapping keys and list indices, outermost first.
Path = tuple[str | int, ...]


class ProblemJSON(TypedDict):
    """A problem as one object of ``riskrail validate --format json``."""

    file: str
    line: int
    column: int
    path: str
    message: str


def dotted(path: Sequence[str | int]) -> str:
    """Return a key path as a dotted string, list indices as numbers: ``exit_levels.2.profit_target``."""
    return ".".join(str(p) for p in path)


@dataclass(frozen=True, order=True)
class Problem:
    """One error in one rule file: where it is (1-based line and column), the key path, and what is wrong."""

    file: str
    line: int
    column: int
    path: Path
    message: str

    def __str__(self) -> str:
        """Return the problem on one line: ``file:line:column: path: message``."""
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {dotted(self.path) + ': ' if self.path else ''}{self.message}"

    def to_json(self) -> ProblemJSON:
        """Return the problem as the JSON object of ``riskrail validate --format json``."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": dotted(self.path),
            "message": self.message,
        }


def sort_problems(problems: Iterable[Problem]) -> list[Problem]:
    """Return the problems without repeats, by file, then position."""
    return sorted(set(problems), key=lambda p: (p.file, p.line, p.column, dotted(p.path), p.message))


def render_json(problems: Iterable[Problem]) -> str:
    """Render problems as a JSON array (the ``--format json`` output)."""
    return json.dumps([p.to_json() for p in sort_problems(problems)], indent=2)


def render_text(problems: Iterable[Problem], sources: dict[str, str] | None = None) -> str:
    """Render problems grouped by file, each with the offending line and a caret under its column."""
    sources = sources or {}
    out: list[str] = []
    current = None
    for p in sort_problems(problems):
        if p.file != current:
            if current is not None:
                out.append("")
            current = p.file
            out.append(p.file)
        label = f"{dotted(p.path)}: " if p.path else ""
        out.append(f"  {p.line}:{p.column}  {label}{p.message}")
        lines = sources.get(p.file, "").splitlines()
        if 0 < p.line <= len(lines):
            text = lines[p.line - 1].rstrip()
            gutter = f"{p.line:>6} | "
            out.append(f"{gutter}{text}")
            out.append(" " * (len(gutter) - 2) + "| " + " " * max(p.column - 1, 0) + "^")
    return "\n".join(out)
