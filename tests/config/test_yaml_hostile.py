"""Hostile rule files: every one is a located Problem, never an exception, a hang or gigabytes.

The loader refuses alias bombs, deep nesting, tags that are not plain data, bad values under standard
tags, huge texts and files, special files (devices, FIFOs), bytes that are not UTF-8 and characters
YAML forbids, each where it happens; what remains loads as before.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import validate_config, validate_paths, validate_text
from engine.config._yaml import MAX_DEPTH, MAX_FILE_BYTES, MAX_SCALAR_CHARS, MAX_VALUES, load_file, load_text
from engine.config.load import kind_from_text, kind_of
from engine.config.problems import Problem
from tests.conftest import ROOT

# Nine levels of nine aliases: 9^9 values once expanded (the classic "billion laughs").
BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}' if prev else 'lol'] * 9)}]\n"
    for prev, name in zip(["", *"abcdefgh"], "abcdefghi", strict=True)
)
# 'a' to 'd' hold 8307 values expanded; the first '*d' of 'e' would add 7381 more.
BOMB_PROBLEM = Problem(
    "bomb.yaml", 5, 8, ("e", 0), "expected at most 10000 values in one file, found more once alias '*d' is expanded")
STRATEGY = "name: demo\nallocation: {target: 0.25, min: 0.15, max: 0.35}\ndefaults: {stop_loss: 0.005, take_profit: 0.01}\n"
MB = 1 << 20


def peak_bytes(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn``; return its result and the most memory Python held while it ran."""
    tracemalloc.start()
    try:
        return fn(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def riskrail(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed ``riskrail`` command as a user does (the timeout only guards against a hang)."""
    exe = Path(sys.executable).with_name("riskrail")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_limits_are_the_documented_numbers() -> None:
    assert (MAX_FILE_BYTES, MAX_VALUES, MAX_DEPTH, MAX_SCALAR_CHARS) == (MB, 10_000, 64, 4096)


# --- aliases ---------------------------------------------------------------------------------------


def test_alias_bomb_is_refused_at_the_alias_that_crosses_the_budget_in_little_memory() -> None:
    assert BOMB.startswith("a: &a [lol, lol,") and len(BOMB) < 400
    (doc, problems), peak = peak_bytes(lambda: load_text(BOMB, "bomb.yaml"))
    assert problems == [BOMB_PROBLEM]
    assert doc.data is None
    assert peak < 50 * MB


def test_validate_text_of_the_api_refuses_the_bomb_like_the_files() -> None:
    result = validate_text(STRATEGY + BOMB, "strategy", "strategies/bomb.yaml")
    [problem] = result.problems
    assert (problem.file, problem.line, problem.column) == ("strategies/bomb.yaml", 8, 8)
    assert problem.message == BOMB_PROBLEM.message


def test_merge_keys_and_a_few_aliases_still_load() -> None:
    text = (
        "base: &base {stop_loss: 0.01, take_profit: 0.02, tags: &tags [a, b]}\n"
        "one: {<<: *base, take_profit: 0.03}\n"
        "two: {<<: [*base, {extra: 1}], tags: *tags}\n"
        "three: *base\n"
    )
    doc, problems = load_text(text, "f.yaml")
    assert problems == []
    assert doc.data["one"] == {"stop_loss": 0.01, "take_profit": 0.03, "tags": ["a", "b"]}
    assert doc.data["two"] == {"tags": ["a", "b"], "stop_loss": 0.01, "take_profit": 0.02, "extra": 1}
    assert doc.data["three"] == doc.data["base"]


def test_shipped_configurations_load_within_the_limits() -> None:
    for folder in (ROOT, ROOT / "examples" / "scalping"):
        result = validate_config(str(folder))
        assert result.problems == [], folder


def test_aliases_may_expand_up_to_the_budget_and_no_further() -> None:
    # The root, 'x' with its list of ten, 'a' and its list are 15 values; each alias copies x's 11.
    head = "x: &x [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\na:\n"
    fits = head + "- *x\n" * ((MAX_VALUES - 15) // 11)
    doc, problems = load_text(fits, "f.yaml")
    assert problems == [] and len(doc.data["a"]) == 907
    _, problems = load_text(fits + "- *x\n", "f.yaml")
    expected = "expected at most 10000 values in one file, found more once alias '*x' is expanded"
    assert problems == [Problem("f.yaml", 910, 3, ("a", 907), expected)]


def test_a_merge_of_a_mapping_into_itself_is_a_problem_not_a_recursion() -> None:
    _, problems = load_text("a: &x {b: 1, <<: *x}\n", "f.yaml")
    assert problems == [Problem("f.yaml", 1, 14, ("a", "<<"), "expected a finite value, found a recursive alias")]


def test_undefined_alias_is_located() -> None:
    _, problems = load_text("a: 1\nb: *nowhere\n", "f.yaml")
    assert problems == [Problem("f.yaml", 2, 4, (), "invalid YAML: found undefined alias 'nowhere'")]


# --- size ------------------------------------------------------------------------------------------


def test_too_many_values_are_refused_at_the_first_one_past_the_limit() -> None:
    # The list is value 1; its item i is value i + 2, written at column 2 + 2 * i.
    text = "[" + "0," * 10_500 + "0]"
    _, problems = load_text(text, "f.yaml")
    assert problems == [Problem("f.yaml", 1, 20_000, (9_999,), "expected at most 10000 values in one file, found more")]


def test_a_text_past_one_mebibyte_is_refused_unparsed() -> None:
    _, problems = load_text("#" * (MB + 1), "f.yaml")
    assert problems == [Problem("f.yaml", 1, 1, (), "expected a rule file of at most 1048576 bytes (1 MiB), found 1048577 characters")]
    _, problems = load_text("# " + "é" * 600_000, "f.yaml")
    assert problems == [Problem("f.yaml", 1, 1, (), "expected a rule file of at most 1048576 bytes (1 MiB), found 1200002 bytes")]


def test_a_file_past_one_mebibyte_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as fh:
        fh.truncate(1 << 30)  # sparse: a gigabyte that takes no disk
    (doc, problems), peak = peak_bytes(lambda: load_file(str(big), "big.yaml"))
    assert problems == [Problem("big.yaml", 1, 1, (), "expected a rule file of at most 1048576 bytes (1 MiB), found 1073741824 bytes")]
    assert doc.text == "" and peak < 50 * MB
    just = tmp_path / "just.yaml"
    just.write_text("a: 1\n" + "#" * (MB - 6) + "\n")
    assert load_file(str(just))[1] == []


def test_long_keys_and_values_are_refused_where_they_start() -> None:
    _, problems = load_text('a: "' + "x" * 5000 + '"\n', "f.yaml")
    assert problems == [Problem("f.yaml", 1, 4, ("a",), "expected a value of at most 4096 characters, found 5000")]
    _, problems = load_text("? " + "k" * 5000 + "\n: 1\n", "f.yaml")
    assert problems == [Problem("f.yaml", 1, 3, (), "expected a key of at most 4096 characters, found 5000")]


# --- nesting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [65, 491, 100_000])
def test_nesting_past_the_limit_is_refused_where_it_is_crossed(depth: int) -> None:
    _, problems = load_text("[" * depth + "]" * depth, "f.yaml")
    assert problems == [Problem("f.yaml", 1, 65, (), "expected at most 64 levels of nesting, found more")]


def test_nesting_up_to_the_limit_loads() -> None:
    doc, problems = load_text("[" * 64 + "]" * 64, "f.yaml")
    expected: list = []
    for _ in range(63):
        expected = [expected]
    assert problems == []
    assert doc.data == expected


def test_block_nesting_past_the_limit_is_refused_on_its_line() -> None:
    text = "".join("  " * i + "k:\n" for i in range(70))
    _, problems = load_text(text, "f.yaml")
    assert problems == [Problem("f.yaml", 65, 129, (), "expected at most 64 levels of nesting, found more")]


def test_aliases_that_would_nest_past_the_limit_are_refused_at_the_alias() -> None:
    text = "x: &x " + "[" * 40 + "]" * 40 + "\ny: " + "[" * 30 + "*x" + "]" * 30 + "\n"
    _, problems = load_text(text, "f.yaml")
    assert problems == [Problem("f.yaml", 2, 34, (), "expected at most 64 levels of nesting, found more once alias '*x' is expanded")]


@contextmanager
def recursion_limit(extra: int) -> Iterator[None]:
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack(0)) + extra)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def test_a_recursion_error_while_building_becomes_a_problem() -> None:
    # The limits keep building far from Python's stack limit; lower that limit to reach the last resort.
    text = "[" * 60 + "]" * 60
    with recursion_limit(60):
        doc, problems = load_text(text, "f.yaml")
    assert problems == [Problem("f.yaml", 1, 1, (), "expected at most 64 levels of nesting, found values nested too deeply to read")]
    assert doc.data is None


def test_a_condition_nested_past_the_stack_is_a_problem_not_a_traceback() -> None:
    text = f"rules:\n  - name: deep\n    when: \"{'not ' * 1000}position.profit > 0\"\n    then: [close]\n"
    result = validate_text(text, "custom", "custom.yaml")
    assert result.problems and all(p.file == "custom.yaml" and p.line >= 1 for p in result.problems)


# --- tags and scalar values ------------------------------------------------------------------------

UNSUPPORTED = "expected a plain value, found unsupported tag "
REFUSED = [
    ("a: !!bool maybe\n", 1, 4, ("a",), "expected a valid bool, found 'maybe'"),
    ("a: !!bool yes\n", 1, 4, ("a",), "expected a valid bool, found 'yes'"),
    ("a: !!int x\n", 1, 4, ("a",), "expected a valid int, found 'x'"),
    ("a: !!int 1.5\n", 1, 4, ("a",), "expected a valid int, found '1.5'"),
    ("a: !!float x\n", 1, 4, ("a",), "expected a valid float, found 'x'"),
    ("a: !!null x\n", 1, 4, ("a",), "expected a valid null, found 'x'"),
    ("!!int k: 1\n", 1, 1, (), "expected a valid int, found 'k'"),
    ("a: !!timestamp 2024-01-05\n", 1, 4, ("a",), UNSUPPORTED + "'!!timestamp' (quote the date or time to make it a string)"),
    ("a: !!binary aGk=\n", 1, 4, ("a",), UNSUPPORTED + "'!!binary'"),
    ("a: !!python/object/apply:os.system [ls]\n", 1, 4, ("a",), UNSUPPORTED + "'!!python/object/apply:os.system'"),
    ("a: !!python/object/apply:os.system {args: [ls]}\n", 1, 4, ("a",), UNSUPPORTED + "'!!python/object/apply:os.system'"),
    ("!!python/object/apply:os.system\n- ls\n", 1, 1, (), UNSUPPORTED + "'!!python/object/apply:os.system'"),
    ("!!python/name:os.system k: 1\n", 1, 1, (), UNSUPPORTED + "'!!python/name:os.system'"),
    ("a:\n  - !!python/object:os.system x\n", 2, 5, ("a", 0), UNSUPPORTED + "'!!python/object:os.system'"),
    ("a: !!set {x, y}\n", 1, 4, ("a",), UNSUPPORTED + "'!!set' (write a list instead)"),
    ("a: !!omap [{x: 1}]\n", 1, 4, ("a",), UNSUPPORTED + "'!!omap' (write a mapping instead)"),
    ("a: !!pairs [{x: 1}]\n", 1, 4, ("a",), UNSUPPORTED + "'!!pairs' (write a mapping instead)"),
    ("a: ! 12\n", 1, 4, ("a",), UNSUPPORTED + "'!' (remove it; quote a value to make it a string)"),
    ("a: !foo [1]\n", 1, 4, ("a",), UNSUPPORTED + "'!foo'"),
    ("a: !<tag:example.com,2024:x> 1\n", 1, 4, ("a",), UNSUPPORTED + "'tag:example.com,2024:x'"),
    ("a: !!int [1]\n", 1, 4, ("a",), UNSUPPORTED + "'!!int' on a list"),
    ("a: !!map [1]\n", 1, 4, ("a",), UNSUPPORTED + "'!!map' on a list"),
    ("a: <<\n", 1, 4, ("a",), UNSUPPORTED + "'!!merge' (quote '<<' to make it a string)"),
]


@pytest.mark.parametrize(("text", "line", "column", "path", "message"), REFUSED, ids=[r[0].strip() for r in REFUSED])
def test_unsupported_tags_and_bad_tagged_values_are_located_problems(text: str, line: int, column: int, path: tuple, message: str) -> None:
    doc, problems = load_text(text, "f.yaml")
    assert problems == [Problem("f.yaml", line, column, path, message)]
    refused = doc.data
    for step in path:  # the refused node builds as nothing (a refused key drops its entry)
        refused = refused[step]
    assert refused in (None, {})


def test_a_refused_tag_does_not_hide_the_other_problems_of_the_file() -> None:
    doc, problems = load_text("a: !!set {x}\na: 1\nb: !!bool maybe\n", "f.yaml")
    assert sorted(problems) == [
        Problem("f.yaml", 1, 4, ("a",), "expected a plain value, found unsupported tag '!!set' (write a list instead)"),
        Problem("f.yaml", 2, 1, ("a",), "duplicate key 'a' (first defined at line 1, column 1)"),
        Problem("f.yaml", 3, 4, ("b",), "expected a valid bool, found 'maybe'"),
    ]
    assert doc.data == {"a": None, "b": None}


def test_standard_tags_with_values_of_their_type_load() -> None:
    text = "a: !!int 0x10\nb: !!float 1\nc: !!str 12\nd: !!null\ne: !!bool false\nf: !!map {g: !!seq [1]}\n!!str 7: x\n"
    doc, problems = load_text(text, "f.yaml")
    assert problems == []
    assert doc.data == {"a": 16, "b": 1.0, "c": "12", "d": None, "e": False, "f": {"g": [1]}, "7": "x"}


def test_a_python_tag_on_a_mapping_fails_validation() -> None:
    text = STRATEGY.replace("defaults: {", "defaults: !!python/object/apply:os.system {")
    [problem] = validate_text(text, "strategy", "s.yaml").problems
    expected = "expected a plain value, found unsupported tag '!!python/object/apply:os.system'"
    assert (problem.line, problem.column, problem.message) == (3, 11, expected)


# --- characters and bytes --------------------------------------------------------------------------


def test_nul_and_control_characters_are_located() -> None:
    _, problems = load_text("a: 1\nb: x\x00y\n", "f.yaml")
    assert problems == [Problem("f.yaml", 2, 5, (), "expected printable characters, found U+0000")]
    _, problems = load_text("a: \x1b[31m\n", "f.yaml")
    assert problems == [Problem("f.yaml", 1, 4, (), "expected printable characters, found U+001B")]


def test_bytes_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    _, problems = load_file(str(path), "latin1.yaml")
    expected = "expected UTF-8 text, found undecodable bytes (invalid continuation byte at byte 11)"
    assert problems == [Problem("latin1.yaml", 2, 7, (), expected)]


def test_a_nul_byte_in_a_file_is_located(tmp_path: Path) -> None:
    path = tmp_path / "nul.yaml"
    path.write_bytes(b"a: 1\n\x00\n")
    assert load_file(str(path), "nul.yaml")[1] == [Problem("nul.yaml", 2, 1, (), "expected printable characters, found U+0000")]


# --- special files ---------------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_dev_zero_is_refused_unopened() -> None:
    (_, problems), peak = peak_bytes(lambda: load_file("/dev/zero"))
    assert problems == [Problem("/dev/zero", 1, 1, (), "expected a regular file, found a character device")]
    assert peak < 50 * MB
    assert kind_of("/dev/zero") is None


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    (tmp_path / "strategies").mkdir()
    fifo = tmp_path / "strategies" / "pipe.yaml"
    os.mkfifo(fifo)
    assert load_file(str(fifo), "pipe.yaml")[1] == [Problem("pipe.yaml", 1, 1, (), "expected a regular file, found a named pipe (FIFO)")]
    assert kind_of(str(fifo)) == "strategy"  # told by where it lies; never opened
    os.mkfifo(tmp_path / "limits.yaml")
    assert kind_of(str(tmp_path / "limits.yaml")) == "limits"  # by name, the modeline unread
    [problem] = validate_paths([str(fifo)]).problems
    assert problem.message == "expected a regular file, found a named pipe (FIFO)"


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_a_pipe_behind_proc_self_fd_is_refused() -> None:
    read, write = os.pipe()
    try:
        path = f"/proc/self/fd/{read}"
        assert load_file(path, "stdin")[1] == [Problem("stdin", 1, 1, (), "expected a regular file, found a named pipe (FIFO)")]
        assert kind_of(path) is None
    finally:
        os.close(read)
        os.close(write)


def test_a_folder_given_as_a_file_is_refused(tmp_path: Path) -> None:
    assert load_file(str(tmp_path), "dir")[1] == [Problem("dir", 1, 1, (), "expected a regular file, found a folder")]


# --- telling the kind ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "kind"),
    [
        ("strategies/arbitrage.yaml", "", "strategy"),
        ("rules/limits.yaml", "", "limits"),
        ("schedules.yaml", "", "schedules"),
        ("", "# yaml-language-server: $schema=../schemas/custom.schema.json\nrules: []\n", "custom"),
        ("mine.yaml", "# yaml-language-server: $schema=https://x.org/s/instruments.schema.json\r\n", "instruments"),
        ("allocation.yaml", "a: 1\n", "allocation"),
        ("mine.yaml", "a: 1\n# yaml-language-server: $schema=limits.schema.json\n", None),
        ("mine.yaml", "# yaml-language-server: $schema=nothing.schema.json\n", None),
        ("", "# yaml-language-server: $schema=" + "a" * 100_000 + "\n", None),
    ],
)
def test_kind_from_text_reads_the_name_and_the_first_line_only(name: str, text: str, kind: str | None) -> None:
    assert kind_from_text(name, text) == kind


def test_kind_of_a_file_agrees_with_kind_from_text(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("# yaml-language-server: $schema=../schemas/profit.schema.json\nsplit: {}\n")
    assert kind_of(str(path)) == kind_from_text("mine.yaml", path.read_text()) == "profit"


# --- the command line ------------------------------------------------------------------------------


def test_cli_reports_a_bomb_with_file_line_column_and_exits_1(config_copy: Path) -> None:
    (config_copy / "strategies" / "bomb.yaml").write_text(STRATEGY + BOMB)
    proc = riskrail("validate", "--config", str(config_copy))
    assert proc.returncode == 1, proc.stderr
    assert "bomb.yaml" in proc.stdout
    assert f"  8:8  e.0: {BOMB_PROBLEM.message}" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_cli_refuses_a_fifo_given_as_a_path(tmp_path: Path) -> None:
    fifo = tmp_path / "limits.yaml"
    os.mkfifo(fifo)
    proc = riskrail("validate", str(fifo))
    assert proc.returncode == 1, proc.stderr
    assert "1:1  expected a regular file, found a named pipe (FIFO)" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


# --- whatever the text -----------------------------------------------------------------------------

TAGS = ["", "", "", "!!str ", "!!int ", "!!float ", "!!bool ", "!!null ", "!!map ", "!!seq ", "!!set ", "!!omap ", "!!pairs ",
        "!!binary ", "!!timestamp ", "!!merge ", "!!python/object/apply:os.system ", "! ", "!foo ", "!<tag:x.org,2024:y> "]
ANCHORS = ["", "", "&a ", "&b ", "&c "]
SCALARS = ["x", "1", "0x1f", "1.5", "true", "maybe", "null", "~", "''", '"q"', ".inf", "2024-01-01", "<<", "-", "aGk="]

tags = st.sampled_from(TAGS)
anchors = st.sampled_from(ANCHORS)
leaves = st.one_of(st.builds(str.__add__, tags, st.sampled_from(SCALARS)).flatmap(lambda s: anchors.map(lambda a: a + s)),
                   st.sampled_from(["*a", "*b", "*c", "*d"]))
nodes = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda t, a, items: f"{a}{t}[{', '.join(items)}]", tags, anchors, st.lists(inner, max_size=5)),
        st.builds(lambda t, a, items: f"{a}{t}{{{', '.join(f'{k}: {v}' for k, v in items)}}}", tags, anchors,
                  st.lists(st.tuples(st.sampled_from(["k", "<<", "1", "*a", "!!int k", "? [x]"]), inner), max_size=5)),
    ),
    max_leaves=40,
)



@st.composite
def alias_chains(draw: st.DrawFn) -> str:
    """Anchors whose lists and merges repeat earlier anchors: small, or bombs of any width."""
    lines, mappings = ["a0: &a0 {x: 1, y: [1, 2]}"], [0]
    for i in range(1, draw(st.integers(1, 12))):
        refs = draw(st.lists(st.integers(0, i - 1), min_size=1, max_size=10))
        if draw(st.booleans()):
            lines.append(f"a{i}: &a{i} [{', '.join(f'*a{r}' for r in refs)}]")
        else:
            merged = ", ".join(f"*a{r}" for r in refs if r in mappings) or "{}"
            lines.append(f"a{i}: &a{i} {{<<: [{merged}], k{i}: *a{refs[0]}}}")
            mappings.append(i)
    return "\n".join(lines) + "\n"


documents = st.one_of(
    nodes,
    alias_chains(),
    st.builds(lambda n, body: "[" * n + body + "]" * n, st.integers(0, 120), nodes),
    st.builds(lambda n: "".join("  " * i + "k:\n" for i in range(n)), st.integers(0, 100)),
    st.lists(st.tuples(st.sampled_from(["a", "b", "<<", "c"]), nodes), max_size=6).map(lambda kv: "".join(f"{k}: {v}\n" for k, v in kv)),
    st.text(max_size=300),
)
PLAIN = (dict, list, str, int, float, bool, type(None))


def count_values(data: Any) -> int:
    """Count keys, scalars, lists and mappings in built data; check each is plain."""
    count, stack = 0, [data]
    while stack:
        value = stack.pop()
        assert isinstance(value, PLAIN), type(value)
        count += 1
        if isinstance(value, dict):
            assert all(isinstance(k, (str, int)) and not isinstance(k, bool) for k in value), list(value)[:5]
            count += len(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=documents)
def test_any_text_loads_as_plain_data_or_located_problems_never_raising(text: str) -> None:
    doc, problems = load_text(text, "f.yaml")
    lines = max(len(text.splitlines()), 1)
    for p in problems:
        assert p.file == "f.yaml" and 1 <= p.line <= lines + 1 and p.column >= 1, (p, text)
        assert p.message and "Traceback" not in p.message
    if not problems:
        assert count_values(doc.data) <= MAX_VALUES
