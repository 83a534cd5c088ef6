"""The journal of an account: one record per decision, the format a restart replays.

Each entry of the stream ``P:A:journal`` has one field, ``record``: a JSON object whose ``kind`` is

- ``event``: ``entry`` (the input entry id), ``seq`` (1, 2, … per account), ``version`` (the rules
  version that decided it), ``event`` (the event as ``engine.events.to_json`` writes it), ``actions``
  (their ids, in order), ``fills`` (action id → the broker's fills ``[position_id, ts, volume, price,
  rule]``) and, when the engine raised on it, ``error``;
- ``refused``: ``entry`` and ``reason``: input that did not cross the validation boundary (it is in
  the dead-letter stream too);
- ``job``: ``entry``, ``job``, ``actions``, and for an applied plan the allocation ``targets``, the capital
  ``shares`` it gave each strategy at ``ts`` and who applied it (``by``: auto_apply or a token's name);
- ``reload``: ``version``, ``previous``, ``seq``: the rules changed between two events.

``Recording`` wraps the broker so that a decision records the fills it got, and a replay gets the
recorded fills back instead of calling the broker again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TextIO

from engine.actions import Action
from engine.events import Event, to_json
from engine.ports import Broker, FillReport
from engine.service.store import Fields, text

#: fills by action id, each ``[position_id, ts, volume, price, rule]``
Fills = dict[str, list[list[Any]]]


@dataclass
class Decision:
    """What the engine made of one input entry, as the commit writes it."""

    entry_id: str
    event: Event | None  # None: refused before the engine
    raw: str | bytes  # the entry's raw event, for the dead-letter stream
    actions: list[Action] = field(default_factory=list)
    fills: Fills = field(default_factory=dict)
    error: str | None = None
    seq: int = 0
    job: str | None = None
    result: dict[str, Any] | None = None  # a job's result
    subject: str | None = None  # the position a refused proposal named (its waiter is told)

    @property
    def dead(self) -> bool:
        """Whether the entry goes to the dead-letter stream: refused, or failed with no action."""
        return self.job is None and (self.event is None or bool(self.error and not self.actions))


def record(d: Decision, version: str) -> dict[str, Any]:
    """The journal record of a decision (``version``: the rules version that decided it)."""
    if d.job is not None:
        result = d.result or {}
        applied = bool(result.get("applied"))
        return {"kind": "job", "entry": d.entry_id, "job": d.job, "actions": [a.id for a in d.actions],
                "targets": result.get("targets") if applied else None, "shares": result.get("after") if applied else None,
                "ts": result.get("ts"), "by": result.get("applied_by")}
    if d.event is None:
        return {"kind": "refused", "entry": d.entry_id, "reason": d.error}
    out = {"kind": "event", "entry": d.entry_id, "seq": d.seq, "version": version, "event": to_json(d.event),
           "actions": [a.id for a in d.actions], "fills": d.fills}
    if d.error:
        out["error"] = d.error
    return out


def reload_record(version: str, previous: str, seq: int) -> dict[str, Any]:
    """The journal record of a rules change between two events."""
    return {"kind": "reload", "version": version, "previous": previous, "seq": seq}


def encode(rec: dict[str, Any]) -> Fields:
    """The stream fields of a record."""
    return {"record": json.dumps(rec, allow_nan=False)}


def decode(fields: dict) -> dict[str, Any]:
    """The record of a stream entry; raises ``ValueError`` (or ``KeyError``/``TypeError``) when unreadable."""
    rec = json.loads(fields[b"record"])
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str):
        raise ValueError("not a journal record")
    return rec


def export_history(client, journal_key: str, out: TextIO, max_events: int) -> int:
    """Write the last ``max_events`` decided events of a journal to ``out`` as JSON lines (the history
    ``riskrail plan`` and ``replay`` read); return how many. Unreadable records are skipped."""
    events: list[dict[str, Any]] = []
    last = "+"
    while len(events) < max_events:
        page = client.xrevrange(journal_key, max=last, min="-", count=min(10_000, max_events - len(events) + 1))
        if not page:
            break
        for _, fields in page:
            try:
                rec = decode(fields)
            except (KeyError, TypeError, ValueError):
                continue
            if rec["kind"] == "event":
                events.append(rec["event"])
                if len(events) >= max_events:
                    break
        last = f"({text(page[-1][0])}"
    for event in reversed(events):
        out.write(json.dumps(event, allow_nan=False) + "\n")
    return len(events)


class Recording:
    """Wraps the broker: records the fills it reports per action, or replays recorded ones."""

    def __init__(self, broker: Broker | None) -> None:
        self.broker = broker
        self.replay: Fills | None = None
        self.fills: Fills = {}

    def execute(self, action: Action, quotes: dict[str, tuple[float, float]]) -> list[FillReport]:
        if self.replay is not None:
            return [FillReport(*f) for f in self.replay.get(action.id, [])]
        if self.broker is None:
            return []
        out = self.broker.execute(action, quotes)
        if out:
            # FillReport's fields in order (the deal id last: a record written before it has five)
            self.fills[action.id] = [[f.position_id, f.ts, f.volume, f.price, f.rule, f.action_id, f.deal] for f in out]
        return out
