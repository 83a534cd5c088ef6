"""The system's headless Chromium driven by Playwright, for the dashboard's browser tests and screenshots.

Playwright's own browser download is not used: ``launch`` starts the ``chromium`` the system package
manager installed (Debian: ``apt-get install chromium``; ``make test`` does it as root), with a fresh
profile, no sandbox (tests run as root in CI) and none of the browser's own network traffic (sync,
updates, QUIC), so that a test talks to the service under test and nothing else.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

#: where the system's Chromium is looked for, in order (``RISKRAIL_CHROMIUM`` first when set)
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")

ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync")


def chromium_path() -> str | None:
    """The system's Chromium executable, or None when none is installed."""
    for path in (os.environ.get("RISKRAIL_CHROMIUM"), *CANDIDATES, shutil.which("chromium")):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


@contextmanager
def launch() -> Iterator[Browser]:
    """A headless Chromium (``playwright.sync_api.Browser``) on a fresh profile, closed on exit; raises
    ``FileNotFoundError`` when no system Chromium is installed."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        raise FileNotFoundError("no Chromium: install the system's (apt-get install chromium) or set RISKRAIL_CHROMIUM")
    with sync_playwright() as pw:  # launch() gives the browser a fresh profile of its own, removed when it closes
        browser = pw.chromium.launch(executable_path=path, args=list(ARGS))
        try:
            yield browser
        finally:
            browser.close()
