"""deploy/: the Prometheus alerting rules pass `promtool check rules` and their unit tests (`promtool test
rules`), and the Grafana dashboard is well-formed JSON whose panels all query Prometheus. That every
metric they name is served by a running service is checked in tests/service/test_alerts.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from tests.conftest import ROOT

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "riskrail-alerts.yml"
RULE_TESTS = PROMETHEUS / "riskrail-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "riskrail.json"
METRIC = re.compile(r"\briskrail_[a-z_]+\b")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian's `prometheus` package; `make test` installs it when run as root with apt-get)")
    return path


def test_the_alerting_rules_pass_promtool_check() -> None:
    proc = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 13 rules found" in proc.stdout


def test_every_alert_fires_when_it_should_and_stays_quiet_otherwise() -> None:
    proc = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_unit_tests_that_expect_it_to_fire_and_to_stay_quiet() -> None:
    rules, tests = RULES.read_text(), RULE_TESTS.read_text()
    names = re.findall(r"^\s*- alert: (\w+)$", rules, re.M)
    for name in names:
        cases = re.findall(rf"alertname: {name}\n\s*exp_alerts:(.*?)(?=\n\s*- eval_time|\n\s*- name|\Z)", tests, re.S)
        assert any(c.strip() == "[]" for c in cases), f"{name}: no case where it stays quiet"
        assert any("exp_labels" in c for c in cases), f"{name}: no case where it fires"


def dashboard_queries() -> list[str]:
    """Every PromQL expression of the dashboard (panel targets and template variables)."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    return exprs + [v["query"]["query"] for v in dash["templating"]["list"] if v["type"] == "query"]


def test_the_dashboard_is_grafana_json_on_a_prometheus_datasource() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] == "riskrail" and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and p["targets"], p["title"]
    assert all(METRIC.search(e) for e in dashboard_queries())


def deployed_metric_names() -> set[str]:
    """The riskrail_* names the dashboard and the alerting rules query."""
    return {m for text in [*dashboard_queries(), RULES.read_text()] for m in METRIC.findall(text)}
