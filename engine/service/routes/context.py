"""What every router of the API shares: the token check, the account lookup, the engine call, the thread limits."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Annotated, TypeVar

import anyio
from fastapi import Depends, HTTPException, Query
from fastapi.params import Depends as Dependency
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from engine.rules.evaluator import Engine
from engine.service import health, logs
from engine.service.problems import Problem
from engine.service.service import Service
from engine.service.worker import AccountWorker

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False)


class Context:
    """The service behind the API and the checks its routes depend on.

    ``guarded`` are the dependencies of a route that needs the token; ``scoped`` those of a route that
    also takes ``?account=`` (a 404 before anything else for an account this process does not run).
    """

    def __init__(self, service: Service, token: str) -> None:
        self.service = service
        self.token = token
        # threads of their own: probes never wait behind API calls blocked on an engine, and at most two
        # rule files are parsed at once whatever the number of requests
        self.probes, self.parsing = anyio.CapacityLimiter(4), anyio.CapacityLimiter(2)
        self.guarded: list[Dependency] = [Depends(self.auth)]
        self.scoped: list[Dependency] = [Depends(self.auth), Depends(self.known_account)]

    def auth(self, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        """Refuse a request without the bearer token (401)."""
        if creds is None or creds.scheme.lower() != "bearer" or not hmac.compare_digest(creds.credentials.encode(), self.token.encode()):
            raise Problem(401, "expected the header Authorization: Bearer <token> (RISKRAIL_API_TOKEN, or the token `riskrail run` "
                          "printed)", location="header.authorization", headers={"WWW-Authenticate": "Bearer"})

    def caller_name(self) -> str:
        """The name journaled for the caller of a mutating request (the service's one token: ``api``)."""
        return "api"

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
