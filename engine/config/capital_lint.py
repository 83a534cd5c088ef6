"""Checks of strategy capital across rule files: exposure caps and the utilization basis against the instruments.

- ``limits.yaml`` ``exposure.groups.<g>.symbols`` name instruments of ``rules/instruments.yaml``;
- ``exposure.currencies`` are currencies some instrument trades (or the account currency);
- ``allocation.yaml`` ``utilization: {basis: margin}`` needs every instrument's ``margin_rate``.

Each problem points at the node that causes it, as every check of ``engine.config.lint`` does.
"""

from __future__ import annotations

from engine.config import conditions
from engine.config.lint import Loaded, at
from engine.config.models import AllocationRules, Instruments, Limits
from engine.config.problems import Problem


def check_capital(limits: Loaded[Limits] | None, allocation: Loaded[AllocationRules] | None,
                  instruments: Loaded[Instruments] | None) -> list[Problem]:
    """Return the problems of the exposure caps and the utilization basis against the instruments
    (none when a file is missing or did not validate: its own problems say why)."""
    if instruments is None or instruments.partial:
        return []
    specs = instruments.model.instruments
    out: list[Problem] = []
    if limits is not None and not limits.partial:
        exposure = limits.model.exposure
        for name, group in exposure.groups.items():
            for i, symbol in enumerate(group.symbols):
                if symbol not in specs:
                    out.append(at(limits.doc, ("exposure", "groups", name, "symbols", i),
                                  f"expected a symbol of rules/instruments.yaml, found {symbol!r}{conditions.suggest(symbol, specs)}"))
        traded = {instruments.model.account_currency} | {s.quote_currency for s in specs.values()} | {
            s.base_currency for s in specs.values() if s.base_currency is not None}
        for ccy in exposure.currencies:
            if ccy not in traded:
                out.append(at(limits.doc, ("exposure", "currencies", ccy),
                              f"expected a currency the instruments trade ({', '.join(sorted(traded))}), found {ccy!r}", key=True))
    u = allocation.model.utilization if allocation is not None and not allocation.partial else None
    missing = sorted(s for s, spec in specs.items() if spec.margin_rate is None)
    if allocation is not None and u is not None and u.basis == "margin" and missing:
        out.append(at(allocation.doc, ("utilization", "basis"),
                      "utilization on the margin basis needs margin_rate on every instrument of rules/instruments.yaml, "
                      f"found none on {', '.join(missing)}"))
    return out
