"""``riskrail token add|list|revoke``: the named API tokens and their roles, in the service's Redis.

A token is shown once, when it is made; the service keeps its SHA-256 only (``engine.service.tokens``).
Every process of the service reads the tokens at each request, so a change takes effect at once.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

from engine.cli._redis import add_redis_options, service_redis

#: the roles of engine.service.tokens, lowest first (named here: building the parser imports no Redis client)
ROLES = ("viewer", "operator", "admin")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="add, list or revoke the API's named tokens (viewer, operator, admin)",
                       description="Manage the named API tokens in the service's Redis. Roles: viewer (every GET), operator "
                       "(also trading states, flatten, proposing positions), admin (everything: rules reload, validate, plan, jobs).")
    what = p.add_subparsers(dest="token_command", metavar="ACTION")
    what.required = True
    add = what.add_parser("add", help="make a token and print it once")
    add.add_argument("name", help="the token's name: who uses it (journaled with every change it makes)")
    add.add_argument("--role", required=True, choices=ROLES)
    add.set_defaults(func=run_add)
    ls = what.add_parser("list", help="names, roles and creation times (never a token or a hash)")
    ls.set_defaults(func=run_list)
    revoke = what.add_parser("revoke", help="remove a token: its next request is refused")
    revoke.add_argument("name")
    revoke.set_defaults(func=run_revoke)
    for q in (add, ls, revoke):
        add_redis_options(q)


def _store(client, args: argparse.Namespace):
    from engine.service.store import Keys
    from engine.service.tokens import TokenStore

    return TokenStore(client, Keys(args.prefix))


def run_add(args: argparse.Namespace) -> int:
    with service_redis(args) as client:
        token = _store(client, args).add(args.name, args.role, int(time.time() * 1000))
    print(f"riskrail token: {args.name} ({args.role})")
    print(f"  token  {token}")
    print("  shown once: only its hash is kept. Use it as the header Authorization: Bearer <token>")
    return 0


def run_list(args: argparse.Namespace) -> int:
    with service_redis(args) as client:
        tokens = _store(client, args).list()
    if not tokens:
        print("no named tokens (the service's own admin token, RISKRAIL_API_TOKEN or the demo's, is not stored here)")
    for t in tokens:
        created = datetime.fromtimestamp(t["created"] / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(f"{t['name']:<32} {t['role']:<9} created {created}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    with service_redis(args) as client:
        _store(client, args).revoke(args.name)
    print(f"riskrail token: {args.name} revoked")
    return 0
