"""Broker positions and quotes as engine events: taken over, closed at the broker, polled, replayed."""

from __future__ import annotations

import json

import pytest

from engine.adapters.mt5 import MT5Connection, MT5Feed, StrategyMapper
from engine.config.models import Instrument, StrategyMap
from engine.events import parse_event
from engine.testing.mt5 import DEAL_REASON_CLIENT, FakeTerminal
from tests.adapters.conftest import REVERT, T0, TREND
from tests.conftest import ROOT

TICKS = ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"


def real_ticks(n: int) -> list[tuple[int, float, float]]:
    """The first ``n`` shipped EURUSD quotes as (ts, bid, ask): the file stores ask before bid."""
    return [(ts, bid, ask) for ts, ask, bid, *_ in json.loads(TICKS.read_text())[:n]]


def test_positions_found_at_the_broker_are_taken_over_as_existing(conn: MT5Connection, fake: FakeTerminal, rules) -> None:
    long = fake.open_position("EURUSD", "BUY", 0.10, price=1.14490, sl=1.14400, magic=TREND, time_msc=T0 - 60_000)
    short = fake.open_position("EURUSD", "SELL", 0.20, price=1.14510, tp=1.14300, magic=REVERT, comment="revert #7")
    events = MT5Feed(conn, rules).poll()
    assert events[:2] == [
        {"type": "position_opened", "ts": T0 - 60_000, "position_id": str(long), "symbol": "EURUSD", "strategy_type": "scalp_trend",
         "strategy_name": "scalp_trend", "action": "BUY", "volume": 0.10, "entry_price": 1.14490, "stop_loss": 1.14400,
         "take_profit": None, "existing": True},
        {"type": "position_opened", "ts": T0, "position_id": str(short), "symbol": "EURUSD", "strategy_type": "scalp_revert",
         "strategy_name": "revert #7", "action": "SELL", "volume": 0.20, "entry_price": 1.14510, "stop_loss": None,
         "take_profit": 1.14300, "existing": True},
    ]
    assert events[2] == {"type": "tick", "ts": T0, "symbol": "EURUSD", "bid": 1.145, "ask": 1.14502}
    for e in events:  # the engine reads them as they are, through JSON
        assert parse_event(json.loads(json.dumps(e)))
    assert parse_event(events[0]).existing


def test_an_unmapped_position_is_reported_once_and_left_alone(conn: MT5Connection, fake: FakeTerminal, rules) -> None:
    fake.open_position("EURUSD", "BUY", 0.10, magic=999, comment="manual")
    problems: list[str] = []
    feed = MT5Feed(conn, rules, on_problem=problems.append)
    assert feed.poll() == [] and feed.poll() == []  # no position managed: no quotes polled either
    assert len(problems) == 1 and "magic 999" in problems[0] and "not managed" in problems[0]


def test_strategy_by_magic_then_longest_comment_prefix_then_default() -> None:
    mapper = StrategyMapper(StrategyMap(magic={7: "a"}, comment_prefix={"tr": "b", "trend": "c"}, default="d"))
    assert mapper(7, "trend") == "a"
    assert mapper(1, "trend-42") == "c" and mapper(1, "tr-42") == "b"
    assert mapper(1, "other") == "d" and mapper(1, "") == "d"
    assert StrategyMapper({"magic": {7: "a"}})(8, "x") is None


def test_quotes_are_polled_for_managed_symbols_once_per_time_msc(conn: MT5Connection, fake: FakeTerminal, rules) -> None:
    fake.add_symbol("USDJPY", digits=3)
    fake.tick("USDJPY", 110.100, 110.110, T0 + 5)
    fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    feed = MT5Feed(conn, rules, symbols=["USDJPY"])  # a conversion pair is polled without a position
    first = [e for e in feed.poll() if e["type"] == "tick"]
    assert [(e["symbol"], e["ts"]) for e in first] == [("EURUSD", T0), ("USDJPY", T0 + 5)]
    assert feed.poll() == []  # nothing new
    fake.tick("EURUSD", 1.14510, 1.14512, T0 + 10)
    fake.tick("EURUSD", 1.14520, 1.14522, T0 + 20)  # between two polls only the latest quote is seen
    assert feed.poll() == [{"type": "tick", "ts": T0 + 20, "symbol": "EURUSD", "bid": 1.1452, "ask": 1.14522}]


def test_a_broker_stop_loss_is_booked_at_the_real_deal_price(conn: MT5Connection, fake: FakeTerminal, rules) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, sl=1.14450, magic=TREND)
    feed = MT5Feed(conn, rules)
    feed.poll()
    fake.tick("EURUSD", 1.14430, 1.14432, T0 + 1_000)  # gaps through the stop: filled worse, at the bid
    events = feed.poll()
    [deal] = [d for d in fake.deals_of(ticket) if d.entry == 1]  # its exit deal: the engine books it once, by its ticket
    assert events[0] == {"type": "fill", "ts": T0 + 1_000, "position_id": str(ticket), "volume": 0.10, "price": 1.14430,
                         "rule": "broker_sl", "deal_id": str(deal.ticket)}
    assert [e["type"] for e in events[1:]] == []  # the symbol has no managed position left
    assert feed.poll() == []


def test_a_partial_close_by_the_trader_is_a_fill_and_a_take_profit_closes_the_rest(conn: MT5Connection, fake: FakeTerminal, rules) -> None:
    ticket = fake.open_position("EURUSD", "SELL", 0.30, price=1.14500, tp=1.14400, magic=REVERT)
    feed = MT5Feed(conn, rules)
    feed.poll()
    fake.tick("EURUSD", 1.14470, 1.14472, T0 + 1_000)
    fake.close_position(ticket, 0.10, reason=DEAL_REASON_CLIENT)
    fake.tick("EURUSD", 1.14390, 1.14398, T0 + 2_000)
    fills = [e for e in feed.poll() if e["type"] == "fill"]
    assert [(f["volume"], f["price"], f["rule"]) for f in fills] == [(0.10, 1.14472, "broker"), (pytest.approx(0.20), 1.14398, "broker_tp")]


def test_a_deal_already_booked_by_the_broker_adapter_is_not_booked_again(conn: MT5Connection, fake: FakeTerminal, rules) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    feed = MT5Feed(conn, rules)
    feed.poll()
    fake.close_position(ticket)
    conn.ledger.add(fake.deals[-1].ticket)  # what MT5Broker does when its own close is done
    assert feed.poll() == []


def test_position_closed_only_when_no_deal_shows_up(conn: MT5Connection, fake: FakeTerminal, rules) -> None:
    ticket = fake.open_position("EURUSD", "BUY", 0.10, magic=TREND)
    feed = MT5Feed(conn, rules, close_grace=2)
    feed.poll()
    del fake.positions[ticket]  # gone, and the history does not have its deal (yet)
    assert feed.poll() == [] and feed.poll() == []
    [closed] = feed.poll()
    assert closed == {"type": "position_closed", "ts": T0, "position_id": str(ticket), "price": None}
    assert "without a deal" in feed.problems[-1]
    assert feed.poll() == []


def test_history_reads_copy_ticks_range_as_tick_events(conn: MT5Connection, fake: FakeTerminal) -> None:
    ticks = real_ticks(50)
    fake.feed_ticks("EURUSD", ticks)
    got = MT5Feed(conn).history("EURUSD", ticks[10][0], ticks[19][0])
    expected = [t for t in ticks if ticks[10][0] <= t[0] <= ticks[19][0]]
    assert [(e["ts"], e["bid"], e["ask"]) for e in got] == expected
    assert all(parse_event(e).symbol == "EURUSD" for e in got)


def test_server_time_is_shifted_to_utc(fake: FakeTerminal, clock) -> None:
    conn = MT5Connection(fake, env={}, clock=clock, sleep=clock.sleep, server_offset_ms=2 * 3_600_000)
    conn.connect()
    fake.feed_ticks("EURUSD", [(T0 + 2 * 3_600_000 + 7, 1.1, 1.1001)])
    feed = MT5Feed(conn, symbols=["EURUSD"])
    assert feed.poll()[0]["ts"] == T0 + 7
    assert [e["ts"] for e in feed.history("EURUSD", T0, T0 + 10)] == [T0 + 7]


def test_instruments_come_from_symbol_info_and_validate(conn: MT5Connection, fake: FakeTerminal) -> None:
    fake.add_symbol("USDJPY", digits=3, volume_step=0.1, volume_min=0.1, stops_level=15)
    got = MT5Feed(conn).instruments(["EURUSD", "USDJPY", "NOPE"])
    assert set(got) == {"EURUSD", "USDJPY"}
    jpy = Instrument.model_validate(got["USDJPY"])
    got_jpy = (jpy.base_currency, jpy.quote_currency, jpy.digits, jpy.pip_size, jpy.volume_step, jpy.stops_level)
    assert got_jpy == ("USD", "JPY", 3, 0.01, 0.1, 15)
    assert Instrument.model_validate(got["EURUSD"]).pip_size == 0.0001
    specs = MT5Feed(conn).specs(["EURUSD"])
    assert specs["EURUSD"].filling_mode == 3


def test_equity_and_the_days_result_come_from_the_account(conn: MT5Connection, fake: FakeTerminal) -> None:
    a = fake.open_position("EURUSD", "BUY", 1.0, price=1.14400)
    fake.close_position(a, price=1.14300)  # -100 realized today
    fake.open_position("EURUSD", "BUY", 1.0, price=1.14400)  # +100 floating at bid 1.14500
    feed = MT5Feed(conn)
    assert feed.equity() == pytest.approx(100_000.0)
    day = feed.day_pnl(T0 - 3_600_000)
    assert day == {"realized": pytest.approx(-100.0), "floating": pytest.approx(100.0), "equity": pytest.approx(100_000.0),
                   "start_balance": pytest.approx(100_000.0)}


def test_the_documented_strategy_map_validates_and_maps_as_described() -> None:
    from ruamel.yaml import YAML

    text = (ROOT / "docs" / "mt5.md").read_text()
    block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    mapping = StrategyMap.model_validate(YAML(typ="safe", pure=True).load(block)["strategy_map"])
    mapper = StrategyMapper(mapping)
    assert mapper(1002, "arb x") == "trend_following"  # the magic number first
    assert mapper(7, "news NFP") == "news_driven" and mapper(7, "arb-3") == "arbitrage"
    assert mapper(7, "manual") == "trend_following"  # the default


def test_a_symbol_the_broker_does_not_offer_is_reported_once(conn: MT5Connection, fake: FakeTerminal) -> None:
    feed = MT5Feed(conn, symbols=["EURUSD", "XAUUSD.m"])
    assert [e["symbol"] for e in feed.poll()] == ["EURUSD"]
    feed.poll()
    assert [p for p in feed.problems if "XAUUSD.m" in p] == [feed.problems[0]] and "Market Watch" in feed.problems[0]


def test_exit_deals_from_before_a_takeover_are_not_booked_again_at_the_next_close(conn: MT5Connection, fake: FakeTerminal, rules) -> None:
    # issue 14, case 3: 0.04 of 0.10 closed before riskrail took the position over; the trader then closes 0.02:
    # one fill of 0.02, not 0.06
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, magic=TREND)
    fake.close_position(ticket, 0.04, reason=DEAL_REASON_CLIENT)
    feed = MT5Feed(conn, rules)
    [opened] = [e for e in feed.poll() if e["type"] == "position_opened"]
    assert (opened["volume"], opened["volume0"]) == (pytest.approx(0.06), pytest.approx(0.10))
    fake.tick("EURUSD", 1.14520, 1.14522, T0 + 1_000)
    fake.close_position(ticket, 0.02, reason=DEAL_REASON_CLIENT)
    fills = [e for e in feed.poll() if e["type"] == "fill"]
    assert [(f["volume"], f["rule"]) for f in fills] == [(pytest.approx(0.02), "broker")]


def test_a_position_closed_at_the_broker_while_riskrail_was_down_is_booked_at_its_deal(conn: MT5Connection, fake: FakeTerminal,
                                                                                       rules) -> None:
    # issue 14, case 2: the engine restarts holding 0.06 of a position opened with 0.10 (0.04 closed and booked before
    # it stopped); meanwhile the broker's stop closed the rest: one fill of 0.06 at the deal's price, not a position
    # left open in the book, and not the old 0.04 again
    ticket = fake.open_position("EURUSD", "BUY", 0.10, price=1.14500, sl=1.14300, magic=TREND)
    fake.close_position(ticket, 0.04, reason=DEAL_REASON_CLIENT)
    fake.tick("EURUSD", 1.14290, 1.14292, T0 + 60_000)  # through the broker-side stop: closed at the broker
    assert ticket not in fake.positions
    feed = MT5Feed(conn, rules)
    feed.track([(str(ticket), "EURUSD", 0.06), ("not-a-ticket", "EURUSD", 0.1)])
    events = feed.poll()
    assert [(e["type"], e.get("volume"), e.get("rule")) for e in events if e["type"] != "tick"] == [
        ("fill", pytest.approx(0.06), "broker_sl")]
    assert [e for e in events if e["type"] == "position_opened"] == []
