"""The YAML loader: plain values, the position of every node, every problem as a Problem."""

from __future__ import annotations

from engine.config._yaml import Mark, load_text


def test_positions_of_keys_values_and_list_items_are_one_based() -> None:
    doc, problems = load_text("a: 1\nb:\n  - x\n  - {c: 2.5}\n", "f.yaml")
    assert problems == []
    assert doc.data == {"a": 1, "b": ["x", {"c": 2.5}]}
    assert doc.keys[("a",)] == Mark(1, 1)
    assert doc.values[("a",)] == Mark(1, 4)
    assert doc.values[("b", 0)] == Mark(3, 5)
    assert doc.keys[("b", 1, "c")] == Mark(4, 6)
    assert doc.values[("b", 1, "c")] == Mark(4, 9)


def test_mark_of_a_missing_path_falls_back_to_its_nearest_ancestor() -> None:
    doc, _ = load_text("top:\n  inner: 1\n", "f.yaml")
    assert doc.mark(("top", "absent", 3)) == doc.values[("top",)]
    assert doc.mark(("nothing",)) == doc.values[()]


def test_yaml_1_2_scalars_keep_yes_and_quoted_numbers_as_strings() -> None:
    doc, _ = load_text("a: yes\nb: '0.5'\nc: 0x10\nd: 1_000\ne: null\nf: true\n", "f.yaml")
    assert doc.data == {"a": "yes", "b": "0.5", "c": 16, "d": 1000, "e": None, "f": True}


def test_every_duplicate_key_is_reported_with_the_first_definition() -> None:
    _, problems = load_text("a: 1\nb: 2\na: 3\nb: 4\n", "f.yaml")
    assert [(p.line, p.column, p.path) for p in problems] == [(3, 1, ("a",)), (4, 1, ("b",))]
    assert "first defined at line 1, column 1" in problems[0].message


def test_syntax_error_is_one_problem_with_its_position() -> None:
    _, problems = load_text("a: [1, 2\nb: 3\n", "f.yaml")
    assert len(problems) == 1
    assert problems[0].message.startswith("invalid YAML")
    assert problems[0].line == 2


def test_tabs_and_bad_indentation_are_syntax_problems_not_exceptions() -> None:
    for text in ("a:\n\t- 1\n", "a: 1\n  b: 2\n", "a: 'unterminated\n", "? [a]\n: 1\n", "*undefined\n"):
        _, problems = load_text(text, "f.yaml")
        assert problems, text


def test_merge_keys_fill_missing_keys_and_explicit_keys_win() -> None:
    doc, problems = load_text("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n", "f.yaml")
    assert problems == []
    assert doc.data["d"] == {"x": 1, "y": 3}


def test_unsupported_tags_and_empty_files_and_several_documents_are_problems() -> None:
    _, p1 = load_text("a: !!python/object:os.system x\n", "f.yaml")
    assert "unsupported tag" in p1[0].message and (p1[0].line, p1[0].column) == (1, 4)
    _, p2 = load_text("# only a comment\n", "f.yaml")
    assert "empty file" in p2[0].message
    _, p3 = load_text("a: 1\n---\nb: 2\n", "f.yaml")
    assert "several" in p3[0].message and p3[0].line == 3


def test_quoted_string_start_skips_the_quote() -> None:
    doc, _ = load_text("a: 'x > 1'\nb: x > 1\n", "f.yaml")
    assert doc.string_starts[("a",)] == Mark(1, 5)
    assert doc.string_starts[("b",)] == Mark(2, 4)


def test_recursive_alias_is_a_problem_not_a_hang() -> None:
    _, problems = load_text("a: &x [1, *x]\n", "f.yaml")
    assert problems and "recursive" in problems[0].message
