"""The media-engine interface the call controller talks to.

It mirrors the verbs of rtpengine's "ng" control protocol (``offer``, ``answer``,
``delete``, ``query``, ``play media``, ``stop media``) so that the built-in relay
(:mod:`gateway.media.relay`) and an rtpengine driven over ng are interchangeable: the
controller hands the engine an SDP (RFC 4566) coming from one side of a call and gets
back the SDP to forward to the other side, rewritten to the engine's own addresses and
ports (RFC 3264 offer/answer, with the engine in the middle).

Every method is a coroutine, even where the built-in relay never waits, because an
external engine answers over the network. Every failure comes out as
:class:`MediaError`, whatever the engine is made of, so the controller needs one
``except`` for all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Protocol

from gateway.model.events import Dtmf, FastUpdate, Side
from gateway.model.sdp import SessionDescription


class MediaError(Exception):
    """What a media engine could not do (no ports, SDP it cannot relay, no session, no
    announcement): the only exception its methods raise for a failure. The underlying
    error, when there is one (``SdpError``, ``PromptError``, ``OSError``, a timeout of
    the control channel), is chained as ``__cause__``."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        if cause is not None:
            # Given here as well as by ``raise ... from``: mypyc (2.4), which compiles
            # the relay in scripts/build-core, drops a ``from`` clause.
            self.__cause__ = cause


# init=False: the __init__s are written out so that mypyc compiles them
# (docs/architecture.md, "Compiled, optionally"; tests/model/test_written_out_inits.py).
# Compiled, a class whose __init__ needs arguments pickles only through __reduce__ (the
# media workers send these to the gateway's process).


def _init_arguments(stats: StreamStats | SessionStats) -> tuple[object, ...]:
    """The arguments that build ``stats`` again: its fields, in order."""
    return tuple(getattr(stats, f.name) for f in fields(stats))


@dataclass(slots=True, init=False)
class DirectionStats:
    """Counters for one direction of one stream (RTP and RTCP counted apart, RFC 3550),
    and how well it arrived.

    From the packets, as they reach the engine (RFC 3550 A.1, A.3, A.8): packets
    ``expected`` and ``lost`` (expected - received, negative with duplicates), and the
    interarrival ``jitter`` (the mean of the A.8 estimate over the packets) and its
    maximum, in seconds. From the RTCP crossing the engine (RFC 3550 6.4.1): what the
    stream's receiver reported about it, and the round-trip time between the engine and
    the stream's sender (LSR/DLSR). ``None`` where nothing was measured.
    """

    rtp_packets: int = 0
    rtp_bytes: int = 0
    rtcp_packets: int = 0
    rtcp_bytes: int = 0
    expected: int = 0
    lost: int = 0
    jitter: float | None = None
    jitter_max: float | None = None
    reported_fraction_lost: float | None = None  # 0-1, the receiver's last report
    reported_lost: int | None = None  # the receiver's cumulative count
    reported_jitter: float | None = None  # seconds
    rtt: float | None = None  # seconds, mean over the samples
    rtt_max: float | None = None

    def __init__(
        self,
        rtp_packets: int = 0,
        rtp_bytes: int = 0,
        rtcp_packets: int = 0,
        rtcp_bytes: int = 0,
        expected: int = 0,
        lost: int = 0,
        jitter: float | None = None,
        jitter_max: float | None = None,
        reported_fraction_lost: float | None = None,
        reported_lost: int | None = None,
        reported_jitter: float | None = None,
        rtt: float | None = None,
        rtt_max: float | None = None,
    ) -> None:
        self.rtp_packets = rtp_packets
        self.rtp_bytes = rtp_bytes
        self.rtcp_packets = rtcp_packets
        self.rtcp_bytes = rtcp_bytes
        self.expected = expected
        self.lost = lost
        self.jitter = jitter
        self.jitter_max = jitter_max
        self.reported_fraction_lost = reported_fraction_lost
        self.reported_lost = reported_lost
        self.reported_jitter = reported_jitter
        self.rtt = rtt
        self.rtt_max = rtt_max

    @property
    def loss_ratio(self) -> float | None:
        """Lost over expected from the packets; else the receiver's reported fraction;
        ``None`` when neither is known."""
        if self.expected > 0:
            return max(self.lost, 0) / self.expected
        return self.reported_fraction_lost


@dataclass(slots=True, init=False)
class StreamStats:
    """Counters and latched peer addresses of one relayed media stream (one m-line)."""

    index: int
    kind: str
    a_to_b: DirectionStats = field(default_factory=DirectionStats)
    b_to_a: DirectionStats = field(default_factory=DirectionStats)
    a_peer: tuple[str, int] | None = None
    b_peer: tuple[str, int] | None = None
    # "G722/PCMA": the audio was transcoded, side A's codec then side B's.
    transcoded: str | None = None
    refused: bool = False  # the answer refused the stream (port 0, RFC 3264 6)

    def __init__(
        self,
        index: int,
        kind: str,
        a_to_b: DirectionStats | None = None,
        b_to_a: DirectionStats | None = None,
        a_peer: tuple[str, int] | None = None,
        b_peer: tuple[str, int] | None = None,
        transcoded: str | None = None,
        refused: bool = False,
    ) -> None:
        self.index = index
        self.kind = kind
        self.a_to_b = a_to_b if a_to_b is not None else DirectionStats()
        self.b_to_a = b_to_a if b_to_a is not None else DirectionStats()
        self.a_peer = a_peer
        self.b_peer = b_peer
        self.transcoded = transcoded
        self.refused = refused

    def __reduce__(self) -> tuple[type[StreamStats], tuple[object, ...]]:
        return StreamStats, _init_arguments(self)


@dataclass(slots=True, init=False)
class SessionStats:
    """Everything the engine measured for one call."""

    call_id: str
    streams: list[StreamStats] = field(default_factory=list)

    def __init__(self, call_id: str, streams: list[StreamStats] | None = None) -> None:
        self.call_id = call_id
        self.streams = streams if streams is not None else []

    def __reduce__(self) -> tuple[type[SessionStats], tuple[object, ...]]:
        return SessionStats, _init_arguments(self)

    @property
    def transcoded(self) -> bool:
        """Some audio crossed the engine in another codec than it was sent in."""
        return any(s.transcoded is not None for s in self.streams)

    @property
    def audio_only(self) -> bool:
        """Video was offered but refused (no video codec in common: never transcoded)."""
        return any(s.kind == "video" and s.refused for s in self.streams) and not any(
            s.kind == "video" and not s.refused for s in self.streams
        )


TimeoutHandler = Callable[[str], None]
# What an engine ended in the media of ``side`` because the other side cannot take it
# there: an RFC 4733 digit, a PLI or FIR (RFC 4585, RFC 5104) as a FastUpdate.
MediaEventHandler = Callable[[str, Side, Dtmf | FastUpdate], None]


class MediaEngine(Protocol):
    """Allocates, updates and releases the media sessions of calls.

    ``call_id`` is the controller's own call identifier (not a SIP Call-ID). Every
    method raises :class:`MediaError`, and nothing else, when it cannot do its job
    (an implementation wraps its own errors with ``MediaError(..., cause=exc)``);
    any other exception is a bug. A failed ``offer`` or ``answer`` leaves a running
    session as it was.
    """

    async def start(self) -> None:
        """Open the control channels or sockets the engine needs before the first call."""

    async def close(self) -> None:
        """Release every session and socket."""

    async def offer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """Relay an offer from ``from_side``; return the SDP for the other side (RFC 3264 5).

        The first offer of a call creates its session; ``sdp`` itself is not modified.
        """

    async def answer(
        self, call_id: str, sdp: SessionDescription, *, from_side: Side
    ) -> SessionDescription:
        """Relay the answer from ``from_side``; return the SDP for the other side (RFC 3264 6)."""

    async def delete(self, call_id: str) -> SessionStats | None:
        """Release the call's media and return its final counters (``None`` if unknown)."""

    async def stats(self, call_id: str) -> SessionStats | None:
        """Current counters of a live call (``None`` if unknown)."""

    async def play(self, call_id: str, prompt: str, *, to_side: Side = Side.A) -> None:
        """Loop the announcement ``prompt`` (a name of ``gateway/media/prompts``) to ``to_side``.

        The engine picks the codec: a G.711 format (RFC 3551 PCMU or PCMA) that
        ``to_side`` negotiated in this call's session. Replaces an announcement
        already playing. Raises :class:`MediaError` when there is no session, no G.711
        negotiated towards that side, or no such prompt.
        """

    async def stop_playing(self, call_id: str) -> None:
        """Stop the call's announcement, if one is playing."""

    def set_timeout_handler(self, handler: TimeoutHandler) -> None:
        """Register the callback run with ``call_id`` when a call's media stops."""

    def set_event_handler(self, handler: MediaEventHandler) -> None:
        """Register the callback for what the engine ends in band on a side's behalf.

        An engine that can, answers a side offering RFC 4733 ``telephone-event`` or
        RTCP feedback (``a=rtcp-fb`` PLI or FIR) with them even when the other side
        lacks them, keeps those packets and reports each digit or key-frame request
        here, for the controller to hand to the other leg's signalling.
        """

    async def request_keyframe(self, call_id: str, *, to_side: Side) -> bool:
        """Ask ``to_side``'s video sender for a key frame in RTCP (a PLI, RFC 4585
        6.3.1, or a FIR, RFC 5104 4.3.1) if that side negotiated such feedback; False
        when it did not (or the engine cannot), and the leg's signalling must ask."""

    @property
    def ports_in_use(self) -> int:
        """How many UDP ports calls hold right now (0 when no call is up)."""

    @property
    def ports_idle(self) -> int:
        """UDP ports the engine keeps bound for later calls, held by none now."""

    @property
    def session_count(self) -> int:
        """How many media sessions are live."""
