"""What the live dashboard is sent (``GET /api/stream``): small views of one account, and the feed that
pushes them when they change.

The views are pure functions of an ``Engine`` run on its own thread, as ``engine.service.views``; the
feed (``Feed``) polls them at a bounded rate, once per account whatever the number of viewers, and a
viewer is sent only the kinds whose content changed since its last message. Times are epoch
milliseconds unless a name says seconds; money is in the account currency; fractions are fractions.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from engine.book.positions import Position
from engine.rules.evaluator import Engine
from engine.service import views
from engine.service.service import Service
from engine.service.store import Entry, read_back, read_range, text
from engine.service.worker import AccountWorker

#: actions a viewer is sent at once: the newest page when it connects, and at most this many new ones per message
ACTIONS_PAGE = 50
#: equity samples of the ``snapshot_metrics`` job a viewer is sent when it connects (one a second: the last hour)
HISTORY_SAMPLES = 3600
#: the metric snapshots read back to find them (the stream holds every account's, interleaved)
HISTORY_SCAN = 20_000


def summary(engine: Engine) -> dict[str, Any]:
    """The account at a glance: ``equity``, ``unrealized`` PnL, the ``day`` (``views.daily``: start equity,
    PnL, PnL as a fraction, the daily-loss limit as a fraction, breached), ``halted`` (the halts' reasons or
    None), ``open_positions``, ``rules_version`` and the engine's ``events`` count."""
    return {"equity": _num(engine.equity), "unrealized": _num(engine.unrealized()), "day": views.daily(engine),
            "halted": engine.portfolio.halted(engine.version), "open_positions": sum(engine.book.open_count.values()),
            "rules_version": engine.version, "events": engine.counts.get("events", 0)}


def ladder(engine: Engine, p: Position) -> list[dict[str, Any]]:
    """The exit levels of an open position, lowest first: each level's trigger ``price`` on the tick grid,
    ``exit_percentage`` of the original volume, the ``stop_to`` price its ``sl_adjustment`` moves the stop
    to (None without one), ``taken``, and the level's own keys (``profit_target`` or ``r_multiple``)."""
    kernel = engine.kernels.get(p.symbol)
    strategy = engine.rules.strategies.get(p.strategy_type)
    if kernel is None or strategy is None or p.id not in kernel.ids:
        return []
    i, taken = kernel.ids.index(p.id), kernel.state(p.id).taken
    out = []
    for j, level in enumerate(strategy.exit_levels):
        out.append({**{k: v for k, v in level.model_dump().items() if v is not None},
                    "price": _num(float(kernel.thr[i, j])), "stop_to": _num(float(kernel.sl[i, j])), "taken": bool((taken >> j) & 1)})
    return out


def open_positions(engine: Engine) -> list[dict[str, Any]]:
    """The open positions, oldest first: ``views.position`` (stop, target, trailing, PnL) with their ``ladder``."""
    return [{**views.position(engine, p), "ladder": ladder(engine, p)} for p in engine.book.open_positions()]


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


@dataclass
class _Sample:
    at: float = -math.inf  # monotonic seconds
    summary: dict[str, Any] = field(default_factory=dict)
    positions: list[dict[str, Any]] = field(default_factory=list)
    allocations: dict[str, Any] = field(default_factory=dict)
    positions_at: float = -math.inf


@dataclass
class Viewer:
    """One stream's position: the action cursor it has read up to (None before its first message) and
    the last message of each kind it was sent."""

    account: str
    cursor: str | None = None
    sent: dict[str, str] = field(default_factory=dict)


class Feed:
    """The state every viewer of an account is sent, sampled at most every ``period`` seconds (positions
    and allocations every ``slow_period``) whatever the number of viewers; at most ``viewers`` streams
    at once in this process.

    ``poll`` blocks (Redis, and the engine's thread): the stream route runs it through ``anyio.to_thread``
    with ``limiter``, so a viewer holds no thread between two messages and the event loop never waits.
    """

    def __init__(self, service: Service, *, period: float = 0.5, slow_period: float = 1.0, viewers: int = 32) -> None:
        self.service, self.period, self.slow_period, self.viewers = service, period, slow_period, viewers
        self.open = 0  # streams open now (changed on the event loop only)
        self.limiter = anyio.CapacityLimiter(4)
        self._samples: dict[str, _Sample] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()  # guards _locks and _samples

    def poll(self, w: AccountWorker, viewer: Viewer) -> list[tuple[str, str]]:
        """The messages ``viewer`` is due, as ``(event name, JSON text)``: on its first poll the newest page of
        ``actions``, newest first (``reset``: true; ``ids``: each one's stream entry id, the ``cursor`` of
        ``GET /api/actions?order=desc`` for the page after it) and the equity ``history``; then new ``actions``,
        oldest first, and ``summary`` (with ``at``, epoch ms), ``positions``,
        ``allocations``, ``rules`` and ``optimization`` whenever they differ from what it was last sent.
        Raises ``RiskrailError`` when the engine does not answer, ``redis.RedisError`` when Redis does not."""
        s = self.sample(w)  # what can fail is read first; the viewer's position moves only once all was read
        key = self.service.keys.stream(viewer.account, "actions")
        first = viewer.cursor is None
        entries = read_back(self.service.redis, key, count=ACTIONS_PAGE) if first else \
            read_range(self.service.redis, key, f"({viewer.cursor}", count=ACTIONS_PAGE)
        history = self.history(viewer.account) if first else None
        rules = self.rules()
        out: list[tuple[str, str]] = []
        if first or entries:
            out.append(("actions", _actions(entries, reset=first)))
        cursor = text(entries[0 if first else -1][0]) if entries else (viewer.cursor or "0-0")
        sent = dict(viewer.sent)
        optimization = w.last_optimization or {"status": "none yet"}
        for kind, payload in (("summary", s.summary), ("positions", {"positions": s.positions}),
                              ("allocations", {"allocations": s.allocations}), ("rules", rules), ("optimization", optimization)):
            body = dumps(payload)
            if sent.get(kind) != body:
                sent[kind] = body
                out.append((kind, dumps({**payload, "at": int(time.time() * 1000)}) if kind == "summary" else body))
        if history is not None:  # after the first summary: the chart draws the daily limit from it
            out.append(("history", dumps({"samples": history})))
        viewer.cursor, viewer.sent = cursor, sent
        return out

    def sample(self, w: AccountWorker) -> _Sample:
        """The account's latest sample, taken anew when older than ``period`` (from any thread)."""
        with self._lock:
            lock = self._locks.setdefault(w.account, threading.Lock())
            s = self._samples.setdefault(w.account, _Sample())
        with lock:  # one viewer of the account samples, the others read what it took; other accounts do not wait
            now = time.monotonic()
            if now - s.at >= self.period:
                slow = now - s.positions_at >= self.slow_period
                s.summary, positions, allocations = w.call(lambda e: (summary(e), open_positions(e) if slow else None,
                                                                      views.portfolio_summary(e)["allocations"] if slow else None))
                if positions is not None and allocations is not None:
                    s.positions, s.allocations, s.positions_at = positions, allocations, now
                s.at = now
            return s

    def rules(self) -> dict[str, Any]:
        """The rules panel: ``version``, ``loaded_at`` (epoch s), ``last_reload`` (``ReloadResult.to_json``, its
        ``errors`` each with a one-line ``text``; None before the first) and the ``strategies``."""
        version, loaded_at, last = self.service.rules_state()
        return {"version": version, "loaded_at": loaded_at, "last_reload": last.to_json() if last else None,
                "strategies": sorted(self.service.active_rules().strategies)}

    def history(self, account: str) -> list[list[float | None]]:
        """The account's equity and day-start equity from the ``snapshot_metrics`` job, oldest first, as
        ``[epoch ms, equity, day start equity]`` (at most ``HISTORY_SAMPLES``)."""
        out: list[list[float | None]] = []
        for _, f in read_back(self.service.redis, self.service.keys.metrics, count=HISTORY_SCAN):
            try:
                snap = json.loads(f[b"snapshot"])
                if snap.get("account") == account and snap.get("equity") is not None:
                    start = snap.get("day_start_equity")
                    out.append([int(snap["ts"]), float(snap["equity"]), float(start) if start is not None else None])
            except (ValueError, TypeError, KeyError):
                continue  # a snapshot of another shape: the chart does without it
            if len(out) >= HISTORY_SAMPLES:
                break
        out.reverse()
        return out


def _actions(entries: list[Entry], *, reset: bool) -> str:
    return dumps({"reset": reset, "actions": [json.loads(f[b"action"]) for _, f in entries], "ids": [text(i) for i, _ in entries]})


def _clean(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    return x


def dumps(obj: Any) -> str:
    """JSON a browser parses: a NaN or an infinity (no JSON has them) is sent as null."""
    try:
        return json.dumps(obj, allow_nan=False, separators=(",", ":"), default=str)
    except ValueError:
        return json.dumps(_clean(obj), separators=(",", ":"), default=str)
