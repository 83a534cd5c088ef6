"""rules/allocation.yaml: the optimizer that the optimize_portfolio job runs."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from engine.config.models.base import Model, Name, PositiveFraction
from engine.names import COVARIANCES, METHODS, renamed, unknown


def _spelled(names: tuple[str, ...], what: str) -> BeforeValidator:
    """Refuse an old spelling of one of ``names`` with a message naming the new one (``engine.names``)."""

    def check(value: object) -> object:
        if isinstance(value, str) and renamed(value, names) is not None:
            raise ValueError(unknown(value, names, what))
        return value

    return BeforeValidator(check)


Method = Annotated[
    Literal["risk_parity", "hrp", "min_volatility", "max_sharpe", "efficient_risk", "efficient_return", "max_quadratic_utility"],
    _spelled(METHODS, "method"),
]
Covariance = Annotated[Literal["sample", "ledoit_wolf", "ewma"], _spelled(COVARIANCES, "covariance estimator")]


class Resample(Model):
    """Bootstrap consensus: average max-Sharpe weights over resampled histories."""

    enabled: bool = False
    samples: Annotated[int, Field(ge=10, le=10_000)] = 200
    seed: Annotated[int, Field(ge=0)] = 7


class Consensus(Model):
    """How the methods' weights are combined."""

    combine: Literal["mean", "median"] = "median"
    resample: Resample = Resample()


class Utilization(Model):
    """How much of its capital a strategy's open positions may use: exposure on ``basis`` over capital.

    ``notional``: the positions' notional at the last mid; ``margin``: that notional times each
    instrument's ``margin_rate``; ``risk``: what the positions lose if every stop is hit. All in the
    account currency. A proposal that would take the strategy past ``max`` times its capital is rejected,
    or (``resize``) opened with the largest volume within it, rounded down to the lot step.
    """

    basis: Literal["notional", "margin", "risk"] = Field("notional", description="what exposure is measured on")
    max: Annotated[float, Field(gt=0, le=1000)] = Field(1.4, description="largest exposure / capital of a strategy")
    on_breach: Literal["reject", "resize"] = "reject"


class AllocationRules(Model):
    """rules/allocation.yaml: the optimizer run by the optimize_portfolio job."""

    methods: Annotated[list[Method], Field(min_length=1)] = Field(["risk_parity", "min_volatility", "max_sharpe"])
    consensus: Consensus = Consensus()
    lookback: Annotated[int, Field(ge=20, le=100_000)] = Field(250, description="return observations used")
    expected_returns: Literal["mean", "cagr", "ewma"] = "mean"
    covariance: Covariance = "ledoit_wolf"
    ewma_span: Annotated[int, Field(ge=2, le=10_000)] = 60
    periods_per_year: Annotated[int, Field(ge=1, le=1_000_000)] = 252
    risk_free_rate: Annotated[float, Field(ge=-0.1, le=1)] = 0.0
    target_volatility: PositiveFraction | None = Field(None, description="for efficient_risk")
    target_return: Annotated[float, Field(ge=-1, le=10)] | None = Field(None, description="for efficient_return")
    risk_aversion: Annotated[float, Field(gt=0, le=1000)] = Field(1.0, description="for max_quadratic_utility")
    risk_budgets: dict[Name, PositiveFraction] | None = Field(None, description="strategy -> risk budget for risk_parity (default: equal)")
    auto_apply: bool = Field(False, description="apply recommendations to the targets automatically")
    max_transfer_per_step: PositiveFraction = Field(0.05, description="largest transfer in one stage of the plan")
    utilization: Utilization | None = Field(
        None, description="exposure a strategy may hold against its capital; null: reported (on notional), not limited")
