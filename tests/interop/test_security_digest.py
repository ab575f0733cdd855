"""Digest per login against a running gateway (RFC 8760, RFC 7616 3.7), over UDP.

A login declared MD5-only is challenged with MD5 alone while the others keep SHA-256
first; a client answering both challenges of one realm in two Authorization headers is
registered; a challenge nobody answers shows in the log and in ``/metrics`` as a likely
algorithm mismatch (after a transaction's lifetime, 64*T1).
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import GatewayProcess, wait_for

from gateway.sip.auth import build_authorization, parse_challenge_params
from gateway.sip.message import Response, parse_message

pytestmark = pytest.mark.interop

DOMAIN = "visio.digest.example"
PASSWORDS = {"kiosk-legacy": "legacy-" + uuid.uuid4().hex[:8], "kiosk-modern": "modern-pw-1"}

DIALPLAN = f"""\
version: 1
domain: {DOMAIN}
auth: {{realm: digest}}
kiosks:
  - id: legacy
    site: Old unit
    username: kiosk-legacy
    password: {{env: VRGW_PW_LEGACY}}
    algorithms: [MD5]
    services: all
  - id: modern
    site: New unit
    username: kiosk-modern
    password: {{env: VRGW_PW_MODERN}}
    services: all
services:
  - {{name: caf, number: "1001", partner: caf}}
partners:
  - id: caf
    name: CAF
    stations:
      - {{id: caf-1, address: "127.0.0.1:9", keepalive: 0}}
"""


def register(gw: GatewayProcess, user: str, *authorizations: str) -> Response:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{DOMAIN}>;tag=d1",
            f"To: <sip:{user}@{DOMAIN}>",
            f"Call-ID: digest-{uuid.uuid4().hex}",
            "CSeq: 1 REGISTER",
            f"Contact: <sip:{user}@127.0.0.1:{port}>",
            *(f"Authorization: {a}" for a in authorizations),
            "Content-Length: 0",
            "",
            "",
        ]
        sock.sendto("\r\n".join(lines).encode(), ("127.0.0.1", gw.sip_port))
        while True:
            reply = parse_message(sock.recv(65535))
            assert isinstance(reply, Response)
            if reply.status >= 200:
                return reply


def offered(response: Response) -> list[str]:
    return [
        parse_challenge_params(v)[1]["algorithm"]
        for v in response.headers.get_all("www-authenticate")
    ]


def answers(challenge: Response, user: str) -> list[str]:
    """One Authorization per challenge, counting up on the shared nonce (RFC 7616 3.4)."""
    return [
        build_authorization(
            value,
            method="REGISTER",
            uri=f"sip:{DOMAIN}",
            username=user,
            password=PASSWORDS[user],
            nc=nc,
        )
        for nc, value in enumerate(challenge.headers.get_all("www-authenticate"), 1)
    ]


@pytest.fixture
def gw(gateway_factory: Any, tmp_path: Path) -> GatewayProcess:
    plan = tmp_path / "digest.yaml"
    plan.write_text(DIALPLAN)
    env = {"VRGW_PW_LEGACY": PASSWORDS["kiosk-legacy"], "VRGW_PW_MODERN": PASSWORDS["kiosk-modern"]}
    result: GatewayProcess = gateway_factory(plan, env=env)
    return result


def test_each_login_gets_its_own_challenges(gw: GatewayProcess) -> None:
    assert offered(register(gw, "kiosk-legacy")) == ["MD5"]
    assert offered(register(gw, "kiosk-modern")) == ["SHA-256", "MD5"]
    assert offered(register(gw, "no-such-login")) == ["SHA-256", "MD5"]
    # The MD5-only login registers with MD5 ...
    (md5,) = answers(register(gw, "kiosk-legacy"), "kiosk-legacy")
    assert register(gw, "kiosk-legacy", md5).status == 200
    # ... while a login with the default list may still pick either.
    _, md5 = answers(register(gw, "kiosk-modern"), "kiosk-modern")
    assert register(gw, "kiosk-modern", md5).status == 200


def test_two_authorization_headers_of_one_realm(gw: GatewayProcess) -> None:
    """RFC 8760 2.4 lets a client answer every challenge; the login's preferred is used."""
    sha, md5 = answers(register(gw, "kiosk-modern"), "kiosk-modern")
    assert register(gw, "kiosk-modern", md5, sha).status == 200
    # An MD5-only login answering a default challenge (SHA-256 and MD5, as an unknown
    # login's) in two headers is verified on its MD5 answer, whatever the order.
    challenge = register(gw, "no-such-login")
    values = [
        build_authorization(
            v,
            method="REGISTER",
            uri=f"sip:{DOMAIN}",
            username="kiosk-legacy",
            password=PASSWORDS["kiosk-legacy"],
            nc=nc,
        )
        for nc, v in enumerate(challenge.headers.get_all("www-authenticate"), 1)
    ]
    assert register(gw, "kiosk-legacy", *values).status == 200
    # A SHA-256 answer alone, on a fresh nonce: refused, SHA-256 is not this login's.
    sha_only = build_authorization(
        register(gw, "no-such-login").headers.get_all("www-authenticate")[0],
        method="REGISTER",
        uri=f"sip:{DOMAIN}",
        username="kiosk-legacy",
        password=PASSWORDS["kiosk-legacy"],
    )
    assert "SHA-256" in sha_only
    assert register(gw, "kiosk-legacy", sha_only).status == 401


def test_an_unanswered_challenge_is_logged_and_counted(gw: GatewayProcess) -> None:
    assert register(gw, "kiosk-modern").status == 401  # and never answered
    assert register(gw, "scanner-guess").status == 401
    wait_for(
        lambda: gw.metric("vrgw_sip_auth_challenges_unanswered_total", login="kiosk-modern") == 1,
        timeout=gw.idle_within(),
        what="the unanswered challenge in /metrics",
    )
    assert gw.metric("vrgw_sip_auth_challenges_unanswered_total", login="unknown") == 1
    log = gw.log()
    assert "kiosk-modern at 127.0.0.1 never answered the digest challenge (SHA-256, MD5)" in log
    assert "scanner-guess at" not in log  # no warning for names nobody has


def test_an_answered_challenge_is_not_counted(gw: GatewayProcess) -> None:
    sha, _ = answers(register(gw, "kiosk-modern"), "kiosk-modern")
    assert register(gw, "kiosk-modern", sha).status == 200
    # A later challenge left unanswered: once it is counted, the first one would be too.
    assert register(gw, "probe-after").status == 401
    wait_for(
        lambda: gw.metric("vrgw_sip_auth_challenges_unanswered_total", login="unknown") == 1,
        timeout=gw.idle_within(),
        what="the probe's unanswered challenge",
    )
    assert gw.metric("vrgw_sip_auth_challenges_unanswered_total", login="kiosk-modern") is None
