"""Event files: every hostile record is an EventError with its physical line, and files come out in time order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.adapters.files import OutOfOrder, in_time_order, read_history, read_jsonl, read_ticks
from engine.events import EventError, Tick
from tests.conftest import ROOT

TICKS = ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"
T0 = 1549238400994  # the first tick of the real EURUSD hour


def problems(records) -> dict[int, str]:
    return {line: str(ev) for _, line, ev in records if isinstance(ev, EventError)}


def good(records) -> list[tuple[int, int]]:
    return [(line, ev.ts) for _, line, ev in records if not isinstance(ev, EventError)]


UNITS = [(T0 // 1000, "looks like epoch seconds"), (T0 * 1000, "looks like epoch microseconds"),
         (T0 * 1_000_000, "looks like epoch nanoseconds"), (-T0, "between 2000-01-01 and 2100-01-01")]


def test_csv_timestamps_in_other_units_are_named_with_their_line(tmp_path: Path) -> None:
    f = tmp_path / "ticks.csv"
    rows = [f"{T0},EURUSD,1.14543,1.14545"] + [f"{ts},EURUSD,1.14543,1.14545" for ts, _ in UNITS]
    rows += ["1.549238400994e18,EURUSD,1.14543,1.14545", "2019-02-04T00:00:01.5Z,EURUSD,1.14543,1.14545"]
    f.write_text("ts,symbol,bid,ask\n" + "\n".join(rows) + "\n")
    records = list(read_ticks(str(f)))
    found = problems(records)
    assert sorted(found) == [3, 4, 5, 6, 7]
    for line, (_, message) in enumerate(UNITS, 3):
        assert message in found[line]
    assert "looks like epoch nanoseconds" in found[7]
    assert good(records) == [(2, T0), (8, 1549238401500)]


def test_csv_with_a_byte_order_mark_reads_its_header(tmp_path: Path) -> None:
    f = tmp_path / "bom.csv"
    f.write_bytes("ts,symbol,bid,ask\r\n".encode("utf-8-sig") + f"{T0},EURUSD,1.14543,1.14545\r\n".encode())
    assert [ev for _, _, ev in read_ticks(str(f))] == [Tick(T0, "EURUSD", 1.14543, 1.14545)]


def test_csv_lines_that_break_the_csv_reader_are_reported_and_the_next_line_read(tmp_path: Path) -> None:
    f = tmp_path / "hostile.csv"
    f.write_bytes(b"ts,symbol,bid,ask\n"
                  + b"%d,EURUSD,1.1,1.2\n" % T0
                  + b"%d," % T0 + b"A" * 1_000_000 + b",1.1,1.2\n"     # past the csv module's field limit
                  + b"\xff\xfe,EURUSD,1.1,1.2\n"                        # not UTF-8
                  + b"%d,EURUSD,1.1\n" % T0                             # a column short
                  + b"\xc2\xb2,EURUSD,1.1,1.2\n"                        # a digit int() refuses
                  + b"%d,EURUSD,1.1,1.2\n" % (T0 + 1))
    records = list(read_ticks(str(f)))
    found = problems(records)
    assert "at most 65536 bytes, found 1000023 bytes" in found[3]
    assert "expected UTF-8 text" in found[4]
    assert "ask: missing" in found[5]
    assert "ts: expected epoch milliseconds or an ISO-8601 time" in found[6]
    assert good(records) == [(2, T0), (7, T0 + 1)]


def test_dukascopy_rows_are_reported_with_the_line_they_are_on(tmp_path: Path) -> None:
    real = json.loads(TICKS.read_text())[:3]
    hostile = [[ts, 1.14545, 1.14543, 1, 1] for ts, _ in UNITS] + [[T0, "NaN", 1.1], ["9" * 5000], [T0, 1.1, 1.2], {"ts": T0}]
    lines = ["["] + [json.dumps(r) + "," for r in real[:2] + hostile] + [json.dumps(real[2]), "]"]
    text = "\n".join(lines).replace('"NaN"', "NaN").replace('["' + "9" * 5000 + '"]', "[" + "9" * 5000 + "]")
    f = tmp_path / "eurusd-ticks.json"
    f.write_text(text)
    records = list(read_ticks(str(f)))
    found = problems(records)
    assert sorted(found) == list(range(4, 12))
    for line, (_, message) in enumerate(UNITS, 4):
        assert message in found[line]
    assert "ask: expected a finite number, found nan" in found[8]
    assert "at most 20 digits" in found[9]
    assert "below bid" in found[10]
    assert "expected [ts_ms, ask, bid, ...]" in found[11]
    assert good(records) == [(2, real[0][0]), (3, real[1][0]), (12, real[2][0])]
    assert {ev.symbol for _, _, ev in records if isinstance(ev, Tick)} == {"EURUSD"}


def test_the_shipped_dukascopy_hour_reads_whole_with_file_line_numbers() -> None:
    records = list(read_ticks(str(TICKS)))
    rows = json.loads(TICKS.read_text())
    assert not problems(records)
    assert good(records)[:2] == [(2, rows[0][0]), (3, rows[1][0])] and len(records) == len(rows)


def test_a_compact_dukascopy_array_on_one_line_reads(tmp_path: Path) -> None:
    f = tmp_path / "eurusd.json"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps([[T0, 1.2, 1.1], [T0 + 5, 1.2, 1.1]]).encode())
    assert good(list(read_ticks(str(f)))) == [(1, T0), (1, T0 + 5)]


def test_jsonl_with_a_byte_order_mark_reads_its_first_line(tmp_path: Path) -> None:
    f = tmp_path / "events.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + json.dumps({"type": "clock", "ts": T0}).encode() + b"\n")
    assert good(list(read_jsonl(str(f)))) == [(1, T0)]


def _events(tmp_path: Path, name: str, times: list[int]) -> str:
    f = tmp_path / name
    f.write_text("".join(json.dumps({"type": "tick", "ts": ts, "symbol": "EURUSD", "bid": 1.1 + i / 1000, "ask": 1.2})
                         + "\n" for i, ts in enumerate(times)))
    return str(f)


def test_lines_that_go_back_in_time_are_reported_and_sorted_stably(tmp_path: Path) -> None:
    path = _events(tmp_path, "e.jsonl", [T0, T0 + 20, T0 + 10, T0 + 20, T0 + 5, T0 + 30])
    late: list[tuple] = []
    out = in_time_order(read_jsonl(path), lambda *a: pytest.fail(f"skipped {a}"), lambda *a: late.append(a[1:]))
    assert late == [(3, T0 + 10, T0 + 20, 2), (5, T0 + 5, T0 + 20, 4)]  # line, its ts, the latest ts, the latest line
    assert [line for _, line, _ in out] == [1, 5, 3, 2, 4, 6]  # equal times (lines 2 and 4) keep file order


def test_strict_order_refuses_naming_the_first_line_that_goes_back(tmp_path: Path) -> None:
    path = _events(tmp_path, "e.jsonl", [T0, T0 + 20, T0 + 10, T0 + 5])
    history = read_history([path], [], None, lambda *a: None, strict=True)
    with pytest.raises(OutOfOrder, match=rf"e\.jsonl:3: out of time order: ts 2019-02-04T00:00:01.004Z \({T0 + 10}\) "
                                         rf"is before .* \({T0 + 20}\) of line 2"):
        next(history)  # refused before the first event is yielded


def test_files_merge_by_time_after_each_is_sorted(tmp_path: Path) -> None:
    a = _events(tmp_path, "a.jsonl", [T0 + 10, T0])
    b = _events(tmp_path, "b.jsonl", [T0, T0 + 10])
    got = [(Path(source).name, line) for source, line, _ in read_history([a, b], [], None, lambda *x: None)]
    assert got == [("a.jsonl", 2), ("b.jsonl", 1), ("a.jsonl", 1), ("b.jsonl", 2)]


def test_a_csv_without_its_header_reports_every_line_it_cannot_read(tmp_path: Path) -> None:
    f = tmp_path / "ticks.csv"
    f.write_text("".join(f"{T0 + i},EURUSD,1.14543,1.14545\n" for i in range(3)) + "\n")
    records = list(read_ticks(str(f)))
    found = problems(records)
    assert sorted(found) == [1, 2, 3] and good(records) == []
    assert "expected the header ts,symbol,bid,ask" in found[1]
    assert found[2] == found[3] == "not read: the file has no header ts,symbol,bid,ask (line 1)"


def test_a_short_csv_row_names_the_missing_column(tmp_path: Path) -> None:
    f = tmp_path / "ticks.csv"
    f.write_text(f"ts,symbol,bid,ask\n{T0},EURUSD,1.14543\n")
    assert problems(read_ticks(str(f))) == {2: "ask: missing (the row has fewer columns than the header)"}
