"""The relay's hot path: every RTP and RTCP datagram of every call goes through here.

A relayed stream (one m= line) has two legs, one per side of the call. A leg holds the
port pair facing its side (what that side sends to, and what it receives from), where
that side's media goes, and the counters of what it sends. A datagram arriving on the
pair facing side X is counted on X's leg and sent out of the matching socket of the
other leg, to the other side's address, so each side sees the relay as its only peer.

That address starts as the one in the side's SDP and is then *latched* to the source
of the first packet actually received from the side (symmetric RTP, RFC 4961; the usual
NAT traversal for anchored media), separately for RTP and RTCP. Latching re-arms when a
side's SDP moves its media elsewhere. After latching, packets from other sources are
still relayed but do not move the destination.

Sockets are plain non-blocking sockets watched with ``loop.add_reader``: each wake-up
drains the socket with ``recvfrom_into`` into one shared buffer, and each datagram is
sent on from a view of it, so forwarding allocates nothing but the source address.
Measured on the project's machines (burst forwarding, one process): about 8 us of CPU
per packet under both asyncio and uvloop, against 40 us (asyncio) and 10 us (uvloop) for
datagram endpoints, which hand over one datagram per callback. The engine finds dead
calls by comparing packet totals between checks, not by time. The clock is read once per
drain of an RTP socket (and per RTCP packet): that time stamps every packet of the
drain for the interarrival jitter (RFC 3550 A.8), which :mod:`gateway.media.quality`
keeps per direction with the loss from sequence numbers (A.1, A.3) and the RTCP
reports crossing (6.4).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.media.dtmf import EventReceiver
from gateway.media.engine import DirectionStats
from gateway.media.quality import StreamQuality, observe_rtcp
from gateway.media.rtp import asks_for_keyframe
from gateway.model.sdp import MediaDescription

if TYPE_CHECKING:
    from gateway.media.srtp import SrtpLeg

logger = logging.getLogger(__name__)

BURST = 64  # datagrams drained per wake-up, so one busy socket cannot starve the others
BUFFER_SIZE = 65536  # the largest UDP payload fits: recvfrom_into never allocates

Address = tuple[str, int]
# A packet transform (SRTP, transcoding): bytes in, bytes out, or None to drop the packet.
Transform = Callable[[bytes], bytes | None]


class Leg:
    """One side of one stream: the sockets facing that side and where that side is.

    ``media`` is the side's own m= line from its latest SDP, which lists what the side
    receives (RFC 3264 5.1); the announcement player reads it to pick a codec.

    Where the other side cannot take what this side sends in band, the relay ends it
    here: ``events`` keeps this side's RFC 4733 telephone events and reports digits,
    ``on_keyframe_request`` is called for the PLI or FIR in this side's RTCP (RFC 4585,
    RFC 5104); both are forwarded as usual when ``None``. ``ssrc`` is the SSRC of this
    side's first RTP packet, the media source a key-frame request names.
    """

    __slots__ = (
        "events",
        "media",
        "on_keyframe_request",
        "on_ssrc",
        "pair",
        "port",
        "quality",
        "rtcp_dest",
        "rtcp_in",
        "rtcp_latched",
        "rtcp_out",
        "rtcp_sdp",
        "rtcp_sock",
        "rtp_dest",
        "rtp_in",
        "rtp_latched",
        "rtp_out",
        "rtp_sdp",
        "rtp_sock",
        "rx",
        "srtp",
        "ssrc",
    )

    def __init__(self, rx: DirectionStats) -> None:
        self.rx = rx  # counters of what this side sends (received on these sockets)
        self.quality = StreamQuality()  # RFC 3550 A.1/A.8 and RTCP figures of the same
        self.pair: PortPair | None = None
        self.port: int | None = None
        self.rtp_sock: socket.socket | None = None
        self.rtcp_sock: socket.socket | None = None
        self.rtp_sdp: Address | None = None
        self.rtcp_sdp: Address | None = None
        self.rtp_dest: Address | None = None
        self.rtcp_dest: Address | None = None
        self.rtp_latched = False
        self.rtcp_latched = False
        self.media: MediaDescription | None = None
        self.events: EventReceiver | None = None
        self.on_keyframe_request: Callable[[], None] | None = None
        self.ssrc: int | None = None
        # Called once when ``ssrc`` is learnt: a key-frame request for this side that
        # had to wait for its first packet (gateway.media.relay.request_keyframe).
        self.on_ssrc: Callable[[], object] | None = None
        # Packet transforms (SRTP, transcoding): a packet from this side runs through
        # ``*_in`` in order, then through the other leg's ``*_out``; empty lists keep
        # the zero-copy path. SRTP unprotect comes first in ``*_in``, protect last in
        # ``*_out``, so everything between sees plain RTP.
        self.rtp_in: list[Transform] = []
        self.rtp_out: list[Transform] = []
        self.rtcp_in: list[Transform] = []
        self.rtcp_out: list[Transform] = []
        # This side's SRTP (gateway.media.srtp.SrtpLeg) when its SDP chose SDES, for
        # the packets the relay makes itself (announcements, key-frame requests).
        self.srtp: SrtpLeg | None = None

    def set_sdp_addresses(self, rtp: Address | None, rtcp: Address | None) -> None:
        """Take the side's addresses from its latest SDP (RFC 3264 8.3.1: it may move)."""
        if rtp != self.rtp_sdp:
            if self.rtp_sdp is not None or not self.rtp_latched:
                self.rtp_latched = False
                self.rtp_dest = rtp
            self.rtp_sdp = rtp
        if rtcp != self.rtcp_sdp:
            if self.rtcp_sdp is not None or not self.rtcp_latched:
                self.rtcp_latched = False
                self.rtcp_dest = rtcp
            self.rtcp_sdp = rtcp


class PortPair:
    """An RTP/RTCP socket pair (RFC 3550 11: even port, then the next odd one).

    ``facing`` is the leg whose side sends to these sockets and ``other`` the leg the
    packets go on to; both are ``None`` while the pair waits in the pool, and
    ``quiet_since`` is when it last heard anything then (see :mod:`gateway.media.ports`).
    """

    __slots__ = ("facing", "other", "port", "quiet_since", "rtcp", "rtp")

    def __init__(self, port: int, rtp: socket.socket, rtcp: socket.socket) -> None:
        self.port = port
        self.rtp = rtp
        self.rtcp = rtcp
        self.facing: Leg | None = None
        self.other: Leg | None = None
        self.quiet_since = 0.0


class Forwarder:
    """The reader callbacks of every port pair: latch, count, send on.

    ``clock`` is read only for a packet that reaches a pooled pair (no call holds it):
    such a packet keeps the pair out of use longer.
    """

    def __init__(
        self, clock: Callable[[], float], arrival_clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        # Read once per drain of a call's socket: the arrival time of its packets for the
        # jitter (RFC 3550 A.8; see gateway.media.quality). Not the loop's clock, which
        # uvloop keeps to the millisecond.
        self._arrival = arrival_clock
        self.send_errors = 0  # datagrams dropped because sendto failed
        self._buffer = bytearray(BUFFER_SIZE)
        self._view = memoryview(self._buffer)

    def relay_rtp(self, pair: PortPair) -> None:
        """Drain a pair's RTP socket; forward to the other leg (RFC 5761 demux counts).

        Without transforms a packet is forwarded from a view of the shared buffer, with
        no copy. With them (SRTP, transcoding) it runs through ``src.rtp_in`` (or
        ``rtcp_in`` for RTCP muxed on this port, RFC 5761 4), then the other leg's
        ``*_out``; a side latches only with a packet its transforms accept (an SRTP
        packet that fails authentication, RFC 3711 3.3, moves nothing), and digits,
        key-frame requests and quality are read from the plain packet.
        """
        sock, src, dst = pair.rtp, pair.facing, pair.other
        if src is None or dst is None:
            self._drain_idle(pair, sock)
            return
        buf = self._buffer
        view = self._view
        rx = src.rx
        quality = src.quality
        now = self._arrival()
        for _ in range(BURST):
            try:
                size, addr = sock.recvfrom_into(buf)
            except BlockingIOError:
                return
            except OSError as exc:
                logger.debug("RTP receive failed: %s", exc)
                return
            # rtcp-mux: RTCP types 192-223 fill the byte holding RTP's marker and PT
            rtcp = size >= 8 and 192 <= buf[1] <= 223
            if rtcp:
                rx.rtcp_packets += 1
                rx.rtcp_bytes += size
            else:
                rx.rtp_packets += 1
                rx.rtp_bytes += size
            packet: bytes | memoryview = view[:size]
            transforms = src.rtcp_in if rtcp else src.rtp_in
            if transforms:
                plain = _through(transforms, bytes(packet))
                if plain is None:
                    continue
                packet = plain
            if not src.rtp_latched:
                src.rtp_dest = addr
                src.rtp_latched = True
                if not rtcp and len(packet) >= 12:
                    src.ssrc = int.from_bytes(packet[8:12], "big")
                    if src.on_ssrc is not None:  # a key-frame request waited for it
                        waiting, src.on_ssrc = src.on_ssrc, None
                        waiting()
            if rtcp:
                observe_rtcp(packet, quality, dst.quality, now)
                if src.on_keyframe_request is not None and asks_for_keyframe(packet):
                    src.on_keyframe_request()
            elif len(packet) >= 12:  # shorter is no RTP (RFC 3550 5.1): sent on untouched
                quality.rtp(packet, now)
                events = src.events
                if events is not None and packet[1] & 0x7F == events.pt:
                    events.feed(bytes(packet))
                    continue  # ended here: the other side does not take them in RTP
            self._send(packet, dst.rtcp_out if rtcp else dst.rtp_out, dst.rtp_sock, dst.rtp_dest)

    def relay_rtcp(self, pair: PortPair) -> None:
        """Drain a pair's RTCP socket; forward to the other leg's RTCP address (through
        ``src.rtcp_in`` and the other leg's ``rtcp_out`` when there are transforms)."""
        sock, src, dst = pair.rtcp, pair.facing, pair.other
        if src is None or dst is None:
            self._drain_idle(pair, sock)
            return
        buf = self._buffer
        view = self._view
        rx = src.rx
        for _ in range(BURST):
            try:
                size, addr = sock.recvfrom_into(buf)
            except BlockingIOError:
                return
            except OSError as exc:
                logger.debug("RTCP receive failed: %s", exc)
                return
            rx.rtcp_packets += 1
            rx.rtcp_bytes += size
            packet: bytes | memoryview = view[:size]
            if src.rtcp_in:
                plain = _through(src.rtcp_in, bytes(packet))
                if plain is None:
                    continue
                packet = plain
            if not src.rtcp_latched:
                src.rtcp_dest = addr
                src.rtcp_latched = True
            observe_rtcp(packet, src.quality, dst.quality, self._arrival())
            if src.on_keyframe_request is not None and asks_for_keyframe(packet):
                src.on_keyframe_request()
            self._send(packet, dst.rtcp_out, dst.rtcp_sock, dst.rtcp_dest)

    def _send(
        self,
        packet: bytes | memoryview,
        transforms: list[Transform],
        out: socket.socket | None,
        dest: Address | None,
    ) -> None:
        """Send on a packet, through the receiving leg's ``*_out`` transforms if any."""
        if transforms:
            made = _through(transforms, bytes(packet))
            if made is None:
                return
            packet = made
        if out is None or dest is None:
            return
        try:
            out.sendto(packet, dest)
        except OSError:
            # a full socket buffer or an unreachable peer: drop, as the network would
            self.send_errors += 1

    def _drain_idle(self, pair: PortPair, sock: socket.socket) -> None:
        """Packets for a pooled pair belong to no call: drop them, and keep it quiet longer."""
        pair.quiet_since = self._clock()
        for _ in range(BURST):
            try:
                sock.recvfrom_into(self._buffer)
            except OSError:  # BlockingIOError included: drained
                return


def _through(transforms: list[Transform], packet: bytes) -> bytes | None:
    """A packet run through transforms in order; None as soon as one drops it."""
    for transform in transforms:
        made = transform(packet)
        if made is None:
            return None
        packet = made
    return packet
