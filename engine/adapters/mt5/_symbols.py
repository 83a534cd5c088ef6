"""What the adapter needs of a symbol, read from ``symbol_info``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

_CURRENCY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class SymbolSpec:
    """A symbol's trading specification."""

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

    @classmethod
    def from_info(cls, info: Any) -> SymbolSpec:
        digits = int(info.digits)
        return cls(str(info.name), digits, float(info.point) or 10.0 ** -digits, float(info.trade_contract_size),
                   float(info.volume_step), float(info.volume_min), float(info.volume_max), int(info.trade_stops_level),
                   int(info.trade_freeze_level), int(info.filling_mode), int(info.trade_mode), str(info.currency_base),
                   str(info.currency_profit))

    def round_price(self, price: float) -> float:
        return round(price, self.digits)

    def round_volume(self, volume: float) -> float:
        """``volume`` to the nearest multiple of the volume step (exact in decimal, half to even)."""
        step = Decimal(repr(self.volume_step))
        steps = (Decimal(repr(volume)) / step).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
        return float(steps * step)

    def instrument(self) -> dict[str, Any] | None:
        """The ``rules/instruments.yaml`` entry of the symbol (``Instrument`` fields); None when its
        currencies are not three-letter codes."""
        if not _CURRENCY.match(self.quote_currency):
            return None
        pip = self.point * 10 if self.digits in (3, 5) else self.point
        return {
            "base_currency": self.base_currency if _CURRENCY.match(self.base_currency) else None,
            "quote_currency": self.quote_currency, "contract_size": self.contract_size,
            "pip_size": float(f"{pip:.10g}"), "digits": self.digits, "volume_step": self.volume_step,
            "volume_min": self.volume_min, "volume_max": self.volume_max, "stops_level": self.stops_level,
        }


def finite_positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0
