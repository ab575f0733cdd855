"""Entry policies of the SIP UA core, checked on the wire against a running gateway.

Digest credentials must be computed for the Request-URI they arrive with (RFC 7616
3.4.6), and an INVITE that requires an extension we do not implement gets 420 with
Unsupported (RFC 3261 8.2.2.3).
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

from harness import ROOT, GatewayProcess, example_secrets

from gateway.sip.auth import build_authorization
from gateway.sip.message import Response, parse_message

EXAMPLE = ROOT / "dialplans" / "example.yaml"
SDP = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0\r\n"
)


def invite(port: int, gw_port: int, extra: str = "", cseq: int = 1, call_id: str = "") -> bytes:
    return (
        f"INVITE sip:caf@127.0.0.1:{gw_port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex[:16]};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:kiosk-lessay@visio.manche.example>;tag=pol1\r\n"
        "To: <sip:caf@visio.manche.example>\r\n"
        f"Call-ID: {call_id or uuid.uuid4().hex}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        f"Contact: <sip:kiosk-lessay@127.0.0.1:{port}>\r\n"
        f"{extra}"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n"
    ).encode() + SDP


def final(sock: socket.socket) -> Response:
    while True:
        msg = parse_message(sock.recv(65535))
        assert isinstance(msg, Response)
        if msg.status >= 200:
            return msg


def test_require_100rel_is_refused_with_420(gateway_factory: Any) -> None:
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        sock.sendto(invite(port, gw.sip_port, "Require: 100rel\r\n"), ("127.0.0.1", gw.sip_port))
        response = final(sock)
    assert response.status == 420
    assert response.headers.get("unsupported") == "100rel"


def test_digest_for_another_uri_is_challenged_again(gateway_factory: Any) -> None:
    gw: GatewayProcess = gateway_factory(EXAMPLE)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        port = sock.getsockname()[1]
        call_id = uuid.uuid4().hex
        sock.sendto(invite(port, gw.sip_port, call_id=call_id), ("127.0.0.1", gw.sip_port))
        challenge = final(sock)
        assert challenge.status == 407
        offered = challenge.headers.get_all("proxy-authenticate")
        md5 = next(v for v in offered if "algorithm=MD5" in v)  # a nonce may spell MD5
        attempts = [("sip:cpam@127.0.0.1", 407), (f"sip:caf@127.0.0.1:{gw.sip_port}", 480)]
        for nc, (uri, expected) in enumerate(attempts, 1):
            auth = build_authorization(
                md5,
                method="INVITE",
                uri=uri,
                username="kiosk-lessay",
                password=example_secrets()["kiosk-lessay"],
                nc=nc,  # a client counts up on the same nonce (RFC 7616 3.4)
            )
            cseq = 2 if expected == 407 else 3
            sock.sendto(
                invite(port, gw.sip_port, f"Proxy-Authorization: {auth}\r\n", cseq, call_id),
                ("127.0.0.1", gw.sip_port),
            )
            response = final(sock)
            # The right URI passes authentication; no CAF station is registered: 480.
            assert response.status == expected, (uri, response.status, response.reason)
