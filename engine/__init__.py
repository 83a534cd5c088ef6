"""riskrail: declarative position-management and portfolio-risk engine.

The public API — what users call; everything else may change between releases:

- rule files: ``load_config(dir)`` → ``RuleSet`` (raises ``ConfigError`` with every problem),
  ``validate_config(dir)`` → ``Validation``, ``load_texts(files)`` for rule texts held in memory,
  ``Problem`` (file:line:column);
- the engine: ``Engine(rules, equity0=…, broker=…)``, whose ``process(event)`` returns the ``Action``
  list the rules took on one event; ``Coordinator``, an asyncio facade over one engine on its own
  thread with the HTTP API's shapes;
- input events: ``Tick``, ``PositionOpened``, ``PositionClosed``, ``Fill``, ``Clock``; ``decode(raw)``
  (the validation boundary for raw JSON) and ``parse_event(obj)``;
- the broker port: ``Broker`` (``execute(action, quotes) -> list[FillReport]``) and ``FillReport``;
- errors: ``RiskrailError`` and its subclasses users catch (``ConfigError``, ``EventError``,
  ``OptimizationError``); the whole tree is drawn in ``engine.errors``.

Names are imported on first use, so ``import engine`` stays cheap (the CLI starts fast).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "RuleSet": "engine.config.load",
    "Validation": "engine.config.load",
    "load_config": "engine.config.load",
    "load_texts": "engine.config.load",
    "validate_config": "engine.config.load",
    "Problem": "engine.config.problems",
    "Engine": "engine.rules.evaluator",
    "Coordinator": "engine.service.coordinator",
    "Action": "engine.actions",
    "Event": "engine.events",
    "Tick": "engine.events",
    "PositionOpened": "engine.events",
    "PositionClosed": "engine.events",
    "Fill": "engine.events",
    "Clock": "engine.events",
    "decode": "engine.events",
    "parse_event": "engine.events",
    "Broker": "engine.ports",
    "FillReport": "engine.ports",
    "RiskrailError": "engine.errors",
    "ConfigError": "engine.errors",
    "OptimizationError": "engine.errors",
    "EventError": "engine.events",
}

__all__ = [  # spelled out for readers and linters; tests/test_public_api.py resolves every name
    "Action",
    "Broker",
    "Clock",
    "ConfigError",
    "Coordinator",
    "Engine",
    "Event",
    "EventError",
    "Fill",
    "FillReport",
    "OptimizationError",
    "PositionClosed",
    "PositionOpened",
    "Problem",
    "RiskrailError",
    "RuleSet",
    "Tick",
    "Validation",
    "__version__",
    "decode",
    "load_config",
    "load_texts",
    "parse_event",
    "validate_config",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and editors: the same names, imported eagerly
    from engine.actions import Action
    from engine.config.load import RuleSet, Validation, load_config, load_texts, validate_config
    from engine.config.problems import Problem
    from engine.errors import ConfigError, OptimizationError, RiskrailError
    from engine.events import Clock, Event, EventError, Fill, PositionClosed, PositionOpened, Tick, decode, parse_event
    from engine.ports import Broker, FillReport
    from engine.rules.evaluator import Engine
    from engine.service.coordinator import Coordinator
