"""What happened at the broker outside the engine: its fills, its closes, and its view of the open positions.

Three events carry it (``engine.events``), each booked here for ``Engine.process``:

fill
    a close at the broker: of an action the engine emitted (``action_id``: the engine already took the
    volume off its kernel), or one it did not ask for (a trader, the broker's SL/TP, a stop-out). A fill
    that names its ``deal_id`` is booked at most once per deal: the deal ids booked are kept with the
    position's fills (``Position.booked``), so a replay of the broker's history books nothing twice. After
    a close the engine did not ask for, the exit levels whose share that close consumed count as taken
    (``levels.taken_over``, within one lot step: a broker may round a close), so no level closes it again.
position_closed
    the position left the broker at ``price`` (default: the last quote).
broker_positions
    the broker's open positions, sent after the fills of the deals it found. The engine compares them with
    its book; what remains different cannot be explained by a deal (docs/engine.md, "Reconciliation with
    the broker"):

    ``missing``  open in the book, absent at the broker;
    ``volume``   the volumes differ by more than half a lot step;
    ``unknown``  at the broker, not open in the book (opened by hand, or a takeover that was refused);
    ``levels``   the broker-side stop loss or take profit differs from the book's by more than half a tick.

    The broker is the record of what is held: for ``missing``, and for ``volume`` where the broker holds
    less, the book follows the broker at once (the missing volume is booked as closed at the last quote,
    rule ``reconcile``). ``unknown``, ``levels`` and a broker that holds more are reported only, once two
    reports in a row show the same broker figures (one report may predate the engine's last action), and
    once while they last. Volume an engine action closes whose fill has not come back yet (the kernel no
    longer manages it, the book still holds it) is pending, not a difference. Every difference is a
    ``reconcile`` action (rule ``reconcile``, never sent to the broker); the engine never orders anything
    because of one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.actions import Action
from engine.book.positions import Position
from engine.events import BrokerPosition, BrokerPositions, Fill, PositionClosed, PositionOpened
from engine.ports import FillReport
from engine.rules import levels
from engine.rules.decisions import Decision, clean

if TYPE_CHECKING:
    from engine.rules.evaluator import Engine

#: the kinds of difference, in the order a report lists them
KINDS = ("missing", "volume", "unknown", "levels")


@dataclass
class Reconciliation:
    """What an engine remembers of its reconciliations besides its counts: the report-only differences of
    the last report (``seen``) and those of them already reported (``reported``; keys ``kind|position|broker
    figures``), and the result of the last report (``last``, see ``result_json``)."""

    seen: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    last: dict[str, Any] | None = None
    # closes sent to a broker that reports their fills later: action id -> {"rule", "positions": {id: volume}}
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)


CLOSES = ("close", "close_partial", "close_all")


def requested(engine: Engine, action: Action, fills: list[FillReport]) -> None:
    """Remember a close the broker took without a fill (it reports the fill later, as a ``fill`` event naming
    the action): its rule is the rule of that fill, and its volume is in flight (``in_flight``) until then."""
    if action.type not in CLOSES or fills:
        return
    if action.type == "close_all":
        volumes = {str(i["position_id"]): float(i["volume"]) for i in action.params.get("positions", [])}
    elif action.position_id is not None:
        volumes = {action.position_id: float(action.params.get("volume", 0.0))}
    else:
        return
    requests = state(engine).requests
    for key in [k for k, r in requests.items() if not any(_open(engine, pid) for pid in r["positions"])]:
        del requests[key]  # closed meanwhile by a report, a reconciliation or by hand: nothing is in flight for them
    requests[action.id] = {"rule": action.rule, "positions": volumes}


def _open(engine: Engine, position_id: str) -> bool:
    p = engine.book.positions.get(position_id)
    return p is not None and p.is_open


def in_flight(engine: Engine, position_id: str) -> float:
    """The volume of ``position_id`` (lots) that closes sent to the broker are closing, whose fills have not come back."""
    return float(sum(r["positions"].get(position_id, 0.0) for r in state(engine).requests.values()))


def _answered(engine: Engine, e: Fill) -> str | None:
    """The rule of the close ``e`` fills (None when it names no close in flight); the fill's volume leaves the request."""
    requests, aid = state(engine).requests, e.action_id
    r = requests.get(aid) if aid is not None else None
    if r is None or aid is None:
        return None
    left = r["positions"].get(e.position_id, 0.0) - e.volume
    if left > 1e-9:
        r["positions"][e.position_id] = left
    else:
        r["positions"].pop(e.position_id, None)
    if not r["positions"]:
        del requests[aid]
    return str(r["rule"])


def state(engine: Engine) -> Reconciliation:
    """The engine's ``Reconciliation``, made on first use. The differences reported, by kind, are counted in
    the engine's ``counts`` (``reconcile.missing`` …, and ``deals_ignored``), which every snapshot keeps."""
    found: Reconciliation = vars(engine).setdefault("reconciliation", Reconciliation())
    return found


def counts(engine: Engine) -> dict[str, int]:
    """The differences reported by kind (``KINDS``) and the fills of a deal booked already that were ignored
    (``deals_ignored``), since the engine's state began."""
    return {**{kind: engine.counts.get(f"reconcile.{kind}", 0) for kind in KINDS}, "deals_ignored": engine.counts.get("deals_ignored", 0)}


def _count(engine: Engine, key: str) -> None:
    engine.counts[key] = engine.counts.get(key, 0) + 1


def outside(engine: Engine, event: Fill | PositionClosed | BrokerPositions) -> list[Decision]:
    """Book what the broker reports; return the decisions to emit, in order (``reconcile`` actions, and the
    ``lock_profit`` a booked gain leads to)."""
    if isinstance(event, Fill):
        return _fill(engine, event)
    if isinstance(event, PositionClosed):
        return _closed(engine, event)
    return _report(engine, event)


def _fill(engine: Engine, e: Fill) -> list[Decision]:
    p = engine.book.positions.get(e.position_id)
    if p is not None and e.deal_id is not None and p.booked(e.deal_id):  # closed since, or not: a deal is booked once
        _count(engine, "deals_ignored")
        engine.problem(f"fill of deal {e.deal_id!r} of position {p.id!r} ignored: that deal is booked already")
        return []
    if p is None or not p.is_open:
        engine.problem(f"fill for unknown or closed position {e.position_id!r} ignored")
        return []
    volume = min(e.volume, p.volume)
    if e.action_id is None:  # the fill of an engine action: the kernel took the volume off when it emitted the action
        _take_off(engine, p, volume)
    asked = _answered(engine, e)
    rule = e.rule or asked or "broker"  # a pipeline's fill of a stop-loss close (rule not given) is a stop-loss fill
    return _book(engine, p, FillReport(p.id, e.ts, volume, e.price, rule), e.deal_id, derive=e.action_id is None)


def _closed(engine: Engine, e: PositionClosed) -> list[Decision]:
    p = engine.book.positions.get(e.position_id)
    if p is None or not p.is_open:
        engine.problem(f"position_closed for unknown or closed position {e.position_id!r} ignored")
        return []
    price = e.price if e.price is not None else _last_price(engine, p)
    _take_off(engine, p, p.volume)
    return _book(engine, p, FillReport(p.id, e.ts, p.volume, price, "external"), None, derive=False)


def _last_price(engine: Engine, p: Position) -> float:
    """Where ``p`` exits now: the last bid (long) or ask (short), its entry before any quote."""
    bid, ask = engine.quotes.get(p.symbol, (p.entry, p.entry))
    return bid if p.side > 0 else ask


def _take_off(engine: Engine, p: Position, volume: float) -> None:
    """Stop managing ``volume`` of ``p`` in its kernel (all of it when that is what remains)."""
    kernel = engine.kernels.get(p.symbol)
    if kernel is None or p.id not in kernel.ids:
        return
    if volume >= kernel.state(p.id).volume - engine.converter.spec(p.symbol).lots.step / 2:
        kernel.remove(p.id)
    else:
        kernel.reduce(p.id, volume)


def _book(engine: Engine, p: Position, fill: FillReport, deal: str | None, *, derive: bool) -> list[Decision]:
    follow = engine.book_fill(fill, deal)
    if derive and p.is_open:
        _derive_levels(engine, p, fill.ts)
    return [follow] if follow is not None else []


def _derive_levels(engine: Engine, p: Position, ts: int) -> None:
    """Count as taken the exit levels that what closed outside the engine consumed (``levels.taken_over``,
    the rule of a takeover): the volume still managed at or below a level's target, within one lot step."""
    kernel, strategy = engine.kernels.get(p.symbol), engine.rules.strategies.get(p.strategy_type)
    if kernel is None or strategy is None or p.id not in kernel.ids:
        return
    s = kernel.state(p.id)
    e = PositionOpened(ts, p.id, p.symbol, p.strategy_type, p.strategy_name, p.side, s.volume, p.entry, None, None, True, s.volume0)
    derived = levels.taken_over(e, strategy, s.volume0, s.stop, s.take_profit, engine.converter.spec(p.symbol))
    if derived is not None:
        kernel.taken[kernel.ids.index(p.id)] |= derived.taken  # only ever more levels taken, never fewer


# --- the broker's positions ------------------------------------------------------------------------

@dataclass
class _Pass:
    """One report being reconciled: its differences and decisions, in order."""

    e: BrokerPositions
    decisions: list[Decision] = field(default_factory=list)
    differences: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    candidates: set[str] = field(default_factory=set)  # report-only differences seen in this report


def _report(engine: Engine, e: BrokerPositions) -> list[Decision]:
    rec, run = state(engine), _Pass(e)
    at = {bp.position_id: bp for bp in e.positions}
    for p in sorted(engine.book.open_positions(), key=lambda q: q.id):
        _compare(engine, rec, run, p, at.get(p.id))
    for bp in sorted(e.positions, key=lambda q: q.position_id):
        known = engine.book.positions.get(bp.position_id)
        if known is None or not known.is_open:
            status = "never seen" if known is None else known.status.value
            _report_only(engine, rec, run, "unknown", bp.position_id, None, f"{bp.volume!r}", {
                "symbol": bp.symbol, "broker_volume": bp.volume, "book_status": status},
                f"position {bp.position_id} ({bp.volume:g} lots {bp.symbol}) is open at the broker but not in the book "
                f"({status}): reported, not adopted (a takeover is a position_opened with existing: true)")
    rec.seen, rec.reported = run.candidates, rec.reported & run.candidates
    rec.last = {"ts": e.ts, "source": e.source, "broker_positions": len(e.positions), "book_positions": engine.book.n_open,
                "differences": run.differences, "pending": run.pending, "agrees": not run.differences}
    return run.decisions


def _compare(engine: Engine, rec: Reconciliation, run: _Pass, p: Position, bp: BrokerPosition | None) -> None:
    """Reconcile one open position of the book with the broker's (``None``: absent there)."""
    lots = engine.converter.spec(p.symbol).lots
    half = lots.step / 2
    kernel = engine.kernels.get(p.symbol)
    managed = kernel.state(p.id).volume if kernel is not None and p.id in kernel.ids else 0.0  # after the actions in flight
    broker = bp.volume if bp is not None else 0.0
    if broker < managed - half:  # gone at the broker, and no deal explains it: the book follows
        _follow(engine, run, p, lots.nearest(managed - broker), broker)
    elif broker > p.volume + half:
        _report_only(engine, rec, run, "volume", p.id, p.strategy_type, f"{broker!r}", {
            "symbol": p.symbol, "book_volume": p.volume, "broker_volume": broker},
            f"position {p.id} holds {broker:g} lots at the broker, {p.volume:g} in the book: reported; the engine keeps "
            "managing the volume it knows")
    elif broker < p.volume - half:
        run.pending.append({"position_id": p.id, "book_volume": p.volume, "broker_volume": broker,
                            "awaiting_fills": clean(p.volume - broker)})
    if bp is not None and p.is_open:
        _compare_levels(engine, rec, run, p, bp)


def _follow(engine: Engine, run: _Pass, p: Position, volume: float, broker: float) -> None:
    """Book ``volume`` of ``p`` as closed at the last quote (rule ``reconcile``) and report it."""
    kind = "missing" if broker == 0.0 else "volume"
    price, before = _last_price(engine, p), p.volume
    params = {"kind": kind, "symbol": p.symbol, "book_volume": before, "broker_volume": broker, "booked_volume": volume,
              "price": price, "source": run.e.source}
    where = "is not open at the broker" if kind == "missing" else f"holds {broker:g} lots at the broker"
    reason = (f"position {p.id} {where} ({before:g} lots in the book) and no deal explains it: "
              f"{volume:g} lots booked as closed at {price:g}, the last quote")
    _difference(engine, run, (run.e.ts, "reconcile", p.id, p.strategy_type, params, "reconcile", reason), "booked")
    _take_off(engine, p, volume)
    run.decisions += _book(engine, p, FillReport(p.id, run.e.ts, volume, price, "reconcile"), None, derive=True)


def _compare_levels(engine: Engine, rec: Reconciliation, run: _Pass, p: Position, bp: BrokerPosition) -> None:
    half = engine.converter.spec(p.symbol).prices.step / 2
    for what, book, broker in (("stop_loss", p.stop_loss, bp.stop_loss), ("take_profit", p.take_profit, bp.take_profit)):
        if broker is None:  # the report does not tell
            continue
        mine = None if math.isnan(book) else book
        theirs = broker or None  # 0: none at the broker
        if (mine is None and theirs is None) or (mine is not None and theirs is not None and abs(mine - theirs) <= half):
            continue
        _report_only(engine, rec, run, "levels", p.id, p.strategy_type, f"{what}={theirs!r}", {
            "symbol": p.symbol, "level": what, "book": mine, "broker": theirs},
            f"position {p.id}: the broker's {what.replace('_', ' ')} is {theirs if theirs is not None else 'not set'}, "
            f"the book's {mine if mine is not None else 'not set'}: reported")


def _report_only(engine: Engine, rec: Reconciliation, run: _Pass, kind: str, pid: str, strategy: str | None, figures: str,
                 params: dict[str, Any], reason: str) -> None:
    """A difference the engine reports and does not act on: once two reports in a row show it, once while it lasts."""
    key = f"{kind}|{pid}|{figures}"
    run.candidates.add(key)
    if key in rec.reported:
        run.differences.append({"kind": kind, "position_id": pid, **params, "outcome": "reported before"})
        return
    if key not in rec.seen:
        run.differences.append({"kind": kind, "position_id": pid, **params, "outcome": "to confirm"})
        return
    rec.reported.add(key)
    _difference(engine, run, (run.e.ts, "reconcile", pid, strategy, {"kind": kind, **params, "source": run.e.source}, "reconcile",
                           reason), "reported")


def _difference(engine: Engine, run: _Pass, d: Decision, outcome: str) -> None:
    params = d[4]
    _count(engine, f"reconcile.{params['kind']}")
    run.differences.append({"position_id": d[2], **params, "outcome": outcome})
    run.decisions.append(d)


def result_json(engine: Engine) -> dict[str, Any]:
    """The engine's reconciliations for the API: the last report's result (``last``, None before the first),
    ``counts`` (see ``counts``) and the report-only differences reported and still outstanding."""
    rec = state(engine)
    return {"last": rec.last, "counts": counts(engine), "outstanding": sorted(rec.reported)}
