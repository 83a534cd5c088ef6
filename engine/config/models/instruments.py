"""rules/instruments.yaml: the account currency, the instruments' contracts and the broker strategy map."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from engine.config.models.base import Currency, Model, Name


class Instrument(Model):
    """Contract specification of one symbol (MT5 symbol_info overrides it when connected)."""

    base_currency: Currency | None = None
    quote_currency: Currency
    contract_size: Annotated[float, Field(gt=0)] = 100_000.0
    pip_size: Annotated[float, Field(gt=0, le=10_000)]
    digits: Annotated[int, Field(ge=0, le=10)] = 5
    volume_step: Annotated[float, Field(gt=0)] = 0.01
    min_volume: Annotated[float, Field(gt=0)] = 0.01
    max_volume: Annotated[float, Field(gt=0)] = 100.0
    stops_level: Annotated[int, Field(ge=0)] = Field(0, description="minimum stop distance in points")


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
