"""Delivery of ``alert`` actions to the sinks of rules/alerts.yaml, off the engine's path.

The engine never waits for a webhook: once a batch is committed, its worker hands the batch's alert
actions to ``AlertSender.submit``, which routes each (``AlertRouting.sinks_for``: by level, rule and
strategy) onto the bounded queue of each of its sinks and returns. One delivery thread per sink takes
alerts from its queue and POSTs them (``httpx``):

    webhook    the action's JSON, plus ``account`` and ``level``
    slack      ``{"text": ...}`` (an incoming webhook)
    telegram   ``{"chat_id", "text"}`` to ``<base>/bot<token>/sendMessage``

A POST that fails (a connection error, no answer within the sink's ``timeout``, a 408, 429 or 5xx) is
tried again ``retries`` times after ``backoff``, ``2 * backoff``, ... (a ``Retry-After`` of a 429 or 503
is honoured up to ``MAX_WAIT_S``). Nothing is lost: an alert whose last try failed, that another 4xx
refused, whose address is missing from the environment, that found its sink's queue full, or that was
still queued when the process stopped goes to the account's dead-letter stream ``P:A:alerts:dead``
with its sink and the error, and is counted. Alerts a restart replays from the journal are not sent
again (only newly committed batches are submitted), so a crash between the commit and the POST loses
that POST: the alert is still on the actions stream.

Secrets (a webhook address from ``url_env``, a bot token from ``token_env``) are read from the
environment when the routing is configured, registered with ``engine.service.logs.hide`` and removed
from every error this module writes or logs.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import redis
from prometheus_client import CollectorRegistry, Counter, Gauge

from engine.actions import Action
from engine.config.models.alerts import TELEGRAM_API, AlertRouting, Sink
from engine.service import logs
from engine.service.store import Fields, Keys

log = logging.getLogger("riskrail.alerts")

#: dead-letter stream cap per account (approximate trimming)
DEAD_MAXLEN = 100_000
#: the longest wait between two tries, whatever the backoff or a Retry-After says
MAX_WAIT_S = 300.0
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Alert:
    """One alert action on its way to one sink: the account it came from and its level."""

    account: str
    level: str
    action: Action

    @property
    def message(self) -> str:
        """The alert's message (the action's ``params.message``, else its reason)."""
        return str(self.action.params.get("message") or self.action.reason)

    def text(self) -> str:
        """One line for a chat: level, account, message, and what fired it."""
        a = self.action
        where = ", ".join(x for x in (f"rule {a.rule}", a.strategy and f"strategy {a.strategy}",
                                      a.position_id and f"position {a.position_id}") if x)
        return f"[{self.level.upper()}] riskrail {self.account}: {self.message} ({where}; rules {a.rules_version})"


class AlertMetrics:
    """The delivery counters, in the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.sent = Counter("riskrail_alerts_sent_total", "alerts delivered to a sink (a 2xx answer)", ["sink"], registry=r)
        self.retries = Counter("riskrail_alert_retries_total", "tries of an alert after its first failed one", ["sink"], registry=r)
        self.dead = Counter("riskrail_alerts_dead_lettered_total", "alerts given up and written to the dead-letter stream, "
                            "by sink and reason (failed, queue_full, stopped)", ["sink", "reason"], registry=r)
        self.queued = Gauge("riskrail_alert_queue_depth", "alerts waiting for their sink's delivery thread", ["sink"], registry=r)

    def zero(self, sink: str) -> None:
        """Make a new sink's series exist at 0, so that rate() and increase() see its first alert."""
        self.sent.labels(sink=sink)
        self.retries.labels(sink=sink)
        for reason in ("failed", "queue_full", "stopped"):
            self.dead.labels(sink=sink, reason=reason)
        self.queued.labels(sink=sink).set(0)


class _Delivery:
    """One sink's queue and delivery thread. ``sink`` may be swapped by a reload (the next POST uses it)."""

    def __init__(self, name: str, sink: Sink, size: int, owner: AlertSender) -> None:
        self.name, self.sink, self.owner = name, sink, owner
        self.queue: queue.Queue[Alert] = queue.Queue(size)
        self.retired = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"alerts-{name}", daemon=True)

    def _run(self) -> None:
        owner = self.owner
        while not owner.stopping.is_set():
            try:
                alert = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self.retired.is_set():
                    return
                continue
            try:
                error, attempts = self._deliver(alert)
            except Exception as exc:  # a bug must not end the thread: the alert is dead-lettered with it
                log.exception("alert delivery to %s failed unexpectedly", self.name)
                error, attempts = f"internal error: {type(exc).__name__}: {exc}", 0
            reason = "stopped" if owner.stopping.is_set() else "failed"
            self.owner.metrics.queued.labels(sink=self.name).set(self.queue.qsize())
            if error is None:
                owner.metrics.sent.labels(sink=self.name).inc()
            else:
                owner.dead_letter(alert, self.name, reason, error, attempts)
        # stopping: what is still queued is written to the dead-letter stream, not dropped
        while True:
            try:
                alert = self.queue.get_nowait()
            except queue.Empty:
                return
            owner.dead_letter(alert, self.name, "stopped", "not delivered: the service stopped first", 0)

    def _deliver(self, alert: Alert) -> tuple[str | None, int]:
        """POST ``alert`` with retries; return (None, tries) when delivered, else (the last error, tries)."""
        sink, owner = self.sink, self.owner
        try:
            url, body = owner.request(sink, alert)
        except _Missing as exc:
            return str(exc), 0
        tries, wait = 0, sink.backoff / 1000
        while True:
            tries += 1
            error, retry, after = owner.post(url, body, sink.timeout / 1000)
            if error is None:
                return None, tries
            if not retry or tries > sink.retries:
                return owner.hide(error), tries
            owner.metrics.retries.labels(sink=self.name).inc()
            log.warning("alert to %s failed (%s); try %d of %d in %.1f s", self.name, owner.hide(error), tries + 1, sink.retries + 1,
                        max(wait, after or 0.0))
            if owner.stopping.wait(min(max(wait, after or 0.0), MAX_WAIT_S)):
                return owner.hide(error) + "; the service stopped before the next try", tries
            wait *= 2


class _Missing(Exception):
    """A sink's address or token is not in the environment."""


class AlertSender:
    """Routes committed alert actions to their sinks and delivers them on threads of its own.

    ``configure(routing)`` (at start and on every reload), ``submit(account, actions)`` (the worker's
    hook, never blocks), ``stop()``. ``environ`` is where ``url_env``/``token_env`` are read (the process
    environment by default); ``transport`` an ``httpx`` transport (tests).
    """

    def __init__(self, client: redis.Redis, keys: Keys, registry: CollectorRegistry, *, environ: Mapping[str, str] | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.redis, self.keys = client, keys
        self.metrics = AlertMetrics(registry)
        self.environ: Mapping[str, str] = os.environ if environ is None else environ
        self.routing = AlertRouting()
        self.stopping = threading.Event()
        self._deliveries: dict[str, _Delivery] = {}
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self._http = httpx.Client(transport=transport, follow_redirects=False)
        logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines print each request's address

    # --- configuration -------------------------------------------------------------------------------

    def configure(self, routing: AlertRouting) -> None:
        """Use ``routing`` from now on: new sinks get a thread, changed ones take effect at their next POST,
        removed ones deliver what they hold and stop."""
        secrets = [v for s in routing.sinks.values() for env in (s.url_env, s.token_env) if env and (v := self.environ.get(env))]
        logs.hide(*secrets)
        with self._lock:
            self._secrets = tuple(sorted(set(self._secrets) | set(secrets), key=len, reverse=True))
            for name, d in list(self._deliveries.items()):
                if name not in routing.sinks:
                    d.retired.set()
                    del self._deliveries[name]
            for name, sink in routing.sinks.items():
                if name in self._deliveries:
                    self._deliveries[name].sink = sink
                else:
                    d = self._deliveries[name] = _Delivery(name, sink, routing.queue, self)
                    self.metrics.zero(name)
                    d.thread.start()
            self.routing = routing
        for name, sink in routing.sinks.items():
            for env in (sink.url_env, sink.token_env):
                if env and not self.environ.get(env):
                    log.warning("alert sink %s: the environment variable %s is not set; its alerts go to the dead-letter stream",
                                name, env)

    # --- the worker's hook ---------------------------------------------------------------------------

    def submit(self, account: str, actions: Iterable[Action]) -> None:
        """Route the ``alert`` actions among ``actions`` (a committed batch) to their sinks' queues; never blocks.
        An alert whose sink's queue is full is dead-lettered at once."""
        routing = self.routing
        if not routing.sinks:
            return
        for a in actions:
            if a.type != "alert":
                continue
            level = a.params.get("level")
            level = level if isinstance(level, str) and level in ("info", "warning", "critical") else routing.default_level
            for name in routing.sinks_for(level, a.rule, a.strategy):
                d = self._deliveries.get(name)
                if d is None:
                    continue
                alert = Alert(account, level, a)
                try:
                    d.queue.put_nowait(alert)
                except queue.Full:
                    self.dead_letter(alert, name, "queue_full", f"the queue of sink {name} was full ({routing.queue} alerts)", 0)
                else:
                    self.metrics.queued.labels(sink=name).set(d.queue.qsize())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the delivery threads; alerts still queued or waiting for a retry are dead-lettered."""
        self.stopping.set()
        with self._lock:
            deliveries = list(self._deliveries.values())
        deadline = time.monotonic() + timeout
        for d in deliveries:
            d.thread.join(max(deadline - time.monotonic(), 0.1))
        self._http.close()

    # --- requests ------------------------------------------------------------------------------------

    def request(self, sink: Sink, alert: Alert) -> tuple[str, dict[str, Any]]:
        """The URL and JSON body of ``alert`` for ``sink``; raises ``_Missing`` when its address or token is not set."""
        url = sink.url
        if sink.url_env is not None:
            url = self.environ.get(sink.url_env) or None
            if url is None:
                raise _Missing(f"the environment variable {sink.url_env} (the sink's address) is not set")
        if sink.kind == "telegram":
            assert sink.token_env is not None
            token = self.environ.get(sink.token_env)
            if not token:
                raise _Missing(f"the environment variable {sink.token_env} (the bot token) is not set")
            return f"{(url or TELEGRAM_API).rstrip('/')}/bot{token}/sendMessage", {"chat_id": sink.chat_id, "text": alert.text()}
        assert url is not None
        if sink.kind == "slack":
            return url, {"text": alert.text()}
        return url, {**alert.action.to_json(), "account": alert.account, "level": alert.level}

    def post(self, url: str, body: dict[str, Any], timeout: float) -> tuple[str | None, bool, float | None]:
        """POST ``body`` as JSON; return (None, ...) on a 2xx, else (the error, whether to try again, Retry-After seconds)."""
        try:
            resp = self._http.post(url, content=json.dumps(body, allow_nan=False), timeout=timeout,
                                   headers={"Content-Type": "application/json", "User-Agent": "riskrail-alerts"})
        except httpx.TimeoutException:
            return f"no answer within {timeout:g} s", True, None
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}", True, None
        if 200 <= resp.status_code < 300:
            return None, False, None
        after = _retry_after(resp.headers.get("Retry-After"))
        snippet = resp.text[:200].replace("\n", " ")
        return f"HTTP {resp.status_code}: {snippet}", resp.status_code in _RETRY_STATUS, after

    def hide(self, text: str) -> str:
        """``text`` without the sinks' secrets."""
        for s in self._secrets:
            text = text.replace(s, "***")
        return logs.scrub(text)

    def dead_letter(self, alert: Alert, sink: str, reason: str, error: str, attempts: int) -> None:
        """Write ``alert`` to its account's ``P:A:alerts:dead`` stream with why, and count it (never raises)."""
        self.metrics.dead.labels(sink=sink, reason=reason).inc()
        fields: Fields = {"sink": sink, "reason": reason, "error": self.hide(error), "attempts": str(attempts), "level": alert.level,
                  "action": alert.action.to_line(), "at": str(int(time.time() * 1000))}
        log.error("alert %s to %s given up (%s): %s", alert.action.id, sink, reason, fields["error"])
        try:
            self.redis.xadd(self.keys.stream(alert.account, "alerts:dead"), fields, maxlen=DEAD_MAXLEN, approximate=True)
        except redis.RedisError as exc:
            log.error("alert %s: cannot write it to the dead-letter stream (%s): %s", alert.action.id, exc, alert.action.to_line())


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None
