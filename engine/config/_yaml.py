"""Load YAML into plain Python values while keeping the position of every node.

ruamel.yaml composes the document into a node graph whose nodes all carry a start mark, scalars
included (the round-trip ``CommentedMap.lc`` API has no positions for plain scalars). We build the
plain values ourselves from that graph and record, for every key path, where its key and its value
stand, so a later error about ``exit_levels.2.profit_target`` can name its line and column.

Every problem (syntax error, duplicate key, unsupported tag, non-string key, empty file) becomes a
``Problem``; nothing here raises for bad input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.config.problems import Path, Problem

_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in a file."""

    line: int
    column: int


@dataclass
class Document:
    """A loaded YAML file: its plain value, and the positions of its keys and values by path."""

    file: str
    text: str
    data: Any = None
    values: dict[Path, Mark] = field(default_factory=dict)
    keys: dict[Path, Mark] = field(default_factory=dict)
    # Where a string scalar's text starts (after an opening quote); conditions use it to point
    # inside an expression.
    string_starts: dict[Path, Mark] = field(default_factory=dict)

    def mark(self, path: Path, *, key: bool = False) -> Mark:
        """Return the position of ``path`` (its key with ``key=True``), else of its nearest ancestor."""
        path = tuple(path)
        while True:
            if key and path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
            if not path:
                return Mark(1, 1)
            path = path[:-1]

    def line_text(self, line: int) -> str:
        """Return line ``line`` (1-based) of the file, without its newline, or ``""``."""
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""


def _mark(node: Node) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self._scalars = YAML(typ="safe", pure=True).constructor
        self._active: set[int] = set()  # ids of collection nodes being built: alias cycles

    def problem(self, node: Node, path: Path, message: str) -> None:
        m = _mark(node)
        self.problems.append(Problem(self.doc.file, m.line, m.column, path, message))

    def build(self, node: Node, path: Path) -> Any:
        self.doc.values.setdefault(path, _mark(node))
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if id(node) in self._active:
            self.problem(node, path, "expected a finite value, found a recursive alias")
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
        finally:
            self._active.discard(id(node))
        self.problem(node, path, f"expected a YAML value, found {type(node).__name__}")
        return None

    def _scalar(self, node: ScalarNode, path: Path) -> Any:
        if node.tag not in _SCALAR_TAGS:
            self.problem(node, path, f"expected a plain value, found unsupported tag {node.tag!r}")
            return None
        if node.tag == "tag:yaml.org,2002:str":
            m = _mark(node)
            quoted = node.style in ("'", '"')
            self.doc.string_starts[path] = Mark(m.line, m.column + (1 if quoted else 0))
            return str(node.value)
        try:
            return self._scalars.construct_object(node, deep=True)
        except (YAMLError, ValueError) as exc:
            self.problem(node, path, f"expected a valid {node.tag.rsplit(':', 1)[-1]}, found {node.value!r} ({exc})")
            return None

    def _mapping(self, node: MappingNode, path: Path) -> dict:
        result: dict = {}
        explicit: set = set()
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append((key_node, value_node))
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                self.problem(key_node, path, "expected a plain key, found a complex key")
                continue
            key = self._scalars.construct_object(key_node, deep=True) if key_node.tag != "tag:yaml.org,2002:str" else str(key_node.value)
            if key is None or isinstance(key, (float, bool)):
                self.problem(key_node, path, f"expected a name or a number as key, found {key_node.value!r}")
                continue
            if key in explicit:
                first = self.doc.keys[(*path, key)]
                self.problem(key_node, (*path, key), f"duplicate key {key!r} (first defined at line {first.line}, column {first.column})")
                continue
            explicit.add(key)
            self.doc.keys[(*path, key)] = _mark(key_node)
            result[key] = self.build(value_node, (*path, key))
        # Merge keys (``<<: *defaults``): explicit keys win, then earlier merges win over later ones.
        for key_node, value_node in merged:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                if not isinstance(source, MappingNode):
                    self.problem(source, path, "expected a mapping to merge with '<<', found another value")
                    continue
                for key, value in self._mapping(source, path + ("<<",)).items():
                    if key not in result:
                        result[key] = value
                        self.doc.keys.setdefault((*path, key), _mark(key_node))
                        self.doc.values.setdefault((*path, key), _mark(source))
        return result


def load_text(text: str, file: str) -> tuple[Document, list[Problem]]:
    """Parse ``text`` (the contents of ``file``) into a ``Document`` and the problems found."""
    doc = Document(file=file, text=text)
    yaml = YAML(typ="rt")
    try:
        nodes = list(yaml.compose_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        message = f"invalid YAML: {exc.problem or exc.context}"
        ctx = exc.context_mark
        if exc.problem and exc.context and ctx is not None and (ctx.line, ctx.column) != (line - 1, column - 1):
            # e.g. "while parsing a flow mapping": say where that construct starts, often the real culprit
            construct = exc.context.removeprefix("while parsing ").removeprefix("while scanning ").removeprefix("a ").removeprefix("an ")
            message += f" (in the {construct} that starts at line {ctx.line + 1}, column {ctx.column + 1})"
        return doc, [Problem(file, line, column, (), message)]
    except YAMLError as exc:  # errors without a position (e.g. a bad stream)
        return doc, [Problem(file, 1, 1, (), f"invalid YAML: {exc}")]
    nodes = [n for n in nodes if n is not None]
    if not nodes:
        return doc, [Problem(file, 1, 1, (), "expected a mapping of settings, found an empty file")]
    if len(nodes) > 1:
        m = _mark(nodes[1])
        return doc, [Problem(file, m.line, m.column, (), "expected one YAML document, found several (remove the '---' separator)")]
    builder = _Builder(doc)
    doc.data = builder.build(nodes[0], ())
    return doc, builder.problems


def load_file(path: str, display: str | None = None) -> tuple[Document, list[Problem]]:
    """Read and parse the YAML file at ``path``; ``display`` is the name used in problems."""
    name = display or path
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as exc:
        return Document(file=name, text=""), [Problem(name, 1, 1, (), f"expected UTF-8 text, found undecodable bytes ({exc.reason} at byte {exc.start})")]
    except OSError as exc:
        return Document(file=name, text=""), [Problem(name, 1, 1, (), f"cannot read the file: {exc.strerror or exc}")]
    return load_text(text, name)
