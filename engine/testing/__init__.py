"""Importable test kits: in-memory fakes of the systems riskrail talks to (``engine.testing.mt5``)."""
