"""SIP legs and the UA dispatch in memory: bytes in, bytes out, no socket.

The real UA core, SIP legs, dialer, transaction layer and controller run on the test's
event loop; what the gateway sends is caught before the socket, what the kiosk and the
station send is fed to ``SipEndpoint.data_received``. The media engine is the fake of
tests/call/fakes.py, so the SDP the gateway sends names the fake relay's address.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes import RELAY_HOST, FakeMedia

from gateway.call.b2bua import B2BUA
from gateway.call.leg import Target
from gateway.call.scheduler import LoopScheduler
from gateway.call.sip_leg import SipDialer
from gateway.call.sip_ua import SipUserAgent
from gateway.dialplan import load_dialplan
from gateway.edge.sip_transport import SipEndpoint
from gateway.state.store import MemoryStore

KIOSK = ("127.0.0.11", 5062)
STATION = ("127.0.0.21", 5064)
GW = "127.0.0.1:5060"
DIALPLAN = f"""
version: 1
domain: visio.test
auth: {{realm: test}}
media: {{bind: 127.0.0.1, port_min: 30000, port_max: 30099, timeout: 0}}
kiosks:
  - {{id: lessay, site: Lessay, label: Lessay, username: null, addresses: ["{KIOSK[0]}"],
     services: all}}
services:
  - {{name: caf, number: "1001", partner: caf, label: CAF}}
partners:
  - id: caf
    name: CAF
    queue: {{max_length: 0}}
    stations:
      - {{id: caf-1, address: "{STATION[0]}:{STATION[1]}", keepalive: 0}}
"""
KIOSK_SDP = (
    "v=0\r\no=kiosk 1 1 IN IP4 127.0.0.11\r\ns=-\r\nc=IN IP4 127.0.0.11\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
STATION_SDP = (
    "v=0\r\no=station 1 1 IN IP4 127.0.0.21\r\ns=-\r\nc=IN IP4 127.0.0.21\r\nt=0 0\r\n"
    "m=audio 5000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)


def kiosk_request(
    method: str,
    *,
    cseq: int = 1,
    branch: str = "k1",
    to_tag: str = "",
    body: str = "",
    extra: str = "",
) -> bytes:
    """A request of the kiosk's call (Call-ID kc1, From tag kt)."""
    to = f"<sip:caf@{GW}>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} sip:caf@{GW} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {KIOSK[0]}:{KIOSK[1]};branch=z9hG4bK{branch}\r\n"
        f"From: <sip:lessay@visio.test>;tag=kt\r\nTo: {to}\r\n"
        f"Call-ID: kc1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:lessay@{KIOSK[0]}:{KIOSK[1]}>\r\n{extra}"
    )
    if body:
        head += "Content-Type: application/sdp\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n{body}".encode()


def station_response(request: bytes, status: str, *, tag: str = "st", body: str = "") -> bytes:
    """The station's response to a request the gateway sent it."""
    text = request.decode()
    lines = [f"SIP/2.0 {status}", *re.findall(r"^Via:[^\r\n]*", text, re.M)]
    for name in ("From", "Call-ID", "CSeq"):
        lines.append(header(text, name))
    to = header(text, "To")
    lines.append(to if ";tag=" in to else f"{to};tag={tag}")
    lines.append(f"Contact: <sip:caf-1@{STATION[0]}:{STATION[1]}>")
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def header(text: str, name: str) -> str:
    m = re.search(rf"^{name}:[^\r\n]*", text, re.M | re.I)
    assert m is not None, f"no {name} in {text[:300]}"
    return m.group(0)


def body_of(message: bytes) -> str:
    return message.split(b"\r\n\r\n", 1)[1].decode()


class SipWorld:
    """The SIP half of the gateway on the running loop, its wire caught in a list."""

    def __init__(self, tmp: Path, credentials: tuple[str, str] | None = None) -> None:
        path = tmp / "sip.yaml"
        path.write_text(DIALPLAN)
        self.dialplan = load_dialplan(path)
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.endpoint = SipEndpoint(
            "127.0.0.1", 5060, wire=lambda data, dest, transport: self.sent.append((data, dest))
        )
        self.endpoint._loop = asyncio.get_running_loop()  # no start(): no socket
        self.sched = LoopScheduler(time.time)
        self.media = FakeMedia()
        self.ua = SipUserAgent(self.endpoint, MemoryStore(), self.dialplan, self.sched)
        uri = f"sip:caf-1@{STATION[0]}:{STATION[1]}"
        target = Target("caf-1", "sip", uri, STATION, credentials=credentials)
        self.b2bua = B2BUA(
            self.dialplan,
            self.media,
            self.sched,
            {"sip": SipDialer(self.ua)},
            {"caf-1": target}.get,
        )
        self.ua.invite_handler = self.b2bua
        self.b2bua.station_reachable("caf-1", True)

    async def feed(self, data: bytes, source: tuple[str, int]) -> None:
        self.endpoint.data_received(data, source, "udp")
        for _ in range(5):
            await asyncio.sleep(0)

    def take(self, dest: tuple[str, int], start: str) -> bytes:
        for i, (data, to) in enumerate(self.sent):
            if to == dest and data.startswith(start.encode()):
                return self.sent.pop(i)[0]
        raise AssertionError(
            f"nothing starting {start!r} to {dest}: {[d[:40] for d, _ in self.sent]}"
        )

    def nothing_to(self, dest: tuple[str, int], start: str) -> bool:
        return not any(to == dest and d.startswith(start.encode()) for d, to in self.sent)


@pytest.fixture
async def sip(tmp_path: Path) -> AsyncIterator[SipWorld]:
    world = SipWorld(tmp_path)
    yield world
    await world.b2bua.close()
    await world.sched.drain()
    world.endpoint.layer = type(world.endpoint.layer)()  # drop the transactions' timers
    if world.endpoint._timer is not None:
        world.endpoint._timer.cancel()


async def test_late_offer_through_both_sip_legs(sip: SipWorld) -> None:
    await sip.feed(kiosk_request("INVITE"), KIOSK)
    invite = sip.take(STATION, "INVITE")
    assert body_of(invite) == ""  # no offer of the kiosk's: none to the station either
    await sip.feed(station_response(invite, "180 Ringing"), STATION)
    assert sip.take(KIOSK, "SIP/2.0 180")
    await sip.feed(station_response(invite, "200 OK", body=STATION_SDP), STATION)
    # RFC 3261 13.2.2.4: the ACK must carry the answer, which only the kiosk can give.
    assert sip.nothing_to(STATION, "ACK")
    ok = sip.take(KIOSK, "SIP/2.0 200")
    offer = body_of(ok)
    assert f"c=IN IP4 {RELAY_HOST}" in offer and "m=audio 5000" in offer
    to_tag = header(ok.decode(), "To").split("tag=")[1]
    await sip.feed(kiosk_request("ACK", branch="k2", to_tag=to_tag, body=KIOSK_SDP), KIOSK)
    ack = sip.take(STATION, "ACK")
    assert header(ack.decode(), "CSeq").endswith("1 ACK")
    assert f"c=IN IP4 {RELAY_HOST}" in body_of(ack) and "m=audio 4000" in body_of(ack)
    await sip.feed(kiosk_request("BYE", cseq=2, branch="k3", to_tag=to_tag), KIOSK)
    assert sip.take(KIOSK, "SIP/2.0 200")
    bye = sip.take(STATION, "BYE")
    await sip.feed(station_response(bye, "200 OK"), STATION)
    [record] = sip.b2bua.records
    assert (record.outcome, record.station) == ("completed", "caf-1")
    assert sip.ua.open_dialogs == 0 and sip.media.sessions == set()


async def test_a_late_offer_acked_without_answer_is_released(sip: SipWorld) -> None:
    await sip.feed(kiosk_request("INVITE"), KIOSK)
    invite = sip.take(STATION, "INVITE")
    await sip.feed(station_response(invite, "200 OK", body=STATION_SDP), STATION)
    to_tag = header(sip.take(KIOSK, "SIP/2.0 200").decode(), "To").split("tag=")[1]
    await sip.feed(kiosk_request("ACK", branch="k2", to_tag=to_tag), KIOSK)
    # The station's 2xx is still ACKed before its BYE; the kiosk's dialog ends too.
    assert body_of(sip.take(STATION, "ACK")) == ""
    bye = sip.take(STATION, "BYE")
    assert "cause=65" in header(bye.decode(), "Reason")
    assert "cause=65" in header(sip.take(KIOSK, "BYE").decode(), "Reason")


async def test_context_headers_and_hops_reach_the_station(sip: SipWorld) -> None:
    extra = "X-Visio-Allocataire: 1234567\r\nX-VISIO-KIOSK: spoofed\r\nX-Visio-Appointment: oui\r\n"
    await sip.feed(kiosk_request("INVITE", body=KIOSK_SDP, extra=extra), KIOSK)
    invite = sip.take(STATION, "INVITE").decode()
    assert header(invite, "X-Visio-Allocataire").endswith(": 1234567")
    assert re.findall(r"^x-visio-kiosk:[^\r\n]*", invite, re.M | re.I) == ["X-Visio-Kiosk: lessay"]
    assert header(invite, "X-Visio-Site").endswith(": Lessay")
    assert header(invite, "Max-Forwards").endswith(": 69")
    assert header(invite, "From").startswith('From: "Lessay" <sip:lessay@visio.test>')
    assert f"c=IN IP4 {RELAY_HOST}" in invite


async def test_a_busy_station_gives_the_kiosk_486_with_the_q850_reason(sip: SipWorld) -> None:
    await sip.feed(kiosk_request("INVITE", body=KIOSK_SDP), KIOSK)
    invite = sip.take(STATION, "INVITE")
    await sip.feed(station_response(invite, "486 Busy Here"), STATION)
    assert sip.take(STATION, "ACK")  # the transaction's ACK for a non-2xx
    busy = sip.take(KIOSK, "SIP/2.0 486").decode()
    assert header(busy, "Reason").startswith("Reason: Q.850;cause=17")
    assert sip.media.sessions == set()


@pytest.mark.parametrize(
    ("extra", "body", "status"),
    [
        ("Session-Expires: 30\r\nSupported: timer\r\n", KIOSK_SDP, "422"),
        ("", "v=0\r\nthis is no SDP\r\n", "488"),
        ("Require: precondition\r\n", KIOSK_SDP, "420"),
    ],
)
async def test_sip_policy_refusals_never_reach_the_controller(
    sip: SipWorld, extra: str, body: str, status: str
) -> None:
    await sip.feed(kiosk_request("INVITE", body=body, extra=extra), KIOSK)
    assert sip.take(KIOSK, f"SIP/2.0 {status}")
    assert list(sip.b2bua.records) == [] and sip.media.calls == {}
    assert sip.nothing_to(STATION, "INVITE")


async def test_a_station_reinvite_is_relayed_to_the_kiosk(sip: SipWorld) -> None:
    await sip.feed(kiosk_request("INVITE", body=KIOSK_SDP), KIOSK)
    invite = sip.take(STATION, "INVITE")
    await sip.feed(station_response(invite, "200 OK", body=STATION_SDP), STATION)
    sip.take(STATION, "ACK")
    ok = sip.take(KIOSK, "SIP/2.0 200")
    to_tag = header(ok.decode(), "To").split("tag=")[1]
    await sip.feed(kiosk_request("ACK", branch="k2", to_tag=to_tag), KIOSK)
    # The station puts the call on hold (RFC 3264 8.4): a re-INVITE in its dialog.
    text = invite.decode()
    from_tag = header(text, "From").split("tag=")[1]
    hold = STATION_SDP.replace("a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap:0 PCMU/8000\r\na=sendonly\r\n")
    reinvite = (
        f"INVITE sip:vrgw@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {STATION[0]}:{STATION[1]};branch=z9hG4bKs2\r\n"
        f"From: <sip:caf@visio.test>;tag=st\r\n"
        f"To: {header(text, 'From')[6:].split(';tag=')[0]};tag={from_tag}\r\n"
        f"{header(text, 'Call-ID')}\r\nCSeq: 7 INVITE\r\nMax-Forwards: 70\r\n"
        f"Contact: <sip:caf-1@{STATION[0]}:{STATION[1]}>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(hold)}\r\n\r\n{hold}"
    ).encode()
    await sip.feed(reinvite, STATION)
    to_kiosk = sip.take(KIOSK, "INVITE")
    assert "a=sendonly" in body_of(to_kiosk)
    answer = KIOSK_SDP.replace("PCMU/8000\r\n", "PCMU/8000\r\na=recvonly\r\n")
    await sip.feed(
        b"SIP/2.0 200 OK\r\n"
        + "\r\n".join(
            header(to_kiosk.decode(), n) for n in ("Via", "From", "To", "Call-ID", "CSeq")
        ).encode()
        + f"\r\nContact: <sip:lessay@{KIOSK[0]}:{KIOSK[1]}>\r\nContent-Type: application/sdp"
        f"\r\nContent-Length: {len(answer)}\r\n\r\n{answer}".encode(),
        KIOSK,
    )
    assert sip.take(KIOSK, "ACK")
    relayed = sip.take(STATION, "SIP/2.0 200")
    assert "a=recvonly" in body_of(relayed) and f"c=IN IP4 {RELAY_HOST}" in body_of(relayed)
