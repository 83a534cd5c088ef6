"""Load YAML into plain Python values while keeping the position of every node, refusing hostile input.

ruamel.yaml parses the text into a stream of events without recursing. We compose the node graph from
those events ourselves, in a loop, checking each event against the limits below before its node
exists; then we build the plain values from the graph and record, for every key path, where its key
and its value stand, so a later error about ``exit_levels.2.profit_target`` can name its line and
column (our nodes carry a start mark for every scalar; the round-trip ``CommentedMap.lc`` API has
none for plain scalars).

A rule file is plain data: mappings, lists, strings, numbers, booleans and null, with anchors, aliases
and ``<<`` merge keys. Every problem (syntax error, duplicate key, unsupported tag, non-string key,
empty file, a limit crossed) becomes a ``Problem`` at the line and column where it happens; nothing
here raises for bad input (even a ``RecursionError``, which the limits make unreachable, would become
one). A refused node builds as None, so the file's other problems are still found; a crossed limit
stops at once. No input costs more than the limits allow:

- ``MAX_FILE_BYTES`` = 1 MiB: the size of a file or text, refused unread past it (the reader's limit,
  ``engine.config.read``, applied to texts too).
- ``MAX_VALUES`` = 10 000: mappings, lists, keys and scalars in one file, each alias and merge key
  counted as the copy it makes (a "billion laughs" alias bomb is refused at the alias that crosses it).
- ``MAX_DEPTH`` = 64: levels of nested mappings and lists, aliases expanded; composing never recurses
  and building recurses at most this deep.
- ``MAX_SCALAR_CHARS`` = 4096: characters in one key or scalar value.
- Tags: only ``!!str``, ``!!int``, ``!!float``, ``!!bool`` and ``!!null`` on scalars (with a value of
  that type: ``!!bool maybe`` is refused), ``!!seq`` on lists, ``!!map`` on mappings and ``!!merge``
  on a key. Any other tag (``!!set``, ``!!omap``, ``!!pairs``, ``!!binary``, ``!!timestamp``,
  ``!!python/...``, a local ``!foo``, the non-specific ``!``) is refused on any node, keys included.
- Files: read by ``engine.config.read`` (a regular file of UTF-8 only, opened without blocking);
  characters YAML forbids (NUL, other control characters) are refused at their position.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    DocumentStartEvent,
    Event,
    ScalarEvent,
    SequenceStartEvent,
)
from ruamel.yaml.nodes import CollectionNode, MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.tag import Tag

from engine.config.problems import Path, Problem
from engine.config.read import MAX_FILE_BYTES, read_rule_file, too_big

#: The most values one file may hold, aliases expanded: 10 000. Every mapping, list, key and scalar
#: counts one, and an alias or ``<<`` merge key counts every value it copies. The largest shipped rule
#: file holds 79 and the largest rule test 623; 10 000 build in about a second and 10 MB, while a
#: document of a few hundred bytes, nine levels of nine aliases, expands to 9^9 values (it grew
#: past 1.3 GB before this limit).
MAX_VALUES = 10_000

#: The deepest nesting of mappings and lists, aliases expanded: 64 levels, the outermost counting
#: one. Rule files nest 5 deep; Python's stack overflowed near 490 levels of composing and building,
#: and 64 keeps far from it.
MAX_DEPTH = 64

#: The longest key or scalar value, in characters: 4096. The longest in the shipped files is 102
#: (a rule test's name); longer is a mistake, and every message quoting it would repeat it.
MAX_SCALAR_CHARS = 4096

_YAML_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_YAML_TAG + t for t in ("str", "int", "float", "bool", "null"))
_SCALAR_TAGS = {_STR, _INT, _FLOAT, _BOOL, _NULL}
_MERGE_TAG = _YAML_TAG + "merge"
_TAGS = {ScalarNode: _SCALAR_TAGS | {_MERGE_TAG}, SequenceNode: {_YAML_TAG + "seq"}, MappingNode: {_YAML_TAG + "map"}}
_KIND = {ScalarNode: "a scalar", SequenceNode: "a list", MappingNode: "a mapping"}
_HINTS = {
    "!": "remove it; quote a value to make it a string",
    _MERGE_TAG: "quote '<<' to make it a string",
    _YAML_TAG + "set": "write a list instead",
    _YAML_TAG + "omap": "write a mapping instead",
    _YAML_TAG + "pairs": "write a mapping instead",
    _YAML_TAG + "timestamp": "quote the date or time to make it a string",
}
# The tag the composer gives a node it has reported (unsupported tag, bad value, too long): the
# builder makes it None without a second problem, and goes on to find the file's other problems.
_REPORTED = "tag:riskrail,2024:reported"


class _Invalid(enum.Enum):
    """A scalar whose value could not be constructed (its problem is reported)."""

    INVALID = enum.auto()


_INVALID = _Invalid.INVALID
_TOO_DEEP = f"expected at most {MAX_DEPTH} levels of nesting, found values nested too deeply to read"


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column in a file."""

    line: int
    column: int


#: A plain value built from a rule file: what YAML's mappings, lists and scalars become here.
Plain: TypeAlias = bool | int | float | str | list["Plain"] | dict[str | int, "Plain"] | None


@dataclass
class Document:
    """A loaded YAML file: its plain value, and the positions of its keys and values by path."""

    file: str
    text: str
    data: Plain = None
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


def _mark(node: Node | Event) -> Mark:
    return Mark(node.start_mark.line + 1, node.start_mark.column + 1)


def _show_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_TAG) if tag.startswith(_YAML_TAG) else tag


def _tag_name(node: Node) -> str:
    # ruamel.yaml types ``Node.tag`` as optional; a Node always holds one (its constructor wraps any tag in a Tag).
    return str(node.ctag)


class _Refused(Exception):
    """Stops composing: a limit crossed, a second document, an undefined alias."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem


@dataclass
class _Anchor:
    node: Node
    size: int = 1  # values once expanded
    height: int = 0  # levels of nesting, its own included (0 for a scalar)
    open: bool = False  # still being composed: an alias to it is recursive, the builder reports it


@dataclass
class _Open:
    node: CollectionNode
    path: Path
    first: int  # values counted before this collection
    anchor: _Anchor | None
    height: int = 0  # the deepest child's height
    key: Node | None = None  # in a mapping: the key whose value comes next


class _Composer:
    """Compose a node graph from ruamel.yaml's events, in a loop, within the limits.

    Nodes are made as ruamel.yaml's own composer makes them (same tags, marks and shared nodes for
    aliases); tags and sizes are judged here, once per node as written, before the node exists.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.yaml = YAML(typ="rt")
        self.problems: list[Problem] = []
        self.root: Node | None = None
        self.stack: list[_Open] = []
        self.anchors: dict[str, _Anchor] = {}
        self.values = 0

    def compose(self, text: str) -> Node | None:
        events = self.yaml.parse(text)
        try:
            for event in events:
                if isinstance(event, ScalarEvent):
                    self._scalar(event)
                elif isinstance(event, CollectionStartEvent):
                    self._start(event)
                elif isinstance(event, CollectionEndEvent):
                    self._end(event)
                elif isinstance(event, AliasEvent):
                    self._alias(event)
                elif isinstance(event, DocumentStartEvent):
                    self.anchors = {}
        finally:
            events.close()
        return self.root

    def _problem(self, event: Event, path: Path, message: str) -> Problem:
        m = _mark(event)
        return Problem(self.file, m.line, m.column, path, message)

    def _path(self) -> Path:
        """Return the key path of the node that comes next (its mapping's path for a key)."""
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.node, SequenceNode):
            return (*top.path, len(top.node.value))
        key = top.key
        if isinstance(key, ScalarNode) and len(key.value) <= MAX_SCALAR_CHARS:
            return (*top.path, key.value)
        return top.path

    def _at_key(self) -> bool:
        return bool(self.stack) and isinstance(self.stack[-1].node, MappingNode) and self.stack[-1].key is None

    def _count(self, event: Event, size: int, height: int, alias: str | None = None) -> None:
        if self.root is not None and not self.stack:
            raise _Refused(self._problem(event, (), "expected one YAML document, found several (remove the '---' separator)"))
        self.values += size
        expanded = f" once alias '*{alias}' is expanded" if alias is not None else ""
        if self.values > MAX_VALUES:
            raise _Refused(self._problem(event, self._path(), f"expected at most {MAX_VALUES} values in one file, found more{expanded}"))
        if len(self.stack) + height > MAX_DEPTH:  # no key path: it would be MAX_DEPTH keys long
            raise _Refused(self._problem(event, (), f"expected at most {MAX_DEPTH} levels of nesting, found more{expanded}"))

    def _tag(self, event: ScalarEvent | CollectionStartEvent, kind: type[Node], path: Path) -> Tag | str:
        """Return the node's tag (resolved when the text gives none), or ``_REPORTED`` after a problem."""
        value = event.value if isinstance(event, ScalarEvent) else None
        # ruamel.yaml leaves both untyped: an event's tag and the resolver's answer are Tags.
        tag: Tag = self.yaml.resolver.resolve(kind, value, event.implicit) if event.ctag is None else event.ctag
        name = str(tag)
        if name in _TAGS[kind] and (name != _MERGE_TAG or self._at_key()):
            if kind is ScalarNode and name in (_INT, _FLOAT, _BOOL, _NULL):
                resolved = str(self.yaml.resolver.resolve(ScalarNode, value, (True, False)))
                if resolved != name and not (name == _FLOAT and resolved == _INT):
                    self.problems.append(self._problem(event, path, f"expected a valid {name.removeprefix(_YAML_TAG)}, found {value!r}"))
                    return _REPORTED
            return tag
        other = next((k for k, tags in _TAGS.items() if name in tags and k is not kind), None)
        where = f" on {_KIND[kind]}" if other is not None else ""
        hint = f" ({_HINTS[name]})" if name in _HINTS else ""
        self.problems.append(self._problem(event, path, f"expected a plain value, found unsupported tag {_show_tag(name)!r}{where}{hint}"))
        return _REPORTED

    def _place(self, node: Node, height: int) -> None:
        if not self.stack:
            self.root = node
            return
        top = self.stack[-1]
        top.height = max(top.height, height)
        if isinstance(top.node, SequenceNode):
            top.node.value.append(node)
        elif top.key is None:
            top.key = node
        else:
            top.node.value.append((top.key, node))
            top.key = None

    def _scalar(self, event: ScalarEvent) -> None:
        self._count(event, 1, 0)
        path = self._path()
        if len(event.value) > MAX_SCALAR_CHARS:
            what = "key" if self._at_key() else "value"
            message = f"expected a {what} of at most {MAX_SCALAR_CHARS} characters, found {len(event.value)}"
            self.problems.append(self._problem(event, path, message))
            tag: Tag | str = _REPORTED
        else:
            tag = self._tag(event, ScalarNode, path)
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style, anchor=event.anchor)
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(node)
        self._place(node, 0)

    def _start(self, event: CollectionStartEvent) -> None:
        first = self.values
        self._count(event, 1, 1)
        path = self._path()
        kind = SequenceNode if isinstance(event, SequenceStartEvent) else MappingNode
        node = kind(self._tag(event, kind, path), [], event.start_mark, None, flow_style=event.flow_style, anchor=event.anchor)
        anchor = None
        if event.anchor is not None:
            anchor = self.anchors[event.anchor] = _Anchor(node, open=True)
        self._place(node, 0)
        self.stack.append(_Open(node, path, first, anchor))

    def _end(self, event: CollectionEndEvent) -> None:
        done = self.stack.pop()
        done.node.end_mark = event.end_mark
        height = done.height + 1
        if self.stack:
            self.stack[-1].height = max(self.stack[-1].height, height)
        if done.anchor is not None:
            done.anchor.size, done.anchor.height, done.anchor.open = self.values - done.first, height, False

    def _alias(self, event: AliasEvent) -> None:
        anchor = self.anchors.get(event.anchor)
        if anchor is None:
            raise _Refused(self._problem(event, (), f"invalid YAML: found undefined alias {event.anchor!r}"))
        size, height = (1, 0) if anchor.open else (anchor.size, anchor.height)
        self._count(event, size, height, alias=event.anchor)
        self._place(anchor.node, height)


class _Builder:
    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.problems: list[Problem] = []
        self._scalars = YAML(typ="safe", pure=True).constructor
        self._active: set[int] = set()  # ids of collection nodes being built: alias cycles

    def problem(self, node: Node, path: Path, message: str) -> None:
        m = _mark(node)
        self.problems.append(Problem(self.doc.file, m.line, m.column, path, message))

    def build(self, node: Node, path: Path) -> Plain:
        self.doc.values.setdefault(path, _mark(node))
        if node.tag == _REPORTED:
            return None
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

    def _scalar(self, node: ScalarNode, path: Path) -> Plain:
        tag = _tag_name(node)
        if tag not in _SCALAR_TAGS:
            self.problem(node, path, f"expected a plain value, found unsupported tag {_show_tag(tag)!r}")
            return None
        if tag == _STR:
            m = _mark(node)
            quoted = node.style in ("'", '"')
            self.doc.string_starts[path] = Mark(m.line, m.column + (1 if quoted else 0))
            return str(node.value)
        value = self._construct(node, path)
        return None if value is _INVALID else value

    def _construct(self, node: ScalarNode, path: Path) -> Plain | Literal[_Invalid.INVALID]:
        """Return the value of a scalar that is no string, or ``_INVALID`` once its problem is reported."""
        try:
            # ruamel.yaml's constructor is untyped; for the scalar tags allowed here it makes a plain value.
            value: Plain = self._scalars.construct_object(node, deep=True)
        except (YAMLError, ValueError, KeyError, OverflowError) as exc:
            self.problem(node, path, f"expected a valid {_tag_name(node).removeprefix(_YAML_TAG)}, found {node.value!r} ({exc})")
            return _INVALID
        return value

    def _mapping(self, node: MappingNode, path: Path) -> dict[str | int, Plain]:
        result: dict[str | int, Plain] = {}
        explicit: set[str | int] = set()
        merged: list[tuple[Node, Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append((key_node, value_node))
                continue
            if key_node.tag == _REPORTED:
                continue
            if not isinstance(key_node, ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                self.problem(key_node, path, "expected a plain key, found a complex key")
                continue
            key = str(key_node.value) if key_node.tag == _STR else self._construct(key_node, path)
            if key is _INVALID:
                continue
            if isinstance(key, bool) or not isinstance(key, (str, int)):  # null, a boolean or a float
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
                if value_node.tag == _REPORTED or source.tag == _REPORTED:
                    continue
                if not isinstance(source, MappingNode):
                    self.problem(source, path, "expected a mapping to merge with '<<', found another value")
                    continue
                if id(source) in self._active:
                    self.problem(key_node, (*path, "<<"), "expected a finite value, found a recursive alias")
                    continue
                self._active.add(id(source))
                try:
                    values = self._mapping(source, (*path, "<<"))
                finally:
                    self._active.discard(id(source))
                for key, value in values.items():
                    if key not in result:
                        result[key] = value
                        self.doc.keys.setdefault((*path, key), _mark(key_node))
                        self.doc.values.setdefault((*path, key), _mark(source))
        return result


def _position(text: str, index: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - start + 1


def load_text(text: str, file: str) -> tuple[Document, list[Problem]]:
    """Parse ``text`` (the contents of ``file``) into a ``Document`` and the problems found.

    Text past ``MAX_FILE_BYTES`` of UTF-8 is refused unparsed; the other limits of this module are
    checked while composing, so nothing past them is ever built.
    """
    doc = Document(file=file, text=text)
    if len(text) > MAX_FILE_BYTES:
        doc.text = ""
        return doc, [Problem(file, 1, 1, (), too_big(f"{len(text)} characters"))]
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        doc.text = ""
        return doc, [Problem(file, 1, 1, (), too_big(f"{size} bytes"))]
    composer = _Composer(file)
    try:
        root = composer.compose(text)
    except _Refused as exc:
        return doc, [*composer.problems, exc.problem]
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
    except ReaderError as exc:  # a character YAML forbids: NUL, another control character, a lone surrogate
        line, column = _position(text, exc.position) if isinstance(exc.position, int) else (1, 1)
        found = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        return doc, [Problem(file, line, column, (), f"expected printable characters, found {found}")]
    except YAMLError as exc:  # errors without a position (e.g. a bad stream)
        return doc, [Problem(file, 1, 1, (), f"invalid YAML: {exc}")]
    except RecursionError:  # the limits make this unreachable; a last resort all the same
        return doc, [Problem(file, 1, 1, (), _TOO_DEEP)]
    if root is None:
        return doc, [Problem(file, 1, 1, (), "expected a mapping of settings, found an empty file")]
    builder = _Builder(doc)
    try:
        doc.data = builder.build(root, ())
    except RecursionError:  # as above
        doc.data = None
        return doc, [Problem(file, 1, 1, (), _TOO_DEEP)]
    return doc, composer.problems + builder.problems


def load_file(path: str, display: str | None = None) -> tuple[Document, list[Problem]]:
    """Read and parse the YAML file at ``path``; ``display`` is the name used in problems.

    Only a regular file of at most ``MAX_FILE_BYTES`` is read (``engine.config.read``); anything else is
    one problem.
    """
    name = display or path
    text = read_rule_file(path, name)
    if isinstance(text, Problem):
        return Document(file=name, text=""), [text]
    return load_text(text, name)
