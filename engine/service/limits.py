"""Limits of the HTTP API: request sizes, connections and timeouts, so that no client stops risk management.

A client that sends too much, too slowly, or opens connections and says nothing costs the service a
bounded amount of memory, time and open files; the engines never wait on it. Two layers:

- ``BodyLimit``, a pure ASGI middleware in front of everything else (routing, authentication, body
  parsing): a request whose line and headers are above ``header_bytes`` is answered ``431``, one
  whose ``Content-Length`` is above its route's limit is answered ``413`` before one
  byte of its body is read; a body sent without a length (chunked) is counted as it arrives and cut off
  at the limit; a body that has not fully arrived ``body_timeout`` seconds after the request's headers
  is answered ``408``; a response the client does not take within ``send_timeout`` ends the connection.
  Each of these answers carries ``Connection: close``: the rest of the body is never read.
- ``http_protocol(limits)``, uvicorn's HTTP/1.1 protocol with what uvicorn lacks: at most
  ``max_connections`` connections (at the cap, a new connection closes the longest-idle one, a
  connection with no request in progress, and is refused when every connection is busy), an idle
  connection (no request yet, or none since the last response) is closed after ``keep_alive``
  seconds, and a request line with headers must arrive within ``header_timeout`` seconds (``408``).

``server_config`` builds the uvicorn ``Config`` with all of these: `riskrail run` and the tests use it.
The numbers and why (docs/service.md, "Limits"):

    body, every route                  64 KiB   a proposal is one input event: engine.events.MAX_EVENT_BYTES
    body, POST /api/rules/validate      1 MiB   one rule file: the loader's MAX_FILE_BYTES
    body, POST /api/rules/plan          4 MiB   several rule files in one JSON object
    request line and headers           16 KiB   h11's default, said explicitly (431, or 400 from the parser)
    max_connections                      512    or the open-file limit minus 256 when that is lower
    backlog                              128    connections the kernel queues before they are accepted
    keep_alive                          5 s     an idle connection is closed
    header_timeout                     10 s     from the first byte of a request to its last header
    body_timeout                       30 s     from the headers to the last byte of the body
    send_timeout                       30 s     for each part of a response to be taken by the client
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.exceptions import HTTPException

from engine.config.read import MAX_FILE_BYTES
from engine.events import MAX_EVENT_BYTES

log = logging.getLogger("riskrail.api")

KIB, MIB = 1024, 1024 * 1024
#: file descriptors kept for Redis connections, rule files and child processes, below the open-file limit
FD_RESERVE = 256


@dataclass(frozen=True)
class Limits:
    """The limits of one HTTP server (bytes and seconds); the defaults are those `riskrail run` uses."""

    body: int = MAX_EVENT_BYTES  # 64 KiB
    #: ``(method, path, bytes)``: routes whose bodies may be larger than ``body``
    routes: tuple[tuple[str, str, int], ...] = (("POST", "/api/rules/validate", MAX_FILE_BYTES), ("POST", "/api/rules/plan", 4 * MIB))
    header_bytes: int = 16 * KIB
    max_connections: int = 512
    backlog: int = 128
    keep_alive: float = 5.0
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    send_timeout: float = 30.0

    def body_limit(self, method: str, path: str) -> int:
        """The largest body accepted for ``method`` ``path``, in bytes."""
        for m, p, size in self.routes:
            if m == method and p == path:
                return size
        return self.body

    def connections(self) -> int:
        """``max_connections``, lowered to the open-file limit minus ``FD_RESERVE`` when that is lower."""
        try:
            import resource  # POSIX; Windows (where MetaTrader 5 runs) has no such limit to read
        except ImportError:
            return self.max_connections
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return self.max_connections
        return max(8, min(self.max_connections, soft - FD_RESERVE))


# --- the ASGI middleware ------------------------------------------------------------------------------


class _Refused(HTTPException):
    """A request cut off by a limit, raised by the body's reader: an ``HTTPException`` so that FastAPI,
    which turns any other exception met while reading a body into ``400``, answers it with its status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail, headers={"Connection": "close"})


class _SendTimeout(Exception):
    """The client did not take a response in time."""


class BodyLimit:
    """ASGI middleware: the body limits and timeouts of ``Limits`` (see the module docstring)."""

    def __init__(self, app: Callable, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits or Limits()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lim = self.limits
        head = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        head += sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if head > lim.header_bytes:  # the parser enforces this only on a head that arrives in several reads
            await _answer(send, 431, f"request line and headers too large: {head} bytes, at most {lim.header_bytes}", scope["path"])
            return
        limit = lim.body_limit(scope["method"], scope["path"])
        length = _content_length(scope)
        if length is not None and length > limit:
            await _answer(send, 413, f"request body too large: {length} bytes, at most {limit} for {scope['method']} {scope['path']}",
                          scope["path"])
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + lim.body_timeout
        received, complete, started = 0, False, False

        async def limited_receive() -> dict:
            nonlocal received, complete
            if complete:
                return await receive()  # after the body: waiting for the client to leave, no limit
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except TimeoutError:
                raise _Refused(408, f"the request body did not arrive within {lim.body_timeout:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _Refused(413, f"request body too large: more than {limit} bytes for {scope['method']} {scope['path']}")
                complete = not message.get("more_body", False)
            else:
                complete = True
            return message

        async def timed_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            try:
                await asyncio.wait_for(send(message), lim.send_timeout)
            except TimeoutError:
                raise _SendTimeout(f"the client did not take the response within {lim.send_timeout:g} s") from None

        try:
            await self.app(scope, limited_receive, timed_send)
        except _Refused as exc:  # met outside FastAPI's handling of HTTPException
            if not started:
                await _answer(send, exc.status_code, exc.detail, scope["path"])
            # else: the response had begun; uvicorn closes the connection of an unfinished response
        except _SendTimeout as exc:
            log.warning("%s %s: %s; connection closed", scope["method"], scope["path"], exc)


def _content_length(scope: dict) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP parser refuses it before we are called
    return None


async def _answer(send: Callable, status: int, detail: str, instance: str | None = None) -> None:
    """Answer a request cut off by a limit with a problem detail (``engine.service.problems``), closing the connection."""
    from engine.service import problems

    body = problems.encoded(status, detail, instance)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", problems.PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


# --- the connection layer (uvicorn) -----------------------------------------------------------------


def http_protocol(limits: Limits) -> type:
    """uvicorn's h11 protocol with the connection cap, the idle timeout from the first byte on, and the
    header timeout of ``limits`` (uvicorn closes idle connections only after a first response, and has
    neither a cap nor a header timeout)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    cap = limits.connections()
    refusals = _Every(10.0)

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._refused = False
            self._head_timer: asyncio.TimerHandle | None = None
            self._idle_since = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # as uvicorn's own
            if len(self.connections) >= cap and not self._evict():
                self._refused = True
                if refusals.due():
                    log.warning("HTTP: %d connections, all busy: refusing new ones", len(self.connections))
                transport.abort()
                return
            super().connection_made(transport)
            self._idle_since = self.loop.time()
            self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._stop_head_timer()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.transport.is_closing():
                self._stop_head_timer()
                return
            partial = self.conn.their_state is h11.IDLE and bool(self.conn.trailing_data[0])
            if partial and self._head_timer is None:
                self._head_timer = self.loop.call_later(limits.header_timeout, self._head_timeout)
            elif not partial:
                self._stop_head_timer()

        def on_response_complete(self) -> None:
            self._idle_since = self.loop.time()
            super().on_response_complete()

        def idle(self) -> bool:
            """No request in progress: nothing of a request yet, or only part of its head."""
            return (not self._refused and self.transport is not None and not self.transport.is_closing()
                    and self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete))

        def _evict(self) -> bool:
            idle = [c for c in self.connections if isinstance(c, GuardedH11Protocol) and c.idle()]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: c._idle_since)
            oldest._stop_head_timer()
            oldest.transport.close()
            return True

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            self._head_timer = None
            if not self.transport.is_closing():
                self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                self.transport.close()

    return GuardedH11Protocol


class _Every:
    """True at most once per ``seconds``: a warning under a flood is said, not repeated thousands of times."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self._last = seconds, float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.seconds:
            self._last = now
            return True
        return False


def server_config(app: Any, host: str, port: int, limits: Limits | None = None, **kwargs: Any):
    """The uvicorn ``Config`` of the API with every limit of ``limits`` (see the module docstring).

    uvicorn's own ``limit_concurrency`` (503 once connections or requests in progress reach it) is set
    one above the connection cap: a backstop, since the cap closes idle connections before it is reached.
    """
    import uvicorn

    limits = limits or Limits()
    return uvicorn.Config(app, host=host, port=port, log_config=None, lifespan="off", http=http_protocol(limits),
                          limit_concurrency=limits.connections() + 1, backlog=limits.backlog,
                          timeout_keep_alive=limits.keep_alive,  # type: ignore[arg-type]  # uvicorn annotates int; a float works
                          h11_max_incomplete_event_size=limits.header_bytes, **kwargs)
