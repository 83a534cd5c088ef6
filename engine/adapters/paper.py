"""The paper broker: fills every closing action at once, at the volume and price the action names.

It computes no volume and no price of its own: the engine already puts every volume on the
instrument's lot step and every level on its tick grid (docs/engine.md, "Exact at the instrument"), and
a close's price is the quote that triggered it, so a paper fill is on the same grids as the action.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.actions import Action
from engine.ports import FillReport


class PaperBroker:
    """Fills close, close_partial and close_all actions at the tick's price (bid for longs, ask for shorts),
    each for exactly the action's volume (lots); ``fills`` keeps every ``FillReport`` given out."""

    def __init__(self) -> None:
        self.fills: list[FillReport] = []

    def execute(self, action: Action, quotes: dict[str, tuple[float, float]]) -> list[FillReport]:
        out: list[FillReport] = []
        if action.type in ("close", "close_partial") and action.position_id is not None:
            volume, price = float(action.params["volume"]), float(action.params["price"])
            out.append(FillReport(action.position_id, action.ts, volume, price, action.rule))
        elif action.type == "close_all":
            for item in action.params.get("positions", []):
                out.append(FillReport(item["position_id"], action.ts, float(item["volume"]), float(item["price"]), action.rule))
        self.fills.extend(out)
        return out


def broker_factory() -> Callable[[str], PaperBroker]:
    """``account -> PaperBroker``: a broker of its own for each account (its ``fills`` are that account's)."""
    return lambda account: PaperBroker()
