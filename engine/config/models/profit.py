"""rules/profit.yaml: profit locking, and the split of realized profit a strategy may override."""

from __future__ import annotations

from pydantic import Field

from engine.config.models.base import Fraction, Model, PositiveFraction


class ProfitSplit(Model):
    """How realized profit is split into the profit-locking buckets (the shares sum to 1)."""

    big_trades: Fraction = 0.5
    weekly_target: Fraction = 0.3
    compound: Fraction = 0.2


class ProfitRules(Model):
    """rules/profit.yaml: profit locking."""

    enabled: bool = True
    split: ProfitSplit = ProfitSplit()
    weekly_growth_target: PositiveFraction = Field(0.20, description="weekly growth target of equity")
