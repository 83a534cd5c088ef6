"""Actions the engine emits (DESIGN section 4), each with a deterministic id.

Every action names the rule that fired and the rules version that produced it. Its ``id`` is a hash
of the rules version, the event's sequence number in its stream, the subject (position or strategy),
the type, the rule and its rank among the actions of that event, so replaying the same events through
the same rules gives the same ids: a restart after a crash can tell what it already emitted.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

ACTION_TYPES = (
    "close", "close_partial", "set_stop_loss", "set_take_profit", "reject_position", "halt_new_positions",
    "resume", "close_all", "rebalance", "alert", "lock_profit",
    "size_position",  # the volume the engine sized a proposal that came without one (sizing.risk_per_trade)
    "reconcile",  # a difference with the broker's positions (engine.rules.reconcile): journaled, never sent to a broker
    "trading_state",  # an operator changed a trading state (engine.rules.trading_state): no order for a broker
)


@dataclass(frozen=True)
class Action:
    """One decision of the engine."""

    id: str
    ts: int  # epoch milliseconds, the event's own time
    type: str
    position_id: str | None
    strategy: str | None
    params: dict[str, Any] = field(hash=False)
    rule: str
    rules_version: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        """Return the action as the JSON object ``riskrail replay`` writes (keys in a fixed order)."""
        return {
            "id": self.id,
            "ts": self.ts,
            "type": self.type,
            "position_id": self.position_id,
            "strategy": self.strategy,
            "params": {k: _clean(v) for k, v in self.params.items()},
            "rule": self.rule,
            "rules_version": self.rules_version,
            "reason": self.reason,
        }

    def to_line(self) -> str:
        """Return the action as one JSON line (byte-identical for identical actions)."""
        return json.dumps(self.to_json(), separators=(",", ":"), sort_keys=False, allow_nan=False)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def action_id(rules_version: str, seq: int, subject: str, type_: str, rule: str, rank: int) -> str:
    """Return the deterministic id of an action."""
    raw = f"{rules_version}|{seq}|{subject}|{type_}|{rule}|{rank}"
    return "a-" + hashlib.sha256(raw.encode()).hexdigest()[:24]
