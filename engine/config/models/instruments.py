"""rules/instruments.yaml: the account currency, the instruments' contracts and the broker strategy map."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

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

    @property
    def point(self) -> float:
        """One point, ``10 ** -digits``: the unit of ``stops_level`` and of displayed prices."""
        return 1.0 / 10.0 ** self.digits

    @property
    def prices(self) -> Grid:
        """The tick grid every price of the symbol lies on."""
        return Grid.of(self.tick_size) if self.tick_size is not None else Grid(1, 10 ** self.digits)

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


class Instruments(Model):
    """rules/instruments.yaml: the account currency, instruments and the broker strategy mapping."""

    account_currency: Currency = "USD"
    instruments: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9._#-]{1,32}$")], Instrument] = Field({})
    strategy_map: StrategyMap = StrategyMap()
