"""Hostile HTTP input never stops risk management: body limits, slow and idle clients, paths, 5xx.

Every test talks to a real uvicorn (``Api``) over real sockets on 127.0.0.1, configured as `riskrail
run` configures it; where a limit would take too long at its default, the test shortens it.
"""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from engine.service.limits import KIB, MIB, Limits
from tests.service.conftest import Api, start_service, wait_for

TOKEN = "secret-token"
AUTH = f"Authorization: Bearer {TOKEN}\r\n"


@pytest.fixture(scope="module")
def service(module_redis, module_scalping):
    """One service for the module: each test refuses or answers requests, none changes what another reads."""
    svc = start_service(module_redis, module_scalping)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def api(service):
    a = Api(service, TOKEN)
    yield a
    a.close()


def raw(api: Api, head: str, body: bytes = b"", timeout: float = 10.0) -> socket.socket:
    """A connection that has sent ``head`` (request line and headers, without the blank line) and ``body``."""
    s = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
    s.sendall(head.encode() + b"\r\n" + body)
    return s


def response(s: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response up to the end of the connection (every refusal closes it)."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def closed_by_server(s: socket.socket) -> bool:
    """Block until the server closes ``s`` (EOF); False if it sends anything instead."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


# --- body limits ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["", AUTH], ids=["anonymous", "authenticated"])
def test_a_50_mb_proposal_is_refused_with_413_before_its_body_is_read(api, auth) -> None:
    s = raw(api, f"POST /api/positions HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {50 * MIB}\r\n")
    with s:  # not one byte of the body was sent: the answer cannot have waited for it
        status, headers, body = response(s)
    assert status == 413 and headers["connection"] == "close"
    assert "at most 65536" in json.loads(body)["detail"]


def test_the_rule_routes_take_larger_bodies_up_to_their_own_limits(api) -> None:
    rule = b"# padding\n" * (700 * KIB // 10)  # 700 KiB: above the default, under the validate limit
    r = api.client.post("/api/rules/validate", params={"kind": "strategy"}, content=rule)
    assert r.status_code == 422 and r.json()["kind"] == "strategy"  # read and validated (an empty strategy)
    r = api.client.post("/api/rules/validate", params={"kind": "strategy"}, content=b"#" * (MIB + 1))
    assert r.status_code == 413
    r = api.client.post("/api/positions", content=b"{" + b" " * (64 * KIB) + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413
    plan = json.dumps({"files": {"strategies/x.yaml": "#" * (3 * MIB)}}).encode()
    assert api.client.post("/api/rules/plan", content=plan, headers={"content-type": "application/json"}).status_code != 413
    plan = json.dumps({"files": {"strategies/x.yaml": "#" * (4 * MIB)}}).encode()
    assert api.client.post("/api/rules/plan", content=plan, headers={"content-type": "application/json"}).status_code == 413


def test_a_chunked_body_is_counted_as_it_arrives_and_cut_off_at_the_limit(api) -> None:
    s = raw(api, f"POST /api/positions HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n")
    with s:
        chunk = b"%x\r\n%s\r\n" % (16 * KIB, b" " * (16 * KIB))
        s.sendall(b"".join([chunk] * 6))  # 96 KiB, and no end: only the limit can end this request
        status, headers, body = response(s)
    assert status == 413 and headers["connection"] == "close"
    assert "more than 65536 bytes" in json.loads(body)["detail"]
    r = api.client.post("/api/rules/validate", params={"kind": "strategy"}, content=iter([b"#" * (256 * KIB)] * 5))
    assert r.status_code == 413
    # without a token, a route that reads its body itself answers 401 without reading it
    for path in ("/api/rules/validate", "/api/rules/plan"):
        assert api.anonymous.post(path, content=iter([b"#" * (256 * KIB)] * 5)).status_code == 401


def test_a_body_that_trickles_in_is_answered_408(service) -> None:
    api = Api(service, TOKEN, Limits(body_timeout=0.5))
    try:
        s = raw(api, f"POST /api/rules/validate?kind=strategy HTTP/1.1\r\nHost: x\r\n{AUTH}Content-Length: 100\r\n", b"name: x\n")
        with s:
            status, headers, body = response(s)
        assert status == 408 and headers["connection"] == "close" and "0.5 s" in json.loads(body)["detail"]
    finally:
        api.close()


def test_headers_that_trickle_in_are_answered_408_and_too_many_are_refused(service) -> None:
    api = Api(service, TOKEN, Limits(header_timeout=0.5))
    try:
        with raw(api, "GET /healthz HTTP/1.1\r\nHost: x") as s:  # the head never ends
            status, headers, _ = response(s)
        assert status == 408 and headers["connection"] == "close"
        big = {"X-Filler": "x" * (20 * KIB)}
        assert api.anonymous.get("/healthz", headers=big).status_code == 431
        assert api.anonymous.get("/healthz").status_code == 200
    finally:
        api.close()


# --- connections -------------------------------------------------------------------------------------


def test_idle_connections_do_not_stop_the_api_and_the_server_closes_them(service) -> None:
    api = Api(service, TOKEN, Limits(keep_alive=1.0))
    idle = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection(("127.0.0.1", api.port), timeout=15))
        assert api.anonymous.get("/healthz").status_code == 200
        with httpx.Client(base_url=api.base) as kept:  # a keep-alive connection after its response
            assert kept.get("/healthz").status_code == 200
            for s in idle:
                assert closed_by_server(s)
            wait_for(lambda: not api.server.server_state.connections, 15, "the server to close every idle connection")
    finally:
        for s in idle:
            s.close()
        api.close()


def test_at_the_connection_cap_the_longest_idle_connection_makes_room(service) -> None:
    api = Api(service, TOKEN, Limits(max_connections=20, keep_alive=60))
    idle = []
    try:
        for _ in range(50):
            idle.append(socket.create_connection(("127.0.0.1", api.port), timeout=15))
        assert api.anonymous.get("/healthz").status_code == 200
        wait_for(lambda: len(api.server.server_state.connections) <= 20, 10, "the server to hold at most 20 connections")
        assert all(closed_by_server(s) for s in idle[:30])  # the oldest made room for the newer ones
    finally:
        for s in idle:
            s.close()
        api.close()


def test_the_server_config_carries_every_limit() -> None:
    from engine.service.limits import server_config

    lim = Limits(max_connections=100, backlog=64, keep_alive=3, header_bytes=8 * KIB)
    cfg = server_config(object(), "127.0.0.1", 0, lim)
    assert (cfg.limit_concurrency, cfg.backlog, cfg.timeout_keep_alive, cfg.h11_max_incomplete_event_size) == (101, 64, 3, 8 * KIB)
    assert lim.body_limit("POST", "/api/rules/plan") == 4 * MIB and lim.body_limit("POST", "/api/positions") == 64 * KIB


def test_the_connection_cap_leaves_room_for_redis_and_files_under_a_low_open_file_limit(monkeypatch) -> None:
    import resource

    monkeypatch.setattr(resource, "getrlimit", lambda what: (600, 4096))
    assert Limits().connections() == 600 - 256
    monkeypatch.setattr(resource, "getrlimit", lambda what: (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert Limits().connections() == 512


# --- the event loop stays free ---------------------------------------------------------------------------


def test_health_answers_while_a_rule_file_is_being_validated(api, monkeypatch) -> None:
    import engine.config.load as load

    entered, release = threading.Event(), threading.Event()
    real = load.validate_text

    def slow(*args, **kwargs):
        entered.set()
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(load, "validate_text", slow)
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(r=api.client.post("/api/rules/validate", params={"kind": "strategy"},
                                                                        content=b"name: x\n")))
    t.start()
    try:
        assert entered.wait(30)
        assert api.anonymous.get("/healthz", timeout=5).status_code == 200  # while the validation holds its thread
    finally:
        release.set()
        t.join(30)
    assert result["r"].status_code == 422


# --- ?file= names, never opens --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["/dev/zero", "/proc/self/fd/0", "../secrets.yaml", "strategies/../../etc/passwd",
                                  "C:/x.yaml", "\\\\server\\share.yaml", "a\x00b"])
def test_validate_refuses_a_file_name_that_is_not_a_relative_path(api, name) -> None:
    r = api.client.post("/api/rules/validate", params={"file": name}, content=b"name: x\n")
    assert r.status_code == 422 and "relative name" in r.json()["detail"]


def test_validate_tells_the_kind_from_the_name_and_the_modeline_never_from_the_disk(api, tmp_path, monkeypatch,
                                                                                   module_scalping) -> None:
    (tmp_path / "mystery.yaml").write_text("# yaml-language-server: $schema=../schemas/limits.schema.json\n")
    monkeypatch.chdir(tmp_path)  # a file of that name lies where the server would look: it must not look
    r = api.client.post("/api/rules/validate", params={"file": "mystery.yaml"}, content=b"max_daily_loss: 0.02\n")
    assert r.status_code == 422 and "kind=" in r.json()["detail"]
    limits = (module_scalping / "rules" / "limits.yaml").read_text()
    modeline = "# yaml-language-server: $schema=../schemas/limits.schema.json\n"
    r = api.client.post("/api/rules/validate", params={"file": "mystery.yaml"}, content=modeline + limits)
    assert r.status_code == 200 and r.json()["kind"] == "limits"
    r = api.client.post("/api/rules/validate", params={"file": "rules/limits.yaml"}, content=limits)
    assert r.status_code == 200 and r.json()["kind"] == "limits"
    r = api.client.post("/api/rules/validate", params={"kind": "strategy"}, content=b"\xff\xfe name")
    assert r.status_code == 422 and "UTF-8" in r.json()["detail"]


# --- every 5xx is a bug -----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"[1, 2]", b'"files"', b"", b"{", b"null",
    b'{"files": {"strategies/x.yaml": 5}}',
    b'{"files": {"strategies/x.yaml": "name: x"}, "x": NaN}',
    b'{"files": {"strategies/x.yaml": NaN}}',
    b'{"files": ' + b"9" * 5000 + b"}",
    b'{"files": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"files": []}',
], ids=["list", "string", "empty", "broken", "null", "not-text", "extra-nan", "nan", "huge-int", "deep", "files-list"])
def test_a_malformed_plan_request_is_a_4xx(api, body) -> None:
    r = api.client.post("/api/rules/plan", content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


@pytest.mark.parametrize("path, params", [
    ("/api/actions", {"limit": 0}), ("/api/actions", {"limit": 10**30}), ("/api/actions", {"limit": "nan"}),
    ("/api/actions", {"since": "abc"}), ("/api/actions", {"since": "99999999999999999999999-0"}),
    ("/api/actions", {"since": "18446744073709551616-0"}), ("/api/actions", {"account": "nope"}),
    ("/api/risk-management/status", {"account": "nope"}), ("/api/positions", {"account": "x" * 5000}),
    ("/api/position-management/portfolio-summary", {"account": "nope"}),
])
def test_query_parameters_out_of_range_are_a_4xx(api, path, params) -> None:
    r = api.client.get(path, params=params)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])


def test_an_account_this_process_does_not_run_is_a_404_on_every_route_that_takes_one(api) -> None:
    proposal = {"position_id": "N1", "symbol": "EURUSD", "strategy_type": "scalp_trend", "action": "BUY", "volume": 0.1,
                "entry_price": 1.1457}
    r = api.client.post("/api/positions", params={"account": "nope"}, json=proposal)
    assert r.status_code == 404 and "not run by this process" in r.json()["detail"]
    for path in ("/api/positions", "/api/positions/N1", "/api/actions", "/api/risk-management/status",
                 "/api/position-management/optimization-results"):
        assert api.client.get(path, params={"account": "nope"}).status_code == 404, path


def test_a_bug_is_answered_500_with_an_error_id_and_no_traceback(api, monkeypatch, caplog) -> None:
    from engine.service import views

    def broken(engine):
        raise ZeroDivisionError("internal detail that stays in the log")

    monkeypatch.setattr(views, "risk_status", broken)
    r = api.client.get("/api/risk-management/status")
    assert r.status_code == 500
    body = r.json()
    assert set(body) == {"type", "title", "status", "detail", "instance", "errors", "error_id"} and body["status"] == 500
    assert r.headers["content-type"] == "application/problem+json" and body["error_id"] in body["detail"]
    assert "internal detail" not in r.text and "Traceback" not in r.text
    logged = [rec for rec in caplog.records if body["error_id"] in rec.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert api.client.get("/healthz").status_code == 200
