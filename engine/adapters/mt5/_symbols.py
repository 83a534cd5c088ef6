"""What the adapter needs of a symbol, read from ``symbol_info``, on the one instrument model.

A ``SymbolSpec`` describes the same contract as the engine's ``Instrument``
(``engine.config.models.instruments``): its price grid (``trade_tick_size``, else one point) and its lot
grid (``volume_step``) are the ``Grid``s the engine rounds every level and volume on, so the adapter and
the engine agree on what a valid price and volume are.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from pydantic import ValidationError

from engine.config.grid import Grid
from engine.config.models.instruments import Instrument

_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class SymbolSpec:
    """A symbol's trading specification (prices in the quote currency, volumes in lots)."""

    name: str
    digits: int
    point: float
    contract_size: float
    volume_step: float
    volume_min: float
    volume_max: float
    stops_level: int  # points
    freeze_level: int  # points
    filling_mode: int  # SYMBOL_FILLING_* flags
    trade_mode: int
    base_currency: str
    quote_currency: str
    tick_size: float = 0.0  # smallest price move, a whole number of points; 0: one point

    @classmethod
    def from_info(cls, info: Any) -> SymbolSpec:
        """Read a ``symbol_info`` result. ``trade_tick_size`` is the price step when it is a whole number
        of points (0.25 with 2 digits); 0 or anything else falls back to one point, ``10 ** -digits``."""
        digits = int(info.digits)
        return cls(str(info.name), digits, float(info.point) or 10.0 ** -digits, float(info.trade_contract_size),
                   float(info.volume_step), float(info.volume_min), float(info.volume_max), int(info.trade_stops_level),
                   int(info.trade_freeze_level), int(info.filling_mode), int(info.trade_mode), str(info.currency_base),
                   str(info.currency_profit), _tick(float(getattr(info, "trade_tick_size", 0.0) or 0.0), digits))

    @property
    def prices(self) -> Grid:
        """The tick grid every price of the symbol lies on (``Instrument.prices``)."""
        return Grid.ticks(self.digits, self.tick_size)

    @property
    def lots(self) -> Grid:
        """The lot grid every volume of the symbol lies on (``Instrument.lots``)."""
        return Grid.of(float(f"{self.volume_step:.12g}"))

    def round_price(self, price: float) -> float:
        """``price`` to the nearest tick (a half tick away from zero): 1.2374 -> 1.25 on a 0.25 tick."""
        return self.prices.nearest(price)

    def round_volume(self, volume: float) -> float:
        """``volume`` to the nearest multiple of the volume step (exact in decimal, half to even:
        0.045 lots on a 0.01 step -> 0.04), as the float of that many steps."""
        lots = self.lots
        steps = (Decimal(repr(volume)) * lots.scale / lots.units).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        return lots.value(int(steps))

    def instrument(self) -> dict[str, Any] | None:
        """The ``rules/instruments.yaml`` entry of the symbol (``Instrument`` fields, ``tick_size`` included);
        None when its profit currency is not a three-letter code."""
        if not _CURRENCY.match(self.quote_currency):
            return None
        pip = self.point * 10 if self.digits in (3, 5) else self.point
        return {
            "base_currency": self.base_currency if _CURRENCY.match(self.base_currency) else None,
            "quote_currency": self.quote_currency, "contract_size": self.contract_size,
            "pip_size": float(f"{pip:.10g}"), "digits": self.digits, "tick_size": self.prices.step,
            "volume_step": self.volume_step, "volume_min": self.volume_min, "volume_max": self.volume_max,
            "stops_level": self.stops_level,
        }

    def instrument_model(self) -> Instrument | None:
        """The ``Instrument`` this symbol is, as the engine reads it; None when ``instrument()`` is None or
        the broker's values do not validate (a zero contract size, more than 10 digits)."""
        entry = self.instrument()
        if entry is None:
            return None
        try:
            return Instrument.model_validate(entry)
        except ValidationError:
            return None


def _tick(tick: float, digits: int) -> float:
    """The tick size as the float of a whole number of points, or 0 (one point) when it is not one."""
    if not (math.isfinite(tick) and tick > 0):
        return 0.0
    points = tick * 10 ** digits
    k = round(points)
    if k < 1 or abs(points - k) > 1e-6 * max(1.0, points):
        return 0.0
    return k / 10 ** digits


def finite_positive(x: Any) -> bool:
    """Whether ``x`` is a finite number above 0 (a price or volume the terminal can mean)."""
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0
