"""The built-in RTP/RTCP relay with real UDP sockets on 127.0.0.1 (ports 31000-31999)."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
import uvloop

from gateway.media import ports as ports_module
from gateway.media import relay as relay_module
from gateway.media.engine import MediaEngine, MediaError
from gateway.media.prompts import PromptError, load_prompt
from gateway.media.relay import RelayEngine
from gateway.media.rtp import RtpPacket, parse_rtp
from gateway.model.events import Side
from gateway.model.sdp import Direction, SdpError, SessionDescription

HOST = "127.0.0.1"
RTCP_RR = bytes([0x80, 201, 0, 1, 0, 0, 0x12, 0x34])  # empty receiver report (RFC 3550 6.4.2)


class Peer:
    """A stand-in SIP endpoint's media side: an RTP socket and an RTCP socket."""

    def __init__(self) -> None:
        self.rtp = self._open()
        self.rtcp = self._open()

    @staticmethod
    def _open() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, 0))
        sock.setblocking(False)
        return sock

    @property
    def rtp_port(self) -> int:
        return int(self.rtp.getsockname()[1])

    @property
    def rtcp_port(self) -> int:
        return int(self.rtcp.getsockname()[1])

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


async def recv(sock: socket.socket, timeout: float = 1.0) -> tuple[bytes, tuple[str, int]]:
    """The next datagram on ``sock`` (works under asyncio and uvloop alike)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[bytes, tuple[str, int]]] = loop.create_future()

    def readable() -> None:
        try:
            data, addr = sock.recvfrom(65536)
        except BlockingIOError:
            return
        if not done.done():
            done.set_result((data, addr))

    loop.add_reader(sock.fileno(), readable)
    try:
        return await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(sock.fileno())


async def assert_silent(sock: socket.socket, wait: float = 0.1) -> None:
    await asyncio.sleep(wait)
    with pytest.raises(BlockingIOError):
        sock.recvfrom(65536)


def rtp(seq: int, size: int = 160, ssrc: int = 0xA) -> bytes:
    return RtpPacket(0, seq, seq * 160, ssrc, payload=bytes(size)).serialize()


def sdp_for(
    peer: Peer | None,
    *,
    port: int | None = None,
    version: int = 1,
    direction: str | None = None,
    video_port: int | None = None,
    with_ice: bool = False,
    rtcp_attr: bool = True,
    formats: str = "0 101",
    rtpmaps: tuple[str, ...] = ("101 telephone-event/8000",),
) -> SessionDescription:
    rtp_port = port if port is not None else (peer.rtp_port if peer else 0)
    lines = [
        "v=0",
        f"o=peer 1 {version} IN IP4 {HOST}",
        "s=-",
        f"c=IN IP4 {HOST}",
        "t=0 0",
        f"m=audio {rtp_port} RTP/AVP {formats}",
        f"c=IN IP4 {HOST}",
        *(f"a=rtpmap:{value}" for value in rtpmaps),
    ]
    if rtcp_attr and peer is not None:
        lines.append(f"a=rtcp:{peer.rtcp_port} IN IP4 {HOST}")
    if with_ice:
        lines += [
            "a=ice-ufrag:abcd",
            "a=ice-pwd:0123456789abcdef012345",
            f"a=candidate:1 1 UDP 2130706431 {HOST} {rtp_port} typ host",
            "a=end-of-candidates",
        ]
    if direction:
        lines.append(f"a={direction}")
    if video_port is not None:
        lines += [f"m=video {video_port} RTP/AVP 96", "a=rtpmap:96 H264/90000"]
    return SessionDescription.parse(("\r\n".join(lines) + "\r\n").encode())


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer]]:
    a, b = Peer(), Peer()
    yield a, b
    a.close()
    b.close()


@pytest.fixture
async def engine() -> AsyncIterator[RelayEngine]:
    relay = RelayEngine(bind_host=HOST, port_min=31000, port_max=31099, timeout=0)
    await relay.start()
    yield relay
    await relay.close()
    assert relay.ports_in_use == 0


async def connect(relay: RelayEngine, a: Peer, b: Peer, call_id: str = "call-1") -> tuple[int, int]:
    """Offer from A, answer from B; return (port A sends to, port B sends to)."""
    offer = await relay.offer(call_id, sdp_for(a), from_side=Side.A)
    answer = await relay.answer(call_id, sdp_for(b), from_side=Side.B)
    return answer.media[0].port, offer.media[0].port


# --- forwarding --------------------------------------------------------------------------


async def test_rtp_and_rtcp_flow_both_ways_with_exact_counters(
    engine: RelayEngine, peers: tuple[Peer, Peer]
) -> None:
    a, b = peers
    protocol_view: MediaEngine = engine  # mypy checks RelayEngine against the protocol
    assert protocol_view is engine
    a_port, b_port = await connect(engine, a, b)
    assert a_port % 2 == 0 and b_port % 2 == 0 and a_port != b_port
    assert all(31000 <= p <= 31099 for p in (a_port, b_port))
    assert engine.ports_in_use == 4 and engine.session_count == 1

    for seq in range(5):
        a.rtp.sendto(rtp(seq), (HOST, a_port))
        data, source = await recv(b.rtp)
        assert parse_rtp(data).sequence == seq
        assert source == (HOST, b_port)  # sent from the socket B sends to: symmetric
    for seq in range(3):
        b.rtp.sendto(rtp(seq, size=80, ssrc=0xB), (HOST, b_port))
        data, source = await recv(a.rtp)
        assert parse_rtp(data).ssrc == 0xB and source == (HOST, a_port)

    a.rtcp.sendto(RTCP_RR, (HOST, a_port + 1))
    assert await recv(b.rtcp) == (RTCP_RR, (HOST, b_port + 1))
    b.rtcp.sendto(RTCP_RR, (HOST, b_port + 1))
    assert await recv(a.rtcp) == (RTCP_RR, (HOST, a_port + 1))
    # rtcp-mux (RFC 5761): RTCP on the RTP port is relayed on the RTP path, counted as RTCP
    a.rtp.sendto(RTCP_RR, (HOST, a_port))
    assert (await recv(b.rtp))[0] == RTCP_RR

    stats = await engine.stats("call-1")
    assert stats is not None and len(stats.streams) == 1
    stream = stats.streams[0]
    assert (stream.index, stream.kind) == (0, "audio")
    assert (stream.a_to_b.rtp_packets, stream.a_to_b.rtp_bytes) == (5, 5 * 172)
    assert (stream.a_to_b.rtcp_packets, stream.a_to_b.rtcp_bytes) == (2, 16)
    assert (stream.b_to_a.rtp_packets, stream.b_to_a.rtp_bytes) == (3, 3 * 92)
    assert (stream.b_to_a.rtcp_packets, stream.b_to_a.rtcp_bytes) == (1, 8)
    assert stream.a_peer == (HOST, a.rtp_port) and stream.b_peer == (HOST, b.rtp_port)


async def test_rewritten_sdp(peers: tuple[Peer, Peer]) -> None:
    a, _ = peers
    relay = RelayEngine(
        bind_host=HOST, advertise_host="192.0.2.10", port_min=31100, port_max=31109, timeout=0
    )
    original = sdp_for(a, with_ice=True, version=7)
    before = original.serialize()
    try:
        out = await relay.offer("c", original, from_side=Side.A)
    finally:
        await relay.close()
    assert original.serialize() == before  # the engine works on a copy
    assert out.origin.sess_version == 8
    assert out.connection is not None and out.connection.address == "192.0.2.10"
    media = out.media[0]
    assert media.connection is not None and media.connection.address == "192.0.2.10"
    assert media.get_attr("rtcp") == f"{media.port + 1} IN IP4 192.0.2.10"
    for name in ("candidate", "ice-ufrag", "ice-pwd", "end-of-candidates"):
        assert not media.has_attr(name)
    assert media.rtpmap() == {101: ("telephone-event", 8000, 1)}
    assert relay.ports_in_use == 0


async def test_rejected_and_tcp_lines_get_no_ports(
    engine: RelayEngine, peers: tuple[Peer, Peer]
) -> None:
    a, _ = peers
    sdp = sdp_for(a, video_port=0)
    bfcp = SessionDescription.parse(
        b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        b"m=application 5070 TCP/BFCP *\r\nc=IN IP4 127.0.0.1\r\n"
    ).media[0]
    sdp.media.append(bfcp)
    out = await engine.offer("c", sdp, from_side=Side.A)
    assert [m.port for m in out.media][1:] == [0, 0]
    assert out.media[0].port != 0
    assert engine.ports_in_use == 2  # only the audio pair facing B so far


# --- latching ----------------------------------------------------------------------------


async def test_latching_follows_the_real_source_and_rearms_on_a_new_sdp(
    engine: RelayEngine, peers: tuple[Peer, Peer]
) -> None:
    a, b = peers
    actual = Peer()  # A really sends from here, not from the port its SDP announces
    try:
        a_port, b_port = await connect(engine, a, b)
        b.rtp.sendto(rtp(1), (HOST, b_port))
        assert (await recv(a.rtp))[0] == rtp(1)  # before any packet from A: the SDP address

        actual.rtp.sendto(rtp(2), (HOST, a_port))
        assert (await recv(b.rtp))[0] == rtp(2)
        b.rtp.sendto(rtp(3), (HOST, b_port))
        assert (await recv(actual.rtp))[0] == rtp(3)
        await assert_silent(a.rtp)
        actual.rtcp.sendto(RTCP_RR, (HOST, a_port + 1))
        await recv(b.rtcp)
        b.rtcp.sendto(RTCP_RR, (HOST, b_port + 1))
        assert (await recv(actual.rtcp))[0] == RTCP_RR
        stats = await engine.stats("call-1")
        assert stats is not None and stats.streams[0].a_peer == (HOST, actual.rtp_port)

        # a stranger cannot steal the latched destination
        stranger = Peer()
        stranger.rtp.sendto(rtp(4), (HOST, a_port))
        await recv(b.rtp)
        b.rtp.sendto(rtp(5), (HOST, b_port))
        assert (await recv(actual.rtp))[0] == rtp(5)
        stranger.close()

        # A moves its media in a re-offer: the new SDP address wins until A sends again
        moved = Peer()
        out = await engine.offer("call-1", sdp_for(moved, version=2), from_side=Side.A)
        assert out.media[0].port == b_port
        b.rtp.sendto(rtp(6), (HOST, b_port))
        assert (await recv(moved.rtp))[0] == rtp(6)
        moved.close()
    finally:
        actual.close()


# --- renegotiation -----------------------------------------------------------------------


async def test_reoffers_keep_ports_and_add_streams(
    engine: RelayEngine, peers: tuple[Peer, Peer]
) -> None:
    a, b = peers
    a_port, b_port = await connect(engine, a, b)

    hold = await engine.offer(
        "call-1", sdp_for(a, version=2, direction="sendonly"), from_side=Side.A
    )
    assert hold.media[0].port == b_port and hold.media[0].direction is Direction.SENDONLY
    held = await engine.answer(
        "call-1", sdp_for(b, version=2, direction="recvonly"), from_side=Side.B
    )
    assert held.media[0].port == a_port and held.media[0].direction is Direction.RECVONLY
    assert engine.ports_in_use == 4

    # B re-offers (say, a resume from the station side): same ports, other direction
    resume = await engine.offer("call-1", sdp_for(b, version=3), from_side=Side.B)
    assert resume.media[0].port == a_port
    back = await engine.answer("call-1", sdp_for(a, version=3), from_side=Side.A)
    assert back.media[0].port == b_port

    # A adds video: audio keeps its ports, video gets a new pair on each side
    video_a, video_b = Peer(), Peer()
    try:
        upgrade = await engine.offer(
            "call-1", sdp_for(a, version=4, video_port=video_a.rtp_port), from_side=Side.A
        )
        assert upgrade.media[0].port == b_port and engine.ports_in_use == 6
        done = await engine.answer(
            "call-1", sdp_for(b, version=4, video_port=video_b.rtp_port), from_side=Side.B
        )
        assert done.media[0].port == a_port and engine.ports_in_use == 8
        video_a.rtp.sendto(b"\x80\x60" + bytes(30), (HOST, done.media[1].port))
        assert len((await recv(video_b.rtp))[0]) == 32
        # and drops it again: its ports go back to the pool
        await engine.offer("call-1", sdp_for(a, version=5, video_port=0), from_side=Side.A)
        assert engine.ports_in_use == 4
    finally:
        video_a.close()
        video_b.close()
    a.rtp.sendto(rtp(9), (HOST, a_port))
    assert (await recv(b.rtp))[0] == rtp(9)


# --- media timeout -----------------------------------------------------------------------


async def test_media_timeout_fires_once_and_only_for_silent_answered_calls() -> None:
    relay = RelayEngine(bind_host=HOST, port_min=31200, port_max=31299, timeout=0.3)
    fired: list[tuple[str, float]] = []
    relay.set_timeout_handler(lambda call_id: fired.append((call_id, time.monotonic())))
    peers = [Peer() for _ in range(6)]
    try:
        await relay.start()
        silent_a, silent_b, talk_a, talk_b, held_a, held_b = peers
        await connect(relay, silent_a, silent_b, "silent")
        answered_at = time.monotonic()  # loop.time() is monotonic too
        talk_port, _ = await connect(relay, talk_a, talk_b, "talking")
        await relay.offer("held", sdp_for(held_a, direction="inactive"), from_side=Side.A)
        await relay.answer("held", sdp_for(held_b, direction="inactive"), from_side=Side.B)
        await relay.offer("ringing", sdp_for(None, port=4000), from_side=Side.A)  # unanswered

        # "talking" sends for 0.6 s, twice the timeout: it must not fire meanwhile
        for seq in range(7):
            talk_a.rtp.sendto(rtp(seq), (HOST, talk_port))
            await asyncio.sleep(0.1)
        assert [c for c, _ in fired] == ["silent"]
        assert fired[0][1] - answered_at >= 0.3
        await asyncio.sleep(0.6)  # "talking" stopped 0.6 s ago: now it fires too
        assert [c for c, _ in fired] == ["silent", "talking"]
        await asyncio.sleep(0.3)
        assert len(fired) == 2  # once each, not once per check
    finally:
        await relay.close()
        for peer in peers:
            peer.close()
    assert relay.ports_in_use == 0


async def test_timeout_handler_errors_are_contained() -> None:
    relay = RelayEngine(bind_host=HOST, port_min=31300, port_max=31309, timeout=0.1)

    def broken(call_id: str) -> None:
        raise RuntimeError(call_id)

    relay.set_timeout_handler(broken)
    a, b = Peer(), Peer()
    try:
        await connect(relay, a, b)
        await asyncio.sleep(0.3)
        assert relay.check_timeouts() == []  # already reported once, the watcher survived
        assert relay._watcher is not None and not relay._watcher.done()
    finally:
        await relay.close()
        a.close()
        b.close()


# --- ports -------------------------------------------------------------------------------


def assert_unbound(ports: list[int]) -> None:
    for port in ports:
        for p in (port, port + 1):
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.bind((HOST, p))  # raises if the engine still held it
            probe.close()


async def test_delete_pools_every_port_and_close_releases_them(peers: tuple[Peer, Peer]) -> None:
    a, b = peers
    engine = RelayEngine(bind_host=HOST, port_min=31600, port_max=31699, timeout=0)
    offer = await engine.offer("call-1", sdp_for(a, video_port=40000), from_side=Side.A)
    answer = await engine.answer("call-1", sdp_for(b, video_port=40002), from_side=Side.B)
    used = [m.port for m in (*offer.media, *answer.media)]
    assert engine.ports_in_use == 8 and engine.ports_idle == 0
    final = await engine.delete("call-1")
    assert final is not None and [s.kind for s in final.streams] == ["audio", "video"]
    assert engine.ports_in_use == 0 and engine.session_count == 0
    assert engine.ports_idle == 8  # kept bound for later calls
    assert await engine.delete("call-1") is None and await engine.stats("call-1") is None
    await engine.close()
    assert engine.ports_idle == 0
    assert_unbound(used)


async def test_a_pooled_pair_serves_a_later_call_only_once_quiet(
    peers: tuple[Peer, Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = peers
    monkeypatch.setattr(ports_module, "REUSE_QUIET", 0.3)
    engine = RelayEngine(bind_host=HOST, port_min=31700, port_max=31799, timeout=0)
    try:
        first = (await engine.offer("one", sdp_for(a), from_side=Side.A)).media[0].port
        await engine.delete("one")
        # Too soon: a late packet of call one could still arrive, so a fresh pair is bound.
        second = (await engine.offer("two", sdp_for(a), from_side=Side.A)).media[0].port
        assert second != first and engine.ports_idle == 2
        await engine.delete("two")
        # A stray packet to the pooled pair is dropped and keeps it out of use longer.
        await asyncio.sleep(0.2)
        b.rtp.sendto(rtp(1), (HOST, first))
        await asyncio.sleep(0.2)  # 0.4 s since release, but only 0.2 s of quiet
        third = (await engine.offer("three", sdp_for(a), from_side=Side.A)).media[0].port
        assert third != first
        await assert_silent(a.rtp)
        await asyncio.sleep(0.35)
        fourth = (await engine.offer("four", sdp_for(a), from_side=Side.A)).media[0].port
        assert fourth == first  # quiet long enough: taken from the pool, oldest first
        # The reused pair belongs to the new call: it latches afresh and relays.
        await engine.answer("four", sdp_for(b), from_side=Side.B)
        b.rtp.sendto(rtp(7), (HOST, fourth))
        data, _ = await recv(a.rtp)
        assert parse_rtp(data).sequence == 7
        stats = await engine.stats("four")
        assert stats is not None and stats.streams[0].b_to_a.rtp_packets == 1
    finally:
        await engine.close()
    assert engine.ports_in_use == 0 and engine.ports_idle == 0


async def test_the_pool_is_bounded_and_an_exhausted_range_falls_back_on_it(
    peers: tuple[Peer, Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = peers
    monkeypatch.setattr(ports_module, "POOL_MAX", 1)
    engine = RelayEngine(bind_host=HOST, port_min=31800, port_max=31805, timeout=0)
    try:
        ports = []
        for call in ("x", "y", "z"):
            ports.append((await engine.offer(call, sdp_for(a), from_side=Side.A)).media[0].port)
        assert engine.ports_in_use == 6
        for call in ("x", "y", "z"):
            await engine.delete(call)
        assert engine.ports_idle == 2  # one pair kept, the others closed
        assert_unbound(ports[:2])
        # Every other pair of the range is taken: the pooled pair is used though not quiet.
        taken = [(await engine.offer(c, sdp_for(a), from_side=Side.A)).media[0].port for c in "pq"]
        last = (await engine.offer("r", sdp_for(a), from_side=Side.A)).media[0].port
        assert last == ports[2] and ports[2] not in taken and engine.ports_idle == 0
        with pytest.raises(MediaError, match="port pair"):
            await engine.offer("s", sdp_for(a), from_side=Side.A)
    finally:
        await engine.close()


async def test_allocation_skips_ports_held_by_someone_else(peers: tuple[Peer, Peer]) -> None:
    a, b = peers
    relay = RelayEngine(bind_host=HOST, port_min=31400, port_max=31405, timeout=0)
    squatters = []
    for port in (31400, 31403):  # the RTP port of the first pair, the RTCP port of the second
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((HOST, port))
        squatters.append(sock)
    try:
        out = await relay.offer("one", sdp_for(a), from_side=Side.A)
        assert out.media[0].port == 31404
        with pytest.raises(MediaError, match="port pair"):
            await relay.answer("one", sdp_for(b), from_side=Side.B)
        assert relay.ports_in_use == 2 and relay.session_count == 1
        for sock in squatters:
            sock.close()
        answer = await relay.answer("one", sdp_for(b), from_side=Side.B)
        assert answer.media[0].port in (31400, 31402)
        assert relay.ports_in_use == 4
    finally:
        for sock in squatters:
            sock.close()
        await relay.close()


async def test_bad_requests_leak_nothing(engine: RelayEngine, peers: tuple[Peer, Peer]) -> None:
    a, b = peers
    no_address = SessionDescription.parse(
        b"v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    )
    with pytest.raises(MediaError, match="no c= address"):
        await engine.offer("bad", no_address, from_side=Side.A)
    with pytest.raises(MediaError, match="answer without an offer"):
        await engine.answer("nobody", sdp_for(b), from_side=Side.B)
    assert engine.ports_in_use == 0 and engine.session_count == 0

    tiny = RelayEngine(bind_host=HOST, port_min=31500, port_max=31501, timeout=0)
    try:
        with pytest.raises(MediaError, match="needed 2 port pairs, found 1"):
            await tiny.offer("two-lines", sdp_for(a, video_port=40000), from_side=Side.A)
        assert tiny.ports_in_use == 0 and tiny.session_count == 0
        # a failing re-offer leaves the running call as it was
        out = await tiny.offer("c", sdp_for(a), from_side=Side.A)
        with pytest.raises(MediaError):
            await tiny.answer("c", sdp_for(b), from_side=Side.B)
        assert tiny.ports_in_use == 2 and tiny.session_count == 1
        b.rtp.sendto(rtp(1), (HOST, out.media[0].port))
        await asyncio.sleep(0.05)
        stats = await tiny.stats("c")
        assert stats is not None and stats.streams[0].b_to_a.rtp_packets == 1
    finally:
        await tiny.close()
    assert tiny.ports_in_use == 0


def test_constructor_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="wildcard"):
        RelayEngine(bind_host="0.0.0.0")
    with pytest.raises(ValueError, match="IP address"):
        RelayEngine(bind_host="localhost")
    with pytest.raises(ValueError, match="no even/odd port pair"):
        RelayEngine(port_min=31001, port_max=31001)
    RelayEngine(bind_host="0.0.0.0", advertise_host="192.0.2.1")


# --- announcements -----------------------------------------------------------------------

TE = "101 telephone-event/8000"


def drain(sock: socket.socket) -> None:
    while True:
        try:
            sock.recvfrom(65536)
        except BlockingIOError:
            return


@pytest.mark.parametrize(
    ("offered", "rtpmaps", "answered", "expected"),
    [
        ("8 101", (TE,), "8 101", (8, "PCMA")),
        ("0 101", (TE,), "0 101", (0, "PCMU")),
        ("0 8 101", (TE,), "8", (8, "PCMA")),  # A prefers PCMU; only PCMA was agreed
        ("8 0", (), "0 8", (8, "PCMA")),  # both agreed: A's own preference decides
        ("96 101", ("96 PCMA/8000", TE), "96", (96, "PCMA")),  # A's own dynamic number
    ],
)
async def test_play_sends_the_g711_codec_the_side_negotiated(
    engine: RelayEngine,
    peers: tuple[Peer, Peer],
    offered: str,
    rtpmaps: tuple[str, ...],
    answered: str,
    expected: tuple[int, str],
) -> None:
    a, b = peers
    await engine.offer("call-1", sdp_for(a, formats=offered, rtpmaps=rtpmaps), from_side=Side.A)
    to_a = await engine.answer(
        "call-1", sdp_for(b, formats=answered, rtpmaps=rtpmaps), from_side=Side.B
    )
    await engine.play("call-1", "attente")
    pt, codec = expected
    frames = load_prompt("attente", codec, pt).frames
    data, source = await recv(a.rtp)
    assert source == (HOST, to_a.media[0].port)  # from the port A sends to: symmetric
    first = parse_rtp(data)
    second = parse_rtp((await recv(a.rtp))[0])
    assert (first.payload_type, first.marker, first.payload) == (pt, True, frames[0])
    assert (second.payload_type, second.marker, second.payload) == (pt, False, frames[1])
    assert second.ssrc == first.ssrc and second.sequence == (first.sequence + 1) & 0xFFFF
    assert second.timestamp == (first.timestamp + 160) & 0xFFFFFFFF  # 20 ms at 8 kHz
    assert engine.played_packets("call-1") >= 2

    await engine.stop_playing("call-1")
    drain(a.rtp)
    await assert_silent(a.rtp)
    assert engine.played_packets("call-1") == 0
    await engine.stop_playing("call-1")  # stopping twice is no error
    await assert_silent(b.rtp, wait=0)  # nothing went the other way


async def test_play_towards_b_and_delete_stops_it(
    engine: RelayEngine, peers: tuple[Peer, Peer]
) -> None:
    a, b = peers
    await engine.offer("call-1", sdp_for(a, formats="0 8"), from_side=Side.A)
    await engine.answer("call-1", sdp_for(b, formats="8"), from_side=Side.B)
    await engine.play("call-1", "attente", to_side=Side.B)
    assert parse_rtp((await recv(b.rtp))[0]).payload_type == 8
    await engine.play("call-1", "attente", to_side=Side.B)  # replaces the first player
    packet = parse_rtp((await recv(b.rtp))[0])
    assert packet.marker and packet.payload_type == 8
    await engine.delete("call-1")
    drain(b.rtp)
    await assert_silent(b.rtp)
    await assert_silent(a.rtp, wait=0)


async def test_play_failures_raise_media_error(
    engine: RelayEngine, peers: tuple[Peer, Peer]
) -> None:
    a, b = peers
    with pytest.raises(MediaError, match="no media session"):
        await engine.play("nobody", "attente")

    g722 = ("9 G722/8000",)
    await engine.offer("call-1", sdp_for(a, formats="9 0", rtpmaps=g722), from_side=Side.A)
    # Only A has spoken: no port faces A yet, and B has not said what it receives.
    for side in Side:
        with pytest.raises(MediaError, match=r"negotiated G\.711"):
            await engine.play("call-1", "attente", to_side=side)
    await engine.answer("call-1", sdp_for(b, formats="9", rtpmaps=g722), from_side=Side.B)
    with pytest.raises(MediaError, match=r"negotiated G\.711"):
        await engine.play("call-1", "attente")

    await engine.offer("call-2", sdp_for(a), from_side=Side.A)
    await engine.answer("call-2", sdp_for(b), from_side=Side.B)
    for name in ("introuvable", "../fr/attente", ""):
        with pytest.raises(MediaError, match="cannot play") as info:
            await engine.play("call-2", name)
        assert isinstance(info.value.__cause__, PromptError)
    assert engine.played_packets("call-1") == engine.played_packets("call-2") == 0
    await assert_silent(a.rtp, wait=0.05)


@pytest.mark.skipif(
    relay_module.__file__ is not None and relay_module.__file__.endswith(".so"),
    reason="the relay is compiled (scripts/build-core): it calls the model's methods"
    " directly, so no patch of them can reach it; the interpreted run covers this",
)
async def test_model_errors_come_out_as_media_errors(
    engine: RelayEngine, peers: tuple[Peer, Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = peers

    def refused(self: SessionDescription) -> SessionDescription:
        raise SdpError("a description the model refuses")

    with monkeypatch.context() as patch:
        patch.setattr(SessionDescription, "copy", refused)
        with pytest.raises(MediaError, match="the model refuses") as info:
            await engine.offer("call-1", sdp_for(a), from_side=Side.A)
    assert isinstance(info.value.__cause__, SdpError)
    assert engine.ports_in_use == 0 and engine.session_count == 0


async def test_system_errors_come_out_as_media_errors(
    engine: RelayEngine, peers: tuple[Peer, Peer]
) -> None:
    a, _ = peers
    # An address that is not this host's fails on every port: no search of the range.
    elsewhere = RelayEngine(bind_host="192.0.2.1", port_min=31900, port_max=31999, timeout=0)
    try:
        with pytest.raises(MediaError, match="cannot bind UDP port 31900") as info:
            await elsewhere.offer("call-1", sdp_for(a), from_side=Side.A)
        cause = info.value.__cause__
        assert isinstance(cause, MediaError) and isinstance(cause.__cause__, OSError)
        assert cause.__cause__.errno == errno.EADDRNOTAVAIL
        assert elsewhere.ports_in_use == 0 and elsewhere.session_count == 0
    finally:
        await elsewhere.close()

    for unknown in (engine.delete("x"), engine.stats("x"), engine.stop_playing("x")):
        assert await unknown is None  # unknown calls are no failure


# --- uvloop ------------------------------------------------------------------------------


def test_relay_runs_under_uvloop() -> None:
    async def scenario() -> tuple[int, int]:
        loop = asyncio.get_running_loop()
        assert type(loop).__module__.startswith("uvloop")
        relay = RelayEngine(bind_host=HOST, port_min=31600, port_max=31609, timeout=0.2)
        fired: list[str] = []
        relay.set_timeout_handler(fired.append)
        a, b = Peer(), Peer()
        try:
            a_port, b_port = await connect(relay, a, b)
            for seq in range(20):
                a.rtp.sendto(rtp(seq), (HOST, a_port))
                await recv(b.rtp)
                b.rtp.sendto(rtp(seq), (HOST, b_port))
                await recv(a.rtp)
            await asyncio.sleep(0.5)
            stats = await relay.delete("call-1")
            assert stats is not None and fired == ["call-1"]
            return stats.streams[0].a_to_b.rtp_packets, stats.streams[0].b_to_a.rtp_packets
        finally:
            await relay.close()
            a.close()
            b.close()

    assert uvloop.run(scenario()) == (20, 20)
