"""The admin API's bearer tokens and roles, in process (FastAPI's test client, no socket).

Every mutating route of the published OpenAPI document is tried without a token and with
a read-only one: each is refused and nothing changes. New routes are covered as they are
added, since the list comes from the document itself.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from harness import ROOT

from gateway import cli
from gateway.app import Gateway
from gateway.dialplan import DialplanError, load_dialplan
from gateway.http import auth
from gateway.http.api import create_app

EXAMPLE = ROOT / "dialplans" / "example.yaml"
OPERATOR = "op-3f9c1a7e5b2d4c6e8a0f"
MONITORING = "mon-7d2e9b4a1c6f3e8d5b0a"
ADMIN = """admin:
  public_on_loopback: PUBLIC
  tokens:
    - {name: exploitation, role: operator, token: {secret: admin-operator}}
    - {name: supervision, role: monitoring, token: {secret: admin-monitoring}}
"""
LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("192.0.2.7", 50000)  # TEST-NET-1: never routed, only a client address here


def plan(tmp_path: Path, *, tokens: bool = True, public: bool = False) -> Path:
    """The example dialplan, with admin tokens in its secrets file when asked."""
    shutil.copy(ROOT / "dialplans" / "example.secrets", tmp_path / "example.secrets")
    text = EXAMPLE.read_text()
    if tokens:
        admin = ADMIN.replace("PUBLIC", "true" if public else "false")
        text = text.replace("\nmedia:\n", f"\n{admin}\nmedia:\n", 1)
        with (tmp_path / "example.secrets").open("a") as secrets:
            secrets.write(f"admin-operator: {OPERATOR}\nadmin-monitoring: {MONITORING}\n")
    path = tmp_path / "example.yaml"
    path.write_text(text)
    return path


def gateway(path: Path) -> Gateway:
    args = cli._parser().parse_args(["run", "--dialplan", str(path), "--records", ":memory:"])
    return Gateway(cli.run_settings(args), load_dialplan(path))


def client(gw: Gateway, address: tuple[str, int] = LOOPBACK) -> TestClient:
    return TestClient(create_app(gw), client=address)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def mutating_routes(gw: Gateway) -> list[tuple[str, str]]:
    """(method, path with its parameters filled) of every route that may change state."""
    spec: dict[str, Any] = create_app(gw).openapi()
    values = {
        "station": "caf-1",
        "kind": "source",
        "key": "192.0.2.9",
        "call_id": "6b0-1",
        "partner": "caf",
    }
    found = []
    for path, operations in spec["paths"].items():
        for method in operations:
            if method.upper() not in auth.READ_METHODS:
                concrete = re.sub(r"\{(\w+)\}", lambda m: values[m[1]], path)
                found.append((method.upper(), concrete))
    return found


def snapshot(gw: Gateway) -> tuple[object, ...]:
    """What a mutating route could change: the dialplan, pauses, bans, the clock."""
    desks = {
        sid: st.paused for desk in gw.b2bua.desks.values() for sid, st in desk.stations.items()
    }
    return (gw.dialplan, desks, gw.ua.guard.bans(0.0), gw.clock.offset)


def test_without_tokens_only_loopback_clients_are_served(tmp_path: Path) -> None:
    gw = gateway(plan(tmp_path, tokens=False))
    assert client(gw).get("/api/v1/status").status_code == 200
    far = client(gw, REMOTE)
    refused = far.get("/api/v1/status")
    assert refused.status_code == 403 and "admin.tokens" in refused.json()["detail"]
    assert far.post("/api/v1/reload").status_code == 403
    # The kiosks' own route answers anyone, telling what the asking kiosk may see.
    assert far.get("/api/v1/availability").status_code == 200


def test_every_mutating_route_refuses_no_token_and_a_read_only_one(tmp_path: Path) -> None:
    gw = gateway(plan(tmp_path))
    routes = mutating_routes(gw)
    assert ("POST", "/api/v1/reload") in routes and ("PUT", "/api/v1/clock") in routes
    assert ("DELETE", "/api/v1/bans/source/192.0.2.9") in routes
    before = snapshot(gw)
    http = client(gw)  # loopback grants nothing once tokens exist
    for method, path in routes:
        body = {"now": "2026-12-07T10:00:00+01:00"} if path == "/api/v1/clock" else None
        anonymous = http.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = http.request(method, path, json=body, headers=bearer(OPERATOR[:-1] + "x"))
        assert wrong.status_code == 401, (method, path)
        reader = http.request(method, path, json=body, headers=bearer(MONITORING))
        assert reader.status_code == 403, (method, path, reader.text)
        assert snapshot(gw) == before, (method, path)


def test_roles_read_and_change(tmp_path: Path) -> None:
    gw = gateway(plan(tmp_path))
    http = client(gw, REMOTE)  # tokens work from any address
    assert http.get("/api/v1/status").status_code == 401
    assert http.get("/api/v1/status", headers=bearer(MONITORING)).status_code == 200
    assert http.get("/api/v1/records", headers=bearer(MONITORING)).status_code == 200
    assert http.get("/metrics", headers=bearer(MONITORING)).status_code == 200
    paused = http.post("/api/v1/stations/caf-1/pause", headers=bearer(OPERATOR))
    assert paused.status_code == 200, paused.text
    listed = http.get("/api/v1/stations", headers=bearer(OPERATOR)).json()["stations"]
    assert {s["station"]: s["paused"] for s in listed}["caf-1"] is not None
    assert http.post("/api/v1/stations/caf-1/resume", headers=bearer(OPERATOR)).status_code == 200
    assert http.get("/healthz").status_code == 401  # probes are not public unless configured


def test_probes_may_be_public_on_loopback_only(tmp_path: Path) -> None:
    gw = gateway(plan(tmp_path, public=True))
    local = client(gw)
    assert local.get("/healthz").status_code == 200
    assert local.get("/metrics").status_code == 200
    assert local.get("/api/v1/status").status_code == 401  # the rest still needs a token
    far = client(gw, REMOTE)
    assert far.get("/healthz").status_code == 401 and far.get("/metrics").status_code == 401


def test_the_openapi_document_declares_the_bearer_scheme(tmp_path: Path) -> None:
    spec = create_app(gateway(plan(tmp_path))).openapi()
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]


@pytest.mark.parametrize(
    ("token", "reason"),
    [("short-token", "shorter than 20 characters"), (None, "literal")],
)
def test_weak_or_literal_tokens_are_refused_with_their_line(
    tmp_path: Path, token: str | None, reason: str
) -> None:
    path = plan(tmp_path)
    text = path.read_text()
    if token is None:  # a token written in the dialplan itself, not in the secrets file
        text = text.replace("token: {secret: admin-operator}", 'token: "op-3f9c1a7e5b2d4c6e8a0f"')
    else:
        secrets = (tmp_path / "example.secrets").read_text()
        (tmp_path / "example.secrets").write_text(secrets.replace(OPERATOR, token))
    path.write_text(text)
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "role: operator" in ln)
    with pytest.raises(DialplanError) as caught:
        load_dialplan(path)
    message = str(caught.value)
    assert f"{path}:{line}:" in message and reason in message, message
    assert OPERATOR not in message and "short-token" not in message  # never the secret


def test_bearer_parsing_and_loopback_addresses() -> None:
    assert auth.bearer_token("Bearer abc") == "abc"
    assert auth.bearer_token("bearer   abc ") == "abc"
    assert auth.bearer_token("Basic abc") is None and auth.bearer_token("Bearer ") is None
    assert auth.bearer_token(None) is None
    assert auth.is_loopback("127.0.0.1") and auth.is_loopback("127.9.9.9")
    assert auth.is_loopback("::1") and auth.is_loopback("::ffff:127.0.0.1")
    assert not auth.is_loopback("192.0.2.7") and not auth.is_loopback("testclient")
    assert not auth.is_loopback(None)


def test_a_page_beyond_any_integer_the_store_takes_is_refused(tmp_path: Path) -> None:
    """Found by schemathesis: an offset over 2**63 reached SQLite and failed with a 500."""
    gw = gateway(plan(tmp_path))
    http = client(gw)
    far = http.get("/api/v1/records?offset=9223372036854775808", headers=bearer(MONITORING))
    assert far.status_code == 422, far.text
    last = http.get(f"/api/v1/records?offset={2**31 - 1}", headers=bearer(MONITORING))
    assert last.status_code == 200 and last.json()["records"] == []
