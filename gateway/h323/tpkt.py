"""TPKT framing of H.225.0 call signalling and H.245 on TCP (RFC 1006 section 6).

A TPKT is a 4-octet header (version 3, a reserved octet, the length of the whole
packet including the header, big-endian) followed by the payload. H.225.0 7.1 (and
H.245 on its own channel) uses it to delimit messages in the TCP byte stream.
"""

from __future__ import annotations

from gateway.h323.errors import H323ParseError, H323UsageError

VERSION = 3
HEADER_SIZE = 4
# RFC 1006 6 caps a TPKT at 65,535 octets (its length field is 16 bits).
MAX_PACKET = 65535
# What the gateway's own edge accepts on H.225.0 and H.245 connections: real peers never
# come close (a Setup with fastStart is about 1 kB, a terminal capability set of a video
# unit 2-4 kB, the largest captured PDU well under that), and a smaller cap bounds both
# the buffer a hostile length makes a connection hold and the PER decoding it may cost.
SIGNALLING_MAX_PACKET = 16384


def encode(payload: bytes) -> bytes:
    """One TPKT carrying ``payload`` (RFC 1006 6: version 3, reserved 0, length)."""
    size = len(payload) + HEADER_SIZE
    if size > MAX_PACKET:
        raise H323UsageError(f"payload of {len(payload)} octets does not fit a TPKT")
    return bytes((VERSION, 0, size >> 8, size & 0xFF)) + payload


class TpktFramer:
    """Cuts a TCP byte stream into TPKT payloads (RFC 1006 6), keeping partial packets.

    A packet of length 4 (a header and nothing else) is an empty payload: some
    endpoints send it as a keep-alive (H.225.0 7.1 leaves it to the receiver to ignore).
    A version other than 3, or a length below 4 or above ``max_packet``, is refused as
    soon as its header is complete, before the payload is waited for: at most
    ``max_packet`` octets of one packet are ever held (plus what one read brought).
    After an error the stream cannot be resynchronised: the caller closes it.
    """

    __slots__ = ("_buffer", "_max_packet")

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        if not HEADER_SIZE <= max_packet <= MAX_PACKET:
            raise H323UsageError(f"max_packet must be between 4 and {MAX_PACKET}")
        self._buffer = bytearray()
        self._max_packet = max_packet

    @property
    def pending(self) -> int:
        """How many octets of an incomplete packet are held."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes]:
        """Add received octets; return the payloads of every packet now complete."""
        buf = self._buffer
        buf += data
        out: list[bytes] = []
        start = 0
        while len(buf) - start >= HEADER_SIZE:
            if buf[start] != VERSION:
                raise H323ParseError(f"TPKT version {buf[start]} (RFC 1006 6 says 3)")
            size = (buf[start + 2] << 8) | buf[start + 3]
            if size < HEADER_SIZE or size > self._max_packet:
                raise H323ParseError(f"TPKT length {size} out of range")
            if len(buf) - start < size:
                break
            out.append(bytes(buf[start + HEADER_SIZE : start + size]))
            start += size
        if start:
            del buf[:start]
        return out
