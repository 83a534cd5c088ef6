"""Logging of the service: readable lines, or one JSON object per line (``--log-format json``); and the
secrets no line may show.

``hide(secret)`` (the Redis password and user of ``--redis-url``, the API token) and
``add_redactor(fn)`` (the MetaTrader 5 connection's) register what this process must never print:
every log line goes through ``scrub``, and so do the API's error bodies that quote an exception.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import quote

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_redactors: tuple[Callable[[str], str], ...] = ()
#: shorter secrets are not searched for: replacing every "ab" would garble the logs and hide little
MIN_SECRET = 3


def hide(*secrets: str | None) -> None:
    """Never print these in this process: ``scrub`` replaces each (as is, URL-quoted and JSON-escaped)."""
    global _secrets
    forms: set[str] = set()
    for s in secrets:
        if s and len(s) >= MIN_SECRET:
            forms.update((s, quote(s, safe=""), json.dumps(s)[1:-1]))
    with _lock:
        _secrets = tuple(sorted(set(_secrets) | forms, key=len, reverse=True))  # longest first: no half-replaced secret


def add_redactor(fn: Callable[[str], str]) -> None:
    """Pass every log line and API error text through ``fn`` too (a component that knows its secrets)."""
    global _redactors
    with _lock:
        _redactors = (*_redactors, fn)


def scrub(text: str) -> str:
    """``text`` with every secret of ``hide`` and ``add_redactor`` replaced by ``***``."""
    for s in _secrets:
        if s in text:
            text = text.replace(s, "***")
    for fn in _redactors:
        text = fn(text)
    return text


class _Scrubbed(logging.Formatter):
    """Formats with ``inner``, then ``scrub``s the whole line (message, extra fields and traceback)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return scrub(self.inner.format(record))

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "message", ...extra fields, "exc"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(fmt: str = "text", level: str = "info", stream=None) -> None:
    """Configure the root logger (and uvicorn's) once for the process."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(_Scrubbed(JsonFormatter()))
    else:
        handler.setFormatter(_Scrubbed(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING" if level != "debug" else "DEBUG")
    logging.getLogger("apscheduler").setLevel("WARNING" if level != "debug" else "DEBUG")
