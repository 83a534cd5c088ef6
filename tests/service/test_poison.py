"""Hostile input never stops risk management: every kind of poison event is dead-lettered with its
reason, the account goes on deciding exactly as without it, and restarts recover (the journal replay
never re-raises on what was journaled)."""

from __future__ import annotations

import json

from engine.service.store import Keys, text
from tests.service.conftest import demo_events, drained, publish, reference, start_service, stored, wait_for

K = Keys()
TS = 1549238500000  # inside the demo hour

# (name, raw value of the stream field `event`, a word of the reason it is dead-lettered with)
POISON: list[tuple[str, bytes, str]] = [
    ("non-UTF-8 bytes", b'{"type": "tick", "ts": 1549238500000, "symbol": "EUR\xff\xfeUSD", "bid": 1.1, "ask": 1.1}', "UTF-8"),
    ("a lone surrogate escape", b'{"type": "tick", "ts": 1549238500000, "symbol": "EUR\\ud800", "bid": 1.1, "ask": 1.1}', "printable"),
    ("an integer of 5 000 digits", b'{"type": "clock", "ts": ' + b"9" * 5000 + b"}", "digits"),
    ("a price of 400 digits", b'{"type": "tick", "ts": 1549238500000, "symbol": "EURUSD", "bid": 1' + b"0" * 400
     + b', "ask": 1' + b"0" * 400 + b"}", "digits"),
    ("a ts of 19 digits", b'{"type": "clock", "ts": 1549238500000000000}', "nanoseconds"),
    ("JSON nested 100 000 deep", b'{"type": "clock", "ts": 1549238500000, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "bytes"),
    ("JSON nested 1 000 deep", b'{"type": "clock", "ts": 1549238500000, "x": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested"),
    ("a tick at 1e308", b'{"type": "tick", "ts": 1549238500000, "symbol": "EURUSD", "bid": 1e308, "ask": 1e308}', "up to"),
    ("a tick at 1e309 (infinity)", b'{"type": "tick", "ts": 1549238500000, "symbol": "EURUSD", "bid": 1e309, "ask": 1e309}', "finite"),
    ("position_closed at 1e308", b'{"type": "position_closed", "ts": 1549238500000, "position_id": "T1", "price": 1e308}', "up to"),
    ("ts 1e18", b'{"type": "clock", "ts": 1e18}', "nanoseconds"),
    ("ts 10**30", b'{"type": "clock", "ts": 1000000000000000000000000000000}', "digits"),
    ("ts in the year 9999", b'{"type": "clock", "ts": "9999-12-31T23:59:59+00:00"}', "between 2000-01-01 and 2100-01-01"),
    ("ts in epoch seconds", b'{"type": "clock", "ts": 1549238500}', "epoch seconds"),
    ("NaN in an extra field", b'{"type": "clock", "ts": 1549238500000, "note": NaN}', "NaN"),
    ("a 100 KB event", b'{"type": "clock", "ts": 1549238500000, "pad": "' + b"x" * 100_000 + b'"}', "bytes"),
    ("a control character in an id", b'{"type": "position_closed", "ts": 1549238500000, "position_id": "T1\\u0000"}', "printable"),
    ("not an object", b"[1, 2, 3]", "object"),
    ("empty", b"", "nothing"),
]


def _dead(client, account: str = "acct") -> list[dict]:
    return [{text(a): (b.decode("utf-8", "replace") if isinstance(b, bytes) else b) for a, b in f.items()}
            for _, f in client.xrange(K.stream(account, "dead"))]


def _journal(client, account: str = "acct") -> list[dict]:
    return [json.loads(f[b"record"]) for _, f in client.xrange(K.stream(account, "journal"))]


def test_every_kind_of_poison_event_is_dead_lettered_and_the_account_decides_as_without_it(redis_server, scalping) -> None:
    events = demo_events()[:600]
    svc = start_service(redis_server, scalping)
    try:
        publish(redis_server, "acct", events[:300])  # T1 (a long) is open by now
        for _, raw, _ in POISON:
            redis_server.xadd(K.stream("acct", "in"), {"event": raw})
        publish(redis_server, "acct", events[300:])
        wait_for(lambda: drained(redis_server, "acct"), 60, "every entry decided")
        health = svc.workers["acct"].health()
        recoveries = svc.metrics.recoveries._value.get()
    finally:
        svc.stop()
    dead = _dead(redis_server)
    assert len(dead) == len(POISON)
    for (name, _, word), d in zip(POISON, dead, strict=True):
        assert word in d["reason"], (name, d["reason"])
        assert "internal error" not in d["reason"] and "Traceback" not in d["reason"], name
    assert stored(redis_server, "acct") == reference(scalping, events)
    assert health["state"] == "deciding" and health["lag"] == 0 and health["failures"] == 0
    assert recoveries == 1  # the start only: no poison made the engine rebuild
    journal = _journal(redis_server)
    assert sum(r["kind"] == "refused" for r in journal) == len(POISON)


def test_the_dead_letters_and_failed_events_survive_a_restart_and_are_not_decided_again(redis_server, scalping, monkeypatch) -> None:
    """An event the engine raises on is journaled with its error; the journal replay after a restart
    meets it again and skips it the same way, so the restart recovers and decides what comes next."""
    from engine.rules.evaluator import Engine

    events = demo_events()[:500]
    original = Engine._on_closed
    calls = []

    def broken(self, e, out):
        calls.append(e.position_id)
        raise ZeroDivisionError("a bug")

    # the restart replays the whole journal (no snapshot: no count reached, and a lease that outlives a busy machine)
    svc = start_service(redis_server, scalping, snapshot_every=100_000, lease_ms=60_000, renew_ms=500)
    try:
        monkeypatch.setattr(Engine, "_on_closed", broken)
        publish(redis_server, "acct", events[:250])
        redis_server.xadd(K.stream("acct", "in"), {"event": json.dumps({"type": "position_closed", "ts": TS, "position_id": "T1"})})
        redis_server.xadd(K.stream("acct", "in"), {"event": POISON[0][1]})
        wait_for(lambda: drained(redis_server, "acct"))
        # a crash: the threads stop without their clean-stop snapshot and leases stay held
        w = svc.workers["acct"]
        # no snapshot on the way out (zeroing the count raced the worker's own count after its last commit)
        monkeypatch.setattr(w, "_snapshot", lambda: None)
        svc._stop.set()
        w._stop.set()
        w._wake()
        assert w.stopped.wait(30)
    finally:
        svc.stop()
    assert calls == ["T1"]
    before_dead = _dead(redis_server)
    assert len(before_dead) == 2
    assert "ZeroDivisionError: a bug" in before_dead[0]["reason"] and "UTF-8" in before_dead[1]["reason"]
    redis_server.delete(K.lease("acct"))
    svc = start_service(redis_server, scalping)  # the failing rule is still there: replay meets it again
    try:
        assert svc.workers["acct"].health()["state"] == "deciding"
        publish(redis_server, "acct", events[250:])
        wait_for(lambda: drained(redis_server, "acct"))
        health = svc.workers["acct"].health()
    finally:
        svc.stop()
    assert calls == ["T1", "T1"]  # met once live, once in the replay
    assert health["state"] == "deciding"
    assert _dead(redis_server) == before_dead  # survived the restart, nothing decided twice
    failed = [r for r in _journal(redis_server) if r.get("error")]
    assert len(failed) == 1 and failed[0]["event"]["position_id"] == "T1"
    monkeypatch.setattr(Engine, "_on_closed", original)


def test_a_batch_whose_commit_fails_is_decided_again_one_by_one_and_the_poison_entry_is_dead_lettered(
        redis_server, scalping, monkeypatch) -> None:
    """A failure outside the engine's own guard (here: writing one position's record) aborts the whole
    batch; after the rebuild the batch is decided one entry at a time, the entry that fails on its own
    is dead-lettered undecided, and everything else is decided exactly as without it."""
    from engine.service import views

    events = demo_events()[:400]
    poison = {"type": "position_opened", "ts": TS, "position_id": "X-POISON", "symbol": "EURUSD", "strategy_type": "scalp_trend",
              "strategy_name": "s", "action": "BUY", "volume": 0.01, "entry_price": 1.1457}
    original = views.record

    def record(p, **kw):
        if p.id == "X-POISON":
            raise RuntimeError("cannot write this one")
        return original(p, **kw)

    monkeypatch.setattr(views, "record", record)
    svc = start_service(redis_server, scalping)
    try:
        publish(redis_server, "acct", [*events[:200], poison, *events[200:]])
        wait_for(lambda: drained(redis_server, "acct"), 60)
        health = svc.workers["acct"].health()
    finally:
        svc.stop()
    dead = _dead(redis_server)
    assert len(dead) == 1 and "failed 2 times" in dead[0]["reason"] and json.loads(dead[0]["event"])["position_id"] == "X-POISON"
    assert stored(redis_server, "acct") == reference(scalping, events)
    assert health["state"] == "deciding" and health["failures"] == 0


def test_health_says_stalled_with_the_reason_while_the_engine_cannot_rebuild_and_deciding_once_it_can(
        redis_server, scalping, monkeypatch) -> None:
    svc = start_service(redis_server, scalping, lease_ms=60_000, renew_ms=500)  # the same worker all along
    try:
        w = svc.workers["acct"]
        assert w.health()["state"] == "deciding"

        def fail(*_):
            raise RuntimeError("snapshot unreadable")

        monkeypatch.setattr(w, "_recover", fail)
        monkeypatch.setattr(w, "_poll_broker", fail)  # the running loop fails at its next round
        w._wake()
        wait_for(lambda: w.health()["failures"] >= 2, 30, "the rebuild to fail twice")
        health = w.health()
        assert health["state"] == "stalled" and "snapshot unreadable" in health["reason"]
        monkeypatch.undo()
        wait_for(lambda: w.health()["state"] == "deciding", 30, "the rebuild to succeed")
        publish(redis_server, "acct", demo_events()[:20])
        wait_for(lambda: drained(redis_server, "acct"))
        assert w.health()["failures"] == 0
    finally:
        svc.stop()


def test_a_takeover_needs_allow_takeover_and_is_journaled(redis_server, scalping) -> None:
    events = demo_events()[:50]
    big = {"type": "position_opened", "ts": TS, "position_id": "BIG", "symbol": "EURUSD", "strategy_type": "scalp_trend",
           "strategy_name": "s", "action": "BUY", "volume": 1000.0, "entry_price": 1.1457, "existing": True}
    svc = start_service(redis_server, scalping)
    try:
        publish(redis_server, "acct", [*events, big])
        wait_for(lambda: drained(redis_server, "acct"))
        assert svc.workers["acct"].call(lambda e: "BIG" in e.book.positions) is False
    finally:
        svc.stop()
    dead = _dead(redis_server)
    assert len(dead) == 1 and "--allow-takeover" in dead[0]["reason"]
    redis_server.delete(K.lease("acct"))
    svc = start_service(redis_server, scalping, allow_takeover=True)
    try:
        publish(redis_server, "acct", [{**big, "position_id": "BIG2"}])
        wait_for(lambda: drained(redis_server, "acct"))
        assert svc.workers["acct"].call(lambda e: e.book.positions["BIG2"].is_open)
    finally:
        svc.stop()
    taken = [r for r in _journal(redis_server) if r["kind"] == "event" and r["event"].get("existing")]
    assert [r["event"]["position_id"] for r in taken] == ["BIG2"]


def test_riskrail_run_takes_positions_over_only_with_allow_takeover(tmp_path, redis_server, scalping) -> None:
    import os
    import signal
    import subprocess
    import sys

    from tests.service.conftest import url_of

    def run(*extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "engine", "run", "--config", str(scalping), "--redis-url", url_of(redis_server),
                                 "--feed", "redis", "--account", "acct", "--port", "0", "--log-level", "warning", *extra],
                                cwd=tmp_path, env={**os.environ, "RISKRAIL_API_TOKEN": "t"}, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    existing = {"type": "position_opened", "ts": TS, "symbol": "EURUSD", "strategy_type": "scalp_trend", "strategy_name": "s",
                "action": "BUY", "volume": 0.1, "entry_price": 1.1457, "existing": True}
    for flag, pid in (((), "E1"), (("--allow-takeover",), "E2")):
        proc = run(*flag)
        try:
            assert proc.stdout.readline().startswith("riskrail run:"), proc.stderr.read()
            publish(redis_server, "acct", [{**existing, "position_id": pid}])
            wait_for(lambda proc=proc: drained(redis_server, "acct") or proc.poll() is not None, 60)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)
    assert redis_server.hexists(K.stream("acct", "positions"), "E1") is False
    assert json.loads(redis_server.hget(K.stream("acct", "positions"), "E2"))["status"] == "open"
    assert [d["reason"].split(";")[0] for d in _dead(redis_server)] == [
        "existing: taking over a position without the pre-trade checks is an operator action"]
