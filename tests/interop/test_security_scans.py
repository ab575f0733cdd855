"""Acceptance: SIPVicious' svmap and svwar against the running gateway find nothing
useful (no product, no account, the same answers for existing and unknown logins), and
the scans show in /metrics and in the log."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from harness import GatewayProcess, wait_for
from test_pjsua_call import EXAMPLE

pytestmark = pytest.mark.interop

BIN = Path(sys.executable).parent
# Two real logins of the example dialplan among made-up ones.
DICTIONARY = "admin\nkiosk-lessay\n100\nnobody\nstation-caf-1\n101\noperator\n"


def tool(name: str, *args: str) -> str:
    run = subprocess.run(
        [str(BIN / f"sipvicious_{name}"), *args], capture_output=True, text=True, timeout=120
    )
    return run.stdout + run.stderr


def scanner_register(port: int, gw_port: int, login: str) -> bytes:
    """A REGISTER for ``login`` as svwar sends it (its default User-Agent)."""
    return (
        f"REGISTER sip:127.0.0.1:{gw_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:{login}@127.0.0.1>;tag={uuid.uuid4().hex[:8]}\r\n"
        f"To: <sip:{login}@127.0.0.1>\r\n"
        f"Call-ID: {uuid.uuid4().hex}\r\n"
        "CSeq: 1 REGISTER\r\n"
        f"Contact: <sip:{login}@127.0.0.1:{port}>\r\n"
        "User-Agent: friendly-scanner\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def test_svmap_and_svwar_find_nothing_and_are_seen(gateway_factory: Any, tmp_path: Path) -> None:
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    target = ["127.0.0.1", "-p", str(gw.sip_port)]
    found = tool("svmap", *target)
    # svmap sees a SIP device but learns nothing of it: no Server or User-Agent header.
    row = next(line for line in found.splitlines() if f"127.0.0.1:{gw.sip_port}" in line)
    assert "unknown" in row, found
    words = tmp_path / "logins.txt"
    words.write_text(DICTIONARY)
    for method in ("REGISTER", "INVITE"):
        swept = tool("svwar", "-d", str(words), "-m", method, "--force", *target)
        assert "found nothing" in swept, swept
        for login in ("kiosk-lessay", "station-caf-1"):
            assert f"| {login}" not in swept, swept  # no account in its result table

    def scans() -> float:
        return gw.metric("vrgw_sip_scans_total", kind="user_agent") or 0.0

    assert wait_for(scans, 10, "the scan in /metrics") >= 1
    assert "probable SIP scan from 127.0.0.1: User-Agent 'friendly-scanner'" in gw.log()
    assert gw.http("/healthz")["status"] == "ok"
    # A scanner that guesses a real login leaves its challenge unanswered: once it lapses
    # (a transaction's lifetime), that must not read as a unit lacking a digest algorithm.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sock.sendto(scanner_register(sock.getsockname()[1], gw.sip_port, "kiosk-lessay"),
                    ("127.0.0.1", gw.sip_port))  # fmt: skip
        assert b"SIP/2.0 401" in sock.recv(65535)
    time.sleep(64 * gw.sip_t1 + 1.0)
    assert gw.http("/healthz")["status"] == "ok"
    assert "never answered the digest challenge" not in gw.log(), gw.log()[-3000:]
    assert not gw.metric("vrgw_sip_auth_challenges_unanswered_total", login="kiosk-lessay")
