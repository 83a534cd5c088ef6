"""Hot reload of the rule files and schedules.yaml.

A change is seen by polling the files' modification times and sizes (every ``poll`` seconds; no
dependency on inotify, works on network file systems and in containers), by SIGHUP, or by
``POST /api/rules/reload``. The files are read, validated (every error with file:line:column), compiled
into durable-rules definitions and test-compiled in a child process with a timeout (DESIGN section 9:
a bad ruleset can freeze the process that compiles it); only then are their texts stored in Redis
under the new version and the version swapped into every engine between two events. A refused change
leaves the last good rules active; the attempt, with its errors, is kept for the API, counted in the
metrics and appended to the ``reloads`` stream.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from engine.config.load import RuleSet, validate_config
from engine.config.problems import Problem
from engine.errors import RiskrailError
from engine.rules.compile import compile_ruleset
from engine.rules.compile_check import WarmChecker, check_compiles
from engine.service.store import Fields, sources

log = logging.getLogger("riskrail.reload")


@dataclass
class ReloadResult:
    ok: bool
    at: float
    trigger: str
    version: str | None = None
    previous: str | None = None
    changed: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "at": self.at, "trigger": self.trigger, "version": self.version, "previous": self.previous,
                "changed": self.changed, "errors": self.errors, "seconds": self.seconds}


def signature(config_dir: str) -> tuple:
    """What changes when a rule file is written, added or removed: (path, mtime_ns, size) of each."""
    out = []
    for sub in ("strategies", "rules"):
        folder = os.path.join(config_dir, sub)
        try:
            names = sorted(os.listdir(folder))
        except OSError:
            continue
        for name in names:
            if name.endswith((".yaml", ".yml")):
                try:
                    st = os.stat(os.path.join(folder, name))
                except OSError:
                    continue
                out.append((sub, name, st.st_mtime_ns, st.st_size))
    try:
        st = os.stat(os.path.join(config_dir, "schedules.yaml"))
        out.append(("", "schedules.yaml", st.st_mtime_ns, st.st_size))
    except OSError:
        pass
    return tuple(out)


def problem_json(p: Problem) -> dict[str, Any]:
    """A rule-file problem as the API and the reload journal show it: ``validate --format json``'s
    object plus its one-line ``text``."""
    return {**p.to_json(), "text": str(p)}


def error_json(message: str) -> dict[str, Any]:
    """A failure that belongs to no file and line (the ruleset did not compile)."""
    return {"file": None, "line": None, "column": None, "path": "", "message": message, "text": message}


def load_checked(config_dir: str, timeout: float = 10.0,
                 checker: WarmChecker | None = None) -> tuple[RuleSet | None, list[dict[str, Any]], dict[str, str]]:
    """Validate and test-compile the configuration; return ``(ruleset, [], files)`` or ``(None, errors, files)``,
    ``files`` the texts that were validated (relative path -> text)."""
    result = validate_config(config_dir)
    files = sources(result, config_dir)
    if result.ruleset is None:
        return None, [problem_json(p) for p in result.problems], files
    try:
        check_compiles(compile_ruleset(result.ruleset), timeout, checker)
    except RiskrailError as exc:
        return None, [error_json(str(exc))], files
    return result.ruleset, [], files


class Reloader:
    """Watches ``config_dir`` and reloads through ``apply(ruleset, files) -> version`` (the service's swap)."""

    def __init__(self, config_dir: str, apply: Callable[[RuleSet, dict[str, str]], str], *, active_version: Callable[[], str],
                 record: Callable[[ReloadResult], None], poll: float = 0.025, timeout: float = 10.0) -> None:
        self.config_dir, self.apply, self.active_version, self.record = config_dir, apply, active_version, record
        self.poll, self.timeout = poll, timeout
        self.last: ReloadResult | None = None
        self.checker = WarmChecker()  # durable-rules loaded in a child once, not at every reload
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._signature = signature(config_dir)
        self.thread = threading.Thread(target=self._watch, name="rules-watcher", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        with self._lock:
            self.checker.close()

    def request(self) -> None:
        """Reload soon (SIGHUP): safe from a signal handler."""
        self._kick.set()

    @contextmanager
    def between_reloads(self) -> Iterator[None]:
        """Hold reloads off while the caller reads what a reload changes; wait for one in progress first."""
        with self._lock:
            yield

    def _watch(self) -> None:
        try:
            with self._lock:
                self.checker.warm()
        except Exception as exc:  # a reload starts a child itself; this was only to save its start-up
            log.warning("could not start the compile child ahead of time: %s", exc)
        while not self._stop.is_set():
            kicked = self._kick.wait(self.poll)
            if self._stop.is_set():
                return
            self._kick.clear()
            seen = time.perf_counter()
            sig = signature(self.config_dir)
            if sig != self._signature:
                # let a write finish: an editor truncates, then writes (a half-written file would be
                # refused with errors that are not the user's)
                while not self._stop.wait(self.poll):
                    settled = signature(self.config_dir)
                    if settled == sig:
                        break
                    sig = settled
            if sig != self._signature or kicked:
                self._signature = sig
                try:
                    self.reload("signal" if kicked else "file change", seen=seen)
                except Exception:  # the watcher must outlive any failure
                    log.exception("reload failed unexpectedly")

    def reload(self, trigger: str, *, seen: float | None = None) -> ReloadResult:
        """Load, validate, test-compile and swap in the configuration; return what happened."""
        start = seen if seen is not None else time.perf_counter()
        with self._lock:
            previous = self.active_version()
            ruleset, errors, files = load_checked(self.config_dir, self.timeout, self.checker)
            if ruleset is None:
                res = ReloadResult(False, time.time(), trigger, None, previous, False, errors)
                log.error("reload refused (%s); rules %s stay active:\n%s", trigger, previous, "\n".join(e["text"] for e in errors))
            else:
                try:
                    version = self.apply(ruleset, files)
                except RiskrailError as exc:
                    res = ReloadResult(False, time.time(), trigger, None, previous, False, [error_json(str(exc))])
                    log.error("reload refused (%s): %s; rules %s stay active", trigger, exc, previous)
                else:
                    res = ReloadResult(True, time.time(), trigger, version, previous, version != previous)
                    if version != previous:
                        log.info("rules reloaded (%s): %s -> %s", trigger, previous, version)
            res.seconds = time.perf_counter() - start
            self.last = res
            self.record(res)
            return res


def encode(res: ReloadResult) -> Fields:
    return {"result": json.dumps(res.to_json(), allow_nan=False)}
