"""The embeddable async API: the engine inside a Python pipeline's own asyncio program.

    from engine.service.coordinator import Coordinator

    async with Coordinator.from_config("path/to/config") as coord:
        await coord.tick("EURUSD", bid=1.14543, ask=1.14545)
        placed = await coord.add_position({"position_id": "p-1", "symbol": "EURUSD", "strategy_type": "arbitrage",
                                           "action": "BUY", "volume": 0.05, "entry_price": 1.14545})
        if placed["status"] == "rejected":
            print(placed["failed_checks"])
        actions = await coord.tick("EURUSD", bid=1.14601, ask=1.14603)   # what the rules decided
        status = await coord.status()                                    # GET /api/risk-management/status
        summary = await coord.portfolio_summary()                        # GET /api/position-management/portfolio-summary
        result = await coord.optimize()                                  # GET /api/position-management/optimization-results

Results have the shapes of the HTTP API. One account, in memory: the engine runs on a thread of its
own (durable-rules' host belongs to the thread that made it), so awaiting never blocks the event loop
on rule evaluation, and calls are decided in the order they were made. Actions are carried out by
``broker`` (default: the paper broker, which fills closes at once); for state that survives a crash,
several processes and the HTTP API, run ``riskrail run`` and talk to it over Redis Streams or HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from engine.config.load import load_config
from engine.errors import OptimizationError, RiskrailError
from engine.events import EventError, PositionOpened, parse_event
from engine.ports import Broker
from engine.rules.evaluator import Engine
from engine.service import views

T = TypeVar("T")


class Coordinator:
    """One account's engine for an asyncio program. Build it with ``from_config``."""

    def __init__(self, config_dir: str, *, equity: float = 100_000.0, broker: Broker | None = None,
                 allow_takeover: bool = False) -> None:
        self.config_dir = config_dir
        self.allow_takeover = allow_takeover  # as the service's: positions with ``existing`` skip the pre-trade checks
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="riskrail-coordinator")
        self._equity, self._broker = equity, broker
        self._engine: Engine | None = None
        self.problems: list[str] = []
        self.last_optimization: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, config_dir: str = ".", *, equity: float = 100_000.0, broker: Broker | None = None,
                    allow_takeover: bool = False) -> Coordinator:
        """A coordinator for the rules of ``config_dir`` (strategies/, rules/, schedules.yaml); loaded on first use.

        ``allow_takeover``: accept positions with ``existing: true`` (adopted without pre-trade checks)."""
        return cls(config_dir, equity=equity, broker=broker, allow_takeover=allow_takeover)

    async def __aenter__(self) -> Coordinator:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def start(self) -> None:
        """Load and validate the rules (raises ``ConfigError`` with every problem)."""
        await self._run(lambda _: None)

    async def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def _run(self, fn: Callable[[Engine], T]) -> T:
        """``fn(engine)`` on the engine's thread (the engine is made on first use)."""
        def call() -> T:
            if self._engine is None:
                from engine.adapters.paper import PaperBroker

                self._engine = Engine(load_config(self.config_dir), equity0=self._equity,
                                      broker=self._broker if self._broker is not None else PaperBroker(), on_problem=self._problem)
            return fn(self._engine)

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    def _check_takeover(self, event: Any) -> None:
        if isinstance(event, PositionOpened) and event.existing and not self.allow_takeover:
            raise EventError("existing: taking over a position without the pre-trade checks needs allow_takeover=True")

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        del self.problems[:-100]

    # --- input ------------------------------------------------------------------------------------

    async def process(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        """Decide one event (a JSON object as on the input stream); return the actions, as JSON."""
        parsed = parse_event(event)
        self._check_takeover(parsed)
        return await self._run(lambda e: [a.to_json() for a in e.process(parsed)])

    async def tick(self, symbol: str, bid: float, ask: float | None = None, ts: int | None = None) -> list[dict[str, Any]]:
        """A quote; return the actions the rules took on it."""
        return await self.process({"type": "tick", "ts": ts if ts is not None else _now(), "symbol": symbol, "bid": bid,
                                   "ask": ask if ask is not None else bid})

    async def add_position(self, position: dict[str, Any]) -> dict[str, Any]:
        """Propose a position (the fields of ``POST /api/positions``): the pre-trade checks decide.

        Returns ``{"status": "open", "position": {...}, "actions": [...]}`` or ``{"status": "rejected",
        "failed_checks": [...], "actions": [...]}``; a malformed proposal raises ``EventError``.
        """
        _, event = views.proposal(position, _now())
        self._check_takeover(event)

        def decide(e: Engine) -> dict[str, Any]:
            if event.position_id in e.book.positions:
                raise EventError(f"position {event.position_id!r} already exists")
            return views.outcome(e, event.position_id, e.process(event))

        return await self._run(decide)

    async def close_position(self, position_id: str, price: float | None = None) -> list[dict[str, Any]]:
        """The position was closed outside the engine (by the trader, at ``price`` or the last quote)."""
        return await self.process({"type": "position_closed", "ts": _now(), "position_id": position_id, "price": price})

    # --- what the HTTP API shows -------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """As ``GET /api/risk-management/status``."""
        return await self._run(views.risk_status)

    async def portfolio_summary(self) -> dict[str, Any]:
        """As ``GET /api/position-management/portfolio-summary``."""
        return await self._run(lambda e: views.portfolio_summary(e, self.last_optimization))

    async def positions(self, status: str | None = None) -> list[dict[str, Any]]:
        """As ``GET /api/positions``."""
        return await self._run(lambda e: views.positions(e, status))

    async def optimize(self) -> dict[str, Any]:
        """Run the optimizers of rules/allocation.yaml now; as ``GET /api/position-management/optimization-results``.

        With ``auto_apply`` the consensus becomes the allocation targets and the result lists the
        ``rebalance`` actions. Raises ``OptimizationError`` when there is not enough history yet.
        """
        from engine.service.optimizer import apply, optimize

        def run(e: Engine) -> dict[str, Any]:
            result = optimize(e, e.last_ts or _now())
            actions = apply(e, result, e.seq, f"coordinator-{time.monotonic_ns()}") if result["auto_apply"] else []
            result = {"status": "ok", **result, "actions": [a.to_json() for a in actions]}
            self.last_optimization = result
            return result

        return await self._run(run)

    async def reload(self) -> str:
        """Load the rule files again and swap them in (positions keep their state); return the version."""
        from engine.service.reload import load_checked

        rules, errors, _ = await asyncio.get_running_loop().run_in_executor(None, load_checked, self.config_dir)
        if rules is None:
            raise RiskrailError("the rules were not reloaded: " + "; ".join(e["text"] for e in errors))

        def swap(e: Engine) -> str:
            e.reload(rules)
            return e.version

        return await self._run(swap)


def _now() -> int:
    return int(time.time() * 1000)


__all__ = ["Coordinator", "EventError", "OptimizationError"]
