"""One account's engine on its own thread, with Redis as the system of record.

The loop reads input events through the consumer group (``XREADGROUP``), decides them, and commits
each batch in ONE Redis transaction (``MULTI``/``EXEC``, watching the account's lease): the journal
entries (event, actions, broker fills, rules version), the actions, the positions and account state,
and the ``XACK`` of the input entries. So an input entry is acknowledged exactly when its decision is
journaled: after a crash at any moment, an unacknowledged entry was not decided and is decided again;
an acknowledged one is in the journal.

Recovery (start, takeover of an account, Redis restart): the last snapshot of the engine (taken every
``snapshot_every`` events, at every reload and at a clean stop) is loaded with the rules of its
version, the journal entries after it are replayed through the engine with the broker fills they
recorded (nothing is sent to the broker again, no action is emitted again), then the pending input
entries are claimed and decided. Action ids are deterministic (rules version, sequence number,
subject, type, rule, rank), so a replayed decision is checked against the journal and a mismatch is
logged loudly.

Hostile input never stops an account. Every input entry crosses ``engine.events.decode`` (size,
encoding, JSON, field ranges) and what fails is dead-lettered with its reason. An event on which the
engine itself raises is journaled with its error and skipped, live and in journal replay alike, so
recovery never re-raises on a journaled event. A batch whose commit fails for another reason than
Redis is decided again one entry at a time after the rebuild; an entry that still fails
(``POISON_ATTEMPTS`` times, or that was delivered ``MAX_DELIVERIES`` times across processes, e.g. one
that kills the process) is dead-lettered without being decided. ``health()`` says whether the
account is deciding, for ``/readyz``.

Everything that touches the engine runs on this thread: durable-rules' host has no locks. Other
threads (the HTTP API, the scheduler, the reload watcher) ask with ``call(fn)``; ``fn(engine)`` runs
between two batches.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from engine.actions import Action
from engine.config.load import RuleSet
from engine.errors import RiskrailError
from engine.events import MAX_EVENT_BYTES, Event, EventError, Fill, PositionOpened, decode, parse_event, to_json
from engine.rules.chaining import PortfolioRules
from engine.rules.evaluator import Broker, Engine, FillReport
from engine.service import snapshot as snap_codec
from engine.service import views
from engine.service.metrics import Metrics
from engine.service.store import GROUP, Keys, publish, text

log = logging.getLogger("riskrail.worker")

# attributes of an Engine that are not state, or are rebuilt from the rules on restore
_NOT_STATE = ("rules", "portfolio", "broker", "on_problem")

#: an entry whose decision failed this many times on its own (not counting Redis failures) is dead-lettered
POISON_ATTEMPTS = 2
#: an entry delivered this many times (by any process: e.g. one whose decision killed the process) is
#: dead-lettered; from its second claim on, pending entries are claimed one at a time, so entries
#: queued behind a poison one are not counted with it
MAX_DELIVERIES = 10
#: an account whose loop has not come round for this long while input waits is reported stalled
STALL_AFTER_S = 30.0
#: how much of a refused entry's raw text the dead-letter stream keeps
DEAD_RAW_BYTES = MAX_EVENT_BYTES


class Runtime(Protocol):
    """What a worker needs from the service."""

    redis: redis.Redis
    keys: Keys
    consumer: str
    metrics: Metrics
    equity0: float
    snapshot_every: int
    allow_takeover: bool

    def rules_for(self, version: str) -> RuleSet: ...

    def active_rules(self) -> RuleSet: ...

    def broker_for(self, account: str) -> Broker | None: ...


class _Recording:
    """Wraps the broker: records the fills it reports per action, or replays recorded ones."""

    def __init__(self, broker: Broker | None) -> None:
        self.broker = broker
        self.replay: dict[str, list[list]] | None = None
        self.fills: dict[str, list[list]] = {}

    def execute(self, action: Action, quotes: dict[str, tuple[float, float]]) -> list[FillReport]:
        if self.replay is not None:
            return [FillReport(*f) for f in self.replay.get(action.id, [])]
        if self.broker is None:
            return []
        out = self.broker.execute(action, quotes)
        if out:
            self.fills[action.id] = [[f.position_id, f.ts, f.volume, f.price, f.rule] for f in out]
        return out


@dataclass
class Decision:
    entry_id: str
    event: Event | None
    raw: str | bytes
    actions: list[Action] = field(default_factory=list)
    fills: dict[str, list[list]] = field(default_factory=dict)
    error: str | None = None
    seq: int = 0
    job: str | None = None
    result: dict[str, Any] | None = None
    subject: str | None = None  # the position a refused proposal named (its waiter is told)


class LeaseLost(RiskrailError):
    """Another process owns this account now."""


class AccountWorker:
    """Runs the engine of one account; ``start()``, ``call(fn)``, ``stop()``."""

    def __init__(self, rt: Runtime, account: str, *, batch: int = 256, block_ms: int = 1000) -> None:
        self.rt, self.account, self.batch, self.block_ms = rt, account, batch, block_ms
        k = rt.keys
        self.k_in, self.k_actions, self.k_journal = k.stream(account, "in"), k.stream(account, "actions"), k.stream(account, "journal")
        self.k_dead, self.k_positions, self.k_state = k.stream(account, "dead"), k.stream(account, "positions"), k.stream(account, "state")
        self.k_snapshot, self.k_lease = k.stream(account, "snapshot"), k.lease(account)
        # an entry here interrupts the blocking read so a command runs at once (Redis 6 checks the
        # timeouts of blocked clients only ten times a second)
        self.k_wake = k.stream(account, "wake")
        self.engine: Engine | None = None
        self.seq = 0
        self.journal_id = "0-0"
        self.since_snapshot = 0
        self.problems: list[str] = []
        self._logged: dict[str, float] = {}
        self.ready = threading.Event()
        self.stopped = threading.Event()
        self._stop = threading.Event()
        self._commands: queue.Queue[tuple[Callable[[Engine], Any], Future]] = queue.Queue()
        self._waiters: dict[str, Future] = {}
        self._waiters_lock = threading.Lock()
        self._recording = _Recording(None)
        self.last_optimization: dict[str, Any] | None = None
        # health: what the loop is doing, for /readyz
        self.state = "recovering"
        self.failures = 0
        self.reason: str | None = None
        self.last_decision: float | None = None  # wall time (epoch s) of the last committed batch
        self._beat = time.monotonic()  # the loop's last round
        # entries whose decision failed (entry id -> failures): decided alone after the rebuild, then dead-lettered
        self._suspects: dict[str, int] = {}
        self._in_flight: list[str] = []
        self.thread = threading.Thread(target=self._main, name=f"engine-{account}", daemon=True)

    # --- control ---------------------------------------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the batch in hand, snapshot, and stop."""
        self._stop.set()
        self._wake()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    def call(self, fn: Callable[[Engine], Any], timeout: float = 10.0) -> Any:
        """Run ``fn(engine)`` on the engine thread between two batches; return its result."""
        if threading.current_thread() is self.thread:
            return fn(self.engine)
        if not self.ready.wait(timeout):
            raise RiskrailError(f"account {self.account}: the engine is not ready (still recovering?)")
        if self.stopped.is_set():
            raise RiskrailError(f"account {self.account}: the engine has stopped")
        fut: Future = Future()
        self._commands.put((fn, fut))
        self._wake()
        return fut.result(timeout)

    def _wake(self) -> None:
        try:
            self.rt.redis.xadd(self.k_wake, {"w": "1"}, maxlen=16, approximate=False)
        except redis.RedisError:
            pass  # the loop notices Redis is away on its own

    def health(self) -> dict[str, Any]:
        """Whether this account is deciding, for ``/readyz`` and metrics (any thread).

        Keys: ``account``; ``state``: ``recovering``, ``deciding``, ``stalled`` (failing and rebuilding,
        or its loop has not come round for ``STALL_AFTER_S`` while input waits) or ``stopped``; ``lag``:
        input entries not yet acknowledged (None when Redis does not answer); ``last_decision_age_s``;
        ``failures`` since the last good commit; ``rules_version``; ``reason`` when not deciding.
        """
        lag = self._lag()
        state, reason = self.state, self.reason
        if self.stopped.is_set() or not self.thread.is_alive() and self.thread.ident is not None:
            state, reason = "stopped", reason or "the engine thread has stopped"
        elif state == "deciding" and lag and time.monotonic() - self._beat > STALL_AFTER_S:
            state, reason = "stalled", f"the engine has not come back for {time.monotonic() - self._beat:.0f} s while {lag} input entries wait"
        engine = self.engine
        return {"account": self.account, "state": state, "lag": lag,
                "last_decision_age_s": None if self.last_decision is None else round(max(time.time() - self.last_decision, 0.0), 3),
                "failures": self.failures, "rules_version": engine.version if engine is not None else None, "reason": reason}

    def _lag(self) -> int | None:
        """Input entries not acknowledged yet: pending in the group plus not yet delivered (counted up to 10 000)."""
        r = self.rt.redis
        try:
            groups = r.xinfo_groups(self.k_in)
        except redis.ResponseError:
            return 0  # no stream yet: nothing waits
        except redis.RedisError:
            return None
        for g in groups:
            if text(g["name"]) == GROUP:
                last = text(g["last-delivered-id"])
                try:
                    later = len(r.xrange(self.k_in, min=f"({last}", max="+", count=10_000))
                except redis.RedisError:
                    return None
                return int(g["pending"]) + later
        return 0

    def expect_position(self, position_id: str) -> Future:
        """A future that resolves to the ``Decision`` on the proposal of ``position_id`` once it is committed.

        Register it before publishing the proposal.
        """
        fut: Future = Future()
        with self._waiters_lock:
            self._waiters[position_id] = fut
        return fut

    # --- the loop --------------------------------------------------------------------------------

    def _main(self) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                self.state = "recovering"
                self._recover()
                self.ready.set()
                backoff = 0.1
                self.state, self.reason = "deciding", None
                self._loop()
                break
            except LeaseLost:
                log.warning("account %s: lease lost to another process; stopping this engine", self.account)
                self.reason = "its lease was taken by another process"
                break
            except redis.RedisError as exc:
                self.rt.metrics.redis_errors.inc()
                self._failed(f"Redis failed ({exc})")
                log.error("account %s: Redis failed (%s); rebuilding from Redis in %.1f s", self.account, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                # the entries in hand are suspects: after the rebuild they are decided one at a time, and
                # one that fails on its own again is dead-lettered (it cannot stall the account)
                for entry_id in self._in_flight:
                    self._suspects[entry_id] = self._suspects.get(entry_id, 0) + (1 if len(self._in_flight) == 1 else 0)
                self._failed(f"engine failure ({type(exc).__name__}: {exc})")
                log.exception("account %s: engine failure; rebuilding from Redis", self.account)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self._in_flight = []
        try:
            if self.engine is not None and self.since_snapshot:
                self._snapshot()
        except redis.RedisError:
            pass
        self.state = "stopped"
        self.stopped.set()
        self.ready.set()
        self._fail_commands(RiskrailError(f"account {self.account}: the engine has stopped"))

    def _failed(self, why: str) -> None:
        self.failures += 1
        self.state, self.reason = "stalled", why

    def _loop(self) -> None:
        r = self.rt.redis
        while not self._stop.is_set():
            self._beat = time.monotonic()
            self._run_commands()
            self._poll_broker()
            reply = r.xreadgroup(GROUP, self.rt.consumer, {self.k_in: ">", self.k_wake: ">"}, count=self.batch, block=self.block_ms)
            for stream, entries in reply or []:
                if text(stream) == self.k_wake:
                    r.xack(self.k_wake, GROUP, *[e[0] for e in entries])
                elif entries:
                    self._decide(entries)

    def _poll_broker(self) -> None:
        """An asynchronous broker's late fills become input events, so they are journaled and replayed."""
        poll = getattr(self._recording.broker, "poll", None)
        if poll is None:
            return
        try:
            fills = poll()
        except RiskrailError as exc:
            log.error("account %s: the broker failed: %s; retrying", self.account, exc)
            return
        for f in fills:
            self.publish(to_json(Fill(f.ts, f.position_id, f.volume, f.price, f.rule, f.action_id)))

    def _queued_commands(self):
        """The commands waiting now, each once, skipping those whose caller gave up."""
        while True:
            try:
                fn, fut = self._commands.get_nowait()
            except queue.Empty:
                return
            if fut.set_running_or_notify_cancel():
                yield fn, fut

    def _run_commands(self) -> None:
        for fn, fut in self._queued_commands():
            try:
                fut.set_result(fn(self.engine))
            except BaseException as exc:  # handed to the caller
                fut.set_exception(exc)

    def _fail_commands(self, exc: Exception) -> None:
        for _, fut in self._queued_commands():
            fut.set_exception(exc)

    # --- deciding --------------------------------------------------------------------------------

    def _decide(self, entries: list) -> None:
        suspects = [e for e in entries if text(e[0]) in self._suspects]
        if suspects and len(entries) > 1:  # after a failed batch: one at a time, so a poison entry fails alone
            for entry in entries:
                self._decide([entry])
            return
        self._in_flight = [text(entry_id) for entry_id, _ in entries]
        decisions = []
        for entry_id, fields in entries:
            entry_id = text(entry_id)
            if self._suspects.get(entry_id, 0) >= POISON_ATTEMPTS:
                decisions.append(self._refuse(entry_id, fields, f"the engine failed {self._suspects[entry_id]} times on this entry; "
                                              "dead-lettered so the account keeps deciding (see the process log)"))
            else:
                decisions.append(self._decide_one(entry_id, fields))
        self._commit(decisions)
        self._in_flight = []
        for d in decisions:
            self._suspects.pop(d.entry_id, None)

    def _refuse(self, entry_id: str, fields: dict, reason: str) -> Decision:
        """A decision that dead-letters an entry without deciding it."""
        raw = fields.get(b"event", fields.get("event")) or fields.get(b"job") or b""
        return Decision(entry_id, None, raw[:DEAD_RAW_BYTES] if isinstance(raw, (bytes, str)) else b"", error=reason)

    def _decide_one(self, entry_id: str, fields: dict) -> Decision:
        if b"job" in fields:
            try:
                job = text(fields[b"job"])
            except UnicodeDecodeError:
                return self._refuse(entry_id, fields, "job: expected a job name in UTF-8")
            return self._job(entry_id, job)
        raw = fields.get(b"event", fields.get("event"))
        if raw is None:
            names = ", ".join(sorted(repr(text(k) if isinstance(k, bytes) and k.isascii() else k) for k in fields))[:200]
            return Decision(entry_id, None, b"", error=f"expected the event's JSON in the field 'event', found the fields {names}")
        try:
            event = decode(raw)
        except EventError as exc:
            return Decision(entry_id, None, raw[:DEAD_RAW_BYTES], error=str(exc))
        if isinstance(event, PositionOpened) and event.existing:
            refused = self._takeover_refused(event)
            if refused:
                return Decision(entry_id, None, raw, error=refused, subject=event.position_id)
        self.seq += 1
        self._recording.fills = {}
        start = time.perf_counter()
        try:
            actions = self.engine.process(event, seq=self.seq)
        except RiskrailError as exc:
            log.error("account %s: event %s failed: %s", self.account, entry_id, exc)
            return Decision(entry_id, event, raw, error=f"the engine failed on this event: {exc}", seq=self.seq)
        except Exception as exc:  # a bug: journal it and go on (a replay meets it at the same point)
            log.exception("account %s: internal error on event %s", self.account, entry_id)
            return Decision(entry_id, event, raw, error=f"internal error on this event: {type(exc).__name__}: {exc}", seq=self.seq)
        self.rt.metrics.processing.observe(time.perf_counter() - start)
        return Decision(entry_id, event, raw, actions, dict(self._recording.fills), seq=self.seq)

    def _takeover_refused(self, event: PositionOpened) -> str | None:
        """Why a position taken over (``existing: true``) is refused, or None: taking over skips the
        pre-trade checks, so it needs the service's ``allow_takeover``, and a connected broker that
        knows its positions must hold it with that volume."""
        if not getattr(self.rt, "allow_takeover", False):
            return ("existing: taking over a position without the pre-trade checks is an operator action; "
                    "start the service with --allow-takeover (the MetaTrader 5 feed sets it) or propose the position")
        volume_of = getattr(self._recording.broker, "position_volume", None)
        if volume_of is None:
            return None
        try:
            at_broker = volume_of(event.position_id)
        except RiskrailError as exc:
            return f"existing: the broker could not confirm position {event.position_id!r} ({exc})"
        if at_broker is None:
            return f"existing: the broker has no open position {event.position_id!r}"
        if abs(at_broker - event.volume) > 1e-9 * max(1.0, at_broker):
            return f"existing: volume {event.volume} differs from the {at_broker} lots open at the broker"
        return None

    def _job(self, entry_id: str, job: str) -> Decision:
        """A scheduled job addressed to this account (see engine.service.scheduler)."""
        if job != "optimize_portfolio":
            return Decision(entry_id, None, json.dumps({"job": job}), error=f"unknown job {job!r}")
        from engine.errors import OptimizationError
        from engine.service.optimizer import apply, optimize

        d = Decision(entry_id, None, json.dumps({"job": job}), job=job)
        ts = self.engine._last_ts or int(entry_id.split("-")[0])
        try:
            result = optimize(self.engine, ts)
        except OptimizationError as exc:
            self.rt.metrics.optimizations.labels(result="failed").inc()
            self.rt.metrics.jobs.labels(job=job, result="failed").inc()
            result = {"ts": ts, "rules_version": self.engine.version, "error": str(exc)}
            log.warning("account %s: optimizer: %s", self.account, exc)
        else:
            self.rt.metrics.optimizations.labels(result="ok").inc()
            self.rt.metrics.jobs.labels(job=job, result="ok").inc()
            if result["auto_apply"]:
                d.actions = apply(self.engine, result, self.seq, entry_id)
        result["account"] = self.account
        self.last_optimization = result if "error" not in result or self.last_optimization is None else {**self.last_optimization, "last_error": result["error"]}
        d.result = result
        return d

    def _queue(self, pipe, decisions: list[Decision]) -> tuple[list[int], set[str]]:
        """Queue a batch's writes in the transaction; return where the journal entries are among the
        replies, and the positions touched."""
        engine = self.engine
        touched: set[str] = set()
        journal_at: list[int] = []
        for d in decisions:
            if d.job is not None:
                journal_at.append(len(pipe.command_stack))
                pipe.xadd(self.k_journal, {"record": json.dumps({"kind": "job", "entry": d.entry_id, "job": d.job,
                                                                 "actions": [a.id for a in d.actions],
                                                                 "targets": d.result.get("targets") if d.result.get("applied") else None}, allow_nan=False)})
                pipe.xadd(self.rt.keys.optimizations, {"result": json.dumps(d.result, allow_nan=False)}, maxlen=10_000, approximate=True)
                for a in d.actions:
                    pipe.xadd(self.k_actions, {"action": a.to_line()}, maxlen=1_000_000, approximate=True)
                continue
            if d.event is None or (d.error and not d.actions):
                pipe.xadd(self.k_dead, {"entry": d.entry_id, "event": d.raw, "reason": d.error or ""}, maxlen=100_000, approximate=True)
            if d.event is None:
                record: dict[str, Any] = {"kind": "refused", "entry": d.entry_id, "reason": d.error}
            else:
                record = {"kind": "event", "entry": d.entry_id, "seq": d.seq, "version": engine.version, "event": to_json(d.event),
                          "actions": [a.id for a in d.actions], "fills": d.fills}
                if d.error:
                    record["error"] = d.error
            journal_at.append(len(pipe.command_stack))
            pipe.xadd(self.k_journal, {"record": json.dumps(record, allow_nan=False)}, maxlen=5_000_000, approximate=True)
            for a in d.actions:
                pipe.xadd(self.k_actions, {"action": a.to_line()}, maxlen=1_000_000, approximate=True)
                if a.position_id:
                    touched.add(a.position_id)
                for item in a.params.get("positions", []) if a.type == "close_all" else []:
                    touched.add(item["position_id"])
            pid = getattr(d.event, "position_id", None)
            if pid:
                touched.add(pid)
        for pid in touched:
            p = engine.book.positions.get(pid)
            if p is not None:
                pipe.hset(self.k_positions, pid, json.dumps(views.record(p, audit=True), allow_nan=False))
        pipe.hset(self.k_state, mapping=self._state_record())
        pipe.xack(self.k_in, GROUP, *[d.entry_id for d in decisions])
        return journal_at, touched

    def _commit(self, decisions: list[Decision]) -> None:
        r, m = self.rt.redis, self.rt.metrics
        engine = self.engine
        for _ in range(10):
            with r.pipeline(transaction=True) as pipe:
                pipe.watch(self.k_lease)
                if text(pipe.get(self.k_lease)) != self.rt.consumer:
                    raise LeaseLost(self.account)
                pipe.multi()
                journal_at, _ = self._queue(pipe, decisions)
                try:
                    results = pipe.execute()
                    break
                except redis.WatchError:
                    continue  # the lease was renewed (or taken) between WATCH and EXEC: nothing applied, check again
        else:
            raise LeaseLost(self.account)
        if journal_at:
            self.journal_id = text(results[journal_at[-1]])
        self.last_decision, self.failures = time.time(), 0
        now_ms = time.time() * 1000
        for d in decisions:
            if d.job is not None:
                for a in d.actions:
                    m.actions.labels(type=a.type).inc()
                    m.rebalancing.inc()
            elif d.event is None:
                m.dead_letters.inc()
                log.warning("account %s: input %s refused: %s", self.account, d.entry_id, d.error)
            else:
                m.risk_events.labels(type=_kind(d.event)).inc()
                if d.actions:
                    m.tick_to_action.observe(max(now_ms - int(d.entry_id.split("-")[0]), 0) / 1000)
                for a in d.actions:
                    m.actions.labels(type=a.type).inc()
                    if a.type == "rebalance":
                        m.rebalancing.inc()
        m.positions_managed.labels(account=self.account).set(engine.book.n_open)
        self.since_snapshot += len(decisions)
        if self.since_snapshot >= self.rt.snapshot_every:
            self._snapshot()
        with self._waiters_lock:
            for d in decisions:
                pid = d.event.position_id if isinstance(d.event, PositionOpened) else d.subject
                if pid is None:
                    continue
                fut = self._waiters.pop(pid, None)
                if fut is not None and fut.set_running_or_notify_cancel():
                    fut.set_result(d)

    def _state_record(self) -> dict[str, str]:
        e = self.engine
        return {
            "rules_version": e.version, "seq": str(self.seq), "equity": repr(e.equity), "day": e.day.key,
            "day_start_equity": repr(e.day.start_equity), "breached": "1" if e.day.breached else "0",
            "halted": e.portfolio.halted(e.version) or "", "open_positions": str(e.book.n_open),
            "ledgers": json.dumps({n: vars(ledger) for n, ledger in e.ledgers.items()}),
        }

    # --- snapshots and recovery --------------------------------------------------------------------

    def _snapshot(self) -> None:
        e = self.engine
        state = {k: v for k, v in e.__dict__.items() if k not in _NOT_STATE}
        blob = snap_codec.dumps({"engine": state, "facts": e.portfolio.facts(e.version)})
        self.rt.redis.hset(self.k_snapshot, mapping={"engine": blob, "journal": self.journal_id, "seq": str(self.seq), "version": e.version})
        self.since_snapshot = 0

    def _new_engine(self, rules: RuleSet) -> Engine:
        return Engine(rules, equity0=self.rt.equity0, broker=self._recording, portfolio=self._portfolio, on_problem=self._problem)

    def _problem(self, message: str) -> None:
        """A problem the engine reports (unknown symbol, duplicate position, …): logged once a minute
        per distinct message, so a feed of unknown ticks does not flood the log."""
        now = time.monotonic()
        if now - self._logged.get(message, -math.inf) >= 60:
            self._logged[message] = now
            if len(self._logged) > 1000:
                self._logged.clear()
            log.warning("account %s: %s", self.account, message)
        self.problems.append(message)
        del self.problems[:-100]

    def _recover(self) -> None:
        """Rebuild the engine from the snapshot and the journal, then decide the pending input."""
        r, rt = self.rt.redis, self.rt
        rt.metrics.recoveries.inc()
        if not hasattr(self, "_portfolio"):
            self._portfolio = PortfolioRules()  # owned by this thread, for the life of the worker
        for v in self._portfolio.versions:
            self._portfolio.drop(v)
        self._recording = _Recording(rt.broker_for(self.account))
        snap = r.hgetall(self.k_snapshot)
        if snap:
            version = text(snap[b"version"])
            rules = rt.rules_for(version)
            data = snap_codec.loads(snap[b"engine"])
            engine = Engine.__new__(Engine)
            engine.__dict__.update(data["engine"])
            engine.rules, engine.broker, engine.on_problem = rules, self._recording, self._problem
            engine.portfolio = self._portfolio
            engine.version = self._portfolio.load(rules)
            self._portfolio.restore_facts(engine.version, data["facts"])
            self.journal_id, self.seq = text(snap[b"journal"]), int(snap[b"seq"])
        else:
            engine = self._new_engine(rt.active_rules())
            self.journal_id, self.seq = "0-0", 0
        self.engine = engine
        replayed = self._replay_journal()
        if replayed:
            log.info("account %s: replayed %d journal entries after the snapshot", self.account, replayed)
        for key, start in ((self.k_in, "0"), (self.k_wake, "$")):
            try:
                r.xgroup_create(key, GROUP, id=start, mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        if self.engine.version != rt.active_rules().version:
            self._reload(rt.active_rules())
        # entries delivered before (to this or a dead process) but never acknowledged: decide them now
        start = "0-0"
        while True:
            count = self._claim_count()
            reply = r.xautoclaim(self.k_in, GROUP, rt.consumer, min_idle_time=0, start_id=start, count=count)
            start, entries = text(reply[0]), reply[1]
            entries = [e for e in entries if e[1] is not None]
            if entries:
                self._decide(entries)
            if start in ("0-0", None) or not entries:
                break
        self._snapshot()

    def _claim_count(self) -> int:
        """How many pending entries to claim at once: a batch, or one when the oldest was claimed
        before (a decision that may have killed a process), so only that entry's delivery count grows;
        at ``MAX_DELIVERIES`` it is dead-lettered undecided."""
        oldest = self.rt.redis.xpending_range(self.k_in, GROUP, min="-", max="+", count=1)
        if not oldest:
            return self.batch
        entry_id, delivered = text(oldest[0]["message_id"]), int(oldest[0]["times_delivered"])
        if delivered + 1 >= MAX_DELIVERIES:
            self._suspects[entry_id] = POISON_ATTEMPTS
            log.error("account %s: input entry %s was delivered %d times without a decision; dead-lettering it",
                      self.account, entry_id, delivered)
        return 1 if delivered >= 2 else self.batch

    def _replay_journal(self) -> int:
        r = self.rt.redis
        n, start = 0, f"({self.journal_id}" if self.journal_id != "0-0" else "-"
        while True:
            entries = r.xrange(self.k_journal, min=start, max="+", count=1000)
            if not entries:
                return n
            for entry_id, fields in entries:
                self.journal_id = text(entry_id)
                start = f"({self.journal_id}"
                self._replay_one(self.journal_id, fields)
                n += 1

    def _replay_one(self, entry_id: str, fields: dict) -> None:
        """Apply one journal record to the engine as the live run did; never raise on the record itself
        (an event the engine failed on live fails the same way here, and is skipped the same way)."""
        try:
            rec = json.loads(fields[b"record"])
            kind = rec["kind"]
        except (KeyError, TypeError, ValueError) as exc:
            log.error("account %s: journal entry %s is unreadable (%s); skipped", self.account, entry_id, exc)
            return
        if kind == "job" and rec.get("targets"):
            self.engine.targets = dict(rec["targets"])
        if kind == "reload":
            self.engine.reload(self.rt.rules_for(rec["version"]))
        elif kind == "event":
            if rec["version"] != self.engine.version:
                self.engine.reload(self.rt.rules_for(rec["version"]))
            self.seq = rec["seq"]
            try:
                event = parse_event(rec["event"])
            except EventError as exc:
                log.error("account %s: journal entry %s holds an event this version refuses (%s); skipped", self.account, entry_id, exc)
                return
            self._recording.replay = rec.get("fills", {})
            try:
                actions = self.engine.process(event, seq=rec["seq"])
            except Exception as exc:  # as live: journaled with its error, skipped
                if not rec.get("error"):
                    log.error("account %s: replaying journal entry %s failed (%s: %s) where the live run did not",
                              self.account, entry_id, type(exc).__name__, exc)
                return
            finally:
                self._recording.replay = None
            if [a.id for a in actions] != rec["actions"]:
                log.error("account %s: replaying journal entry %s gave other actions than journaled; "
                          "the snapshot or the rules of version %s differ from the original run", self.account, entry_id, rec["version"])

    # --- reloads and jobs (on this thread) ----------------------------------------------------------

    def reload(self, rules: RuleSet) -> str:
        """Swap in new rules between two events (from another thread); return the new version."""
        return self.call(lambda _: self._reload(rules))

    def _reload(self, rules: RuleSet) -> str:
        e = self.engine
        if rules.version == e.version:
            return e.version
        old = e.version
        e.reload(rules)
        rec = {"kind": "reload", "version": e.version, "previous": old, "seq": self.seq}
        entry = self.rt.redis.xadd(self.k_journal, {"record": json.dumps(rec)})
        self.journal_id = text(entry)
        self.rt.redis.hset(self.k_state, "rules_version", e.version)
        self._snapshot()
        log.info("account %s: rules %s -> %s", self.account, old, e.version)
        return e.version

    def publish(self, event: dict[str, Any]) -> str:
        """Append an input event for this account; return its entry id (any thread)."""
        return publish(self.rt.redis, self.rt.keys, self.account, event)


def _kind(event: Event) -> str:
    return {"Tick": "tick", "PositionOpened": "position_opened", "PositionClosed": "position_closed",
            "Fill": "fill", "Clock": "clock"}[type(event).__name__]

