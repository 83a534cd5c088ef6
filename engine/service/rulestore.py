"""The ``Store`` port on Redis: the texts of every rule version the engines ran, and the active version."""

from __future__ import annotations

import redis

from engine.service.store import Keys, text


class RedisStore:
    """Rule versions in Redis: a hash ``PREFIX:rules:VERSION`` of ``{relative path: YAML text}`` per version
    and ``PREFIX:rules:active`` naming the active one (see ``engine.ports.Store``)."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client, self.keys = client, keys

    def texts(self, version: str) -> dict[str, str]:
        """The texts of ``version``; empty when it was never kept."""
        return {text(k): text(v) for k, v in self.client.hgetall(self.keys.rules(version)).items()}

    def keep(self, version: str, texts: dict[str, str]) -> None:
        """Keep the texts of ``version``: the first texts kept under a version stay (a version is their hash)."""
        key = self.keys.rules(version)
        if texts and not self.client.exists(key):
            self.client.hset(key, mapping=texts)  # type: ignore[arg-type]  # redis-py's Mapping[FieldT, …] refuses str keys

    def active(self) -> str | None:
        """The version the service runs, or ``None`` before the first start."""
        return text(self.client.get(self.keys.active)) or None

    def activate(self, version: str) -> None:
        """Make ``version`` the active one."""
        self.client.set(self.keys.active, version)
