"""``riskrail halt|resume|reduce-only|flatten`` and ``riskrail trading-state``: the kill switch from a shell.

Each change is an operator's event (``engine.operator``) put on the account's input stream in the
service's Redis, by ``cli:<user>``, as the API would put it; the command waits until the account's
engine has decided and committed it (``--wait``), then prints the states in force (or the positions a
flatten closes). Without an engine running the account the event stays queued: it is applied when
one runs it, and the command says so and exits 1.
"""

from __future__ import annotations

import argparse
import getpass
import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from engine.cli._redis import add_redis_options, service_redis
from engine.errors import RiskrailError

if TYPE_CHECKING:
    import redis

    from engine.service.store import Entry

#: command -> the state it sets (None: flatten)
COMMANDS = {"halt": "HALTED", "resume": "ACTIVE", "reduce-only": "REDUCING", "flatten": None}
_HELP = {"halt": "halt trading: every proposal is rejected; stops, targets and closes go on",
         "resume": "resume trading (ACTIVE): lifts the operators' state of that scope",
         "reduce-only": "REDUCING: only proposals that reduce the net exposure of their symbol are accepted",
         "flatten": "close every open position (of a strategy, a symbol) through the broker"}


def register(sub: argparse._SubParsersAction) -> None:
    for name, state in COMMANDS.items():
        p = sub.add_parser(name, help=_HELP[name], description=_HELP[name] + ". The change goes through the account's input "
                           "stream in the service's Redis, is journaled by cli:USER with the reason, and is printed once applied.")
        p.add_argument("--strategy", metavar="S", help="only this strategy" + ("" if state is None else " (not with --symbol)"))
        p.add_argument("--symbol", metavar="X", help="only this symbol" + ("" if state is None else " (not with --strategy)"))
        p.add_argument("--reason", required=True, metavar="TEXT", help="why (journaled and shown with the state)")
        _common(p)
        p.set_defaults(func=run, state=state)
    p = sub.add_parser("trading-state", help="show an account's trading states", description="Show the trading states of an "
                       "account as the service last committed them: its own, every strategy's and symbol's that refuses something.")
    _common(p)
    p.set_defaults(func=show)


def _common(p: argparse.ArgumentParser) -> None:
    add_redis_options(p)
    p.add_argument("--account", help="the account (default: the only one the service runs)")
    p.add_argument("--wait", type=float, default=10.0, metavar="SECONDS", help="how long to wait for the engine (default 10)")


def run(args: argparse.Namespace) -> int:
    from engine.events import EventError, parse_event, to_json
    from engine.service.store import Keys, publish

    obj: dict[str, Any] = {"type": "flatten" if args.state is None else "trading_state", "ts": int(time.time() * 1000),
                           "strategy": args.strategy, "symbol": args.symbol, "reason": args.reason, "by": f"cli:{getpass.getuser()}"}
    if args.state is not None:
        obj["state"] = args.state
    try:
        event = parse_event(obj)
    except EventError as exc:
        raise RiskrailError(str(exc)) from None
    keys = Keys(args.prefix)
    with service_redis(args) as client:
        account = _account(client, keys, args.account)
        entry = publish(client, keys, account, to_json(event))
        if not _decided(client, keys.stream(account, "in"), entry, args.wait):
            raise RiskrailError(f"queued as entry {entry} of account {account}, but no engine decided it within {args.wait:g} s: "
                                "is `riskrail run` running? It is applied when the account's engine runs")
        record = _journal_record(client, keys.stream(account, "journal"), entry)
        if record is not None and record.get("error"):
            raise RiskrailError(f"not applied: {record['error']}")
        if args.state is None:
            closing = _closing(client, keys.stream(account, "actions"), record)
            print(f"riskrail flatten: account {account}: closing {', '.join(closing) if closing else 'nothing (no open position)'}")
            return 0
        _print_states(client, keys, account)
    return 0


def show(args: argparse.Namespace) -> int:
    from engine.service.store import Keys

    keys = Keys(args.prefix)
    with service_redis(args) as client:
        _print_states(client, keys, _account(client, keys, args.account))
    return 0


def _account(client: redis.Redis, keys: Any, account: str | None) -> str:
    from engine.service.store import text

    accounts = sorted(text(a) for a in client.smembers(keys.accounts))
    if account is None and len(accounts) == 1:
        return accounts[0]
    if account is None or account not in accounts:
        found = "no account " + repr(account) + "; " if account is not None else ""
        raise RiskrailError(f"{found}say which account: --account one of {', '.join(accounts) or '(none: is the service set up?)'}")
    return account


def _decided(client: redis.Redis, stream: str, entry: str, wait: float) -> bool:
    """Whether the engine acknowledged input ``entry`` (decided and committed it) within ``wait`` seconds."""
    import redis

    from engine.service.store import GROUP, text

    deadline = time.monotonic() + wait
    want = tuple(int(x) for x in entry.split("-"))
    while True:
        try:
            groups = client.xinfo_groups(stream)
        except redis.ResponseError:
            groups = []
        for g in groups:
            delivered = tuple(int(x) for x in text(g["last-delivered-id"]).split("-"))
            if text(g["name"]) == GROUP and delivered >= want and not client.xpending_range(stream, GROUP, min=entry, max=entry, count=1):
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def _journal_record(client: redis.Redis, journal: str, entry: str) -> dict[str, Any] | None:
    """The journal record of input ``entry``, looked for among the last 10 000."""
    for _, fields in _tail(client, journal):
        rec = json.loads(fields[b"record"])
        if rec.get("entry") == entry:
            return rec if isinstance(rec, dict) else None
    return None


def _closing(client: redis.Redis, actions: str, record: dict[str, Any] | None) -> list[str]:
    """The positions the closes of a flatten's journal record name, in order."""
    ids = set(record.get("actions", [])) if record is not None else set()
    found = {}
    for _, fields in _tail(client, actions):
        a = json.loads(fields[b"action"])
        if a["id"] in ids and a["type"] == "close":
            found[a["id"]] = a["position_id"]
    return [found[i] for i in (record or {}).get("actions", []) if i in found]


def _tail(client: redis.Redis, key: str) -> list[Entry]:
    """The last 10 000 entries of stream ``key``, newest first (``XREVRANGE`` over RESP2: ids and fields, never None)."""
    return cast("list[Entry]", client.xrevrange(key, count=10_000))


def _print_states(client: redis.Redis, keys: Any, account: str) -> None:
    from engine.service.store import text

    state = client.hgetall(keys.stream(account, "state"))
    raw = state.get(b"trading_states")
    if raw is None:
        raise RiskrailError(f"account {account} has no trading states recorded yet: has its engine run?")
    print(f"account {account}: {text(state[b'trading_state'])}")
    for s in json.loads(raw):
        where = "account" if s["scope"] == "account" else f"{s['scope']} {s['name']}"
        at = datetime.fromtimestamp(s["at"] / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if s["at"] else "-"
        print(f"  {where:<28} {s['state']:<9} by {s['by'] or '-':<24} {at:<21} {s['reason']}")
