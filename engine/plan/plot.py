"""Draw a plan: for the positions whose actions changed most, the price with both stop paths and exits;
and both equity curves."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from engine.actions import Action
from engine.events import Event, Tick
from engine.plan.run import Plan

_MAX_POSITIONS = 3


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1000, tz=UTC)


def _stop_path(actions: list[Action], end: int) -> tuple[list[datetime], list[float]]:
    xs: list[datetime] = []
    ys: list[float] = []
    for a in actions:
        if a.type == "set_stop_loss" and isinstance(a.params.get("stop_loss"), (int, float)):
            if ys:
                xs.append(_dt(a.ts))
                ys.append(ys[-1])
            xs.append(_dt(a.ts))
            ys.append(a.params["stop_loss"])
    if ys:
        xs.append(_dt(end))
        ys.append(ys[-1])
    return xs, ys


def _end(actions: list[Action]) -> int | None:
    closes = [a.ts for a in actions if a.type in ("close", "close_all")]
    return closes[-1] if closes else None


def draw(plan: Plan, events: Sequence[Event], path: str) -> None:
    """Write the plan's picture to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    changed = plan.changed_positions()[:_MAX_POSITIONS]
    rows = len(changed) + 1
    fig, axes = plt.subplots(rows, 1, figsize=(11, 3.2 * rows), squeeze=False)
    for ax, pid in zip(axes[:, 0], changed, strict=False):  # the last row is the equity curves
        base = plan.base.by_position.get(pid, [])
        proposed = plan.proposed.by_position.get(pid, [])
        everything = base + proposed
        start = min(a.ts for a in everything)
        end = max(_end(base) or start, _end(proposed) or start)
        margin = max((end - start) // 10, 60_000)
        symbol = plan.proposed.symbol_of.get(pid) or plan.base.symbol_of.get(pid)
        ticks = [e for e in events if isinstance(e, Tick) and e.symbol == symbol and start - margin <= e.ts <= end + margin]
        ax.plot([_dt(t.ts) for t in ticks], [(t.bid + t.ask) / 2 for t in ticks], color="0.6", lw=0.8, label="mid")
        for actions, color, name in ((base, "tab:blue", "base"), (proposed, "tab:orange", "proposed")):
            xs, ys = _stop_path(actions, _end(actions) or end)
            if xs:
                ax.step(xs, ys, where="post", color=color, lw=1.4, label=f"{name} stop")
            exits = [a for a in actions if a.type in ("close", "close_partial")]
            ax.scatter([_dt(a.ts) for a in exits], [a.params.get("price") for a in exits], color=color, marker="v", s=40,
                       zorder=3, label=f"{name} exits")
        strategy = plan.proposed.strategy_of.get(pid) or plan.base.strategy_of.get(pid, "?")
        ax.set_title(f"{pid} ({strategy}{', ' + symbol if symbol else ''})", fontsize=10)
        ax.legend(fontsize=8, loc="best")
    ax = axes[-1, 0]
    for run, color, name in ((plan.base, "tab:blue", "base"), (plan.proposed, "tab:orange", "proposed")):
        if run.curve:
            ax.plot([_dt(ts) for ts, _ in run.curve], [e for _, e in run.curve], color=color, label=f"{name} equity",
                    lw=1.2, ls="-" if name == "base" else "--")
    ax.set_title("equity", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle(f"rules {plan.base.version} -> {plan.proposed.version}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
