"""Property tests: whatever text reaches the loader, it returns located problems, never an exception."""

from __future__ import annotations

import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from engine.config import KINDS, validate_text
from engine.config._errors import model_at
from tests.conftest import ROOT

SHIPPED = {
    "strategy": (ROOT / "strategies" / "arbitrage.yaml").read_text(),
    "limits": (ROOT / "rules" / "limits.yaml").read_text(),
    "custom": (ROOT / "rules" / "custom.yaml").read_text(),
    "instruments": (ROOT / "rules" / "instruments.yaml").read_text(),
    "schedules": (ROOT / "schedules.yaml").read_text(),
}
def _all_field_names() -> list[str]:
    names: set[str] = set()
    stack = list(KINDS.values())
    seen = set()
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        for name in model.model_fields:
            names.add(name)
            sub = model_at(model, (name,)) or model_at(model, (name, 0))
            if sub is not None:
                stack.append(sub)
    return sorted(names)


NAMES = _all_field_names()
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_located(text: str, kind: str) -> None:
    result = validate_text(text, kind, "f.yaml")
    lines = max(len(text.splitlines()), 1)
    for p in result.problems:
        assert p.file == "f.yaml"
        assert 1 <= p.line <= lines + 1, (p, text)
        assert p.column >= 1
        assert p.message and "Traceback" not in p.message


# What a mutation inserts or replaces: YAML's punctuation, anchors, tags and numbers it refuses.
PIECES = [":", "-", " ", "\n", "{", "]", "'", '"', "x", "0", "-1", "\t", "&a", "*a", "<<", "!!", "#", "nan", "1e999"]


@FAST
@given(kind=st.sampled_from(sorted(SHIPPED)), data=st.data())
def test_mutated_shipped_files_give_problems_not_exceptions(kind: str, data: st.DataObject) -> None:
    text = SHIPPED[kind]
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(st.sampled_from(PIECES))
        if op == "insert":
            text = text[:pos] + piece + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + len(piece):]
        else:
            text = text[:pos] + piece + text[pos + 1:]
    assert_located(text, kind)


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["fixed", "volatility", "cron", "interval", "position.profit > 0", "close"]),
)
keys = st.one_of(st.sampled_from(NAMES), st.text(min_size=1, max_size=10))
documents = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=25)


@FAST
@given(kind=st.sampled_from(sorted(KINDS)), doc=st.dictionaries(keys, documents, max_size=8))
def test_random_documents_with_plausible_keys_give_problems_not_exceptions(kind: str, doc: dict) -> None:
    out = io.StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    assert_located(out.getvalue(), kind)


@FAST
@given(kind=st.sampled_from(sorted(KINDS)), text=st.text(max_size=200))
def test_arbitrary_text_gives_problems_not_exceptions(kind: str, text: str) -> None:
    assert_located(text, kind)
