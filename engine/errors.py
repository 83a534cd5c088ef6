"""The exception root of riskrail.

    RiskrailError                 every error riskrail raises on purpose
    ├── ConfigError               rule files that do not load or validate (carries every Problem)
    └── OptimizationError         an optimizer problem that is infeasible or did not verify

A user never sees a traceback for bad input: the CLI and the service catch ``RiskrailError`` and
print what it says.
"""

from __future__ import annotations


class RiskrailError(Exception):
    """Base class of every error riskrail raises on purpose."""


class ConfigError(RiskrailError):
    """Rule files that failed to load or validate; ``problems`` lists every one of them."""

    def __init__(self, problems: list) -> None:  # list[engine.config.Problem]
        self.problems = list(problems)
        first = self.problems[0] if self.problems else None
        summary = f"{len(self.problems)} problem(s) in the rule files"
        if first is not None:
            summary += f"; first: {first}"
        super().__init__(summary)


class OptimizationError(RiskrailError):
    """An optimization that is infeasible, or whose result failed verification."""
