"""rules/custom.yaml: the desk's own when/then rules, their conditions and actions."""

from __future__ import annotations

from typing import Annotated, Literal, TypedDict

from pydantic import BaseModel, Field, PlainSerializer, PlainValidator, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from engine.config import conditions
from engine.config.models.base import Model, PositiveFraction


class LocatedError(TypedDict):
    """One problem of a condition as a ``condition`` validation error carries it in its context.

    ``subpath`` leads from the ``when`` value to the string at fault, ``offset`` is the 0-based
    character in that string; ``engine.config._errors`` turns each into a located problem.
    """

    subpath: list[str | int]
    offset: int
    message: str


def _condition(value: object) -> conditions.Condition:
    if isinstance(value, (conditions.Compare, conditions.In, conditions.AllOf, conditions.AnyOf, conditions.Not)):
        return value
    tree, errors = conditions.parse_condition(value)
    if errors:
        located = [LocatedError(subpath=list(sub), offset=e.offset, message=e.message) for sub, e in errors]
        raise PydanticCustomError("condition", "{summary}", {"summary": located[0]["message"], "located": located})
    assert tree is not None
    return tree


_CONDITION_SCHEMA = {
    "description": "an expression such as 'position.profit <= -0.01', or all/any/not of conditions",
    "anyOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {"all": {"type": "array", "minItems": 1}, "any": {"type": "array", "minItems": 1}, "not": {}},
            "additionalProperties": False,
        },
    ],
}

ConditionField = Annotated[
    conditions.Condition,
    PlainValidator(_condition),
    PlainSerializer(lambda c: c.text(), return_type=str),
    WithJsonSchema(_CONDITION_SCHEMA),
]


class CloseParams(Model):
    """Close ``fraction`` of the position's open volume."""

    fraction: PositiveFraction = 1.0


class LevelParams(Model):
    """A stop or target at ``entry * (1 + profit)`` (short: ``1 - profit``); 0 is break-even."""

    profit: Annotated[float, Field(ge=-1, le=10)]


class ReasonParams(Model):
    """An optional human reason carried by the action."""

    reason: str | None = None


class AlertParams(Model):
    """An alert message."""

    message: Annotated[str, Field(min_length=1)]
    level: Literal["info", "warning", "critical"] = "warning"


_ALERT_SCHEMA = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "object",
            "properties": {"message": {"type": "string", "minLength": 1}, "level": {"enum": ["info", "warning", "critical"]}},
            "required": ["message"],
            "additionalProperties": False,
        },
    ]
}


class Action(Model):
    """One ``then:`` item: exactly one action name with its parameters (null for none)."""

    close: CloseParams | None = None
    close_all: ReasonParams | None = None
    set_stop_loss: LevelParams | None = None
    set_take_profit: LevelParams | None = None
    halt_new_positions: ReasonParams | None = None
    resume: ReasonParams | None = None
    reject_position: ReasonParams | None = None
    rebalance: ReasonParams | None = None
    alert: Annotated[AlertParams | None, WithJsonSchema(_ALERT_SCHEMA)] = None

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: object) -> object:
        if isinstance(data, str):
            raise PydanticCustomError(
                "action", "expected an action mapping such as '{name}:' (note the colon), found the string {value}",
                {"name": data, "value": repr(data)})
        if not isinstance(data, dict):
            return data
        out = {}
        for key, value in data.items():
            if value is None and key in cls.model_fields and key not in ("set_stop_loss", "set_take_profit", "alert"):
                value = {}
            elif key == "alert" and isinstance(value, str):
                value = {"message": value}
            out[key] = value
        return out

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        names = [n for n in type(self).model_fields if getattr(self, n) is not None]
        if len(names) != 1:
            found = ", ".join(names) if names else "none"
            raise PydanticCustomError(
                "action", "expected exactly one action ({choices}), found {found}",
                {"choices": ", ".join(type(self).model_fields), "found": found})
        return self

    @property
    def kind(self) -> str:
        """The action's name, e.g. ``close``."""
        return self._chosen()[0]

    @property
    def params(self) -> BaseModel:
        """The action's parameters."""
        return self._chosen()[1]

    def _chosen(self) -> tuple[str, BaseModel]:
        # Every field holds a parameters model or None, and validation leaves exactly one set.
        fields = ((name, getattr(self, name)) for name in type(self).model_fields)
        return next((name, params) for name, params in fields if isinstance(params, BaseModel))


class CustomRule(Model):
    """A free rule: when the condition holds, run the actions."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
    description: str | None = None
    enabled: bool = True
    priority: Annotated[int, Field(ge=-1000, le=1000)] = Field(0, description="higher runs first")
    when: ConditionField
    then: Annotated[list[Action], Field(min_length=1, max_length=10)]


class CustomRules(Model):
    """rules/custom.yaml: the desk's own when/then rules."""

    rules: Annotated[list[CustomRule], Field(max_length=200)] = Field([])
