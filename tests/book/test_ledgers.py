"""Profit-locking ledgers and the trading day."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from engine.book.ledgers import Day, Ledger

SPLIT = SimpleNamespace(big_trades=0.5, weekly_target=0.3, compound=0.2)


def test_a_gain_is_split_into_the_buckets_and_locked():
    ledger = Ledger()
    assert ledger.book(100.0, SPLIT) == pytest.approx({"big_trades": 50.0, "weekly_target": 30.0, "compound": 20.0})
    assert (ledger.big_trades, ledger.weekly_target, ledger.compound, ledger.week_realized) == pytest.approx((50, 30, 20, 100))


def test_a_loss_is_split_too_but_locks_nothing_and_the_week_restarts():
    ledger = Ledger()
    ledger.book(100.0, SPLIT)
    assert ledger.book(-40.0, SPLIT) is None
    assert ledger.big_trades == pytest.approx(30.0) and ledger.week_realized == pytest.approx(60.0)
    ledger.new_week()
    assert ledger.week_realized == 0.0 and ledger.big_trades == pytest.approx(30.0)


def test_a_day_is_keyed_by_its_utc_date():
    day = Day.starting(1_549_238_400_000 + 3_600_000 * 23, 1_000.0)  # 2019-02-04 23:00 UTC
    assert (day.key, day.start_equity, day.breached) == ("2019-02-04", 1_000.0, False)
