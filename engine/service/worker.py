"""One account's engine on its own thread, with Redis as the system of record.

The loop reads input entries through the consumer group (``XREADGROUP``), decides them, and commits
each batch in ONE Redis transaction, so an input entry is acknowledged exactly when its decision is
journaled: after a crash at any moment, an unacknowledged entry was not decided and is decided again;
an acknowledged one is in the journal. The rooms of that path:

    intake.py     an entry -> an event (through the validation boundary), a job, or a refusal
    worker.py     this thread: the loop, commands from other threads, deciding, health
    journal.py    the record of each decision, and the broker wrapper that records or replays fills
    commit.py     the batch's one transaction under the account's lease
    recovery.py   snapshot, then journal replay: start, takeover, Redis restart

Hostile input never stops an account: what fails the boundary is dead-lettered with its reason; an
event on which the engine itself raises is journaled with its error and skipped, live and in journal
replay alike, so recovery never re-raises on a journaled event. A batch whose commit fails for
another reason than Redis is decided again one entry at a time after the rebuild; an entry that
still fails (``POISON_ATTEMPTS`` times, or that was delivered ``MAX_DELIVERIES`` times across
processes, e.g. one that kills the process) is dead-lettered without being decided. ``health()``
says whether the account is deciding, for ``/readyz``.

Everything that touches the engine runs on this thread: durable-rules' host has no locks. Other
threads (the HTTP API, the scheduler, the reload watcher) ask with ``call(fn)``; ``fn(engine)`` runs
between two batches.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

import redis

from engine.config.load import RuleSet
from engine.errors import RiskrailError
from engine.events import Fill, PositionOpened, to_json
from engine.ports import Broker
from engine.rules.chaining import PortfolioRules
from engine.rules.evaluator import Engine
from engine.service import intake, recovery
from engine.service.alerts import AlertSender
from engine.service.commit import AccountKeys, LeaseLost, commit
from engine.service.journal import Decision, Recording, encode, reload_record
from engine.service.lag import input_lag
from engine.service.metrics import Metrics, event_type
from engine.service.store import GROUP, Keys, publish, read_group, text

__all__ = ["AccountWorker", "Decision", "LeaseLost", "Runtime"]

log = logging.getLogger("riskrail.worker")

#: an entry whose decision failed this many times on its own (not counting Redis failures) is dead-lettered
POISON_ATTEMPTS = 2
#: an entry delivered this many times (by any process: e.g. one whose decision killed the process) is
#: dead-lettered; from its second claim on, pending entries are claimed one at a time, so entries
#: queued behind a poison one are not counted with it
MAX_DELIVERIES = 10
#: an account whose loop has not come round for this long while input waits is reported stalled
STALL_AFTER_S = 30.0


class Runtime(Protocol):
    """What a worker needs from the service."""

    redis: redis.Redis
    keys: Keys
    consumer: str
    metrics: Metrics
    equity0: float
    snapshot_every: int
    allow_takeover: bool
    alerts: AlertSender

    def rules_for(self, version: str) -> RuleSet: ...

    def active_rules(self) -> RuleSet: ...

    def broker_for(self, account: str) -> Broker | None: ...


class AccountWorker:
    """Runs the engine of one account; ``start()``, ``call(fn)``, ``stop()``."""

    def __init__(self, rt: Runtime, account: str, *, batch: int = 256, block_ms: int = 1000) -> None:
        self.rt, self.account, self.batch, self.block_ms = rt, account, batch, block_ms
        # k.wake: an entry there interrupts the blocking read so a command runs at once (Redis 6 checks
        # the timeouts of blocked clients only ten times a second)
        self.k = AccountKeys.of(rt.keys, account)
        self.engine: Engine | None = None
        self.at = recovery.Position()  # the journal entry and sequence number the engine stands at
        # _ahead: the engine decided a batch that is not committed (a stale engine: never snapshot it)
        self.since_snapshot, self._ahead = 0, False
        self.problems: list[str] = []
        self._logged: dict[str, float] = {}
        self.ready, self.stopped = threading.Event(), threading.Event()
        self._stop = threading.Event()
        self._commands: queue.Queue[tuple[Callable[[Engine], Any], Future]] = queue.Queue()
        self._waiters: dict[str, Future] = {}
        self._waiters_lock = threading.Lock()
        self._recording = Recording(None)
        self.last_optimization: dict[str, Any] | None = None
        # health: what the loop is doing, for /readyz
        self.state = "recovering"
        self.failures = 0
        self.reason: str | None = None
        self.last_decision: float | None = None  # wall time (epoch s) of the last committed batch
        self._beat = time.monotonic()  # the loop's last round
        # entries whose decision failed (entry id -> failures): decided alone after the rebuild, then dead-lettered
        self._suspects: dict[str, int] = {}
        self.commit_lock = threading.Lock()  # held by each commit and by the service's renewal of this lease
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

    @property
    def _live(self) -> Engine:  # the engine thread's, from the first rebuild on
        assert self.engine is not None, f"account {self.account}: the engine is used before it was rebuilt"
        return self.engine

    def call(self, fn: Callable[[Engine], Any], timeout: float = 10.0) -> Any:
        """Run ``fn(engine)`` on the engine thread between two batches; return its result."""
        if threading.current_thread() is self.thread:
            return fn(self._live)
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
            self.rt.redis.xadd(self.k.wake, {"w": "1"}, maxlen=16, approximate=False)
        except redis.RedisError:
            pass  # the loop notices Redis is away on its own

    def health(self) -> dict[str, Any]:
        """Whether this account is deciding, for ``/readyz`` and metrics (any thread).

        Keys: ``account``; ``state``: ``recovering``, ``deciding``, ``stalled`` (failing and rebuilding,
        or its loop has not come round for ``STALL_AFTER_S`` while input waits) or ``stopped``; ``lag``:
        input entries not yet acknowledged (None when Redis does not answer); ``last_decision_age_s``;
        ``failures`` since the last good commit; ``rules_version``; ``reason`` when not deciding.
        """
        lag = input_lag(self.rt.redis, self.k.input)
        state, reason = self.state, self.reason
        if self.stopped.is_set() or (not self.thread.is_alive() and self.thread.ident is not None):
            state, reason = "stopped", reason or "the engine thread has stopped"
        elif state == "deciding" and lag and (idle := time.monotonic() - self._beat) > STALL_AFTER_S:
            state, reason = "stalled", f"the engine has not come back for {idle:.0f} s while {lag} input entries wait"
        engine = self.engine
        return {"account": self.account, "state": state, "lag": lag,
                "last_decision_age_s": None if self.last_decision is None else round(max(time.time() - self.last_decision, 0.0), 3),
                "failures": self.failures, "rules_version": engine.version if engine is not None else None, "reason": reason}

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
                self._beat = time.monotonic()
                self.state, self.reason, self.failures = "deciding", None, 0
                self.ready.set()
                backoff = 0.1
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
            if self.engine is not None and self.since_snapshot and not self._ahead:
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
            for stream, entries in read_group(r, GROUP, self.rt.consumer, {self.k.input: ">", self.k.wake: ">"}, self.batch, self.block_ms):
                if text(stream) == self.k.wake:
                    r.xack(self.k.wake, GROUP, *[e[0] for e in entries])
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
        self._in_flight, self._ahead = [text(entry_id) for entry_id, _ in entries], True
        decisions = []
        for entry_id, fields in entries:
            entry_id = text(entry_id)
            if self._suspects.get(entry_id, 0) >= POISON_ATTEMPTS:
                refused = intake.refuse(fields, f"the engine failed {self._suspects[entry_id]} times on this entry; "
                                        "dead-lettered so the account keeps deciding (see the process log)")
                decisions.append(Decision(entry_id, None, refused.raw, error=refused.reason))
            else:
                decisions.append(self._decide_one(entry_id, fields))
        self._commit(decisions)
        self._in_flight = []
        for d in decisions:
            self._suspects.pop(d.entry_id, None)

    def _decide_one(self, entry_id: str, fields: dict) -> Decision:
        what = intake.read_entry(fields, allow_takeover=getattr(self.rt, "allow_takeover", False), broker=self._recording.broker)
        if isinstance(what, intake.Job):
            return self._job(entry_id, what)
        if isinstance(what, intake.Refused):
            return Decision(entry_id, None, what.raw, error=what.reason, subject=what.subject)
        event, raw = what, fields[b"event"] if b"event" in fields else fields["event"]  # read_entry found it
        self.at.seq += 1
        seq = self.at.seq
        self._recording.fills = {}
        start = time.perf_counter()
        try:
            actions = self._live.process(event, seq=seq)
        except RiskrailError as exc:
            log.error("account %s: event %s failed: %s", self.account, entry_id, exc)
            return Decision(entry_id, event, raw, error=f"the engine failed on this event: {exc}", seq=seq)
        except Exception as exc:  # a bug: journal it and go on (a replay meets it at the same point)
            log.exception("account %s: internal error on event %s", self.account, entry_id)
            return Decision(entry_id, event, raw, error=f"internal error on this event: {type(exc).__name__}: {exc}", seq=seq)
        self.rt.metrics.processing.observe(time.perf_counter() - start)
        return Decision(entry_id, event, raw, actions, dict(self._recording.fills), seq=seq)

    def _job(self, entry_id: str, job: intake.Job) -> Decision:
        """A job addressed to this account (engine.service.optimizer.run_job)."""
        from engine.service.optimizer import run_job

        return run_job(self, entry_id, job)

    def _commit(self, decisions: list[Decision]) -> None:
        m, engine = self.rt.metrics, self._live
        with self.commit_lock:  # this process's own lease renewal never lands between WATCH and EXEC
            last = commit(self.rt.redis, self.k, self.rt.consumer, engine, decisions, self.at.seq)
        if last is not None:
            self.at.journal_id = last
        self.last_decision, self.failures, self._ahead = time.time(), 0, False
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
                m.risk_events.labels(type=event_type(d.event)).inc()
                if d.actions:
                    m.tick_to_action.observe(max(now_ms - int(d.entry_id.split("-")[0]), 0) / 1000)
                for a in d.actions:
                    m.actions.labels(type=a.type).inc()
                    if a.type == "rebalance":
                        m.rebalancing.inc()
        m.positions_managed.labels(account=self.account).set(engine.book.n_open)
        self.rt.alerts.submit(self.account, [a for d in decisions for a in d.actions])  # to the alert sinks, off this thread
        self.since_snapshot += len(decisions)
        if self.since_snapshot >= self.rt.snapshot_every:
            self._snapshot()
        with self._waiters_lock:
            for d in decisions:
                pid = d.event.position_id if isinstance(d.event, PositionOpened) else getattr(d.event, "request_id", None) or d.subject
                if pid is None:
                    continue
                fut = self._waiters.pop(pid, None)
                if fut is not None and fut.set_running_or_notify_cancel():
                    fut.set_result(d)

    # --- snapshots and recovery --------------------------------------------------------------------

    def _snapshot(self) -> None:
        with self.commit_lock:  # under the lease (a process that lost it writes no snapshot), as a commit is
            recovery.save(self.rt.redis, self.k, self._live, self.at, owner=self.rt.consumer)
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
        self._recording = Recording(rt.broker_for(self.account))
        rebuild = recovery.Rebuild(r, self.k, rt.rules_for, rt.active_rules, self._new_engine, self._recording)
        (self.engine, self.at), self._ahead = rebuild.restore(), False
        since = self.at.seq
        replayed = rebuild.replay(self.engine, self.at)
        if since or replayed:  # a start, a takeover or a Redis restart: say from where the engine stands
            log.info("account %s: restored from %s, then %d journal entries replayed (now at event %d, %d open)", self.account,
                     f"the snapshot at event {since}" if since else "no snapshot", replayed, self.at.seq, self.engine.book.n_open)
        for key, start in ((self.k.input, "0"), (self.k.wake, "$")):
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
            reply = r.xautoclaim(self.k.input, GROUP, rt.consumer, min_idle_time=0, start_id=start, count=count)
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
        oldest = self.rt.redis.xpending_range(self.k.input, GROUP, min="-", max="+", count=1)
        if not oldest:
            return self.batch
        entry_id, delivered = text(oldest[0]["message_id"]), int(oldest[0]["times_delivered"])
        if delivered + 1 >= MAX_DELIVERIES:
            self._suspects[entry_id] = POISON_ATTEMPTS
            log.error("account %s: input entry %s was delivered %d times without a decision; dead-lettering it",
                      self.account, entry_id, delivered)
        return 1 if delivered >= 2 else self.batch

    # --- reloads and jobs (on this thread) ----------------------------------------------------------

    def reload(self, rules: RuleSet) -> str:
        """Swap in new rules between two events (from another thread); return the new version."""
        return self.call(lambda _: self._reload(rules))

    def _reload(self, rules: RuleSet) -> str:
        e = self._live
        if rules.version == e.version:
            return e.version
        old = e.version
        e.reload(rules)
        entry = self.rt.redis.xadd(self.k.journal, encode(reload_record(e.version, old, self.at.seq)))
        self.at.journal_id = text(entry)
        self.rt.redis.hset(self.k.state, "rules_version", e.version)
        self._snapshot()
        log.info("account %s: rules %s -> %s", self.account, old, e.version)
        return e.version

    def publish(self, event: dict[str, Any]) -> str:
        """Append an input event for this account; return its entry id (any thread)."""
        return publish(self.rt.redis, self.rt.keys, self.account, event)
