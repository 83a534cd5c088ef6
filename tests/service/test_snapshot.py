"""Snapshots keep numpy views bound: an engine restored mid-run continues exactly like the original."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import parse_event
from engine.rules.chaining import PortfolioRules
from engine.rules.evaluator import Engine
from engine.service.snapshot import dumps, loads
from tests.service.conftest import SCALPING, demo_events


class Columns:
    def __init__(self) -> None:
        self.F = np.zeros((3, 4))
        self.L = np.zeros((2, 4, 3))
        self.S = np.zeros((7, 2))
        self.stop = self.F[1]
        self.thr = self.L[1]
        self.column = self.F[:, 2]
        self.part = self.S[5, :1]


@pytest.mark.parametrize("cycles", [1, 2, 3])
def test_views_stay_views_after_any_number_of_save_load_cycles(cycles: int) -> None:
    c = Columns()
    for _ in range(cycles):
        c = loads(dumps(c))
    c.stop[2] = 7.0
    c.thr[0, 1] = 5.0
    c.column[0] = 3.0
    c.part[0] = 2.0
    assert c.F[1, 2] == 7.0 and c.L[1, 0, 1] == 5.0 and c.F[0, 2] == 3.0 and c.S[5, 0] == 2.0
    plain = pickle.loads(pickle.dumps(Columns()))  # what plain pickle would do: the bug this module exists for
    plain.stop[2] = 7.0
    assert plain.F[1, 2] == 0.0


def restored(engine: Engine) -> Engine:
    state = {k: v for k, v in engine.__dict__.items() if k not in ("rules", "portfolio", "broker", "on_problem")}
    data = loads(dumps({"engine": state, "facts": engine.portfolio.facts(engine.version)}))
    b = Engine.__new__(Engine)
    b.__dict__.update(data["engine"])
    b.rules, b.broker, b.on_problem, b.portfolio = engine.rules, PaperBroker(), None, PortfolioRules()
    b.version = b.portfolio.load(engine.rules)
    b.portfolio.restore_facts(b.version, data["facts"])
    return b


def test_an_engine_restored_again_and_again_continues_like_the_original() -> None:
    """A restart from a snapshot that a restarted engine took (the case a single round trip misses)."""
    rules = load_config(str(SCALPING))
    events = [parse_event(e) for e in demo_events()]
    a, b = Engine(rules, broker=PaperBroker()), Engine(rules, broker=PaperBroker())
    n_actions = 0
    for i, ev in enumerate(events):
        if i and i % 500 == 0:
            b = restored(b)
        want = [x.to_line() for x in a.process(ev)]
        assert [x.to_line() for x in b.process(ev)] == want, (i, ev)
        n_actions += len(want)
    assert n_actions > 30
    assert a.summary() == b.summary()
