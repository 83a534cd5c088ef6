"""What a hot reload to the proposed rules changes for each position still open at the end of the history.

The positions the base replay leaves open are the live book a reload would meet. The base engine
itself takes the reload (``Engine.reload``, the service's own swap), and its kernels are read before
and after, so the answer is the engine's reload semantics, not a copy of them (docs/engine.md,
"Reloads and open positions"): stop and take profit kept; trailing and dynamic SL/TP settings from the
new file; thresholds put on the tick grid again; exit levels known by key (``ExitLevel.key``), so a
level taken stays taken wherever it moved, a level added is untaken, and a level removed while taken
is remembered (taken again if a later reload brings it back). A reload that removes a strategy with
open positions is refused (``ReloadRefused``): nothing changes, and the affected positions say why.

Prices are in the symbol's quote currency and on its tick grid, volumes in lots, fractions are
fractions (0.01 is 1 %). ``None`` stands for no price (no stop, a trail that never arms, a level
whose trigger is out of reach).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from engine.config.load import RuleSet
from engine.rules._errors import ReloadRefused
from engine.rules.evaluator import Engine

#: a strategy's default that changes: (strategy, key of ``defaults``, base value, proposed value)
NewDefault = tuple[str, str, float, float]


def _price(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


@dataclass(frozen=True)
class LevelView:
    """One exit level as a position holds it: its trigger price, the volume it leaves open (lots), the
    stop it moves to (None: no adjustment), its share of the opened volume and whether it is taken."""

    key: str
    price: float | None
    leaves_open: float
    stop_to: float | None
    exit_percentage: float
    taken: bool

    def to_json(self) -> dict[str, Any]:
        """As JSON data (prices and volumes as numbers, None for none)."""
        return asdict(self)


@dataclass(frozen=True)
class PositionView:
    """An open position's managed state and the settings that manage it, under one rules version.

    ``trailing``: the strategy's trailing settings (the file's keys) with ``armed``, ``activation_price``
    (the price that arms it; None when armed or disabled) and ``stop`` (the trailing stop: the position's
    stop once the trail moved it, else None). ``dynamic_sltp``: the file's settings. ``remembered``: keys
    of levels taken that the file no longer has.
    """

    stop_loss: float | None
    take_profit: float | None
    trailing: dict[str, Any]
    dynamic_sltp: dict[str, Any]
    levels: tuple[LevelView, ...]
    remembered: tuple[str, ...]

    def settings(self) -> dict[str, Any]:
        """Every value but the levels, flat: ``stop_loss``, ``trailing.<key>``, ``dynamic_sltp.<key>``."""
        out: dict[str, Any] = {"stop_loss": self.stop_loss, "take_profit": self.take_profit}
        out.update({f"trailing.{k}": v for k, v in self.trailing.items()})
        out.update({f"dynamic_sltp.{k}": v for k, v in self.dynamic_sltp.items()})
        return out

    def to_json(self) -> dict[str, Any]:
        """As JSON data (prices and volumes as numbers, None for none)."""
        return {"stop_loss": self.stop_loss, "take_profit": self.take_profit, "trailing": self.trailing,
                "dynamic_sltp": self.dynamic_sltp, "exit_levels": [lv.to_json() for lv in self.levels],
                "remembered_taken": list(self.remembered)}


@dataclass(frozen=True)
class LevelChange:
    """One exit level across the reload, by key: ``change`` is added, removed, edited or kept."""

    key: str
    change: str
    before: LevelView | None
    after: LevelView | None

    def to_json(self) -> dict[str, Any]:
        """As JSON data (prices and volumes as numbers, None for none)."""
        return {"key": self.key, "change": self.change, "before": self.before.to_json() if self.before else None,
                "after": self.after.to_json() if self.after else None}


@dataclass(frozen=True)
class PositionReload:
    """One open position before and after the reload (``after`` equals ``before`` when it is refused;
    ``refused`` then says why, for a position whose strategy the proposed rules remove)."""

    position_id: str
    strategy: str
    symbol: str
    side: int
    entry: float
    volume0: float
    volume: float
    before: PositionView
    after: PositionView
    refused: str | None = None

    @property
    def changed(self) -> bool:
        """Whether the reload changes anything for this position (or refuses because of it)."""
        return self.refused is not None or self.before != self.after

    def settings(self) -> list[tuple[str, Any, Any]]:
        """The settings and state that differ: (name, before, after), in a stable order."""
        b, a = self.before.settings(), self.after.settings()
        return [(k, b.get(k), a.get(k)) for k in dict.fromkeys([*b, *a]) if b.get(k) != a.get(k)]

    def levels(self) -> list[LevelChange]:
        """Every exit level of either side by key, in the proposed order, then the removed ones."""
        before = {lv.key: lv for lv in self.before.levels}
        after = {lv.key: lv for lv in self.after.levels}
        out = []
        for key, lv in after.items():
            old = before.get(key)
            out.append(LevelChange(key, "added" if old is None else "kept" if old == lv else "edited", old, lv))
        out.extend(LevelChange(key, "removed", lv, None) for key, lv in before.items() if key not in after)
        return out

    def to_json(self) -> dict[str, Any]:
        """As JSON data (prices and volumes as numbers, None for none)."""
        return {"strategy": self.strategy, "symbol": self.symbol, "action": "BUY" if self.side > 0 else "SELL",
                "entry_price": self.entry, "volume0": self.volume0, "volume": self.volume, "refused": self.refused,
                "settings": [{"name": k, "base": b, "proposed": a} for k, b, a in self.settings()],
                "exit_levels": [c.to_json() for c in self.levels()],
                "base": self.before.to_json(), "proposed": None if self.refused is not None else self.after.to_json()}


@dataclass(frozen=True)
class ReloadEffects:
    """What a reload from ``base_version`` to ``proposed_version`` changes for every open position.

    ``refused``: the ``ReloadRefused`` message when the reload is refused (nothing changes), else None.
    ``new_defaults``: per strategy with open positions, its ``defaults`` that change as (key, base,
    proposed): they apply to positions opened after the reload, never to the open ones.
    """

    base_version: str
    proposed_version: str
    positions: tuple[PositionReload, ...]
    refused: str | None = None
    new_defaults: tuple[NewDefault, ...] = ()

    @property
    def differs(self) -> bool:
        """Whether the reload is refused or changes any open position."""
        return self.refused is not None or any(p.changed for p in self.positions)

    def changed(self) -> list[PositionReload]:
        """The positions the reload changes (or that make it refused), in the book's order."""
        return [p for p in self.positions if p.changed]

    def unchanged(self) -> list[str]:
        """The ids of the open positions the reload leaves as they are."""
        return [p.position_id for p in self.positions if not p.changed]

    def to_json(self) -> dict[str, Any]:
        """As JSON data (prices and volumes as numbers, None for none)."""
        return {"base_version": self.base_version, "proposed_version": self.proposed_version, "refused": self.refused,
                "open": len(self.positions), "changed": len(self.changed()), "unchanged": self.unchanged(),
                "new_defaults": [{"strategy": s, "name": k, "base": b, "proposed": a} for s, k, b, a in self.new_defaults],
                "positions": {p.position_id: p.to_json() for p in self.changed()}}


def _managed(engine: Engine) -> Iterator[tuple[str, str]]:
    """(symbol, position id) of every position a kernel manages, in the kernels' order."""
    for symbol, kernel in engine.kernels.items():
        for pid in list(kernel.ids):
            yield symbol, pid


def _view(engine: Engine, symbol: str, pid: str) -> PositionView:
    """Read one position's view from its kernel, under the engine's current rules."""
    kernel = engine.kernels[symbol]
    st = kernel.state(pid)
    i = kernel.ids.index(pid)
    strategy = engine.rules.strategies[st.strategy]
    trail = strategy.trailing
    trailing = {**trail.model_dump(), "armed": st.armed,
                # the price that arms it, on the tick grid: what the kernel compares quotes with
                "activation_price": _price(float(kernel.trail_act[i])) if trail.trailing_enabled and not st.armed else None,
                "stop": _price(st.stop) if st.trailed else None}
    levels = tuple(
        LevelView(lv.key, _price(float(kernel.thr[i, j])), float(kernel.targets[i, j]), _price(float(kernel.sl[i, j])),
                  lv.exit_percentage, bool((st.taken >> j) & 1))
        for j, lv in enumerate(strategy.exit_levels))
    return PositionView(_price(st.stop), _price(st.take_profit), trailing, strategy.dynamic_sltp.model_dump(), levels,
                        tuple(sorted(st.taken_keys)))


def _new_defaults(base: RuleSet, proposed: RuleSet, strategies: set[str]) -> tuple[NewDefault, ...]:
    out: list[NewDefault] = []
    for name in sorted(strategies):
        if name not in proposed.strategies:
            continue
        b, p = base.strategies[name].defaults.model_dump(), proposed.strategies[name].defaults.model_dump()
        out.extend((name, k, b[k], p[k]) for k in b if b[k] != p[k])
    return tuple(out)


def reload_effects(engine: Engine, proposed: RuleSet) -> ReloadEffects:
    """Reload ``engine`` to ``proposed`` and report what that changes for each position it manages.

    ``engine`` is the base replay's engine after its last event: it takes the reload and must not be
    used for anything else afterwards (its portfolio layer moves to the proposed version, dropping the
    base one). A refused reload (``ReloadRefused``) changes nothing and is reported, not raised.
    """
    base, base_version = engine.rules, engine.version
    managed = list(_managed(engine))
    before = {pid: _view(engine, symbol, pid) for symbol, pid in managed}
    refused = None
    try:
        engine.reload(proposed)
    except ReloadRefused as exc:
        refused = str(exc)
    after = before if refused is not None else {pid: _view(engine, symbol, pid) for symbol, pid in managed}
    positions = []
    for symbol, pid in managed:
        p = engine.book.positions[pid]
        why = None
        if refused is not None and p.strategy_type not in proposed.strategies:
            why = f"strategy {p.strategy_type!r} is removed while this position is open"
        positions.append(PositionReload(pid, p.strategy_type, symbol, p.side, p.entry, p.volume0, p.volume,
                                        before[pid], after[pid], why))
    return ReloadEffects(base_version, proposed.version, tuple(positions), refused,
                         _new_defaults(base, proposed, {p.strategy for p in positions}))
