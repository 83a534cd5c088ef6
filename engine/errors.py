"""The exception root of riskrail, and the whole tree drawn in one place.

    RiskrailError              every error riskrail raises on purpose          (engine.errors)
    ├── ConfigError            rule files that do not load or validate,        (engine.errors)
    │                          carrying every Problem (file:line:column)
    ├── OptimizationError      an optimization that is infeasible or did       (engine.errors)
    │                          not verify
    ├── EventError             an input event that is malformed                (engine.events)
    ├── OutOfOrder             an event file going back in time, refused       (engine.adapters.files)
    │                          (--strict-order)
    ├── UnknownSymbol          a symbol rules/instruments.yaml does not know   (engine.book.valuation)
    ├── RulesCompileError      a rule set durable-rules must not see or        (engine.rules._errors)
    │                          refused
    ├── RulesRuntimeError      a rule action that raised                       (engine.rules._errors)
    ├── ReloadRefused          a reload removing a strategy with open          (engine.rules._errors)
    │                          positions
    ├── StateError             a snapshot that is not an engine-state record   (engine.rules.state)
    │                          this release reads, or does not fit the rules
    ├── BaseError              the base of a plan cannot be found or read      (engine.plan.base)
    ├── InputError             a file given to `riskrail optimize` is bad      (engine.cli.optimize)
    ├── StoreError             Redis cannot be reached or answered oddly       (engine.service.store)
    ├── LeaseLost              another process owns the account now            (engine.service.commit)
    ├── PlanRequestError       a plan request the API answers with a 4xx       (engine.service.plan)
    ├── Problem                an error answer of the HTTP API, in problem-    (engine.service.problems)
    │                          details form (RFC 9457)
    ├── TokenError             an API token name or role that cannot be used   (engine.service.tokens)
    └── MT5Error               the MetaTrader 5 terminal refused or failed     (engine.adapters.mt5._module)
        └── MT5Unavailable     the MetaTrader5 package is not installed here   (engine.adapters.mt5._module)

Each class lives beside the code that raises it; this drawing is checked against the package by a
test (tests/test_errors.py). A user never sees a traceback for bad input: the CLI and the service
catch ``RiskrailError`` and print what it says.
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
