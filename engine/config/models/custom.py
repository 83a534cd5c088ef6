"""rules/custom.yaml: the desk's own when/then rules, their conditions and actions."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypedDict

from pydantic import (
    BaseModel,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    WithJsonSchema,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from engine.config import conditions
from engine.config.models.base import Duration, Model, PositiveFraction


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


FactName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
#: a subject of a fact: a literal name, or a template such as "{strategy.name}" filled from the context
Subject = Annotated[str, Field(min_length=1, max_length=128)]


class AssertParams(Model):
    """Assert the desk's fact ``fact`` for a strategy and/or a symbol (neither: for everything), live ``for``
    a duration of event time (none: until a rule retracts it). Asserting a live fact again renews it."""

    fact: FactName
    strategy: Subject | None = None
    symbol: Subject | None = None
    for_: Annotated[Duration | None, Field(alias="for")] = None
    reason: str | None = None


class RetractParams(Model):
    """Retract the desk's fact ``fact`` of a strategy and/or a symbol (neither: the fact for everything)."""

    fact: FactName
    strategy: Subject | None = None
    symbol: Subject | None = None


class FactSpec(Model):
    """A fact the desk's rules assert: what it means and what it blocks while live."""

    description: str | None = None
    blocks: Literal["proposals", "nothing"] = Field("nothing", description="proposals: reject new positions of its subject while live")


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
    assert_: Annotated[AssertParams | None, Field(alias="assert")] = None
    retract: RetractParams | None = None

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
            if value is None and key in cls.model_fields and key not in ("set_stop_loss", "set_take_profit", "alert", "retract"):
                value = {}
            elif key == "alert" and isinstance(value, str):
                value = {"message": value}
            out[key] = value
        return out

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        names = [_KIND.get(n, n) for n in type(self).model_fields if getattr(self, n) is not None]
        if len(names) != 1:
            found = ", ".join(names) if names else "none"
            choices = ", ".join(_KIND.get(n, n) for n in type(self).model_fields)
            raise PydanticCustomError(
                "action", "expected exactly one action ({choices}), found {found}", {"choices": choices, "found": found})
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # the fact actions are left out when absent, so a file without them keeps its rules version
        out: dict[str, Any] = handler(self)
        for name in ("assert_", "retract"):
            value = out.pop(name, None)
            if value is not None:
                out[_KIND.get(name, name)] = {_KEY.get(k, k): v for k, v in value.items()} if isinstance(value, dict) else value
        return out

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
        fields = ((_KIND.get(name, name), getattr(self, name)) for name in type(self).model_fields)
        return next((name, params) for name, params in fields if isinstance(params, BaseModel))


_KIND = {"assert_": "assert"}  # the action's name where it is a Python keyword
_KEY = {"for_": "for"}


class CustomRule(Model):
    """A free rule: when the condition holds, run the actions."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)]
    description: str | None = None
    enabled: bool = True
    priority: Annotated[int, Field(ge=-1000, le=1000)] = Field(0, description="higher runs first")
    when: ConditionField
    then: Annotated[list[Action], Field(min_length=1, max_length=10)]


class CustomRules(Model):
    """rules/custom.yaml: the desk's own facts and when/then rules."""

    facts: Annotated[dict[FactName, FactSpec], Field(max_length=50)] = Field({})
    rules: Annotated[list[CustomRule], Field(max_length=200)] = Field([])

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if not out.get("facts"):
            out.pop("facts", None)  # a file without facts keeps its rules version
        return out
