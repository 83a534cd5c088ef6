"""One batch of decisions into Redis in ONE transaction, under the account's lease.

``commit`` writes, in a ``MULTI``/``EXEC`` that watches the lease key: the journal records, the
actions, the dead letters, an optimization's result, the touched positions, the account state and
the ``XACK`` of the input entries. An input entry is thus acknowledged exactly when its decision is
journaled. A renewal of the lease between ``WATCH`` and ``EXEC`` aborts the transaction, which is
tried again; a lease held by another process raises ``LeaseLost``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
from redis.client import Pipeline

from engine.errors import RiskrailError
from engine.rules import trading_state
from engine.rules.evaluator import Engine
from engine.service import journal, views
from engine.service.store import GROUP, Keys, text

#: stream caps (approximate trimming)
ACTIONS_MAXLEN = 1_000_000
JOURNAL_MAXLEN = 5_000_000
DEAD_MAXLEN = 100_000
OPTIMIZATIONS_MAXLEN = 10_000


T = TypeVar("T")


class LeaseLost(RiskrailError):
    """Another process owns this account now."""


@dataclass(frozen=True)
class AccountKeys:
    """The Redis keys of one account (see ``engine.service.store`` for what each holds)."""

    account: str
    input: str
    actions: str
    journal: str
    dead: str
    positions: str
    state: str
    snapshot: str
    lease: str
    wake: str
    optimizations: str

    @classmethod
    def of(cls, keys: Keys, account: str) -> AccountKeys:
        s = keys.stream
        return cls(account, s(account, "in"), s(account, "actions"), s(account, "journal"), s(account, "dead"),
                   s(account, "positions"), s(account, "state"), s(account, "snapshot"), keys.lease(account),
                   s(account, "wake"), keys.optimizations)


def state_record(engine: Engine, seq: int) -> dict[str, str]:
    """The account state hash: what an operator reads without the engine (``P:A:state``)."""
    e = engine
    states, effective = trading_state.listing(e)
    return {
        "rules_version": e.version, "seq": str(seq), "equity": repr(e.equity), "day": e.day.key,
        "day_start_equity": repr(e.day.start_equity), "breached": "1" if e.day.breached else "0",
        "halted": e.portfolio.halted(e.version) or "", "open_positions": str(e.book.n_open),
        "trading_state": effective, "trading_states": json.dumps([x.to_json() for x in states]),
        "ledgers": json.dumps({n: vars(ledger) for n, ledger in e.ledgers.items()}),
    }


def _queue(pipe, k: AccountKeys, engine: Engine, decisions: list[journal.Decision], seq: int) -> list[int]:
    """Queue a batch's writes in the transaction; return where the journal entries are among the replies."""
    touched: set[str] = set()
    journal_at: list[int] = []
    for d in decisions:
        if d.dead:
            pipe.xadd(k.dead, {"entry": d.entry_id, "event": d.raw, "reason": d.error or ""}, maxlen=DEAD_MAXLEN, approximate=True)
        journal_at.append(len(pipe.command_stack))
        pipe.xadd(k.journal, journal.encode(journal.record(d, engine.version)), maxlen=JOURNAL_MAXLEN, approximate=True)
        if d.job is not None:
            pipe.xadd(k.optimizations, {"result": json.dumps(d.result, allow_nan=False)}, maxlen=OPTIMIZATIONS_MAXLEN, approximate=True)
        for a in d.actions:
            pipe.xadd(k.actions, {"action": a.to_line()}, maxlen=ACTIONS_MAXLEN, approximate=True)
            if a.position_id:
                touched.add(a.position_id)
            for item in a.params.get("positions", []) if a.type == "close_all" else []:
                touched.add(item["position_id"])
        pid = getattr(d.event, "position_id", None)
        if pid:
            touched.add(pid)
    for pid in touched:
        p = engine.book.positions.get(pid)
        if p is not None:
            pipe.hset(k.positions, pid, json.dumps(views.record(p, audit=True), allow_nan=False))
    pipe.hset(k.state, mapping=state_record(engine, seq))
    pipe.xack(k.input, GROUP, *[d.entry_id for d in decisions])
    return journal_at


def under_lease(r: redis.Redis, k: AccountKeys, owner: str, queue: Callable[[Pipeline], T],
                attempts: int = 10) -> tuple[T, list[Any]]:
    """Run the writes ``queue(pipe)`` queues in one ``MULTI``/``EXEC`` that watches the account's lease,
    if ``owner`` holds it; return what ``queue`` returned and the replies. A change of the lease between
    ``WATCH`` and ``EXEC`` applies nothing and is checked again (``attempts`` times). Raises ``LeaseLost``
    when another process holds the lease, ``redis.RedisError``."""
    for _ in range(attempts):
        with r.pipeline(transaction=True) as pipe:
            pipe.watch(k.lease)
            if text(pipe.get(k.lease)) != owner:
                raise LeaseLost(k.account)
            pipe.multi()
            queued = queue(pipe)
            try:
                return queued, pipe.execute()
            except redis.WatchError:
                continue  # the lease was renewed (or taken) between WATCH and EXEC: nothing applied, check again
    raise LeaseLost(k.account)


def commit(r: redis.Redis, k: AccountKeys, owner: str, engine: Engine, decisions: list[journal.Decision], seq: int,
           attempts: int = 10) -> str | None:
    """Write a batch in one transaction if ``owner`` holds the lease; return the last journal entry id
    written (None when the batch had none). Raises ``LeaseLost``, ``redis.RedisError``."""
    journal_at, results = under_lease(r, k, owner, lambda pipe: _queue(pipe, k, engine, decisions, seq), attempts)
    return text(results[journal_at[-1]]) if journal_at else None
