"""Make durable-rules accept every finite float.

durable-rules 2.0.28 serialises events, facts and rulesets with ``json.dumps`` and parses them in C;
that parser rejects exponent notation (``-5e-06``, ``1e+20``: error 204, "Could not assert event"),
which Python writes for any float below 1e-4 or from 1e16 in magnitude — a profit of -0.000005 would
stop the engine. ``install()`` gives durable's engine module a ``json`` whose ``dumps`` writes such
floats in positional notation (the same value, digit for digit); ``loads`` is the standard one.
"""

from __future__ import annotations

import json as _json
import math
import numbers
from decimal import Decimal
from typing import Any, SupportsFloat

import numpy as np


def _float(x: SupportsFloat) -> str:
    if not math.isfinite(x):
        raise ValueError(f"durable-rules cannot take {x!r}")
    text = repr(float(x))  # float(): numpy's float64 repr is "np.float64(...)"
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
        if "." not in text:
            text += ".0"
    return text


def dumps(obj: Any, ensure_ascii: bool = False, **_: Any) -> str:
    """Serialise like ``json.dumps``, writing every float in positional notation."""
    if isinstance(obj, (bool, np.bool_)):
        return "true" if obj else "false"
    if obj is None or isinstance(obj, str):
        return _json.dumps(obj, ensure_ascii=ensure_ascii)
    if isinstance(obj, numbers.Integral):
        return str(int(obj))
    if isinstance(obj, numbers.Real):
        return _float(obj)
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{_json.dumps(str(k), ensure_ascii=ensure_ascii)}: {dumps(v, ensure_ascii)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(dumps(v, ensure_ascii) for v in obj) + "]"
    return _json.dumps(obj, ensure_ascii=ensure_ascii)


class _Shim:
    dumps = staticmethod(dumps)
    loads = staticmethod(_json.loads)


def install() -> None:
    """Route durable-rules' serialisation through ``dumps`` (idempotent)."""
    from durable import engine

    if not isinstance(engine.json, _Shim):
        engine.json = _Shim()
