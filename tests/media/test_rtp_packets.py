"""RTP header parsing and RTP/RTCP demultiplexing, checked against tshark on real streams."""

from __future__ import annotations

import contextlib
import functools
import itertools
import struct

import pytest
from harness import VECTORS, tshark_output
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.media.rtp import RtpPacket, RtpParseError, is_rtcp, parse_rtp, rtcp_packet_types

RTP_VECTORS = VECTORS / "rtp"


@functools.cache
def tshark_rtp(name: str) -> tuple[tuple[bytes, bool, int, int, int, int], ...]:
    """UDP payloads tshark dissects as RTP, with tshark's own reading of the header."""
    fields = tshark_output(
        *("-o", "rtp.heuristic_rtp:TRUE", "-Y", "rtp", "-T", "fields", "-E", "separator=,"),
        *("-e", "udp.payload", "-e", "rtp.marker", "-e", "rtp.p_type", "-e", "rtp.seq"),
        *("-e", "rtp.timestamp", "-e", "rtp.ssrc"),
        capture=RTP_VECTORS / name,
    )
    rows = []
    for line in fields.decode().splitlines():
        payload, marker, pt, seq, ts, ssrc = line.split(",")
        rows.append(
            (bytes.fromhex(payload), marker == "1", int(pt), int(seq), int(ts), int(ssrc, 16))
        )
    return tuple(rows)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("rtp_sip_g711ulaw_20ms.pcapng", {0: 711}),
        # README: 1,189 H.264 packets; the G.722 audio both ways
        ("rtp_sip_g722_h264.pcapng", {100: 1189, 9: 773}),
    ],
)
def test_real_streams_parse_like_tshark_reads_them(name: str, expected: dict[int, int]) -> None:
    rows = tshark_rtp(name)
    counts: dict[int, int] = {}
    for data, marker, pt, seq, ts, ssrc in rows:
        packet = parse_rtp(data)
        assert (packet.marker, packet.payload_type, packet.sequence) == (marker, pt, seq)
        assert (packet.timestamp, packet.ssrc, packet.version) == (ts, ssrc, 2)
        assert packet.serialize() == data
        assert not is_rtcp(data)
        counts[pt] = counts.get(pt, 0) + 1
    assert counts == expected


def test_g711_stream_is_20ms_of_pcmu() -> None:
    by_ssrc: dict[int, list[RtpPacket]] = {}
    for row in tshark_rtp("rtp_sip_g711ulaw_20ms.pcapng"):
        packet = parse_rtp(row[0])
        by_ssrc.setdefault(packet.ssrc, []).append(packet)
    assert len(by_ssrc) == 2
    for packets in by_ssrc.values():
        assert all(len(p.payload) == 160 for p in packets)  # 20 ms at 8 kHz
        steps = {(b.sequence - a.sequence) % 65536 for a, b in itertools.pairwise(packets)}
        assert steps == {1}
        ts_steps = {(b.timestamp - a.timestamp) % 2**32 for a, b in itertools.pairwise(packets)}
        assert ts_steps == {160}


def test_h264_marker_ends_frames() -> None:
    video = [parse_rtp(r[0]) for r in tshark_rtp("rtp_sip_g722_h264.pcapng") if r[2] == 100]
    marked = [p for p in video if p.marker]
    assert 0 < len(marked) < len(video)
    # one marker per access unit: a marked packet's successor (same SSRC) has a new timestamp
    successors = {}
    for a, b in itertools.pairwise(video):
        if a.ssrc == b.ssrc and a.marker:
            successors[a.sequence] = b.timestamp != a.timestamp
    assert successors and all(successors.values())


# --- constructed packets ------------------------------------------------------------------


def test_csrc_extension_and_padding_round_trip() -> None:
    packet = RtpPacket(
        payload_type=96,
        sequence=65535,
        timestamp=2**32 - 1,
        ssrc=0xDEADBEEF,
        payload=b"\x01\x02\x03",
        marker=True,
        csrcs=(1, 2, 3),
        extension_profile=0xBEDE,
        extension_data=b"\x10\xff\x00\x00",
        padding=b"\x00\x00\x03",
    )
    data = packet.serialize()
    assert data[0] == 0x80 | 0x20 | 0x10 | 3 and data[1] == 0x80 | 96
    assert len(data) == 12 + 12 + 4 + 4 + 3 + 3
    assert parse_rtp(data) == packet
    assert packet.csrc_count == 3 and packet.has_extension


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x80\x00\x00", "shorter than the 12-byte header"),
        (b"\x40" + bytes(11), "version 1"),
        (b"\x83" + bytes(11) + bytes(8), "too short for 3 CSRC"),
        (b"\x90" + bytes(11) + b"\xbe", "no extension header"),
        (b"\x90" + bytes(11) + b"\xbe\xde\x00\x02" + bytes(4), "runs past the end"),
        (b"\xa0" + bytes(11) + b"\x00", "padding count is 0"),
        (b"\xa0" + bytes(11) + b"\x01\x05", "exceeds the 2 bytes"),
    ],
)
def test_malformed_rtp(data: bytes, fragment: str) -> None:
    with pytest.raises(RtpParseError, match=fragment):
        parse_rtp(data)


def test_serialize_refuses_inconsistent_packets() -> None:
    with pytest.raises(ValueError, match="15 CSRC"):
        RtpPacket(0, 0, 0, 0, csrcs=tuple(range(16))).serialize()
    with pytest.raises(ValueError, match="multiple of 4"):
        RtpPacket(0, 0, 0, 0, extension_profile=1, extension_data=b"x").serialize()
    with pytest.raises(ValueError, match="count the padding"):
        RtpPacket(0, 0, 0, 0, padding=b"\x00\x05").serialize()


# RFC 3550 6.4.1 sender report without report blocks, then an SDES with one CNAME item.
SENDER_REPORT = struct.pack("!BBHIIIIII", 0x80, 200, 6, 0x1234, 1, 2, 3, 4, 5)
SDES = (
    struct.pack("!BBHI", 0x81, 202, 3, 0x1234) + b"\x01\x03abc" + bytes(3)
)  # item, end, pad to 32 bits
RECEIVER_REPORT = struct.pack("!BBHI", 0x80, 201, 1, 0x1234)


def test_rtcp_is_told_apart_from_rtp() -> None:
    compound = SENDER_REPORT + SDES
    assert is_rtcp(compound) and is_rtcp(RECEIVER_REPORT)
    assert rtcp_packet_types(compound) == [200, 202]
    assert rtcp_packet_types(RECEIVER_REPORT) == [201]
    for pt in [*range(64), *range(96, 128)]:
        for marker in (0, 0x80):
            rtp = RtpPacket(pt, 1, 2, 3, payload=bytes(20), marker=bool(marker)).serialize()
            assert not is_rtcp(rtp), pt
    # why RFC 5761 forbids PT 64-95 on a multiplexed port: with the marker set they read as RTCP
    assert is_rtcp(RtpPacket(72, 1, 2, 3, payload=bytes(20), marker=True).serialize())
    assert not is_rtcp(b"\x80\xc8")  # too short to be an RTCP packet
    assert not is_rtcp(b"\x40\xc8" + bytes(6))  # not version 2


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\x80\xc8", "shorter than its 4-byte header"),
        (SENDER_REPORT + b"\x80", "stray bytes"),
        (b"\x00\xc9\x00\x01" + bytes(4), "version 0"),
        (SENDER_REPORT[:20], "claims 28 bytes"),
    ],
)
def test_malformed_rtcp(data: bytes, fragment: str) -> None:
    with pytest.raises(RtpParseError, match=fragment):
        rtcp_packet_types(data)


# --- property tests -----------------------------------------------------------------------


@settings(max_examples=500)
@given(st.binary(max_size=80))
def test_random_bytes_only_raise_rtp_parse_error(data: bytes) -> None:
    with contextlib.suppress(RtpParseError):
        parse_rtp(data)
    with contextlib.suppress(RtpParseError):
        rtcp_packet_types(data)
    is_rtcp(data)


@settings(max_examples=300)
@given(
    st.builds(
        RtpPacket,
        payload_type=st.integers(0, 127),
        sequence=st.integers(0, 65535),
        timestamp=st.integers(0, 2**32 - 1),
        ssrc=st.integers(0, 2**32 - 1),
        payload=st.binary(max_size=40),
        marker=st.booleans(),
        csrcs=st.lists(st.integers(0, 2**32 - 1), max_size=15).map(tuple),
        extension_profile=st.none() | st.integers(0, 65535),
        extension_data=st.integers(0, 4).map(lambda n: bytes(range(4 * n))),
        padding=st.integers(0, 8).map(lambda n: bytes(n - 1) + bytes([n]) if n else b""),
    )
)
def test_generated_packets_round_trip(packet: RtpPacket) -> None:
    if packet.extension_profile is None and packet.extension_data:
        packet = RtpPacket(
            packet.payload_type,
            packet.sequence,
            packet.timestamp,
            packet.ssrc,
            packet.payload,
            packet.marker,
            packet.csrcs,
            padding=packet.padding,
        )
    assert parse_rtp(packet.serialize()) == packet
