"""Properties of strategy capital over random books, limits and rebalances.

- an accepted proposal never takes its strategy past ``utilization.max`` x its capital, nor its open risk
  past ``risk_allocation`` x its capital (measured at the proposal's own price, when it is decided);
- a sized proposal never risks more than ``risk_per_trade`` of its strategy's capital;
- the capital shares sum to 1 after every rebalance (and before any).
"""

from __future__ import annotations

import dataclasses
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.config.models.allocation import Utilization
from engine.config.models.strategy import Sizing
from engine.events import PositionOpened, Tick
from engine.rules import allocation
from engine.rules.evaluator import Engine
from tests.conftest import ROOT

T = 1_549_238_400_000
SHIPPED = load_config(str(ROOT))
NAMES = sorted(SHIPPED.strategies)

proposals = st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from([1, -1]), st.one_of(st.none(), st.sampled_from(
    [0.01, 0.03, 0.05, 0.1, 0.13])), st.floats(0.0005, 0.05), st.floats(-0.01, 0.01)), min_size=1, max_size=12)


def rules_with(basis: str, max_: float, on_breach: str, risk_on_breach: str, risk_per_trade: float, version: str):
    """The shipped rules with a utilization limit, a risk allocation breach rule and sizing on every strategy."""
    alloc = SHIPPED.allocation.model_copy(update={"utilization": Utilization(basis=basis, max=max_, on_breach=on_breach)})
    per = SHIPPED.limits.per_strategy.model_copy(update={"on_breach": risk_on_breach})
    limits = SHIPPED.limits.model_copy(update={"per_strategy": per})
    strategies = {n: s.model_copy(update={"sizing": Sizing(risk_per_trade=risk_per_trade)}) for n, s in SHIPPED.strategies.items()}
    return dataclasses.replace(SHIPPED, allocation=alloc, limits=limits, strategies=strategies, version=version)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(basis=st.sampled_from(["notional", "risk"]), max_=st.floats(0.05, 3.0), on_breach=st.sampled_from(["reject", "resize"]),
       risk_on_breach=st.sampled_from(["reject", "resize"]), risk_per_trade=st.floats(0.001, 0.05), book=proposals,
       shares=st.lists(st.floats(0.01, 1.0), min_size=len(NAMES), max_size=len(NAMES)))
def test_accepted_and_sized_proposals_stay_within_their_strategy_capital(basis, max_, on_breach, risk_on_breach, risk_per_trade,
                                                                        book, shares) -> None:
    rules = rules_with(basis, max_, on_breach, risk_on_breach, risk_per_trade, "rv-capital-property")
    engine = Engine(rules, broker=PaperBroker())
    price, ts = 1.1000, T
    engine.process(Tick(ts, "EURUSD", price, price))
    assert math.isclose(sum(f["capital_share"] for f in allocation.figures(engine).values()), 1.0, rel_tol=1e-9)
    for i, (name, side, volume, stop_distance, move) in enumerate(book):
        ts += 1_000
        price = round(price * (1 + move), 5)
        engine.process(Tick(ts, "EURUSD", price, price))
        stop = round(price * (1 - side * stop_distance), 5)
        out = engine.process(PositionOpened(ts + 1, f"p{i}", "EURUSD", name, name, side, math.nan if volume is None else volume,
                                            price, stop, None))
        if any(a.type == "reject_position" for a in out):
            continue
        figs = allocation.figures(engine)[name]
        cap = figs["capital"]
        assert figs["exposure"] <= max_ * cap * (1 + 1e-9) + 1e-9
        assert figs["open_risk"] <= rules.risk_allocation(name) * cap * (1 + 1e-9) + 1e-9
        sized = [a for a in out if a.type == "size_position"]
        if volume is None:
            assert len(sized) == 1
            p = engine.book.positions[f"p{i}"]
            assert engine.converter.risk("EURUSD", p.entry, p.stop_loss, p.volume) <= risk_per_trade * cap * (1 + 1e-9)
        if i % 4 == 3:  # a rebalance now and then: the shares given sum to 1, and so do the shares after it
            given_shares = {n: w / sum(shares) for n, w in zip(NAMES, shares, strict=True)}
            allocation.rebalance(engine, given_shares, ts)
            assert math.isclose(sum(f["capital_share"] for f in allocation.figures(engine).values()), 1.0, rel_tol=1e-9)
