"""Trading sessions of rules/instruments.yaml: clock.session is the first session open at an event's
time, in the session's own time zone (daylight saving included), across midnight when its close is
at or before its open."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from ruamel.yaml import YAML

from engine.config.models.instruments import Instruments

ROOT = Path(__file__).resolve().parents[2]


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


SESSIONS = Instruments.model_validate({"sessions": [
    {"name": "london", "timezone": "Europe/London", "open": "08:00", "close": "17:00"},
    {"name": "new_york", "timezone": "America/New_York", "open": "08:00", "close": "17:00"},
    {"name": "sydney", "timezone": "Australia/Sydney", "open": "07:00", "close": "16:00"},
    {"name": "late", "timezone": "UTC", "open": "22:00", "close": "02:00", "days": ["fri"]},
]})


@pytest.mark.parametrize(("utc", "session"), [
    ("2019-02-04T07:59:00", "closed"),  # London opens at 08:00 GMT; Sydney (UTC+11 in February) closed at 18:59
    ("2019-02-04T08:00:00", "london"),
    ("2019-07-04T07:00:00", "london"),  # 08:00 BST
    ("2019-02-04T14:00:00", "london"),  # London and New York both open: the first in the file wins
    ("2019-02-04T21:30:00", "new_york"),  # 16:30 EST
    ("2019-02-08T23:00:00", "late"),  # Friday 23:00, a session that runs past midnight
    ("2019-02-09T01:00:00", "late"),  # Saturday 01:00: still Friday's session
    ("2019-02-09T03:00:00", "closed"),
    ("2019-02-03T22:00:00", "sydney"),  # Sunday in UTC, Monday 09:00 in Sydney: the local day counts
])
def test_the_session_of_an_instant_is_the_first_open_one_in_its_own_time_zone(utc: str, session: str) -> None:
    assert SESSIONS.session_at(ms(utc)) == session


def test_the_shipped_sessions_name_the_london_new_york_overlap_first() -> None:
    shipped = Instruments.model_validate(YAML(typ="safe").load((ROOT / "rules" / "instruments.yaml").read_text()))
    assert shipped.session_at(ms("2019-02-04T14:00:00")) == "london_new_york"  # 09:00 in New York
    assert shipped.session_at(ms("2019-02-04T10:00:00")) == "london"
    assert shipped.session_at(ms("2019-02-04T19:00:00")) == "new_york"
    assert shipped.session_at(ms("2019-02-04T03:00:00")) == "tokyo"  # 12:00 in Tokyo
    assert shipped.session_at(ms("2019-02-09T12:00:00")) == "closed"  # Saturday


@pytest.mark.parametrize(("session", "message"), [
    ({"name": "x", "timezone": "Mars/Olympus", "open": "08:00", "close": "17:00"}, "IANA time zone"),
    ({"name": "x", "timezone": "UTC", "open": "8:00", "close": "17:00"}, "pattern"),
    ({"name": "x", "timezone": "UTC", "open": "08:00", "close": "24:00"}, "pattern"),
    ({"name": "x", "timezone": "UTC", "open": "08:00", "close": "17:00", "days": ["funday"]}, "mon"),
])
def test_a_bad_session_is_refused_with_what_was_found(session: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Instruments.model_validate({"sessions": [session]})


def test_a_session_name_given_twice_is_refused() -> None:
    twice = {"name": "x", "timezone": "UTC", "open": "08:00", "close": "17:00"}
    with pytest.raises(ValidationError, match="x more than once"):
        Instruments.model_validate({"sessions": [twice, twice]})
