"""Prove that durable-rules accepts a ruleset definition, in a child process that may be killed.

durable-rules loops forever, holding the GIL, on some definitions (more than 512 tests under one
node), and accepts some it should refuse (an unknown operator whose operand is a string). So a
definition is registered on a fresh ``Host`` in a child process with a timeout (``check_compiles``),
one started per check or kept warm (``WarmChecker``), and its operators are held against durable's
grammar (``DURABLE_OPERATORS``); durable's bare error codes are put in words (``DURABLE_ERRORS``).
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import IO, Any, TypedDict

from engine.rules import _durable_json
from engine.rules._errors import RulesCompileError

#: A JSON object as durable-rules takes and gives it: a ruleset definition, a rule, an expression, a
#: message or a fact.
Json = dict[str, Any]

# Every $-key of durable-rules' JSON grammar; 2.0.28 accepts an unknown one silently when its operand
# is a string, and the rule then matches unrelated messages.
DURABLE_OPERATORS = frozenset({
    "$and", "$or", "$lt", "$lte", "$gt", "$gte", "$neq",
    "$ex", "$nex", "$mt", "$imt", "$iall", "$iany", "$i", "$m", "$s", "$l", "$r", "$add", "$sub", "$mul", "$div",
})

# durable-rules 2.x error codes (rules.h) that a ruleset definition can produce, in plain words.
DURABLE_ERRORS = {
    101: "out of memory",
    102: "a value of an unexpected type",
    103: "an identifier that is too long",
    104: "an unexpected value",
    105: "an unknown key in a rule (durable-rules knows all, any, pri, count, cap, dist and run)",
    106: "too many rules in one ruleset",
    107: "too many $ex/$nex tests in one rule",
    108: "too many patterns (joins) in one rule",
    109: "a rule without 'all' or 'any'",
    112: "too many live handles",
    113: "too many expressions, or $and/$or nested too deeply",
    201: "a value the JSON parser did not recognise",
    202: "unrecognised JSON: an unknown operator, a non-finite number such as inf, or an object where a value belongs",
    203: "a number the JSON parser did not recognise",
    204: "an object the JSON parser did not recognise",
    205: "an array the JSON parser did not recognise",
    302: "a message with too many properties",
    303: "the evaluation stack is too deep",
    309: "an unknown session id",
}


class _Reply(TypedDict, total=False):
    """What a compile child prints, one JSON line each: ``ready`` once started, then ``ok`` (and
    ``error``, when not) per definition."""

    ready: bool
    ok: bool
    error: str


def operators(node: object) -> Iterator[str]:
    """Yield every ``$``-operator of a ruleset definition (or any part of one), in order, repeats included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.startswith("$"):
                yield key
            yield from operators(value)
    elif isinstance(node, list):
        for item in node:
            yield from operators(item)


_CHILD = r"""
import json, sys
try:
    import engine.rules  # routes durable's JSON through engine.rules._durable_json, as in the parent
    from durable import engine
except Exception as exc:
    print(json.dumps({"ok": False, "error": "cannot import durable-rules: %s" % exc})); sys.exit(0)

class Host(engine.Host):
    def get_action(self, name):
        return lambda c: None
    def _run(self):
        pass

definition = json.loads(sys.stdin.read())
try:
    Host().register_rulesets(definition)
except BaseException as exc:
    print(json.dumps({"ok": False, "error": str(exc) or type(exc).__name__}))
else:
    print(json.dumps({"ok": True}))
"""


def explain_durable_error(message: str) -> str:
    """Return durable-rules' error ``message`` with its bare code explained."""
    m = re.search(r"error code:?\s*(\d+)", message)
    if not m:
        return message
    code = int(m.group(1))
    meaning = DURABLE_ERRORS.get(code, "an error durable-rules does not explain")
    return f"durable-rules refused the ruleset with code {code}: {meaning} ({message})"


def check_compiles(definition: Json, timeout: float = 10.0, checker: WarmChecker | None = None) -> None:
    """Register ``definition`` on a fresh durable-rules ``Host`` in a child process; raise on failure.

    A definition that durable-rules rejects raises ``RulesCompileError`` with its error code explained,
    and so does one it accepts with an operator outside its grammar (it accepts ``{"$regex": {"f":
    "x"}}`` silently and the rule then matches unrelated messages);
    one that does not finish within ``timeout`` seconds (durable-rules loops forever on more than 512
    tests under one node) raises ``RulesCompileError`` after the child has been killed. The caller's
    process never loads the definition. ``checker``: a ``WarmChecker`` whose child has durable-rules
    loaded already (a reload costs milliseconds instead of a Python start-up); default: a new child.
    """
    payload = _payload(definition)
    if checker is not None:
        result = checker.run(payload, timeout)
    else:
        result = _run_child(payload, timeout)
    if not result.get("ok"):
        raise RulesCompileError(explain_durable_error(str(result.get("error"))))
    unknown = sorted(set(operators(definition)) - DURABLE_OPERATORS)
    if unknown:
        raise RulesCompileError(
            f"unknown operator(s) {', '.join(repr(u) for u in unknown)}: durable-rules accepted the ruleset "
            "but would match unrelated messages with them; expected one of " + ", ".join(sorted(DURABLE_OPERATORS))
        )


def _payload(definition: Json) -> str:
    try:
        json.dumps(definition, allow_nan=False)  # refuses inf and nan
        return _durable_json.dumps(definition)
    except ValueError as exc:
        raise RulesCompileError(f"expected finite numbers only in the ruleset, found a non-finite one ({exc})") from None
    except TypeError as exc:
        raise RulesCompileError(f"expected a JSON ruleset definition, found {exc}") from None


def _timed_out(timeout: float) -> RulesCompileError:
    return RulesCompileError(
        f"durable-rules did not finish compiling the ruleset within {timeout:g} s and was stopped: "
        "it loops forever when more than 512 tests sit under one node; expected fewer rules or "
        "fewer alternatives ('in' lists, 'any' groups)"
    )


def _run_child(payload: str, timeout: float) -> _Reply:
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD], input=payload, capture_output=True, text=True, timeout=timeout,
        )  # subprocess.run kills the child when the timeout expires
    except subprocess.TimeoutExpired:
        raise _timed_out(timeout) from None
    lines = proc.stdout.strip().splitlines()
    try:
        reply: _Reply = json.loads(lines[-1])
        return reply
    except (IndexError, ValueError):
        tail = (proc.stderr or proc.stdout).strip()[-500:]
        raise RulesCompileError(f"the child process compiling the ruleset failed (exit {proc.returncode}): {tail}") from None


_WARM_CHILD = r"""
import json, sys
try:
    import engine.rules  # routes durable's JSON through engine.rules._durable_json, as in the parent
    from durable import engine
    import durable_rules_engine
except Exception as exc:
    print(json.dumps({"ok": False, "error": "cannot import durable-rules: %s" % exc}), flush=True); sys.exit(0)

class Host(engine.Host):
    def get_action(self, name):
        return lambda c: None
    def _run(self):
        pass

print(json.dumps({"ready": True}), flush=True)
for header in sys.stdin:
    definition = json.loads(sys.stdin.read(int(header)))
    try:
        host = Host()
        host.register_rulesets(definition)
    except BaseException as exc:
        print(json.dumps({"ok": False, "error": str(exc) or type(exc).__name__}), flush=True)
    else:
        for name in definition:  # free the compiled network: this child checks many versions
            try:
                durable_rules_engine.delete_ruleset(host.get_ruleset(name)._handle)
            except Exception:
                pass
        print(json.dumps({"ok": True}), flush=True)
"""


class WarmChecker:
    """A child process with durable-rules loaded, compiling definitions on request (``check_compiles``).

    A definition that freezes durable-rules freezes the child only: after ``timeout`` the child is
    killed and the next check starts a new one. The child is also replaced every ``recycle`` checks.
    Not thread-safe: one caller at a time (the reloader holds its lock).
    """

    def __init__(self, recycle: int = 200) -> None:
        self.recycle = recycle
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._used = 0

    def warm(self, timeout: float = 30.0) -> None:
        """Start the child now, so that the first check is fast too."""
        if self._proc is None or self._proc.poll() is not None:
            self._start(timeout)

    def _start(self, timeout: float) -> subprocess.Popen[str]:
        proc = self._proc = subprocess.Popen([sys.executable, "-u", "-c", _WARM_CHILD], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._lines = queue.Queue()
        self._used = 0

        def pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
            for line in stream:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, args=(proc.stdout, self._lines), daemon=True).start()
        first = self._read(max(timeout, 30.0))
        if not first.get("ready"):
            self.close()
            raise RulesCompileError(str(first.get("error", "the compile child did not start")))
        return proc

    def _read(self, timeout: float) -> _Reply:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise _timed_out(timeout) from None
        if line is None:
            self.close()
            raise RulesCompileError("the child process compiling the ruleset died")
        reply: _Reply = json.loads(line)
        return reply

    def run(self, payload: str, timeout: float) -> _Reply:
        """Compile ``payload`` (a serialised definition) in the child; return its reply."""
        proc = self._proc
        if proc is None or proc.poll() is not None or self._used >= self.recycle:
            self.close()
            proc = self._start(timeout)
        self._used += 1
        stdin = proc.stdin
        assert stdin is not None  # a pipe: the child was started with stdin=PIPE
        try:
            stdin.write(f"{len(payload)}\n{payload}")
            stdin.flush()
        except OSError:
            self.close()
            return _run_child(payload, timeout)
        return self._read(timeout)

    def close(self) -> None:
        """Stop the child, if one runs (the next check starts another)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                try:
                    if f is not None:
                        f.close()
                except OSError:
                    pass
            self._proc = None
