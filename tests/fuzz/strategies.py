"""Hypothesis strategies of hostile input, for the fuzz properties and ``bench/fuzz.py``.

Four families, each mixing what a well-behaved sender sends with what a broken or hostile one does:

- events as JSON objects (``valid_events``, ``mutated_events``): every event type, well-formed, then
  with fields replaced by wrong types, huge, negative, NaN or infinite numbers, integers of thousands
  of digits, timestamps in seconds, microseconds, nanoseconds or ISO-8601 far from now, long ids and
  ids with control characters, extra fields, nested junk, fields removed;
- raw bytes (``raw_events``): arbitrary bytes, invalid UTF-8 spliced into events, truncated JSON,
  nesting from 1 to 100 000 deep, ``NaN``/``Infinity`` literals, number literals of thousands of
  digits, events at the size limit give or take a byte, duplicate keys, wrappers (BOM, arrays, strings);
- rule-file texts (``yaml_texts``): the shipped rule files mutated line by line, generated rule-file-like
  documents with anchors, aliases, merge keys and tags, exponential alias chains, deep flow and block
  nesting, bad scalars, hostile conditions, texts around the size limit;
- API requests (``position_requests``, ``validate_requests``, ``plan_requests``): what a client may
  send to ``POST /api/positions``, ``POST /api/rules/validate`` and ``POST /api/rules/plan``.

Every strategy draws both accepted and refused input: the properties classify with the code under
test (an event is bad when ``decode`` refuses it), so a strategy never has to know the answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from engine.config._yaml import MAX_FILE_BYTES
from engine.config.models import KINDS
from engine.events import LIMITS, MAX_EVENT_BYTES, MAX_ID_LENGTH, TS_MAX_MS, TS_MIN_MS

ROOT = Path(__file__).resolve().parents[2]

# --- (a) events as JSON objects ------------------------------------------------------------------

TYPES = ("tick", "position_opened", "position_closed", "fill", "clock")
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "EURJPY", "XAUUSD")
STRATEGY_TYPES = ("scalp_trend", "scalp_revert", "arbitrage", "unknown_strategy")
#: every field name an event type reads, the ones the mutations aim at
FIELDS = ("type", "ts", "symbol", "bid", "ask", "price", "position_id", "strategy_type", "strategy_name", "action",
          "volume", "entry_price", "stop_loss", "take_profit", "existing", "volume0", "rule", "action_id")
NUMERIC = {"bid", "ask", "price", "volume", "entry_price", "stop_loss", "take_profit", "volume0"}
IDENTIFIERS = {"symbol", "position_id", "strategy_type", "strategy_name", "rule", "action_id"}

valid_ts = st.integers(TS_MIN_MS, TS_MAX_MS - 1)
# ISO-8601 times inside the accepted range, to the millisecond, in the spellings parse_ts reads
_iso_datetimes = st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2099, 12, 30)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000, tzinfo=UTC))
_offsets = st.sampled_from([timedelta(0), timedelta(hours=5, minutes=30), timedelta(hours=-8), timedelta(hours=14)])
iso_ts = st.one_of(
    _iso_datetimes.map(lambda d: d.isoformat()),
    _iso_datetimes.map(lambda d: d.isoformat().replace("+00:00", "Z")),
    _iso_datetimes.map(lambda d: d.replace(tzinfo=None).isoformat()),
    st.builds(lambda d, o: d.astimezone(timezone(o)).isoformat(), _iso_datetimes, _offsets),
)
prices = st.floats(min_value=1e-6, max_value=LIMITS["price"], allow_nan=False, allow_infinity=False)
volumes = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
# ids as trading systems write them, and any printable text up to the limit
ids = st.one_of(
    st.from_regex(r"[A-Za-z][A-Za-z0-9_.:-]{0,30}", fullmatch=True),
    st.text(st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S"], include_characters=" "), min_size=1, max_size=MAX_ID_LENGTH),
)


@st.composite
def valid_events(draw: st.DrawFn, types: tuple[str, ...] = TYPES) -> dict[str, Any]:
    """A well-formed event of one of ``types``: ``decode`` accepts its JSON."""
    kind = draw(st.sampled_from(types))
    obj: dict[str, Any] = {"type": kind, "ts": draw(st.one_of(valid_ts, valid_ts, iso_ts))}
    if kind == "tick":
        bid = draw(prices)
        ask = draw(st.floats(min_value=bid, max_value=LIMITS["price"], allow_nan=False))
        if draw(st.booleans()):
            obj.update(symbol=draw(st.sampled_from(SYMBOLS)), bid=bid, ask=ask)
        else:
            obj.update(symbol=draw(st.one_of(st.sampled_from(SYMBOLS), ids)), price=bid)
    elif kind == "position_opened":
        volume = draw(volumes)
        obj.update(position_id=draw(ids), symbol=draw(st.sampled_from(SYMBOLS)), strategy_type=draw(st.sampled_from(STRATEGY_TYPES)),
                   strategy_name=draw(ids), action=draw(st.sampled_from(["BUY", "SELL"])), volume=volume, entry_price=draw(prices))
        for key in ("stop_loss", "take_profit"):
            if draw(st.booleans()):
                obj[key] = draw(st.one_of(st.none(), prices))
        if draw(st.booleans()):
            obj["existing"] = draw(st.booleans())
            if obj["existing"] and draw(st.booleans()):
                obj["volume0"] = volume * draw(st.floats(1, 10))
    elif kind == "position_closed":
        obj["position_id"] = draw(ids)
        if draw(st.booleans()):
            obj["price"] = draw(st.one_of(st.none(), prices))
    elif kind == "fill":
        obj.update(position_id=draw(ids), volume=draw(volumes), price=draw(prices))
        if draw(st.booleans()):
            obj["rule"] = draw(ids)
        if draw(st.booleans()):
            obj["action_id"] = draw(st.one_of(st.none(), ids))
    if draw(st.integers(0, 4)) == 0:  # extra fields are ignored
        obj[draw(st.sampled_from(["note", "source", "magic", "comment"]))] = draw(benign_values)
    return obj


# what an extra field may hold: JSON the boundary reads (finite numbers, integers of at most 20 digits)
benign_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(10**20) + 1, 10**20 - 1), st.floats(allow_nan=False, allow_infinity=False),
              st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=6,
)


def nested(depth: int, leaf: Any = 0, *, dicts: bool = False) -> Any:
    """``leaf`` inside ``depth`` lists (or single-key objects)."""
    for _ in range(depth):
        leaf = {"a": leaf} if dicts else [leaf]
    return leaf


_SPECIAL_NUMBERS = [0, -0.0, -1, -1e-9, 1e-320, 5e-324, LIMITS["price"], LIMITS["price"] + 1, 1e9 * (1 + 2**-52), 1e308,
                    -1e308, 1.7976931348623157e308, 2**53 + 1, 2**63, -(2**63), 10**19, 10**20 - 1, 10**20, 10**21, 10**300]
numbers = st.one_of(
    st.floats(),  # NaN, +-Infinity, subnormals, the largest and smallest floats
    st.sampled_from(_SPECIAL_NUMBERS),
    st.integers(),
    st.integers(21, 4000).map(lambda n: int("9" * n)),  # past MAX_INT_DIGITS; json.dumps writes up to 4300 digits
)
_hostile_chars = st.characters(categories=["Cc", "Cf", "Cs", "Co", "Zl", "Zp"])
hostile_ids = st.one_of(
    st.just(""), st.just(" "), st.just("\u2028"), st.just("T1\x00"), st.just("\ud800"), st.just("\udfff" * 3),
    st.text(min_size=MAX_ID_LENGTH + 1, max_size=MAX_ID_LENGTH + 40),
    st.sampled_from([MAX_ID_LENGTH, MAX_ID_LENGTH + 1, 10_000]).map(lambda n: "x" * n),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=8), st.text(_hostile_chars, min_size=1, max_size=3), st.text(max_size=8)),
)
hostile_ts = st.one_of(
    valid_ts.map(lambda ms: ms // 1000),  # epoch seconds
    valid_ts.map(lambda ms: ms * 1000),  # microseconds
    valid_ts.map(lambda ms: ms * 1_000_000),  # nanoseconds
    valid_ts.map(lambda ms: ms / 1000.0),
    valid_ts.map(lambda ms: float(ms * 1_000_000)),
    st.sampled_from([TS_MIN_MS - 1, TS_MAX_MS, 0, -1, -TS_MIN_MS, 10**19, 10**20, 10**40, 1e18, 1e300, float("nan"), float("inf"), True]),
    st.sampled_from(["9999-12-31T23:59:59Z", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "2100-01-01T00:00:00Z",
                     "1999-12-31T23:59:59.999Z", "2019-02-04T00:00:00ZZ", "2019-02-04T25:00:00", "2019-13-01", "2019-02-30",
                     "2019-W06-1", "2019-035", "20190204T101010Z", "2019-02-04 10:10:10+01", "12:00", "now", "", " ",
                     "1549238500000", "2019-02-04T00:00:00+24:00", "2019-02-04T00:00:00.1234567Z", "NaN", "∞"]),
    st.integers(2100, 9999).map(lambda y: f"{y}-06-01T00:00:00Z"),
    st.integers(1, 1999).map(lambda y: f"{y:04d}-06-01T00:00:00+00:00"),
    st.text(max_size=80),
    st.integers(65, 300).map(lambda n: "2019-02-04T00:00:00" + "0" * (n - 19)),
)
json_scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20), hostile_ids)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                  st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                           max_leaves=10)
deep_values = st.builds(nested, st.integers(1, 40), json_scalars, dicts=st.booleans())


def hostile_value(key: str) -> st.SearchStrategy[Any]:
    """Values aimed at the field ``key``: what it should never be, and junk of every type."""
    junk = st.one_of(json_values, deep_values)
    if key == "ts":
        return st.one_of(hostile_ts, hostile_ts, junk)
    if key in NUMERIC:
        return st.one_of(numbers, numbers, st.sampled_from(["1.1", "NaN", "1e400", ""]), junk)
    if key in IDENTIFIERS:
        return st.one_of(hostile_ids, hostile_ids, junk)
    if key == "action":
        return st.one_of(st.sampled_from(["buy", "Buy", "BUY ", "SELL\x00", "HOLD", "", "LONG"]), junk)
    if key == "existing":
        return st.one_of(st.sampled_from([0, 1, "true", "false", None, [], {}]), junk)
    if key == "type":
        return st.one_of(st.sampled_from(["TICK", "tick ", "position_open", "", "order", "position_opened\x00"]), junk)
    return junk


@st.composite
def mutated_events(draw: st.DrawFn, types: tuple[str, ...] = TYPES) -> dict[str, Any]:
    """A well-formed event with one to four fields replaced, removed or added (it may stay valid)."""
    obj = dict(draw(valid_events(types)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["replace", "replace", "replace", "delete", "extra", "retype"]))
        if op == "replace":
            key = draw(st.sampled_from(sorted(set(obj) | set(FIELDS))))
            obj[key] = draw(hostile_value(key))
        elif op == "delete" and obj:
            del obj[draw(st.sampled_from(sorted(obj)))]
        elif op == "extra":
            obj[draw(st.text(max_size=MAX_ID_LENGTH + 2))] = draw(st.one_of(json_values, deep_values))
        else:
            obj["type"] = draw(st.sampled_from(TYPES))  # the fields of another type
    return obj


events = st.one_of(valid_events(), mutated_events(), mutated_events())


def dumps(obj: Any) -> str:
    """The JSON text a careless sender writes: ``NaN`` and ``Infinity`` as Python writes them."""
    return json.dumps(obj, allow_nan=True)


# --- (b) raw bytes ---------------------------------------------------------------------------------

_BAD_UTF8 = [b"\xff", b"\xfe", b"\x80", b"\xc3", b"\xc0\xaf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
             b"\xf4\x90\x80\x80", b"\xf8\x88\x80\x80\x80", b"\xe2\x82", b"\xef\xbb\xbf"]
_TOKENS = [b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"1e999", b"-1e999", b"-0", b"9" * 30, b"[", b"{", b"]", b"}",
           b",", b":", b'"', b"\\", b"\\u", b'"\\ud800"', b'"\\u0000"', b"\x00", b"\n", b"\t", b"\x0b", b"true", b"null",
           b"undefined", b"'", b"/*", b"0x10", b"1_000", b".5", b"+1", b"\xc2\xa0"]
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
CLOCK = b'{"type": "clock", "ts": 1549238500000'


def _splice(data: bytes, at: int, piece: bytes, cut: int = 0) -> bytes:
    at = min(at, len(data))
    return data[:at] + piece + data[at + cut:]


@st.composite
def raw_events(draw: st.DrawFn) -> bytes:
    """The raw bytes of one input entry: mostly events broken in one way, some anything at all."""
    base = dumps(draw(events)).encode("utf-8", "surrogatepass")
    way = draw(st.sampled_from(["binary", "truncated", "utf8", "splice", "nan", "deep", "digits", "size", "wrapped",
                                "duplicate", "text", "intact"]))
    at = draw(st.integers(0, max(len(base), 1)))
    if way == "binary":
        return draw(st.binary(max_size=300))
    if way == "truncated":
        return base[:at]
    if way == "utf8":
        return _splice(base, at, draw(st.sampled_from(_BAD_UTF8)))
    if way == "splice":
        return _splice(base, at, draw(st.sampled_from(_TOKENS)), draw(st.integers(0, 3)))
    if way == "nan":
        spans = [m.span() for m in _NUMBER.finditer(base)]
        literal = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity"]))
        if not spans:
            return CLOCK + b', "x": ' + literal + b"}"
        start, end = draw(st.sampled_from(spans))
        return base[:start] + literal + base[end:]
    if way == "deep":
        depth = draw(st.one_of(st.integers(1, 70), st.sampled_from([1000, 10_000, 100_000])))
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}"), (b'[{"a":', b"}]")]))
        closed = draw(st.booleans())
        inner = opener * depth + b"0" + (closer * depth if closed else b"")
        return CLOCK + b', "x": ' + inner + b"}" if draw(st.booleans()) else inner
    if way == "digits":
        n = draw(st.one_of(st.integers(1, 40), st.sampled_from([300, 309, 400, 4300, 4301, 5000, 20_000])))
        literal = [b"9" * n, b"-" + b"9" * n, b"1" + b"0" * n + b".5", b"0." + b"0" * n + b"1", b"1e" + b"9" * min(n, 30),
                   b"1." + b"5" * n + b"e-5"][draw(st.integers(0, 5))]  # built after the draw: a strategy over them would print megabytes
        field = draw(st.sampled_from([b"ts", b"bid", b"x"]))
        return b'{"type": "tick", "ts": 1549238500000, "symbol": "EURUSD", "bid": 1.1, "ask": 1.2, "' + field + b'": ' + literal + b"}"
    if way == "size":
        # an event padded to the size limit give or take a few bytes, with one- or two-byte characters
        delta = draw(st.integers(-3, 3))
        char = draw(st.sampled_from(["x", "é", "€"]))
        head = CLOCK + b', "pad": "'
        room = MAX_EVENT_BYTES + delta - len(head) - 2
        width = len(char.encode())
        pad = (char * (room // width) + "x" * (room % width)).encode()
        return head + pad + b'"}'
    if way == "wrapped":
        wrap = draw(st.sampled_from(["bom", "array", "string", "twice", "space", "vt", "null", "empty", "ws"]))
        return {"bom": b"\xef\xbb\xbf" + base, "array": b"[" + base + b"]", "string": json.dumps(base.decode("utf-8", "replace")).encode(),
                "twice": base + base, "space": b" \n\t" + base + b"\r\n ", "vt": b"\x0b" + base, "null": b"null",
                "empty": b"", "ws": b" \t\r\n"}[wrap]
    if way == "duplicate":
        key = draw(st.sampled_from(["type", "ts", "position_id", "bid", "ask"]))
        return base[:-1] + f', "{key}": '.encode() + dumps(draw(hostile_value(key))).encode("utf-8", "surrogatepass") + b"}"
    if way == "text":
        return draw(st.text(max_size=200)).encode("utf-8", "surrogatepass")
    return base


# --- (c) rule-file texts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    kind: str
    name: str
    text: str


def _seeds() -> list[Seed]:
    """The shipped rule files and the valid test files, with their kinds: texts a mutation starts from."""
    out = []
    for folder in (ROOT, ROOT / "examples" / "scalping"):
        for path in sorted((folder / "strategies").glob("*.yaml")):
            out.append(Seed("strategy", f"strategies/{path.name}", path.read_text(encoding="utf-8")))
        for path in sorted((folder / "rules").glob("*.yaml")):
            out.append(Seed(path.stem, f"rules/{path.name}", path.read_text(encoding="utf-8")))
        if (folder / "schedules.yaml").exists():
            out.append(Seed("schedules", "schedules.yaml", (folder / "schedules.yaml").read_text(encoding="utf-8")))
    for path in sorted((ROOT / "tests" / "data" / "rules" / "valid").glob("*.yaml")):
        kind = next((k for k in KINDS if path.name.startswith(k)), "strategy")
        out.append(Seed(kind, path.name, path.read_text(encoding="utf-8")))
    return [s for s in out if s.kind in KINDS]


SEEDS = _seeds()
TAGS = ["!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!map ", "!!seq ", "!!set ", "!!omap ", "!!pairs ", "!!binary ",
        "!!timestamp ", "!!merge ", "!!python/object/apply:os.system ", "!!python/name:os.system ", "!!python/object:os.system ",
        "!!python/tuple ", "! ", "!foo ", "!<tag:example.com,2024:x> ", "!!int\t", "!!", "!<!> "]
BAD_SCALARS = ["maybe", "yes", "No", "on", "~", "null", "''", '""', ".nan", ".NaN", "-.inf", ".inf", "1e999", "-1e999", "0x", "0x1F",
               "0o9", "0b102", "1_000", "1:30:00", "190:20:30", "2024-01-05", "2024-01-05T10:00:00Z", "1e", "--1", "0.1.2",
               "9" * 400, "9" * 4300, "x" * 4097, "'unterminated", '"\\x"', '"\\ud800"', "@reserved", "`tick`", "%", "|", ">",
               "*undefined", "&", "<<", "-", "?", ":", "{", "[", "\t", "\x00", "\x1b[31m", "\ufeff", "\u0085", "\u2028", "\ud800"]
bad_scalars = st.sampled_from(BAD_SCALARS)
CONDITIONS = ["position.profit > 0", "not portfolio.halted", "clock.weekday == \"fri\"", "position.side in [\"long\"]",
              "tick.spread >= 1e999", "position.profit > NaN", "position.nope > 1", "(", ")", "and", "or", "not", "==", "'",
              "position.levels_hit == 1.5", "clock.hour >= 9" * 2]
_KEYS = ["name", "label", "allocation", "target", "min", "max", "defaults", "stop_loss", "take_profit", "trailing",
         "trailing_enabled", "trailing_distance", "exit_levels", "profit_target", "exit_percentage", "sl_adjustment",
         "max_positions", "risk_allocation", "rules", "when", "then", "close", "fraction", "alert", "priority", "instruments",
         "EURUSD", "pip_size", "contract_size", "daily_loss", "on_breach", "jobs", "cron", "all", "any", "not", "<<", "1", "? [x]"]
_LINE = re.compile(r"^(\s*(?:-\s+)?)([^:#\s][^:#]*?):(\s+)(\S.*?)?(\s*#.*)?$")


@st.composite
def mutated_seeds(draw: st.DrawFn) -> tuple[str, str, str]:
    """``(kind, name, text)``: a shipped rule file with a few lines changed (a tag, an anchor and its
    alias, a bad scalar, a merge key, a line removed, doubled or re-indented, junk inserted)."""
    seed = SEEDS[draw(st.integers(0, len(SEEDS) - 1))]
    lines = seed.text.split("\n")
    anchors: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(lines) - 1))
        m = _LINE.match(lines[i])
        op = draw(st.sampled_from(["tag", "anchor", "alias", "scalar", "merge", "delete", "double", "indent", "junk", "condition"]))
        if m and m.group(4) and op in ("tag", "anchor", "scalar", "condition"):
            lead, key, gap, value, comment = m.group(1), m.group(2), m.group(3), m.group(4), m.group(5) or ""
            if op == "tag":
                value = draw(st.sampled_from(TAGS)) + value
            elif op == "anchor":
                anchors.append(f"a{len(anchors)}")
                value = f"&{anchors[-1]} {value}"
            elif op == "scalar":
                value = draw(bad_scalars)
            else:
                value = json.dumps(" ".join(draw(st.lists(st.sampled_from(CONDITIONS), min_size=1, max_size=8))))
            lines[i] = f"{lead}{key}:{gap}{value}{comment}"
        elif op == "alias" and anchors:
            indent = re.match(r"\s*", lines[i]).group(0)
            lines.insert(i + 1, f"{indent}alias_{i}: *{draw(st.sampled_from(anchors))}")
        elif op == "merge":
            indent = re.match(r"\s*", lines[i]).group(0)
            if anchors and draw(st.booleans()):
                target = f"*{draw(st.sampled_from(anchors))}"
            else:
                target = draw(st.sampled_from(["{}", "[]", "1", "*nowhere"]))
            lines.insert(i + 1, f"{indent}<<: {target}")
        elif op == "delete":
            del lines[i]
        elif op == "double":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = draw(st.sampled_from([" ", "  ", "\t", ""])) + lines[i].lstrip(draw(st.sampled_from([" ", ""])))
        else:
            lines.insert(i, draw(st.one_of(bad_scalars, generated_nodes, st.text(max_size=40))))
        if not lines:
            lines = [""]
    return seed.kind, seed.name, "\n".join(lines)


def _flow(items: list[str], mapping: bool) -> str:
    return ("{" + ", ".join(items) + "}") if mapping else ("[" + ", ".join(items) + "]")


_leaves = st.one_of(
    st.sampled_from([*BAD_SCALARS[:40], "0.25", "0.005", "EURUSD", "true", "x", "5", "-1", "1e-9"]),
    st.builds(str.__add__, st.sampled_from(TAGS), st.sampled_from(["x", "1", "maybe", "1.5", "[]", "{}", "2024-01-05"])),
    st.sampled_from(["*a0", "*a1", "*a2", "&a0 1", "&a1 [1, 2]", "&a2 {k: v}", "*a0", "&a0 x"]),
)
generated_nodes = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.builds(lambda a, items: a + _flow(items, False), st.sampled_from(["", "", "&a0 ", "&a1 ", "!!seq ", "!!set "]),
                  st.lists(inner, max_size=5)),
        st.builds(lambda a, kv: a + _flow([f"{k}: {v}" for k, v in kv], True),
                  st.sampled_from(["", "", "&a2 ", "&a0 ", "!!map ", "!!omap "]),
                  st.lists(st.tuples(st.sampled_from(_KEYS), inner), max_size=5)),
    ),
    max_leaves=25,
)


@st.composite
def generated_documents(draw: st.DrawFn) -> str:
    """A rule-file-like mapping in block style, its values from ``generated_nodes``."""
    keys = draw(st.lists(st.sampled_from(_KEYS), min_size=1, max_size=10))
    return "".join(f"{k}: {draw(generated_nodes)}\n" for k in keys)


@st.composite
def alias_bombs(draw: st.DrawFn) -> str:
    """Anchors whose lists, mappings and merge keys repeat earlier anchors ``width`` times, ``levels``
    deep: small ones that load, and "billion laughs" of every shape."""
    levels, width = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    style = draw(st.sampled_from(["list", "map", "merge", "key", "mixed"]))
    lines = [f"l0: &l0 {draw(st.sampled_from(['[lol, lol]', '{a: lol}', 'lol']))}"]
    for i in range(1, levels + 1):
        s = draw(st.sampled_from(["list", "map", "merge", "key"])) if style == "mixed" else style
        refs = [f"*l{i - 1}"] * width
        if s == "list":
            body = "[" + ", ".join(refs) + "]"
        elif s == "map":
            body = "{" + ", ".join(f"k{j}: {r}" for j, r in enumerate(refs)) + "}"
        elif s == "merge":
            body = "{<<: [" + ", ".join(refs) + "], " + ", ".join(f"m{j}: {r}" for j, r in enumerate(refs)) + "}"
        else:
            body = "{" + ", ".join(f"? {r}\n  : {j}" for j, r in enumerate(refs)) + "}"
        lines.append(f"l{i}: &l{i} {body}")
    prefix = "name: demo\nallocation: {target: 0.25, min: 0.15, max: 0.35}\ndefaults: {stop_loss: 0.005, take_profit: 0.01}\n"
    return (prefix if draw(st.booleans()) else "") + "\n".join(lines) + "\n"


@st.composite
def deep_documents(draw: st.DrawFn) -> str:
    """Nesting from a few levels to 100 000, in flow and block style, and through aliases."""
    depth = draw(st.one_of(st.integers(1, 80), st.sampled_from([200, 491, 1000, 10_000, 100_000])))
    way = draw(st.sampled_from(["flow_list", "flow_map", "block_map", "block_list", "alias", "unclosed", "conditions"]))
    if way == "flow_list":
        return "a: " + "[" * depth + "x" + "]" * depth + "\n"
    if way == "flow_map":
        return "{k: " * depth + "x" + "}" * depth + "\n"
    if way == "block_map":
        return "".join("  " * i + "k:\n" for i in range(min(depth, 800)))
    if way == "block_list":
        return "- " * min(depth, 10_000) + "x\n"
    if way == "alias":
        inner = min(depth, 60)
        return f"x: &x {'[' * inner}1{']' * inner}\ny: {'[' * inner}*x{']' * inner}\n"
    if way == "unclosed":
        return "a: " + "[" * depth + "\n"
    when = "not " * depth + "position.profit > 0" if draw(st.booleans()) else "(" * depth + "position.profit > 0" + ")" * depth
    return f"rules:\n  - name: deep\n    when: \"{when}\"\n    then: [close]\n"


@st.composite
def huge_documents(draw: st.DrawFn) -> str:
    """Texts around the size limit: just over it in characters or in UTF-8 bytes, and large ones under it."""
    way = draw(st.sampled_from(["chars", "bytes", "far", "under"]))
    if way == "chars":
        return "#" * (MAX_FILE_BYTES + draw(st.integers(1, 3)))
    if way == "bytes":
        return "# " + "é" * (MAX_FILE_BYTES // 2 + draw(st.integers(0, 3)))
    if way == "far":
        return "a: 1\n" * (MAX_FILE_BYTES // 2)
    n = draw(st.integers(100, 2000))
    return "".join(f"k{i}: {draw(st.sampled_from(['1', 'x', '*a', '&a 1', '[1, 2]', '!!bool maybe']))}\n" for i in range(n))


_control = st.characters(categories=["Cc", "Cs", "Zl", "Zp", "Cf"])
yaml_texts = st.one_of(
    mutated_seeds().map(lambda s: s[2]),
    mutated_seeds().map(lambda s: s[2]),
    generated_documents(),
    generated_nodes,
    alias_bombs(),
    deep_documents(),
    huge_documents(),
    st.sampled_from(["", "---\n", "a: 1\n---\nb: 2\n", "%YAML 1.1\n---\na: 1\n", "%TAG !e! tag:example.com,2024:\n---\na: !e!x 1\n",
                     "a: 1\n...\n", "\ufeffa: 1\n", "a: 1\r\nb: 2\r\n", "a:\tb\n", "a: &a [*a]\n", "&a [*a, *a]\n", "*a\n",
                     "a: &a {<<: *a}\n", "? [x]\n: 1\n", "? {a: 1}\n: 2\n", "1: x\n", "true: x\n", "1.5: x\n", "null: x\n",
                     "a: 1\na: 2\n", "!!python/object/apply:os.system [ls]\n", "a: !!bool maybe\n", "[1, 2]\n", "x\n", "- a\n"]),
    st.text(max_size=300),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=50), st.text(_control, min_size=1, max_size=3), st.text(max_size=50)),
)
kinds = st.sampled_from(sorted(KINDS))
rule_files = st.one_of(
    mutated_seeds(),
    st.tuples(kinds, st.sampled_from(["strategies/x.yaml", "rules/limits.yaml", "f.yaml", "schedules.yaml", "<text>"]), yaml_texts),
)


# --- (d) API requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One HTTP request of the fuzz: ``params`` with ``None`` values left out; ``chunked`` sends the body
    without a length."""

    route: str
    params: dict[str, str]
    body: bytes
    content_type: str | None = "application/json"
    chunked: bool = False

    def __repr__(self) -> str:  # a failing example is printed: keep megabytes out of it
        body = self.body if len(self.body) <= 300 else self.body[:300] + f"... ({len(self.body)} bytes)".encode()
        return f"Request({self.route!r}, params={self.params!r}, body={body!r}, content_type={self.content_type!r}, chunked={self.chunked})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how hypothesis prints a failing example
        printer.text(repr(self))


_content_types = st.sampled_from(["application/json", "application/json", "text/plain", None, "application/x-www-form-urlencoded",
                                  "multipart/form-data; boundary=x", "application/json; charset=latin-1", "application/yaml"])
#: the accounts the fuzzed service runs (an empty or missing ``account`` means the first)
ACCOUNTS = ("acct", "quiet")
known_accounts = st.sampled_from([None, None, None, "acct", "quiet", ""])
unknown_accounts = st.one_of(st.sampled_from(["nope", "ACCT", "acct\x00", "../acct", "é", "x" * 300]),
                             st.text(min_size=1, max_size=40)).filter(lambda a: a not in ACCOUNTS)
_oversized = st.integers(-2, 2).map(lambda d: b'{"position_id": "big", "pad": "' + b"x" * (MAX_EVENT_BYTES + d) + b'"}')


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # a lone surrogate becomes bytes that are not UTF-8


def _proposal(obj: dict[str, Any]) -> dict[str, Any]:
    obj = dict(obj)
    obj.pop("type", None)
    return obj


_proposal_bodies = st.one_of(
    st.one_of(valid_events(("position_opened",)), mutated_events(("position_opened",))).map(_proposal).map(dumps).map(_encoded),
    mutated_events().map(dumps).map(_encoded),
    raw_events(),
    _oversized,
)
_timeouts = st.sampled_from([None, None, "1", "0", "-1", "nan", "inf", "61", "1e400", "0.001", "abc", ""])


@st.composite
def position_requests(draw: st.DrawFn, accounts: st.SearchStrategy[str | None] = known_accounts) -> Request:
    """``POST /api/positions``: proposals well-formed and broken, any bytes, bodies around the limit,
    with ``account`` from ``accounts`` and any ``timeout``."""
    params = {"account": draw(accounts), "timeout": draw(_timeouts)}
    return Request("/api/positions", {k: v for k, v in params.items() if v is not None}, draw(_proposal_bodies),
                   draw(_content_types), draw(st.booleans()))


_validate_kinds = st.one_of(st.none(), kinds, st.sampled_from(["", "STRATEGY", "x" * 33, "strategy\x00", "../limits"]))
_validate_files = st.one_of(st.none(), st.sampled_from(["strategies/x.yaml", "rules/limits.yaml", "rules/custom.yaml", "schedules.yaml",
                                                         "mine.yaml", "/etc/passwd", "../x.yaml", "C:/x.yaml", "a\x00b", "", " ",
                                                         "x" * 256, "strategies/../../x.yaml", "\\\\server\\x.yaml"]))
_raw_rule_bodies = st.one_of(st.binary(max_size=200), st.sampled_from([b"\xff\xfe name", b"a: \xc3\n"]),
                             st.just(MAX_FILE_BYTES + 1).map(lambda n: b"#" * n))


@st.composite
def validate_requests(draw: st.DrawFn) -> Request:
    """``POST /api/rules/validate``: any rule-file text or bytes, with any ``kind`` and ``file``."""
    params = {"kind": draw(_validate_kinds), "file": draw(_validate_files)}
    body = draw(_raw_rule_bodies) if draw(st.integers(0, 4)) == 0 else _encoded(draw(yaml_texts))
    return Request("/api/rules/validate", {k: v for k, v in params.items() if v is not None}, body,
                   draw(st.sampled_from(["text/plain", "application/yaml", None, "application/json"])), draw(st.booleans()))


_plan_names = st.one_of(
    st.sampled_from(["strategies/scalp_trend.yaml", "strategies/new.yaml", "rules/limits.yaml", "rules/custom.yaml", "schedules.yaml",
                     "rules/unknown.yaml", "strategies/x.yml", "../x.yaml", "/etc/passwd", "strategies/", "strategies/a/b.yaml", "", "x"]),
    st.text(max_size=30),
)
_plan_objects = st.one_of(
    st.fixed_dictionaries({"files": st.dictionaries(_plan_names, yaml_texts.filter(lambda t: len(t) < 200_000), max_size=3)}),
    st.fixed_dictionaries({"files": st.dictionaries(_plan_names, json_values, max_size=3)}),
    st.fixed_dictionaries({"files": st.dictionaries(_plan_names, yaml_texts.filter(lambda t: len(t) < 10_000), max_size=2)},
                          optional={"extra": json_values}),
    json_values,
    deep_values.map(lambda v: {"files": v}),
)


@st.composite
def plan_requests(draw: st.DrawFn) -> Request:
    """``POST /api/rules/plan``: ``{"files": {NAME: TEXT}}`` with any names and texts, and any JSON or bytes.

    ``account`` is mostly the quiet one, which has no recorded events: a valid plan is answered 409
    without starting a child process (a plan over the busy account's history takes seconds)."""
    params = {"account": draw(st.sampled_from(["quiet", "quiet", "nope", "x" * 201])),
              "max_events": draw(st.sampled_from([None, "1", "0", "-1", "1e9", "abc", "10000001", ""]))}
    body = draw(raw_events()) if draw(st.integers(0, 3)) == 0 else _encoded(dumps(draw(_plan_objects)))
    return Request("/api/rules/plan", {k: v for k, v in params.items() if v is not None}, body, draw(_content_types), draw(st.booleans()))


api_requests = st.one_of(position_requests(), validate_requests(), plan_requests())
