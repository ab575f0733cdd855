"""The sans-IO H.323 call against H323Plus ``simple``, over real TCP and UDP sockets.

The driver (tests/h323/peers.py) is test code: a selector loop around H323Call. Each
test starts its own ``simple`` and stops it. ``simple`` prints "User input received"
for each user input it gets and "Started logical channel" for each channel.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import free_port

from gateway.h323.call import (
    Connected,
    DigitReceived,
    H323Call,
    MediaReady,
    Offered,
    OpenH245Connection,
    Released,
)
from gateway.model.causes import Cause
from gateway.model.sdp import SessionDescription

from .peers import CallDriver, SimplePeer, listening_simple

pytestmark = pytest.mark.interop


@pytest.fixture
def rtp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def g711(port: int) -> SessionDescription:
    return SessionDescription.parse(
        (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
            "a=fmtp:101 0-15\r\n"
        ).encode()
    )


def call_simple(
    tmp_path: Path, rtp: socket.socket, *flags: str
) -> tuple[SimplePeer, CallDriver, SessionDescription]:
    """Call a listening ``simple``; the driver once media are up, and the peer's SDP."""
    peer, port = listening_simple(tmp_path, *flags)
    try:
        call = H323Call(outgoing=True, local_address=("127.0.0.1", 1720), now=time.monotonic())
        call.setup(
            destination="station",
            destination_address=("127.0.0.1", port),
            offer=g711(rtp.getsockname()[1]),
            now=time.monotonic(),
        )
        driver = CallDriver.dial(call, ("127.0.0.1", port))
        assert driver.run_until(lambda ev: any(isinstance(e, Connected | Released) for e in ev))
        (connected,) = driver.of(Connected)
        sdp = connected.answer
        if sdp is None:
            assert driver.run_until(
                lambda ev: any(isinstance(e, MediaReady | Released) for e in ev)
            )
            (ready,) = driver.of(MediaReady)
            sdp = ready.sdp
    except BaseException:
        peer.stop()
        raise
    return peer, driver, sdp


def check_media_and_digits(
    peer: SimplePeer, driver: CallDriver, sdp: SessionDescription, rtp: socket.socket
) -> None:
    audio = sdp.media[0]
    assert audio.port and audio.formats[0] in ("8", "0")
    data, source = rtp.recvfrom(2048)
    assert source == ("127.0.0.1", audio.port)  # simple sends from where it receives
    assert data[0] >> 6 == 2 and data[1] & 0x7F == int(audio.formats[0])
    driver.call.send_digit("5", 200, time.monotonic())
    driver.pump()
    assert peer.wait_output('User input received: "5"')
    peer.type("7")
    assert driver.run_until(lambda ev: any(isinstance(e, DigitReceived) for e in ev), 5)
    assert [e.digit for e in driver.of(DigitReceived)] == ["7"]


def hang_up(peer: SimplePeer, driver: CallDriver) -> None:
    driver.call.release(Cause.NORMAL_CLEARING, time.monotonic())
    driver.pump()
    assert peer.wait_output("has cleared the call")
    assert driver.call.ended


def test_fast_start_call(tmp_path: Path, rtp: socket.socket) -> None:
    peer, driver, sdp = call_simple(tmp_path, rtp, "-f")
    try:
        assert driver.call.session is None  # fastStart and no H.245 at all
        check_media_and_digits(peer, driver, sdp, rtp)
        hang_up(peer, driver)
    finally:
        driver.close()
        peer.stop()


def test_slow_start_with_tunnelled_h245(tmp_path: Path, rtp: socket.socket) -> None:
    peer, driver, sdp = call_simple(tmp_path, rtp)
    try:
        assert driver.of(Connected) == [Connected(None)]
        assert driver.call.session is not None and driver.call.session.msd_done
        assert driver.call.h245_data_to_send() == [] and driver.sent_h245 == 0
        check_media_and_digits(peer, driver, sdp, rtp)
        hang_up(peer, driver)
    finally:
        driver.close()
        peer.stop()


def test_separate_h245_connection(tmp_path: Path, rtp: socket.socket) -> None:
    peer, driver, sdp = call_simple(tmp_path, rtp, "-T")
    try:
        assert driver.of(OpenH245Connection) and driver.h245 is not None
        assert driver.sent_h245 > 0
        check_media_and_digits(peer, driver, sdp, rtp)
        hang_up(peer, driver)
    finally:
        driver.close()
        peer.stop()


@pytest.mark.parametrize("fast", [True, False], ids=["fast-start", "slow-start"])
def test_simple_calls_the_gateway(tmp_path: Path, rtp: socket.socket, fast: bool) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(10)
    port = listener.getsockname()[1]
    args = ["-n", "-i", "127.0.0.1", "-x", str(free_port()), "-u", "kiosk"]
    args += ["-s", "Null Audio", *(["-f"] if fast else []), f"vrgw@127.0.0.1:{port}"]
    peer = SimplePeer(args, tmp_path)
    driver: CallDriver | None = None
    try:
        conn, _ = listener.accept()
        call = H323Call(outgoing=False, local_address=("127.0.0.1", port), now=time.monotonic())
        driver = CallDriver(call, conn)
        assert driver.run_until(lambda ev: any(isinstance(e, Offered | Released) for e in ev))
        (offered,) = driver.of(Offered)
        assert offered.destination == "vrgw" and offered.calling == "kiosk"
        assert offered.display == "kiosk"
        if fast:
            assert offered.offer is not None and offered.offer.media[0].formats[:2] == ["8", "0"]
        else:
            assert offered.offer is None
        call.alerting(time.monotonic())
        call.connect(g711(rtp.getsockname()[1]), time.monotonic())
        driver.pump()
        if not fast:
            assert driver.run_until(lambda ev: any(isinstance(e, MediaReady) for e in ev))
        data, _ = rtp.recvfrom(2048)
        assert data[0] >> 6 == 2
        assert peer.wait_output("In call with")
        peer.type("4")
        assert driver.run_until(lambda ev: any(isinstance(e, DigitReceived) for e in ev), 5)
        peer.type("H")
        assert driver.run_until(lambda ev: any(isinstance(e, Released) for e in ev), 5)
        assert driver.of(Released)[0].cause is Cause.NORMAL_CLEARING
    finally:
        if driver is not None:
            driver.close()
        listener.close()
        peer.stop()


def _count_rtp(rtp: socket.socket, seconds: float) -> int:
    """Packets received during ``seconds`` (what was queued before is drained first)."""
    rtp.settimeout(0.01)
    try:
        while True:
            rtp.recvfrom(2048)
    except TimeoutError:
        pass
    count, end = 0, time.monotonic() + seconds
    rtp.settimeout(0.1)
    while time.monotonic() < end:
        try:
            rtp.recvfrom(2048)
            count += 1
        except TimeoutError:
            pass
    return count


@pytest.mark.parametrize("flags", [("-f",), ()], ids=["fast-start", "slow-start"])
def test_hold_and_resume(tmp_path: Path, rtp: socket.socket, flags: tuple[str, ...]) -> None:
    peer, driver, _ = call_simple(tmp_path, rtp, *flags)
    port = rtp.getsockname()[1]
    try:
        assert _count_rtp(rtp, 0.5) > 10
        driver.call.update_media(
            SessionDescription.parse(g711(port).serialize() + b"a=sendonly\r\n"), time.monotonic()
        )
        driver.run_until(lambda ev: False, 1.0)  # the empty TCS and simple's channel close
        assert _count_rtp(rtp, 1.0) == 0  # H.323 8.4.6: simple stopped sending
        before = len(driver.of(MediaReady))
        driver.call.update_media(g711(port), time.monotonic())
        assert driver.run_until(
            lambda ev: len([e for e in ev if isinstance(e, MediaReady)]) > before
        )
        driver.run_until(lambda ev: False, 1.0)  # simple reopens its channel to us
        assert _count_rtp(rtp, 0.5) > 10
        hang_up(peer, driver)
    finally:
        driver.close()
        peer.stop()
