"""Hostile input events never stop risk management, fuzzed.

- ``engine.events.decode``/``loads``: any bytes or text either parse to an event or raise
  ``EventError`` with a message, in bounded memory; a parsed event re-serialises to strict JSON (no
  NaN) that decodes to the same event; a well-formed event is never refused.
- a plain engine: events the boundary accepts, however extreme (prices at the limit, unknown ids and
  symbols, times far ahead), interleaved with the demo events, never make it raise, and every action
  and position it records stays strict JSON.
- the service: bad entries interleaved between the demo events on an account's input stream are all
  dead-lettered with their reason (never "internal error"), the demo events are decided exactly as
  without them, the account keeps deciding and was rebuilt only at its start.

The ``check_*`` functions are the properties; ``bench/fuzz.py`` runs them with many more cases.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.events import EventError, PositionOpened, decode, loads, parse_ts, to_json
from engine.service.store import Keys, text
from tests.fuzz import embedded_redis, scalping_copy
from tests.fuzz.strategies import dumps, events, mutated_events, raw_events, valid_events
from tests.service.conftest import demo_events, drained, reference, start_service, stored, wait_for

#: the most memory ``decode`` may hold for one input of at most MAX_EVENT_BYTES
DECODE_PEAK_BYTES = 32 << 20
FAST = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- decode and loads ------------------------------------------------------------------------------


def outcome(raw: Any) -> Any:
    """``decode(raw)``: the event, or the ``EventError`` message; any other exception propagates."""
    try:
        return decode(raw)
    except EventError as exc:
        message = str(exc)
        assert message and "Traceback" not in message, repr(message)
        return EventError


def check_decode(raw: bytes | str) -> Any:
    """``decode`` gives an event or ``EventError``, the same for bytes, bytearray, memoryview and text;
    an event re-serialises to strict JSON that decodes to itself, and ``loads`` agrees with it."""
    first = outcome(raw)
    forms: list[Any] = [bytearray(raw), memoryview(raw)] if isinstance(raw, bytes) else []
    try:  # the same input as text, or as bytes (unless it holds what UTF-8 cannot carry)
        forms.append(raw.decode("utf-8") if isinstance(raw, bytes) else raw.encode("utf-8"))
    except UnicodeError:
        pass
    for form in forms:
        again = outcome(form)
        assert again is EventError if first is EventError else again == first, (type(form).__name__, first, again)
    try:
        obj = loads(raw)
    except EventError:
        assert first is EventError  # what loads refuses, decode refuses
    else:
        assert isinstance(obj, dict)
    if first is not EventError:
        strict = json.dumps(to_json(first), allow_nan=False)  # ValueError on NaN or Infinity
        assert decode(strict) == first, strict
        assert decode(strict.encode()) == first
    return first


def check_bounded(raw: bytes) -> None:
    """``decode`` of one input holds at most ``DECODE_PEAK_BYTES`` while it runs."""
    tracemalloc.start()
    try:
        outcome(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < DECODE_PEAK_BYTES, (len(raw), peak)


def check_event_object(obj: dict[str, Any]) -> None:
    """The JSON text of an event object (well-formed or mutated) decodes as ``check_decode`` says."""
    text_ = dumps(obj)
    check_decode(text_)
    check_decode(text_.encode("utf-8", "surrogatepass"))
    check_decode(json.dumps(obj, allow_nan=True, ensure_ascii=False))  # characters as they are, lone surrogates too


def check_well_formed(obj: dict[str, Any]) -> None:
    """A well-formed event is accepted with the values it was sent with."""
    event = decode(dumps(obj))
    assert event.ts == parse_ts(obj["ts"]) and (isinstance(obj["ts"], str) or event.ts == obj["ts"])
    for key in ("symbol", "position_id", "volume", "price", "entry_price", "bid"):
        if key in obj and hasattr(event, key):
            assert getattr(event, key) == obj[key], key
    if isinstance(event, PositionOpened):
        assert event.side == (1 if obj["action"] == "BUY" else -1)
    check_decode(dumps(obj))


@settings(FAST, max_examples=200)
@given(raw=raw_events())
def test_any_bytes_decode_to_an_event_or_an_event_error(raw: bytes) -> None:
    check_decode(raw)


@settings(FAST, max_examples=100)
@given(raw=raw_events())
def test_decoding_any_bytes_holds_little_memory(raw: bytes) -> None:
    check_bounded(raw)


@settings(FAST, max_examples=200)
@given(obj=events)
def test_any_event_object_decodes_to_an_event_or_an_event_error_and_round_trips(obj: dict) -> None:
    check_event_object(obj)


@settings(FAST, max_examples=150)
@given(obj=valid_events())
def test_a_well_formed_event_of_every_type_is_accepted_as_sent(obj: dict) -> None:
    check_well_formed(obj)


@settings(FAST, max_examples=30)
@given(value=st.one_of(st.none(), st.integers(), st.floats(), st.lists(st.binary(max_size=4), max_size=2),
                       st.dictionaries(st.text(max_size=3), st.none(), max_size=2)))
def test_decode_of_anything_but_bytes_or_text_is_an_event_error(value: Any) -> None:
    with pytest.raises(EventError):
        decode(value)


# --- a plain engine ---------------------------------------------------------------------------------

DEMO_IDS = ("T1", "R1")
DEMO_TS = (1549238400000, 1549242000000)  # the demo hour


@st.composite
def engine_events(draw: st.DrawFn) -> dict[str, Any]:
    """An event the boundary accepts, aimed at the demo account: its positions, its symbol, its hour,
    and extreme values inside the limits (a bad one is refused before an engine sees it)."""
    obj = dict(draw(valid_events()))
    if "position_id" in obj and draw(st.booleans()):
        obj["position_id"] = draw(st.sampled_from(DEMO_IDS))
    if "symbol" in obj and draw(st.integers(0, 3)):
        obj["symbol"] = "EURUSD"
    if draw(st.integers(0, 3)):
        obj["ts"] = draw(st.integers(*DEMO_TS))
    for key in ("bid", "ask", "price", "entry_price", "volume"):
        if key in obj and draw(st.integers(0, 2)) == 0:
            obj[key] = draw(st.sampled_from([1e-6, 5e-324, 1.1457, 1.1458, 1e9, 999_999_999.9999999]))
    if obj["type"] == "tick" and "bid" in obj:
        obj["bid"], obj["ask"] = sorted([obj["bid"], obj["ask"]])
    return obj


def accepted(obj: dict) -> bool:
    try:
        decode(dumps(obj))
    except EventError:
        return False
    return True


def check_engine(rules: Any, good: list[dict], hostile: list[tuple[int, dict]]) -> None:
    """Decide ``good`` with each ``(index, event)`` of ``hostile`` inserted before ``good[index]``, on a
    plain engine: nothing raises, every action and position record is strict JSON."""
    from engine.adapters.paper import PaperBroker
    from engine.rules.evaluator import Engine
    from engine.service import views

    engine = Engine(rules, broker=PaperBroker())
    for obj in interleave(good, hostile):
        event = decode(json.dumps(obj, allow_nan=False))
        if isinstance(event, PositionOpened) and event.existing:
            continue  # a takeover is refused before the engine unless the operator allows it
        for action in engine.process(event):
            action.to_line()
    for p in engine.book.positions.values():
        json.dumps(views.record(p, audit=True), allow_nan=False)


def interleave(good: list, bad: list[tuple[int, Any]]) -> list:
    """``good`` with each ``(index, item)`` of ``bad`` placed before ``good[index]`` (in ``bad``'s order)."""
    out, by_index = [], sorted(bad, key=lambda b: b[0])
    j = 0
    for i, item in enumerate(good):
        while j < len(by_index) and by_index[j][0] <= i:
            out.append(by_index[j][1])
            j += 1
        out.append(item)
    out.extend(b[1] for b in by_index[j:])
    return out


GOOD = 600  # demo events per run: T1 and R1 open, a few actions decided


@pytest.fixture(scope="module")
def scalping_rules(tmp_path_factory):
    from engine.config import load_config

    return load_config(str(scalping_copy(tmp_path_factory.mktemp("fuzz-engine"))))


def hostile_batches(entries: st.SearchStrategy, max_size: int, good: int = GOOD,
                    min_size: int = 1) -> st.SearchStrategy[list[tuple[int, Any]]]:
    """Lists of ``(index, entry)``: entries to place before ``good[index]``."""
    return st.lists(st.tuples(st.integers(0, good), entries), min_size=min_size, max_size=max_size)


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile=hostile_batches(engine_events().filter(accepted), 25))
def test_accepted_extreme_events_never_make_a_plain_engine_raise(scalping_rules, hostile) -> None:
    check_engine(scalping_rules, demo_events()[:GOOD], hostile)


# --- the service ------------------------------------------------------------------------------------


def refused(fields: dict[bytes, bytes]) -> bool:
    """Whether the worker must dead-letter this input entry without deciding it: no event, an unknown
    job, an event the boundary refuses, or a takeover (``existing``) the service was not allowed."""
    if b"job" in fields:
        return fields[b"job"] != b"optimize_portfolio"
    if b"event" not in fields:
        return True
    event = outcome(fields[b"event"])
    return event is EventError or (isinstance(event, PositionOpened) and event.existing)


_junk_field = st.sampled_from([b"evnt", b"Event", b"", b"x", b"\xff"])
_bad_event = st.one_of(raw_events(), mutated_events().map(dumps).map(lambda s: s.encode("utf-8", "surrogatepass")))
stream_entries = st.one_of(
    _bad_event.map(lambda raw: {b"event": raw}),
    _bad_event.map(lambda raw: {b"event": raw}),
    _bad_event.map(lambda raw: {b"event": raw}),
    st.builds(lambda raw, k, v: {b"event": raw, k: v}, _bad_event, _junk_field, st.binary(max_size=20)),
    st.builds(lambda k, v: {k: v}, _junk_field, st.binary(max_size=50)),
    st.builds(lambda job, ev: {b"job": job, **({b"event": ev} if ev else {})},
              st.one_of(st.binary(max_size=20), st.sampled_from([b"optimize", b"daily_reset", b"\xff\xfe", b""])),
              st.sampled_from([b"", b'{"type": "clock", "ts": 1549238500000}'])),
).filter(refused)


@dataclass
class PoisonRun:
    """A Redis and a copy of the scalping rules shared by the runs, and what the demo events decide."""

    client: redis.Redis
    config: Path
    good: list[dict]
    expected: tuple[list[str], dict]
    runs: Iterator[int] = field(default_factory=itertools.count)

    def check(self, hostile: list[tuple[int, dict[bytes, bytes]]]) -> None:
        """Start a service of its own (its own key prefix), put ``good`` with ``hostile`` interleaved on
        the input stream, and check that every entry the worker must refuse (``refused``) was
        dead-lettered with its reason and everything else decided exactly as a plain engine decides it
        alone (the good events exactly as without the refused ones), with the account deciding and
        rebuilt only at its start."""
        entries = interleave([{b"event": json.dumps(obj).encode()} for obj in self.good], hostile)
        bad = [refused(fields) for fields in entries]
        decided = [to_json(decode(fields[b"event"])) for fields, b in zip(entries, bad, strict=True) if not b]
        expected = self.expected if decided == self.good else reference(self.config, decided)
        prefix = f"fuzz{next(self.runs)}"
        k = Keys(prefix)
        svc = start_service(self.client, self.config, prefix=prefix)
        try:
            self.client.sadd(k.accounts, "acct")
            pipe = self.client.pipeline(transaction=False)
            for fields in entries:
                pipe.xadd(k.stream("acct", "in"), fields)
            ids = [text(i) for i in pipe.execute()]
            wait_for(lambda: drained(self.client, "acct", prefix), 120, "every entry decided")
            health = svc.workers["acct"].health()
            recoveries = svc.metrics.recoveries._value.get()
        finally:
            svc.stop()
        dead = [{text(a): b for a, b in f.items()} for _, f in self.client.xrange(k.stream("acct", "dead"))]
        should_die = [i for i, b in zip(ids, bad, strict=True) if b]
        assert [text(d["entry"]) for d in dead] == should_die, "every bad entry dead-lettered, and nothing else"
        for d in dead:
            reason = text(d["reason"])
            assert reason and "internal error" not in reason and "Traceback" not in reason, reason
        assert stored(self.client, "acct", prefix) == expected
        assert health["state"] == "deciding" and health["failures"] == 0, health
        assert recoveries == 1  # the start only: no entry made the engine rebuild
        self.client.delete(*self.client.keys(f"{prefix}:*"))


@contextmanager
def poison_run(folder: Path | None = None, good: int = GOOD) -> Iterator[PoisonRun]:
    """A ``PoisonRun`` on an embedded Redis in ``folder`` (a temporary one by default)."""
    with tempfile.TemporaryDirectory(prefix="riskrail-fuzz-") as tmp:
        base = folder or Path(tmp)
        config = scalping_copy(base)
        events = demo_events()[:good]
        with embedded_redis(base / "redis") as client:
            yield PoisonRun(client, config, events, reference(config, events))


@pytest.fixture(scope="module")
def poison(tmp_path_factory) -> Iterator[PoisonRun]:
    with poison_run(tmp_path_factory.mktemp("fuzz-service")) as run:
        yield run


@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(bad=hostile_batches(stream_entries, 50, min_size=20))
def test_bad_entries_between_good_events_are_dead_lettered_and_the_good_ones_decided_as_without_them(poison, bad) -> None:
    poison.check(bad)


accepted_entries = engine_events().filter(accepted).map(lambda obj: {b"event": dumps(obj).encode()})


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(hostile=hostile_batches(accepted_entries, 25, min_size=10))
def test_accepted_extreme_events_are_decided_by_the_service_as_by_a_plain_engine(poison, hostile) -> None:
    poison.check(hostile)
