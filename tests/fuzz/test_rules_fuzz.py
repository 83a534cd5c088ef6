"""Hostile rule files never stop risk management, fuzzed: whatever the text (the shipped files mutated,
alias bombs, deep nesting, tags, merge keys, bad scalars, hostile conditions, texts around the size
limit), ``load_text`` and ``validate_text`` return located problems or plain data, never raise, and
hold a bounded amount of memory and CPU time while they run.

The ``check_*`` functions are the properties; ``bench/fuzz.py`` runs them with many more cases.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings

from engine.config._yaml import MAX_VALUES, load_text
from engine.config.load import validate_text
from engine.config.problems import Problem
from tests.config.test_yaml_hostile import count_values
from tests.fuzz.strategies import rule_files, yaml_texts

#: the most memory one load or validation may hold: the loader's own budget of 10 000 values takes
#: about 10 MB (engine/config/_yaml.py), a 1 MiB text a few more
PEAK_BYTES = 64 << 20
#: CPU time one load may take. The largest texts within the loader's limits take a few seconds (10 000
#: values, or 1 MiB of plain or block scalars, at ruamel.yaml's megabyte a second); past this bound a
#: text would cost more than any file the limits let through.
MAX_LOAD_SECONDS = 30.0
def located(problems: list[Problem], file: str, text: str) -> None:
    """Every problem names ``file`` and a line and column inside the text (or just past its end)."""
    lines = max(text.count("\n") + 1, 1)
    for p in problems:
        assert p.file == file, (p, file)
        assert 1 <= p.line <= lines + 1 and p.column >= 1, p
        assert p.message and "Traceback" not in p.message, p


def peak(fn: Any) -> tuple[Any, int]:
    """Run ``fn``; return its result and the most memory Python held while it ran."""
    tracemalloc.start()
    try:
        return fn(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def check_load_text(text: str) -> None:
    """``load_text`` returns plain data within the value budget, or located problems; never raises."""
    (doc, problems), used = peak(lambda: load_text(text, "f.yaml"))
    assert used < PEAK_BYTES, used
    located(problems, "f.yaml", text)
    if not problems:
        assert count_values(doc.data) <= 2 * MAX_VALUES  # keys count once in the budget, twice here


def check_load_time(text: str) -> None:
    """``load_text`` takes at most ``MAX_LOAD_SECONDS`` of CPU, whatever the text."""
    load_text("a: 1\n", "warm.yaml")  # the first load of a process pays for ruamel.yaml's own set-up
    gc.disable()  # a full collection of the test process's heap is not the loader's time
    try:
        start = time.thread_time()
        load_text(text, "f.yaml")
        used = time.thread_time() - start
    finally:
        gc.enable()
    assert used < MAX_LOAD_SECONDS, f"{used:.2f} s of CPU for {len(text)} characters"


def check_validate_text(kind: str, file: str, text: str) -> None:
    """``validate_text`` of any text as a rule file of ``kind`` returns located problems; never raises."""
    result, used = peak(lambda: validate_text(text, kind, file))
    assert used < PEAK_BYTES, used
    located(result.problems, file, text)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=yaml_texts)
def test_any_text_loads_as_plain_data_or_located_problems_in_bounded_memory(text: str) -> None:
    check_load_text(text)


# without the explain phase: it traces every line run, which makes any load many times slower
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])
@given(text=yaml_texts)
def test_any_text_loads_in_bounded_cpu_time(text: str) -> None:
    check_load_time(text)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=rule_files)
def test_any_text_validates_as_a_rule_file_to_located_problems_in_bounded_memory(case: tuple[str, str, str]) -> None:
    check_validate_text(*case)
