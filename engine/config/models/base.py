"""What every rule-file model shares: frozen, strict, no unknown keys, and the common field types."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, WithJsonSchema


class Model(BaseModel):
    """Base of every rule-file model: frozen, strict, no unknown keys, no inf/nan.

    A list or mapping default is written ``Field([...])``: pydantic copies it for every instance (it is
    no shared class attribute), and unlike ``default_factory`` the JSON Schema still shows it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


Fraction = Annotated[float, Field(ge=0, le=1)]
PositiveFraction = Annotated[float, Field(gt=0, le=1)]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", min_length=1, max_length=64)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]

_DURATION = re.compile(r"([1-9][0-9]{0,8})(ms|s|m|h)")
_DURATION_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000}
#: how a duration is written in the files: 500ms, 30s, 5m, 2h
DURATION_PATTERN = "^[1-9][0-9]{0,8}(ms|s|m|h)$"


def duration_ms(value: object) -> object:
    """``30s``, ``5m``, ``1h``, ``500ms`` -> milliseconds (None stays None), so 60s and 1m are one meaning
    (and one rules version); anything else raises ``ValueError`` with what was found."""
    if value is None:
        return None
    if isinstance(value, str) and (m := _DURATION.fullmatch(value.strip())):
        return int(m.group(1)) * _DURATION_MS[m.group(2)]
    raise ValueError(f"expected a duration such as 30s, 5m or 1h, found {value!r}")


def duration_text(ms: int) -> str:
    """Milliseconds in the largest unit that divides them (60_000 -> 1m, 90_000 -> 90s), read back by ``duration_ms``."""
    for unit in ("h", "m", "s"):
        if ms % _DURATION_MS[unit] == 0:
            return f"{ms // _DURATION_MS[unit]}{unit}"
    return f"{ms}ms"


#: a duration field: written 30s, 5m, 2h or 500ms, held in milliseconds
Duration = Annotated[int, BeforeValidator(duration_ms), PlainSerializer(duration_text),
                     WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN})]


def duration_between(lo_ms: int, hi_ms: int | None = None) -> Any:
    """A ``Duration`` of at least ``lo_ms`` (and at most ``hi_ms``): a value outside is refused in the file's
    own terms ("expected a duration from 100ms to 1h, found 50ms"), not in milliseconds."""
    span = f"from {duration_text(lo_ms)} to {duration_text(hi_ms)}" if hi_ms is not None else f"of {duration_text(lo_ms)} or more"

    def within(value: object) -> object:
        ms = duration_ms(value)
        if isinstance(ms, int) and (ms < lo_ms or (hi_ms is not None and ms > hi_ms)):
            raise ValueError(f"expected a duration {span}, found {value}")
        return ms
    return Annotated[int, BeforeValidator(within), PlainSerializer(duration_text),
                     WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "description": f"a duration {span}"})]
