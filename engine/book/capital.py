"""Strategy capital: what each strategy was given at the last rebalance, and what it has made since.

A strategy's capital is its allocated capital plus its PnL (realized and open) since the last
rebalance. Before any rebalance, the allocated capital is its configured ``allocation.target`` of the
starting equity; a rebalance (the optimizer's ``auto_apply``, or an operator accepting a plan) gives
each strategy its new share of the equity then, and the PnL counts again from there. The capital of
every strategy sums to the equity whenever the shares given sum to 1 (the targets of the strategy
files do; ``engine.config.lint`` checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class Capital:
    """The capital base of the strategies, in the account currency.

    ``base``: money each strategy was given at the last rebalance; ``mark``: its PnL (realized plus
    open) at that moment; ``targets``: the shares applied then; ``ts``: when (epoch ms of event time;
    ``None``: never rebalanced, every strategy on its configured target).
    """

    base: dict[str, float] = field(default_factory=dict)
    mark: dict[str, float] = field(default_factory=dict)
    targets: dict[str, float] = field(default_factory=dict)
    ts: int | None = None

    def of(self, name: str, configured: float, equity0: float, pnl: float) -> float:
        """The capital of strategy ``name`` whose PnL to date is ``pnl``: its base plus the PnL since the
        rebalance, or ``configured`` (its target share) of ``equity0`` plus its PnL before any rebalance."""
        if name in self.base:
            return self.base[name] + pnl - self.mark.get(name, 0.0)
        return configured * equity0 + pnl

    def rebalance(self, shares: Mapping[str, float], equity: float, pnls: Mapping[str, float], ts: int,
                  targets: Mapping[str, float] | None = None) -> None:
        """Give each strategy its ``shares`` of ``equity`` at ``ts``; ``pnls``: each one's PnL to date, from
        which the PnL counts again; ``targets``: the targets the shares move toward (default: the shares)."""
        for name, share in shares.items():
            self.base[name] = share * equity
            self.mark[name] = pnls[name]
        self.targets = dict(targets if targets is not None else shares)
        self.ts = ts
