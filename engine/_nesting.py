"""How deeply a JSON text nests, measured before a recursive parser walks into it (``engine.events.parse_json``)."""

from __future__ import annotations


def nested_deeper(raw: str, limit: int) -> bool:
    """Whether the JSON text ``raw`` nests arrays and objects more than ``limit`` deep. Brackets inside strings
    are skipped; a malformed text is measured as far as it goes and left to the parser to report."""
    if raw.count("[") + raw.count("{") <= limit:
        return False
    depth, in_string, escaped = 0, False, False
    for ch in raw:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False
