"""The jobs of schedules.yaml on APScheduler 3, run by exactly one engine process (a Redis lock).

Jobs address the accounts through their input streams, so the process that owns an account runs the
work between two of its events, and the journal records it:

    optimize_portfolio   ``{job: optimize_portfolio}`` into every account's input stream; the owner runs
                         the optimizers on its strategies' equity curves (engine.service.optimizer)
    daily_reset          a ``clock`` event (wall time) into every account's input stream: the day rolls
    weekly_reset         over by the schedule's cron even when no quote arrives (the engine also rolls
                         it on the first event after the boundary, so a replay resets where live did)
    snapshot_metrics     each account's state (equity, day PnL, open positions, version) appended to the
                         ``metrics`` stream
    risk_update          (``pass_time``: rules that depend on time alone, engine.rules.timers) a ``clock`` event
                         every ``risk_update_frequency`` into each account's input stream that received
                         nothing for that long, its time the last event's plus the wall time since
                         (``clock_time``): max holding times and time rules act without a tick
    request_positions    (``ask_for_positions``: accounts whose pipeline carries out the actions, ``--broker
                         redis``) a ``request_positions`` action on every account's actions stream: the
                         pipeline answers with a ``broker_positions`` report, which the engine reconciles

Every job has ``coalesce``, ``max_instances`` and ``misfire_grace_time`` from the file. A job that
raises is logged and counted (``riskrail_job_runs_total{result="failed"}``) and the engine goes on.
The lock (``P:scheduler``) expires unless its holder renews it, so when that process dies another one
takes over within the expiry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from engine.actions import Action
from engine.config.models import Job, Schedules
from engine.service.commit import ACTIONS_MAXLEN
from engine.service.metrics import Metrics
from engine.service.store import Keys, Lease, publish, text

log = logging.getLogger("riskrail.scheduler")


def trigger(job: Job, tz: str) -> CronTrigger | IntervalTrigger:
    """Return the APScheduler trigger of ``job``; ``tz`` is the file's timezone, for a job without its own."""
    if job.trigger == "interval":
        # an interval counts from when the job is added: the scheduler's clock, read here
        return IntervalTrigger(seconds=job.interval_seconds(), timezone=job.timezone or tz)
    return job.cron_trigger(tz)


def clock_time(last: tuple[Any, Any] | None, now: int, every_ms: int) -> int | None:
    """The time of the clock event an account gets at wall time ``now`` (epoch ms), None while its input
    stream received something in the last ``every_ms``: the time of the last event in the stream plus
    the wall time since it arrived (``last``: its entry, whose id's first part is when Redis took it), so
    event time keeps going at wall speed from where the feed left it (a feed of recorded history included);
    wall time when the stream is empty or its last entry holds no event time."""
    if last is None:
        return now
    arrived = int(str(text(last[0])).split("-")[0])
    if arrived > now - every_ms:
        return None
    try:
        return int(json.loads(last[1][b"event"])["ts"]) + now - arrived
    except (KeyError, TypeError, ValueError):  # a job entry, an event refused or written with an ISO time
        return now


class JobRunner:
    """Holds the scheduler lock when it can, and then runs the jobs of the current schedules."""

    def __init__(self, r: redis.Redis, keys: Keys, owner: str, metrics: Metrics, schedules: Schedules, *,
                 accounts: Callable[[], list[str]], ttl_ms: int = 5000, clock: Callable[[], float] = time.time) -> None:
        self.r, self.keys, self.metrics, self.accounts, self.clock = r, keys, metrics, accounts, clock
        self.lease = Lease(r, keys.scheduler, owner, ttl_ms)
        self.schedules = schedules
        self.positions_every: float | None = None  # seconds between requests for the broker's positions (None: none)
        self.clock_every_ms: int | None = None  # ms between clock events to an idle account (None: none)
        self.scheduler: BackgroundScheduler | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._hold, name="scheduler-lock", daemon=True)

    @property
    def running(self) -> bool:
        return self.scheduler is not None

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(5)
        self._halt()
        try:
            self.lease.release()
        except redis.RedisError:
            pass

    def set_schedules(self, schedules: Schedules) -> None:
        """schedules.yaml changed (a reload): replace the jobs."""
        with self._lock:
            self.schedules = schedules
            if self.scheduler is not None:
                self.scheduler.remove_all_jobs()
                self._add_jobs(self.scheduler)

    def ask_for_positions(self, every: float | None) -> None:
        """Ask every account's pipeline for a ``broker_positions`` report every ``every`` seconds (``None``: never),
        with the job ``request_positions``: for a service whose actions a pipeline carries out (``--broker redis``)."""
        self.positions_every = every
        self.set_schedules(self.schedules)

    def pass_time(self, every_ms: int | None) -> None:
        """Send each idle account a ``clock`` event every ``every_ms`` (``None``: never), with the job ``risk_update``:
        for rules that depend on time alone (``engine.rules.timers.time_driven``)."""
        if every_ms != self.clock_every_ms:
            self.clock_every_ms = every_ms
            self.set_schedules(self.schedules)

    def _hold(self) -> None:
        interval = self.lease.ttl_ms / 3000
        while not self._stop.is_set():
            try:
                held = self.lease.acquire()
            except redis.RedisError as exc:
                log.warning("scheduler lock: Redis failed (%s)", exc)
                held = False
            if held and self.scheduler is None:
                self._begin()
            elif not held and self.scheduler is not None:
                log.warning("scheduler lock lost to %s; this process stops running the jobs", self.lease.holder())
                self._halt()
            self._stop.wait(interval)

    def _begin(self) -> None:
        with self._lock:
            sched = BackgroundScheduler(timezone=self.schedules.timezone)
            self._add_jobs(sched)
            sched.start()
            self.scheduler = sched
        log.info("this process runs the scheduler (%d jobs)", len(sched.get_jobs()))

    def _halt(self) -> None:
        with self._lock:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=False)
                self.scheduler = None

    def _add_jobs(self, sched: BackgroundScheduler) -> None:
        tz = self.schedules.timezone
        for name, job in self.schedules.jobs:
            if job is None or not job.enabled:
                continue
            sched.add_job(self._wrap(name), trigger(job, tz), id=name, name=name, coalesce=job.coalesce,
                          max_instances=job.max_instances, misfire_grace_time=job.misfire_grace_time, replace_existing=True)
        if self.clock_every_ms:
            sched.add_job(self._wrap("risk_update"), IntervalTrigger(seconds=self.clock_every_ms / 1000, timezone=tz),
                          id="risk_update", name="risk_update", coalesce=True, max_instances=1, misfire_grace_time=1,
                          replace_existing=True)
        if self.positions_every:
            sched.add_job(self._wrap("request_positions"), IntervalTrigger(seconds=self.positions_every, timezone=tz),
                          id="request_positions", name="request_positions", coalesce=True, max_instances=1,
                          misfire_grace_time=max(int(self.positions_every), 1), replace_existing=True)

    def _wrap(self, name: str) -> Callable[[], None]:
        body = getattr(self, f"_{name}")

        def run() -> None:
            try:
                body()
            except Exception as exc:
                self.metrics.jobs.labels(job=name, result="failed").inc()
                log.error("job %s failed: %s: %s; the engine goes on", name, type(exc).__name__, exc)
            else:
                if name != "optimize_portfolio":  # counted by the account's engine when it has run
                    self.metrics.jobs.labels(job=name, result="ok").inc()

        return run

    def run_now(self, name: str) -> None:
        """Run a job at once (the API's and the tests' way to trigger it)."""
        self._wrap(name)()

    # --- the jobs -------------------------------------------------------------------------------------

    def _optimize_portfolio(self) -> None:
        for account in self.accounts():
            self.r.xadd(self.keys.stream(account, "in"), {"job": "optimize_portfolio"})

    def _clock(self) -> None:
        event = {"type": "clock", "ts": int(self.clock() * 1000)}
        for account in self.accounts():
            publish(self.r, self.keys, account, event)

    _daily_reset = _clock
    _weekly_reset = _clock

    def _risk_update(self) -> None:
        now = int(self.clock() * 1000)
        for account in self.accounts():
            last = self.r.xrevrange(self.keys.stream(account, "in"), count=1)
            ts = clock_time(last[0] if last else None, now, self.clock_every_ms or 0)
            if ts is not None:
                publish(self.r, self.keys, account, {"type": "clock", "ts": ts})

    def _request_positions(self) -> None:
        now = int(self.clock() * 1000)
        for account in self.accounts():
            version = text(self.r.hget(self.keys.stream(account, "state"), "rules_version") or b"")
            digest = hashlib.sha256(f"{account}|{now}".encode()).hexdigest()[:24]
            action = Action(f"r-{digest}", now, "request_positions", None, None, {}, "reconcile", version,
                            "report the open positions (a broker_positions event) for reconciliation")
            self.r.xadd(self.keys.stream(account, "actions"), {"action": action.to_line()}, maxlen=ACTIONS_MAXLEN, approximate=True)

    def _snapshot_metrics(self) -> None:
        now = int(self.clock() * 1000)
        for account in self.accounts():
            state = {text(k): text(v) for k, v in self.r.hgetall(self.keys.stream(account, "state")).items()}
            if state:
                self.r.xadd(self.keys.metrics, {"snapshot": json.dumps({"ts": now, "account": account, **{
                    k: state.get(k) for k in ("equity", "day", "day_start_equity", "open_positions", "rules_version", "halted")}})},
                    maxlen=100_000, approximate=True)
