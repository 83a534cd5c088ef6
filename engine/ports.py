"""The ports between the engine and the outside: what a broker, a feed and a store do, and the reports they exchange.

The engine (``engine.rules``) and every adapter (``engine.adapters.paper``, ``engine.adapters.mt5``,
the service's journal) import this module; neither owns it, so an adapter never imports the engine
and the engine never imports an adapter::

    feed  --poll()-->  raw event dicts  --engine.events.decode-->  Engine.process  --Action-->  broker
                                                                          ^                       |
                                                                          +----- FillReport ------+

A synchronous broker (the paper broker) returns the fills of an action from ``execute``; the engine
books them within the same ``process`` call. An asynchronous one (MetaTrader 5) returns nothing there
and reports later (``poll``), and its fills come back to the engine as ``fill`` events.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from engine.actions import Action

Quotes = dict[str, tuple[float, float]]  # symbol -> (bid, ask), the latest quote of each symbol


@dataclass(frozen=True)
class FillReport:
    """A broker's report that (part of) a position was closed at a price."""

    position_id: str
    ts: int
    volume: float
    price: float
    rule: str
    action_id: str | None = None  # the action it fills, when the broker knows it
    deal: str | None = None  # the broker's deal id, when it has one: a deal is booked once, whoever reports it


class Broker(Protocol):
    """Carries out actions; a synchronous broker (the paper broker) reports fills at once."""

    def execute(self, action: Action, quotes: Quotes) -> list[FillReport]: ...


class Feed(Protocol):
    """Produces events: each ``poll`` returns those since the last one, as JSON objects.

    They are raw input: each crosses ``engine.events.decode``/``parse_event`` (the one validation
    boundary) before the engine sees it.
    """

    def poll(self) -> list[dict[str, Any]]: ...


class Store(Protocol):
    """Keeps the texts of every rule version the engines ran, and which version is active.

    A restart or a takeover rebuilds an account's engine with the version it ran, loaded from these
    texts (``engine.config.ruleset_from_texts``), never from the files on disk, which may have changed.
    Texts are ``{relative path: YAML text}`` (``strategies/NAME.yaml``, ``rules/NAME.yaml``,
    ``schedules.yaml``). The service's implementation is ``engine.service.rulestore.RedisStore``. An
    account's journal and snapshots are not behind this port: they are written in one Redis transaction
    with the account's lease (``engine.service.commit``), which is what makes a commit exactly-once.
    """

    def texts(self, version: str) -> dict[str, str]:
        """The texts of ``version``; empty when it was never kept."""
        ...

    def keep(self, version: str, texts: dict[str, str]) -> None:
        """Keep the texts of ``version`` (once: the texts of a version never change)."""
        ...

    def active(self) -> str | None:
        """The version the service runs, or ``None`` before the first start."""
        ...

    def activate(self, version: str) -> None:
        """Make ``version`` (kept before) the active one."""
        ...


__all__ = ["Broker", "Feed", "FillReport", "Quotes", "Store"]
