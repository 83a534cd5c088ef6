"""``riskrail export``: an account's journaled events from Redis, as JSON lines for `riskrail plan` and `riskrail replay`."""

from __future__ import annotations

import argparse
import os
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write an account's journaled events from Redis as JSON lines (history for plan/replay)",
                       description="Read the journal of an account from Redis (the running service's, or the embedded one under "
                       "--data-dir) and write the events it decided, in order, as JSON lines: the --history of `riskrail plan` "
                       "and the --events of `riskrail replay`.")
    p.add_argument("--redis-url", default=os.environ.get("RISKRAIL_REDIS_URL"), metavar="URL",
                   help="the service's Redis (default: the embedded one under --data-dir)")
    p.add_argument("--data-dir", default=".riskrail", metavar="DIR")
    p.add_argument("--account", default=None, help="the account (default: the only one, or 'demo'/'main')")
    p.add_argument("--prefix", default="riskrail")
    p.add_argument("--max-events", type=int, default=10_000_000, metavar="N", help="the last N events (default 10 000 000)")
    p.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engine.errors import RiskrailError
    from engine.service.journal import export_history
    from engine.service.store import Keys, connect, text

    if args.redis_url:
        client, close = connect(args.redis_url), None
    else:
        folder = os.path.join(args.data_dir, "redis")
        if not os.path.isfile(os.path.join(folder, "riskrail.rdb.settings")) and not os.path.isfile(os.path.join(folder, "appendonly.aof")):
            raise RiskrailError(f"no embedded Redis data in {folder}: give --redis-url, or --data-dir of a `riskrail run`")
        from engine.service.store import Embedded

        embedded = Embedded(folder)
        client, close = embedded.client, embedded
    try:
        keys = Keys(args.prefix)
        accounts = sorted(text(a) for a in client.smembers(keys.accounts))
        account = args.account or (accounts[0] if len(accounts) == 1 else None)
        if account is None:
            raise RiskrailError(f"say which account: --account one of {', '.join(accounts) or '(none recorded)'}")
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                n = export_history(client, keys.stream(account, "journal"), fh, args.max_events)
        else:
            n = export_history(client, keys.stream(account, "journal"), sys.stdout, args.max_events)
        print(f"riskrail export: {n} events of account {account}", file=sys.stderr)
        return 0
    finally:
        if close is not None and not _served_by_another(close):
            close.close()


def _served_by_another(embedded) -> bool:
    """True when a running `riskrail run` uses this embedded server (then it must stay up)."""
    try:
        return embedded.client.client_list().__len__() > 1
    except Exception:
        return False
