"""APScheduler jobs on a real Redis: exactly one process runs them, a failing job is counted and the
engine goes on, the optimizer job works on the strategies' equity curves."""

from __future__ import annotations

import json

from engine.config import load_config
from engine.service.metrics import Metrics
from engine.service.scheduler import JobRunner
from engine.service.store import Keys
from tests.conftest import edit
from tests.service.conftest import demo_events, drained, publish, start_service, wait_for


def runner(client, name: str, schedules) -> JobRunner:
    return JobRunner(client, Keys(), name, Metrics(), schedules, accounts=lambda: ["acct"], ttl_ms=600)


def test_exactly_one_process_runs_the_scheduler_and_another_takes_over_when_it_dies(redis_server, scalping) -> None:
    schedules = load_config(str(scalping)).schedules
    a, b = runner(redis_server, "a", schedules), runner(redis_server, "b", schedules)
    a.start()
    wait_for(lambda: a.running, 5, "a to hold the lock")
    b.start()
    for _ in range(10):  # b keeps trying while a renews
        assert a.running and not b.running
        a._stop.wait(0.1)
    a._stop.set()  # a dies: it stops renewing, and its lock expires
    a.thread.join(5)
    wait_for(lambda: b.running, 5, "b to take over")
    assert b.lease.holder() == "b"
    b.stop()
    a._halt()
    assert b.lease.holder() is None  # released on a clean stop


def test_a_job_that_raises_is_counted_and_the_runner_goes_on(redis_server, scalping) -> None:
    r = runner(redis_server, "a", load_config(str(scalping)).schedules)

    def broken() -> None:
        raise RuntimeError("disk full")

    r._snapshot_metrics = broken
    r.run_now("snapshot_metrics")
    r.run_now("daily_reset")
    metrics = r.metrics.render().decode()
    assert 'riskrail_job_runs_total{job="snapshot_metrics",result="failed"} 1.0' in metrics
    assert 'riskrail_job_runs_total{job="daily_reset",result="ok"} 1.0' in metrics
    clock = [json.loads(f[b"event"]) for _, f in redis_server.xrange(Keys().stream("acct", "in"))]
    assert [c["type"] for c in clock] == ["clock"]


def test_the_optimizer_job_recommends_within_the_bands_and_auto_apply_emits_rebalancing(redis_server, scalping) -> None:
    (scalping / "rules" / "allocation.yaml").write_text("auto_apply: true\nmethods: [risk_parity, min_volatility, max_sharpe]\n")
    # allocations far from what the optimizers find (about even): the plan has transfers to make
    edit(scalping / "strategies" / "scalp_trend.yaml", "allocation: {target: 0.5, min: 0.3, max: 0.7}",
         "allocation: {target: 0.3, min: 0.3, max: 0.7, rebalance_threshold: 0.01}")
    edit(scalping / "strategies" / "scalp_revert.yaml", "allocation: {target: 0.5, min: 0.3, max: 0.7}",
         "allocation: {target: 0.7, min: 0.3, max: 0.7, rebalance_threshold: 0.01}")
    svc = start_service(redis_server, scalping, scheduler=True)
    try:
        publish(redis_server, "acct", demo_events())  # one hour of ticks: 60 one-minute samples of each strategy
        wait_for(lambda: drained(redis_server, "acct"))
        wait_for(lambda: svc.jobs.running, 10, "the scheduler")
        svc.jobs.run_now("optimize_portfolio")
        wait_for(lambda: svc.workers["acct"].last_optimization is not None and drained(redis_server, "acct"), 30, "the optimizer")
        result = svc.workers["acct"].last_optimization
    finally:
        svc.stop()
    assert "error" not in result, result
    rules = load_config(str(scalping))
    for name, weight in result["targets"].items():
        band = rules.strategies[name].allocation
        assert band.min - 1e-9 <= weight <= band.max + 1e-9
    assert abs(sum(result["targets"].values()) - 1) < 1e-9
    assert {r["strategy"] for r in result["recommendations"]} == set(rules.strategies)
    assert result["applied"] is True and result["observations"] >= 50
    actions = [json.loads(f[b"action"]) for _, f in redis_server.xrange(Keys().stream("acct", "actions"))]
    rebalances = [a for a in actions if a["type"] == "rebalance"]
    assert len(rebalances) == len(result["implementation_plan"]) > 0
    assert {(a["params"]["from"], a["params"]["to"]) for a in rebalances} <= {(t["from"], t["to"]) for t in result["implementation_plan"]}
    stored = [json.loads(f[b"result"]) for _, f in redis_server.xrange(Keys().optimizations)]
    assert stored[-1]["targets"] == result["targets"]


def test_an_edited_schedules_file_reschedules_the_jobs(redis_server, scalping) -> None:
    (scalping / "schedules.yaml").write_text("timezone: UTC\njobs:\n  optimize_portfolio: {trigger: interval, seconds: 300}\n")
    svc = start_service(redis_server, scalping, scheduler=True, watch=True)
    try:
        wait_for(lambda: svc.jobs.running, 10, "the scheduler")
        job = svc.jobs.scheduler.get_job("optimize_portfolio")
        assert job.trigger.interval.total_seconds() == 300
        (scalping / "schedules.yaml").write_text("timezone: UTC\njobs:\n  optimize_portfolio: {trigger: interval, seconds: 120}\n"
                                                 "  daily_reset: {trigger: cron, hour: 17, timezone: America/New_York}\n")
        wait_for(lambda: svc.jobs.scheduler.get_job("daily_reset") is not None, 10, "the new schedule")
        assert svc.jobs.scheduler.get_job("optimize_portfolio").trigger.interval.total_seconds() == 120
        assert str(svc.jobs.scheduler.get_job("daily_reset").trigger.timezone) == "America/New_York"
    finally:
        svc.stop()
