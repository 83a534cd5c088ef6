"""`riskrail run` and `riskrail doctor` as a user starts them: subprocesses, real servers."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, edit
from tests.service.conftest import redis_server, scalping, url_of, wait_for  # noqa: F401  (fixtures)


def riskrail(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", "--port", "0", *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    return proc


def banner(proc: subprocess.Popen) -> dict[str, str]:
    """The lines `run` prints when it is up: API address, token (when new)."""
    lines = [proc.stdout.readline() for _ in range(5)]
    assert lines[0].startswith("riskrail run: rules rv-"), (lines, proc.stderr.read() if proc.poll() is not None else "")
    out = {"api": re.search(r"API\s+(http://\S+)", lines[1]).group(1)}
    token = re.search(r"token\s+(\S+)\s+\(shown once", lines[2])
    if token:
        out["token"] = token.group(1)
    return out


def stop(proc: subprocess.Popen) -> tuple[str, str]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out, err


def test_the_demo_serves_the_monitoring_endpoints_with_live_data_and_a_token_made_once(tmp_path: Path) -> None:
    data = tmp_path / "state"
    env = {"RISKRAIL_API_TOKEN": ""}
    proc = start("--data-dir", str(data), "--speed", "50", env=env)
    try:
        b = banner(proc)
        token = b["token"]
        assert (data / "api-token").read_text().strip() == token
        assert stat.S_IMODE((data / "api-token").stat().st_mode) == 0o600
        with httpx.Client(base_url=b["api"], headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
            def events() -> int:
                return c.get("/api/risk-management/status").json()["counts"]["events"]
            wait_for(lambda: events() > 50, 60, "the demo feed")
            first = c.get("/api/risk-management/status").json()

            def moved() -> bool:  # live data: the equity or the actions change as ticks arrive (none may for a while)
                now = c.get("/api/risk-management/status").json()
                equity, actions = now["daily_loss"]["equity"], now["counts"]["actions"]
                return now["counts"]["events"] > first["counts"]["events"] and (
                    equity != first["daily_loss"]["equity"] or actions != first["counts"]["actions"])
            wait_for(moved, 60, "the equity or the actions to move with the feed")
            second = c.get("/api/risk-management/status").json()
            strategies = {p["strategy_type"] for p in second["active_positions"]}
            assert len(strategies) >= 4  # demo positions across the six strategies
            summary = c.get("/api/position-management/portfolio-summary").json()
            assert len(summary["allocations"]) == 6
            assert c.get("/api/position-management/optimization-results").status_code == 200
            assert c.get("/metrics").status_code == 200
    finally:
        stop(proc)
    proc = start("--data-dir", str(data), "--speed", "50", env=env)
    try:
        assert "token" not in banner(proc)  # printed once: the first time
    finally:
        stop(proc)


def test_sighup_reloads_an_edit_the_watcher_did_not_see_and_logs_are_json(tmp_path: Path, redis_server, scalping) -> None:  # noqa: F811
    proc = start("--config", str(scalping), "--redis-url", url_of(redis_server), "--log-format", "json", "--name", "n1",
                 env={"RISKRAIL_API_TOKEN": "t0ken"})
    try:
        b = banner(proc)
        with httpx.Client(base_url=b["api"], headers={"Authorization": "Bearer t0ken"}, timeout=30) as c:
            old = c.get("/api/rules").json()["version"]
            path = scalping / "strategies" / "scalp_trend.yaml"
            st = path.stat()
            new = path.with_suffix(".new")
            new.write_text(path.read_text().replace("trailing_distance: 0.0001", "trailing_distance: 0.0009"))  # same size
            os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same time: the watcher cannot tell
            os.replace(new, path)
            time.sleep(0.3)
            assert c.get("/api/rules").json()["version"] == old
            proc.send_signal(signal.SIGHUP)
            wait_for(lambda: c.get("/api/rules").json()["version"] != old, 10, "the SIGHUP reload")
            assert c.get("/api/rules").json()["last_reload"]["trigger"] == "signal"
    finally:
        _, err = stop(proc)
    records = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert records and all({"ts", "level", "logger", "message"} <= set(r) for r in records)
    assert any("rules reloaded" in r["message"] for r in records)


def test_broker_mt5_without_the_package_says_how_to_install_it(tmp_path: Path) -> None:
    pytest.importorskip("engine.adapters.mt5")
    if sys.platform == "win32":
        pytest.skip("the package may be installed on Windows")
    proc = riskrail("run", "--broker", "mt5", "--data-dir", str(tmp_path / "state"))
    assert proc.returncode == 1
    assert "pip install 'riskrail[mt5]'" in proc.stderr and "Windows" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state" / "redis").exists()  # it said so before starting anything


def test_doctor_says_what_is_wrong_in_plain_words(tmp_path: Path, redis_server, scalping) -> None:  # noqa: F811
    good = riskrail("doctor", "--config", str(scalping), "--redis-url", url_of(redis_server), "--port", "1")
    assert good.returncode == 0, good.stdout
    assert re.search(r"^ok\s+redis\s+Redis 6\.\d+\.\d+ at unix://", good.stdout, re.M)
    edit(scalping / "strategies" / "scalp_trend.yaml", "trailing_distance: 0.0001", "trailing_distance: lots")
    bad = riskrail("doctor", "--config", str(scalping), "--redis-url", "redis://127.0.0.1:1/0", "--format", "json")
    assert bad.returncode == 1
    checks = {c["name"]: c for c in json.loads(bad.stdout)["checks"]}
    assert checks["rules"]["status"] == "fail" and "scalp_trend.yaml:6:" in checks["rules"]["message"]
    assert checks["redis"]["status"] == "fail" and "not reachable" in checks["redis"]["message"]


def test_doctor_reports_the_embedded_redis_and_takes_the_options_of_run(tmp_path: Path) -> None:
    from engine.service.store import Embedded

    data = tmp_path / "state"
    embedded = Embedded(str(data / "redis"))
    try:
        embedded.client.set("riskrail:x", "1")
        pid = embedded.client.info("server")["process_id"]
        up = riskrail("doctor", "--data-dir", str(data), "--port", "1", "--feed", "demo", "--account", "desk1", "--speed", "5",
                      "--equity", "5000", "--log-level", "debug", "--format", "json")
        assert up.returncode == 0, up.stdout + up.stderr
        checks = {c["name"]: c for c in json.loads(up.stdout)["checks"]}
        assert checks["redis"]["status"] == "ok" and f"is running (pid {pid}, 1 keys)" in checks["redis"]["message"]
        assert "at 5x into account desk1" in checks["feed"]["message"]
    finally:
        embedded.close()
    down = riskrail("doctor", "--data-dir", str(data), "--port", "1")
    assert down.returncode == 0, down.stdout
    assert re.search(r"^ok\s+redis\s+the embedded Redis is not running; `riskrail run` starts it from the data in", down.stdout, re.M)


def test_a_port_in_use_is_said_before_anything_starts(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = riskrail("run", "--port", str(port), "--data-dir", str(tmp_path / "state"))
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "state" / "redis").exists()


def test_an_exported_journal_is_history_for_plan_and_replay(tmp_path: Path, redis_server, scalping) -> None:  # noqa: F811
    from tests.service.conftest import demo_events, drained, publish, start_service

    events = demo_events()
    svc = start_service(redis_server, scalping)
    try:
        publish(redis_server, "acct", events)
        wait_for(lambda: drained(redis_server, "acct"))
    finally:
        svc.stop()
    history = tmp_path / "history.jsonl"
    out = riskrail("export", "--redis-url", url_of(redis_server), "--out", str(history))
    assert out.returncode == 0, out.stderr
    assert [json.loads(line) for line in history.read_text().splitlines()] == events
    # to a reader that goes away (`riskrail export | head`): a quiet stop, no traceback
    closed = subprocess.Popen([sys.executable, "-m", "engine", "export", "--redis-url", url_of(redis_server)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    closed.stdout.close()
    _, err = closed.communicate(timeout=120)
    assert closed.returncode == 141 and "Traceback" not in err and "Exception ignored" not in err, err
    base = tmp_path / "base"
    import shutil

    shutil.copytree(scalping, base)
    edit(scalping / "strategies" / "scalp_trend.yaml", "trailing_distance: 0.0001", "trailing_distance: 0.0003")
    plan = riskrail("plan", "--base", str(base), "--config", str(scalping), "--history", str(history), "--format", "json")
    assert plan.returncode == 2, plan.stderr
    assert json.loads(plan.stdout)["changes"]
