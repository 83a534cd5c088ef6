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
from engine.events import Event, EventError, Fill, PositionOpened, parse_event, to_json
from engine.rules.chaining import PortfolioRules
from engine.rules.evaluator import Broker, Engine, FillReport
from engine.service import snapshot as snap_codec
from engine.service import views
from engine.service.metrics import Metrics
from engine.service.store import GROUP, Keys, publish, text

log = logging.getLogger("riskrail.worker")

# attributes of an Engine that are not state, or are rebuilt from the rules on restore
_NOT_STATE = ("rules", "portfolio", "broker", "on_problem")


class Runtime(Protocol):
    """What a worker needs from the service."""

    redis: redis.Redis
    keys: Keys
    consumer: str
    metrics: Metrics
    equity0: float
    snapshot_every: int

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
    raw: str
    actions: list[Action] = field(default_factory=list)
    fills: dict[str, list[list]] = field(default_factory=dict)
    error: str | None = None
    seq: int = 0
    job: str | None = None
    result: dict[str, Any] | None = None


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
                self._recover()
                self.ready.set()
                backoff = 0.1
                self._loop()
                break
            except LeaseLost:
                log.warning("account %s: lease lost to another process; stopping this engine", self.account)
                break
            except redis.RedisError as exc:
                self.rt.metrics.redis_errors.inc()
                log.error("account %s: Redis failed (%s); rebuilding from Redis in %.1f s", self.account, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:
                log.exception("account %s: engine failure; rebuilding from Redis", self.account)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        try:
            if self.engine is not None and self.since_snapshot:
                self._snapshot()
        except redis.RedisError:
            pass
        self.stopped.set()
        self.ready.set()
        self._fail_commands(RiskrailError(f"account {self.account}: the engine has stopped"))

    def _loop(self) -> None:
        r = self.rt.redis
        while not self._stop.is_set():
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
        decisions = []
        for entry_id, fields in entries:
            decisions.append(self._decide_one(text(entry_id), fields))
        self._commit(decisions)

    def _decide_one(self, entry_id: str, fields: dict) -> Decision:
        job = text(fields.get(b"job"))
        if job is not None:
            return self._job(entry_id, job)
        raw = text(fields.get(b"event", fields.get("event"))) or ""
        try:
            event = parse_event(json.loads(raw))
        except json.JSONDecodeError as exc:
            return Decision(entry_id, None, raw, error=f"invalid JSON: {exc.msg} at column {exc.colno}")
        except EventError as exc:
            return Decision(entry_id, None, raw, error=str(exc))
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
                if not isinstance(d.event, PositionOpened):
                    continue
                fut = self._waiters.pop(d.event.position_id, None)
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
            reply = r.xautoclaim(self.k_in, GROUP, rt.consumer, min_idle_time=0, start_id=start, count=self.batch)
            start, entries = text(reply[0]), reply[1]
            entries = [e for e in entries if e[1] is not None]
            if entries:
                self._decide(entries)
            if start in ("0-0", None) or not entries:
                break
        self._snapshot()

    def _replay_journal(self) -> int:
        r = self.rt.redis
        n, start = 0, f"({self.journal_id}" if self.journal_id != "0-0" else "-"
        while True:
            entries = r.xrange(self.k_journal, min=start, max="+", count=1000)
            if not entries:
                return n
            for entry_id, fields in entries:
                rec = json.loads(fields[b"record"])
                self.journal_id = text(entry_id)
                start = f"({self.journal_id}"
                if rec["kind"] == "job" and rec.get("targets"):
                    self.engine.targets = dict(rec["targets"])
                if rec["kind"] == "reload":
                    self.engine.reload(self.rt.rules_for(rec["version"]))
                elif rec["kind"] == "event":
                    if rec["version"] != self.engine.version:
                        self.engine.reload(self.rt.rules_for(rec["version"]))
                    self._recording.replay = rec.get("fills", {})
                    try:
                        actions = self.engine.process(parse_event(rec["event"]), seq=rec["seq"])
                    finally:
                        self._recording.replay = None
                    self.seq = rec["seq"]
                    if [a.id for a in actions] != rec["actions"]:
                        log.error("account %s: replaying journal entry %s gave other actions than journaled; "
                                  "the snapshot or the rules of version %s differ from the original run", self.account, entry_id, rec["version"])
                n += 1

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

