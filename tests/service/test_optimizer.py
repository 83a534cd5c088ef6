"""The optimize_portfolio job on the six shipped strategies: weights within every band, a staged plan."""

from __future__ import annotations

import numpy as np
import pytest

from engine.adapters.files import read_ticks
from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.errors import OptimizationError
from engine.events import PositionOpened
from engine.rules import allocation
from engine.rules.evaluator import Engine
from engine.service.optimizer import apply, optimize, plan_warnings
from tests.conftest import ROOT
from tests.service.conftest import TICKS


def test_six_strategies_get_targets_within_their_bands_and_a_plan() -> None:
    rules = load_config(str(ROOT))
    engine = Engine(rules, broker=PaperBroker())
    ticks = [e for _, _, e in read_ticks(str(TICKS), "EURUSD")]
    with pytest.raises(OptimizationError, match="not enough history"):
        optimize(engine, ticks[0].ts)
    engine.process(ticks[0])
    for i, name in enumerate(sorted(rules.strategies)):  # one long or short per strategy, with pip-sized stops
        side = 1 if i % 2 == 0 else -1
        entry = ticks[0].ask if side > 0 else ticks[0].bid
        engine.process(PositionOpened(ticks[0].ts + 1 + i, f"p{i}", "EURUSD", name, name, side, 0.1, entry,
                                      entry - side * 0.0008, entry + side * 0.0016))
    for t in ticks[1:]:
        engine.process(t)
    result = optimize(engine, ticks[-1].ts)
    assert result["observations"] >= 50 and len(result["methods"]) >= 2
    # max Sharpe is undefined when no portfolio beats the risk-free rate: reported, the others decide
    assert set(result["failed_methods"]) <= {"max_sharpe"}
    assert abs(sum(result["targets"].values()) - 1) < 1e-9
    for name, weight in result["targets"].items():
        band = rules.strategies[name].allocation
        assert band.min - 1e-9 <= weight <= band.max + 1e-9, name
    assert {r["strategy"] for r in result["recommendations"]} == set(rules.strategies)
    assert all(t["amount"] <= rules.allocation.max_transfer_per_step + 1e-12 for t in result["implementation_plan"])
    moving = [r for r in result["recommendations"] if r["action"] != "hold"]
    # every strategy to move has a transfer, to or from it; a plan with nothing to move says why
    assert all(any(r["strategy"] in (t["from"], t["to"]) for t in result["implementation_plan"]) for r in moving)
    assert result["implementation_plan"] or result["plan_note"]
    assert {"return", "volatility", "sharpe", "max_drawdown"} <= {k.replace("expected_", "") for k in result["expected_impact"]["after"]}
    actions = apply(engine, result, engine.seq, "job-1")
    assert engine.capital.targets == result["targets"] and len(actions) == len(result["implementation_plan"])
    assert len({a.id for a in actions}) == len(actions)
    # the capital moved to the plan's allocation: a second run on the same estimates has nothing to do
    shares = {n: allocation.capital(engine, n) / engine.equity for n in rules.strategies}
    assert shares == pytest.approx(result["after"]) and sum(shares.values()) == pytest.approx(1.0)
    again = optimize(engine, ticks[-1].ts)
    assert again["implementation_plan"] == [] and again["plan_note"] and apply(engine, again, engine.seq, "job-2") == []


def test_a_plan_that_lowers_the_expected_sharpe_says_so_and_why() -> None:
    impact = {"before": {"sharpe": 1.41, "volatility": 0.12}, "after": {"sharpe": 1.15, "volatility": 0.10}}
    names = ["a", "b", "c"]
    [warning] = plan_warnings(impact, ["risk_parity", "max_sharpe"], names, np.array([0.35, 0.40, 0.25]),
                          np.array([0.15, 0.1, 0.1]), np.array([0.35, 0.5, 0.5]))
    assert warning.startswith("the plan lowers the expected Sharpe ratio from 1.41 to 1.15: the bands bind (a at its band max 0.35)")
    assert "risk_parity, whose objective is not the Sharpe ratio" in warning and "volatility from 0.12 to 0.1" in warning
    better = {"before": {"sharpe": 1.0, "volatility": 0.1}, "after": {"sharpe": 1.2, "volatility": 0.1}}
    assert plan_warnings(better, ["max_sharpe"], names, np.array([0.3, 0.4, 0.3]), np.zeros(3), np.ones(3)) == []
