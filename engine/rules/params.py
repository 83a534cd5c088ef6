"""Numeric parameters of each strategy, as the tick kernel reads them (from validated rule files)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from engine.config.grid import Grid
from engine.config.models import ExitLevel, Strategy
from engine.rules.volatility import Horizon

_ALL = 1e-9  # cumulative exit percentages within this of 1 close all that remains


@dataclass(frozen=True)
class StrategyParams:
    """One strategy's position-management parameters in kernel form.

    Exit levels are given by ``level_profit`` (fractions of entry) or ``level_r`` (multiples of the
    initial risk); ``level_all[j]`` is true when level ``j`` closes whatever remains (the cumulative
    percentages reach 1). Missing values are ``nan`` (no stop move) or ``inf`` (no cap).
    """

    name: str
    stop_loss: float
    take_profit: float
    trail_on: bool
    trail_distance: float
    trail_activation: float
    trail_max: float
    trail_volatility: bool
    trail_k: float
    trail_horizon: Horizon  # the volatility a volatility trail follows
    level_is_r: bool
    level_trigger: tuple[float, ...]
    level_pct: tuple[float, ...]
    level_sl: tuple[float, ...]
    level_all: tuple[bool, ...]
    level_keys: tuple[str, ...]  # each level's identity (``ExitLevel.key``), in the order of the levels
    dyn_on: bool
    dyn_horizon: Horizon
    dyn_stop_k: float
    dyn_tp_k: float
    dyn_only_tighten: bool
    trail_min_step: int = 1  # ticks: the smallest trailing stop move
    dyn_min_step: int = 1  # ticks: the smallest dynamic SL/TP move
    dyn_floor: int = 10  # ticks: the smallest dynamic stop distance

    @property
    def windows(self) -> tuple[Horizon, ...]:
        """The volatility horizons (measure, bar length, window) this strategy needs."""
        out = []
        if self.trail_on and self.trail_volatility:
            out.append(self.trail_horizon)
        if self.dyn_on:
            out.append(self.dyn_horizon)
        return tuple(out)


def strategy_params(s: Strategy) -> StrategyParams:
    """Return the kernel parameters of one validated strategy."""
    t, d = s.trailing, s.dynamic_sltp
    levels = s.exit_levels
    is_r = bool(levels) and levels[0].r_multiple is not None
    cumulative = 0.0
    level_all = []
    for lv in levels:
        cumulative += lv.exit_percentage
        level_all.append(cumulative >= 1 - _ALL)
    return StrategyParams(
        name=s.name,
        stop_loss=s.defaults.stop_loss,
        take_profit=s.defaults.take_profit,
        trail_on=t.trailing_enabled,
        trail_distance=t.trailing_distance if t.trailing_distance is not None else math.nan,
        trail_activation=t.activation_threshold,
        trail_max=t.max_trailing_distance if t.max_trailing_distance is not None else math.inf,
        trail_volatility=t.mode == "volatility",
        trail_k=t.volatility_multiple,
        trail_horizon=Horizon.of(t.volatility_measure, t.volatility_timeframe, t.volatility_window),
        level_is_r=is_r,
        level_trigger=tuple(_trigger(lv, is_r) for lv in levels),
        level_pct=tuple(lv.exit_percentage for lv in levels),
        level_sl=tuple(lv.sl_adjustment if lv.sl_adjustment is not None else math.nan for lv in levels),
        level_all=tuple(level_all),
        level_keys=tuple(lv.key for lv in levels),
        dyn_on=d.enabled,
        dyn_horizon=Horizon.of(d.measure, d.timeframe, d.window),
        dyn_stop_k=d.stop_multiple,
        dyn_tp_k=d.take_profit_multiple,
        dyn_only_tighten=d.only_tighten,
        trail_min_step=t.min_step,
        dyn_min_step=d.min_step,
        dyn_floor=d.floor,
    )


def _trigger(level: ExitLevel, is_r: bool) -> float:
    value = level.r_multiple if is_r else level.profit_target
    if value is None:  # the rule files' lint holds every level to the first one's kind
        raise TypeError(f"expected every exit level to use {'r_multiple' if is_r else 'profit_target'} like the first one")
    return float(value)


def compile_params(strategies: Mapping[str, Strategy]) -> dict[str, StrategyParams]:
    """Return the kernel parameters of every strategy, by name."""
    return {name: strategy_params(s) for name, s in strategies.items()}


def level_targets(volume0: float, shares: tuple[float, ...], lots: Grid) -> list[float]:
    """The volume each exit level leaves open of a position opened with ``volume0`` lots: ``volume0`` less
    its cumulative share rounded down to the lot step (4 x 25 % of 0.1 lot on a 0.01 step: 0.08, 0.05,
    0.03, 0.0).

    A level closes down to its target from whatever is open when it is reached, so what the step leaves
    is carried to the next level (25 % of 0.1 closes 0.02, the next 25 % 0.03), and what already closed
    (an earlier level, a trader, a level of an older rule file) counts toward it.
    """
    out: list[float] = []
    cumulative = 0.0
    for share in shares:
        cumulative += share
        out.append(lots.nearest(volume0 - lots.down(min(cumulative, 1.0) * volume0)))
    return out
