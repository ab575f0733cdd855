"""The H.245 session (gateway/h323/h245.py) with a fake clock: procedures and fastStart.

Two sessions talk to each other through the real PER codec (every message is encoded
and decoded on its way), so each test also proves that what the session sends encodes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from gateway.h323 import asn1, h245
from gateway.h323 import capabilities as caps
from gateway.h323.h245 import H245Session
from gateway.model.sdp import Direction, SessionDescription


def sdp(
    port: int, *, video: bool = False, ip: str = "127.0.0.1", extra: str = ""
) -> SessionDescription:
    text = (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a=fmtp:101 0-15\r\n{extra}"
    )
    if video:
        text += (
            f"m=video {port + 2} RTP/AVP 96 31\r\na=rtpmap:96 H264/90000\r\n"
            "a=fmtp:96 profile-level-id=42e01f;packetization-mode=1\r\n"
        )
    return SessionDescription.parse(text.encode())


def counter_bytes(seed: int) -> Callable[[int], bytes]:
    """Deterministic 'random' bytes."""
    numbers = itertools.count(seed)
    return lambda n: bytes(next(numbers) & 0xFF for _ in range(n))


def wire(message: Any) -> Any:
    """A message as the peer reads it: encoded and decoded again."""
    return asn1.decode_h245(asn1.encode_h245(message))


def exchange(a: H245Session, b: H245Session, now: float = 0.0) -> list[Any]:
    """Carry messages both ways until both sides are quiet; return all of them."""
    seen: list[Any] = []
    for _ in range(20):
        moved = False
        for src, dst in ((a, b), (b, a)):
            for message in src.outgoing():
                seen.append(message)
                dst.receive(wire(message), now)
                moved = True
        if not moved:
            return seen
    raise AssertionError("the sessions never went quiet")


def names(messages: list[Any]) -> list[str]:
    return [m[1][0] for m in messages]


def test_slow_start_opens_both_ways_and_reports_the_peer_media() -> None:
    a = H245Session(now=0, local=sdp(40000, video=True), random_bytes=counter_bytes(1))
    b = H245Session(now=0, local=sdp(50000, video=True), random_bytes=counter_bytes(200))
    a.start(0)
    b.start(0)
    seen = exchange(a, b)
    assert names(seen).count("openLogicalChannel") == 4  # audio and video, both ways
    assert names(seen).count("openLogicalChannelAck") == 4
    assert a.msd_done and b.msd_done and a.master != b.master
    (event_a,) = a.events()
    (event_b,) = b.events()
    assert isinstance(event_a, h245.RemoteMedia) and isinstance(event_b, h245.RemoteMedia)
    audio, video = event_a.sdp.media
    assert (audio.port, video.port) == (50000, 50002)
    assert audio.formats[0] == "8" and "101" in audio.formats  # PCMA and telephone events
    assert video.formats == ["96"] and "packetization-mode=1" in (video.get_attr("fmtp") or "")
    assert event_b.sdp.media[0].port == 40000
    assert event_a.sdp.connection is not None and event_a.sdp.connection.address == "127.0.0.1"


def test_master_slave_determination_by_terminal_type_and_numbers() -> None:
    gateway = H245Session(now=0, local=sdp(40000), random_bytes=lambda n: b"\x00" * n)
    gateway.start(0)
    gateway.outgoing()
    # a terminal (50) is below a gateway (60): the gateway is master; the Ack tells the
    # peer its own role (H.245 C.2)
    gateway.receive(
        (
            "request",
            ("masterSlaveDetermination", {"terminalType": 50, "statusDeterminationNumber": 5}),
        ),
        0,
    )
    (ack,) = gateway.outgoing()
    assert ack == ("response", ("masterSlaveDeterminationAck", {"decision": ("slave", 0)}))
    gateway.receive(("response", ("masterSlaveDeterminationAck", {"decision": ("master", 0)})), 0)
    assert gateway.master is True and gateway.msd_done
    # equal types: (theirs - ours) mod 2^24 below 2^23 makes us master
    other = H245Session(now=0, random_bytes=lambda n: b"\x00\x00\x10")
    other.start(0)
    other.outgoing()
    other.receive(
        (
            "request",
            ("masterSlaveDetermination", {"terminalType": 60, "statusDeterminationNumber": 0x20}),
        ),
        0,
    )
    assert other.outgoing()[0][1][1]["decision"] == ("slave", 0)


def test_identical_numbers_retry_then_reject() -> None:
    session = H245Session(now=0, random_bytes=lambda n: b"\x00\x00\x07")
    session.start(0)
    session.outgoing()
    msd = (
        "request",
        ("masterSlaveDetermination", {"terminalType": 60, "statusDeterminationNumber": 7}),
    )
    for _ in range(h245.MSD_RETRIES):
        session.receive(msd, 0)
        assert names(session.outgoing()) == ["masterSlaveDetermination"]  # N100 retries
    session.receive(msd, 0)
    assert names(session.outgoing()) == ["masterSlaveDeterminationReject"]


def test_unanswered_procedures_fail_after_t1() -> None:
    session = H245Session(now=100, local=sdp(40000), timeout=10)
    session.start(100)
    assert names(session.outgoing()) == ["terminalCapabilitySet", "masterSlaveDetermination"]
    assert session.next_deadline() == 110
    session.on_timer(109.9)
    assert session.events() == []
    session.on_timer(110)
    events = session.events()
    assert events and isinstance(events[0], h245.SessionFailed)
    assert "T106" in events[0].reason


def test_channels_the_peer_opens_are_checked_against_our_media() -> None:
    ours = sdp(40000)
    session = H245Session(now=0, local=ours)
    session.start(0)
    session.outgoing()
    fmt = caps.formats_of(ours.media[0])[1]  # PCMU
    olc = h245.open_logical_channel(7, fmt, control=("10.0.0.1", 6001))
    session.receive(wire(("request", ("openLogicalChannel", olc))), 0)
    (ack,) = session.outgoing()
    assert ack[1][0] == "openLogicalChannelAck"
    params = ack[1][1]["forwardMultiplexAckParameters"][1]
    assert h245.address_of(params["mediaChannel"]) == ("127.0.0.1", 40000)
    assert h245.address_of(params["mediaControlChannel"]) == ("127.0.0.1", 40001)
    # video is not in our description: dataTypeNotSupported
    video = sdp(1, video=True)
    h264 = caps.formats_of(video.media[1])[0]
    session.receive(
        wire(
            (
                "request",
                (
                    "openLogicalChannel",
                    h245.open_logical_channel(8, h264, control=("10.0.0.1", 6003)),
                ),
            )
        ),
        0,
    )
    (reject,) = session.outgoing()
    assert reject[1] == (
        "openLogicalChannelReject",
        {"forwardLogicalChannelNumber": 8, "cause": ("dataTypeNotSupported", 0)},
    )
    # a bidirectional channel is refused (we open unidirectional ones only)
    reverse = h245.reverse_proposal(9, fmt, media=("10.0.0.1", 6000), control=("10.0.0.1", 6001))
    session.receive(wire(("request", ("openLogicalChannel", reverse))), 0)
    assert session.outgoing()[0][1][1]["cause"] == ("unsuitableReverseParameters", 0)


def test_requests_and_commands_get_their_answers() -> None:
    session = H245Session(now=0, local=sdp(40000))
    session.start(0)
    session.outgoing()
    session.receive(("request", ("roundTripDelayRequest", {"sequenceNumber": 9})), 0)
    session.receive(
        (
            "request",
            ("closeLogicalChannel", {"forwardLogicalChannelNumber": 3, "source": ("lcse", 0)}),
        ),
        0,
    )
    session.receive(("request", ("requestChannelClose", {"forwardLogicalChannelNumber": 4})), 0)
    session.receive(("request", ("maintenanceLoopRequest", {"type": ("systemLoop", 0)})), 0)
    out = session.outgoing()
    for message in out:
        assert wire(message) == message
    assert names(out) == [
        "roundTripDelayResponse",
        "closeLogicalChannelAck",
        "requestChannelCloseReject",  # no such channel of ours
        "functionNotUnderstood",
    ]
    session.receive(("indication", ("userInput", ("alphanumeric", "12"))), 0)
    session.receive(
        ("indication", ("userInput", ("signal", {"signalType": "#", "duration": 120}))), 0
    )
    session.receive(
        (
            "command",
            (
                "miscellaneousCommand",
                {"logicalChannelNumber": 2, "type": ("videoFastUpdatePicture", 0)},
            ),
        ),
        0,
    )
    session.receive(
        (
            "command",
            (
                "flowControlCommand",
                {"scope": ("logicalChannelNumber", 2), "restriction": ("maximumBitRate", 640)},
            ),
        ),
        0,
    )
    session.receive(("command", ("endSessionCommand", ("disconnect", 0))), 0)
    assert session.events() == [
        h245.UserInput("1", None),
        h245.UserInput("2", None),
        h245.UserInput("#", 120),
        h245.FastUpdateRequest(2),
        h245.FlowControl(2, 640),
        h245.SessionEnded(),
    ]


def test_user_input_follows_the_peer_capabilities() -> None:
    a = H245Session(now=0, local=sdp(40000))
    b = H245Session(now=0, local=sdp(50000))
    a.start(0)
    b.start(0)
    exchange(a, b)
    a.events()
    # our TCS announces dtmf: the peer may send signals with a duration
    assert a.peer_takes_dtmf_signal
    a.user_input("5", 160)
    (message,) = a.outgoing()
    assert message == (
        "indication",
        ("userInput", ("signal", {"signalType": "5", "duration": 160})),
    )
    assert wire(message) == message
    lone = H245Session(now=0)
    lone.user_input("5", 160)
    assert lone.outgoing() == [("indication", ("userInput", ("alphanumeric", "5")))]


def test_fast_update_names_the_video_channel_the_peer_sends() -> None:
    a = H245Session(now=0, local=sdp(40000, video=True))
    b = H245Session(now=0, local=sdp(50000, video=True))
    a.start(0)
    b.start(0)
    exchange(a, b)
    assert a.fast_update()
    (command,) = a.outgoing()
    video_from_b = [c for (out, n), c in a.channels.items() if not out and c.kind == "video"]
    assert command[1][1]["logicalChannelNumber"] == video_from_b[0].number
    b.receive(wire(command), 0)
    assert [e for e in b.events() if isinstance(e, h245.FastUpdateRequest)]
    assert not H245Session(now=0).fast_update()


def test_empty_capability_set_pauses_and_a_new_one_resumes() -> None:
    a = H245Session(now=0, local=sdp(40000), random_bytes=counter_bytes(3))
    b = H245Session(now=0, local=sdp(50000), random_bytes=counter_bytes(90))
    a.start(0)
    b.start(0)
    exchange(a, b)
    a.events()
    b.events()
    held = sdp(40000, extra="a=sendonly\r\n")
    a.set_local(held, 1)
    seen = exchange(a, b, 1)
    assert names(seen)[:2] == ["terminalCapabilitySet", "terminalCapabilitySetAck"]
    assert "closeLogicalChannel" in names(seen)  # b stops sending to a (H.323 8.4.6)
    assert b.events() == [h245.PausedByPeer()]
    assert not any(c.outgoing for c in b.channels.values())
    a.set_local(sdp(40000), 2)
    exchange(a, b, 2)
    resumed = [e for e in b.events() if isinstance(e, h245.RemoteMedia)]
    assert resumed and resumed[0].resumed and resumed[0].sdp.media[0].port == 40000
    assert any(c.outgoing and c.open for c in b.channels.values())
    assert [e for e in a.events() if isinstance(e, h245.RemoteMedia)]


def test_request_channel_close_closes_our_channel() -> None:
    a = H245Session(now=0, local=sdp(40000))
    b = H245Session(now=0, local=sdp(50000))
    a.start(0)
    b.start(0)
    exchange(a, b)
    number = next(n for (out, n) in a.channels if out)
    a.receive(("request", ("requestChannelClose", {"forwardLogicalChannelNumber": number})), 0)
    assert names(a.outgoing()) == ["requestChannelCloseAck", "closeLogicalChannel"]
    assert (True, number) not in a.channels


def test_unanswered_channel_is_closed_after_t1() -> None:
    a = H245Session(now=0, local=sdp(40000), timeout=5)
    b = H245Session(now=0, local=sdp(50000), timeout=5)
    a.start(0)
    b.start(0)
    for _ in range(6):  # carry everything but b's OLC Acks
        for message in a.outgoing():
            b.receive(wire(message), 0)
        for message in b.outgoing():
            if message[1][0] != "openLogicalChannelAck":
                a.receive(wire(message), 0)
    (waiting,) = [c for (out, _), c in a.channels.items() if out]
    assert not waiting.open and a.next_deadline() == 5
    assert a.events() == []
    a.on_timer(5)
    assert names(a.outgoing()) == ["closeLogicalChannel"]  # H.245 C.5.4
    (event,) = a.events()
    # b still sends to a: its media is send-only, at its RTCP port minus one
    assert isinstance(event, h245.RemoteMedia)
    assert event.sdp.media[0].port == 50000
    assert event.sdp.media[0].direction is Direction.SENDONLY


def test_end_session_is_sent_once() -> None:
    session = H245Session(now=0)
    session.end_session()
    session.end_session()
    assert session.outgoing() == [("command", ("endSessionCommand", ("disconnect", 0)))]


# --- fastStart ----------------------------------------------------------------------------


def _read_all(values: list[dict[str, Any]], proposer: bool) -> list[h245.FastStartChannel]:
    out = []
    for value in values:
        read = h245.read_fast_start(asn1.decode_olc(asn1.encode_olc(value)), proposer=proposer)
        assert read is not None
        out.append(read)
    return out


def test_fast_start_proposals_follow_h323_8_1_7_1() -> None:
    offer = sdp(40000, video=True)
    proposals = h245.fast_start_proposals(offer)
    # PCMA, PCMU, H.264, H.261: each in both directions (telephone-event has no channel)
    assert len(proposals) == 8
    send, receive = proposals[0], proposals[1]
    forward = send["forwardLogicalChannelParameters"]
    assert forward["dataType"] == ("audioData", ("g711Alaw64k", 20))
    params = forward["multiplexParameters"][1]
    assert h245.address_of(params["mediaControlChannel"]) == ("127.0.0.1", 40001)
    assert "mediaChannel" not in params
    assert receive["forwardLogicalChannelParameters"]["dataType"] == ("nullData", 0)
    reverse = receive["reverseLogicalChannelParameters"]["multiplexParameters"][1]
    assert h245.address_of(reverse["mediaChannel"]) == ("127.0.0.1", 40000)
    assert reverse["sessionID"] == 1
    h264 = proposals[4]["forwardLogicalChannelParameters"]["multiplexParameters"][1]
    assert h264["sessionID"] == 2 and h264["dynamicRTPPayloadType"] == 96
    assert len({p["forwardLogicalChannelNumber"] for p in proposals}) == 8


def test_fast_start_offer_accept_answer_round_trip() -> None:
    offer = sdp(40000, video=True)
    read = _read_all(h245.fast_start_proposals(offer), proposer=False)
    seen_offer = h245.offer_from_proposals(read)
    assert seen_offer is not None
    audio, video = seen_offer.media
    assert (audio.port, audio.formats) == (40000, ["8", "0"])
    assert (video.port, video.formats) == (40002, ["96", "31"])
    answer = SessionDescription.parse(
        b"v=0\r\no=- 2 2 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\n"
        b"m=audio 6000 RTP/AVP 0\r\nm=video 0 RTP/AVP 31\r\n"
    )
    elements, opened = h245.accept_proposals(read, answer)
    assert len(elements) == 2 and {c.outgoing for c in opened} == {True, False}
    accepted = _read_all(elements, proposer=True)
    result = h245.answer_from_accepted(offer, accepted)
    audio, video = result.media
    assert (audio.port, audio.formats) == (6000, ["0"])
    assert result.connection is not None and result.connection.address == "10.1.1.1"
    assert video.port == 0
    send = next(c for c in accepted if c.outgoing)
    assert send.rtp == ("10.1.1.1", 6000)
    recv = next(c for c in accepted if not c.outgoing)
    assert recv.rtcp == ("10.1.1.1", 6001)


@pytest.mark.parametrize("direction", ["sendonly", "recvonly"])
def test_one_way_offers_propose_one_direction(direction: str) -> None:
    offer = sdp(40000, extra=f"a={direction}\r\n")
    proposals = h245.fast_start_proposals(offer)
    reverse = ["reverseLogicalChannelParameters" in p for p in proposals]
    assert reverse == [direction == "recvonly"] * 2
    read = _read_all(proposals, proposer=False)
    seen = h245.offer_from_proposals(read)
    assert seen is not None
    expected = Direction.SENDONLY if direction == "sendonly" else Direction.RECVONLY
    assert seen.media[0].direction is expected


def test_hold_detection() -> None:
    assert h245.is_hold(sdp(1, extra="a=inactive\r\n"))
    assert h245.is_hold(sdp(1, ip="0.0.0.0"))
    assert not h245.is_hold(sdp(1))
    assert not h245.is_hold(sdp(1, extra="a=recvonly\r\n"))
