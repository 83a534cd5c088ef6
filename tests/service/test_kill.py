"""`riskrail run` killed with SIGKILL mid-replay, again and again: after the restarts the positions and
the action stream equal those of an uninterrupted run (nothing lost, nothing emitted twice)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.service.store import Keys
from tests.service.conftest import demo_events, drained, reference, stored, url_of, wait_for


def start(tmp_path: Path, config: Path, url: str) -> subprocess.Popen:
    env = {**os.environ, "RISKRAIL_API_TOKEN": "test-token"}
    return subprocess.Popen(
        [sys.executable, "-m", "engine", "run", "--config", str(config), "--redis-url", url, "--feed", "redis",
         "--account", "acct", "--port", "0", "--name", "node-a", "--snapshot-every", "300", "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def decided(redis_server, journal_key: str, events: list[dict]) -> list[dict]:
    """The events the journal says were decided, each once with consecutive sequence numbers: every input event
    in order, and the clock events the scheduler sent while the account was idle (its rules read the time)."""
    journal = [json.loads(f[b"record"]) for _, f in redis_server.xrange(journal_key)]
    records = [r for r in journal if r["kind"] == "event"]
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    history = [r["event"] for r in records]
    assert [e for e in history if e["type"] != "clock"] == events
    return history


def test_sigkill_mid_replay_loses_nothing_and_emits_nothing_twice(tmp_path: Path, redis_server, scalping) -> None:
    events = demo_events()
    k = Keys()
    key = k.stream("acct", "in")
    redis_server.sadd(k.accounts, "acct")
    kills = 4
    size = -(-len(events) // (kills + 1))
    parts = [events[i:i + size] for i in range(0, len(events), size)]

    def feed(part: list[dict]) -> None:  # a live feed: the part arrives in bursts while the engine runs
        for i in range(0, len(part), 40):
            pipe = redis_server.pipeline(transaction=False)
            for obj in part[i:i + 40]:
                pipe.xadd(key, {"event": json.dumps(obj)})
            pipe.execute()
            time.sleep(0.02)

    rng = random.Random(5)
    journal_key = k.stream("acct", "journal")
    # each run gets a part of the input and is killed once it has decided some of it: the kills land
    # mid-replay however slow the machine is
    for part in parts[:kills]:
        feeder = threading.Thread(target=feed, args=(part,), daemon=True)
        before = redis_server.xlen(journal_key)
        feeder.start()
        proc = start(tmp_path, scalping, url_of(redis_server))
        try:
            wait_for(lambda before=before, proc=proc: redis_server.xlen(journal_key) > before or proc.poll() is not None, 120,
                     "the engine to decide events")
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(rng.uniform(0.05, 0.6))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        feeder.join(60)
    proc = start(tmp_path, scalping, url_of(redis_server))
    try:
        assert proc.stdout.readline().startswith("riskrail run: rules rv-"), proc.stderr.read()
        feed([e for part in parts[kills:] for e in part])
        wait_for(lambda: drained(redis_server, "acct"), 120, "the restarted engine to decide everything")
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err  # SIGTERM: a clean stop
    history = decided(redis_server, journal_key, events)
    want_actions, want_positions = reference(scalping, history)
    got_actions, got_positions = stored(redis_server, "acct")
    assert len(got_actions) == len(set(got_actions))
    assert got_actions == want_actions
    assert got_positions == want_positions


KINDS = ("non-UTF-8 bytes", "an integer of 5 000 digits", "a price of 400 digits", "a ts of 19 digits", "JSON nested 100 000 deep",
         "a tick at 1e308", "position_closed at 1e308", "ts 1e18", "ts 10**30", "ts in the year 9999")


def test_sigkill_after_each_kind_of_poison_event_recovers_and_decides_the_next_good_event(tmp_path: Path, redis_server, scalping) -> None:
    """For each kind: the poison and a good event go in, the process is killed (alternately before and
    after it decided them), a new process recovers and decides the next good event; in the end every
    poison is dead-lettered once and the good events were decided exactly as without them."""
    from tests.service.test_poison import POISON

    poison = {name: raw for name, raw, _ in POISON}
    events = demo_events()[:200 + 2 * len(KINDS)]
    k = Keys()
    key, journal_key = k.stream("acct", "in"), k.stream("acct", "journal")
    redis_server.sadd(k.accounts, "acct")
    feed = [json.dumps(e) for e in events]
    for raw in feed[:200]:
        redis_server.xadd(key, {"event": raw})
    good = iter(feed[200:])
    proc = start(tmp_path, scalping, url_of(redis_server))
    try:
        for i, kind in enumerate(KINDS):
            redis_server.xadd(key, {"event": poison[kind]})
            redis_server.xadd(key, {"event": next(good)})
            if i % 2:  # decided before the kill; else killed with them pending (or half-way)
                wait_for(lambda proc=proc: drained(redis_server, "acct") or proc.poll() is not None, 120,
                         f"the engine to decide past {kind}")
            assert proc.poll() is None, proc.stderr.read()
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = start(tmp_path, scalping, url_of(redis_server))
            redis_server.xadd(key, {"event": next(good)})
            wait_for(lambda proc=proc: drained(redis_server, "acct") or proc.poll() is not None, 120, f"the next good event after {kind}")
            assert proc.poll() is None, proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    dead = [f for _, f in redis_server.xrange(k.stream("acct", "dead"))]
    assert [f[b"event"][:200] for f in dead] == [poison[kind][:200] for kind in KINDS]
    assert all(b"internal error" not in f[b"reason"] for f in dead)
    assert stored(redis_server, "acct") == reference(scalping, decided(redis_server, journal_key, events))
