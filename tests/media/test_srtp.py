"""SDES (RFC 4568) parsing and the relay's SRTP termination (RFC 3711) per leg.

The sans-IO part: ``a=crypto`` values in and out, which offers count as encrypted.
The relay part runs real UDP sockets on 127.0.0.1: an SRTP kiosk (libsrtp through
``pylibsrtp``, the same library but its own contexts and keys) and a plain station.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket

import pylibsrtp
import pytest
from harness import rtp_ports

from gateway.media.engine import MediaError
from gateway.media.prompts import early_answer
from gateway.media.relay import RelayEngine
from gateway.media.rtp import RtpPacket
from gateway.media.rtpengine import RtpengineEngine
from gateway.media.srtp import (
    AEAD_AES_128_GCM,
    AES_CM_128_HMAC_SHA1_80,
    Crypto,
    SdesError,
    SrtpLeg,
    new_crypto,
    offer_encrypted,
    parse_crypto,
    plain_profile,
    secure_profile,
)
from gateway.model.events import Side
from gateway.model.sdp import SessionDescription

HOST = "127.0.0.1"
KEY30 = bytes(range(30))
KEY28 = bytes(range(28))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- a=crypto (RFC 4568 9.1) --------------------------------------------------------


def test_parse_aes_cm_with_lifetime() -> None:
    crypto = parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY30)}|2^20")
    assert crypto == Crypto(1, AES_CM_128_HMAC_SHA1_80, KEY30)


def test_parse_gcm_round_trip() -> None:
    crypto = Crypto(7, AEAD_AES_128_GCM, KEY28)
    assert parse_crypto(crypto.serialize()) == crypto
    assert crypto.serialize() == f"7 AEAD_AES_128_GCM inline:{b64(KEY28)}"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("1 AES_CM_128_HMAC_SHA1_80", "needs tag"),
        ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA", "tag"),
        (f"1 AES_256_CM_HMAC_SHA1_80 inline:{b64(bytes(46))}", "not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_32 inline:{b64(KEY30)}", "not supported"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY30)}|2^20|1:4", "MKI"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY30)};inline:{b64(KEY30)}", "several"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY30)} UNENCRYPTED_SRTP", "session"),
        ("1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!", "base64"),
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY28)}", "30-byte"),
        (f"1 AEAD_AES_128_GCM inline:{b64(KEY30)}", "28-byte"),
        (f"1 AES_CM_128_HMAC_SHA1_80 uri:{b64(KEY30)}", "inline"),
    ],
)
def test_parse_refuses(value: str, why: str) -> None:
    with pytest.raises(SdesError, match=why):
        parse_crypto(value)


def test_profiles() -> None:
    assert plain_profile("RTP/SAVP") == "RTP/AVP"
    assert plain_profile("RTP/SAVPF") == "RTP/AVPF"
    assert plain_profile("RTP/AVP") == "RTP/AVP"
    assert secure_profile("RTP/AVP") == "RTP/SAVP"
    assert secure_profile("RTP/AVPF") == "RTP/SAVPF"


def sdp_text(proto: str, crypto: list[str], port: int = 40000, video: bool = False) -> str:
    lines = [
        "v=0",
        "o=- 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {port} {proto} 0",
        "a=rtpmap:0 PCMU/8000",
        *(f"a=crypto:{c}" for c in crypto),
    ]
    if video:
        lines += [f"m=video {port + 2} RTP/AVP 96", "a=rtpmap:96 H264/90000"]
    return "\r\n".join(lines) + "\r\n"


def parse(text: str) -> SessionDescription:
    return SessionDescription.parse(text.encode())


def test_offer_encrypted() -> None:
    good = f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(KEY30)}"
    assert offer_encrypted(parse(sdp_text("RTP/SAVP", [good])))
    assert not offer_encrypted(parse(sdp_text("RTP/AVP", [])))
    # a=crypto on RTP/AVP is "best effort" SRTP: not what a requirement accepts
    assert not offer_encrypted(parse(sdp_text("RTP/AVP", [good])))
    # only suites the relay lacks
    assert not offer_encrypted(
        parse(sdp_text("RTP/SAVP", [f"1 AES_256_CM_HMAC_SHA1_80 inline:{b64(bytes(46))}"]))
    )
    # every live stream must be encrypted, a plain video line is not
    assert not offer_encrypted(parse(sdp_text("RTP/SAVP", [good], video=True)))


# --- SrtpLeg (RFC 3711 with libsrtp) ------------------------------------------------


def peer_sessions(sends: Crypto, receives: Crypto) -> tuple[pylibsrtp.Session, pylibsrtp.Session]:
    """The far side's own contexts: it protects with its key, unprotects with ours."""
    profile = {
        AES_CM_128_HMAC_SHA1_80: pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
        AEAD_AES_128_GCM: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    }
    tx = pylibsrtp.Session(
        pylibsrtp.Policy(sends.key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, 0, profile[sends.suite])
    )
    rx = pylibsrtp.Session(
        pylibsrtp.Policy(
            receives.key, pylibsrtp.Policy.SSRC_ANY_INBOUND, 0, profile[receives.suite]
        )
    )
    return tx, rx


def rtp(seq: int, payload: bytes = b"", ssrc: int = 0xAB) -> bytes:
    return RtpPacket(0, seq, seq * 160, ssrc, payload=payload or os.urandom(160)).serialize()


@pytest.mark.parametrize("suite", [AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM])
def test_srtp_leg_both_ways(suite: str) -> None:
    theirs, ours = new_crypto(1, suite), new_crypto(1, suite)
    leg = SrtpLeg(theirs, ours)
    tx, rx = peer_sessions(theirs, ours)
    plain = rtp(1)
    protected = tx.protect(plain)
    assert protected != plain and len(protected) == len(plain) + (10 if "SHA1" in suite else 16)
    assert leg.unprotect_rtp(protected) == plain
    assert leg.unprotect_rtp(protected) is None  # a replay (RFC 3711 3.3.2)
    tampered = bytearray(tx.protect(rtp(2)))
    tampered[20] ^= 1
    assert leg.unprotect_rtp(bytes(tampered)) is None  # authentication fails
    assert leg.failures == 2
    sent = rtp(5)
    back = leg.protect_rtp(sent)
    assert back is not None and back[12:172] != sent[12:] and rx.unprotect(back) == sent
    rr = bytes([0x80, 201, 0, 1, 0, 0, 0, 0xAB])
    srtcp = leg.protect_rtcp(rr)
    assert srtcp is not None and rx.unprotect_rtcp(srtcp) == rr
    assert leg.unprotect_rtcp(tx.protect_rtcp(rr)) == rr


# --- the relay ends SRTP on the kiosk's leg ----------------------------------------


class Udp:
    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])

    async def recv(self, timeout: float = 1.0) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            try:
                return self.sock.recv(65536)
            except BlockingIOError:
                await asyncio.sleep(0.005)
        raise TimeoutError("nothing received")


def crypto_of(sdp: SessionDescription) -> list[Crypto]:
    return [parse_crypto(v) for v in sdp.media[0].get_attrs("crypto")]


def relay_engine() -> RelayEngine:
    """A relay on 40 ports of this worker's slice of the test ports."""
    low, high = rtp_ports(40)
    return RelayEngine(port_min=low, port_max=high, timeout=0)


@pytest.mark.parametrize("suite", [AES_CM_128_HMAC_SHA1_80, AEAD_AES_128_GCM])
async def test_relay_terminates_srtp_towards_plain_station(suite: str) -> None:
    engine = relay_engine()
    kiosk, station = Udp(), Udp()
    kiosk_key = new_crypto(2, suite)
    offer = parse(
        sdp_text(
            "RTP/SAVP",
            [f"1 AES_256_CM_HMAC_SHA1_80 inline:{b64(bytes(46))}", kiosk_key.serialize()],
            port=kiosk.port,
        )
    )
    try:
        to_station = await engine.offer("c1", offer, from_side=Side.A)
        # Honest SDP towards the plain side: RTP/AVP and no key at all.
        assert to_station.media[0].proto == "RTP/AVP"
        assert to_station.media[0].get_attrs("crypto") == []
        answer = parse(sdp_text("RTP/AVP", [], port=station.port))
        to_kiosk = await engine.answer("c1", answer, from_side=Side.B)
        assert to_kiosk.media[0].proto == "RTP/SAVP"
        [relay_key] = crypto_of(to_kiosk)
        # the tag and suite the kiosk's usable line had, with a key of the relay's own
        assert (relay_key.tag, relay_key.suite) == (2, suite)
        assert relay_key.key != kiosk_key.key
        kiosk_tx, kiosk_rx = peer_sessions(kiosk_key, relay_key)
        relay_a = ("127.0.0.1", to_kiosk.media[0].port)  # the relay's port facing A
        relay_b = ("127.0.0.1", to_station.media[0].port)

        # kiosk -> station: SRTP in, plain RTP out, byte for byte
        for seq in range(1, 4):
            plain = rtp(seq)
            kiosk.sock.sendto(kiosk_tx.protect(plain), relay_a)
            assert await station.recv() == plain
        # a forged packet (bad tag) goes nowhere
        forged = bytearray(kiosk_tx.protect(rtp(9)))
        forged[-1] ^= 0xFF
        kiosk.sock.sendto(bytes(forged), relay_a)
        # station -> kiosk: plain in, SRTP out that only the relay's key opens
        for seq in range(1, 4):
            plain = rtp(seq, ssrc=0xCD)
            station.sock.sendto(plain, relay_b)
            got = await kiosk.recv()
            assert got != plain and kiosk_rx.unprotect(got) == plain
        with pytest.raises(TimeoutError):
            await station.recv(0.2)
        stats = await engine.stats("c1")
        assert stats is not None
        assert stats.streams[0].a_to_b.rtp_packets == 4  # counted as received, forged too

        # A re-offer from the kiosk with the same key keeps the relay's key (7.1.4).
        again = await engine.offer("c1", offer, from_side=Side.A)
        assert again.media[0].proto == "RTP/AVP"
        to_kiosk2 = await engine.answer("c1", answer, from_side=Side.B)
        assert crypto_of(to_kiosk2) == [relay_key]
        # A re-offer from the station goes to the kiosk as SRTP, with the relay's key.
        reoffer = await engine.offer("c1", answer, from_side=Side.B)
        assert reoffer.media[0].proto == "RTP/SAVP" and crypto_of(reoffer) == [relay_key]
        reanswer = parse(sdp_text("RTP/SAVP", [kiosk_key.serialize()], port=kiosk.port))
        back = await engine.answer("c1", reanswer, from_side=Side.A)
        assert back.media[0].proto == "RTP/AVP" and back.media[0].get_attrs("crypto") == []
    finally:
        await engine.close()
        kiosk.sock.close()
        station.sock.close()


async def test_relay_refuses_srtp_line_without_usable_crypto() -> None:
    engine = relay_engine()
    offer = parse(sdp_text("RTP/SAVP", [f"1 AES_256_CM_HMAC_SHA1_80 inline:{b64(bytes(46))}"]))
    try:
        out = await engine.offer("c2", offer, from_side=Side.A)
        assert out.media[0].port == 0  # RFC 4568 7.1.2: no acceptable crypto
        assert engine.ports_in_use == 0
    finally:
        await engine.close()


async def test_plain_call_keeps_the_zero_copy_path() -> None:
    engine = relay_engine()
    kiosk, station = Udp(), Udp()
    try:
        await engine.offer("c3", parse(sdp_text("RTP/AVP", [], port=kiosk.port)), from_side=Side.A)
        to_a = await engine.answer(
            "c3", parse(sdp_text("RTP/AVP", [], port=station.port)), from_side=Side.B
        )
        session = engine._sessions["c3"]
        for leg in session.streams[0].legs.values():
            assert leg.srtp is None
            assert not (leg.rtp_in or leg.rtp_out or leg.rtcp_in or leg.rtcp_out)
        plain = rtp(1)
        kiosk.sock.sendto(plain, ("127.0.0.1", to_a.media[0].port))
        assert await station.recv() == plain
    finally:
        await engine.close()
        kiosk.sock.close()
        station.sock.close()


async def test_rtpengine_engine_refuses_srtp_before_asking_rtpengine() -> None:
    """Documented choice: SRTP is ended by the built-in relay; the rtpengine engine
    refuses it (no ng request is sent: nothing listens on the address given)."""
    engine = RtpengineEngine(("127.0.0.1", 9))
    offer = parse(sdp_text("RTP/SAVP", [Crypto(1, AES_CM_128_HMAC_SHA1_80, KEY30).serialize()]))
    with pytest.raises(MediaError, match="SRTP needs the built-in relay"):
        await engine.offer("c4", offer, from_side=Side.A)


async def test_announcement_to_an_srtp_kiosk_is_protected() -> None:
    """A waiting SRTP kiosk gets a 183 with the relay's key, and the announcement as
    SRTP that this key opens (the controller's early answer is plain on the relay's
    side, gateway.media.prompts.early_answer)."""
    engine = relay_engine()
    kiosk = Udp()
    kiosk_key = new_crypto(1, AES_CM_128_HMAC_SHA1_80)
    offer = parse(sdp_text("RTP/SAVP", [kiosk_key.serialize()], port=kiosk.port))
    try:
        await engine.offer("c5", offer, from_side=Side.A)
        made = early_answer(offer)
        assert made is not None
        early, pt, _ = made
        assert early.media[0].proto == "RTP/AVP" and not early.media[0].get_attrs("crypto")
        to_kiosk = await engine.answer("c5", early, from_side=Side.B)
        assert to_kiosk.media[0].proto == "RTP/SAVP"
        [relay_key] = crypto_of(to_kiosk)
        _, kiosk_rx = peer_sessions(kiosk_key, relay_key)
        # the kiosk's first packet latches the relay to it (symmetric RTP)
        kiosk_tx, _ = peer_sessions(kiosk_key, relay_key)
        kiosk.sock.sendto(kiosk_tx.protect(rtp(1)), ("127.0.0.1", to_kiosk.media[0].port))
        await engine.play("c5", "attente")
        for _ in range(3):
            packet = kiosk_rx.unprotect(await kiosk.recv())
            assert packet[1] & 0x7F == pt and len(packet) == 12 + 160
    finally:
        await engine.close()
        kiosk.sock.close()


async def test_a_kiosk_that_rekeys_keeps_the_relays_key_and_context() -> None:
    engine = relay_engine()
    kiosk, station = Udp(), Udp()
    first, second = new_crypto(1, AEAD_AES_128_GCM), new_crypto(1, AEAD_AES_128_GCM)
    plain_answer = parse(sdp_text("RTP/AVP", [], port=station.port))
    try:
        await engine.offer(
            "c6", parse(sdp_text("RTP/SAVP", [first.serialize()], kiosk.port)), from_side=Side.A
        )
        to_kiosk = await engine.answer("c6", plain_answer, from_side=Side.B)
        [relay_key] = crypto_of(to_kiosk)
        relay_a = ("127.0.0.1", to_kiosk.media[0].port)
        old_tx, _ = peer_sessions(first, relay_key)
        kiosk.sock.sendto(old_tx.protect(rtp(1)), relay_a)
        await station.recv()
        # RFC 4568 7.1.4: a re-offer with a new key; the relay's answer keeps its own.
        await engine.offer(
            "c6", parse(sdp_text("RTP/SAVP", [second.serialize()], kiosk.port)), from_side=Side.A
        )
        again = await engine.answer("c6", plain_answer, from_side=Side.B)
        assert crypto_of(again) == [relay_key]
        new_tx, _ = peer_sessions(second, relay_key)
        kiosk.sock.sendto(old_tx.protect(rtp(2)), relay_a)  # the old key: refused
        with pytest.raises(TimeoutError):
            await station.recv(0.2)
        plain = rtp(3)
        kiosk.sock.sendto(new_tx.protect(plain), relay_a)
        assert await station.recv() == plain
    finally:
        await engine.close()
        kiosk.sock.close()
        station.sock.close()


async def test_srtcp_muxed_on_the_rtp_port() -> None:
    """RFC 5761: RTCP on the RTP port is told apart by its packet type; SRTCP from the
    kiosk is unprotected as RTCP (RFC 3711 3.4), RTCP to it protected as SRTCP."""
    engine = relay_engine()
    kiosk, station = Udp(), Udp()
    key = new_crypto(1, AES_CM_128_HMAC_SHA1_80)
    mux = sdp_text("RTP/SAVP", [key.serialize()], kiosk.port) + "a=rtcp-mux\r\n"
    try:
        await engine.offer("c7", parse(mux), from_side=Side.A)
        answer = parse(sdp_text("RTP/AVP", [], port=station.port) + "a=rtcp-mux\r\n")
        to_kiosk = await engine.answer("c7", answer, from_side=Side.B)
        [relay_key] = crypto_of(to_kiosk)
        tx, rx = peer_sessions(key, relay_key)
        rr = bytes([0x80, 201, 0, 1, 0, 0, 0, 0xAB])
        kiosk.sock.sendto(tx.protect_rtcp(rr), ("127.0.0.1", to_kiosk.media[0].port))
        assert await station.recv() == rr
        station.sock.sendto(
            rr, ("127.0.0.1", engine._sessions["c7"].streams[0].legs[Side.B].port or 0)
        )
        assert rx.unprotect_rtcp(await kiosk.recv()) == rr
        stats = await engine.stats("c7")
        assert stats is not None and stats.streams[0].a_to_b.rtcp_packets == 1
    finally:
        await engine.close()
        kiosk.sock.close()
        station.sock.close()
