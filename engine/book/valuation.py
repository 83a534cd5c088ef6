"""PnL in the account currency: contract sizes, and conversion through the quote currency's pair."""

from __future__ import annotations

import math

from engine.config.models import Instruments
from engine.errors import RiskrailError


class UnknownSymbol(RiskrailError):
    """A symbol that rules/instruments.yaml does not describe."""


class Converter:
    """Values positions in the account currency from the latest quotes."""

    def __init__(self, instruments: Instruments) -> None:
        self.instruments = instruments
        self.account = instruments.account_currency
        self._mid: dict[str, float] = {}

    def known(self, symbol: str) -> bool:
        return symbol in self.instruments.instruments

    def spec(self, symbol: str):
        try:
            return self.instruments.instruments[symbol]
        except KeyError:
            raise UnknownSymbol(f"unknown symbol {symbol!r}: add it to rules/instruments.yaml") from None

    def update(self, symbol: str, bid: float, ask: float) -> None:
        self._mid[symbol] = (bid + ask) / 2

    def rate(self, currency: str) -> float:
        """Return how much account currency one unit of ``currency`` is worth now (nan if unknown yet)."""
        if currency == self.account:
            return 1.0
        direct = currency + self.account
        if direct in self._mid:
            return self._mid[direct]
        inverse = self.account + currency
        if inverse in self._mid:
            return 1.0 / self._mid[inverse]
        return math.nan

    def pnl(self, symbol: str, side: int, entry: float, price: float, volume: float) -> float:
        """Return the PnL of ``volume`` lots closed at ``price``, in the account currency."""
        spec = self.spec(symbol)
        return side * (price - entry) * volume * spec.contract_size * self.rate(spec.quote_currency)

    def notional(self, symbol: str, price: float, volume: float) -> float:
        """Return the notional of ``volume`` lots at ``price`` in the account currency."""
        spec = self.spec(symbol)
        return price * volume * spec.contract_size * self.rate(spec.quote_currency)
