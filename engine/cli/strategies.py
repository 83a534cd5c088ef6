"""``riskrail strategies``: the strategy table of a validated configuration."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from engine.cli._common import add_config_option, add_format_option

if TYPE_CHECKING:
    from engine.config import RuleSet


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:g}%"


def strategy_table(ruleset: RuleSet) -> str:
    """Render name, band, SL/TP, trailing and exit levels of every strategy as a text table."""
    rows = [("strategy", "band (min-target-max)", "SL / TP", "trailing", "exit levels")]
    for name, s in sorted(ruleset.strategies.items()):
        a = s.allocation
        band = f"{_pct(a.min)}-{_pct(a.target)}-{_pct(a.max)}"
        t = s.trailing
        if t.trailing_enabled:
            trailing = f"{_pct(t.trailing_distance)} after {_pct(t.activation_threshold)}"
            if t.mode == "volatility":
                trailing += f" (vol x{t.volatility_multiple:g}, max {_pct(t.max_trailing_distance)})"
        else:
            trailing = "off"
        levels = []
        for lv in s.exit_levels:
            at = _pct(lv.profit_target) if lv.profit_target is not None else f"{lv.r_multiple:g}R"
            levels.append(f"{_pct(lv.exit_percentage)}@{at}")
        rows.append((name, band, f"{_pct(s.defaults.stop_loss)} / {_pct(s.defaults.take_profit)}", trailing, ", ".join(levels) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def strategy_json(ruleset: RuleSet) -> dict[str, Any]:
    """The strategies as ``--format json`` shows them: ``{"rules_version": ..., "strategies": {name: {...}}}``, each
    strategy with the keys of its file (fractions, never percent)."""
    return {"rules_version": ruleset.version,
            "strategies": {name: s.model_dump(mode="json") for name, s in sorted(ruleset.strategies.items())}}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("strategies", help="show the strategy table of the configuration")
    add_config_option(p)
    add_format_option(p, "a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.config import load_config

    ruleset = load_config(args.config)
    if args.format == "json":
        import json

        print(json.dumps(strategy_json(ruleset), indent=2, allow_nan=False))
        return 0
    print(strategy_table(ruleset))
    print(f"\nrules version {ruleset.version}")
    return 0
