"""The engine manages a MetaTrader 5 account end to end through the fake terminal: positions found by
the feed, actions turned into trade requests, fills booked, the broker-side SL following the engine's
stop; requotes, rejected stops, a dropped connection, and a restart of the engine mid-trade."""

from __future__ import annotations

import json

import pytest

from engine.actions import Action
from engine.adapters.mt5 import MT5Broker, MT5Connection, MT5Error
from engine.book.positions import Status
from engine.testing import mt5 as M
from engine.testing.mt5 import FakeTerminal
from tests.adapters.conftest import ENV, REVERT, T0, TREND, Clock, Desk
from tests.conftest import ROOT

TICKS = ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"
PIP = 0.0001


def walk(fake: FakeTerminal, desk: Desk, mids: list[float], t0: int = T0, spread: float = 0.00002) -> None:
    """Quote each mid (bid = mid - spread / 2) one second apart, the engine polling after each."""
    for i, mid in enumerate(mids, 1):
        fake.tick("EURUSD", round(mid - spread / 2, 5), round(mid + spread / 2, 5), t0 + i * 1_000)
        desk.step()


def deals_sent(fake: FakeTerminal) -> list[dict]:
    return [r for r in fake.requests if r["action"] == M.TRADE_ACTION_DEAL]


def assert_in_step(desk: Desk, fake: FakeTerminal) -> None:
    """The engine's book and the broker agree: same open volume, and the broker SL is the engine's stop."""
    for p in desk.engine.book.positions.values():
        at_broker = fake.positions.get(int(p.id))
        if not p.is_open:
            assert at_broker is None, f"{p.id} closed in the engine but open at the broker"
            continue
        assert at_broker is not None, f"{p.id} open in the engine but closed at the broker"
        assert at_broker.volume == pytest.approx(p.volume), p.id
        assert at_broker.sl == round(p.stop_loss, 5), p.id


def test_trailing_stop_is_mirrored_to_the_broker_and_the_broker_sl_closes_when_the_price_turns(desk: Desk, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, sl=1.14400, tp=1.15000, magic=TREND)
    desk.step()
    pid = str(ticket)
    assert desk.engine.book.positions[pid].is_open and fake.positions[ticket].sl == 1.14400
    # scalp_trend: exit level 1 at +1 bp (30 %, stop to entry), level 2 at +2 bp (30 %), trailing from +1.5 bp at 1 bp
    walk(fake, desk, [1.14501 + i * 0.00002 for i in range(1, 30)])
    moves = [a for a in desk.actions if a.type == "set_stop_loss"]
    assert {a.rule for a in moves} == {"exit_levels.0", "trailing"}  # level 2's stop is below the trail by then
    assert [r["volume"] for r in deals_sent(fake)] == [0.03, 0.03]  # both partial exits, 30 % of 0.10 each
    assert_in_step(desk, fake)
    stop = desk.engine.book.positions[pid].stop_loss
    assert fake.positions[ticket].sl == round(stop, 5) > 1.14540  # the safety net follows the trail
    walk(fake, desk, [1.14540], t0=T0 + 40_000)  # the price turns through the trailed stop
    p = desk.engine.book.positions[pid]
    assert p.status == Status.CLOSED and ticket not in fake.positions
    last = p.fills[-1]
    assert (last.rule, last.price, last.volume) == ("broker_sl", 1.14539, pytest.approx(0.04))
    assert len(deals_sent(fake)) == 2  # the broker's own stop closed it: the engine sent no close
    assert desk.broker.alerts == []


def test_engine_stop_closes_first_when_the_broker_keeps_stops_away(rules, fake: FakeTerminal, clock: Clock) -> None:
    fake.symbols["EURUSD"]["stops_level"] = 15  # 1.5 pips: wider than the 1-bp trailing distance
    conn = MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep)
    desk = Desk(rules, conn)
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, sl=1.14400, tp=1.15000, magic=TREND)
    desk.step()
    walk(fake, desk, [1.14501 + i * 0.00002 for i in range(1, 30)])
    stop = desk.engine.book.positions[str(ticket)].stop_loss
    broker_sl = fake.positions[ticket].sl
    assert broker_sl < stop  # INVALID_STOPS moved the mirrored level outside the stops level
    assert any("stops 15 points from the price" in a["message"] for a in desk.broker.alerts)
    walk(fake, desk, [round(stop - 0.00001, 5) + 0.00001], t0=T0 + 40_000)  # bid just under the engine's stop
    p = desk.engine.book.positions[str(ticket)]
    assert p.status == Status.CLOSED and ticket not in fake.positions
    assert p.fills[-1].rule == "trailing_stop" and p.fills[-1].price == round(stop - 0.00001, 5)
    close = deals_sent(fake)[-1]
    assert (close["position"], close["type"], close["volume"]) == (ticket, M.ORDER_TYPE_SELL, pytest.approx(0.04))


def test_partial_exits_close_by_ticket_and_book_the_rounded_volumes(desk: Desk, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "SELL", 0.15, price=1.14510, magic=REVERT)  # no SL: the default is set
    desk.step()
    p = desk.engine.book.positions[str(ticket)]
    # scalp_revert's 2-bp default: 1.14510 * 1.0002 = 1.1453290, a short's stop rounded down to the tick
    assert fake.positions[ticket].sl == p.stop_loss == 1.14532
    # scalp_revert: level 1 at 1 R (50 %, stop to entry), level 2 at 1.5 R (the rest)
    walk(fake, desk, [1.14500, 1.14485, 1.14480, 1.14470, 1.14460])
    sent = deals_sent(fake)
    # the engine rounds 50 % of 0.15 down to the lot step (0.075 -> 0.07) and carries the rest to the next level
    assert [(r["type"], r["volume"]) for r in sent] == [(M.ORDER_TYPE_BUY, 0.07), (M.ORDER_TYPE_BUY, 0.08)]
    assert [a.type for a in desk.actions if a.type.startswith("close")] == ["close_partial", "close_partial"]
    assert p.status == Status.CLOSED and [f.volume for f in p.fills] == [0.07, pytest.approx(0.08)]
    assert ticket not in fake.positions
    assert desk.engine.book.realized() == pytest.approx(sum(d.profit for d in fake.deals_of(ticket)), abs=0.01)


def test_a_requote_on_a_close_is_retried_with_a_fresh_price(desk: Desk, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, magic=TREND)
    desk.step()
    fake.script_order_send(lambda: fake.tick("EURUSD", 1.14540, 1.14542, T0 + 1_500))  # the market jumps 28 points under the request
    walk(fake, desk, [1.14513])  # +1 bp: exit level 1
    sent = deals_sent(fake)
    assert [r["price"] for r in sent] == [1.14512, 1.14540]  # requoted beyond the 20-point deviation, then the fresh bid
    assert desk.engine.book.positions[str(ticket)].fills[0].price == 1.14540
    assert_in_step(desk, fake)


def test_a_dropped_connection_is_reconnected_and_a_close_it_interrupted_is_sent_once(desk: Desk, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, sl=1.14300, tp=1.15000, magic=TREND)
    desk.step()
    fake.script_order_send(lambda: fake.go_away(back_after=2), None)  # the terminal dies as the exit is sent
    walk(fake, desk, [1.14513])
    # the exit failed and stayed pending; the stop move after it found the terminal gone and reconnected
    # (two failed starts, backing off); the loop's broker.poll then sent the exit again
    assert "IPC timeout" in desk.broker.alerts[0]["message"] and "went through" in desk.broker.alerts[-1]["message"]
    assert clock.sleeps == [0.5, 1.0] and desk.conn.reconnects == 1
    assert [r["volume"] for r in deals_sent(fake)] == [0.03, 0.03]  # the first never reached the server
    p = desk.engine.book.positions[str(ticket)]
    assert [f.volume for f in p.fills] == [0.03] and not desk.broker.pending
    assert_in_step(desk, fake)


def test_a_terminal_that_stays_away_stops_the_loop_with_a_plain_error_until_it_is_back(desk: Desk, fake: FakeTerminal) -> None:
    fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    desk.step()
    fake.go_away(back_after=50)
    with pytest.raises(MT5Error, match="did not come back after 6 attempts"):
        desk.step()
    fake._back_after = 0
    fake.tick("EURUSD", 1.14503, 1.14505, T0 + 5_000)
    fake.tick("EURUSD", 1.14530, 1.14532, T0 + 6_000)  # only the latest quote is seen after the gap
    got = desk.step()
    assert [a.rule for a in got if a.type == "close_partial"] == ["exit_levels.0", "exit_levels.1"]
    assert got[0].params["price"] == 1.1453
    assert_in_step(desk, fake)


def test_a_restarted_engine_adopts_the_broker_positions_and_keeps_trailing(trail_rules, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, sl=1.14400, tp=1.15000, magic=TREND)
    first = Desk(trail_rules, MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep))
    first.conn.connect()
    first.step()
    walk(fake, first, [1.14501 + i * 0.00002 for i in range(1, 20)])
    trailed = fake.positions[ticket].sl
    assert trailed == round(first.engine.book.positions[str(ticket)].stop_loss, 5) > 1.14500
    # the engine dies mid-trade; the price moves while it is down; a new process starts
    fake.tick("EURUSD", 1.14530, 1.14532, T0 + 25_000)
    second = Desk(trail_rules, MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep))
    second.conn.connect()
    second.step()
    [adopted] = second.engine.book.positions.values()
    assert (adopted.id, adopted.volume, adopted.stop_loss, adopted.status) == (str(ticket), 0.10, trailed, Status.OPEN)
    assert second.actions == []  # the broker's stop and target are taken over as they are
    walk(fake, second, [1.14550 + i * 0.00002 for i in range(10)], t0=T0 + 30_000)
    assert fake.positions[ticket].sl > trailed  # the new engine trails on and the safety net follows it
    assert_in_step(second, fake)
    walk(fake, second, [1.14540], t0=T0 + 45_000)  # through the stop: the broker-side SL closes it
    assert ticket not in fake.positions and second.engine.book.positions[str(ticket)].status == Status.CLOSED


def test_a_restarted_engine_does_not_take_exit_levels_again(rules, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, sl=1.14400, tp=1.15000, magic=TREND)
    first = Desk(rules, MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep))
    first.conn.connect()
    first.step()
    walk(fake, first, [1.14513])  # exit level 1: 30 % closed
    assert fake.positions[ticket].volume == pytest.approx(0.07)
    second = Desk(rules, MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep))
    second.conn.connect()
    second.step()
    assert fake.positions[ticket].volume == pytest.approx(0.07)


def test_a_close_sent_before_a_crash_is_not_sent_again_after_the_restart(fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, magic=TREND)
    exit_action = Action("a-exit", T0, "close_partial", str(ticket), "scalp_trend", {"volume": 0.03, "price": 1.145, "level": 0},
                         "exit_levels.0", "rv-test", "exit level 1")
    before = MT5Broker(MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep))
    fake.script_order_send("lost")  # the exit executes, its reply is lost, and the process dies
    assert before.execute(exit_action, {}) == [] and fake.positions[ticket].volume == pytest.approx(0.07)
    after = MT5Broker(MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep))
    [fill] = after.execute(exit_action, {})  # the journal replays the same action after the restart
    assert (fill.volume, fill.price) == (0.03, 1.145)  # found in the deals by its comment: booked, not resent
    assert len(deals_sent(fake)) == 1 and fake.positions[ticket].volume == pytest.approx(0.07)


def test_a_position_closed_by_the_trader_leaves_the_engine_with_the_real_price(desk: Desk, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "SELL", 0.10, price=1.14520, sl=1.14600, tp=1.14300, magic=REVERT)
    desk.step()
    fake.tick("EURUSD", 1.14511, 1.14513, T0 + 1_000)
    fake.close_position(ticket)
    desk.step()
    p = desk.engine.book.positions[str(ticket)]
    assert p.status == Status.CLOSED and (p.fills[-1].price, p.fills[-1].rule) == (1.14513, "broker")
    assert p.realized_pnl == pytest.approx((1.14520 - 1.14513) * 0.10 * 100_000)


def test_an_hour_of_real_eurusd_ticks_keeps_engine_and_broker_in_step(desk: Desk, fake: FakeTerminal) -> None:
    rows = json.loads(TICKS.read_text())
    ts0, ask0, bid0 = rows[0][:3]
    fake.tick("EURUSD", bid0, ask0, ts0)
    long = fake.open_position("EURUSD", "BUY", 0.15, magic=TREND)
    short = fake.open_position("EURUSD", "SELL", 0.15, magic=REVERT)
    desk.step()
    for ts, ask, bid, *_ in rows[1:]:
        fake.tick("EURUSD", bid, ask, ts)
        desk.step()
        assert_in_step(desk, fake)
    book = desk.engine.book
    assert {book.positions[str(long)].status, book.positions[str(short)].status} == {Status.CLOSED}
    assert [a.rule for a in desk.actions if a.type == "close_partial"] == ["exit_levels.0", "exit_levels.1"]
    assert [f.rule for f in book.positions[str(long)].fills] == ["exit_levels.0", "exit_levels.1", "broker_sl"]
    assert len([a for a in desk.actions if a.rule == "trailing"]) >= 5
    profit = sum(d.profit for t in (long, short) for d in fake.deals_of(t))
    assert book.realized() == pytest.approx(profit, abs=0.02)  # the engine booked the broker's real fills
    assert desk.broker.alerts == [] and not desk.broker.pending
    requests = list(fake.requests)
    assert all(len(r["comment"]) <= 31 for r in requests)
    sltp = [r for r in requests if r["action"] == M.TRADE_ACTION_SLTP]
    targets = {r["position"]: [] for r in sltp}
    for r in sltp:
        targets[r["position"]].append(r["tp"])
    for tps in targets.values():  # the level not moved is resent: once set, a target is never removed
        assert 0.0 not in tps[tps.index(next(t for t in tps if t > 0)):]


def test_a_retried_partial_exit_is_taken_off_the_managed_volume_once(desk: Desk, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, sl=1.14400, tp=1.15000, magic=TREND)
    desk.step()
    fake.script_order_send(M.TRADE_RETCODE_FROZEN)
    walk(fake, desk, [1.14514])  # exit level 1 is refused once, then filled by broker.poll as a late fill
    clock.now += 5
    desk.step()
    assert fake.positions[ticket].volume == pytest.approx(0.07)
    assert desk.engine.book.positions[str(ticket)].volume == pytest.approx(0.07)
    assert desk.engine.kernels["EURUSD"].state(str(ticket)).volume == pytest.approx(0.07)
