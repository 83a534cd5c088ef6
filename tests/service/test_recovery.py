"""The account engine on Redis: it decides like the in-process engine, survives restarts, and refuses
bad input into the dead-letter stream without losing anything."""

from __future__ import annotations

import json
import pickle
import time

import pytest

from engine.service.recovery import FORMAT
from engine.service.store import Keys, text
from tests.service.conftest import demo_events, drained, publish, reference, start_service, stored, wait_for


def test_the_service_decides_exactly_like_the_in_process_engine(redis_server, scalping) -> None:
    events = demo_events()
    svc = start_service(redis_server, scalping, snapshot_every=500)
    try:
        publish(redis_server, "acct", events)
        wait_for(lambda: drained(redis_server, "acct"), what="the input to be decided")
    finally:
        svc.stop()
    want_actions, want_positions = reference(scalping, events)
    got_actions, got_positions = stored(redis_server, "acct")
    assert len(want_actions) > 50
    assert got_actions == want_actions
    assert got_positions == want_positions
    k = Keys()
    journal = [json.loads(f[b"record"]) for _, f in redis_server.xrange(k.stream("acct", "journal"))]
    assert [r["seq"] for r in journal if r["kind"] == "event"] == list(range(1, len(events) + 1))
    state = {text(a): text(b) for a, b in redis_server.hgetall(k.stream("acct", "state")).items()}
    assert state["rules_version"] == json.loads(want_actions[0])["rules_version"]


@pytest.mark.parametrize("snapshot_every", [100_000, 700])
def test_a_restart_rebuilds_the_engine_from_snapshot_and_journal(redis_server, scalping, snapshot_every) -> None:
    """100 000: the restart replays the whole journal; 700: it loads a snapshot and replays the rest."""
    events = demo_events()
    cut = len(events) // 2
    svc = start_service(redis_server, scalping, snapshot_every=snapshot_every, consumer="node-1")
    publish(redis_server, "acct", events[:cut])
    wait_for(lambda: drained(redis_server, "acct"))
    svc._stop.set()  # a process that stops without its clean-stop snapshot and keeps its lease
    for w in svc.workers.values():
        w.since_snapshot = 0
        w.stop()
    svc.workers.clear()
    # restarted under the same name (riskrail run --name), it takes its account back without waiting for the lease
    svc = start_service(redis_server, scalping, snapshot_every=snapshot_every, consumer="node-1")
    try:
        publish(redis_server, "acct", events[cut:])
        wait_for(lambda: drained(redis_server, "acct"))
    finally:
        svc.stop()
    assert stored(redis_server, "acct") == reference(scalping, events)


def test_bad_input_goes_to_the_dead_letter_stream_with_its_reason_and_nothing_else_is_lost(redis_server, scalping) -> None:
    events = demo_events()[:400]
    k = Keys()
    key = k.stream("acct", "in")
    svc = start_service(redis_server, scalping)
    try:
        publish(redis_server, "acct", events[:200])
        redis_server.xadd(key, {"event": "{not json"})
        redis_server.xadd(key, {"event": '{"type": "tick", "ts": 1549238500000, "symbol": "EURUSD", "bid": NaN, "ask": 1.1}'})
        redis_server.xadd(key, {"event": json.dumps({"type": "tick", "ts": 1549238500000, "symbol": "EURUSD", "bid": 1.2, "ask": 1.1})})
        redis_server.xadd(key, {"event": json.dumps({"type": "order", "ts": 1549238500000})})
        gold = {"type": "tick", "ts": 1549238500000, "symbol": "XAUUSD", "bid": 2000.0, "ask": 2000.5}
        redis_server.xadd(key, {"event": json.dumps(gold)})
        publish(redis_server, "acct", events[200:])
        wait_for(lambda: drained(redis_server, "acct"))
        problems = list(svc.workers["acct"].problems)
    finally:
        svc.stop()
    dead = [{text(a): text(b) for a, b in f.items()} for _, f in redis_server.xrange(k.stream("acct", "dead"))]
    assert [d["reason"].split(":")[0] for d in dead] == ["invalid JSON", "bid", "ask 1.1 is below bid 1.2", "type"]
    assert "bid: expected a finite number, found NaN" in dead[1]["reason"]
    assert any("unknown symbol 'XAUUSD'" in p for p in problems)  # valid but unknown: journaled, reported, ignored
    # the valid events, the unknown symbol's tick among them (it takes its sequence number), decided as always
    assert stored(redis_server, "acct") == reference(scalping, [*events[:200], gold, *events[200:]])
    journal = [json.loads(f[b"record"]) for _, f in redis_server.xrange(k.stream("acct", "journal"))]
    assert sum(r["kind"] == "refused" for r in journal) == 4
    assert sum(r["kind"] == "event" for r in journal) == len(events) + 1


def test_an_event_the_engine_fails_on_is_journaled_and_dead_lettered_and_the_engine_goes_on(redis_server, scalping, monkeypatch) -> None:
    from engine.rules.evaluator import Engine

    events = demo_events()[:300]
    original = Engine._on_closed

    def broken(self, e, out):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(Engine, "_on_closed", broken)
    svc = start_service(redis_server, scalping)
    try:
        closed = {"type": "position_closed", "ts": events[150]["ts"], "position_id": "T1"}
        publish(redis_server, "acct", [*events[:150], closed, *events[150:]])
        wait_for(lambda: drained(redis_server, "acct"))
        assert svc.workers["acct"].call(lambda e: e.counts["events"]) == 301
    finally:
        svc.stop()
        monkeypatch.setattr(Engine, "_on_closed", original)
    k = Keys()
    dead = [{text(a): text(b) for a, b in f.items()} for _, f in redis_server.xrange(k.stream("acct", "dead"))]
    assert len(dead) == 1 and "internal error on this event: ZeroDivisionError: a bug" in dead[0]["reason"]


def test_lease_renewals_during_commits_neither_rebuild_the_engine_nor_lose_anything(redis_server, scalping) -> None:
    """The lease is renewed every 20 ms while batches commit: a renewal between WATCH and EXEC aborts
    the transaction, which is then retried (it used to rebuild the engine from Redis each time). The
    lease itself lasts long, so a busy machine that delays a renewal does not let it expire."""
    events = demo_events()
    svc = start_service(redis_server, scalping, lease_ms=30_000, renew_ms=20)
    try:
        for i in range(0, len(events), 100):
            publish(redis_server, "acct", events[i:i + 100])
            time.sleep(0.01)
        wait_for(lambda: drained(redis_server, "acct"))
        recoveries = svc.metrics.recoveries._value.get()
    finally:
        svc.stop()
    assert recoveries == 1  # the start only
    assert stored(redis_server, "acct") == reference(scalping, events)


class _Payload:
    """A pickle that, loaded, would create a file: the proof that a snapshot never runs code."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["older pickle", "pickle as a record", "damaged record"])
def test_a_snapshot_that_is_not_a_record_of_this_release_is_never_loaded_and_the_engine_is_rebuilt(
        redis_server, scalping, tmp_path, kind) -> None:
    """A snapshot written by an older riskrail (a pickle), or a blob a hostile client put in a shared
    Redis, is never unpickled or run: the restart rebuilds the engine from the whole journal and decides
    as if it had never stopped."""
    events = demo_events()
    cut = len(events) // 2
    svc = start_service(redis_server, scalping, snapshot_every=300)
    try:
        publish(redis_server, "acct", events[:cut])
        wait_for(lambda: drained(redis_server, "acct"))
    finally:
        svc.stop()
    k, marker = Keys(), tmp_path / "ran"
    snap = k.stream("acct", "snapshot")
    assert text(redis_server.hget(snap, "format")) == FORMAT
    assert json.loads(redis_server.hget(snap, "engine"))["format"] == "riskrail.engine-state"
    payload = pickle.dumps(_Payload(str(marker)))
    if kind == "older pickle":
        redis_server.hset(snap, mapping={"format": "3", "engine": payload})
    elif kind == "pickle as a record":
        redis_server.hset(snap, "engine", payload)
    else:
        redis_server.hset(snap, "engine", redis_server.hget(snap, "engine")[:-40])
    svc = start_service(redis_server, scalping)
    try:
        publish(redis_server, "acct", events[cut:])
        wait_for(lambda: drained(redis_server, "acct"))
        recoveries = svc.metrics.recoveries._value.get()
    finally:
        svc.stop()
    assert not marker.exists()
    assert recoveries == 1
    assert stored(redis_server, "acct") == reference(scalping, events)


def test_a_process_that_loses_its_lease_mid_batch_leaves_no_snapshot_ahead_of_the_journal(redis_server, scalping) -> None:
    """The lease moves to another process while this one decides a batch: the commit is refused, and the
    engine, which decided a batch that is not journaled, must write no snapshot (on a busy machine a
    lease lapses; the snapshot it wrote made the next owner apply that batch twice)."""
    events = demo_events()[:900]
    k = Keys()
    first = start_service(redis_server, scalping, consumer="first", snapshot_every=100_000)
    try:
        publish(redis_server, "acct", events[:300])
        wait_for(lambda: drained(redis_server, "acct"))
        worker = first.workers["acct"]
        snapshot_before = redis_server.hgetall(k.stream("acct", "snapshot"))
        redis_server.set(k.lease("acct"), "second")  # taken over: "first" finds out at its next commit
        publish(redis_server, "acct", events[300:600])
        wait_for(worker.stopped.is_set, 60, "the engine that lost its lease to stop")
        assert redis_server.hgetall(k.stream("acct", "snapshot")) == snapshot_before
    finally:
        first.stop()
    second = start_service(redis_server, scalping, consumer="second")
    try:
        publish(redis_server, "acct", events[600:])
        wait_for(lambda: drained(redis_server, "acct"))
    finally:
        second.stop()
    assert stored(redis_server, "acct") == reference(scalping, events)
