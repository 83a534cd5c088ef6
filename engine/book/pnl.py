"""Moved to ``engine.book.valuation``; these names stay so that snapshots written before the move load."""

from engine.book.valuation import Converter, UnknownSymbol

__all__ = ["Converter", "UnknownSymbol"]
