"""Tell which kind of rule file a path or a text is: from where it lies, else from its first line.

The kinds are the keys of ``engine.config.models.KINDS``. A file under ``strategies/`` is a strategy,
``rules/<name>.yaml`` the rule file of ``RULE_FILES``, ``schedules.yaml`` the schedules; else a first
line ``# yaml-language-server: $schema=.../<kind>.schema.json`` (the modeline editors read) names it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from engine.config.models import KINDS
from engine.config.read import read_head

#: rules/<file> -> kind
RULE_FILES = {
    "limits.yaml": "limits",
    "allocation.yaml": "allocation",
    "profit.yaml": "profit",
    "custom.yaml": "custom",
    "instruments.yaml": "instruments",
    "alerts.yaml": "alerts",
}
_MODELINE = re.compile(r"#\s*yaml-language-server:\s*\$schema=(\S*)")
_SCHEMA_SUFFIX = ".schema.json"
_MODELINE_CHARS = 4096  # of a text's start, where its first line is looked for


def kind_of(path: str) -> str | None:
    """Tell which kind of rule file ``path`` is, from where it lies or its schema modeline.

    The order is ``kind_from_text``'s. Only a regular file is opened, and only its start read; a
    FIFO, device or folder is never opened (its kind comes from its place and name alone).
    """
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return _kind(os.path.basename(path), parent, lambda: read_head(path) or "")


def kind_from_text(name: str, text: str) -> str | None:
    """Tell which kind of rule file ``text`` is from ``name``, where it would lie, and its first line.

    Reads no file: this is how a request body's kind is told. ``name`` is a display path such as
    ``strategies/arbitrage.yaml``, ``rules/limits.yaml`` or ``schedules.yaml`` (``""`` when unknown).
    In order: a file under ``strategies/`` is a strategy, ``rules/<name>.yaml`` is that rule file,
    ``schedules.yaml`` the schedules; else the first line ``# yaml-language-server:
    $schema=.../<kind>.schema.json`` tells it; else the file name alone (``limits.yaml``). None when
    nothing does.
    """
    parent = os.path.basename(os.path.dirname(name))
    return _kind(os.path.basename(name), parent, lambda: text)


def _kind(base: str, parent: str, head: Callable[[], str]) -> str | None:
    if parent == "strategies":
        return "strategy"
    if base in RULE_FILES and parent == "rules":
        return RULE_FILES[base]
    if base in ("schedules.yaml", "schedules.yml"):
        return "schedules"
    kind = _modeline_kind(head())
    return kind if kind is not None else RULE_FILES.get(base)


def _modeline_kind(text: str) -> str | None:
    """Return the kind a first-line ``# yaml-language-server: $schema=.../<kind>.schema.json`` names."""
    first = re.split(r"\r\n|\r|\n", text[:_MODELINE_CHARS], maxsplit=1)[0]
    m = _MODELINE.search(first)
    if m is None:
        return None
    # The letters right before the first ".schema.json" that follows one; string scans, where a
    # regular expression backtracks for ages on a long run of letters.
    url, start = m.group(1), 0
    while (end := url.find(_SCHEMA_SUFFIX, start)) >= 0:
        begin = end
        while begin and "a" <= url[begin - 1] <= "z":
            begin -= 1
        if begin < end:
            return url[begin:end] if url[begin:end] in KINDS else None
        start = end + 1
    return None
