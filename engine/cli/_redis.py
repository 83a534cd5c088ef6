"""The service's Redis for the commands that talk to it directly (``halt`` and the other trading states, ``token``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from engine.errors import RiskrailError

if TYPE_CHECKING:
    import redis


def add_redis_options(p: argparse.ArgumentParser) -> None:
    """``--redis-url``, ``--data-dir`` and ``--prefix``: where the running service keeps its state."""
    p.add_argument("--redis-url", default=os.environ.get("RISKRAIL_REDIS_URL"), metavar="URL",
                   help="the service's Redis (default: RISKRAIL_REDIS_URL, else the embedded one under --data-dir)")
    p.add_argument("--data-dir", default=".riskrail", metavar="DIR", help="the embedded Redis of `riskrail run` (default .riskrail)")
    p.add_argument("--prefix", default="riskrail", help="prefix of the service's Redis keys (default riskrail)")


@contextmanager
def service_redis(args: argparse.Namespace) -> Iterator[redis.Redis]:
    """A client of the service's Redis: ``--redis-url``, else the embedded server under ``--data-dir`` (started
    from its files when no ``riskrail run`` serves it, and stopped again after). Raises ``RiskrailError``."""
    import redis

    from engine.service.store import Embedded, connect

    if args.redis_url:
        client = connect(args.redis_url)
        try:
            with _said():
                yield client
        finally:
            client.close()
        return
    folder = os.path.join(args.data_dir, "redis")
    if not os.path.isdir(folder):
        raise RiskrailError(f"no embedded Redis in {folder}: give --redis-url, or --data-dir of a `riskrail run`")
    embedded = Embedded(folder)
    try:
        with _said():
            yield embedded.client
    finally:
        try:
            served = len(embedded.client.client_list()) > 1  # a running `riskrail run` uses it: leave it up
        except redis.RedisError:
            served = False
        if not served:
            embedded.close()


@contextmanager
def _said() -> Iterator[None]:
    """A Redis failure during a command as an error it prints, without a traceback."""
    import redis

    try:
        yield
    except redis.RedisError as exc:
        raise RiskrailError(f"Redis failed ({type(exc).__name__}: {exc}); is it running, and is --redis-url right?") from None
