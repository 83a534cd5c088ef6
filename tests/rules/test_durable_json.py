"""durable-rules takes tiny and huge floats once our serialiser is installed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from durable import engine

from engine.rules._durable_json import dumps, install


@pytest.mark.parametrize("x", [-5e-06, 1.5e-05, 1e20, -1e-300, 0.1 + 0.2, 123.0, -0.0, np.float64(-2.5e-06)])
def test_dumps_writes_positional_floats_with_the_same_value(x: float) -> None:
    text = dumps({"x": x, "l": [x, True, None, "s"]})
    assert "e" not in text.replace("true", "").lower().replace('"s"', "")
    assert json.loads(text) == {"x": x, "l": [x, True, None, "s"]}


def test_dumps_takes_numpy_scalars() -> None:
    assert json.loads(dumps({"i": np.int64(3), "b": np.bool_(True), "f": np.float32(0.5)})) == {"i": 3, "b": True, "f": 0.5}


def test_durable_matches_an_event_with_a_tiny_float() -> None:
    install()
    seen = []

    class Host(engine.Host):
        def get_action(self, name):
            return lambda c: seen.append(c.m.x)

    host = Host()
    host.set_rulesets({"tiny_float_check": {"r": {"all": [{"m": {"$lte": {"x": -0.000001}}}], "run": "a"}}})
    host.post("tiny_float_check", {"x": -5e-06})
    assert seen == [-5e-06]


def test_a_rule_with_a_tiny_literal_compiles_in_a_child_process(tmp_path) -> None:
    import shutil

    from engine.config import load_config
    from engine.rules.compile import check_compiles, compile_ruleset
    from tests.conftest import ROOT

    for name in ("strategies", "rules"):
        shutil.copytree(ROOT / name, tmp_path / name)
    (tmp_path / "rules" / "custom.yaml").write_text(
        "rules:\n  - name: tiny\n    when: position.profit <= -0.00001\n    then: [{alert: tiny loss}]\n")
    check_compiles(compile_ruleset(load_config(str(tmp_path))), timeout=30)
