"""RFC 4733 telephone events that the relay ends itself, turned into digits.

When one side of a call sends DTMF as RTP events (RFC 4733) and the other side cannot
take them in RTP (an H.323 unit without ``receiveRTPAudioTelephonyEventCapability``, a
SIP unit without ``telephone-event``), the relay keeps those packets and reports each
digit once, for the controller to hand to the other leg's signalling (H.245
userInputIndication, a Q.931 keypad, SIP INFO).

Sans-IO: packets in, :class:`~gateway.model.events.Dtmf` out through a callback.

RFC 4733 2.3 payload::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from gateway.media.rtp import RtpParseError, parse_rtp
from gateway.model.events import Dtmf
from gateway.model.sdp import MediaDescription

# RFC 4733 3.2: events 0-15 are the DTMF digits, in this order.
EVENT_DIGITS = "0123456789*#ABCD"
TELEPHONE_EVENT = "telephone-event"
_PAYLOAD = struct.Struct("!BBH")


def telephone_event_format(media: MediaDescription | None) -> tuple[int, int] | None:
    """The payload type and clock rate of ``telephone-event`` in an m= line (RFC 4733
    7.1), or ``None`` when the line does not list it."""
    if media is None:
        return None
    rtpmap = media.rtpmap()
    for pt in media.payload_types:
        entry = rtpmap.get(pt)
        if entry is not None and entry[0].lower() == TELEPHONE_EVENT:
            return pt, entry[1]
    return None


class EventReceiver:
    """The telephone events of one side, each reported once as a digit.

    RFC 4733 2.5.1: every packet of one event carries the same RTP timestamp, the
    duration grows, and the last one has the E bit, sent three times (2.5.1.4). A digit is
    reported at its first end packet; when every end packet was lost it is reported as the
    next event begins. Events above 15 (flash, tones) are not digits and are dropped.
    """

    __slots__ = ("_duration", "_event", "_rate", "_report", "_reported", "_timestamp", "pt")

    def __init__(self, pt: int, rate: int, report: Callable[[Dtmf], None]) -> None:
        self.pt = pt
        self._rate = rate if rate > 0 else 8000
        self._report = report
        self._timestamp: int | None = None
        self._event = 0
        self._duration = 0
        self._reported = True

    def feed(self, packet: bytes) -> None:
        """One RTP packet whose payload type is ``pt``; anything malformed is ignored."""
        try:
            rtp = parse_rtp(packet)
        except RtpParseError:
            return
        if len(rtp.payload) < _PAYLOAD.size:
            return
        event, flags, duration = _PAYLOAD.unpack_from(rtp.payload)
        if rtp.timestamp != self._timestamp:
            self._flush()
            self._timestamp = rtp.timestamp
            self._event = event
            self._duration = 0
            self._reported = False
        self._duration = max(self._duration, duration)
        if flags & 0x80:
            self._flush()

    def _flush(self) -> None:
        if self._reported:
            return
        self._reported = True
        if self._event < len(EVENT_DIGITS):
            ms = self._duration * 1000 // self._rate
            self._report(Dtmf(EVENT_DIGITS[self._event], ms if ms > 0 else 250))


__all__ = ["EVENT_DIGITS", "TELEPHONE_EVENT", "EventReceiver", "telephone_event_format"]
