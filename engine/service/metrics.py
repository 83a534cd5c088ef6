"""Prometheus metrics of one service process (its own registry, so tests can run several)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from engine.events import Event
from engine.rules.reconcile import KINDS

disable_created_metrics()  # the *_created series double the output and nobody graphs them

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        # the four operators watch
        self.positions_managed = Gauge("riskrail_positions_managed", "open positions the engine manages", ["account"], registry=r)
        self.optimizations = Counter("riskrail_optimizations_performed_total", "optimizer runs, by result", ["result"], registry=r)
        self.risk_events = Counter("riskrail_risk_events_processed_total", "input events decided, by type", ["type"], registry=r)
        self.rebalancing = Counter("riskrail_rebalancing_actions_total", "rebalancing actions emitted", registry=r)
        # the rest
        self.actions = Counter("riskrail_actions_total", "actions emitted, by type", ["type"], registry=r)
        self.dead_letters = Counter("riskrail_dead_letters_total", "input events refused (sent to the dead-letter stream)", registry=r)
        self.tick_to_action = Histogram("riskrail_tick_to_action_seconds",
                                        "from an event's arrival in Redis to its actions committed, for events that produced actions",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.processing = Histogram("riskrail_event_processing_seconds", "engine time per input event", buckets=LATENCY_BUCKETS, registry=r)
        self.reloads = Counter("riskrail_reloads_total", "rule reloads, by result (ok, refused)", ["result"], registry=r)
        self.last_reload_success = Gauge("riskrail_last_reload_success", "1 when the last reload succeeded, else 0", registry=r)
        self.last_reload_ts = Gauge("riskrail_last_reload_timestamp_seconds", "when the last reload was attempted", registry=r)
        self.reload_latency = Histogram("riskrail_reload_seconds", "from a rule file change seen to the new version active",
                                        buckets=LATENCY_BUCKETS, registry=r)
        self.jobs = Counter("riskrail_job_runs_total", "scheduled job runs, by job and result", ["job", "result"], registry=r)
        self.redis_errors = Counter("riskrail_redis_errors_total", "Redis failures the engine recovered from", registry=r)
        self.recoveries = Counter("riskrail_recoveries_total", "account engines rebuilt from Redis (start, takeover, Redis restart)",
                                  registry=r)
        self.rules_info = Gauge("riskrail_rules_version_info", "the active rules version (value 1)", ["version"], registry=r)
        # health, set when /metrics or /readyz is read (engine.service.health)
        self.accounts_stalled = Gauge("riskrail_accounts_stalled", "accounts of this process that are not deciding "
                                      "(recovering, stalled or stopped)", registry=r)
        self.input_lag = Gauge("riskrail_input_lag", "input entries of an account not yet acknowledged (decided and committed)",
                               ["account"], registry=r)
        self.broker_reconnects = Gauge("riskrail_broker_reconnects", "times the broker's terminal was reconnected since the "
                                       "process started (MetaTrader 5; 0 without one)", registry=r)
        self.trading_state = Gauge("riskrail_trading_state", "an account's effective trading state as its engine last committed "
                                   "it: 0 ACTIVE, 1 REDUCING, 2 HALTED", ["account"], registry=r)
        self.reconcile = ReconcileDifferences()
        r.register(self.reconcile)
        self.last_reload_success.set(1)
        for result in ("ok", "failed"):  # every series exists from the start, at 0
            self.optimizations.labels(result=result)
        for result in ("ok", "refused"):
            self.reloads.labels(result=result)

    def set_version(self, version: str) -> None:
        self.rules_info.clear()
        self.rules_info.labels(version=version).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ReconcileDifferences(Collector):
    """``riskrail_reconcile_differences_total{account,kind}``: the differences with the broker each account's
    engine reported (``reconcile`` actions), by kind (``engine.rules.reconcile.KINDS``).

    The engines count them in their own state, which snapshots keep; ``update`` copies an account's counts
    as of a scrape (the ``/metrics`` route calls it), so the series survive a restart of the process."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}

    def update(self, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Set the counts of the accounts this process runs (``{account: {kind: n}}``); others are dropped."""
        self.counts = {account: {kind: int(c.get(kind, 0)) for kind in KINDS} for account, c in counts.items()}

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("riskrail_reconcile_differences", "differences with the broker's positions the engine "
                                     "reported (reconcile actions), by account and kind", labels=["account", "kind"])
        for account, counts in sorted(self.counts.items()):
            for kind in KINDS:
                family.add_metric([account, kind], counts[kind])
        yield family


def event_type(event: Event) -> str:
    """The ``type`` label of an input event in ``riskrail_risk_events_processed_total``."""
    return {"Tick": "tick", "PositionOpened": "position_opened", "PositionClosed": "position_closed", "Fill": "fill",
            "Clock": "clock", "BrokerAlert": "broker_alert", "BrokerPositions": "broker_positions",
            "TradingStateChange": "trading_state", "Flatten": "flatten"}[type(event).__name__]
