"""What every router of the API shares: the token check, the account lookup, the engine call, the thread limits.

The role a route needs (``engine.service.tokens``): viewer for every ``GET``; operator for the routes of
``OPERATOR_ROUTES``; admin for every other method and path, so a route added without a thought for
roles is an admin's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, HTTPException, Query, Request
from fastapi.params import Depends as Dependency
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.rules.evaluator import Engine
from engine.service import health, logs
from engine.service.problems import Problem
from engine.service.service import Service
from engine.service.tokens import Identity, TokenStore
from engine.service.worker import AccountWorker

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False)

#: (method, route path) an operator may call besides every GET: trading states, flatten, proposing positions
OPERATOR_ROUTES = frozenset({("POST", "/api/trading-state"), ("POST", "/api/flatten"), ("POST", "/api/positions")})


class Context:
    """The service behind the API and the checks its routes depend on.

    ``guarded`` are the dependencies of a route that needs the token; ``scoped`` those of a route that
    also takes ``?account=`` (a 404 before anything else for an account this process does not run).
    """

    def __init__(self, service: Service, token: str) -> None:
        self.service = service
        self.tokens = TokenStore(service.redis, service.keys, admin=token)
        # threads of their own: probes never wait behind API calls blocked on an engine, and at most two
        # rule files are parsed at once whatever the number of requests
        self.probes, self.parsing = anyio.CapacityLimiter(4), anyio.CapacityLimiter(2)
        self.guarded: list[Dependency] = [Depends(self.auth)]
        self.scoped: list[Dependency] = [Depends(self.auth), Depends(self.known_account)]

    def auth(self, request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Identity:
        """Refuse a request without a known bearer token (401) or whose token's role is below the route's (403);
        journal a mutating request with the token's name (``P:audit``). The identity is ``request.state.who``."""
        who = self.tokens.identify(creds.credentials) if creds is not None and creds.scheme.lower() == "bearer" else None
        if who is None:
            raise Problem(401, "expected the header Authorization: Bearer <token> (a token of `riskrail token add`, "
                          "RISKRAIL_API_TOKEN, or the token `riskrail run` printed)", location="header.authorization",
                          headers={"WWW-Authenticate": "Bearer"})
        route = request.scope.get("route")
        path = getattr(route, "path", request.url.path)
        needed = role_needed(request.method, path)
        if not who.may(needed):
            raise Problem(403, f"{request.method} {path} needs the {needed} role; the token {who.name!r} is a {who.role}",
                          location="header.authorization")
        request.state.who = who
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            self.tokens.audit(who, request.method, path, request.query_params.get("account"), int(time.time() * 1000))
        return who

    def known_account(self, account: str | None = Query(None, max_length=200, description="the account (default: the first)")) -> None:
        """Refuse an account this process does not run (404), before anything else."""
        self.worker(account)

    def worker(self, account: str | None) -> AccountWorker:
        """The worker of ``account`` (default: the service's first), or 404 for one this process does not run."""
        name = account or self.service.default_account
        if name not in self.service.workers:
            raise Problem(404, f"account {name[:100]!r} is not run by this process (accounts here: "
                          f"{', '.join(sorted(self.service.workers)) or 'none'})", location="query.account")
        return self.service.worker(name)

    def on_engine(self, account: str | None, fn: Callable[[Engine], T]) -> T:
        """Run ``fn`` on the engine of ``account`` in its own thread; 503 if it does not answer in time."""
        try:
            result: T = self.worker(account).call(fn)
        except FutureTimeout:
            raise HTTPException(503, "the engine did not answer within 10 s") from None
        return result

    def look(self) -> health.Health:
        """The health of the service now (it also sets the health gauges)."""
        return health.snapshot(self.service, logs.scrub)


def role_needed(method: str, path: str) -> str:
    """The role a request of ``method`` on the route ``path`` (its template) needs."""
    if method in ("GET", "HEAD"):
        return "viewer"
    return "operator" if (method, path) in OPERATOR_ROUTES else "admin"
