"""Two engine processes on one Redis split the accounts; when one dies the other takes its accounts over,
pending input included."""

from __future__ import annotations

from tests.service.conftest import demo_events, drained, publish, reference, start_service, stored, wait_for

ACCOUNTS = ("a1", "a2", "a3", "a4")


def test_two_processes_split_the_accounts_and_the_survivor_takes_over_pending_input(redis_server, scalping) -> None:
    events = demo_events()[:1200]
    one = start_service(redis_server, scalping, accounts=ACCOUNTS, consumer="one", lease_ms=2000)
    two = start_service(redis_server, scalping, accounts=ACCOUNTS, consumer="two", lease_ms=2000)
    try:
        wait_for(lambda: len(one.workers) == 2 and len(two.workers) == 2, 60, "a 2/2 split")
        assert set(one.workers) | set(two.workers) == set(ACCOUNTS)
        for account in ACCOUNTS:
            publish(redis_server, account, events[:600])
        wait_for(lambda: all(drained(redis_server, a) for a in ACCOUNTS), 90, "every account decided")
        mine = sorted(two.workers)
        # "two" dies: its threads stop with no clean stop snapshot and no lease released
        two._stop.set()
        for w in two.workers.values():
            w.since_snapshot = 0
            w._stop.set()
        for account in mine:
            publish(redis_server, account, events[600:])  # arrives while nobody runs the account
        wait_for(lambda: len(one.workers) == 4, 60, "the survivor to take every account")
        wait_for(lambda: all(drained(redis_server, a) for a in ACCOUNTS), 90, "the pending input decided")
        for account in sorted(set(ACCOUNTS) - set(mine)):
            publish(redis_server, account, events[600:])
        wait_for(lambda: all(drained(redis_server, a) for a in ACCOUNTS), 90)
    finally:
        one.stop()
        two.stop()
    want = reference(scalping, events)
    for account in ACCOUNTS:
        assert stored(redis_server, account) == want, account
