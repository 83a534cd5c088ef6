"""What an input stream entry is, before the engine sees it: an event, a job, or a refusal.

The stream ``P:A:in`` carries entries with a field ``event`` (an event's JSON, from a pipeline, the
API, the MetaTrader 5 feed or the scheduler's clock) or ``job`` (a scheduled job addressed to the
account). ``read_entry`` puts every ``event`` through the validation boundary
(``engine.events.decode``) and applies the service's policy on positions taken over; whatever fails
becomes a ``Refused`` with the reason the dead-letter stream keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import RiskrailError
from engine.events import MAX_EVENT_BYTES, Event, EventError, PositionOpened, decode

#: how much of a refused entry's raw text the dead-letter stream keeps
DEAD_RAW_BYTES = MAX_EVENT_BYTES


@dataclass(frozen=True)
class Refused:
    """An entry that does not reach the engine: why, its raw text (cut to ``DEAD_RAW_BYTES``), and the
    position it named when that is known (a proposal's waiter is told)."""

    reason: str
    raw: bytes | str
    subject: str | None = None


@dataclass(frozen=True)
class Job:
    """A job addressed to the account: scheduled (engine.service.scheduler), or an operator's request
    (``accept_rebalance``); ``args``: the entry's other fields, as text."""

    name: str
    args: dict[str, str] = field(default_factory=dict)


def refuse(fields: dict, reason: str, subject: str | None = None) -> Refused:
    """A refusal of the entry with ``fields`` (its raw event or job kept for the dead letter)."""
    raw = fields.get(b"event", fields.get("event")) or fields.get(b"job") or b""
    return Refused(reason, raw[:DEAD_RAW_BYTES] if isinstance(raw, (bytes, str)) else b"", subject)


def read_entry(fields: dict, *, allow_takeover: bool, broker: Any = None) -> Event | Job | Refused:
    """The event or job of a stream entry, or why it is refused.

    ``allow_takeover``: whether a ``position_opened`` with ``existing: true`` (adopted without the
    pre-trade checks) is accepted; ``broker``: the account's broker, asked for the position's volume
    when it can tell (``position_volume(position_id) -> float | None``).
    """
    if b"job" in fields:
        try:
            return Job(fields[b"job"].decode("utf-8"),
                       {_text(k): _text(v) for k, v in fields.items() if k != b"job"})
        except (UnicodeDecodeError, AttributeError):
            return refuse(fields, "job: expected a job name in UTF-8")
    raw = fields.get(b"event", fields.get("event"))
    if raw is None:
        names = ", ".join(sorted(repr(k.decode("ascii", "replace") if isinstance(k, bytes) else k) for k in fields))[:200]
        return Refused(f"expected the event's JSON in the field 'event', found the fields {names}", b"")
    try:
        event = decode(raw)
    except EventError as exc:
        return refuse(fields, str(exc))
    if isinstance(event, PositionOpened) and event.existing:
        why = takeover_refused(event, allow_takeover, broker)
        if why:
            return refuse(fields, why, event.position_id)
    return event


def takeover_refused(event: PositionOpened, allow: bool, broker: Any = None) -> str | None:
    """Why a position taken over (``existing: true``) is refused, or None: taking over skips the
    pre-trade checks, so it needs the service's ``allow_takeover``, and a connected broker that
    knows its positions must hold it with that volume."""
    if not allow:
        return ("existing: taking over a position without the pre-trade checks is an operator action; "
                "start the service with --allow-takeover (the MetaTrader 5 feed sets it) or propose the position")
    volume_of = getattr(broker, "position_volume", None)
    if volume_of is None:
        return None
    try:
        at_broker = volume_of(event.position_id)
    except RiskrailError as exc:
        return f"existing: the broker could not confirm position {event.position_id!r} ({exc})"
    if at_broker is None:
        return f"existing: the broker has no open position {event.position_id!r}"
    if abs(at_broker - event.volume) > 1e-9 * max(1.0, at_broker):
        return f"existing: volume {event.volume} differs from the {at_broker} lots open at the broker"
    return None


def _text(x: bytes | str) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)
