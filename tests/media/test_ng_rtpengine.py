"""What only the rtpengine engine has: its own media timeout learnt by polling, and a
control channel that can fail. Against a real rtpengine (userspace mode, loopback)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import bencoder
import pytest
from rtpengine_peer import Rtpengine, start_rtpengine
from test_engine_contract import HOST, Peer, drain, recv, rtp

from gateway.media.engine import MediaError
from gateway.media.rtpengine import RtpengineEngine, parse_address
from gateway.model.events import Side

TIMEOUT = 2  # rtpengine's --timeout in these tests, seconds


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rtpengine]:
    started = start_rtpengine(tmp_path_factory.mktemp("rtpengine"), timeout=TIMEOUT)
    yield started
    started.stop()


@pytest.mark.interop
async def test_a_call_rtpengine_drops_reaches_the_timeout_handler_once(daemon: Rtpengine) -> None:
    engine = RtpengineEngine(parse_address(daemon.ng_address), poll_interval=0.3)
    fired: list[tuple[str, float]] = []
    engine.set_timeout_handler(lambda call_id: fired.append((call_id, time.monotonic())))
    peers = [Peer() for _ in range(4)]
    silent_a, silent_b, talk_a, talk_b = peers
    try:
        await engine.start()
        created = time.monotonic()
        for call, a, b in (("silent", silent_a, silent_b), ("talking", talk_a, talk_b)):
            await engine.offer(call, a.sdp(), from_side=Side.A)
            await engine.answer(call, b.sdp(formats="8 101"), from_side=Side.B)
        started = time.monotonic()
        before = await engine.stats("talking")
        assert before is not None and before.streams[0].a_to_b.rtp_packets == 0
        to_a = engine._sessions["talking"].facing[Side.A].media[0].port
        # "talking" sends for 2.5 timeouts; "silent" never does
        while time.monotonic() - started < 2.5 * TIMEOUT:
            talk_a.rtp.sendto(rtp(1, bytes(160)), (HOST, to_a))
            await asyncio.sleep(0.1)
        drain(talk_b.rtp)
        assert [c for c, _ in fired] == ["silent"]
        # rtpengine keeps packet times in whole seconds: its timeout ends within a second
        assert fired[0][1] - created >= TIMEOUT - 1
        assert engine.session_count == 1 and await engine.stats("silent") is None
        assert await engine.delete("silent") is None  # gone already: no counters
        stats = await engine.stats("talking")
        assert stats is not None and stats.streams[0].a_to_b.rtp_packets > 20
        # now "talking" stops too
        deadline = time.monotonic() + 4 * TIMEOUT
        while len(fired) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert [c for c, _ in fired] == ["silent", "talking"]
        await asyncio.sleep(1.0)
        assert len(fired) == 2 and engine.session_count == 0 and engine.ports_in_use == 0
    finally:
        await engine.close()
        for peer in peers:
            peer.close()


async def test_no_rtpengine_is_a_media_error_after_retransmissions() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))  # a port that takes datagrams and never answers
    try:
        engine = RtpengineEngine(
            (HOST, sock.getsockname()[1]), retransmit_interval=0.05, attempts=3
        )
        with pytest.raises(MediaError, match=r"start: .*ping: no reply after 3 attempts"):
            await engine.start()
        await asyncio.sleep(0.05)
        sock.setblocking(False)
        seen = []
        while True:
            try:
                seen.append(sock.recv(1000))
            except BlockingIOError:
                break
        assert len(seen) == 3 and len(set(seen)) == 1  # the same datagram, same cookie
        assert bencoder.bdecode(seen[0].partition(b" ")[2]) == {b"command": b"ping"}
        await engine.close()
    finally:
        sock.close()


@pytest.mark.interop
async def test_error_replies_are_media_errors_and_leave_the_call_as_it_was(
    daemon: Rtpengine, tmp_path: Path
) -> None:
    engine = RtpengineEngine(parse_address(daemon.ng_address), poll_interval=0)
    a, b = Peer(), Peer()
    try:
        await engine.start()
        to_b = await engine.offer("c", a.sdp(), from_side=Side.A)
        await engine.answer("c", b.sdp(formats="8 101"), from_side=Side.B)
        # rtpengine cannot read this prompt: its error reply is the MediaError's text
        engine.prompt_dir = tmp_path
        with pytest.raises(MediaError, match=r"play 'attente': rtpengine at .*playback"):
            await engine.play("c", "attente")
        # the call still relays
        b.rtp.sendto(rtp(1, bytes(160)), (HOST, to_b.media[0].port))
        assert len((await recv(a.rtp))[0]) == 172
    finally:
        await engine.close()
        a.close()
        b.close()


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:22222") == ("127.0.0.1", 22222)
    assert parse_address("[::1]:2223") == ("::1", 2223)
    for bad in ("localhost:22222", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:x"):
        with pytest.raises(ValueError):
            parse_address(bad)
