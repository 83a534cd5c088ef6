"""Named API tokens with roles, kept hashed in the service's Redis, and the audit of mutating requests.

Roles, each with what the ones below it may do:

    viewer     every GET (status, positions, actions, rules, trading states, metrics)
    operator   trading states (``POST /api/trading-state``), ``POST /api/flatten``, proposing positions
               (``POST /api/positions``)
    admin      everything: rules reload, validate and plan, jobs

Keys (``P`` the service's prefix)::

    P:tokens   hash    token name -> {"role", "sha256", "created"} (JSON; ``created`` epoch ms): the
                       SHA-256 of the token, never the token (a token is 32 random bytes, so a fast hash
                       is enough: there is nothing to guess from it)
    P:audit    stream  every mutating request a token was accepted for: ``ts`` (epoch ms), ``by`` (the
                       token's name), ``role``, ``method``, ``path``, ``account``

Every process of the service reads the same hash, so ``riskrail token add|revoke`` takes effect at the
next request everywhere. A token is compared with ``hmac.compare_digest`` against every stored digest
(and the service's own admin token), so how long the check takes does not tell which part matched.
The service's own token (``RISKRAIL_API_TOKEN``, or the one ``riskrail run`` makes for the demo) is an
admin token named ``admin``; that name cannot be given to a stored token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import redis

from engine.errors import RiskrailError
from engine.service.store import Keys, text

#: the roles, least first
ROLES = ("viewer", "operator", "admin")
#: the name of the service's own admin token
SERVICE_ADMIN = "admin"
#: how many audit records are kept (approximately)
AUDIT_MAXLEN = 100_000
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class TokenError(RiskrailError):
    """A token name or role that cannot be used, or a name already taken / not found."""


@dataclass(frozen=True)
class Identity:
    """Who a request's token is: its ``name`` and ``role``."""

    name: str
    role: str

    def may(self, role: str) -> bool:
        """Whether this identity has ``role`` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)


def digest(token: str) -> str:
    """The SHA-256 of a token, hex: what the store keeps."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class TokenStore:
    """The named tokens of a service (``P:tokens``) and its own admin token (``admin``, None: none)."""

    def __init__(self, client: redis.Redis, keys: Keys, admin: str | None = None) -> None:
        self.r, self.key, self.admin = client, f"{keys.prefix}:tokens", admin
        self.audit_key = f"{keys.prefix}:audit"

    def add(self, name: str, role: str, now_ms: int) -> str:
        """Make a token named ``name`` with ``role``; return it (the only time it is seen: only its hash is kept).

        Raises ``TokenError`` for a bad name or role or a name taken already."""
        if not _NAME.fullmatch(name):
            raise TokenError(f"expected a token name of 1 to 64 letters, digits, '_', '.', '@' or '-', found {name[:80]!r}")
        if name == SERVICE_ADMIN:
            raise TokenError(f"the name {SERVICE_ADMIN!r} is the service's own admin token (RISKRAIL_API_TOKEN); choose another")
        if role not in ROLES:
            raise TokenError(f"expected a role of {', '.join(ROLES)}, found {role[:40]!r}")
        token = secrets.token_urlsafe(32)
        record = json.dumps({"role": role, "sha256": digest(token), "created": now_ms})
        if not self.r.hsetnx(self.key, name, record):
            raise TokenError(f"a token named {name!r} exists already; revoke it first or choose another name")
        return token

    def list(self) -> list[dict[str, Any]]:
        """``[{"name", "role", "created"}]`` by name (never a hash)."""
        out = []
        for name, raw in sorted(self.r.hgetall(self.key).items()):
            rec = json.loads(raw)
            out.append({"name": text(name), "role": rec["role"], "created": rec["created"]})
        return out

    def revoke(self, name: str) -> None:
        """Remove the token ``name``; raise ``TokenError`` when there is none."""
        if not self.r.hdel(self.key, name):
            raise TokenError(f"no token named {name[:80]!r}" + (f" (tokens: {', '.join(t['name'] for t in self.list())})"
                                                               if self.list() else " (there are none)"))

    def identify(self, token: str) -> Identity | None:
        """Who ``token`` is, or None for an unknown one. Raises ``redis.RedisError`` when Redis does not answer."""
        if self.admin and hmac.compare_digest(token.encode("utf-8"), self.admin.encode("utf-8")):
            return Identity(SERVICE_ADMIN, "admin")  # without Redis: the service's own token works while Redis is away
        found: Identity | None = None
        mine = digest(token).encode("ascii")
        for name, raw in self.r.hgetall(self.key).items():  # every digest compared: the time does not say which matched
            rec = json.loads(raw)
            if hmac.compare_digest(str(rec.get("sha256", "")).encode("ascii"), mine) and rec.get("role") in ROLES:
                found = Identity(text(name), rec["role"])
        return found

    def audit(self, who: Identity, method: str, path: str, account: str | None, now_ms: int) -> None:
        """Journal a mutating request ``who`` was let through for (``P:audit``)."""
        self.r.xadd(self.audit_key, {"ts": now_ms, "by": who.name, "role": who.role, "method": method, "path": path,
                                     "account": account or ""}, maxlen=AUDIT_MAXLEN, approximate=True)
