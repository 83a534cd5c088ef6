"""rules/alerts.yaml: where the engine's ``alert`` actions are delivered, by level (and by rule or strategy).

The file is optional: without it alerts stay on the account's actions stream only. It names sinks
(a generic JSON webhook, a Slack incoming webhook, a Telegram bot) and routes each alert level to
some of them. Secret addresses (a Slack webhook URL, a Telegram bot token) are named by the
environment variable that holds them (``url_env``, ``token_env``), never written in the file.
Delivery itself is ``engine.service.alerts``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, Field, WithJsonSchema, model_validator

from engine.config.models.base import Model, Name, duration_between

#: the levels an ``alert`` action carries (``AlertParams.level``; the daily-loss breach and the chaining
#: limit emit ``critical``), lowest first
LEVELS = ("info", "warning", "critical")
Level = Literal["info", "warning", "critical"]

#: an environment variable's name
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)]
_URL = re.compile(r"https?://[^\s/?#]+\S*")


def _http_url(value: str) -> str:
    if not _URL.fullmatch(value):
        raise ValueError(f"expected an http:// or https:// address, found {value!r}")
    return value


#: an http(s) address
Url = Annotated[str, Field(max_length=2048), AfterValidator(_http_url),
                WithJsonSchema({"type": "string", "pattern": "^" + _URL.pattern + "$", "maxLength": 2048})]
SinkName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]*$", min_length=1, max_length=64)]

TELEGRAM_API = "https://api.telegram.org"

if TYPE_CHECKING:  # a duration is held in milliseconds
    Timeout = int
    Backoff = int
else:
    Timeout = duration_between(100, 60_000)
    Backoff = duration_between(10, 300_000)


class Sink(Model):
    """One destination of alerts.

    ``webhook``: POST of the action's JSON to ``url``; ``slack``: POST ``{"text": ...}`` to the incoming
    webhook ``url``; ``telegram``: POST ``{"chat_id", "text"}`` to ``<url>/bot<token>/sendMessage``, the
    token read from the environment variable ``token_env`` and ``url`` defaulting to the Bot API.
    ``url`` or ``url_env`` (the variable holding it) gives the address, not both. A failed POST (no
    answer within ``timeout``, or a status other than 2xx) is tried again ``retries`` times, waiting
    ``backoff``, then twice that, and so on (at most 5 minutes); then the alert goes to the dead-letter
    stream with the error.
    """

    kind: Literal["webhook", "slack", "telegram"]
    url: Url | None = Field(None, description="the address; telegram: the Bot API base (default https://api.telegram.org)")
    url_env: EnvName | None = Field(None, description="the environment variable holding the address (for secret webhook URLs)")
    token_env: EnvName | None = Field(None, description="telegram: the environment variable holding the bot token")
    chat_id: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(None, description="telegram: the chat to post to")
    timeout: Timeout = Field("5s", validate_default=True, description="how long one POST may take")
    retries: Annotated[int, Field(ge=0, le=20)] = Field(3, description="tries after the first before the alert is dead-lettered")
    backoff: Backoff = Field("1s", validate_default=True, description="wait before the first retry; doubled for each next one")

    @model_validator(mode="after")
    def _address(self) -> Sink:
        if self.url is not None and self.url_env is not None:
            raise ValueError("expected url or url_env, found both")
        if self.kind == "telegram":
            if self.token_env is None or self.chat_id is None:
                raise ValueError("expected token_env and chat_id for a telegram sink, found "
                                 + ("neither" if self.token_env is None and self.chat_id is None
                                    else "no token_env" if self.token_env is None else "no chat_id"))
        else:
            if self.url is None and self.url_env is None:
                raise ValueError(f"expected url or url_env for a {self.kind} sink, found neither")
            if self.token_env is not None or self.chat_id is not None:
                raise ValueError(f"expected token_env and chat_id only on a telegram sink, found them on a {self.kind} sink")
        return self


SinkList = Annotated[list[SinkName], Field(max_length=32)]


class Routes(Model):
    """The sinks of each level; an alert goes to those of its level (none listed: stays on the stream)."""

    info: SinkList = Field([])
    warning: SinkList = Field([])
    critical: SinkList = Field([])

    def of(self, level: str) -> list[str]:
        """Return the sinks of ``level`` (one of ``LEVELS``)."""
        return list(getattr(self, level))


class AlertRouting(Model):
    """rules/alerts.yaml: sinks by name, and the routes of alert levels (and of rules and strategies) to them."""

    sinks: dict[SinkName, Sink] = Field({}, description="the destinations, by name")
    routes: Routes = Field(Routes(), description="level -> the sinks its alerts go to")
    by_rule: dict[Annotated[str, Field(min_length=1, max_length=128)], SinkList] = Field(
        {}, description="the rule of the alert action (daily_loss, chain_limit, broker, custom:<name>) -> sinks its alerts also go to")
    by_strategy: dict[Name, SinkList] = Field({}, description="strategy -> sinks its alerts also go to")
    default_level: Level = Field("warning", description="the level of an alert that carries none (a broker's alert)")
    queue: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        10_000, description="alerts waiting per sink; beyond it an alert is dead-lettered at once (and counted)")

    def sinks_for(self, level: str | None, rule: str | None, strategy: str | None) -> list[str]:
        """Return the names of the sinks an alert of ``level`` (None: ``default_level``), ``rule`` and
        ``strategy`` goes to: its level's, then its rule's, then its strategy's, each once, in that order."""
        lvl = level if level in LEVELS else self.default_level
        names = self.routes.of(lvl) + self.by_rule.get(rule or "", []) + self.by_strategy.get(strategy or "", [])
        return list(dict.fromkeys(names))
