"""The running service: Redis, the account engines, the lease manager, hot reload, the scheduler, the API.

Several processes may share one Redis: each account is owned by one process at a time (a lease key
that expires unless renewed); each process takes its fair share of the accounts (the live processes
are the members that sent a heartbeat within the lease time) and hands surplus accounts over. When a
process dies, its leases expire and another process rebuilds those accounts from Redis and claims
their pending input (engine.service.worker).
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import redis

from engine.book.positions import Status
from engine.config.lint import check_removed_strategies
from engine.config.load import RuleSet, ruleset_from_texts, validate_config
from engine.errors import ConfigError, RiskrailError
from engine.ports import Broker, Store
from engine.rules._errors import ReloadRefused
from engine.rules.timers import time_driven
from engine.service.alerts import AlertSender
from engine.service.gauges import EngineGauges
from engine.service.metrics import Metrics
from engine.service.reload import Reloader, ReloadResult, encode, problem_json
from engine.service.rulestore import RedisStore
from engine.service.scheduler import JobRunner
from engine.service.store import Keys, Lease, publish, sources, text
from engine.service.worker import AccountWorker

log = logging.getLogger("riskrail.service")


class Service:
    """One engine process. ``start()``, then the API and ``worker(account)``; ``stop()``.

    ``allow_takeover``: accept ``position_opened`` events with ``existing: true`` (a position already
    open at the broker, adopted without pre-trade checks), as a position sync such as the MetaTrader 5
    feed sends them; otherwise they are dead-lettered.

    ``instruments``: a connected broker's instrument specifications, ``symbols -> {symbol: Instrument
    fields}`` (``Edges.instruments`` of a MetaTrader 5 terminal). Every rule set the service builds from
    texts (at start, on a reload, when a worker recovers an older version) runs with them merged over
    rules/instruments.yaml (``Instruments.merged``); the rules version stays the texts'. It is called at
    start and on each reload that changes the rules, never per tick; when it fails, the last
    specifications it gave (or the file's) are used and the failure is logged.
    """

    def __init__(self, config_dir: str, client: redis.Redis, *, accounts: tuple[str, ...] = ("main",), prefix: str = "riskrail",
                 equity0: float = 100_000.0, snapshot_every: int = 2000, lease_ms: int = 5000, consumer: str | None = None,
                 broker_factory: Callable[[str], Broker | None] | None = None, watch: bool = True, scheduler: bool = True,
                 reload_poll: float = 0.025, allow_takeover: bool = False, renew_ms: int | None = None,
                 instruments: Callable[[Iterable[str]], Mapping[str, Mapping[str, Any]]] | None = None) -> None:
        self.config_dir = config_dir
        self.instruments = instruments
        self._broker_specs: dict[str, Mapping[str, Any]] = {}  # the last the broker gave
        self._specs_asked: frozenset[str] | None = None  # the symbols they were read for (None: never read)
        self._specs_lock = threading.Lock()
        self._reported: set[str] = set()
        # positions taken over (``existing: true``) skip the pre-trade checks: only when told to
        self.allow_takeover = allow_takeover
        self.redis = client
        self.keys = Keys(prefix)
        self.rule_store: Store = RedisStore(client, self.keys)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.metrics = Metrics()
        self.alerts = AlertSender(client, self.keys, self.metrics.registry)  # alert actions to the sinks of rules/alerts.yaml
        self.metrics.registry.register(EngineGauges(self))  # equity, day PnL, drawdown, exposure, ... as of each scrape
        self.equity0, self.snapshot_every, self.lease_ms = equity0, snapshot_every, lease_ms
        self.renew_ms = renew_ms if renew_ms is not None else lease_ms / 3  # how often leases are renewed
        self.default_account = accounts[0] if accounts else "main"
        self.initial_accounts = accounts
        self.broker_factory = broker_factory
        self.workers: dict[str, AccountWorker] = {}
        self._workers_lock = threading.Lock()
        self._rules_cache: dict[str, RuleSet] = {}
        self._active: RuleSet | None = None
        self.loaded_at: float | None = None
        self.started_at = time.time()
        self._stop = threading.Event()
        self._leases = threading.Thread(target=self._lease_loop, name="leases", daemon=True)
        self.reloader = Reloader(config_dir, self._apply, active_version=lambda: self.version, record=self._record_reload,
                                 poll=reload_poll) if watch else None
        self.jobs: JobRunner | None = None
        self._want_scheduler = scheduler

    # --- Runtime (what workers use) --------------------------------------------------------------------

    def rules_for(self, version: str) -> RuleSet:
        """The rule set of a version: loaded from its texts in Redis (a restart, a takeover)."""
        if version in self._rules_cache:
            return self._rules_cache[version]
        files = self.rule_store.texts(version)
        if not files:
            raise RiskrailError(f"the rules of version {version} are not in Redis; cannot rebuild the engine that ran them")
        rules = ruleset_from_texts(files)
        if rules.version != version:
            raise RiskrailError(f"the stored rules of version {version} load as version {rules.version}: riskrail was upgraded "
                                "in a way that changes what the rules mean")
        rules = self._with_broker_instruments(rules, refresh=False)
        self._rules_cache[version] = rules
        return rules

    def _with_broker_instruments(self, rules: RuleSet, *, refresh: bool) -> RuleSet:
        """``rules`` with the broker's instruments merged over the file's, its version unchanged (the
        broker's specifications are the environment the rules run in, not the rules). ``refresh``: read
        them from the broker again (start, reload); else only when ``rules`` names symbols not read yet."""
        if self.instruments is None:
            return rules
        wanted = frozenset(rules.instruments.instruments)
        with self._specs_lock:
            if refresh or self._specs_asked is None or not wanted <= self._specs_asked:
                try:
                    self._broker_specs = dict(self.instruments(sorted(wanted)))
                    self._specs_asked = wanted
                except RiskrailError as exc:
                    log.error("cannot read the broker's instrument specifications (%s); using %s", exc,
                              "the last read" if self._specs_asked is not None else "rules/instruments.yaml")
            merged, problems = rules.instruments.merged(self._broker_specs)
            for problem in problems:
                if problem not in self._reported:
                    self._reported.add(problem)
                    log.warning("instruments: %s", problem)
        return replace(rules, instruments=merged)

    def active_rules(self) -> RuleSet:
        assert self._active is not None
        return self._active

    def broker_for(self, account: str) -> Broker | None:
        if self.broker_factory is None:
            from engine.adapters.paper import PaperBroker

            return PaperBroker()
        return self.broker_factory(account)

    @property
    def version(self) -> str:
        return self._active.version if self._active is not None else ""

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._load_initial()
        for account in self.initial_accounts:
            self.redis.sadd(self.keys.accounts, account)
        self._lease_tick()
        self._leases.start()
        if self.reloader is not None:
            self.reloader.start()
        if self._want_scheduler:
            self.jobs = JobRunner(self.redis, self.keys, self.consumer, self.metrics, self.active_rules().schedules, accounts=self.accounts,
                                  ttl_ms=self.lease_ms)
            self._pass_time(self.active_rules())
            self.jobs.start()

    def _load_initial(self) -> None:
        """Load the configuration; when it is broken but Redis has a good version, run that one."""
        result = validate_config(self.config_dir)
        rules, files = result.ruleset, sources(result, self.config_dir)
        if rules is None:
            stored = self.rule_store.active()
            if not stored:
                raise ConfigError(result.problems)
            rules = self.rules_for(stored)
            errors = [problem_json(p) for p in result.problems]
            res = ReloadResult(False, time.time(), "start", None, stored, False, errors)
            if self.reloader is not None:
                self.reloader.last = res
            self._record_reload(res)
            log.error("the rule files have %d problem(s); running the last good version %s from Redis", len(errors), stored)
        else:
            rules = self._with_broker_instruments(rules, refresh=True)
        self._store_rules(rules, files)
        self._active = rules
        self.loaded_at = time.time()
        self.metrics.set_version(rules.version)
        self.alerts.configure(rules.alerts)

    def _store_rules(self, rules: RuleSet, files: dict[str, str]) -> None:
        """Keep the texts of a version (those that were validated) so a restart can load it again."""
        self.rule_store.keep(rules.version, files)
        self._rules_cache[rules.version] = rules
        self.rule_store.activate(rules.version)

    def stop(self) -> None:
        """Finish the events in hand, snapshot every engine, release the leases."""
        self._stop.set()
        if self.reloader is not None:
            self.reloader.stop()
        if self.jobs is not None:
            self.jobs.stop()
        if self._leases.is_alive():
            self._leases.join(5)
        with self._workers_lock:
            workers = list(self.workers.items())
        for account, w in workers:
            w.stop()
            try:
                self._lease(account).release()
            except redis.RedisError:
                pass
        try:
            self.redis.zrem(self.keys.members, self.consumer)
        except redis.RedisError:
            pass
        self.alerts.stop()

    # --- accounts -----------------------------------------------------------------------------------------

    def accounts(self) -> list[str]:
        return sorted(text(a) for a in self.redis.smembers(self.keys.accounts))

    def worker(self, account: str | None = None) -> AccountWorker:
        account = account or self.default_account
        with self._workers_lock:
            w = self.workers.get(account)
        if w is None or w.stopped.is_set():
            raise RiskrailError(f"account {account!r} is not run by this process "
                                f"(accounts here: {', '.join(sorted(self.workers)) or 'none'})")
        return w

    def _lease(self, account: str) -> Lease:
        return Lease(self.redis, self.keys.lease(account), self.consumer, self.lease_ms)

    def _lease_loop(self) -> None:
        while not self._stop.wait(self.renew_ms / 1000):
            try:
                self._lease_tick()
            except redis.RedisError as exc:
                self.metrics.redis_errors.inc()
                log.warning("lease manager: Redis failed (%s); retrying", exc)
            except Exception:
                log.exception("lease manager failed; retrying")

    def _lease_tick(self) -> None:
        r, now = self.redis, int(time.time() * 1000)
        r.zadd(self.keys.members, {self.consumer: now})
        r.zremrangebyscore(self.keys.members, "-inf", now - 2 * self.lease_ms)
        alive = max(r.zcard(self.keys.members), 1)
        accounts = self.accounts()
        share = math.ceil(len(accounts) / alive) if accounts else 0
        with self._workers_lock:
            for account, w in list(self.workers.items()):
                with w.commit_lock:
                    renewed = not w.stopped.is_set() and self._lease(account).renew()
                if not renewed:
                    w.stop(0)
                    del self.workers[account]
            owned = sorted(self.workers)
            for account in owned[share:]:  # hand surplus accounts to the other processes
                log.info("handing account %s over (%d processes share %d accounts)", account, alive, len(accounts))
                self.workers.pop(account).stop()
                self._lease(account).release()
            for account in accounts:
                if len(self.workers) >= share:
                    break
                if account in self.workers:
                    continue
                if self._lease(account).acquire():
                    log.info("account %s: taking it (%d processes share %d accounts)", account, alive, len(accounts))
                    w = AccountWorker(self, account)
                    self.workers[account] = w
                    w.start()

    # --- reloads --------------------------------------------------------------------------------------

    def _apply(self, rules: RuleSet, files: dict[str, str]) -> str:
        """Make ``rules`` (validated and test-compiled from ``files``) active in every engine of this process.

        Raises ``ReloadRefused`` (nothing changes) when ``rules`` remove a strategy that still has open
        positions in an engine of this process."""
        if rules.version == self.version:
            self.alerts.configure(rules.alerts)  # a change of rules/alerts.yaml alone keeps the version
            return rules.version
        self._refuse_removed_strategies(rules)
        self.alerts.configure(rules.alerts)
        rules = self._with_broker_instruments(rules, refresh=True)
        self._store_rules(rules, files)
        previous = self._active
        self._active = rules
        self.loaded_at = time.time()
        with self._workers_lock:
            workers = list(self.workers.values())
        for w in workers:
            try:
                w.reload(rules)
            except Exception as exc:
                log.error("account %s: the reload did not reach its engine: %s (it picks the active version up when it recovers)",
                          w.account, exc)
        self.metrics.set_version(rules.version)
        if self.jobs is not None and (previous is None or previous.schedules != rules.schedules):
            self.jobs.set_schedules(rules.schedules)
        self._pass_time(rules)
        return rules.version

    def _pass_time(self, rules: RuleSet) -> None:
        """Idle accounts get clock events when some rule depends on time alone (engine.rules.timers)."""
        if self.jobs is not None:
            self.jobs.pass_time(rules.schedules.risk_update_frequency if time_driven(rules) else None)

    def _refuse_removed_strategies(self, rules: RuleSet) -> None:
        """Refuse ``rules`` if they remove a strategy with open positions in any account: this process's
        engines are asked; the accounts other processes run are read from their positions in Redis."""
        with self._workers_lock:
            workers = list(self.workers.values())
        before, mine = self.active_rules().strategies, set()
        for w in workers:
            try:
                opened = w.call(lambda e: e.book.open_ids())
            except RiskrailError:  # not ready (recovering): its stored positions are read below
                continue
            mine.add(w.account)
            if reasons := check_removed_strategies(before, rules.strategies, opened):
                raise ReloadRefused(f"account {w.account}: " + "; ".join(reasons))
        removed = set(before) - set(rules.strategies)
        for account in sorted(text(a) for a in self.redis.smembers(self.keys.accounts)) if removed else ():
            if account not in mine and (reasons := check_removed_strategies(before, rules.strategies, self._stored_open(account))):
                raise ReloadRefused(f"account {account}: " + "; ".join(reasons))

    def _stored_open(self, account: str) -> dict[str, list[str]]:
        """The ids of an account's open positions by strategy, as its engine last committed them to Redis."""
        out: dict[str, list[str]] = {}
        for pid, blob in self.redis.hscan_iter(self.keys.stream(account, "positions")):
            p = json.loads(blob)
            if p.get("status") in (Status.OPEN.value, Status.PARTIALLY_CLOSED.value):
                out.setdefault(p.get("strategy_type", ""), []).append(text(pid))
        return out

    def _record_reload(self, res: ReloadResult) -> None:
        self.metrics.reloads.labels(result="ok" if res.ok else "refused").inc()
        self.metrics.last_reload_success.set(1 if res.ok else 0)
        self.metrics.last_reload_ts.set(res.at)
        if res.ok and res.changed:
            self.metrics.reload_latency.observe(res.seconds)
        try:
            self.redis.xadd(self.keys.reloads, encode(res), maxlen=10_000, approximate=True)
        except redis.RedisError:
            pass

    def reload(self, trigger: str = "api") -> ReloadResult:
        if self.reloader is None:
            raise RiskrailError("hot reload is off in this process")
        return self.reloader.reload(trigger)

    @property
    def last_reload(self) -> ReloadResult | None:
        """The last reload attempt of this process (``None`` before the first, or with hot reload off)."""
        return self.reloader.last if self.reloader is not None else None

    def rules_state(self) -> tuple[str, float | None, ReloadResult | None]:
        """The active version, when it was loaded, and the last reload, consistent with each other
        (waits for a reload in progress)."""
        if self.reloader is None:
            return self.version, self.loaded_at, None
        with self.reloader.between_reloads():
            return self.version, self.loaded_at, self.reloader.last

    # --- input ------------------------------------------------------------------------------------------

    def publish(self, event: dict[str, Any], account: str | None = None) -> str:
        """Append an input event to an account's stream; return the entry id."""
        return publish(self.redis, self.keys, account or self.default_account, event)
