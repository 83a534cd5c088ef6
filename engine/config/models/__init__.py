"""The rule files as frozen, strict pydantic models (DESIGN section 3).

One model per file kind, each in its own module: ``Strategy`` (strategies/<name>.yaml), ``Limits`` (rules/limits.yaml),
``AllocationRules`` (rules/allocation.yaml), ``ProfitRules`` (rules/profit.yaml), ``CustomRules``
(rules/custom.yaml), ``Instruments`` (rules/instruments.yaml), ``Schedules`` (schedules.yaml) and ``AlertRouting``
(rules/alerts.yaml: where alerts are delivered; not part of the rules version).
All fractions are fractions (0.005 is 0.5 %). Models are strict: a quoted ``"0.5"`` is a string, not a
number, and every unknown key is an error. Checks that span several fields or files live in
``engine.config.lint``.
"""

from __future__ import annotations

from engine.config.models.alerts import AlertRouting, Routes, Sink
from engine.config.models.allocation import AllocationRules, Consensus, Method, Resample
from engine.config.models.base import Currency, Fraction, Model, Name, PositiveFraction
from engine.config.models.custom import (
    Action,
    AlertParams,
    CloseParams,
    ConditionField,
    CustomRule,
    CustomRules,
    LevelParams,
    ReasonParams,
)
from engine.config.models.instruments import Instrument, Instruments, StrategyMap
from engine.config.models.limits import BreachAction, DailyLoss, Limits, MaxCorrelation, MaxPositionSize, PerStrategy
from engine.config.models.profit import ProfitRules, ProfitSplit
from engine.config.models.schedules import CronValue, Job, Jobs, Schedules
from engine.config.models.strategy import Band, DynamicSLTP, ExitLevel, StopDefaults, Strategy, Trailing

__all__ = [
    "KINDS", "Action", "AlertParams", "AlertRouting", "AllocationRules", "Band", "BreachAction", "CloseParams", "ConditionField",
    "Consensus", "CronValue", "Currency", "CustomRule", "CustomRules", "DailyLoss", "DynamicSLTP", "ExitLevel",
    "Fraction", "Instrument", "Instruments", "Job", "Jobs", "LevelParams", "Limits", "MaxCorrelation",
    "MaxPositionSize", "Method", "Model", "Name", "PerStrategy", "PositiveFraction", "ProfitRules", "ProfitSplit",
    "ReasonParams", "Resample", "Routes", "Schedules", "Sink", "StopDefaults", "Strategy", "StrategyMap", "Trailing",
]

#: The model of each file kind, by the kind's name.
KINDS: dict[str, type[Model]] = {
    "strategy": Strategy,
    "limits": Limits,
    "allocation": AllocationRules,
    "profit": ProfitRules,
    "custom": CustomRules,
    "instruments": Instruments,
    "schedules": Schedules,
    "alerts": AlertRouting,
}
