"""Errors of the forward-chaining layer (subclasses of the riskrail root).

    RiskrailError
    ├── RulesCompileError    a rule set that must not reach durable-rules, or that durable-rules refused
    ├── RulesRuntimeError    a rule action that raised, or an event durable-rules did not handle as designed
    └── ReloadRefused        a reload an engine cannot take (it removes a strategy that has open positions)
"""

from __future__ import annotations

from engine.errors import RiskrailError


class RulesCompileError(RiskrailError):
    """A rule set that cannot be compiled to a durable-rules ruleset, or that durable-rules refused."""


class RulesRuntimeError(RiskrailError):
    """A rule action raised while durable-rules ran it; ``rule`` names the rule."""

    def __init__(self, message: str, rule: str | None = None) -> None:
        self.rule = rule
        super().__init__(message)


class ReloadRefused(RiskrailError):
    """A reload the engine refuses before changing anything: it removes a strategy that still has open
    positions (the message names them)."""
