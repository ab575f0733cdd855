"""Audio transcoding (gateway/media/transcode.py): packets, sound and offer/answer.

The sound is checked independently of the code under test where it can be: G.711 is
made and read with the project's own G.711 coder (gateway/media/prompts.py, ITU-T G.711
written out), levels and tones are measured with a Goertzel filter written here; only
G.722 itself is made and read with FFmpeg (PyAV), there being no second G.722 at hand,
put at the ITU-T G.722 level (14-bit PCM: FFmpeg's G.722 reads 16-bit samples as 15-bit
ones, hence the factor 2 in the helpers). The interop test checks that level against
PJSIP's own G.722.
The relay tests use real UDP sockets on 127.0.0.1 (ports 32600-32699).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from av.audio.codeccontext import AudioCodecContext
from av.audio.frame import AudioFrame
from g711_reference import alaw_decode, ulaw_decode
from g711_reference import decode as g711_decode
from g711_reference import encode as g711_encode

from gateway.call.records import CallRecord
from gateway.media.relay import RelayEngine
from gateway.media.rtp import RtpPacket, parse_rtp
from gateway.media.rtpengine import RtpengineEngine, parse_address
from gateway.media.transcode import (
    G722,
    PASS_THROUGH,
    PCMA,
    PCMU,
    AudioCodec,
    Transcoder,
    augment_offer,
    law_table,
    level_table,
    plan_answer,
)
from gateway.model.causes import Cause
from gateway.model.events import Side
from gateway.model.sdp import MediaDescription, SessionDescription
from gateway.state.records import RecordQuery, SqliteRecordStore

HOST = "127.0.0.1"
SSRC = 0x1234ABCD
TE = "101 telephone-event/8000"

# --- signals -----------------------------------------------------------------------------


def tone(freq: float, rate: int, seconds: float, dbfs: float) -> list[int]:
    amplitude = 32767 * 10 ** (dbfs / 20)
    return [
        round(amplitude * math.sin(2 * math.pi * freq * i / rate))
        for i in range(int(rate * seconds))
    ]


def rms_dbfs(samples: list[int]) -> float:
    power = sum(s * s for s in samples) / len(samples)
    return 10 * math.log10(max(power, 1e-9) / (32767**2 / 2))  # a full-scale sine is 0 dBFS


def tone_dbfs(samples: list[int], rate: int, freq: float) -> float:
    """The level of one frequency (Goertzel), in dBFS of a sine."""
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    power = s1 * s1 + s2 * s2 - k * s1 * s2
    amplitude = 2 * math.sqrt(max(power, 0.0)) / len(samples)
    return 20 * math.log10(max(amplitude, 1e-9) / 32767)


def _context(name: str, mode: str) -> AudioCodecContext:
    context = av.CodecContext.create(name, "w" if mode == "w" else "r")
    assert isinstance(context, AudioCodecContext)
    context.sample_rate = 16000
    context.layout = "mono"
    if mode == "w":
        context.format = "s16"
        context.open()
    return context


def g722_encode(samples: list[int]) -> bytes:
    """16 kHz samples to G.722 octets (FFmpeg), 20 ms at a time."""
    encoder = _context("g722", "w")
    out = bytearray()
    for start in range(0, len(samples), 320):
        chunk = samples[start : start + 320]
        frame = AudioFrame(format="s16", layout="mono", samples=len(chunk))
        frame.sample_rate = 16000
        halved = (int(s / 2) for s in chunk)  # FFmpeg's 15-bit reading of 16-bit samples
        frame.planes[0].update(b"".join(s.to_bytes(2, "little", signed=True) for s in halved))
        for packet in encoder.encode(frame):
            out += bytes(packet)
    for packet in encoder.encode(None):
        out += bytes(packet)
    return bytes(out)


def g722_decode(data: bytes) -> list[int]:
    decoder = _context("g722", "r")
    samples: list[int] = []
    for frame in decoder.decode(av.Packet(data)):
        raw = bytes(frame.planes[0])[: 2 * frame.samples]
        samples += [
            max(-32768, min(32767, 2 * int.from_bytes(raw[i : i + 2], "little", signed=True)))
            for i in range(0, len(raw), 2)
        ]
    return samples


def packets(
    payload: bytes, pt: int, *, first_seq: int = 65530, first_ts: int = 4294967000
) -> list[bytes]:
    """20 ms RTP packets (160 octets: one per 8 kHz tick for G.711 and G.722)."""
    out = []
    for n, start in enumerate(range(0, len(payload), 160)):
        out.append(
            RtpPacket(
                pt,
                (first_seq + n) & 0xFFFF,
                (first_ts + 160 * n) & 0xFFFFFFFF,
                SSRC,
                payload=payload[start : start + 160],
                marker=n == 0,
            ).serialize()
        )
    return out


def run(transcoder: Transcoder, sent: list[bytes], pt: int) -> bytes:
    """Send packets through; check the header of each; return the payloads joined."""
    payload = bytearray()
    for packet in sent:
        result = transcoder(packet)
        assert result is not None
        before, after = parse_rtp(packet), parse_rtp(result)
        assert after.payload_type == pt
        assert (after.sequence, after.timestamp, after.ssrc, after.marker) == (
            before.sequence,
            before.timestamp,
            before.ssrc,
            before.marker,
        )
        assert len(after.payload) == len(before.payload)  # one octet per 8 kHz tick
        payload += after.payload
    return bytes(payload)


# --- G.711 laws ----------------------------------------------------------------------------


@pytest.mark.parametrize(("source", "target"), [(PCMA, PCMU), (PCMU, PCMA)])
def test_law_tables_keep_every_sample_within_one_step(
    source: AudioCodec, target: AudioCodec
) -> None:
    table = law_table(source, target)
    decode_in = alaw_decode if source is PCMA else ulaw_decode
    decode_out = ulaw_decode if source is PCMA else alaw_decode
    for code in range(256):
        before, after = decode_in(code), decode_out(table[code])
        # G.711 steps are 1/16 to 1/32 of the segment: allow one step and a bit.
        assert abs(after - before) <= max(abs(before) / 12, 40), (code, before, after)
        assert (after >= 0) == (before >= 0) or abs(before) < 40


@pytest.mark.parametrize("law", [PCMA, PCMU])
def test_level_tables_move_each_sample_by_6_db(law: AudioCodec) -> None:
    decode = alaw_decode if law is PCMA else ulaw_decode
    up, down = level_table(law, 1), level_table(law, -1)
    for code in range(256):
        x = decode(code)
        if 256 <= abs(x) <= 16000:  # above the linear segments, below saturation
            assert abs(decode(up[code]) - 2 * x) <= abs(x) / 8, (code, x)
        if abs(x) >= 512:
            assert abs(decode(down[code]) - x / 2) <= abs(x) / 16, (code, x)
    loudest = max(range(256), key=lambda c: decode(c))
    assert decode(up[loudest]) == decode(loudest)  # saturates, never wraps


def test_alaw_to_ulaw_keeps_level_and_tone() -> None:
    sound = tone(697, 8000, 0.5, -10)
    out = run(Transcoder({8: (PCMA, PCMU, 0)}), packets(g711_encode(sound, "PCMA"), 8), 0)
    heard = g711_decode(out, "PCMU")
    assert abs(rms_dbfs(heard) - rms_dbfs(sound)) < 0.3
    assert abs(tone_dbfs(heard, 8000, 697) - (-10)) < 0.5


# --- G.722 <-> G.711 -----------------------------------------------------------------------


@pytest.mark.parametrize("law", ["PCMA", "PCMU"])
def test_g711_to_g722_and_back_keeps_level_and_frequency(law: str) -> None:
    pt = 8 if law == "PCMA" else 0
    codec = PCMA if law == "PCMA" else PCMU
    sound = tone(1000, 8000, 1.0, -12)
    wide = run(Transcoder({pt: (codec, G722, 9)}), packets(g711_encode(sound, law), pt), 9)
    heard_wide = g722_decode(wide)[1600:]  # past the first 100 ms (filters settling)
    assert len(heard_wide) == 16000 - 1600
    assert abs(tone_dbfs(heard_wide, 16000, 1000) - (-12)) < 1.0
    assert abs(rms_dbfs(heard_wide) - (-12)) < 1.0  # nothing much but the tone
    assert tone_dbfs(heard_wide, 16000, 3000) < -45  # no harmonic to speak of

    back = run(Transcoder({9: (G722, codec, pt)}), packets(wide, 9), pt)
    heard = g711_decode(back, law)[800:]
    assert abs(tone_dbfs(heard, 8000, 1000) - (-12)) < 1.5
    assert abs(rms_dbfs(heard) - (-12)) < 1.5
    for other in (500, 2000, 3000):
        assert tone_dbfs(heard, 8000, other) < -40, other


@pytest.mark.parametrize("law", ["PCMA", "PCMU"])
def test_g722_stream_stays_in_step_with_no_click(law: str) -> None:
    """Every 20 ms of the G.722 made from a steady tone has the tone's level: no code
    inserted or dropped mid-stream (an ADPCM decoder out of step clicks, ITU-T G.722 4)."""
    pt, codec = (8, PCMA) if law == "PCMA" else (0, PCMU)
    sound = tone(697, 8000, 3.0, -10)
    wide = run(Transcoder({pt: (codec, G722, 9)}), packets(g711_encode(sound, law), pt), 9)
    heard = g722_decode(wide)
    windows = [rms_dbfs(heard[i : i + 320]) for i in range(640, len(heard) - 319, 320)]
    assert max(windows) - min(windows) < 0.5, (min(windows), max(windows))
    assert max(abs(x) for x in heard[640:]) < 32767 * 10 ** (-10 / 20) * 1.2


def test_g722_wideband_tone_is_filtered_out_not_folded_into_the_narrow_band() -> None:
    """A 6 kHz tone fits G.722 (50-7000 Hz) but not G.711: resampling to 8 kHz without
    its low-pass filter would fold it to 2 kHz (8000 - 6000)."""
    wide = g722_encode(tone(6000, 16000, 0.5, -6) + tone(440, 16000, 0.5, -6))
    narrow = run(Transcoder({9: (G722, PCMA, 8)}), packets(wide, 9), 8)
    heard = g711_decode(narrow, "PCMA")
    first, second = heard[400:4000], heard[4400:]
    assert tone_dbfs(first, 8000, 2000) < -40  # nothing folded
    assert rms_dbfs(first) < -35  # and the 6 kHz tone itself is gone
    assert abs(tone_dbfs(second, 8000, 440) - (-6)) < 1.5  # while speech-band sound passes


def test_a_new_ssrc_starts_afresh_and_the_output_stays_in_step() -> None:
    transcoder = Transcoder({9: (G722, PCMA, 8)})
    wide = g722_encode(tone(1000, 16000, 0.2, -12))
    for packet in packets(wide, 9):
        assert transcoder(packet) is not None
    other = RtpPacket(9, 7, 1000, 0xFEED, payload=wide[:160]).serialize()
    result = transcoder(other)
    assert result is not None and parse_rtp(result).ssrc == 0xFEED
    assert transcoder.packets == 11 and transcoder.dropped == 0


# --- packet headers ------------------------------------------------------------------------


def test_csrc_extension_marker_kept_and_padding_dropped() -> None:
    payload = g711_encode(tone(1000, 8000, 0.02, -20), "PCMA")
    padded = RtpPacket(
        8,
        42,
        123456,
        SSRC,
        payload=payload,
        marker=True,
        csrcs=(1, 2),
        extension_profile=0xBEDE,
        extension_data=b"\x10\xaa\x00\x00",
        padding=b"\x00\x00\x00\x04",
    ).serialize()
    assert padded[0] & 0x20  # the P bit
    result = Transcoder({8: (PCMA, PCMU, 0)})(padded)
    assert result is not None
    out = parse_rtp(result)
    assert (out.payload_type, out.marker, out.sequence, out.timestamp, out.ssrc) == (
        0,
        True,
        42,
        123456,
        SSRC,
    )
    assert out.csrcs == (1, 2) and out.extension_profile == 0xBEDE
    assert out.extension_data == b"\x10\xaa\x00\x00" and out.padding == b""
    assert not result[0] & 0x20 and out.payload == payload.translate(law_table(PCMA, PCMU))


def test_other_packets_pass_untouched_and_events_are_renumbered() -> None:
    transcoder = Transcoder({9: (G722, PCMA, 8), 101: 96})
    event = RtpPacket(101, 5, 800, SSRC, payload=bytes([1, 0x8A, 0, 160]), marker=True)
    renumbered = transcoder(event.serialize())
    assert renumbered is not None
    assert renumbered == event.serialize()[:1] + bytes([0x80 | 96]) + event.serialize()[2:]
    comfort = RtpPacket(13, 6, 960, SSRC, payload=b"\x40").serialize()
    rtcp = bytes([0x80, 201, 0, 1, 0, 0, 0x12, 0x34])
    for packet in (comfort, rtcp, b"\x80\x09"):
        assert transcoder(packet) is packet
    assert transcoder.packets == 0


# --- offer/answer --------------------------------------------------------------------------


def media(line: str, *attrs: str) -> MediaDescription:
    described = MediaDescription.parse_media_line(line)
    for attr in attrs:
        name, _, value = attr.partition(":")
        described.add_attr(name, value)
    return described


def test_an_offer_without_g711_gets_both_laws_after_its_own_formats() -> None:
    offer = media("audio 4000 RTP/AVP 9 101", "rtpmap:9 G722/8000", f"rtpmap:{TE}")
    assert augment_offer(offer, None) == [0, 8]
    assert offer.formats == ["9", "101", "0", "8"]
    assert offer.rtpmap()[0] == ("PCMU", 8000, 1) and offer.rtpmap()[8] == ("PCMA", 8000, 1)


def test_offers_left_alone() -> None:
    for line in ("audio 4000 RTP/AVP 0 101", "audio 4000 RTP/AVP 8", "audio 4000 RTP/AVP 18"):
        offer = media(line)
        before = list(offer.formats)
        assert augment_offer(offer, None) == [] and offer.formats == before
    video = media("video 4000 RTP/AVP 96", "rtpmap:96 H264/90000")
    assert augment_offer(video, None) == []
    # A later offer from a G.711 station towards a G.722-only kiosk names G.722 too.
    reoffer = media("audio 4000 RTP/AVP 8")
    assert augment_offer(reoffer, media("audio 5000 RTP/AVP 9")) == [9]
    assert reoffer.formats == ["8", "9"]


def test_answer_names_the_offerers_codec_and_both_directions_transcode() -> None:
    offer = media("audio 4000 RTP/AVP 9 101", "rtpmap:9 G722/8000", f"rtpmap:{TE}")
    answer = media("audio 5000 RTP/AVP 8 101", "rtpmap:8 PCMA/8000", f"rtpmap:{TE}")
    out = answer.copy()
    plan = plan_answer(offer, answer, out)
    assert out.formats == ["9", "101"]
    assert out.rtpmap() == {9: ("G722", 8000, 1), 101: ("telephone-event", 8000, 1)}
    assert plan.transcoded == (G722, PCMA)
    assert plan.to_answerer is not None and plan.to_answerer.routes == {9: (G722, PCMA, 8)}
    assert plan.to_offerer is not None and plan.to_offerer.routes == {8: (PCMA, G722, 9)}


def test_answer_with_a_common_codec_needs_no_transcoder() -> None:
    offer = media("audio 4000 RTP/AVP 9 0 101", f"rtpmap:{TE}")
    answer = media("audio 5000 RTP/AVP 0 101", f"rtpmap:{TE}")
    out = answer.copy()
    plan = plan_answer(offer, answer, out)
    assert out.formats == ["0", "101"]
    assert plan.to_answerer is None and plan.to_offerer is None and plan.transcoded is None


def test_mirrored_answers_take_the_pass_through_plan() -> None:
    """An answer that kept offered formats under their own numbers leaves every packet
    alone; a near miss (one codec offered under two numbers, events renumbered) does not."""
    mirrored = [
        (
            ("audio 4000 RTP/AVP 9 0 101", f"rtpmap:{TE}"),
            ("audio 5000 RTP/AVP 0 101", f"rtpmap:{TE}"),
        ),
        (("audio 4000 RTP/AVP 0",), ("audio 5000 RTP/AVP 0",)),
        (("audio 4000 RTP/AVP 8 0",), ("audio 5000 RTP/AVP 0 8",)),
    ]
    for offered, answered in mirrored:
        answer = media(*answered)
        out = answer.copy()
        assert plan_answer(media(*offered), answer, out) is PASS_THROUGH
        assert out.formats == answer.formats
    twice = media("audio 4000 RTP/AVP 0 96", "rtpmap:96 PCMU/8000")
    plan = plan_answer(twice, media("audio 5000 RTP/AVP 0"), media("audio 5000 RTP/AVP 0"))
    assert plan is not PASS_THROUGH
    assert plan.to_answerer is not None and plan.to_answerer.routes == {96: 0}
    renumbered = media("audio 5000 RTP/AVP 0 96", "rtpmap:96 telephone-event/8000")
    offer = media("audio 4000 RTP/AVP 0 101", f"rtpmap:{TE}")
    assert plan_answer(offer, renumbered, renumbered.copy()) is not PASS_THROUGH


def test_answer_keeping_an_added_law_beside_a_common_codec() -> None:
    """The answerer may list one of the relay's additions as well: it may send it, so
    that direction is transcoded, but the offerer reads only its own formats."""
    offer = media("audio 4000 RTP/AVP 9", "rtpmap:9 G722/8000")
    answer = media("audio 5000 RTP/AVP 9 0")
    out = answer.copy()
    plan = plan_answer(offer, answer, out)
    assert out.formats == ["9"]
    assert plan.to_answerer is None
    assert plan.to_offerer is not None and plan.to_offerer.routes == {0: (PCMU, G722, 9)}


def test_events_numbered_differently_are_renumbered_each_way() -> None:
    offer = media("audio 4000 RTP/AVP 9 101", f"rtpmap:{TE}")
    answer = media("audio 5000 RTP/AVP 8 96", "rtpmap:96 telephone-event/8000")
    out = answer.copy()
    plan = plan_answer(offer, answer, out)
    assert out.formats == ["9", "96"]  # RFC 3264 6.1: the answerer's number stands
    assert plan.to_answerer is not None and plan.to_answerer.routes[9] == (G722, PCMA, 8)
    # Each side receives with its own numbers; one sending with the other's is renumbered.
    assert plan.to_answerer.routes[101] == 96 and 96 not in plan.to_answerer.routes
    assert plan.to_offerer is not None
    assert plan.to_offerer.routes == {8: (PCMA, G722, 9), 96: 101}


# --- through the relay, real sockets -------------------------------------------------------


class Peer:
    def __init__(self) -> None:
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, 0))
        self.rtp.setblocking(False)

    @property
    def port(self) -> int:
        return int(self.rtp.getsockname()[1])

    def sdp(self, formats: str, *rtpmaps: str) -> SessionDescription:
        lines = [
            "v=0",
            f"o=peer 1 1 IN IP4 {HOST}",
            "s=-",
            f"c=IN IP4 {HOST}",
            "t=0 0",
            f"m=audio {self.port} RTP/AVP {formats}",
            *(f"a=rtpmap:{value}" for value in rtpmaps),
            "m=video 0 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
        ]
        return SessionDescription.parse(("\r\n".join(lines) + "\r\n").encode())


async def recv(sock: socket.socket, timeout: float = 1.0) -> bytes:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[bytes] = loop.create_future()

    def readable() -> None:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return
        if not done.done():
            done.set_result(data)

    loop.add_reader(sock.fileno(), readable)
    try:
        return await asyncio.wait_for(done, timeout)
    finally:
        loop.remove_reader(sock.fileno())


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer]]:
    a, b = Peer(), Peer()
    yield a, b
    a.rtp.close()
    b.rtp.close()


@pytest.fixture
async def engine() -> AsyncIterator[RelayEngine]:
    relay = RelayEngine(bind_host=HOST, port_min=32600, port_max=32699, timeout=0)
    await relay.start()
    yield relay
    await relay.close()


async def test_g722_kiosk_and_g711_station_through_the_relay(
    engine: RelayEngine, peers: tuple[Peer, Peer]
) -> None:
    kiosk, station = peers
    to_station = await engine.offer("c", kiosk.sdp("9 101", "9 G722/8000", TE), from_side=Side.A)
    assert to_station.media[0].formats == ["9", "101", "0", "8"]
    to_kiosk = await engine.answer("c", station.sdp("8 101", TE), from_side=Side.B)
    assert to_kiosk.media[0].formats == ["9", "101"]
    assert to_kiosk.media[0].rtpmap()[9] == ("G722", 8000, 1)
    kiosk_sends_to, station_sends_to = to_kiosk.media[0].port, to_station.media[0].port

    wide = g722_encode(tone(1000, 16000, 0.5, -12))
    for sent in packets(wide, 9):
        kiosk.rtp.sendto(sent, (HOST, kiosk_sends_to))
        got = parse_rtp(await recv(station.rtp))
        before = parse_rtp(sent)
        assert (got.payload_type, got.sequence, got.timestamp, got.ssrc) == (
            8,
            before.sequence,
            before.timestamp,
            SSRC,
        )
    narrow = g711_encode(tone(1000, 8000, 0.5, -12), "PCMA")
    heard = bytearray()
    for sent in packets(narrow, 8):
        station.rtp.sendto(sent, (HOST, station_sends_to))
        got = parse_rtp(await recv(kiosk.rtp))
        assert got.payload_type == 9 and got.sequence == parse_rtp(sent).sequence
        heard += got.payload
    assert abs(tone_dbfs(g722_decode(bytes(heard))[1600:], 16000, 1000) - (-12)) < 1.0
    # RFC 4733 events cross untouched: both sides number them 101.
    event = RtpPacket(101, 9, 4000, SSRC, payload=bytes([5, 0x0A, 0, 160]), marker=True)
    kiosk.rtp.sendto(event.serialize(), (HOST, kiosk_sends_to))
    assert await recv(station.rtp) == event.serialize()

    stats = await engine.stats("c")
    assert stats is not None and stats.streams[0].transcoded == "G722/PCMA"
    assert stats.transcoded and not stats.audio_only  # the kiosk offered no video


async def test_a_common_codec_keeps_the_zero_copy_path(
    engine: RelayEngine, peers: tuple[Peer, Peer]
) -> None:
    kiosk, station = peers
    await engine.offer("c", kiosk.sdp("9 8 101", TE), from_side=Side.A)
    to_kiosk = await engine.answer("c", station.sdp("8 101", TE), from_side=Side.B)
    assert to_kiosk.media[0].formats == ["8", "101"]
    stream = engine._sessions["c"].streams[0]
    assert all(not leg.rtp_in and not leg.rtp_out for leg in stream.legs.values())
    stats = await engine.stats("c")
    assert stats is not None and not stats.transcoded


# --- the rtpengine engine: its own transcoding (Debian's build has libavcodec) ------------


@pytest.fixture(scope="module")
def rtpengine_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from rtpengine_peer import start_rtpengine

    started = start_rtpengine(tmp_path_factory.mktemp("rtpengine"), ports=40)
    yield started
    started.stop()


@pytest.mark.interop
async def test_rtpengine_engine_transcodes_a_g722_kiosk_to_a_g711_station(
    rtpengine_daemon: Any, peers: tuple[Peer, Peer]
) -> None:
    engine = RtpengineEngine(parse_address(rtpengine_daemon.ng_address))
    kiosk, station = peers
    await engine.start()
    try:
        to_station = await engine.offer(
            "c", kiosk.sdp("9 101", "9 G722/8000", TE), from_side=Side.A
        )
        listed = to_station.media[0].formats
        assert listed[0] == "9" and {"0", "8", "101"} <= set(listed), listed
        to_kiosk = await engine.answer("c", station.sdp("8 101", TE), from_side=Side.B)
        assert to_kiosk.media[0].formats[0] == "9" and "8" not in to_kiosk.media[0].formats
        kiosk_sends_to = to_kiosk.media[0].port
        heard = bytearray()
        for sent in packets(g722_encode(tone(1000, 16000, 1.0, -12)), 9):
            kiosk.rtp.sendto(sent, (HOST, kiosk_sends_to))
            await asyncio.sleep(0.02)
            while True:
                try:
                    got = parse_rtp(station.rtp.recv(65536))
                except BlockingIOError:
                    break
                assert got.payload_type == 8
                heard += got.payload
        assert len(heard) >= 160 * 40
        sound = g711_decode(bytes(heard), "PCMA")[1600:]
        # The tone, in A-law, at FFmpeg's G.722 level: 6 dB under ITU-T G.722's (-12
        # dBFS here), which the built-in relay corrects and rtpengine does not (docs).
        assert abs(tone_dbfs(sound, 8000, 1000) - (-18)) < 1.5
        assert tone_dbfs(sound, 8000, 1000) - rms_dbfs(sound) > -1  # and nothing else
    finally:
        await engine.delete("c")
        await engine.close()


async def test_refused_video_goes_on_audio_only_logged_and_in_the_record(
    engine: RelayEngine,
    peers: tuple[Peer, Peer],
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    kiosk, station = peers
    offer = kiosk.sdp("9 101", "9 G722/8000", TE).serialize().replace(b"video 0", b"video 40000")
    await engine.offer("c", SessionDescription.parse(offer), from_side=Side.A)
    with caplog.at_level(logging.INFO, logger="gateway.media.relay"):
        to_kiosk = await engine.answer("c", station.sdp("8 101", TE), from_side=Side.B)
    assert to_kiosk.media[1].port == 0 and to_kiosk.media[0].port != 0
    assert "the call goes on audio-only" in caplog.text
    assert "audio transcoded, G722 on side A and PCMA on side B" in caplog.text
    stats = await engine.delete("c")
    assert stats is not None and stats.audio_only and stats.transcoded
    assert [s.refused for s in stats.streams] == [False, True]

    # Both flags reach the durable call record (SQLite) and come back from it.
    record = CallRecord(
        id="c",
        kiosk="lessay",
        site="Lessay",
        service="caf",
        partner="caf",
        station="caf-1",
        started=1.0,
        answered=2.0,
        ended=3.0,
        outcome="completed",
        cause=Cause.NORMAL_CLEARING,
        media=stats,
    )
    store = SqliteRecordStore(tmp_path / "records.sqlite")
    await store.add([record.row()])
    (row,) = await store.query(RecordQuery(), limit=1, offset=0)
    await store.close()
    assert (row.transcoded, row.audio_only) == ("G722/PCMA", True)
