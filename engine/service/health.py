"""What ``/healthz``, ``/readyz`` and the health gauges of ``/metrics`` say about one service process.

Liveness (``/healthz``): the process answers, Redis answers, and no account of this process is stalled
(failing and rebuilding) or has an engine thread that stopped. Readiness (``/readyz``): besides, rules
are loaded and every account this process runs is deciding (not still recovering). Each account's
part comes from ``AccountWorker.health()``: its state, the input entries not yet acknowledged (lag),
the age of its last committed decision, its consecutive failures, its rules version and why it is not
deciding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

#: an account in one of these states makes the process not alive (``/healthz`` 503)
DEGRADED = ("stalled", "stopped")


@dataclass(frozen=True)
class Health:
    """One look at the process: Redis, rules, and each account's ``health()``."""

    redis: bool
    rules_version: str
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def stalled(self) -> list[str]:
        """The accounts of this process that are not deciding."""
        return [a for a, h in self.accounts.items() if h["state"] != "deciding"]

    def problems(self, *, ready: bool) -> list[str]:
        """Why the process is not alive (``ready=False``) or not ready (``ready=True``), in plain words."""
        out = [] if self.redis else ["Redis is not reachable"]
        if ready and not self.rules_version:
            out.append("no rules are loaded")
        for account, h in self.accounts.items():
            if h["state"] in DEGRADED or (ready and h["state"] != "deciding"):
                out.append(f"account {account}: {h['state']}" + (f" ({h['reason']})" if h.get("reason") else ""))
        return out


def snapshot(service, scrub=lambda text: text) -> Health:
    """Look at ``service`` now (Redis round trips: one PING, and two per account for its lag) and
    update its health gauges. ``scrub`` removes secrets from the reasons (they can quote Redis errors)."""
    try:
        service.redis.ping()
        redis_ok = True
    except redis.RedisError:
        redis_ok = False
    accounts: dict[str, dict[str, Any]] = {}
    for account, worker in sorted(service.workers.items()):
        try:
            h = dict(worker.health())
        except Exception as exc:  # a health check must answer even when the worker is broken
            h = {"account": account, "state": "stalled", "lag": None, "last_decision_age_s": None, "failures": None,
                 "rules_version": None, "reason": f"its health could not be read ({type(exc).__name__}: {exc})"}
        if h.get("reason"):
            h["reason"] = scrub(str(h["reason"]))
        accounts[account] = h
    health = Health(redis_ok, service.version, accounts)
    _export(service.metrics, health)
    return health


def _export(metrics, health: Health) -> None:
    metrics.accounts_stalled.set(len(health.stalled))
    metrics.input_lag.clear()
    for account, h in health.accounts.items():
        if h.get("lag") is not None:
            metrics.input_lag.labels(account=account).set(h["lag"])
