"""Portfolio optimizers: estimators, risk parity, mean-variance, max Sharpe, HRP, consensus, rebalancing.

A pure core over numpy arrays: annualised expected returns and covariance in, weights and frozen
results out; no I/O, no clock, seeded randomness only. All methods are long-only, sum to 1 and treat
per-asset bands as hard constraints; infeasible inputs and results that fail verification raise
``engine.errors.OptimizationError``. See docs/optimize.md for the definitions chosen.
"""

from engine.optimize.bounds import check_feasible, project_onto_bounds, resolve_bounds
from engine.optimize.consensus import (
    Agreement,
    ConsensusResult,
    agreement,
    combine,
    consensus,
    consensus_of,
    resampled_max_sharpe,
)
from engine.optimize.covariance import (
    NonPSDCovarianceWarning,
    covariance,
    ewma_covariance,
    is_psd,
    ledoit_wolf,
    make_psd,
    sample_covariance,
)
from engine.optimize.hrp import hierarchical_risk_parity
from engine.optimize.mean_variance import (
    efficient_frontier,
    efficient_return,
    efficient_risk,
    max_quadratic_utility,
    max_sharpe,
    min_volatility,
)
from engine.optimize.methods import METHODS, run_method
from engine.optimize.rebalance import Impact, Recommendations, StrategyRecommendation, Transfer, recommend
from engine.optimize.results import (
    OptimizationResult,
    Performance,
    Verification,
    portfolio_performance,
    risk_contributions,
)
from engine.optimize.returns import (
    TRADING_DAYS,
    cagr_return,
    ewma_return,
    expected_returns,
    mean_return,
    returns_from_prices,
)
from engine.optimize.risk_parity import risk_parity

__all__ = [
    "METHODS",
    "TRADING_DAYS",
    "Agreement",
    "ConsensusResult",
    "Impact",
    "NonPSDCovarianceWarning",
    "OptimizationResult",
    "Performance",
    "Recommendations",
    "StrategyRecommendation",
    "Transfer",
    "Verification",
    "agreement",
    "cagr_return",
    "check_feasible",
    "combine",
    "consensus",
    "consensus_of",
    "covariance",
    "efficient_frontier",
    "efficient_return",
    "efficient_risk",
    "ewma_covariance",
    "ewma_return",
    "expected_returns",
    "hierarchical_risk_parity",
    "is_psd",
    "ledoit_wolf",
    "make_psd",
    "max_quadratic_utility",
    "max_sharpe",
    "mean_return",
    "min_volatility",
    "portfolio_performance",
    "project_onto_bounds",
    "recommend",
    "resampled_max_sharpe",
    "resolve_bounds",
    "returns_from_prices",
    "risk_contributions",
    "risk_parity",
    "run_method",
    "sample_covariance",
]
