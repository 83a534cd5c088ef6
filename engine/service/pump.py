"""A feed the service polls (the ``Feed`` port, e.g. MetaTrader 5) put on an account's input stream."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from engine.errors import RiskrailError
from engine.ports import Feed
from engine.service.threads import Background

log = logging.getLogger("riskrail.feed")


class FeedPump(Background):
    """Polls ``feed`` every ``interval`` seconds and hands each raw event dict to ``publish`` (the service's
    ``publish(obj, account)``, which puts it on the input stream; the engine's intake validates it there).

    A ``RiskrailError`` from the feed (the terminal went away) is logged and retried with a backoff that
    doubles from 1 s up to ``max_backoff`` seconds; the first successful poll returns to ``interval``.
    """

    name = "feed-pump"

    def __init__(self, feed: Feed, publish: Callable[[dict[str, Any]], Any], *, interval: float = 0.1,
                 max_backoff: float = 30.0, label: str = "feed") -> None:
        self.feed, self.publish, self.interval, self.max_backoff, self.label = feed, publish, interval, max_backoff, label
        super().__init__()

    def _run(self) -> None:
        backoff = self.interval
        while not self._stop.wait(backoff):
            try:
                for obj in self.feed.poll():
                    self.publish(obj)
                backoff = self.interval
            except RiskrailError as exc:
                log.error("%s: %s; retrying in %.0f s", self.label, exc, backoff)
                backoff = min(max(backoff * 2, 1.0), self.max_backoff)


def report_positions_every(feed: Feed, seconds: float | None) -> None:
    """Have a feed that reports the broker's positions (``reconcile_every``, e.g. ``MT5Feed``) report them every
    ``seconds`` besides at its first poll and after a reconnect (``None``: only then); other feeds are left alone."""
    if hasattr(feed, "reconcile_every"):
        feed.reconcile_every = seconds


def follow_open_positions(feed: Feed, open_positions: Callable[[], list[tuple[str, str, float]]]) -> None:
    """Hand a feed that can follow positions (``track``, e.g. ``MT5Feed``) the positions the engine holds open
    (``(position_id, symbol, volume)``, from ``open_positions``, read once the engine has recovered): at a
    restart, what the broker did while riskrail was down is then booked from its deals."""
    track = getattr(feed, "track", None)
    if track is not None:
        track(open_positions())
