"""Event files: JSON lines of events, CSV ticks (ts,symbol,bid,ask) and Dukascopy tick JSON.

Readers yield ``(source, line, event)`` or ``(source, line, EventError)`` for a malformed record, so a
replay can report it with its line number and go on; ``line`` is the physical line of the file
(1-based). No record, however hostile (bytes that are not UTF-8, a 1 MB line, NUL bytes, a 5000-digit
number), makes a reader raise anything but ``OSError`` for a file it cannot open. A UTF-8 byte order
mark is skipped.

Time is one unit everywhere: ``ts`` is epoch milliseconds UTC (``engine.events.parse_ts``).
``read_history`` puts each file in time order before merging the files: every line whose time goes
back before the latest time of the lines above it is reported (``on_late``) and the file is replayed in
time order (a stable sort: lines of equal time keep their order); ``strict=True`` refuses such a file
with ``OutOfOrder`` instead, before any event is yielded.
"""

from __future__ import annotations

import csv
import heapq
import os
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from engine.errors import RiskrailError
from engine.events import MAX_EVENT_BYTES, Event, EventError, Tick, decode, parse_event, parse_json, parse_ts, show

Record = tuple[str, int, "Event | EventError"]
#: ``on_skip(source, line, error)``: a malformed record, skipped
OnSkip = Callable[[str, int, Exception], None]
#: ``on_late(source, line, ts, latest_ts, latest_line)``: a line whose time goes back (epoch ms)
OnLate = Callable[[str, int, int, int, int], None]

_BOM = "\ufeff"
_INT = re.compile(r"-?[0-9]+")
_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")


class OutOfOrder(RiskrailError):
    """An event file whose lines go back in time, refused (``strict``): the message names the first such line."""


def _lines(path: str, limit: int | None = MAX_EVENT_BYTES) -> Iterator[tuple[int, str | EventError]]:
    """Yield ``(line number, text)`` of each line, or an ``EventError`` for a line longer than ``limit``
    bytes or not UTF-8; a line is never held past ``limit`` bytes (the rest of a long line is read in chunks)."""
    with open(path, "rb") as fh:
        n = 0
        while True:
            raw = fh.readline() if limit is None else fh.readline(limit + 1)
            if not raw:
                return
            n += 1
            if limit is not None and len(raw) > limit and not raw.endswith(b"\n"):
                size = len(raw)
                while (more := fh.readline(1 << 20)) and not more.endswith(b"\n"):
                    size += len(more)
                size += len(more)
                yield n, EventError(f"expected a line of at most {limit} bytes, found {size} bytes")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield n, EventError(f"expected UTF-8 text, found undecodable bytes ({exc.reason} at byte {exc.start})")
                continue
            yield n, text[1:] if n == 1 and text.startswith(_BOM) else text


def read_jsonl(path: str) -> Iterator[Record]:
    """Yield the events of a JSON-lines file (blank lines and lines starting with # are skipped)."""
    for n, text in _lines(path, None):
        if isinstance(text, EventError):
            yield path, n, text
            continue
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        try:
            yield path, n, decode(text)  # the service's boundary: size, encoding, JSON, fields
        except EventError as exc:
            yield path, n, exc


def read_csv_ticks(path: str) -> Iterator[Record]:
    """Yield the ticks of a CSV file with the header ``ts,symbol,bid,ask`` (its first non-blank line).

    ``ts``: epoch milliseconds, or an ISO-8601 time; a number in another unit is refused (``parse_ts``).
    """
    columns: dict[str, int] | None = None
    headerless: EventError | None = None  # without the header no line can be read: each is reported with it
    for n, text in _lines(path):
        if isinstance(text, EventError):
            yield path, n, text
            continue
        if not text.strip():
            continue
        if headerless is not None:
            yield path, n, headerless
            continue
        try:
            row = next(csv.reader([text]))
        except csv.Error as exc:
            yield path, n, EventError(f"invalid CSV: {exc}")
            continue
        if columns is None:
            columns = {name.strip(): i for i, name in enumerate(row)}
            missing = {"ts", "symbol", "bid", "ask"} - set(columns)
            if missing:
                yield path, n, EventError(f"expected the header ts,symbol,bid,ask, missing {', '.join(sorted(missing))}")
                headerless = EventError(f"not read: the file has no header ts,symbol,bid,ask (line {n})")
            continue
        try:
            cell = {name: row[i].strip() if i < len(row) else None for name, i in columns.items()}
            obj = {"type": "tick", "ts": _ts_cell(cell["ts"]), "symbol": cell["symbol"],
                   "bid": _float(cell["bid"], "bid"), "ask": _float(cell["ask"], "ask")}
            yield path, n, parse_event(obj)
        except EventError as exc:
            yield path, n, exc


def _ts_cell(text: str | None) -> int | float | str | None:
    """A CSV ``ts`` as the number it spells (for ``parse_ts`` to check its unit), else the text (ISO-8601)."""
    if text is None:
        return None
    if _INT.fullmatch(text):
        if len(text.lstrip("-")) > 20:
            raise EventError(f"ts: expected epoch milliseconds, found an integer of {len(text.lstrip('-'))} digits")
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _float(text: str | None, name: str) -> float:
    if text is None:
        raise EventError(f"{name}: missing (the row has fewer columns than the header)")
    try:
        return float(text)
    except (TypeError, ValueError, OverflowError):
        raise EventError(f"{name}: expected a number, found {text!r}"[:200]) from None


def read_dukascopy(path: str, symbol: str) -> Iterator[Record]:
    """Yield the ticks of a Dukascopy JSON array of ``[ts_ms, ask, bid, ask_volume, bid_volume]``.

    The array is read line by line, as Dukascopy writes it (one row a line): a malformed line is reported
    with its number and the next line read. Rows sharing a line (a compact file) share its number.
    """
    opened = closed = False
    for n, text in _lines(path, None):
        if isinstance(text, EventError):
            yield path, n, text
            continue
        text = text.strip()
        if not opened and text:
            if not text.startswith("["):
                yield path, n, EventError("expected a JSON array of [ts_ms, ask, bid, ask_volume, bid_volume]")
                return
            opened, text = True, text[1:].strip()
        text = text.removesuffix(",").strip()
        if not text:
            continue
        if closed:
            yield path, n, EventError("expected nothing after the end of the array")
            continue
        try:
            rows, closed = _rows(text)
        except EventError as exc:
            yield path, n, exc
            continue
        for row in rows:
            try:
                if not isinstance(row, list) or len(row) < 3:
                    raise EventError(f"expected [ts_ms, ask, bid, ...], found {show(row)}")
                yield path, n, parse_event({"type": "tick", "ts": row[0], "symbol": symbol, "bid": row[2], "ask": row[1]})
            except EventError as exc:
                yield path, n, exc


def _rows(text: str) -> tuple[list, bool]:
    """The rows on one line of a Dukascopy array (its opening bracket removed), and whether it closes the array."""
    if text == "]":
        return [], True
    try:
        return parse_json(f"[{text}]", max_bytes=None, finite=False), False
    except EventError as first:
        if not text.endswith("]"):
            raise
        try:  # the array's closing bracket on the line of its last row
            return parse_json(f"[{text[:-1]}]", max_bytes=None, finite=False), True
        except EventError:
            raise first from None


def read_ticks(path: str, symbol: str | None = None) -> Iterator[Record]:
    """Yield ticks from a CSV or a Dukascopy JSON file (told apart by the file's first character)."""
    with open(path, "rb") as fh:
        head = fh.read(64).removeprefix(b"\xef\xbb\xbf").lstrip()
    if head.startswith(b"["):
        yield from read_dukascopy(path, symbol or _symbol_from_name(path))
    else:
        yield from read_csv_ticks(path)


def _symbol_from_name(path: str) -> str:
    # e.g. eurusd-ticks_dukascopy_2019-02-04.json -> EURUSD
    return os.path.basename(path).split("-", 1)[0].split("_", 1)[0].upper()


def merge(*streams: Iterator[Record]) -> Iterator[Record]:
    """Merge record streams by event time; at equal times, earlier streams and earlier lines go first.

    Each stream must be in time order (``in_time_order``); malformed records keep their place in their own stream.
    """
    def keyed(i: int, stream: Iterator[Record]):
        last = 0
        for n, rec in enumerate(stream):
            ev = rec[2]
            ts = ev.ts if not isinstance(ev, EventError) else last
            last = ts
            yield (ts, i, n), rec

    for _, rec in heapq.merge(*(keyed(i, s) for i, s in enumerate(streams)), key=lambda kr: kr[0]):
        yield rec


def in_time_order(records: Iterator[Record], on_skip: OnSkip, on_late: OnLate | None = None,
                  *, strict: bool = False) -> list[tuple[str, int, Event]]:
    """Return the valid events of one file in time order (stable), each malformed record sent to ``on_skip``.

    A line whose ``ts`` is before the latest ``ts`` of the lines above it goes to ``on_late``; with
    ``strict`` the first such line raises ``OutOfOrder`` instead.
    """
    out: list[tuple[str, int, Event]] = []
    latest, latest_line, late = None, 0, False
    for source, line, event in records:
        if isinstance(event, EventError):
            on_skip(source, line, event)
            continue
        if latest is not None and event.ts < latest:
            if strict:
                raise OutOfOrder(f"{source}:{line}: {late_note(event.ts, latest, latest_line)}; nothing was replayed")
            late = True
            if on_late is not None:
                on_late(source, line, event.ts, latest, latest_line)
        else:
            latest, latest_line = event.ts, line
        out.append((source, line, event))
    if late:
        out.sort(key=lambda rec: rec[2].ts)
    return out


def late_note(ts: int, latest: int, latest_line: int) -> str:
    """Say that a line's ``ts`` goes back before ``latest``, the time of line ``latest_line`` (epoch ms)."""
    return f"out of time order: ts {iso(ts)} ({ts}) is before {iso(latest)} ({latest}) of line {latest_line}"


def iso(ms: int) -> str:
    """Epoch milliseconds as an ISO-8601 UTC time with milliseconds, e.g. ``2019-02-04T00:00:00.994Z``."""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def read_history(events: list[str], ticks: list[str], symbol: str | None, on_skip: OnSkip,
                 on_late: OnLate | None = None, *, strict: bool = False) -> Iterator[tuple[str, int, Event]]:
    """Yield the valid events of JSON-lines files and tick files merged by time.

    Each file is read whole first and put in time order (``in_time_order``: ``on_late`` hears of each
    line that goes back in time, ``strict`` raises ``OutOfOrder`` before anything is yielded); each
    malformed record goes to ``on_skip(source, line, error)`` instead.
    """
    streams = [read_jsonl(path) for path in events] + [read_ticks(path, symbol) for path in ticks]
    ordered = [in_time_order(stream, on_skip, on_late, strict=strict) for stream in streams]
    for source, line, event in merge(*(iter(records) for records in ordered)):
        assert not isinstance(event, EventError)  # in_time_order kept valid events only
        yield source, line, event


__all__ = ["OutOfOrder", "Tick", "in_time_order", "iso", "late_note", "merge", "parse_ts", "read_csv_ticks", "read_dukascopy",
           "read_history", "read_jsonl", "read_ticks"]
