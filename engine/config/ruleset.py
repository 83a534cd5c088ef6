"""The product of the loader: every rule file of a configuration, validated, and the version of its meaning."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import JsonValue

from engine.config.models import AlertRouting, AllocationRules, CustomRules, Instruments, Limits, ProfitRules, Schedules, Strategy
from engine.config.problems import Problem


@dataclass(frozen=True)
class RuleSet:
    """Every rule file of a configuration, validated, with the version of its meaning."""

    strategies: Mapping[str, Strategy]
    limits: Limits
    allocation: AllocationRules
    profit: ProfitRules
    custom: CustomRules
    instruments: Instruments
    schedules: Schedules
    version: str = ""
    files: tuple[str, ...] = ()
    # where alerts are delivered (rules/alerts.yaml): not part of ``canonical`` nor the version, since it
    # changes no decision of the engine; a reload that changes only it keeps the version
    alerts: AlertRouting = field(default_factory=AlertRouting)

    def canonical(self) -> dict[str, JsonValue]:
        """Return the meaning of the rule files as plain JSON data (no comments, no layout, defaults filled)."""
        return {
            "strategies": {name: s.model_dump(mode="json") for name, s in sorted(self.strategies.items())},
            "limits": self.limits.model_dump(mode="json"),
            "allocation": self.allocation.model_dump(mode="json"),
            "profit": self.profit.model_dump(mode="json"),
            "custom": self.custom.model_dump(mode="json"),
            "instruments": self.instruments.model_dump(mode="json"),
            "schedules": self.schedules.model_dump(mode="json"),
        }

    def max_positions(self, strategy: str) -> int:
        """Return the strategy's max open positions (its own, else the limits default)."""
        own = self.strategies[strategy].max_positions
        return own if own is not None else self.limits.per_strategy.max_positions

    def risk_allocation(self, strategy: str) -> float:
        """Return the strategy's max open risk / equity (its own, else the limits default)."""
        own = self.strategies[strategy].risk_allocation
        return own if own is not None else self.limits.per_strategy.risk_allocation


def rules_version(ruleset: RuleSet) -> str:
    """Return the version of a rule set: a hash of its canonical content.

    Comments, key order, layout and values equal to the defaults do not change it; any change of
    meaning does.
    """
    blob = json.dumps(ruleset.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "rv-" + hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class Validation:
    """The outcome of validating rule files: every problem, and the rule set when complete and valid."""

    problems: list[Problem] = field(default_factory=list)
    ruleset: RuleSet | None = None
    sources: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Tell whether the files gave no problem."""
        return not self.problems
