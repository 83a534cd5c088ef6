"""rules/profit.yaml: profit locking, and the split of realized profit a strategy may override."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from engine.config.models.base import Fraction, Model, PositiveFraction


class ProfitSplit(Model):
    """How realized profit is split into the profit-locking buckets (the shares sum to 1)."""

    big_trades: Fraction = 0.5
    weekly_target: Fraction = 0.3
    compound: Fraction = 0.2


class OnReached(Model):
    """What happens once the week's PnL reaches ``weekly_growth_target``, until the weekly reset."""

    alert: bool = Field(True, description="emit an alert action")
    scale_risk_per_trade: Annotated[float, Field(ge=0, le=1)] = Field(
        1.0, description="factor on every strategy's sizing.risk_per_trade (1: unchanged)")
    halt_new_positions: bool = Field(False, description="reject new positions")


class ProfitRules(Model):
    """rules/profit.yaml: profit locking and the weekly target."""

    enabled: bool = True
    split: ProfitSplit = ProfitSplit()
    weekly_growth_target: PositiveFraction = Field(0.20, description="weekly growth target: the week's PnL / its starting equity")
    on_reached: OnReached = OnReached()
