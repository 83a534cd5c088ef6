"""Every condition field a position rule may read reaches the vectorised pre-filter and durable-rules alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.config.conditions import FIELDS
from engine.events import PositionOpened, Tick
from engine.rules.contexts import position_context
from engine.rules.evaluator import Engine

TS = 1_700_000_000_000
POSITION_FIELDS = [f for f in FIELDS if f.split(".")[0] in ("position", "strategy")]


def run(config: Path) -> tuple[Engine, list]:
    engine = Engine(load_config(str(config)), broker=PaperBroker())
    engine.process(Tick(TS, "EURUSD", 1.0849, 1.0850))
    engine.process(PositionOpened(TS + 1, "p1", "EURUSD", "trend_following", "tf-eu-1", 1, 0.05, 1.0850, None, None))
    out = engine.process(Tick(TS + 60_000, "EURUSD", 1.0861, 1.0862))
    return engine, out


@pytest.mark.parametrize("field", POSITION_FIELDS)
def test_a_rule_on_each_position_field_fires_when_it_holds(field: str, config_copy: Path) -> None:
    (config_copy / "rules" / "custom.yaml").write_text("rules: []\n")
    engine, _ = run(config_copy)
    ctx = position_context(engine, engine.book.positions["p1"], Tick(TS + 60_000, "EURUSD", 1.0861, 1.0862))
    value = ctx[field]
    spec = FIELDS[field]
    if spec.type == "string":
        holds, fails = f'{field} == "{value}"', f'{field} != "{value}"'
    elif spec.type == "bool":
        holds, fails = f"{field} == {'true' if value else 'false'}", f"{field} == {'false' if value else 'true'}"
    else:
        holds, fails = f"{field} >= {value!r}", f"{field} > {value!r}"
    for cond, expected in ((holds, [("alert", "custom:probe")]), (fails, [])):
        (config_copy / "rules" / "custom.yaml").write_text(
            f"rules:\n  - name: probe\n    when: '{cond} and position.id == \"p1\"'\n    then: [{{alert: probe}}]\n")
        _, out = run(config_copy)
        assert [(a.type, a.rule) for a in out] == expected, cond
