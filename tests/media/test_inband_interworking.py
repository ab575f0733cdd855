"""What the relay ends in band for a side whose peer cannot take it: RFC 4733 digits and
RTCP key-frame requests, and the PLI/FIR it sends itself (real sockets on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Iterator

import pytest
from harness import rtp_ports
from test_relay_engine import HOST, Peer, assert_silent, recv, rtp

from gateway.media.dtmf import EventReceiver, telephone_event_format
from gateway.media.relay import RelayEngine
from gateway.media.rtp import (
    RtpPacket,
    asks_for_keyframe,
    keyframe_request,
    parse_rtp,
    rtcp_packet_types,
)
from gateway.model.events import Dtmf, FastUpdate, Side
from gateway.model.sdp import SessionDescription

Event = tuple[str, Side, Dtmf | FastUpdate]
RR = bytes([0x80, 201, 0, 1, 0, 0, 0, 0x0B])


def event_packet(
    event: int, duration: int, *, end: bool = False, timestamp: int = 8000, seq: int = 1
) -> bytes:
    """One RFC 4733 2.3 packet (volume 10) with payload type 101."""
    payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
    return RtpPacket(101, seq, timestamp, 0xA, payload=payload, marker=seq == 1).serialize()


def press(event: int, timestamp: int, first_seq: int, *, ends: int = 3) -> list[bytes]:
    """A digit as a sender sends it: growing durations, then the end packet ``ends`` times."""
    packets = [
        event_packet(event, d, timestamp=timestamp, seq=first_seq + i)
        for i, d in enumerate((160, 320, 480))
    ]
    packets += [
        event_packet(event, 640, end=True, timestamp=timestamp, seq=first_seq + 3 + i)
        for i in range(ends)
    ]
    return packets


def sdp(peer: Peer, *, audio: str = "0 101", video: str | None = None) -> SessionDescription:
    lines = [
        "v=0",
        f"o=peer 1 1 IN IP4 {HOST}",
        "s=-",
        f"c=IN IP4 {HOST}",
        "t=0 0",
        f"m=audio {peer.rtp_port} RTP/AVP {audio}",
        f"a=rtcp:{peer.rtcp_port}",
    ]
    if "101" in audio.split():
        lines += ["a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15"]
    if video is not None:
        # the video stream shares the audio sockets' host; its ports follow them
        lines += [f"m=video {peer.rtp_port} RTP/AVP 96", "a=rtpmap:96 H264/90000"]
        lines += [f"a=rtcp-fb:{value}" for value in video.split(",") if value]
        lines.append(f"a=rtcp:{peer.rtcp_port}")
    return SessionDescription.parse(("\r\n".join(lines) + "\r\n").encode())


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer]]:
    a, b = Peer(), Peer()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
async def engine() -> AsyncIterator[tuple[RelayEngine, list[Event]]]:
    low, high = rtp_ports(40)  # this worker's own
    relay = RelayEngine(bind_host=HOST, port_min=low, port_max=high, timeout=0)
    events: list[Event] = []
    relay.set_event_handler(lambda call_id, side, event: events.append((call_id, side, event)))
    await relay.start()
    yield relay, events
    await relay.close()


def drain(sock: socket.socket) -> list[bytes]:
    """Every datagram waiting on ``sock``, in order."""
    got: list[bytes] = []
    while True:
        try:
            got.append(sock.recv(65536))
        except BlockingIOError:
            return got


# --- sans-IO pieces ----------------------------------------------------------------------


def test_each_digit_is_reported_once_even_when_its_end_packets_are_lost() -> None:
    got: list[Dtmf] = []
    receiver = EventReceiver(101, 8000, got.append)
    for packet in press(5, 8000, 1):  # the E bit three times: one digit
        receiver.feed(packet)
    assert got == [Dtmf("5", 80)]  # 640 samples at 8 kHz
    for packet in press(11, 16000, 10, ends=0):  # every end packet lost...
        receiver.feed(packet)
    assert got == [Dtmf("5", 80)]
    for packet in press(0, 24000, 20):  # ...the next digit's start reports it
        receiver.feed(packet)
    assert got == [Dtmf("5", 80), Dtmf("#", 60), Dtmf("0", 80)]
    receiver.feed(event_packet(16, 800, end=True, timestamp=32000))  # flash: no digit
    receiver.feed(b"\x80\x65junk")  # malformed: ignored
    receiver.feed(RtpPacket(101, 40, 40000, 0xA, payload=b"\x01").serialize())  # short
    assert got == [Dtmf("5", 80), Dtmf("#", 60), Dtmf("0", 80)]


def test_telephone_event_format_is_read_from_the_rtpmap() -> None:
    peer = Peer()
    try:
        assert telephone_event_format(sdp(peer).media[0]) == (101, 8000)
        assert telephone_event_format(sdp(peer, audio="0 8").media[0]) is None
        assert telephone_event_format(None) is None
    finally:
        peer.close()


def test_keyframe_requests_are_built_and_found() -> None:
    pli = keyframe_request(0x1111, 0x2222)
    assert rtcp_packet_types(pli) == [201, 206]  # a compound packet: RR first (RFC 3550 6.1)
    assert pli[8] & 0x1F == 1 and struct.unpack_from("!II", pli, 12) == (0x1111, 0x2222)
    fir = keyframe_request(0x1111, 0x2222, fir_sequence=7)
    assert rtcp_packet_types(fir) == [201, 206] and fir[8] & 0x1F == 4
    assert struct.unpack_from("!IB", fir, 20) == (0x2222, 7)  # FCI: SSRC, sequence
    assert asks_for_keyframe(pli) and asks_for_keyframe(fir)
    assert not asks_for_keyframe(RR)
    assert not asks_for_keyframe(RR + bytes([0x8F, 206, 0, 2]) + bytes(8))  # FMT 15 (AFB)
    assert not asks_for_keyframe(bytes([0x80, 206, 0xFF, 0xFF]))  # truncated: no raise
    assert not asks_for_keyframe(b"")


# --- in the relay ------------------------------------------------------------------------


async def test_digits_are_ended_in_the_relay_when_the_answerer_lacks_telephone_events(
    engine: tuple[RelayEngine, list[Event]], peers: tuple[Peer, Peer]
) -> None:
    relay, events = engine
    a, b = peers
    offer = await relay.offer("c1", sdp(a), from_side=Side.A)
    assert telephone_event_format(offer.media[0]) == (101, 8000)  # offered on as it came
    answer = await relay.answer("c1", sdp(b, audio="0"), from_side=Side.B)
    # The kiosk's answer keeps its telephone events: the relay takes them in B's name.
    assert answer.media[0].formats == ["0", "101"]
    assert answer.media[0].get_attrs("fmtp") == ["101 0-15"]
    a_port = answer.media[0].port

    a.rtp.sendto(rtp(1), (HOST, a_port))
    assert parse_rtp((await recv(b.rtp))[0]).payload_type == 0  # speech goes on
    for packet in press(7, 8000, 2):
        a.rtp.sendto(packet, (HOST, a_port))
    a.rtp.sendto(rtp(9), (HOST, a_port))
    assert parse_rtp((await recv(b.rtp))[0]).sequence == 9  # no event packet reached B
    assert events == [("c1", Side.A, Dtmf("7", 80))]
    await assert_silent(b.rtp)
    stats = await relay.stats("c1")
    assert stats is not None and stats.streams[0].a_to_b.rtp_packets == 2 + 6  # all counted


async def test_events_cross_untouched_when_both_sides_take_them(
    engine: tuple[RelayEngine, list[Event]], peers: tuple[Peer, Peer]
) -> None:
    relay, events = engine
    a, b = peers
    await relay.offer("c2", sdp(a), from_side=Side.A)
    answer = await relay.answer("c2", sdp(b), from_side=Side.B)
    packets = press(3, 8000, 1)
    for packet in packets:
        a.rtp.sendto(packet, (HOST, answer.media[0].port))
    await asyncio.sleep(0.2)
    assert drain(b.rtp) == packets and events == []


async def test_a_key_frame_request_the_answerer_cannot_take_is_reported_once_a_second(
    engine: tuple[RelayEngine, list[Event]], peers: tuple[Peer, Peer]
) -> None:
    relay, events = engine
    a, b = peers
    await relay.offer("c3", sdp(a, video="96 nack pli,96 ccm fir,96 nack"), from_side=Side.A)
    answer = await relay.answer("c3", sdp(b, video=""), from_side=Side.B)
    # the feedback the offerer listed comes back, but for plain NACK (nothing to end)
    assert answer.media[1].get_attrs("rtcp-fb") == ["96 nack pli", "96 ccm fir"]
    video_rtcp = answer.media[1].port + 1
    pli = keyframe_request(0xA, 0xB)
    a.rtcp.sendto(pli, (HOST, video_rtcp))
    assert (await recv(b.rtcp))[0] == pli  # still relayed: harmless to the other side
    a.rtcp.sendto(pli, (HOST, video_rtcp))  # a second one at once: not reported again
    await recv(b.rtcp)
    assert events == [("c3", Side.A, FastUpdate())]
    a.rtcp.sendto(RR, (HOST, video_rtcp))  # a plain report is not a request
    await recv(b.rtcp)
    assert len(events) == 1


async def test_the_relay_asks_a_side_that_takes_feedback_for_a_key_frame(
    engine: tuple[RelayEngine, list[Event]], peers: tuple[Peer, Peer]
) -> None:
    relay, _ = engine
    a, b = peers
    offer = await relay.offer("c4", sdp(a, video="96 nack pli"), from_side=Side.A)
    answer = await relay.answer("c4", sdp(b, video="96 ccm fir"), from_side=Side.B)
    # No video from A yet: the request waits for A's first packet, which names its SSRC.
    assert await relay.request_keyframe("c4", to_side=Side.A)
    await asyncio.sleep(0.1)
    assert drain(a.rtcp) == []
    video = RtpPacket(96, 1, 0, 0xCAFE, payload=bytes(100)).serialize()
    a.rtp.sendto(video, (HOST, answer.media[1].port))
    await recv(b.rtp)
    for _ in range(2):  # the one that waited, then one asked once the SSRC is known
        request, source = await recv(a.rtcp)
        assert source == (HOST, answer.media[1].port + 1)  # the relay's RTCP port for A
        assert rtcp_packet_types(request) == [201, 206] and request[8] & 0x1F == 1  # PLI
        assert struct.unpack_from("!I", request, 16)[0] == 0xCAFE  # names A's own SSRC
        assert await relay.request_keyframe("c4", to_side=Side.A)
    await recv(a.rtcp)
    a.rtp.sendto(video, (HOST, answer.media[1].port))  # later packets ask for nothing more
    await recv(b.rtp)
    await asyncio.sleep(0.1)
    assert drain(a.rtcp) == []

    b.rtp.sendto(RtpPacket(96, 1, 0, 0xBEEF).serialize(), (HOST, offer.media[1].port))
    await recv(a.rtp)
    assert await relay.request_keyframe("c4", to_side=Side.B)  # B only takes FIR
    request, _ = await recv(b.rtcp)
    assert request[8] & 0x1F == 4 and struct.unpack_from("!I", request, 20)[0] == 0xBEEF
    assert not await relay.request_keyframe("no-such-call", to_side=Side.A)
