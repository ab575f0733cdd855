"""Acceptance 7: torture messages of the RFC 4475 kind, sent over UDP to a running gateway.

Grouped as RFC 4475 groups them, with messages written here for this gateway (none is
copied from the RFC): in 3.1.1, requests that look odd but follow RFC 3261's grammar,
each of which must get a meaningful final answer (the status RFC 3261 asks for: 200 to
an OPTIONS, 501 to a method nobody implements, 416 to a Request-URI scheme the gateway
does not serve, a digest challenge where credentials are needed); in 3.1.2, malformed
ones, each of which must get a 400 (505 for an unknown version) or, when no response
could be matched by the sender, silence, and never a 2xx. Afterwards the gateway must be
alive and put a normal call through (SIPp's caller and callee).
"""

from __future__ import annotations

import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from harness import (
    RFC_T1,
    GatewayProcess,
    explain,
    free_port,
    sipp_calls,
    sipp_station,
    start_gateway,
    stop_gateway,
    wait_for,
)

from gateway.sip.errors import SipParseError
from gateway.sip.message import Response, parse_message

pytestmark = pytest.mark.interop

DOMAIN = "visio.torture.example"
PASSWORD = "torture-" + uuid.uuid4().hex[:8]
CALLER = "127.0.0.2"  # the kiosk of the normal call afterwards, trusted by address

DIALPLAN = f"""\
version: 1
domain: {DOMAIN}
auth:
  realm: torture
media:
  bind: 127.0.0.1
  timeout: 0
kiosks:
  - id: lessay
    site: Maison de services publics de Lessay
    username: kiosk-lessay
    password: {{env: VRGW_TORTURE_PW}}
    services: all
  - id: sipp-caller
    site: SIPp kiosk after the torture
    addresses: [{CALLER}]
    services: [bench]
services:
  - {{name: caf, number: "1001", partner: bench}}
  - {{name: bench, number: "9999", partner: bench}}
partners:
  - id: bench
    name: Station SIPp
    wrap_up: 0
    stations:
      - {{id: sipp-uas, address: "127.0.0.1:{{uas_port}}", max_calls: 0, keepalive: 0}}
"""


@dataclass(frozen=True)
class Case:
    """One torture message: its text (``{port}``, ``{branch}``, ``{call_id}`` filled in at
    send time) and the final statuses allowed (``None`` in them: silence allowed)."""

    text: str
    expected: frozenset[int | None]


def case(text: str, *expected: int | None) -> Case:
    # Messages are written with LF for readability; SIP wants CRLF (7).
    head, sep, body = text.partition("\n\n")
    wire = head.replace("\n", "\r\n") + ("\r\n\r\n" + body if sep else "\r\n\r\n")
    return Case(wire, frozenset(expected))


def headers(method: str = "OPTIONS", *, uri: str = f"sip:{DOMAIN}", cseq: str = "") -> str:
    """The usual header block of a well-formed request, for cases that change one thing."""
    return (
        f"{method} {uri} SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\n"
        "Max-Forwards: 70\n"
        f"From: <sip:kiosk-lessay@{DOMAIN}>;tag=t0rture\n"
        f"To: <sip:{DOMAIN}>\n"
        "Call-ID: {call_id}\n"
        f"CSeq: {cseq or '17 ' + method}\n"
    )


# -- RFC 4475 3.1.1: valid messages --------------------------------------------------------

VALID = {
    # Compact names, odd case, LWS around colons and separators, a folded header, an
    # escaped user and a quoted display name with an escaped quote: all legal (7.3, 25.1).
    "tortuous-spacing": case(
        "OPTIONS sip:%6b%69osk@" + DOMAIN + " SIP/2.0\n"
        "v  :  SIP / 2.0 / UDP   127.0.0.1 : {port} ;  branch = {branch} ; rport\n"
        "mAX-fORWARDS :   70\n"
        'f:  "Mairie \\"annexe\\" de Lessay"   <sip:kiosk-lessay@' + DOMAIN + ">  ;tag = ab1\n"
        "t:\n  <sip:" + DOMAIN + ">\n"
        "i :{call_id}\n"
        "CSeq  :  8\n   OPTIONS\n"
        "X-Unknown-Header: ~!*_+`' ;;; ,,,\n"
        "Subject:\n"
        "l : 0\n\n",
        200,
    ),
    # A method token made of every legal token character, and a Request-URI whose user
    # and password use the reserved characters 25.1 allows there: nobody implements such
    # a method, so 501 (8.2.1), with the CSeq exactly as sent.
    "unusual-method-and-uri": case(
        "Odd.Method-4475!%*_+`'~ sip:a.user_(x)!~*'&=+$,;?/:pw&=+$,~*!@"
        + DOMAIN
        + ";odd-param=v~1 SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\n"
        "Max-Forwards: 70\n"
        f"From: <sip:kiosk-lessay@{DOMAIN}>;tag=m1\n"
        f"To: <sip:agent@{DOMAIN}>\n"
        "Call-ID: {call_id}\n"
        "CSeq: 3 Odd.Method-4475!%*_+`'~\n"
        "Content-Length: 0\n\n",
        501,
        405,
    ),
    # A Request-URI scheme the gateway does not serve: 416 (8.2.2.1).
    "unknown-request-uri-scheme": case(
        headers(uri=f"urn:service:caf.{DOMAIN}") + "Content-Length: 0\n\n", 416
    ),
    # An unknown method with a body of an unknown type: still 501, never a 415 first.
    "unknown-method-with-body": case(
        headers("FROBNICATE") + "Content-Type: text/x-nothing\nContent-Length: 5\n\nabcde", 501
    ),
    "telephone-subscriber-user": case(
        headers(uri=f"sip:+33233000000;phone-context=+33@{DOMAIN};user=phone")
        + "Content-Length: 0\n\n",
        200,
    ),
    "tel-request-uri": case(headers(uri="tel:+33-2-33-00-00-00") + "Content-Length: 0\n\n", 200),
    "escaped-nul-in-user": case(
        headers(uri=f"sip:kiosk%00lessay@{DOMAIN}") + "Content-Length: 0\n\n", 200
    ),
    "rfc1123-date-in-gmt": case(
        headers() + "Date: Fri, 04 Dec 2026 14:00:00 GMT\nContent-Length: 0\n\n", 200
    ),
    # URI headers are legal inside angle brackets in a Contact (19.1.1 table 1).
    "bracketed-contact-with-headers": case(
        headers()
        + "Contact: <sip:kiosk-lessay@127.0.0.1:{port};transport=udp?Subject=hi>\n"
        + "Content-Length: 0\n\n",
        200,
    ),
    # Without brackets the parameters belong to the header, not the URI (20.10): legal.
    "unbracketed-contact-with-params": case(
        headers() + "Contact: sip:kiosk-lessay@127.0.0.1:{port};expires=60;q=0.5\n"
        "Content-Length: 0\n\n",
        200,
    ),
    # Token display names, several words (25.1: *(token LWS)).
    "token-display-names": case(
        "OPTIONS sip:" + DOMAIN + " SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport\n"
        "Max-Forwards: 70\n"
        f"From: Mairie de Lessay <sip:kiosk-lessay@{DOMAIN}>;tag=dn1\n"
        f"To: Accueil-CAF.Manche <sip:caf@{DOMAIN}>\n"
        "Call-ID: {call_id}\n"
        "CSeq: 1 OPTIONS\n\n",
        200,
    ),
    "many-vias-on-one-line": case(
        "OPTIONS sip:" + DOMAIN + " SIP/2.0\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch};rport, "
        + ", ".join(f"SIP/2.0/UDP 127.0.0.1:{5100 + i};branch=z9hG4bKhop{i}" for i in range(40))
        + "\nMax-Forwards: 70\n"
        f"From: <sip:kiosk-lessay@{DOMAIN}>;tag=v1\n"
        f"To: <sip:{DOMAIN}>\n"
        "Call-ID: {call_id}\n"
        "CSeq: 1 OPTIONS\n"
        "Subject: " + "x" * 3000 + "\n"
        "Content-Length: 0\n\n",
        200,
    ),
    "options-with-max-forwards-zero": case(
        headers().replace("Max-Forwards: 70", "Max-Forwards: 0") + "Content-Length: 0\n\n", 200
    ),
    # Needs credentials: a digest challenge is the meaningful answer (22).
    "register-without-credentials": case(
        headers("REGISTER", uri=f"sip:{DOMAIN}").replace(
            f"To: <sip:{DOMAIN}>", f"To: <sip:kiosk-lessay@{DOMAIN}>"
        )
        + "Contact: <sip:kiosk-lessay@127.0.0.1:{port}>\nExpires: 3600\nContent-Length: 0\n\n",
        401,
    ),
    "invite-without-credentials": case(
        headers("INVITE", uri=f"sip:caf@{DOMAIN}")
        + "Contact: <sip:kiosk-lessay@127.0.0.1:{port}>\nContent-Length: 0\n\n",
        407,
    ),
    "lower-case-sip-version-token-elsewhere": case(
        headers() + "Accept: application/SDP;Q=0.9, */*\nSupported: ,timer,,\n"
        "Content-Length: 0\n\n",
        200,
    ),
}

# -- RFC 4475 3.1.2: invalid messages ------------------------------------------------------

INVALID = {
    "extraneous-via-separators": case(
        headers().replace(";rport\n", ";;,;,,\n") + "Content-Length: 0\n\n", 400, None
    ),
    "content-length-past-the-body": case(headers() + "Content-Length: 120\n\nshort", 400),
    "negative-content-length": case(headers() + "Content-Length: -5\n\n", 400),
    "cseq-too-large": case(headers(cseq="4294967296 OPTIONS") + "Content-Length: 0\n\n", 400, None),
    "max-forwards-too-large": case(
        headers().replace("Max-Forwards: 70", "Max-Forwards: 300") + "Content-Length: 0\n\n", 400
    ),
    "expires-too-large": case(headers() + "Expires: 99999999999\nContent-Length: 0\n\n", 400),
    "unterminated-quoted-display-name": case(
        headers().replace("From: <", 'From: "Mairie <') + "Content-Length: 0\n\n", 400, None
    ),
    "request-uri-in-angle-brackets": case(
        headers(uri=f"<sip:{DOMAIN}>") + "Content-Length: 0\n\n", 400
    ),
    "space-inside-request-uri": case(
        headers(uri=f"sip:{DOMAIN}; lr") + "Content-Length: 0\n\n", 400
    ),
    "two-spaces-in-request-line": case(
        headers().replace(f"OPTIONS sip:{DOMAIN} ", f"OPTIONS  sip:{DOMAIN}  ")
        + "Content-Length: 0\n\n",
        400,
    ),
    "space-after-version": case(
        headers().replace(" SIP/2.0\n", " SIP/2.0 \n", 1) + "Content-Length: 0\n\n", 400
    ),
    # URI headers are not allowed in a Request-URI (19.1.1, table 1).
    "escaped-headers-in-request-uri": case(
        headers("INVITE", uri=f"sip:caf@{DOMAIN}?Route=%3Csip:{DOMAIN}%3E")
        + "Contact: <sip:kiosk-lessay@127.0.0.1:{port}>\nContent-Length: 0\n\n",
        400,
    ),
    # SIP-date is the RFC 1123 form and always GMT (20.17).
    "date-not-in-gmt": case(
        headers("INVITE", uri=f"sip:caf@{DOMAIN}") + "Date: Fri, 04 Dec 2026 15:00:00 CET\n"
        "Contact: <sip:kiosk-lessay@127.0.0.1:{port}>\nContent-Length: 0\n\n",
        400,
    ),
    "date-not-rfc1123": case(
        headers() + "Date: 2026-12-04T14:00:00Z\nContent-Length: 0\n\n",
        400,
    ),
    # Unbracketed, the "?" of URI headers cannot be told from the value (20, 20.10).
    "unbracketed-contact-with-uri-headers": case(
        headers("REGISTER").replace(f"To: <sip:{DOMAIN}>", f"To: <sip:kiosk-lessay@{DOMAIN}>")
        + "Contact: sip:kiosk-lessay@127.0.0.1:{port}?Route=%3Csip:"
        + DOMAIN
        + "%3E\nContent-Length: 0\n\n",
        400,
    ),
    # An addr-spec has no white space inside (25.1).
    "spaces-inside-addr-spec": case(
        headers().replace(f"To: <sip:{DOMAIN}>", f"To: <sip:agent @ {DOMAIN}>")
        + "Content-Length: 0\n\n",
        400,
        None,
    ),
    "spaces-inside-unbracketed-addr-spec": case(
        headers().replace(f"To: <sip:{DOMAIN}>", f"To: sip:agent @{DOMAIN}")
        + "Content-Length: 0\n\n",
        400,
        None,
    ),
    # A display name is tokens or one quoted-string (25.1): "@", ":" and "," are not tokens.
    "non-token-display-name": case(
        headers().replace("From: <", "From: Mairie@Lessay: accueil <") + "Content-Length: 0\n\n",
        400,
        None,
    ),
    "unknown-sip-version": case(
        headers().replace(" SIP/2.0\n", " SIP/7.0\n", 1) + "Content-Length: 0\n\n", 505
    ),
    "cseq-method-mismatch": case(headers(cseq="17 INVITE") + "Content-Length: 0\n\n", 400),
    "unknown-method-cseq-mismatch": case(
        headers("NEWTHING", cseq="17 OTHERTHING") + "Content-Length: 0\n\n", 400
    ),
    "missing-call-id": case(
        headers().replace("Call-ID: {call_id}\n", "") + "Content-Length: 0\n\n", None
    ),
    "nul-in-a-header": case(headers() + "Subject: a\x00b\nContent-Length: 0\n\n", 400),
    # Responses are never answered: silence.
    "overlarge-status-code": case(
        "SIP/2.0 4294967301 Huge\n"
        "Via: SIP/2.0/UDP 127.0.0.1:{port};branch={branch}\n"
        f"From: <sip:kiosk-lessay@{DOMAIN}>;tag=r1\n"
        f"To: <sip:{DOMAIN}>;tag=r2\n"
        "Call-ID: {call_id}\n"
        "CSeq: 1 OPTIONS\n"
        "Content-Length: 0\n\n",
        None,
    ),
}


def fill(c: Case, port: int, branch: str, call_id: str) -> bytes:
    text = c.text.replace("{port}", str(port)).replace("{branch}", branch)
    return text.replace("{call_id}", call_id).encode()


# The Call-ID of an exchange, as the gateway's answers carry it back.
CALL_ID = re.compile(
    rb"^(?:Call-ID|i)[ \t]*:[ \t]*(torture-[0-9a-f]+)", re.IGNORECASE | re.MULTILINE
)


class Client:
    """A UDP socket on loopback that sends one message and reads the final answer to it."""

    def __init__(self, gw: GatewayProcess) -> None:
        self.gw = gw
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.earlier: dict[str, tuple[Case, str]] = {}  # by Call-ID: the case, its branch
        self.late_and_wrong: list[bytes] = []  # late finals no case allows (fixture checks)

    def exchange(self, c: Case) -> tuple[int | None, list[bytes]]:
        """The final status answered (None for silence) and every datagram received for
        this message; an answer to an earlier one, late, is set aside (see ``late``)."""
        call_id = f"torture-{uuid.uuid4().hex}"
        branch = f"z9hG4bK{uuid.uuid4().hex[:16]}"
        self.earlier[call_id] = (c, branch)
        self.sock.sendto(fill(c, self.port, branch, call_id), ("127.0.0.1", self.gw.sip_port))
        seen: list[bytes] = []
        # A response to a request without Call-ID cannot be matched: listen for anything.
        # An answer is awaited up to 5 s (a loaded run's gateway took more than one), and
        # silence, where a case allows it, 0.6 s.
        wait = 5.0 if None not in c.expected else 0.6
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            found = CALL_ID.search(data)
            if found is not None and (other := found.group(1).decode()) != call_id:
                self.late(data, other)
                continue
            seen.append(data)
            try:
                reply = parse_message(data)
            except SipParseError:
                continue
            if isinstance(reply, Response) and reply.status >= 200 and call_id in data.decode():
                self.ack(reply, c, branch, call_id)
                return reply.status, seen
        return None, seen

    def late(self, data: bytes, call_id: str) -> None:
        """An answer to an earlier exchange, after its wait was over (nine workers made the
        gateway that slow, and the next cases read it as theirs): ACKed if it is a final
        response to an INVITE, and kept if its case does not allow its status."""
        if call_id not in self.earlier:
            return
        c, branch = self.earlier[call_id]
        try:
            reply = parse_message(data)
        except SipParseError:
            return
        if isinstance(reply, Response) and reply.status >= 200:
            self.ack(reply, c, branch, call_id)
            if reply.status not in c.expected:
                self.late_and_wrong.append(data)

    def ack(self, reply: Response, c: Case, branch: str, call_id: str) -> None:
        """ACK a final response to an INVITE (17.1.1.3), so that it is not repeated."""
        if reply.cseq.method != "INVITE":
            return
        lines = [
            f"ACK sip:caf@{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport",
            "Max-Forwards: 70",
            f"From: {reply.headers.get('from')}",
            f"To: {reply.headers.get('to')}",
            f"Call-ID: {call_id}",
            f"CSeq: {reply.cseq.seq} ACK",
            "Content-Length: 0",
            "",
            "",
        ]
        self.sock.sendto("\r\n".join(lines).encode(), ("127.0.0.1", self.gw.sip_port))

    def options_answered(self) -> bool:
        status, _ = self.exchange(case(headers() + "Content-Length: 0\n\n", 200))
        return status == 200


@dataclass
class Torture:
    gw: GatewayProcess
    client: Client
    uas_port: int


@pytest.fixture(scope="module")
def torture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Torture]:
    assert shutil.which("sipp"), "SIPp is missing: run scripts/install --test (sip-tester)"
    tmp = tmp_path_factory.mktemp("torture")
    uas_port = free_port()
    plan = tmp / "torture.yaml"
    plan.write_text(DIALPLAN.replace("{uas_port}", str(uas_port)))
    # The RFC's T1: fewer repeats of the 4xx to an INVITE crowd the next reads.
    gw = start_gateway(tmp, plan, sip_t1=RFC_T1, env={"VRGW_TORTURE_PW": PASSWORD})
    client = Client(gw)
    yield Torture(gw, client, uas_port)
    code = stop_gateway(gw)
    log = gw.log()
    assert not client.late_and_wrong, client.late_and_wrong
    assert code == 0, log[-3000:]
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.parametrize("name", list(VALID))
def test_valid_message_gets_a_meaningful_answer(torture: Torture, name: str) -> None:
    """RFC 4475 3.1.1: the status RFC 3261 asks for, never silence."""
    c = VALID[name]
    status, seen = torture.client.exchange(c)
    assert status in c.expected, (name, status, seen)
    # 8.2.6.2: the CSeq comes back as sent, the method's spelling included (17.1.3).
    final = parse_message(next(d for d in seen if not d.startswith(b"SIP/2.0 1")))
    try:
        sent_cseq = parse_message(fill(c, 1, "z9hG4bKx", "x")).headers.get("cseq")
    except SipParseError:  # the 416: answered from the raw lines (21.4.1)
        sent_cseq = c.text.split("CSeq: ", 1)[1].split("\r\n", 1)[0]
    assert final.headers.get("cseq") == sent_cseq, (name, seen)


@pytest.mark.parametrize("name", list(INVALID))
def test_invalid_message_gets_400_or_silence(torture: Torture, name: str) -> None:
    """RFC 4475 3.1.2: a 400 (505 for the version) or nothing; never a 2xx."""
    c = INVALID[name]
    status, seen = torture.client.exchange(c)
    assert not any(data.startswith(b"SIP/2.0 2") for data in seen), (name, seen)
    assert status in c.expected, (name, status, seen)
    assert torture.client.options_answered(), f"no OPTIONS answer after {name}"


def test_a_normal_call_after_the_torture(torture: Torture, tmp_path: Path) -> None:
    """The gateway survived: SIPp's caller on another loopback address reaches SIPp's callee."""
    gw = torture.gw
    assert torture.client.options_answered()
    with sipp_station(torture.uas_port, tmp_path):
        run = sipp_calls(f"127.0.0.1:{gw.sip_port}", "bench", 3, tmp_path, source=CALLER)
    assert run.returncode == 0, explain(sipp=run.stderr[-2000:], gateway=gw.log()[-3000:])

    def completed() -> list[Any]:
        ended = gw.http("/api/v1/calls")["ended"]
        return [r for r in ended if r["kiosk"] == "sipp-caller" and r["outcome"] == "completed"]

    assert len(wait_for(lambda: len(completed()) >= 3 and completed(), 10, "3 records")) == 3
