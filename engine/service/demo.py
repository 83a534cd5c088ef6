"""The demo feed of ``riskrail run``: real EURUSD ticks replayed as a live feed, and demo positions.

Ticks come from a Dukascopy tick file (examples/data) and are sent ``speed`` times faster than
recorded (10: the hour of ticks in six minutes). Their times keep the recorded gaps from the moment the
demo starts, so event time runs ``speed`` times faster than the wall clock: the minute-by-minute
equity curves, and so the optimizer, have material sooner. At the end of the file the replay starts
over, one second of event time after the last tick. The demo trader keeps two positions
per strategy open (one long, one short), proposing a new one when one closes, with stops and targets a
few pips away so that positions open and close while you watch; every proposal goes through the
pre-trade checks like any other.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable

from engine.adapters.files import read_ticks
from engine.errors import RiskrailError
from engine.events import EventError, Tick
from engine.service.threads import Background

log = logging.getLogger("riskrail.demo")

DEFAULT_TICKS = os.path.join("examples", "data", "eurusd-ticks_dukascopy_2019-02-04.json")


def load_ticks(path: str) -> list[tuple[int, float, float]]:
    """``(ts_ms, bid, ask)`` from a tick file ``riskrail replay`` reads (Dukascopy JSON or CSV); malformed
    rows are skipped."""
    out, first_error = [], None
    try:
        for source, line, tick in read_ticks(path, "EURUSD"):
            if isinstance(tick, EventError):
                first_error = first_error or f"{source}:{line}: {tick}"
            elif isinstance(tick, Tick):  # all a tick file holds
                out.append((tick.ts, tick.bid, tick.ask))
    except OSError as exc:
        raise RiskrailError(f"the demo needs the EURUSD tick file {path} ({exc.strerror}); run it from the riskrail checkout "
                            "or give --demo-data FILE") from None
    if len(out) < 2:
        raise RiskrailError(f"{path}: expected at least two valid ticks, found {len(out)}" + (f" ({first_error})" if first_error else ""))
    return out


class DemoFeed(Background):
    """Publishes ticks and demo proposals through ``publish(event_dict)``."""

    name = "demo-feed"

    def __init__(self, publish: Callable[[dict], str], ticks: list[tuple[int, float, float]], strategies: list[str], *,
                 symbol: str = "EURUSD", speed: float = 10.0, open_count: Callable[[], dict[str, int]] | None = None,
                 volume: float = 0.05, seed: int = 7, clock: Callable[[], float] = time.time, after_ts: int | None = None) -> None:
        self.publish, self.ticks, self.strategies, self.symbol = publish, ticks, strategies, symbol
        self.speed, self.open_count, self.volume, self.clock = speed, open_count, volume, clock
        self.rng = random.Random(seed)
        self.sent = 0
        self.proposed = 0
        self.now = int(clock() * 1000)
        self.after_ts = after_ts  # event time already reached (a restart): the replay continues after it
        super().__init__()

    def _run(self) -> None:
        base = max(int(self.clock() * 1000), (self.after_ts or 0) + 1000)  # event time of the first tick
        ts0 = self.ticks[0][0]
        while not self._stop.is_set():
            started = time.monotonic()
            for ts, bid, ask in self.ticks:
                wait = started + (ts - ts0) / 1000 / self.speed - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
                self.now = base + ts - ts0
                try:
                    self.publish({"type": "tick", "ts": self.now, "symbol": self.symbol, "bid": bid, "ask": ask})
                    self.sent += 1
                    if self.sent % 50 == 1:
                        self._trade(bid, ask)
                except Exception as exc:  # Redis away: keep trying, the engine catches up
                    log.warning("demo feed: %s", exc)
                    self._stop.wait(1.0)
            base += self.ticks[-1][0] - ts0 + 1000

    def _trade(self, bid: float, ask: float) -> None:
        """Keep one long and one short position open per strategy."""
        counts = self.open_count() if self.open_count is not None else {}
        for name in self.strategies:
            for side in ("BUY", "SELL")[: max(0, 2 - counts.get(name, 0))]:
                entry = ask if side == "BUY" else bid
                sign = 1 if side == "BUY" else -1
                pips = self.rng.choice((6, 8, 10, 12)) * 0.0001
                self.proposed += 1
                self.publish({
                    "type": "position_opened", "ts": self.now, "position_id": f"demo-{name}-{self.proposed}",
                    "symbol": self.symbol, "strategy_type": name, "strategy_name": f"{name}-demo", "action": side,
                    "volume": self.volume, "entry_price": entry,
                    "stop_loss": round(entry - sign * pips, 5), "take_profit": round(entry + sign * 2 * pips, 5),
                })
