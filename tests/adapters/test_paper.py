"""The paper broker fills what the engine asks, at the action's volume and price: it invents neither, so its
fills lie on the instrument's lot step and tick grid exactly as the engine's actions do."""

from __future__ import annotations

import itertools

from engine.adapters.paper import PaperBroker
from engine.config.load import ruleset_from_texts
from engine.events import parse_event
from engine.rules.evaluator import Engine
from tests.conftest import ROOT

T0 = 1_700_000_000_000
INDEX = ("  IDX: {quote_currency: USD, contract_size: 1, pip_size: 0.25, digits: 2, tick_size: 0.25, volume_step: 0.1, "
         "volume_min: 0.1, volume_max: 1000}\n")


def rules_with_index():
    texts = {str(p.relative_to(ROOT)): p.read_text()
             for p in itertools.chain((ROOT / "strategies").glob("*.yaml"), (ROOT / "rules").glob("*.yaml"), [ROOT / "schedules.yaml"])}
    texts["rules/instruments.yaml"] = texts["rules/instruments.yaml"].replace("\nstrategy_map:", "\n" + INDEX + "strategy_map:", 1)
    return ruleset_from_texts(texts)


def test_paper_fills_are_the_actions_volumes_and_prices_on_the_instruments_grids() -> None:
    rules = rules_with_index()
    spec = rules.instruments.instruments["IDX"]
    broker = PaperBroker()
    engine = Engine(rules, equity0=1e9, broker=broker)
    events = [{"type": "tick", "ts": T0, "symbol": "IDX", "bid": 1000.0, "ask": 1000.25},
              {"type": "position_opened", "ts": T0 + 1, "position_id": "p1", "symbol": "IDX", "strategy_type": "arbitrage",
               "strategy_name": "arbitrage", "action": "BUY", "volume": 0.7, "entry_price": 1000.25}]
    # up through the first two exit levels (+0.5 %, +0.8 %), then down into the tightened stop
    prices = [1002.0, 1005.25, 1006.0, 1008.5, 1009.0, 1004.0, 1003.0, 1002.0, 1001.0]
    events += [{"type": "tick", "ts": T0 + 1000 * (i + 1), "symbol": "IDX", "bid": bid, "ask": bid + 0.25}
               for i, bid in enumerate(prices)]
    actions = [a for e in events for a in engine.process(parse_event(e))]
    closes = [a for a in actions if a.type in ("close", "close_partial")]
    assert [a.type for a in closes] == ["close_partial", "close_partial", "close"]
    assert [(f.volume, f.price) for f in broker.fills] == [(a.params["volume"], a.params["price"]) for a in closes]
    assert all(spec.lots.on(f.volume) and spec.prices.on(f.price) for f in broker.fills)
    assert [f.volume for f in broker.fills][:2] == [0.1, 0.2]  # 25 % of 0.7 is 0.175: 0.1 on the step, the rest carried
