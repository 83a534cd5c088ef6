"""Rebuilding an account's engine from Redis: the snapshot, then the journal after it.

A snapshot (``P:A:snapshot``: the engine's state as a versioned record of plain data, JSON, see
``engine.rules.state``; its durable-rules facts, the journal entry it includes, the sequence number,
the rules version) is taken every ``snapshot_every`` events, at
every reload and at a clean stop. ``restore`` loads it with the rules of its version (or starts a new
engine when there is none); ``replay`` applies the journal records after it through the engine with
the broker fills they recorded, so nothing is sent to the broker again and no action is emitted
again. Action ids are deterministic, so a replayed decision is checked against the journal and a
mismatch is logged loudly.

The replay never raises on a record: an event the engine failed on live fails the same way here and
is skipped the same way; an unreadable record, or an event a newer boundary refuses, is logged and
skipped. What can still raise is Redis, or rules of a version Redis no longer holds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.typing import EncodableT, FieldT

from engine.config.load import RuleSet
from engine.events import EventError, parse_event
from engine.rules import allocation, state
from engine.rules.evaluator import Engine
from engine.service import journal
from engine.service.commit import AccountKeys, LeaseLost, under_lease
from engine.service.store import read_range, text

log = logging.getLogger("riskrail.worker")

#: the layout of a snapshot: "4" holds ``engine.rules.state`` records (JSON). A snapshot of another layout
#: (an older riskrail's pickle) is never loaded: the engine is rebuilt from the whole journal instead
FORMAT = "4"


@dataclass
class Position:
    """Where an engine stands in its account's history."""

    journal_id: str = "0-0"  # the last journal entry it includes
    seq: int = 0  # the sequence number of the last event it decided


def save(r: redis.Redis, k: AccountKeys, engine: Engine, at: Position, owner: str | None = None) -> bool:
    """Write the engine's snapshot (state, facts, journal position, rules version); return whether it was written.

    With ``owner``, only while ``owner`` holds the account's lease (checked under WATCH, as a commit is):
    a process that lost the account must not overwrite the snapshot of the one that took it over.
    The engine must stand exactly at ``at`` (no decided batch left uncommitted).
    """
    mapping: dict[FieldT, EncodableT] = {
        "engine": state.dumps(state.record(engine)), "facts": json.dumps(engine.portfolio.facts(engine.version)),
        "journal": at.journal_id, "seq": str(at.seq), "version": engine.version, "format": FORMAT}
    if owner is None:
        r.hset(k.snapshot, mapping=mapping)
        return True
    try:
        under_lease(r, k, owner, lambda pipe: pipe.hset(k.snapshot, mapping=mapping))
    except LeaseLost:
        return False
    return True


class Rebuild:
    """Restores one account's engine: ``restore()`` from the snapshot, then ``replay()`` the journal."""

    def __init__(self, r: redis.Redis, k: AccountKeys, rules_for: Callable[[str], RuleSet], active_rules: Callable[[], RuleSet],
                 engine_for: Callable[[RuleSet], Engine], recording: journal.Recording) -> None:
        self.r, self.k, self.rules_for, self.active_rules, self.engine_for = r, k, rules_for, active_rules, engine_for
        self.recording = recording

    def restore(self) -> tuple[Engine, Position]:
        """The engine of the last snapshot (or a new one) and where it stands.

        A snapshot that is not a record this release reads (an older riskrail's pickle, a later version,
        damaged data) is logged and left unread: the engine is rebuilt from the whole journal instead.
        """
        snap = self.r.hgetall(self.k.snapshot)
        if not snap:
            return self.engine_for(self.active_rules()), Position()
        account, found = self.k.account, text(snap.get(b"format")) or "1"
        if found != FORMAT:
            log.warning("account %s: the snapshot was written by another version of riskrail (format %s, this one reads %s); "
                        "rebuilding the engine from the whole journal", account, found, FORMAT)
            return self.engine_for(self.active_rules()), Position()
        engine = self.engine_for(self.rules_for(text(snap[b"version"])))
        try:
            state.restore(engine, state.loads(snap[b"engine"]))
            facts = json.loads(snap[b"facts"])
        except (state.StateError, KeyError, ValueError) as exc:
            log.error("account %s: the snapshot cannot be read (%s); rebuilding the engine from the whole journal", account, exc)
            return self.engine_for(self.active_rules()), Position()
        engine.portfolio.restore_facts(engine.version, facts)
        return engine, Position(text(snap[b"journal"]), int(snap[b"seq"]))

    def replay(self, engine: Engine, at: Position) -> int:
        """Apply the journal after ``at`` to ``engine`` (``at`` moves along); return the records applied."""
        n, start = 0, f"({at.journal_id}" if at.journal_id != "0-0" else "-"
        while True:
            entries = read_range(self.r, self.k.journal, start, count=1000)
            if not entries:
                return n
            for entry_id, fields in entries:
                at.journal_id = text(entry_id)
                start = f"({at.journal_id}"
                self._apply(engine, at, fields)
                n += 1

    def _apply(self, engine: Engine, at: Position, fields: dict) -> None:
        entry_id, account = at.journal_id, self.k.account
        try:
            rec = journal.decode(fields)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("account %s: journal entry %s is unreadable (%s); skipped", account, entry_id, exc)
            return
        kind = rec["kind"]
        if kind == "job" and rec.get("shares"):  # an applied plan moved the capital at this point of the journal
            allocation.rebalance(engine, dict(rec["shares"]), int(rec["ts"]), dict(rec["targets"]))
        elif kind == "job" and rec.get("targets"):  # a journal written before capital moved: the targets only
            engine.capital.targets = dict(rec["targets"])
        if kind == "reload":
            engine.reload(self.rules_for(rec["version"]))
        elif kind == "event":
            if rec["version"] != engine.version:
                engine.reload(self.rules_for(rec["version"]))
            at.seq = rec["seq"]
            try:
                event = parse_event(rec["event"])
            except EventError as exc:
                log.error("account %s: journal entry %s holds an event this version refuses (%s); skipped", account, entry_id, exc)
                return
            self.recording.replay = rec.get("fills", {})
            try:
                actions = engine.process(event, seq=rec["seq"])
            except Exception as exc:  # as live: journaled with its error, skipped
                if not rec.get("error"):
                    log.error("account %s: replaying journal entry %s failed (%s: %s) where the live run did not",
                              account, entry_id, type(exc).__name__, exc)
                return
            finally:
                self.recording.replay = None
            if [a.id for a in actions] != rec["actions"]:
                log.error("account %s: replaying journal entry %s gave other actions than journaled; "
                          "the snapshot or the rules of version %s differ from the original run", account, entry_id, rec["version"])
