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
        self.stop = self.F[1]
        self.thr = self.L[1]


def test_views_stay_views_after_loading() -> None:
    c = loads(dumps(Columns()))
    c.stop[2] = 7.0
    c.thr[0, 1] = 5.0
    assert c.F[1, 2] == 7.0 and c.L[1, 0, 1] == 5.0
    plain = pickle.loads(pickle.dumps(Columns()))  # what plain pickle would do: the bug this module exists for
    plain.stop[2] = 7.0
    assert plain.F[1, 2] == 0.0


def test_a_view_that_is_not_a_leading_slice_is_refused() -> None:
    c = Columns()
    c.stop = c.F[:, 1]
    with pytest.raises(pickle.PicklingError, match="stop"):
        dumps(c)


def test_an_engine_restored_from_a_snapshot_continues_like_the_original() -> None:
    rules = load_config(str(SCALPING))
    events = [parse_event(e) for e in demo_events()]
    a = Engine(rules, broker=PaperBroker())
    cut = len(events) // 3
    for ev in events[:cut]:
        a.process(ev)
    state = {k: v for k, v in a.__dict__.items() if k not in ("rules", "portfolio", "broker", "on_problem")}
    data = loads(dumps({"engine": state, "facts": a.portfolio.facts(a.version)}))
    b = Engine.__new__(Engine)
    b.__dict__.update(data["engine"])
    b.rules, b.broker, b.on_problem, b.portfolio = rules, PaperBroker(), None, PortfolioRules()
    b.version = b.portfolio.load(rules)
    b.portfolio.restore_facts(b.version, data["facts"])
    n_actions = 0
    for ev in events[cut:]:
        want = [x.to_line() for x in a.process(ev)]
        assert [x.to_line() for x in b.process(ev)] == want, ev
        n_actions += len(want)
    assert n_actions > 30
    assert a.summary() == b.summary()
