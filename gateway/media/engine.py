"""The media-engine interface the B2BUA talks to.

It mirrors the offer/answer verbs of rtpengine's "ng" control protocol so that the
built-in relay and rtpengine are interchangeable: the controller hands the engine an
SDP coming from one side of a call and gets back the SDP to forward to the other
side, rewritten to the relay's own addresses and ports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.media.prompts import Prompt
from gateway.model.events import Side
from gateway.model.sdp import SessionDescription


class MediaError(Exception):
    """The engine could not allocate or update a relay session (no ports, bad SDP)."""


@dataclass(slots=True)
class DirectionStats:
    """Counters for one direction of one stream (RTP and RTCP counted apart)."""

    rtp_packets: int = 0
    rtp_bytes: int = 0
    rtcp_packets: int = 0
    rtcp_bytes: int = 0


@dataclass(slots=True)
class StreamStats:
    """Counters and latched peer addresses of one relayed media stream (one m-line)."""

    index: int
    kind: str
    a_to_b: DirectionStats = field(default_factory=DirectionStats)
    b_to_a: DirectionStats = field(default_factory=DirectionStats)
    a_peer: tuple[str, int] | None = None
    b_peer: tuple[str, int] | None = None


@dataclass(slots=True)
class SessionStats:
    """Everything the engine measured for one call."""

    call_id: str
    streams: list[StreamStats] = field(default_factory=list)


TimeoutHandler = Callable[[str], None]


class MediaEngine(Protocol):
    """Allocates, updates and releases relay sessions for calls.

    ``call_id`` is the controller's own call identifier (not a SIP Call-ID).
    """

    async def start(self) -> None:
        """Open control channels or sockets the engine needs before the first call."""

    async def close(self) -> None:
        """Release every session and socket."""

    async def offer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """Relay an offer from ``from_side``; return the SDP for the other side."""

    async def answer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """Relay the answer from ``from_side``; return the SDP for the other side."""

    async def delete(self, call_id: str) -> SessionStats | None:
        """Release the call's ports and return its final counters (``None`` if unknown)."""

    def stats(self, call_id: str) -> SessionStats | None:
        """Current counters of a live call."""

    def play(self, call_id: str, prompt: Prompt) -> bool:
        """Loop ``prompt`` towards side A (rtpengine's "play media"); False if impossible."""

    def stop_playing(self, call_id: str) -> None:
        """Stop the announcement of a call, if any."""

    def set_timeout_handler(self, handler: TimeoutHandler) -> None:
        """Register the callback run with ``call_id`` when a call's media stops."""

    @property
    def ports_in_use(self) -> int:
        """How many UDP ports calls hold right now (0 when no call is up)."""

    @property
    def ports_idle(self) -> int:
        """UDP ports the engine keeps bound for later calls, held by none now."""

    @property
    def session_count(self) -> int:
        """How many relay sessions are live."""
