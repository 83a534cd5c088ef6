"""``POST /api/rules/plan``: dry-run a rule change against the history the service recorded.

The proposed files (relative path -> YAML text) are laid over the active rules; an account's journal
(the events it decided, in order) is the history; ``riskrail plan`` runs in a child process with a
timeout, so a proposed ruleset never reaches the live process (DESIGN section 9), and its JSON report
is returned: what changes per position and per rule, realized PnL and drawdown deltas, breaches, and
(``open_positions``) what a reload to the proposed rules changes for each position open at the end of
the history, or that it is refused.

The proposed texts are validated here, from the texts themselves. Only the child needs files: it is
the ``riskrail plan`` command a user runs, which reads two configuration folders and a history file,
so both rule sets and the history are written to a temporary folder for it, and removed after.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

from engine.config.load import load_texts
from engine.errors import RiskrailError
from engine.service.journal import export_history
from engine.service.reload import problem_json
from engine.service.store import write_files


class PlanRequestError(RiskrailError):
    """The request cannot be planned: ``status`` is the HTTP status, ``detail`` the JSON body."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status, self.detail = status, detail


def plan(service, files: dict[str, str], *, account: str | None = None, max_events: int = 1_000_000,
         timeout: float = 120.0) -> dict[str, Any]:
    """Run the plan; return the report (``changed``: whether the proposed rules act differently, or their
    reload would change an open position or be refused)."""
    if not isinstance(files, dict) or not files or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise PlanRequestError(422, "expected {\"files\": {\"strategies/NAME.yaml\": \"<yaml>\", ...}}: the changed rule files")
    for rel in files:
        parts = rel.split("/")
        ok = rel == "schedules.yaml" or (len(parts) == 2 and parts[0] in ("strategies", "rules") and parts[1].endswith((".yaml", ".yml")))
        if not ok:
            raise PlanRequestError(422, f"{rel!r}: expected strategies/NAME.yaml, rules/NAME.yaml or schedules.yaml")
    account = account or service.default_account
    version = service.version
    stored = service.rule_store.texts(version)
    result = load_texts({**stored, **files})
    if result.ruleset is None:
        problems = [problem_json(p) for p in result.problems]
        raise PlanRequestError(422, {"message": "the proposed rules are invalid", "problems": problems})
    with tempfile.TemporaryDirectory(prefix="riskrail-plan-") as tmp:
        base, proposed = os.path.join(tmp, "base"), os.path.join(tmp, "proposed")
        write_files(base, stored)
        write_files(proposed, result.sources)
        history = os.path.join(tmp, "history.jsonl")
        with open(history, "w", encoding="utf-8") as fh:
            n = export_history(service.redis, service.keys.stream(account, "journal"), fh, max_events)
        if n == 0:
            raise PlanRequestError(409, f"account {account!r} has no recorded events to replay yet")
        try:
            proc = subprocess.run([sys.executable, "-m", "engine", "plan", "--config", proposed, "--base", base, "--history", history,
                                   "--equity", repr(service.equity0), "--format", "json"],
                                  capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise PlanRequestError(504, f"the plan did not finish within {timeout:g} s over {n} events; "
                                        "ask for fewer (max_events)") from None
        if proc.returncode not in (0, 2):
            raise PlanRequestError(422, {"message": "the plan failed", "error": proc.stderr.strip()[-2000:]})
        report = json.loads(proc.stdout)
    # the events of the history (the clock events the service journaled, or the plan adds, are not counted)
    return {"account": account, "base_version": version, "proposed_version": result.ruleset.version, "events": report["events"],
            "changed": proc.returncode == 2, "report": report}
