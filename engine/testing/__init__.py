"""Importable test kits: in-memory fakes of the systems riskrail talks to (``engine.testing.mt5``), and the
system's headless Chromium for the dashboard's browser tests (``engine.testing.browser``)."""
