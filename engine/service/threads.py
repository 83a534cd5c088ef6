"""A loop on a thread of its own that stops when asked (the demo feed, the MetaTrader 5 pump)."""

from __future__ import annotations

import threading


class Background:
    """Subclasses write ``_run``, which returns when ``self._stop`` is set."""

    name = "background"

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.thread.join(timeout)

    def _run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
