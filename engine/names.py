"""The one spelling of the names a user types or reads in more than one place: the CLI, the rule files,
the Python API, the HTTP API and every output.

Names are snake_case, as the keys of the rule files and of every JSON document are. A spelling riskrail
used before (``max-sharpe`` on the command line, ``quadratic_utility`` in rules/allocation.yaml,
``ledoit-wolf`` for the covariance) is refused with a message that names the one to use: a script or a
rule file that still says the old name fails once, plainly, instead of meaning two things.

This module imports nothing, so the command line can check a name before anything heavy is loaded.
"""

from __future__ import annotations

#: the portfolio optimizers of ``engine.optimize.run_method`` and rules/allocation.yaml ``methods``
METHODS = ("max_sharpe", "min_volatility", "risk_parity", "hrp", "efficient_risk", "efficient_return", "max_quadratic_utility")
#: ``riskrail optimize --method`` also offers Michaud resampling (rules/allocation.yaml: ``consensus.resample``)
CLI_METHODS = (*METHODS, "resampled_max_sharpe")
#: the covariance estimators (``engine.optimize.covariance``, rules/allocation.yaml ``covariance``, ``--covariance``)
COVARIANCES = ("sample", "ledoit_wolf", "ewma")

#: an old spelling that is not just the name with dashes for underscores -> the name to use
_RENAMED = {"quadratic_utility": "max_quadratic_utility", "quadratic-utility": "max_quadratic_utility"}


def renamed(value: str, names: tuple[str, ...]) -> str | None:
    """The name of ``names`` that ``value`` once spelled (``max-sharpe`` -> ``max_sharpe``), or None."""
    new = _RENAMED.get(value, value.replace("-", "_"))
    return new if new != value and new in names else None


def unknown(value: str, names: tuple[str, ...], what: str) -> str:
    """The message refusing ``value`` as a ``what`` (e.g. "method"): the new spelling of an old one,
    else the names expected."""
    new = renamed(value, names)
    if new is not None:
        return f"{what} {value!r} is now spelled {new!r} (one spelling in the command line, the rule files and the API)"
    return f"unknown {what} {value!r}; expected one of {', '.join(names)}"
