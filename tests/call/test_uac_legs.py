"""The UAC features of SipLeg in memory: PRACK for reliable provisionals (RFC 3262) and a
station's 401/407 answered once (RFC 3261 22.2), on the harness of test_sip_legs.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from test_sip_legs import (
    KIOSK,
    KIOSK_SDP,
    STATION,
    STATION_SDP,
    SipWorld,
    header,
    kiosk_request,
    station_response,
)

from gateway.sip.auth import DigestAuthenticator


@pytest.fixture
async def sip(tmp_path: Path) -> AsyncIterator[SipWorld]:
    world = SipWorld(tmp_path, credentials=("gw", "pw-gw"))
    yield world
    await world.b2bua.close()
    await world.sched.drain()
    world.endpoint.layer = type(world.endpoint.layer)()
    if world.endpoint._timer is not None:
        world.endpoint._timer.cancel()


def challenge_response(invite: bytes, status: str, name: str, values: list[str]) -> bytes:
    base = station_response(invite, status, tag="ch").decode()
    head, _, rest = base.partition("Content-Length")
    return (head + "".join(f"{name}: {v}\r\n" for v in values) + "Content-Length" + rest).encode()


@pytest.mark.parametrize(
    ("status", "challenge", "answer"),
    [
        ("401 Unauthorized", "WWW-Authenticate", "Authorization"),
        ("407 Proxy Authentication Required", "Proxy-Authenticate", "Proxy-Authorization"),
    ],
)
async def test_challenge_answered_once(
    sip: SipWorld, status: str, challenge: str, answer: str
) -> None:
    server = DigestAuthenticator("st", {"gw": "pw-gw"}.get)
    await sip.feed(kiosk_request("INVITE", body=KIOSK_SDP), KIOSK)
    first = sip.take(STATION, "INVITE")
    await sip.feed(challenge_response(first, status, challenge, server.challenges()), STATION)
    sip.take(STATION, "ACK")
    second = sip.take(STATION, "INVITE").decode()
    f = first.decode()
    assert header(second, "Call-ID") == header(f, "Call-ID")
    assert header(second, "From") == header(f, "From")
    assert header(second, "To") == header(f, "To")
    assert header(second, "CSeq") == "CSeq: 2 INVITE"
    assert header(second, "Via") != header(f, "Via")
    value = header(second, answer).split(": ", 1)[1]
    assert server.verify("INVITE", value).ok
    assert "algorithm=SHA-256" in value
    # A second challenge ends the offer: the kiosk hears a failure.
    await sip.feed(
        challenge_response(second.encode(), status, challenge, server.challenges()), STATION
    )
    sip.take(STATION, "ACK")
    assert sip.nothing_to(STATION, "INVITE")
    fail = sip.take(KIOSK, "SIP/2.0 ")
    print(fail[:60])
    assert b" 200 " not in fail[:20]


async def test_no_answerable_challenge_fails(sip: SipWorld) -> None:
    await sip.feed(kiosk_request("INVITE", body=KIOSK_SDP), KIOSK)
    first = sip.take(STATION, "INVITE")
    await sip.feed(
        challenge_response(
            first,
            "401 Unauthorized",
            "WWW-Authenticate",
            ['Digest realm="r", nonce="n", algorithm=AKAv1-MD5'],
        ),
        STATION,
    )
    sip.take(STATION, "ACK")
    assert sip.nothing_to(STATION, "INVITE")
    print(sip.take(KIOSK, "SIP/2.0 ")[:60])


def reliable(invite: bytes, status: str, rseq: int, tag: str = "st", body: str = "") -> bytes:
    base = station_response(invite, status, tag=tag, body=body).decode()
    head, _, rest = base.partition("Content-Length")
    return (head + f"Require: 100rel\r\nRSeq: {rseq}\r\nContent-Length" + rest).encode()


async def test_prack_forks_gaps_and_repeats(sip: SipWorld) -> None:
    await sip.feed(kiosk_request("INVITE", body=KIOSK_SDP), KIOSK)
    invite = sip.take(STATION, "INVITE")
    assert "100rel" in header(invite.decode(), "Supported")
    await sip.feed(reliable(invite, "180 Ringing", 5), STATION)
    p1 = sip.take(STATION, "PRACK").decode()
    assert header(p1, "RAck") == "RAck: 5 1 INVITE" and header(p1, "CSeq") == "CSeq: 2 PRACK"
    assert ";tag=st" in header(p1, "To")
    await sip.feed(reliable(invite, "180 Ringing", 5), STATION)  # repeat
    await sip.feed(reliable(invite, "183 Session Progress", 7), STATION)  # gap
    assert sip.nothing_to(STATION, "PRACK")
    await sip.feed(reliable(invite, "183 Session Progress", 6), STATION)
    p2 = sip.take(STATION, "PRACK").decode()
    assert header(p2, "RAck") == "RAck: 6 1 INVITE" and header(p2, "CSeq") == "CSeq: 3 PRACK"
    # A fork with its own sequence and CSeq space
    await sip.feed(reliable(invite, "180 Ringing", 1, tag="fork"), STATION)
    p3 = sip.take(STATION, "PRACK").decode()
    assert header(p3, "RAck") == "RAck: 1 1 INVITE" and header(p3, "CSeq") == "CSeq: 2 PRACK"
    assert ";tag=fork" in header(p3, "To")
    # the fork answers: the BYE later continues its CSeq space
    await sip.feed(station_response(invite, "200 OK", tag="fork", body=STATION_SDP), STATION)
    sip.take(STATION, "ACK")
    ok = sip.take(KIOSK, "SIP/2.0 200")
    to_tag = header(ok.decode(), "To").split("tag=")[1]
    await sip.feed(kiosk_request("ACK", branch="k2", to_tag=to_tag), KIOSK)
    await sip.feed(kiosk_request("BYE", cseq=2, branch="k3", to_tag=to_tag), KIOSK)
    bye = sip.take(STATION, "BYE").decode()
    assert header(bye, "CSeq") == "CSeq: 3 BYE" and ";tag=fork" in header(bye, "To")
