"""How much input an account has that is not decided yet (its stream lag), for ``/readyz`` and ``riskrail_input_lag``."""

from __future__ import annotations

import redis

from engine.service.store import GROUP, read_range, text

#: past this many undelivered entries the fallback count stops reading (Redis before 7 has no ``lag``)
COUNT_LIMIT = 10_000


def input_lag(r: redis.Redis, key: str, group: str = GROUP) -> int | None:
    """Entries of the input stream ``key`` not acknowledged yet: pending in ``group`` plus not yet delivered.

    Redis 7 and later report the undelivered entries as the group's ``lag`` (``XINFO GROUPS``); before 7,
    or when Redis cannot tell (``lag`` is nil after entries were deleted), they are counted after the
    group's last delivered id, up to ``COUNT_LIMIT``. 0 when the stream or the group does not exist yet;
    None when Redis does not answer.
    """
    try:
        groups = r.xinfo_groups(key)
    except redis.ResponseError:
        return 0  # no stream yet: nothing waits
    except redis.RedisError:
        return None
    for g in groups:
        if text(g["name"]) != group:
            continue
        later = g.get("lag")
        if later is None:
            try:
                later = len(read_range(r, key, f"({text(g['last-delivered-id'])}", count=COUNT_LIMIT))
            except redis.RedisError:
                return None
        return int(g["pending"]) + int(later)
    return 0
