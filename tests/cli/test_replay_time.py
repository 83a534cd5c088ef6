"""`riskrail replay` and `plan` on hostile input: time order, timestamp units, bad lines, byte order marks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

TICKS = ROOT / "examples" / "data" / "eurusd-ticks_dukascopy_2019-02-04.json"
DEMO = ROOT / "examples" / "replay" / "positions.jsonl"
SCALPING = ROOT / "examples" / "scalping"


def riskrail(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, timeout=600)


def tick(ts: int | str, bid: float, ask: float, symbol: str = "EURUSD") -> str:
    return json.dumps({"type": "tick", "ts": ts, "symbol": symbol, "bid": bid, "ask": ask})


OPEN = json.dumps({"type": "position_opened", "ts": "2024-03-04T10:00:01Z", "position_id": "p1", "symbol": "EURUSD",
                   "strategy_type": "arbitrage", "strategy_name": "arb-eu-1", "action": "BUY", "volume": 0.1,
                   "entry_price": 1.0850})
# the position is written after the tick that takes it through its default stop (0.5 % below 1.0850)
LATE_OPEN = [tick("2024-03-04T10:00:00Z", 1.0849, 1.0850), tick("2024-03-04T10:00:02Z", 1.0790, 1.0791), OPEN,
             tick("2024-03-04T10:00:03Z", 1.0791, 1.0792)]


def test_a_position_written_after_the_tick_that_stops_it_out_is_reported_and_stopped(tmp_path: Path) -> None:
    events = tmp_path / "late.jsonl"
    events.write_text("\n".join(LATE_OPEN) + "\n")
    proc = riskrail("replay", "--events", str(events), "--config", str(ROOT))
    assert proc.returncode == 0, proc.stderr
    assert (f"{events}:3: out of time order: ts 2024-03-04T10:00:01.000Z (1709546401000) is before "
            f"2024-03-04T10:00:02.000Z (1709546402000) of line 2; processed in time order") in proc.stderr
    closes = [a for a in map(json.loads, proc.stdout.splitlines()) if a["type"] == "close"]
    assert [(a["position_id"], a["rule"], a["ts"], a["params"]["price"]) for a in closes] == [("p1", "stop_loss", 1709546402000, 1.079)]


def test_strict_order_refuses_the_file_naming_its_first_late_line(tmp_path: Path) -> None:
    events = tmp_path / "late.jsonl"
    events.write_text("\n".join(LATE_OPEN) + "\n")
    for command in (["replay", "--events", str(events)], ["plan", "--base", str(ROOT), "--history", str(events)]):
        proc = riskrail(*command, "--config", str(ROOT), "--strict-order")
        assert proc.returncode == 1, proc.stderr
        assert f"{events}:3: out of time order" in proc.stderr and "of line 2; nothing was replayed" in proc.stderr
        assert proc.stdout == "" and "Traceback" not in proc.stderr


def test_plan_reads_history_in_time_order_too(tmp_path: Path) -> None:
    events = tmp_path / "late.jsonl"
    events.write_text("\n".join(LATE_OPEN) + "\n")
    proc = riskrail("plan", "--base", str(ROOT), "--config", str(ROOT), "--history", str(events), "--format", "json")
    assert proc.returncode == 0, proc.stderr  # the same rules: identical
    assert f"{events}:3: out of time order" in proc.stderr
    assert json.loads(proc.stdout)["events"] == 4


def test_timestamps_in_other_units_are_reported_in_every_format_and_skipped(tmp_path: Path) -> None:
    ms = 1549238400994
    units = {"seconds": ms // 1000, "microseconds": ms * 1000, "nanoseconds": ms * 1_000_000}
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([tick(ms, 1.1, 1.2)] + [tick(ts, 1.1, 1.2) for ts in units.values()]
                                + [tick("1970-01-01T00:00:00Z", 1.1, 1.2)]) + "\n")
    csv = tmp_path / "ticks.csv"
    csv.write_text("ts,symbol,bid,ask\n" + "".join(f"{ts},EURUSD,1.1,1.2\n" for ts in [ms, *units.values(), 4102444800000]))
    duka = tmp_path / "eurusd-ticks.json"
    duka.write_text("[\n" + ",\n".join(json.dumps([ts, 1.2, 1.1]) for ts in [ms, *units.values(), 0.0]) + "\n]\n")
    proc = riskrail("replay", "--events", str(events), "--ticks", str(csv), "--ticks", str(duka), "--config", str(ROOT))
    assert proc.returncode == 0, proc.stderr
    for path, first in ((events, 2), (csv, 3), (duka, 3)):
        for line, unit in enumerate(units, first):
            assert f"{path}:{line}: skipped: ts: expected epoch milliseconds, found " in proc.stderr
            assert f"which looks like epoch {unit}" in proc.stderr.split(f"{path}:{line}: ")[1].splitlines()[0]
        assert f"{path}:{first + 3}: skipped: ts: expected a time between 2000-01-01 and 2100-01-01" in proc.stderr
    assert "replayed 3 events (3 ticks" in proc.stderr and "12 malformed records skipped" in proc.stderr


def good_lines() -> list[str]:
    """The demo positions among the first ten minutes of the real EURUSD ticks, in time order."""
    positions = [line for line in DEMO.read_text().splitlines() if line.startswith("{")]
    ticks = [tick(ts, bid, ask) for ts, ask, bid, *_ in json.loads(TICKS.read_text())[:2400]]
    return sorted(ticks + positions, key=lambda line: json.loads(line)["ts"])


def hostile_lines(ts: int) -> list[tuple[str, str]]:
    """(line, what stderr says about it) for lines that must be skipped, each at time ``ts``."""
    return [
        (tick(ts // 1000, 1.1, 1.2), "which looks like epoch seconds"),
        (tick(ts * 1000, 1.1, 1.2), "which looks like epoch microseconds"),
        (tick(ts * 1_000_000, 1.1, 1.2), "which looks like epoch nanoseconds"),
        (tick(1.7e18, 1.1, 1.2), "which looks like epoch nanoseconds"),
        (tick("2101-01-01T00:00:00Z", 1.1, 1.2), "expected a time between 2000-01-01 and 2100-01-01"),
        (tick(ts, 1.1, 1.2).replace('"bid": 1.1', '"bid": NaN'), "bid: expected a finite number, found NaN"),
        (tick(ts, 1.1, 1.2).replace('"ask": 1.2', '"ask": Infinity'), "ask: expected a finite number, found Infinity"),
        (tick(ts, -1.1, 1.2), "bid: expected a number above 0"),
        (tick(ts, 1.3, 1.2), "ask 1.2 is below bid 1.3"),
        (tick(ts, 1.1, 1.2, symbol="GBPJPY"), "tick for unknown symbol 'GBPJPY'"),
        (tick(ts, 1.1, 1.2).replace('"bid": 1.1', '"bid": "1.1"'), "bid: expected a number, found '1.1'"),
        (tick(ts, 1.1, 1.2).replace('"EURUSD"', "42"), "symbol: expected a non-empty string, found 42"),
        (tick(True, 1.1, 1.2), "ts: expected epoch milliseconds or an ISO-8601 time, found True"),
        (json.dumps({"type": "position_opened", "ts": ts, "position_id": "H", "symbol": "EURUSD", "strategy_type": "scalp_trend",
                     "action": "BUY", "volume": "lots", "entry_price": 1.1}), "volume: expected a number, found 'lots'"),
        (tick(ts, 1.1, 1.2, symbol="A" * 1_000_000), "expected an event of at most 65536 bytes"),
        ("[" * 100 + "]" * 100, "expected JSON nested at most 8 deep"),
        ("not json", "invalid JSON"),
    ]


def test_hostile_lines_are_each_reported_and_the_good_lines_decide_as_without_them(tmp_path: Path) -> None:
    good = good_lines()
    clean, dirty = tmp_path / "clean.jsonl", tmp_path / "dirty.jsonl"
    clean.write_text("\n".join(good) + "\n")
    lines, expected = [], {}
    step = len(good) // 20
    hostile = hostile_lines(json.loads(good[step])["ts"])
    for i, line in enumerate(good):
        lines.append(line)
        if i % step == 0 and i // step < len(hostile):
            bad, message = hostile[i // step]
            bad = bad.replace(f'"ts": {json.loads(good[step])["ts"]}', f'"ts": {json.loads(line)["ts"]}')  # in time order
            lines.append(bad)
            expected[len(lines)] = message
    dirty.write_text("\n".join(lines) + "\n")
    assert len(expected) == len(hostile)
    args = ("--config", str(SCALPING))
    base, proc = riskrail("replay", "--events", str(clean), *args), riskrail("replay", "--events", str(dirty), *args)
    assert base.returncode == 0 and proc.returncode == 0, proc.stderr
    assert "out of time order" not in proc.stderr and "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    reported = {int(line.split(":")[1]): line for line in proc.stderr.splitlines() if line.startswith(str(dirty))}
    assert set(reported) == set(expected)
    for number, message in expected.items():
        assert message in reported[number], reported[number]
    assert proc.stdout == base.stdout and base.stdout.count("\n") > 10  # byte for byte, ids included


def test_a_tick_csv_with_a_byte_order_mark_replays_as_without_it(tmp_path: Path) -> None:
    rows = json.loads(TICKS.read_text())[:1200]
    text = "ts,symbol,bid,ask\r\n" + "".join(f"{ts},EURUSD,{bid},{ask}\r\n" for ts, ask, bid, *_ in rows)
    plain, bom = tmp_path / "plain.csv", tmp_path / "bom.csv"
    plain.write_text(text, encoding="utf-8", newline="")
    bom.write_text(text, encoding="utf-8-sig", newline="")
    args = ("--events", str(DEMO), "--config", str(SCALPING))
    one, two = riskrail("replay", *args, "--ticks", str(plain)), riskrail("replay", *args, "--ticks", str(bom))
    assert two.returncode == 0, two.stderr
    assert ": skipped" not in two.stderr and f"({len(rows)} ticks" in two.stderr and " 0 malformed" in two.stderr
    assert two.stdout == one.stdout and one.stdout.count("\n") > 3
