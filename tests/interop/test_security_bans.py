"""Acceptance 1: password guessing gets the source banned, and nobody else.

A raw UDP client on 127.0.0.1 guesses a kiosk's password against a running gateway:
after ``source_failures`` wrong answers the source is banned (logged, counted in
``/metrics``, listed by the admin API), the right password is then refused exactly as
a name nobody has, a kiosk on 127.0.0.2 still completes a call (SIPp's caller and
callee), the ban ends on time, and an operator can lift a ban at once.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import GatewayProcess, explain, free_port, sipp_calls, sipp_station, wait_for

from gateway.sip.auth import build_authorization
from gateway.sip.message import Response, parse_message

pytestmark = pytest.mark.interop

DOMAIN = "visio.bans.example"
PASSWORD = "right-" + uuid.uuid4().hex[:10]
CALLER = "127.0.0.2"  # the legitimate kiosk, on another address
BAN_TIME = 6.0
FAILURES = 5

DIALPLAN = f"""\
version: 1
domain: {DOMAIN}
auth:
  realm: bans
  bans: {{source_failures: {FAILURES}, account_failures: 100, window: 60, duration: {BAN_TIME}}}
media:
  bind: 127.0.0.1
  timeout: 0
kiosks:
  - id: lessay
    site: Maison de services publics de Lessay
    username: kiosk-lessay
    password: {{env: VRGW_BANS_PW}}
    services: all
  - id: sipp-caller
    site: Kiosk on another address
    addresses: [{CALLER}]
    services: [bench]
services:
  - {{name: bench, number: "9999", partner: bench}}
partners:
  - id: bench
    name: Station SIPp
    wrap_up: 0
    stations:
      - {{id: sipp-uas, address: "127.0.0.1:{{uas_port}}", max_calls: 0, keepalive: 0}}
"""


class Registrar:
    """REGISTER over UDP from one loopback address, answering challenges by hand."""

    def __init__(self, gw: GatewayProcess, host: str = "127.0.0.1") -> None:
        self.gw = gw
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]
        self.cseq = 0

    def register(self, user: str, authorization: str | None = None) -> Response:
        return self.send("REGISTER", user, authorization)

    def send(self, method: str, user: str, authorization: str | None = None) -> Response:
        """A REGISTER for ``user``, or an INVITE from ``user`` to ``caf``; its final answer."""
        self.cseq += 1
        call_id = f"bans-{uuid.uuid4().hex}"
        target = f"sip:{DOMAIN}" if method == "REGISTER" else f"sip:caf@{DOMAIN}"
        to = user if method == "REGISTER" else "caf"
        lines = [
            f"{method} {target} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport",
            "Max-Forwards: 70",
            f"From: <sip:{user}@{DOMAIN}>;tag={uuid.uuid4().hex[:8]}",
            f"To: <sip:{to}@{DOMAIN}>",
            f"Call-ID: {call_id}",
            f"CSeq: {self.cseq} {method}",
            f"Contact: <sip:{user}@127.0.0.1:{self.port}>",
            "Expires: 300",
        ]
        if authorization is not None:
            name = "Authorization" if method == "REGISTER" else "Proxy-Authorization"
            lines.append(f"{name}: {authorization}")
        self.sock.sendto(
            ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode(),
            ("127.0.0.1", self.gw.sip_port),
        )
        while True:
            reply = parse_message(self.sock.recv(65535))
            assert isinstance(reply, Response)
            # A 4xx to an earlier INVITE repeats until its ACK, which never comes: skip it.
            if reply.status >= 200 and reply.call_id == call_id:
                return reply

    def login(self, user: str, password: str) -> Response:
        """REGISTER, and answer its challenge (the first one offered) with ``password``."""
        challenge = self.register(user)
        if challenge.status != 401:
            return challenge
        offer = challenge.headers.get_all("www-authenticate")[0]
        answer = build_authorization(
            offer, method="REGISTER", uri=f"sip:{DOMAIN}", username=user, password=password
        )
        return self.register(user, answer)


def shape(response: Response) -> tuple[int, str, list[str]]:
    """What a response says, tags and nonces aside: status, reason, header names."""
    return response.status, response.reason, [name.lower() for name, _ in response.headers.items()]


def sipp_call(
    gw: GatewayProcess, uas_port: int, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Two calls from the legitimate kiosk's address to SIPp's station."""
    with sipp_station(uas_port, tmp_path):
        return sipp_calls(f"127.0.0.1:{gw.sip_port}", "bench", 2, tmp_path, source=CALLER)


def test_guessing_bans_the_source_and_nobody_else(gateway_factory: Any, tmp_path: Path) -> None:
    assert shutil.which("sipp"), "SIPp is missing: run scripts/install --test (sip-tester)"
    uas_port = free_port()
    plan = tmp_path / "bans.yaml"
    plan.write_text(DIALPLAN.replace("{uas_port}", str(uas_port)))
    gw: GatewayProcess = gateway_factory(plan, env={"VRGW_BANS_PW": PASSWORD})
    attacker = Registrar(gw)

    # Before any ban: an existing and an unknown login get the same answers.
    assert shape(attacker.register("kiosk-lessay")) == shape(attacker.register("nobody-here"))
    wrong_known = attacker.login("kiosk-lessay", "guess-1")
    wrong_unknown = attacker.login("nobody-here", "guess-2")
    assert wrong_known.status == wrong_unknown.status == 401
    assert shape(wrong_known) == shape(wrong_unknown)

    # The guessing: the FAILURES-th wrong answer starts the ban.
    for n in range(3, FAILURES + 1):
        assert attacker.login("kiosk-lessay", f"guess-{n}").status == 401
    banned_at = time.monotonic()
    refused = attacker.login("kiosk-lessay", PASSWORD)
    assert refused.status == 403, refused
    assert shape(refused) == shape(attacker.login("nobody-here", PASSWORD))

    bans = gw.http("/api/v1/bans")["bans"]
    assert [(b["kind"], b["key"], b["failures"]) for b in bans] == [
        ("source", "127.0.0.1", FAILURES)
    ]
    assert gw.metric("vrgw_sip_bans_total", kind="source") == 1
    assert gw.metric("vrgw_sip_bans_active", kind="source") == 1
    assert (gw.metric("vrgw_sip_auth_failures_total") or 0) >= FAILURES
    assert (gw.metric("vrgw_sip_auth_refused_banned_total") or 0) >= 2
    assert "banned source 127.0.0.1" in gw.log()

    # A kiosk on another address is not touched.
    run = sipp_call(gw, uas_port, tmp_path)
    assert run.returncode == 0, explain(sipp=run.stderr[-2000:], gateway=gw.log()[-3000:])

    # Still banned shortly before the end; the right password works once it is over.
    left = BAN_TIME - 1.5 - (time.monotonic() - banned_at)
    if left > 0:
        time.sleep(left)
        assert attacker.login("kiosk-lessay", PASSWORD).status == 403
    wait_for(
        lambda: attacker.login("kiosk-lessay", PASSWORD).status == 200,
        timeout=BAN_TIME + 5 - (time.monotonic() - banned_at),
        what="the ban to end",
    )
    assert time.monotonic() - banned_at >= BAN_TIME - 0.5
    assert gw.http("/api/v1/bans")["bans"] == []
    assert wait_for(lambda: "ban of source 127.0.0.1 expired" in gw.log(), 5, "the log line")


def test_an_operator_lifts_a_ban(gateway_factory: Any, tmp_path: Path) -> None:
    plan = tmp_path / "bans.yaml"
    plan.write_text(
        DIALPLAN.replace("{uas_port}", str(free_port())).replace(
            f"duration: {BAN_TIME}", "duration: 3600"
        )
    )
    gw: GatewayProcess = gateway_factory(plan, env={"VRGW_BANS_PW": PASSWORD})
    attacker = Registrar(gw)
    for n in range(FAILURES):
        attacker.login("nobody-here", f"guess-{n}")
    assert attacker.login("kiosk-lessay", PASSWORD).status == 403
    lifted = gw.http("/api/v1/bans/source/127.0.0.1", method="DELETE")
    assert lifted["lifted"]["key"] == "127.0.0.1"
    assert attacker.login("kiosk-lessay", PASSWORD).status == 200
    assert "ban of source 127.0.0.1 lifted by an operator" in gw.log()
    assert gw.metric("vrgw_sip_bans_active", kind="source") == 0


def test_invite_answers_do_not_tell_logins_apart(gateway_factory: Any, tmp_path: Path) -> None:
    """Enumeration (svwar's INVITE scan): an existing and an unknown caller look alike."""
    plan = tmp_path / "bans.yaml"
    plan.write_text(DIALPLAN.replace("{uas_port}", str(free_port())))
    gw: GatewayProcess = gateway_factory(plan, env={"VRGW_BANS_PW": PASSWORD})
    scanner = Registrar(gw)
    known, unknown = scanner.send("INVITE", "kiosk-lessay"), scanner.send("INVITE", "nobody")
    assert known.status == unknown.status == 407
    assert shape(known) == shape(unknown)
    answers = []
    for user, challenge in (("kiosk-lessay", known), ("nobody", unknown)):
        offer = challenge.headers.get_all("proxy-authenticate")[0]
        credentials = build_authorization(
            offer, method="INVITE", uri=f"sip:caf@{DOMAIN}", username=user, password="guess"
        )
        answers.append(scanner.send("INVITE", user, credentials))
    assert answers[0].status == answers[1].status == 407
    assert shape(answers[0]) == shape(answers[1])
