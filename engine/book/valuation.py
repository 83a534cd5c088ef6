"""Valuation: every sum of money the engine computes, in the account currency, in one place.

A price difference (or a price) times a volume in lots is turned into money by the symbol's contract
size and the rate of its quote currency to the account currency, the latest mid of the conversion
pair (DESIGN section 2): JPY to USD through USDJPY. ``Converter.money`` is that one conversion;
PnL, notional and open risk are its three uses. ``OpenPnL`` keeps the open PnL per strategy, the
figure the equity, the daily loss limit and the optimizer read on every tick.

A rate is ``nan`` until a quote of the conversion pair has been seen: so is every sum it converts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from engine.config.models import Instrument, Instruments
from engine.errors import RiskrailError

if TYPE_CHECKING:  # positions value themselves through this module
    from engine.book.positions import Position


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

    def spec(self, symbol: str) -> Instrument:
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

    def money(self, symbol: str, price_lots: float) -> float:
        """Return ``price_lots`` (a price, or a price difference, times a volume in lots of ``symbol``)
        in the account currency."""
        spec = self.spec(symbol)
        return price_lots * spec.contract_size * self.rate(spec.quote_currency)

    def pnl(self, symbol: str, side: int, entry: float, price: float, volume: float) -> float:
        """Return the PnL of ``volume`` lots closed at ``price``, in the account currency."""
        return self.money(symbol, side * (price - entry) * volume)

    def notional(self, symbol: str, price: float, volume: float) -> float:
        """Return the notional of ``volume`` lots at ``price`` in the account currency."""
        return self.money(symbol, price * volume)

    def risk(self, symbol: str, entry: float, stop: float, volume: float) -> float:
        """Return what ``volume`` lots lose from ``entry`` to ``stop``, in the account currency (> 0)."""
        return self.money(symbol, abs(entry - stop) * volume)

    def scale(self, symbol: str) -> float:
        """Return the account-currency value of one unit of price per lot of ``symbol`` (nan before
        the conversion pair is quoted): the factor the vectorised paths multiply whole columns by."""
        spec = self.spec(symbol)
        return spec.contract_size * self.rate(spec.quote_currency)


class OpenPnL:
    """Open PnL per strategy code in the account currency: per symbol, and its total over symbols.

    The total is kept by difference (a symbol's new figures in, its old ones out), so a tick costs
    the strategies of one symbol, not of the whole book. Codes are the engine's strategy codes; a
    reload that adds strategies makes the arrays longer.
    """

    def __init__(self, ncodes: int) -> None:
        self.by_symbol: dict[str, np.ndarray] = {}
        self.total = np.zeros(ncodes)

    def revalue(self, symbol: str, price_lots: np.ndarray, scale: float) -> None:
        """Set ``symbol``'s open PnL from its price x lots per code and its ``scale`` (nan counts as 0)."""
        new = price_lots * (scale if not math.isnan(scale) else 0.0)
        old = self.by_symbol.get(symbol)
        if self.total.size < new.size:
            self.total = np.concatenate([self.total, np.zeros(new.size - self.total.size)])
        if old is not None:
            self.total[: old.size] -= old
        self.total[: new.size] += new
        self.by_symbol[symbol] = new

    def of(self, code: int | None = None) -> float:
        """Return the open PnL of one strategy code (0 when it has none), or of all with None."""
        if code is None:
            return float(self.total.sum())
        return float(self.total[code]) if code < self.total.size else 0.0


def open_risk(converter: Converter, positions: Iterable[Position]) -> float:
    """Return what ``positions`` lose if every stop is hit, from entry to stop, in the account currency
    (positions without a stop add nothing)."""
    risk = 0.0
    for p in positions:
        if not math.isnan(p.stop_loss):
            risk += converter.risk(p.symbol, p.entry, p.stop_loss, p.volume)
    return risk
