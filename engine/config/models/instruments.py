"""rules/instruments.yaml: the account currency, the instruments' contracts and the broker strategy map."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator

from engine.config.grid import Grid
from engine.config.models.base import Currency, Model, Name


class Instrument(Model):
    """Contract specification of one symbol: the one model every component reads (engine, paper broker,
    MetaTrader 5 adapter, API). A connected MetaTrader 5 terminal's ``symbol_info`` overrides it.

    Prices move on ``tick_size`` (default: one point, ``10 ** -digits``); volumes, in lots, on
    ``volume_step`` between ``volume_min`` and ``volume_max``. ``prices`` and ``lots`` are their exact
    grids (``engine.config.grid``).
    """

    base_currency: Currency | None = None
    quote_currency: Currency
    contract_size: Annotated[float, Field(gt=0)] = 100_000.0
    pip_size: Annotated[float, Field(gt=0, le=10_000)]
    digits: Annotated[int, Field(ge=0, le=10)] = Field(5, description="decimals of a price (a point is 10 ** -digits)")
    tick_size: Annotated[float, Field(gt=0, le=10_000)] | None = Field(
        None, description="smallest price move, a multiple of the point (default: one point, 10 ** -digits)")
    volume_step: Annotated[float, Field(gt=0)] = Field(0.01, description="lots: every volume is a multiple of it")
    volume_min: Annotated[float, Field(gt=0)] = Field(0.01, description="smallest volume in lots")
    volume_max: Annotated[float, Field(gt=0)] = Field(100.0, description="largest volume in lots")
    stops_level: Annotated[int, Field(ge=0)] = Field(0, description="minimum stop distance in points")
    margin_rate: Annotated[float, Field(gt=0, le=1)] | None = Field(
        None, description="margin / notional (0.0333 for 1:30); needed by utilization on the margin basis")

    @property
    def point(self) -> float:
        """One point, ``10 ** -digits``: the unit of ``stops_level`` and of displayed prices."""
        return 1.0 / 10.0 ** self.digits

    @property
    def prices(self) -> Grid:
        """The tick grid every price of the symbol lies on."""
        return Grid.ticks(self.digits, self.tick_size)

    @property
    def lots(self) -> Grid:
        """The lot-step grid every volume of the symbol lies on."""
        return Grid.of(self.volume_step)


class StrategyMap(Model):
    """How broker positions name their strategy: by magic number, else by the longest matching comment
    prefix, else ``default``; a position that none of them names is not managed (and is reported)."""

    magic: dict[Annotated[int, Field(ge=0)], Name] = Field({}, description="magic number of the opening order -> strategy")
    comment_prefix: dict[Annotated[str, Field(min_length=1, max_length=31)], Name] = Field(
        {}, description="start of the position's comment -> strategy (MetaTrader 5 comments hold 31 characters)")
    default: Name | None = Field(
        None, description="strategy of broker positions that no magic number or prefix names; none: leave them alone")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TimeOfDay = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, local time of the session")]


class Session(Model):
    """A trading session: open from ``open`` to ``close`` local time in ``timezone`` on ``days`` (a close at
    or before the open runs past midnight, into the next day). ``clock.session`` is the name of the first
    session of the file that is open at an event's time, ``closed`` when none is."""

    name: Name
    timezone: str = Field(description="IANA time zone of open and close, e.g. Europe/London (daylight saving included)")
    open: TimeOfDay
    close: TimeOfDay
    days: list[Weekday] = Field(list(_WEEKDAYS[:5]), min_length=1, description="days the session opens (local), mon-fri by default")

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"expected an IANA time zone such as 'Europe/London', found {value!r}") from None
        return value

    def is_open(self, ts: int) -> bool:
        """Whether the session is open at ``ts`` (epoch ms)."""
        local = datetime.fromtimestamp(ts / 1000, zoneinfo.ZoneInfo(self.timezone))
        minute = local.hour * 60 + local.minute
        start, end = _minutes(self.open), _minutes(self.close)
        day = _WEEKDAYS[local.weekday()]
        if start < end:
            return day in self.days and start <= minute < end
        previous = _WEEKDAYS[(local.weekday() - 1) % 7]  # overnight: opened yesterday evening, or opens this evening
        return (day in self.days and minute >= start) or (previous in self.days and minute < end)


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


class Instruments(Model):
    """rules/instruments.yaml: the account currency, instruments, the broker strategy mapping and the trading sessions."""

    account_currency: Currency = "USD"
    instruments: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._#-]{1,32}$")], Instrument] = Field({})
    strategy_map: StrategyMap = StrategyMap()
    sessions: list[Session] = Field([], max_length=32, description="trading sessions, for clock.session (first open one wins)")

    @field_validator("sessions")
    @classmethod
    def _unique_sessions(cls, sessions: list[Session]) -> list[Session]:
        names = [s.name for s in sessions]
        if dup := sorted({n for n in names if names.count(n) > 1}):
            raise ValueError(f"expected each session name once, found {', '.join(dup)} more than once")
        return sessions

    def session_at(self, ts: int) -> str:
        """The ``clock.session`` of time ``ts`` (epoch ms): the first open session's name, ``closed`` when none is."""
        return next((s.name for s in self.sessions if s.is_open(ts)), "closed")

    def merged(self, entries: Mapping[str, Mapping[str, Any]]) -> tuple[Instruments, list[str]]:
        """These instruments with a broker's specifications laid over them; return them and the problems.

        ``entries``: symbol -> ``Instrument`` fields as a broker states them (a connected MetaTrader 5
        terminal's ``symbol_info``: currencies, contract size, digits, tick size, volume step and limits,
        stops level). A symbol the file lists takes the broker's values for every field the entry gives,
        but keeps its own ``pip_size`` (what a pip is, is the rules' convention); a symbol the file lacks is
        added as the broker states it. An entry that does not validate leaves the file's instrument (or
        none) in place and is reported as ``"SYMBOL: the broker's specification is refused: ..."``.
        ``account_currency`` and ``strategy_map`` stay the file's. Pure: reads nothing, raises nothing.
        """
        instruments = dict(self.instruments)
        problems: list[str] = []
        for name, entry in sorted(entries.items()):
            own = instruments.get(name)
            data = {**own.model_dump(), **entry, "pip_size": own.pip_size} if own is not None else dict(entry)
            if own is not None and "tick_size" not in entry:
                data["tick_size"] = None  # the broker's digits define the point the file's tick would be counted in
            try:
                checked = Instruments.model_validate({"instruments": {name: data}})
            except ValidationError as exc:
                kept = "the file's entry is kept" if own is not None else "the symbol stays unknown"
                why = "; ".join(f"{'.'.join(str(x) for x in e['loc'][2:]).replace('[key]', 'name')}: {e['msg']}"
                                for e in exc.errors())
                problems.append(f"{name}: the broker's specification is refused ({why}); {kept}")
                continue
            instruments[name] = checked.instruments[name]
        return self.model_copy(update={"instruments": instruments}), problems
