"""Actions as MT5 trade requests: request shapes, retcodes, pending retries, and never a second close."""

from __future__ import annotations

import threading

import pytest

from engine.actions import Action
from engine.adapters.mt5 import MT5Broker, MT5Connection, MT5Feed
from engine.rules.evaluator import FillReport
from engine.testing import mt5 as M
from engine.testing.mt5 import FakeTerminal
from tests.adapters.conftest import ENV, T0, TREND, Clock


def action(type_: str, position_id: str, *, id_: str = "a-1", rule: str = "stop_loss", ts: int = T0, **params) -> Action:
    return Action(id_, ts, type_, position_id, "scalp_trend", params, rule, "rv-test", "test")


def closes(fake: FakeTerminal) -> list[dict]:
    return [r for r in fake.requests if r["action"] == M.TRADE_ACTION_DEAL]


def test_a_close_is_a_deal_on_the_ticket_at_the_bid_with_the_opposite_type(conn: MT5Connection, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.30, price=1.14400, magic=TREND)
    broker = MT5Broker(conn, deviation=10)
    [fill] = broker.execute(action("close", str(ticket), volume=0.3, price=1.145), {})
    [req] = closes(fake)
    assert req == {"action": M.TRADE_ACTION_DEAL, "position": ticket, "symbol": "EURUSD", "volume": 0.30, "type": M.ORDER_TYPE_SELL,
                   "price": 1.14500, "deviation": 10, "magic": TREND, "comment": req["comment"], "type_time": M.ORDER_TIME_GTC,
                   "type_filling": M.ORDER_FILLING_FOK}
    assert len(req["comment"]) <= 31
    assert fill == FillReport(str(ticket), T0, 0.30, 1.14500, "stop_loss", "a-1", str(fake.deals[-1].ticket))  # the deal, named
    assert ticket not in fake.positions and fake.deals[-1].ticket in conn.ledger


def test_a_short_is_closed_by_a_buy_at_the_ask_with_the_symbols_filling_mode(conn: MT5Connection, fake: FakeTerminal) -> None:
    fake.add_symbol("GBPUSD", filling_mode=2)  # IOC only
    fake.tick("GBPUSD", 1.30000, 1.30010, T0)
    ticket = fake.open_position("GBPUSD", "SELL", 0.10, magic=TREND)
    [fill] = MT5Broker(conn).execute(action("close", str(ticket), volume=0.1), {})
    [req] = closes(fake)
    assert (req["type"], req["price"], req["type_filling"]) == (M.ORDER_TYPE_BUY, 1.30010, M.ORDER_FILLING_IOC)
    assert fill.price == 1.30010


@pytest.mark.parametrize("asked, sent", [(0.025, 0.02), (0.035, 0.04), (0.0333, 0.03), (0.1, 0.1)])
def test_a_partial_close_is_rounded_to_the_volume_step(conn: MT5Connection, fake: FakeTerminal, asked: float, sent: float) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    [fill] = MT5Broker(conn).execute(action("close_partial", str(ticket), volume=asked, rule="exit_levels.0"), {})
    assert closes(fake)[0]["volume"] == sent and fill.volume == sent and fill.rule == "exit_levels.0"
    assert fake.positions.get(ticket) is None if sent == 0.1 else fake.positions[ticket].volume == pytest.approx(0.10 - sent)


def test_a_partial_close_below_the_minimum_volume_sends_nothing_and_says_so(conn: MT5Connection, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    broker = MT5Broker(conn)
    assert broker.execute(action("close_partial", str(ticket), volume=0.004), {}) == []
    assert closes(fake) == [] and "rounds to 0" in broker.alerts[0]["message"] and not broker.pending


def test_a_requote_is_retried_at_once_with_a_fresh_price(conn: MT5Connection, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    fake.script_order_send(lambda: fake.tick("EURUSD", 1.14460, 1.14462, T0 + 5))  # the price runs before the request lands
    [fill] = MT5Broker(conn, deviation=5).execute(action("close", str(ticket), volume=0.1), {})
    assert [r["price"] for r in closes(fake)] == [1.14500, 1.14460]  # requoted (40 points off), then the new bid
    assert fill.price == 1.14460


def test_requotes_beyond_the_bound_leave_the_close_pending_with_an_alert(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    fake.script_order_send(M.TRADE_RETCODE_REQUOTE, M.TRADE_RETCODE_PRICE_OFF, M.TRADE_RETCODE_REQUOTE)
    broker = MT5Broker(conn, max_requotes=2)
    assert broker.execute(action("close", str(ticket), volume=0.1), {}) == []
    assert len(closes(fake)) == 3 and ticket in fake.positions
    assert list(broker.pending) == ["a-1"] and "requoted 3 times" in broker.alerts[-1]["message"]
    assert broker.poll() == []  # not due yet
    clock.now += 1.0
    [fill] = broker.poll()
    assert fill.volume == 0.10 and ticket not in fake.positions and not broker.pending
    assert "went through after 2 attempts" in broker.alerts[-1]["message"]


def test_a_refused_close_stays_pending_and_is_retried_with_backoff(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    fake.script_order_send(M.TRADE_RETCODE_MARKET_CLOSED, M.TRADE_RETCODE_MARKET_CLOSED)
    broker = MT5Broker(conn, retry_after=2.0)
    assert broker.execute(action("close", str(ticket), volume=0.1), {}) == []
    assert "retcode 10018" in broker.alerts[0]["message"]
    clock.now += 2.0
    assert broker.poll() == [] and len(closes(fake)) == 2
    clock.now += 3.9
    assert broker.poll() == [] and len(closes(fake)) == 2  # next try after 4 s
    clock.now += 0.1
    assert len(broker.poll()) == 1 and len(closes(fake)) == 3
    assert len(broker.alerts) == 2  # the first failure and the recovery, not one per retry


def test_a_close_whose_reply_was_lost_is_found_and_never_sent_twice(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.30, magic=TREND)
    fake.script_order_send("lost")  # executed at the server, but order_send returns None
    broker = MT5Broker(conn)
    assert broker.execute(action("close_partial", str(ticket), volume=0.1, rule="exit_levels.0"), {}) == []
    assert "returned nothing" in broker.alerts[0]["message"]
    assert fake.positions[ticket].volume == pytest.approx(0.20)
    clock.now += 1.0
    [fill] = broker.poll()
    assert (fill.volume, fill.price, fill.rule) == (0.1, 1.145, "exit_levels.0")
    assert len(closes(fake)) == 1 and fake.positions[ticket].volume == pytest.approx(0.20)
    clock.now += 100
    assert broker.poll() == [] and not broker.pending


def test_order_send_none_leaves_the_action_pending_until_it_can_be_sent(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.30, magic=TREND)
    fake.script_order_send(None)
    broker = MT5Broker(conn)
    assert broker.execute(action("close", str(ticket), volume=0.3), {}) == []
    assert ticket in fake.positions and "IPC timeout" in broker.alerts[0]["message"]
    clock.now += 1
    [fill] = broker.poll()
    assert fill.volume == 0.30 and ticket not in fake.positions


def test_the_same_action_is_carried_out_once_and_a_position_is_closed_once(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.30, magic=TREND)
    broker = MT5Broker(conn)
    fake.script_order_send(M.TRADE_RETCODE_FROZEN)
    first = action("close", str(ticket), id_="a-first", volume=0.3)
    assert broker.execute(first, {}) == []
    assert broker.execute(first, {}) == []  # the same id again: nothing sent
    assert broker.execute(action("close", str(ticket), id_="a-second", volume=0.3), {}) == []  # another close of it
    assert broker.execute(action("close_partial", str(ticket), id_="a-third", volume=0.1), {}) == []
    assert len(closes(fake)) == 1
    clock.now += 1
    assert len(broker.poll()) == 1 and len(closes(fake)) == 2 and not broker.pending


def test_a_close_of_a_position_the_broker_already_closed_needs_nothing(conn: MT5Connection, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    fake.close_position(ticket)
    broker = MT5Broker(conn)
    assert broker.execute(action("close", str(ticket), volume=0.1), {}) == []
    assert closes(fake) == [] and not broker.pending and broker.alerts == []


def test_close_all_closes_every_position_it_names(conn: MT5Connection, fake: FakeTerminal) -> None:
    a = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    b = fake.open_position("EURUSD", "SELL", 0.20, magic=TREND)
    items = [{"position_id": str(a), "volume": 0.1, "price": 1.145}, {"position_id": str(b), "volume": 0.2, "price": 1.14502}]
    fills = MT5Broker(conn).execute(action("close_all", None, rule="daily_loss", positions=items), {})
    assert [(f.position_id, f.volume, f.price) for f in fills] == [(str(a), 0.1, 1.145), (str(b), 0.2, 1.14502)]
    assert fake.positions == {}


def test_a_stop_move_sends_sltp_with_both_levels(conn: MT5Connection, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14400, sl=1.14300, tp=1.14800, magic=TREND)
    broker = MT5Broker(conn)
    assert broker.execute(action("set_stop_loss", str(ticket), rule="trailing", stop_loss=1.144123456, previous=1.143), {}) == []
    assert fake.requests == [{"action": M.TRADE_ACTION_SLTP, "position": ticket, "symbol": "EURUSD", "sl": 1.14412, "tp": 1.14800,
                              "magic": TREND, "comment": fake.requests[0]["comment"]}]
    broker.execute(action("set_take_profit", str(ticket), id_="a-2", rule="dynamic_sltp", take_profit=1.1470, previous=1.148), {})
    assert (fake.requests[-1]["sl"], fake.requests[-1]["tp"]) == (1.14412, 1.1470)
    assert (fake.positions[ticket].sl, fake.positions[ticket].tp) == (1.14412, 1.1470)
    broker.execute(action("set_stop_loss", str(ticket), id_="a-3", stop_loss=1.144121), {})  # same level at 5 digits
    assert len(fake.requests) == 2 and not broker.pending


def test_no_changes_is_success(conn: MT5Connection, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, sl=1.14300, magic=TREND)
    broker = MT5Broker(conn)
    fake.script_order_send(M.TRADE_RETCODE_NO_CHANGES)
    broker.execute(action("set_stop_loss", str(ticket), stop_loss=1.14350), {})
    assert len(fake.requests) == 1 and not broker.pending and broker.alerts == []


def test_invalid_stops_moves_the_level_outside_the_stops_level_and_retries_once(conn: MT5Connection, fake: FakeTerminal) -> None:
    fake.add_symbol("EURGBP", stops_level=30)
    fake.tick("EURGBP", 0.87000, 0.87010, T0)
    long = fake.open_position("EURGBP", "BUY", 0.10, price=0.86900, sl=0.86800, magic=TREND)
    short = fake.open_position("EURGBP", "SELL", 0.10, price=0.87100, sl=0.87200, magic=TREND)
    broker = MT5Broker(conn)
    broker.execute(action("set_stop_loss", str(long), stop_loss=0.86990), {})  # 10 points under the bid: too close
    assert [r["sl"] for r in fake.requests] == [0.86990, 0.86969]  # then 31 points under the bid
    assert fake.positions[long].sl == 0.86969 and "stops 30 points from the price" in broker.alerts[0]["message"]
    broker.execute(action("set_stop_loss", str(short), id_="a-2", stop_loss=0.87020), {})
    assert fake.requests[-1]["sl"] == 0.87041 and fake.positions[short].sl == 0.87041
    assert not broker.pending


def test_invalid_stops_twice_leaves_the_move_pending(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, sl=1.14300, magic=TREND)
    fake.script_order_send(M.TRADE_RETCODE_INVALID_STOPS, M.TRADE_RETCODE_INVALID_STOPS)
    broker = MT5Broker(conn)
    broker.execute(action("set_stop_loss", str(ticket), stop_loss=1.14400), {})
    assert len(fake.requests) == 2 and list(broker.pending) == [f"sltp:{ticket}"]
    clock.now += 1
    broker.poll()
    assert fake.positions[ticket].sl == 1.14400 and not broker.pending


def test_a_newer_stop_replaces_a_pending_older_one(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, sl=1.14300, magic=TREND)
    fake.script_order_send(M.TRADE_RETCODE_TIMEOUT)
    broker = MT5Broker(conn)
    broker.execute(action("set_stop_loss", str(ticket), id_="a-1", stop_loss=1.14400), {})
    broker.execute(action("set_stop_loss", str(ticket), id_="a-2", stop_loss=1.14420), {})
    assert fake.positions[ticket].sl == 1.14420 and not broker.pending
    clock.now += 10
    broker.poll()
    assert [r["sl"] for r in fake.requests] == [1.14400, 1.14420]


def test_positions_that_are_not_tickets_are_left_alone(conn: MT5Connection, fake: FakeTerminal) -> None:
    broker = MT5Broker(conn)
    assert broker.execute(action("close", "R1", volume=0.1), {}) == []
    assert fake.requests == [] and "not a MetaTrader 5 ticket" in broker.alerts[0]["message"]


def test_alerts_go_to_the_callback(conn: MT5Connection, fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    got: list[dict] = []
    fake.script_order_send(M.TRADE_RETCODE_REJECT)
    MT5Broker(conn, on_alert=got.append).execute(action("close", str(ticket), volume=0.1), {})
    assert got and set(got[0]) == {"ts", "action_id", "position_id", "message"} and got[0]["position_id"] == str(ticket)


def test_done_partial_books_what_filled_and_closes_the_rest_later(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.30, magic=TREND)
    fake.script_order_send(("partial", 0.12))
    broker = MT5Broker(conn)
    [first] = broker.execute(action("close", str(ticket), volume=0.3), {})
    assert first.volume == 0.12 and fake.positions[ticket].volume == pytest.approx(0.18)
    assert "filled partly (0.12 of 0.3 lots)" in broker.alerts[0]["message"] and list(broker.pending) == ["a-1"]
    clock.now += 1
    [rest] = broker.poll()
    assert rest.volume == pytest.approx(0.18) and ticket not in fake.positions and not broker.pending
    assert [r["volume"] for r in closes(fake)] == [0.3, pytest.approx(0.18)]


def test_a_partial_exit_filled_partly_sends_only_what_is_missing(conn: MT5Connection, fake: FakeTerminal, clock: Clock) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.30, magic=TREND)
    fake.script_order_send(("partial", 0.04))
    broker = MT5Broker(conn)
    [first] = broker.execute(action("close_partial", str(ticket), volume=0.1), {})
    clock.now += 1
    [rest] = broker.poll()
    assert (first.volume, rest.volume) == (0.04, pytest.approx(0.06))
    assert fake.positions[ticket].volume == pytest.approx(0.20) and [r["volume"] for r in closes(fake)] == [0.1, 0.06]


def test_invalid_stops_never_moves_the_broker_side_stop_looser_than_the_one_there(conn: MT5Connection, fake: FakeTerminal) -> None:
    # issue 14, case 5: a long with its stop at 1.10000 at the broker, the bid at 1.10010 and stops kept 200 points
    # away; the engine tightens the stop to 1.10005, the broker refuses (too near the price), and recomputed from
    # the quote the stop would be 1.09809, looser than the 1.10000 already there: that is never sent
    fake.add_symbol("EURCHF", stops_level=200)
    fake.tick("EURCHF", 1.10010, 1.10020, T0)
    ticket = fake.open_position("EURCHF", "BUY", 0.10, price=1.09500, sl=1.10000, magic=TREND)
    broker = MT5Broker(conn)
    broker.execute(action("set_stop_loss", str(ticket), stop_loss=1.10005), {})
    assert [r["sl"] for r in fake.requests] == [1.10005], broker.alerts
    assert fake.positions[ticket].sl == 1.10000 and not broker.pending
    assert "a stop never loosens" in broker.alerts[0]["message"]


def test_a_close_holds_the_terminal_from_sending_to_booking_so_the_feed_cannot_book_its_deal_too(
        conn: MT5Connection, fake: FakeTerminal) -> None:
    # issue 14: the feed's thread reads the deal history between two of the broker's calls; while the broker
    # books the deal it just made (history_deals_get after order_send), no other thread may use the terminal
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14400, magic=TREND)
    seen: list[bool] = []
    real_call = conn.call

    def call(name: str, *args, **kwargs):
        if name == "history_deals_get" and kwargs.get("ticket"):  # the broker reading the deal of its order
            def try_the_terminal() -> None:
                got = conn.lock.acquire(blocking=False)
                seen.append(got)
                if got:
                    conn.lock.release()

            other = threading.Thread(target=try_the_terminal)
            other.start()
            other.join()
        return real_call(name, *args, **kwargs)

    conn.call = call  # type: ignore[method-assign]
    [fill] = MT5Broker(conn).execute(action("close_partial", str(ticket), volume=0.04, rule="exit_levels.0"), {})
    assert seen == [False] and fill.volume == 0.04  # the feed's thread waits until the deal is in the ledger
    assert int(fake.deals[-1].ticket) in conn.ledger


def test_a_lost_reply_is_found_without_comments_in_the_deals_and_never_sent_twice(conn: MT5Connection, fake: FakeTerminal,
                                                                                  clock: Clock) -> None:
    # issue 14: a broker that does not copy the order's comment into its deals; the reply to the close is lost
    fake.deal_comments = False
    ticket = fake.open_position("EURUSD", "BUY", 0.30, magic=TREND)
    fake.close_position(ticket, 0.05)  # the trader closed some by hand before: not this job's deal
    fake.script_order_send("lost")
    broker = MT5Broker(conn)
    assert broker.execute(action("close_partial", str(ticket), volume=0.1, rule="exit_levels.0"), {}) == []
    clock.now += 1.0
    [fill] = broker.poll()  # found by magic number, position and time instead of the comment
    assert (fill.volume, fill.rule) == (0.1, "exit_levels.0")
    assert len(closes(fake)) == 1 and fake.positions[ticket].volume == pytest.approx(0.15)
    clock.now += 100
    assert broker.poll() == [] and not broker.pending


def restarted(fake: FakeTerminal, clock: Clock) -> MT5Broker:
    """A broker of a new process on the same terminal: a new connection, nothing booked, nothing pending."""
    conn = MT5Connection(fake, env=ENV, clock=clock, sleep=clock.sleep)
    conn.connect()
    return MT5Broker(conn)


def test_a_close_is_booked_at_the_deals_price_when_the_market_moved_before_it_landed(conn: MT5Connection, fake: FakeTerminal) -> None:
    fake.add_symbol("GBPUSD", execution=M.SYMBOL_TRADE_EXECUTION_MARKET)  # no requotes: the order takes the market it meets
    fake.tick("GBPUSD", 1.30000, 1.30010, T0)
    ticket = fake.open_position("GBPUSD", "BUY", 0.10, magic=TREND)
    fake.script_order_send(("move", -7))
    [fill] = MT5Broker(conn).execute(action("close_partial", str(ticket), volume=0.03, rule="exit_levels.0"), {})
    assert closes(fake)[0]["price"] == 1.30000 and fake.deals[-1].price == 1.29993
    assert (fill.volume, fill.price) == (0.03, 1.29993)


def test_an_order_filled_in_two_deals_is_two_fills_at_their_prices_and_the_feed_books_neither(conn: MT5Connection,
                                                                                                fake: FakeTerminal) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    feed = MT5Feed(conn, {"magic": {TREND: "scalp_trend"}})
    feed.poll()
    fake.script_order_send(("split", 0.01))
    fills = MT5Broker(conn).execute(action("close_partial", str(ticket), volume=0.03, rule="exit_levels.0"), {})
    assert [(f.volume, f.price) for f in fills] == [(0.01, 1.14500), (0.02, 1.14499)] and len(closes(fake)) == 1
    assert [e for e in feed.poll() if e["type"] == "fill"] == []


@pytest.mark.parametrize("comments", [True, False])
def test_a_restarted_broker_books_the_close_an_earlier_process_sent_and_sends_nothing(fake: FakeTerminal, clock: Clock,
                                                                                     comments: bool) -> None:
    # the reply to the close was lost and the process died; the engine decides the same action again from the same event
    fake.deal_comments = comments
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    fake.script_order_send(("move", -3), "lost")
    assert restarted(fake, clock).execute(action("close_partial", str(ticket), volume=0.03, rule="exit_levels.0"), {}) == []
    broker = restarted(fake, clock)
    [fill] = broker.execute(action("close_partial", str(ticket), volume=0.03, rule="exit_levels.0"), {})
    assert (fill.volume, fill.price, fill.action_id) == (0.03, 1.14497, "a-1")
    assert len(closes(fake)) == 1 and fake.positions[ticket].volume == pytest.approx(0.07) and not broker.pending


def test_a_restarted_broker_finds_both_deals_of_its_order_without_comments(fake: FakeTerminal, clock: Clock) -> None:
    fake.deal_comments = False
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    first = restarted(fake, clock)
    fake.script_order_send(("split", 0.01), "lost")
    assert first.execute(action("close_partial", str(ticket), volume=0.03, rule="exit_levels.0"), {}) == []
    fills = restarted(fake, clock).execute(action("close_partial", str(ticket), volume=0.03, rule="exit_levels.0"), {})
    assert [(f.volume, f.price) for f in fills] == [(0.01, 1.14500), (0.02, 1.14499)] and len(closes(fake)) == 1


def test_after_a_restart_each_of_two_lost_closes_takes_its_own_deal_without_comments(fake: FakeTerminal, clock: Clock) -> None:
    # two exits of one position decided one after the other, both replies lost, then the process died: decided again,
    # each books its own deal (the older job may not take the younger one's), and nothing is sent
    fake.deal_comments = False
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    old = restarted(fake, clock)
    fake.script_order_send("lost", "lost")
    first, second = (action("close_partial", str(ticket), id_="a-1", volume=0.03, rule="exit_levels.0"),
                     action("close_partial", str(ticket), id_="a-2", ts=T0 + 1, volume=0.04, rule="exit_levels.1"))
    old.execute(first, {})
    fake.tick("EURUSD", 1.14510, 1.14512, T0 + 1)
    old.execute(second, {})
    broker = restarted(fake, clock)
    [a] = broker.execute(first, {})
    [b] = broker.execute(second, {})
    assert [(a.action_id, a.volume, a.price), (b.action_id, b.volume, b.price)] == [("a-1", 0.03, 1.145), ("a-2", 0.04, 1.1451)]
    assert len(closes(fake)) == 2 and fake.positions[ticket].volume == pytest.approx(0.03)
