"""Event files: JSON lines of events, CSV ticks (ts,symbol,bid,ask) and Dukascopy tick JSON.

Readers yield ``(source, line, event)`` or ``(source, line, EventError)`` for a malformed record, so a
replay can report it with its line number and go on.
"""

from __future__ import annotations

import csv
import heapq
import json
import os
from collections.abc import Iterator

from engine.events import Event, EventError, Tick, decode, parse_event, parse_ts

Record = tuple[str, int, "Event | EventError"]


def read_jsonl(path: str) -> Iterator[Record]:
    """Yield the events of a JSON-lines file (blank lines and lines starting with # are skipped)."""
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            text = line.strip()
            if not text or text.startswith(b"#"):
                continue
            try:
                yield path, n, decode(text)  # the service's boundary: size, encoding, JSON, fields
            except EventError as exc:
                yield path, n, exc


def read_csv_ticks(path: str) -> Iterator[Record]:
    """Yield the ticks of a CSV file with the header ``ts,symbol,bid,ask``."""
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"ts", "symbol", "bid", "ask"} - set(reader.fieldnames or [])
        if missing:
            yield path, 1, EventError(f"expected the header ts,symbol,bid,ask, missing {', '.join(sorted(missing))}")
            return
        for n, row in enumerate(reader, 2):
            try:
                ts = row["ts"]
                obj = {"type": "tick", "ts": int(ts) if ts.strip().isdigit() else ts, "symbol": row["symbol"],
                       "bid": _float(row["bid"], "bid"), "ask": _float(row["ask"], "ask")}
                yield path, n, parse_event(obj)
            except EventError as exc:
                yield path, n, exc


def _float(text: str | None, name: str) -> float:
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise EventError(f"{name}: expected a number, found {text!r}") from None


def read_dukascopy(path: str, symbol: str) -> Iterator[Record]:
    """Yield the ticks of a Dukascopy JSON array of ``[ts_ms, ask, bid, ask_volume, bid_volume]``."""
    with open(path, encoding="utf-8") as fh:
        try:
            rows = json.load(fh)
        except json.JSONDecodeError as exc:
            yield path, exc.lineno, EventError(f"invalid JSON: {exc.msg}")
            return
    if not isinstance(rows, list):
        yield path, 1, EventError("expected a JSON array of [ts_ms, ask, bid, ask_volume, bid_volume]")
        return
    for n, row in enumerate(rows, 1):
        try:
            if not isinstance(row, list) or len(row) < 3:
                raise EventError(f"expected [ts_ms, ask, bid, ...], found {row!r}")
            yield path, n, parse_event({"type": "tick", "ts": row[0], "symbol": symbol, "bid": row[2], "ask": row[1]})
        except EventError as exc:
            yield path, n, exc


def read_ticks(path: str, symbol: str | None = None) -> Iterator[Record]:
    """Yield ticks from a CSV or a Dukascopy JSON file (told apart by the file's first character)."""
    with open(path, encoding="utf-8") as fh:
        head = fh.read(64).lstrip()
    if head.startswith("["):
        yield from read_dukascopy(path, symbol or _symbol_from_name(path))
    else:
        yield from read_csv_ticks(path)


def _symbol_from_name(path: str) -> str:
    # e.g. eurusd-ticks_dukascopy_2019-02-04.json -> EURUSD
    return os.path.basename(path).split("-", 1)[0].split("_", 1)[0].upper()


def merge(*streams: Iterator[Record]) -> Iterator[Record]:
    """Merge record streams by event time; at equal times, earlier streams and earlier lines go first.

    Malformed records keep their place in their own stream.
    """
    def keyed(i: int, stream: Iterator[Record]):
        last = 0
        for rec in stream:
            ev = rec[2]
            ts = ev.ts if not isinstance(ev, EventError) else last
            last = ts
            yield (ts, i, rec[1]), rec

    for _, rec in heapq.merge(*(keyed(i, s) for i, s in enumerate(streams)), key=lambda kr: kr[0]):
        yield rec


def read_history(events: list[str], ticks: list[str], symbol: str | None, on_skip) -> Iterator[tuple[str, int, Event]]:
    """Yield the valid events of JSON-lines files and tick files merged by time; each malformed record
    goes to ``on_skip(source, line, error)`` instead."""
    streams = [read_jsonl(path) for path in events] + [read_ticks(path, symbol) for path in ticks]
    for source, line, event in merge(*streams):
        if isinstance(event, EventError):
            on_skip(source, line, event)
        else:
            yield source, line, event


__all__ = ["Tick", "merge", "parse_ts", "read_csv_ticks", "read_dukascopy", "read_history", "read_jsonl", "read_ticks"]
