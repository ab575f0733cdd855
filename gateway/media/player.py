"""The relay's announcement player: a prompt looped as RTP towards one side of a call.

The codec is not the caller's choice but the session's: towards a side, the player uses
the side's most preferred G.711 format (RFC 3551 PCMU or PCMA) among those the other
side's SDP agreed to, with the payload type number the side itself gave it (RFC 3264
5.1: an m= line lists what its sender receives, in preference order; RFC 3264 6.1: the
answer keeps the offer's numbers).

Packets carry the RFC 3550 5.1 fixed header with one random SSRC, sequence number and
timestamp start (RFC 3550 5.1 asks for random initial values), the marker bit on the
first packet of the talkspurt (RFC 3551 4.1), and 20 ms of G.711 each (RFC 3551 4.5),
sent out of the side's own relay socket so that latching and NAT bindings are those of
the call. The player sends on a fixed schedule, not one packet per wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct

from gateway.media.forwarding import Leg
from gateway.media.prompts import FRAME_SAMPLES, SAMPLE_RATE, Prompt, g711_formats
from gateway.model.sdp import MediaDescription


def negotiated_g711(
    receiver: MediaDescription | None, sender: MediaDescription | None
) -> tuple[int, str] | None:
    """The payload type and G.711 codec to send to ``receiver`` (its own m= line).

    ``sender`` is the other side's m= line of the same stream; a codec it did not list
    is not negotiated. ``None`` when either side has not described the stream yet or
    they share no G.711.
    """
    if receiver is None or sender is None:
        return None
    agreed = {codec for _, codec in g711_formats(sender)}
    for pt, codec in g711_formats(receiver):
        if codec in agreed:
            return pt, codec
    return None


class Player:
    """Loops a prompt as RTP out of a leg's RTP socket, to wherever that leg's side is."""

    def __init__(self, leg: Leg, prompt: Prompt, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.leg = leg
        self.prompt = prompt
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.seq = int.from_bytes(os.urandom(2), "big")
        self.timestamp = int.from_bytes(os.urandom(4), "big")
        self.index = 0
        self.sent = 0
        self.handle: asyncio.TimerHandle | None = None
        self.next_at = 0.0

    def start(self) -> None:
        """Send the first packet now and schedule the others."""
        self.next_at = self.loop.time()
        self._tick()

    def stop(self) -> None:
        """Send nothing more."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def _tick(self) -> None:
        loop = self.loop
        sock, dest = self.leg.rtp_sock, self.leg.rtp_dest
        if sock is None:  # the stream lost its ports (refused in a re-offer): done
            self.handle = None
            return
        frames = self.prompt.frames
        if dest is not None:  # nowhere to send yet: keep time, send once latched
            marker = 0x80 if self.sent == 0 else 0
            header = struct.pack(
                "!BBHII",
                0x80,
                marker | self.prompt.payload_type,
                self.seq,
                self.timestamp,
                self.ssrc,
            )
            plain = header + frames[self.index]
            srtp = self.leg.srtp  # an SRTP side hears it protected (RFC 3711 3.3)
            packet = plain if srtp is None else srtp.protect_rtp(plain)
            with contextlib.suppress(OSError):  # lost, as the network would lose it
                if packet is not None:
                    sock.sendto(packet, dest)
            self.sent += 1
        self.seq = (self.seq + 1) & 0xFFFF
        self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        self.index = (self.index + 1) % len(frames)
        # Absolute schedule: a late wake-up does not slow the stream down.
        self.next_at += FRAME_SAMPLES / SAMPLE_RATE
        now = loop.time()
        if self.next_at < now - 0.2:
            self.next_at = now  # the loop stalled: skip ahead rather than burst
        self.handle = loop.call_at(self.next_at, self._tick)
