"""The ports are neutral: adapters reach the engine only through them (and events, actions, errors, and the
configuration's models: the instrument every component rounds on)."""

from __future__ import annotations

import ast
from pathlib import Path

import engine.rules.evaluator as evaluator
from engine import ports
from engine.adapters.paper import PaperBroker

ADAPTERS = Path(__file__).resolve().parents[2] / "engine" / "adapters"
ALLOWED = {"engine.ports", "engine.events", "engine.actions", "engine.errors"}


def _engine_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        out |= {n for n in names if n == "engine" or n.startswith("engine.")}
    return out


def test_adapters_import_only_ports_events_actions_errors_and_config():
    for path in sorted(ADAPTERS.rglob("*.py")):
        bad = {m for m in _engine_imports(path)
               if not m.startswith(("engine.adapters", "engine.config")) and m not in ALLOWED}
        assert not bad, f"{path.relative_to(ADAPTERS.parent.parent)} imports {sorted(bad)}"


def test_evaluator_reexports_the_ports_for_old_importers():
    assert evaluator.Broker is ports.Broker and evaluator.FillReport is ports.FillReport


def test_paper_broker_satisfies_the_broker_port():
    broker: ports.Broker = PaperBroker()
    assert broker.execute.__name__ == "execute"
