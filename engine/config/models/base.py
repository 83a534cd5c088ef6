"""What every rule-file model shares: frozen, strict, no unknown keys, and the common field types."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


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
