"""RTP packets (RFC 3550 section 5.1) and RTP/RTCP demultiplexing (RFC 5761 section 4).

Sans-IO: bytes in, plain values out. The relay's hot path only needs :func:`is_rtcp`;
:func:`parse_rtp` is for statistics, tests and tools, and is strict so that fuzzing
proves nothing but :class:`RtpParseError` can escape it.

RFC 3550 5.1 fixed header::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                           timestamp                           |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |           synchronization source (SSRC) identifier            |
    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
    |            contributing source (CSRC) identifiers             |
    |                             ....                              |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

RTP_VERSION = 2
_FIXED = struct.Struct("!BBHII")
_EXTENSION = struct.Struct("!HH")
_RTCP_HEADER = struct.Struct("!BBH")


class RtpParseError(ValueError):
    """The bytes are not a valid RTP packet (or RTCP compound packet)."""


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 5.1); ``padding`` holds the raw padding bytes, count last."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension_profile: int | None = None
    extension_data: bytes = b""
    padding: bytes = b""

    @property
    def version(self) -> int:
        """Always 2: :func:`parse_rtp` refuses any other version."""
        return RTP_VERSION

    @property
    def csrc_count(self) -> int:
        """The CC field."""
        return len(self.csrcs)

    @property
    def has_extension(self) -> bool:
        """The X bit (RFC 3550 5.3.1)."""
        return self.extension_profile is not None

    def serialize(self) -> bytes:
        """The packet as sent on the wire."""
        if len(self.csrcs) > 15:
            raise ValueError("at most 15 CSRC identifiers fit in an RTP header")
        if len(self.extension_data) % 4:
            raise ValueError("RTP header extension data must be a multiple of 4 bytes")
        if self.padding and self.padding[-1] != len(self.padding):
            raise ValueError("the last padding byte must count the padding bytes")
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension_profile is not None else 0)
            | len(self.csrcs)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_FIXED.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        parts.extend(struct.pack("!I", c) for c in self.csrcs)
        if self.extension_profile is not None:
            parts.append(_EXTENSION.pack(self.extension_profile, len(self.extension_data) // 4))
            parts.append(self.extension_data)
        parts.append(self.payload)
        parts.append(self.padding)
        return b"".join(parts)


def parse_rtp(packet: bytes) -> RtpPacket:
    """Parse an RTP packet (RFC 3550 5.1, 5.3.1); raise :class:`RtpParseError` if invalid."""
    size = len(packet)
    if size < _FIXED.size:
        raise RtpParseError(f"RTP packet of {size} bytes is shorter than the 12-byte header")
    first, second, sequence, timestamp, ssrc = _FIXED.unpack_from(packet)
    if first >> 6 != RTP_VERSION:
        raise RtpParseError(f"RTP version {first >> 6}, expected 2")
    offset = _FIXED.size
    cc = first & 0x0F
    if size < offset + 4 * cc:
        raise RtpParseError(f"RTP packet of {size} bytes is too short for {cc} CSRC identifiers")
    csrcs = struct.unpack_from(f"!{cc}I", packet, offset)
    offset += 4 * cc
    profile: int | None = None
    ext_data = b""
    if first & 0x10:
        if size < offset + _EXTENSION.size:
            raise RtpParseError("RTP header extension flag set but no extension header")
        profile, words = _EXTENSION.unpack_from(packet, offset)
        offset += _EXTENSION.size
        if size < offset + 4 * words:
            raise RtpParseError(
                f"RTP header extension of {words} words runs past the end of the packet"
            )
        ext_data = bytes(packet[offset : offset + 4 * words])
        offset += 4 * words
    end = size
    if first & 0x20:
        count = packet[-1]
        if count == 0:
            raise RtpParseError("RTP padding flag set but the padding count is 0")
        if count > size - offset:
            raise RtpParseError(
                f"RTP padding count {count} exceeds the {size - offset} bytes after the header"
            )
        end = size - count
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=bytes(packet[offset:end]),
        marker=bool(second & 0x80),
        csrcs=csrcs,
        extension_profile=profile,
        extension_data=ext_data,
        padding=bytes(packet[end:]),
    )


def is_rtcp(packet: bytes) -> bool:
    """Whether a packet on a multiplexed port is RTCP (RFC 5761 section 4).

    RTCP packet types 192-223 occupy the whole second byte, where RTP has the marker bit
    and a payload type that RFC 5761 forbids for multiplexed sessions (64-95).
    """
    return len(packet) >= 8 and packet[0] >> 6 == RTP_VERSION and 192 <= packet[1] <= 223


def rtcp_packets(
    packet: bytes | bytearray | memoryview,
) -> Iterator[tuple[int, int, int, int]]:
    """Walk an RTCP compound packet (RFC 3550 6.1, 6.4), checking its framing: for each
    packet its type, its count field (RC/SC/FMT), and where its body starts and ends.
    Raises :class:`RtpParseError` at the first broken header or length."""
    offset = 0
    size = len(packet)
    if size < _RTCP_HEADER.size:
        raise RtpParseError(f"RTCP packet of {size} bytes is shorter than its 4-byte header")
    while offset < size:
        if size - offset < _RTCP_HEADER.size:
            raise RtpParseError(f"{size - offset} stray bytes after the last RTCP packet")
        first, ptype, words = _RTCP_HEADER.unpack_from(packet, offset)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError(f"RTCP version {first >> 6} at offset {offset}, expected 2")
        length = 4 * (words + 1)
        if offset + length > size:
            raise RtpParseError(
                f"RTCP packet type {ptype} at offset {offset} claims {length} bytes, "
                f"only {size - offset} left"
            )
        yield ptype, first & 0x1F, offset + _RTCP_HEADER.size, offset + length
        offset += length


def rtcp_packet_types(packet: bytes) -> list[int]:
    """Packet types of an RTCP compound packet, checking its framing (RFC 3550 6.1, 6.4)."""
    return [ptype for ptype, _, _, _ in rtcp_packets(packet)]


# RFC 4585 6.1: payload-specific feedback, with FMT 1 the picture loss indication (6.3.1);
# RFC 5104 4.3.1: FMT 4 the full intra request. Either asks the sender for a key frame.
RTCP_RR = 201
RTCP_PSFB = 206
FMT_PLI = 1
FMT_FIR = 4


def asks_for_keyframe(packet: bytes | memoryview) -> bool:
    """Whether an RTCP compound packet holds a PLI or a FIR (RFC 4585 6.3.1, RFC 5104
    4.3.1). Lenient: the walk stops at the first broken length, and never raises."""
    offset = 0
    size = len(packet)
    while size - offset >= _RTCP_HEADER.size:
        first, ptype, words = _RTCP_HEADER.unpack_from(packet, offset)
        if first >> 6 != RTP_VERSION:
            return False
        if ptype == RTCP_PSFB and (first & 0x1F) in (FMT_PLI, FMT_FIR):
            return True
        offset += 4 * (words + 1)
    return False


def keyframe_request(
    sender_ssrc: int, media_ssrc: int, *, fir_sequence: int | None = None
) -> bytes:
    """A compound RTCP packet asking ``media_ssrc`` for a key frame: an empty receiver
    report (RFC 3550 6.1: a compound packet starts with SR or RR) then a PLI (RFC 4585
    6.3.1), or a FIR (RFC 5104 4.3.1.1) when ``fir_sequence`` is given."""
    report = _RTCP_HEADER.pack(0x80, RTCP_RR, 1) + struct.pack("!I", sender_ssrc)
    if fir_sequence is None:
        feedback = _RTCP_HEADER.pack(0x80 | FMT_PLI, RTCP_PSFB, 2)
        return report + feedback + struct.pack("!II", sender_ssrc, media_ssrc)
    # FIR: the media source field is 0; the FCI names the SSRC and a sequence number.
    feedback = _RTCP_HEADER.pack(0x80 | FMT_FIR, RTCP_PSFB, 4)
    fci = struct.pack("!IB3x", media_ssrc, fir_sequence & 0xFF)
    return report + feedback + struct.pack("!II", sender_ssrc, 0) + fci


RTCP_SR = 200
_SENDER_INFO = struct.Struct("!IQIII")  # SSRC, NTP timestamp, RTP timestamp, packets, octets
_REPORT_BLOCK = struct.Struct("!IIIIII")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block of an SR or RR (RFC 3550 6.4.1).

    ``fraction_lost`` is the 8-bit fixed-point fraction (0-255) of the last interval,
    ``cumulative_lost`` the signed 24-bit count (negative with duplicates), ``jitter``
    in RTP timestamp units (6.4.1, A.8), ``lsr`` the middle 32 bits of the NTP timestamp
    of the last SR received from ``ssrc`` (0: none yet) and ``dlsr`` the delay since, in
    units of 1/65536 s.
    """

    ssrc: int
    fraction_lost: int
    cumulative_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int


@dataclass(frozen=True, slots=True)
class SenderReport:
    """An RTCP SR (RFC 3550 6.4.1): sender info and its reception report blocks."""

    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format: seconds since 1900 << 32 | fraction
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    @property
    def ntp_middle(self) -> int:
        """The middle 32 bits of the NTP timestamp: what a receiver echoes as LSR."""
        return (self.ntp_timestamp >> 16) & 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """An RTCP RR (RFC 3550 6.4.2): the reporter's SSRC and its report blocks."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


def _report_blocks(
    packet: bytes | bytearray | memoryview, offset: int, count: int, end: int
) -> tuple[ReportBlock, ...]:
    if offset + count * _REPORT_BLOCK.size > end:
        raise RtpParseError(f"{count} report blocks run past the end of their RTCP packet")
    blocks = []
    for _ in range(count):
        ssrc, loss, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(packet, offset)
        lost = loss & 0xFFFFFF
        if lost & 0x800000:  # signed 24 bits (RFC 3550 6.4.1)
            lost -= 0x1000000
        blocks.append(ReportBlock(ssrc, loss >> 24, lost, highest, jitter, lsr, dlsr))
        offset += _REPORT_BLOCK.size
    return tuple(blocks)


def parse_rtcp_reports(
    packet: bytes | bytearray | memoryview,
) -> list[SenderReport | ReceiverReport]:
    """The SR and RR packets of an RTCP compound packet (RFC 3550 6.1, 6.4.1, 6.4.2);
    other packet types (SDES, BYE, APP, feedback) are skipped. Raises
    :class:`RtpParseError` on broken framing or a report that does not fit its length."""
    found: list[SenderReport | ReceiverReport] = []
    for ptype, count, body, end in rtcp_packets(packet):
        if ptype == RTCP_SR:
            if body + _SENDER_INFO.size > end:
                raise RtpParseError("RTCP SR shorter than its sender info")
            ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(packet, body)
            blocks = _report_blocks(packet, body + _SENDER_INFO.size, count, end)
            found.append(SenderReport(ssrc, ntp, rtp_ts, packets, octets, blocks))
        elif ptype == RTCP_RR:
            if body + 4 > end:
                raise RtpParseError("RTCP RR shorter than its SSRC")
            (ssrc,) = struct.unpack_from("!I", packet, body)
            found.append(ReceiverReport(ssrc, _report_blocks(packet, body + 4, count, end)))
    return found


__all__ = [
    "ReceiverReport",
    "ReportBlock",
    "RtpPacket",
    "RtpParseError",
    "SenderReport",
    "asks_for_keyframe",
    "is_rtcp",
    "keyframe_request",
    "parse_rtcp_reports",
    "parse_rtp",
    "rtcp_packet_types",
    "rtcp_packets",
]
