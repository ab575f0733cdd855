"""Bodies of mid-call INFO requests: DTMF and video fast-update, sans-IO.

DTMF travels as ``application/dtmf-relay`` (the de-facto Cisco format: ``Signal=`` and
``Duration=`` lines) or ``application/dtmf``; a video intra-frame request as
``application/media_control+xml`` with ``picture_fast_update`` (RFC 5168).
"""

from __future__ import annotations

import re

from gateway.model.events import Dtmf, FastUpdate

DTMF_DIGITS = frozenset("0123456789*#ABCD")
DTMF_RELAY = "application/dtmf-relay"
MEDIA_CONTROL = "application/media_control+xml"

_SIGNAL = re.compile(rb"signal\s*=\s*([0-9*#A-Da-d]|1[0-6])\s*$", re.I | re.M)
_DURATION = re.compile(rb"duration\s*=\s*(\d{1,6})\s*$", re.I | re.M)
_EVENT_CODES = "0123456789*#ABCD"  # RFC 4733 3.2 event codes 0-15

FAST_UPDATE_BODY = (
    b'<?xml version="1.0" encoding="utf-8" ?>\r\n'
    b"<media_control><vc_primitive><to_encoder><picture_fast_update/>"
    b"</to_encoder></vc_primitive></media_control>\r\n"
)


def parse_info(content_type: str | None, body: bytes) -> Dtmf | FastUpdate | None:
    """The call event an INFO body carries, or None when it carries none we know."""
    if content_type == DTMF_RELAY:
        m = _SIGNAL.search(body)
        if m is None:
            return None
        sig = m.group(1).decode().upper()
        digit = _EVENT_CODES[int(sig)] if sig.isdigit() and len(sig) == 2 else sig
        d = _DURATION.search(body)
        return Dtmf(digit, int(d.group(1)) if d else 250)
    if content_type == "application/dtmf":
        text = body.strip().decode("ascii", "replace").upper()
        return Dtmf(text) if len(text) == 1 and text in DTMF_DIGITS else None
    if content_type == MEDIA_CONTROL and b"picture_fast_update" in body:
        return FastUpdate()
    return None


def dtmf_relay_body(event: Dtmf) -> bytes:
    """An ``application/dtmf-relay`` body for a digit."""
    return f"Signal={event.digit}\r\nDuration={event.duration_ms}\r\n".encode()
