"""An engine's state as a declared, versioned record of plain data: what snapshots hold, never a pickle.

``record(engine)`` gives a dict of JSON types only; ``dumps``/``loads`` turn it into bytes and back
(strict JSON: a price that is not a number, e.g. no stop, is ``null``; infinities are ``"inf"`` and
``"-inf"``); ``restore(engine, record)`` puts a record into an engine just built from the rules of the
record's version. Reading a record runs no code of the record's choosing: it is parsed as JSON and
every field is read by name into the engine's own types, so a snapshot in a shared Redis can at worst
be wrong, never execute anything.

The record, version 1 (``FORMAT``; every price in the symbol's quote currency, every volume in lots,
every amount in the account currency, every time in epoch ms)::

    format, version            "riskrail.engine-state", 1
    seq, equity0, last_ts      the last event's sequence number, the starting equity, the last quote's time
    counts, targets            event counters; allocation targets the last rebalance applied
    capital                    {"base": {strategy: amount given}, "mark": {strategy: its PnL then}, "ts"}: the
                               capital base of the last rebalance (engine.book.capital); a record without
                               it (written before capital moved) restores with none: configured targets
    week, outside              the trading week (key, start equity, reached, reached_ts; absent: the week
                               starts at the next event), the strategies alerted outside their bands
    positions                  every position the book holds (open and closed), with fills and audit trail
    realized                   {"total": amount, "by_strategy": {name: amount}}
    managed                    {symbol: {"bid", "ask", "last_ts", "positions": [managed state, in the
                               kernel's order], "removed_time_in_profit": {id: ms}}}
                               managed state: id, strategy, side, entry, volume0, volume, stop,
                               take_profit, best, risk, armed, trailed, opened, time_in_profit,
                               in_profit, levels_taken (the keys of the exit levels taken, ExitLevel.key:
                               kept by identity, so a record restores under rules whose levels moved)
    volatility                 {symbol: {"horizons", "buffers", "sums"}}: per volatility horizon
                               ([measure, bar ms, window]; bar ms 0: a bar per quote), its ring of
                               true ranges or returns, and its rows (engine.rules.volatility: sums,
                               the forming bar, the last close). A record written before horizons
                               holds "windows" (tick windows) instead: restored without them, the
                               volatility is rebuilt from the next quotes (its bars fill again, and the
                               dynamic stops wait for window + 1 closed bars, as after a start)
    bars, quotes               {symbol: [[bar, close mid], ...]}, {symbol: [bid, ask]}
    day, peak_equity, resets   the trading day (key, start equity, breached), the equity peak, the next
                               daily and weekly reset times
    ledgers                    {strategy: profit-locking buckets}
    curve, strategy_curves     the sampled equity curves
    custom_posted              [[rule, position id], ...]: custom-rule decisions already latched
    reconciliation             {"seen", "reported": [difference key, ...], "last": the last report's
                               result, "requests": {action id: {"rule", "positions": {id: lots}}}: closes
                               sent whose fills have not come back}: what reconciliation with the broker
                               remembers (engine.rules.reconcile)
    custom_closes              [[ts, strategy, symbol, stop-out, return], ...]: the closes of the last
                               24 h the windowed counters read (engine.rules.counters); a record
                               without it (written before the counters) restores with none
    custom_closing             [position id, ...]: positions closed since the last custom-rule post,
                               not counted yet
    trading_states             {"states": [{scope, name, state, reason, by, at}, ...], "seen": {halt: ms}}:
                               the operators' trading states and when each rule's halt began
                               (engine.rules.trading_state); a record without it restores all ACTIVE

What the rules determine (strategy parameters, grids, strategy codes, the open PnL) is not recorded:
``restore`` rebuilds it from the rules and revalues every symbol at its last quote. A record of a
later version, or not a record at all, raises ``StateError``; ``tests/data/state/`` keeps a record
of each released version, which every later release must restore.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.book.capital import Capital
from engine.book.ledgers import Day, Ledger, Week
from engine.book.positions import AuditEntry, Fill, Position, Status
from engine.errors import RiskrailError
from engine.rules import reconcile
from engine.rules.checks import Bars, timeframe_ms
from engine.rules.counters import Closes
from engine.rules.levels import PositionState
from engine.rules.trading_state import TradingStates
from engine.rules.volatility import Horizon, Volatility

if TYPE_CHECKING:
    from engine.rules.evaluator import Engine

FORMAT = "riskrail.engine-state"
VERSION = 1
Json = dict[str, Any]


class StateError(RiskrailError):
    """A blob is not an engine-state record this release can read (another format, a later version, bad data)."""


# --- numbers: strict JSON has no nan or infinities ------------------------------------------------

def _num(x: float) -> float | str | None:
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _float(v: Any) -> float:
    if v is None:
        return math.nan
    if v in ("inf", "-inf"):
        return math.inf if v == "inf" else -math.inf
    return float(v)


def _nums(values: Any) -> list[Any]:
    return [_nums(v) if isinstance(v, list) else _num(v) for v in np.asarray(values, dtype=np.float64).tolist()]


def _array(values: list[Any]) -> np.ndarray:
    def walk(v: Any) -> Any:
        return [walk(x) for x in v] if isinstance(v, list) else _float(v)
    return np.array(walk(values), dtype=np.float64)


def _fields(obj: Any) -> Json:
    """A dataclass's fields as JSON values (float fields through ``_num``)."""
    return {f.name: _num(getattr(obj, f.name)) if f.type == "float" else getattr(obj, f.name) for f in dataclasses.fields(obj)}


def _build(cls: type, data: Json) -> Any:
    """A dataclass from ``_fields`` output; fields the record lacks take their defaults, unknown keys are errors."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise StateError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    return cls(**{k: _float(v) if known[k].type == "float" else v for k, v in data.items()})


# --- the record -------------------------------------------------------------------------------------

def _position(p: Position) -> Json:
    out = _fields(p)
    out["status"] = p.status.value
    out["fills"] = [_fields(f) for f in p.fills]
    out["audit"] = [_fields(a) for a in p.audit]
    return out


def _managed(engine: Engine, s: PositionState) -> Json:
    keys = engine.params[s.strategy].level_keys if s.strategy in engine.params else ()
    taken = sorted({key for j, key in enumerate(keys) if (s.taken >> j) & 1} | set(s.taken_keys))
    return {"id": s.position_id, "strategy": s.strategy, "side": s.side, "entry": _num(s.entry), "volume0": _num(s.volume0),
            "volume": _num(s.volume), "stop": _num(s.stop), "take_profit": _num(s.take_profit), "best": _num(s.best),
            "risk": _num(s.risk), "armed": s.armed, "trailed": s.trailed, "opened": s.opened,
            "time_in_profit": s.time_in_profit, "in_profit": s.in_profit, "levels_taken": taken}


def record(engine: Engine) -> Json:
    """The engine's state as plain data (see the module docstring for the layout)."""
    managed = {}
    for symbol, k in engine.kernels.items():
        managed[symbol] = {"bid": _num(k.bid), "ask": _num(k.ask), "last_ts": k.last_ts,
                           "positions": [_managed(engine, k.state(pid)) for pid in k.ids],
                           "removed_time_in_profit": dict(k.removed_time_in_profit)}
    book = engine.book
    return {
        "format": FORMAT, "version": VERSION,
        "seq": engine.seq, "equity0": engine.equity0, "last_ts": engine.last_ts, "counts": dict(engine.counts),
        "targets": dict(engine.capital.targets),
        "capital": {"base": dict(engine.capital.base), "mark": dict(engine.capital.mark), "ts": engine.capital.ts},
        "week": _fields(engine.week), "outside": sorted(engine.outside),
        "positions": [_position(p) for p in book.positions.values()],
        "realized": {"total": book.realized_total, "by_strategy": dict(book.realized_by)},
        "managed": managed,
        "volatility": {s: _volatility(v) for s, v in engine.vols.items()},
        "bars": {s: [[bar, mid] for bar, mid in b.closes] for s, b in engine.bars.items()},
        "quotes": {s: [_num(bid), _num(ask)] for s, (bid, ask) in engine.quotes.items()},
        "day": _fields(engine.day), "peak_equity": engine.peak_equity,
        "resets": {"next_daily": engine.resets.next_daily, "next_weekly": engine.resets.next_weekly},
        "ledgers": {name: _fields(ledger) for name, ledger in engine.ledgers.items()},
        "curve": [[ts, eq] for ts, eq in engine.curve],
        "strategy_curves": {name: list(c) for name, c in engine.strategy_curves.items()},
        "custom_posted": sorted([rule, pid] for rule, pid in engine.custom.posted),
        "custom_closes": engine.custom.closes.record(), "custom_closing": list(engine.custom.closing),
        "reconciliation": _reconciliation(reconcile.state(engine)),
        "trading_states": engine.states.record(),
    }


def _reconciliation(r: reconcile.Reconciliation) -> Json:
    return {"seen": sorted(r.seen), "reported": sorted(r.reported), "last": r.last, "requests": r.requests}


def dumps(rec: Json) -> bytes:
    """The record as compact strict JSON (UTF-8)."""
    return json.dumps(rec, separators=(",", ":"), allow_nan=False).encode()


def loads(blob: bytes | str) -> Json:
    """Parse a record; raises ``StateError`` when it is not JSON, not an engine-state record, or of a later version."""
    try:
        rec = json.loads(blob)
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateError(f"not an engine-state record: {exc}") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        raise StateError("not an engine-state record (no format field)")
    if not isinstance(rec.get("version"), int) or not 1 <= rec["version"] <= VERSION:
        raise StateError(f"engine-state record version {rec.get('version')!r}; this release reads 1 to {VERSION}")
    return rec


def restore(engine: Engine, rec: Json) -> None:
    """Put ``rec`` into ``engine``, a new engine built from the rules of the record's version.

    Raises ``StateError`` for a record that does not fit (a field of the wrong type, a position of a
    strategy the rules lack); the engine is then unusable and must be rebuilt another way.
    """
    try:
        _restore(engine, rec)
    except StateError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise StateError(f"engine-state record does not fit these rules: {type(exc).__name__}: {exc}") from None


def _restore(engine: Engine, rec: Json) -> None:
    engine.seq, engine.equity0 = int(rec["seq"]), float(rec["equity0"])
    engine.last_ts = rec["last_ts"]
    engine.counts.update(rec["counts"])
    capital = rec.get("capital") or {}  # absent from version 1 records written before capital moved: none moved
    engine.capital = Capital({k: float(v) for k, v in capital.get("base", {}).items()},
                             {k: float(v) for k, v in capital.get("mark", {}).items()},
                             {k: float(v) for k, v in rec["targets"].items()}, capital.get("ts"))
    if "week" in rec:  # else a record written before the weekly ledger: the week starts at the next event
        engine.week = _build(Week, rec["week"])
    engine.outside = set(rec.get("outside", ()))
    _restore_book(engine, rec)
    for symbol, m in rec["managed"].items():
        _restore_kernel(engine, symbol, m)
    for symbol, v in rec["volatility"].items():
        if "horizons" in v:  # else tick windows of an earlier record: the rules' volatility, rebuilt from the next quotes
            rules = engine.vols.get(symbol)  # made with the symbol's kernel above: every horizon the rules need
            engine.vols[symbol] = _restore_volatility(v).including(rules.horizons if rules is not None else ())
    for symbol, closes in rec["bars"].items():
        bars = engine.bars.setdefault(symbol, _new_bars(engine))
        bars.closes = deque(((int(b), float(mid)) for b, mid in closes), maxlen=bars.closes.maxlen)
    engine.quotes = {s: (_float(b), _float(a)) for s, (b, a) in rec["quotes"].items()}
    engine.day = _build(Day, rec["day"])
    engine.peak_equity = float(rec["peak_equity"])
    engine.resets.next_daily, engine.resets.next_weekly = rec["resets"]["next_daily"], rec["resets"]["next_weekly"]
    engine.ledgers.update({name: _build(Ledger, data) for name, data in rec["ledgers"].items()})
    engine.curve = [(int(ts), float(eq)) for ts, eq in rec["curve"]]
    engine.strategy_curves.update({name: [float(x) for x in c] for name, c in rec["strategy_curves"].items()})
    engine.custom.posted = {(rule, pid) for rule, pid in rec["custom_posted"]}
    known = rec.get("reconciliation", {})  # a record written before reconciliation has none
    r = reconcile.state(engine)
    r.seen, r.reported, r.last = set(known.get("seen", ())), set(known.get("reported", ())), known.get("last")
    r.requests = {str(k): {"rule": str(v["rule"]), "positions": {str(p): float(x) for p, x in v["positions"].items()}}
                  for k, v in known.get("requests", {}).items()}
    # derived: the max holding deadlines, and the positions whose close is pending at the broker
    engine.deadlines.rebuild(engine.book.open_positions(), engine.rules.strategies)
    engine.pending = {p.id for p in engine.book.open_positions() if p.id not in engine.kernel(p.symbol).ids}
    engine.custom.closes = Closes.restore(rec.get("custom_closes", []))
    engine.custom.closing = [str(pid) for pid in rec.get("custom_closing", [])]
    engine.states = TradingStates.restore(rec.get("trading_states", {}))
    for symbol in engine.kernels:
        engine.revalue(symbol)


def _volatility(v: Volatility) -> Json:
    return {"horizons": [[h.measure, h.bar_ms, h.window] for h in v.horizons], "buffers": _nums(v.bufs), "sums": _nums(v.S)}


def _restore_volatility(v: Json) -> Volatility:
    vol = Volatility(tuple(Horizon(int(bar_ms), int(window), str(measure)) for measure, bar_ms, window in v["horizons"]))
    vol.bufs[...] = _array(v["buffers"]).reshape(vol.bufs.shape)
    vol.S[...] = _array(v["sums"]).reshape(vol.S.shape)  # in place: value_array is a view of S
    return vol


def _new_bars(engine: Engine) -> Bars:
    lim = engine.rules.limits.max_correlation
    return Bars(timeframe_ms(lim.timeframe), lim.window)


def _restore_book(engine: Engine, rec: Json) -> None:
    book = engine.book
    for data in rec["positions"]:
        data = dict(data)
        fills = [_build(Fill, f) for f in data.pop("fills")]
        audit = [_build(AuditEntry, a) for a in data.pop("audit")]
        status, volume, marked = Status(data.pop("status")), _float(data["volume"]), data.get("last_mark_ts")
        p = _build(Position, data)
        book.positions[p.id] = p
        if status in (Status.OPEN, Status.PARTIALLY_CLOSED):
            book.accept(p.id, 0, p.stop_loss, p.take_profit, "", "")  # counted as open; what accept writes is overwritten below
        # __post_init__ makes a volume of 0 the volume opened: the recorded volume, status and history win
        p.volume, p.status, p.fills, p.audit, p.last_mark_ts = volume, status, fills, audit, marked
    book.realized_total = float(rec["realized"]["total"])
    book.realized_by = {k: float(v) for k, v in rec["realized"]["by_strategy"].items()}


def _restore_kernel(engine: Engine, symbol: str, m: Json) -> None:
    kernel = engine.kernel(symbol)
    for s in m["positions"]:
        keys = engine.params[s["strategy"]].level_keys
        taken = set(s["levels_taken"])
        kernel.restore(PositionState(
            s["id"], s["strategy"], int(s["side"]), _float(s["entry"]), _float(s["volume0"]), _float(s["volume"]),
            _float(s["stop"]), _float(s["take_profit"]), _float(s["best"]), bool(s["armed"]), bool(s["trailed"]),
            sum(1 << j for j, key in enumerate(keys) if key in taken), _float(s["risk"]), frozenset(taken - set(keys)),
            int(s["opened"]), int(s["time_in_profit"]), bool(s["in_profit"])))
    kernel.quoted(_float(m["bid"]), _float(m["ask"]), m["last_ts"])
    kernel.removed_time_in_profit.update({k: int(v) for k, v in m["removed_time_in_profit"].items()})
