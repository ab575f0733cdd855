"""An H.245 session, sans-IO (ITU-T H.245, as H.323 8.2-8.5 uses it).

:class:`H245Session` is fed decoded ``MultimediaSystemControlMessage`` values (see
:func:`gateway.h323.asn1.decode_h245`) and the current time, and gives back values to
send, events and the time of its next timer. The transport (tunnelled in H.225.0
UUIEs, H.323 8.2.1, or a TCP connection of its own) is the caller's business.

Procedures: master/slave determination (H.245 8.2, C.2), capability exchange (8.3,
C.3; the empty capability set of H.323 8.4.6 pauses the media), unidirectional
logical channels both ways (8.4-8.6, C.5), RequestChannelClose (C.8), round trip
delay (C.10), endSessionCommand, userInputIndication, videoFastUpdatePicture and
flowControlCommand (H.245 6.x). Media are described by the SDP model, translated by
:mod:`gateway.h323.capabilities`.

The module also builds and reads fastStart elements (H.323 8.1.7): the OpenLogicalChannel
proposals of a Setup, the ones a callee returns, and the SDP they stand for.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from gateway.h323 import capabilities as caps
from gateway.h323.asn1 import H245_PROTOCOL_ID
from gateway.h323.capabilities import MediaFormat
from gateway.h323.errors import H323UsageError
from gateway.model.sdp import (
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SessionDescription,
)

Address = tuple[str, int]
Message = tuple[str, tuple[str, Any]]
Value = dict[str, Any]

# H.323 Table 6 (H.245 master/slave determination): an entity without an MC. The
# gateway has no MC: 60, the value H323Plus also uses for "gateway only".
TERMINAL_TYPE_GATEWAY: Final = 60
# H.245 C.2-C.6 timers T101-T109 ("a value of the order of seconds"); one value.
T1: Final = 20.0
MSD_RETRIES: Final = 3  # H.245 C.2.2 N100
SESSION_IDS: Final = {"audio": 1, "video": 2, "application": 3}  # H.245 B.4.1.3
_MOD24: Final = 1 << 24
_HALF24: Final = 1 << 23


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RemoteMedia:
    """The peer's media after a capability exchange and channel opening, as SDP.

    ``resumed`` is set when it follows a pause (an empty capability set, H.323 8.4.6).
    """

    sdp: SessionDescription
    resumed: bool = False


@dataclass(frozen=True, slots=True)
class UserInput:
    """A userInputIndication (H.245 6.x, alphanumeric or signal); duration in ms."""

    digit: str
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class FastUpdateRequest:
    """miscellaneousCommand videoFastUpdatePicture for one of our channels."""

    channel: int


@dataclass(frozen=True, slots=True)
class FlowControl:
    """flowControlCommand: ``max_bit_rate`` in units of 100 bit/s, None = no restriction."""

    channel: int | None
    max_bit_rate: int | None


@dataclass(frozen=True, slots=True)
class PausedByPeer:
    """The peer sent an empty capability set (third-party pause, H.323 8.4.6)."""


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The peer sent endSessionCommand."""


@dataclass(frozen=True, slots=True)
class SessionFailed:
    """A procedure failed for good (a timer ran out, a reject): the session cannot go on."""

    reason: str


H245Event = (
    RemoteMedia | UserInput | FastUpdateRequest | FlowControl | PausedByPeer | SessionEnded
) | SessionFailed


# --- addresses and SDP ----------------------------------------------------------------------


def h245_address(address: Address) -> tuple[str, Any]:
    """An H.245 unicast TransportAddress (H.245 B.4.1.3) for ``(ip, port)``."""
    ip, port = address
    try:
        packed = ipaddress.IPv4Address(ip).packed
    except ValueError:
        raise H323UsageError(f"{ip!r} is not an IPv4 address") from None
    return ("unicastAddress", ("iPAddress", {"network": packed, "tsapIdentifier": port}))


def address_of(value: Any) -> Address | None:
    """``(ip, port)`` of an H.245 unicast iPAddress, None for any other kind."""
    if not isinstance(value, tuple) or value[0] != "unicastAddress":
        return None
    inner = value[1]
    if not isinstance(inner, tuple) or inner[0] != "iPAddress":
        return None
    network = inner[1].get("network", b"")
    if len(network) != 4:
        return None
    return (str(ipaddress.IPv4Address(network)), int(inner[1]["tsapIdentifier"]))


def rtp_address(sdp: SessionDescription, media: MediaDescription) -> Address | None:
    """Where ``media`` receives RTP (RFC 8866 5.7, 5.14), None without an IPv4 address."""
    conn = sdp.connection_for(media)
    if conn is None or conn.addrtype != "IP4":
        return None
    return (conn.address, media.port)


def rtcp_address(sdp: SessionDescription, media: MediaDescription) -> Address | None:
    """Where ``media`` receives RTCP: ``a=rtcp`` (RFC 3605), else the RTP port plus one."""
    rtp = rtp_address(sdp, media)
    if rtp is None:
        return None
    attr = media.get_attr("rtcp")
    if attr:
        port = attr.split()[0]
        if port.isdigit():
            return (rtp[0], int(port))
    return (rtp[0], rtp[1] + 1)


def is_hold(sdp: SessionDescription) -> bool:
    """Whether ``sdp`` puts the call on hold: every active stream sendonly or inactive, or
    its address 0.0.0.0 (RFC 3264 8.4, RFC 2543)."""
    active = [m for m in sdp.media if m.port != 0]
    if not active:
        return False
    for m in active:
        conn = sdp.connection_for(m)
        if conn is not None and conn.is_unspecified:
            continue
        if sdp.effective_direction(m) in (Direction.SENDONLY, Direction.INACTIVE):
            continue
        return False
    return True


def _sends(sdp: SessionDescription, media: MediaDescription) -> bool:
    return sdp.effective_direction(media) in (Direction.SENDRECV, Direction.SENDONLY)


def _receives(sdp: SessionDescription, media: MediaDescription) -> bool:
    return sdp.effective_direction(media) in (Direction.SENDRECV, Direction.RECVONLY)


def new_sdp(address: str, media: list[MediaDescription], version: int = 1) -> SessionDescription:
    """A session description around ``media`` whose session address is ``address``
    (media lines at that same address lose their own ``c=``)."""
    for m in media:
        if m.connection is not None and m.connection.address == address:
            m.connection = None
    return SessionDescription(
        0,
        Origin(
            username="-",
            sess_id="1",
            sess_version=version,
            nettype="IN",
            addrtype="IP4",
            address=address,
        ),
        "-",
        connection=Connection.for_address(address),
        media=media,
    )


def media_line(
    kind: str, formats: Sequence[MediaFormat], address: Address | None, proto: str = "RTP/AVP"
) -> MediaDescription:
    """One ``m=`` line for ``formats`` at ``address`` (port 0 and the formats when None)."""
    lines = caps.media_descriptions(formats, port=address[1] if address else 0, proto=proto)
    if not lines:
        return MediaDescription(kind, 0, proto, ["0" if kind == "audio" else "31"])
    m = lines[0]
    if address is not None:
        m.connection = Connection.for_address(address[0])
    return m


def _matching(fmt: MediaFormat, candidates: Iterable[MediaFormat]) -> MediaFormat:
    """``fmt`` in the terms of the first candidate of the same codec (its payload type)."""
    for other in candidates:
        if other.codec is fmt.codec:
            return replace(other, ptime=fmt.ptime or other.ptime)
    return fmt


# --- logical channels -----------------------------------------------------------------------


@dataclass(slots=True)
class Channel:
    """One unidirectional logical channel (H.245 8.4); ``outgoing`` when we transmit.

    ``rtp``/``rtcp`` are the peer's addresses for an outgoing channel (from its Ack),
    ours for an incoming one; ``peer_rtcp`` the peer's RTCP of an incoming channel.
    """

    number: int
    kind: str
    session_id: int
    fmt: MediaFormat
    outgoing: bool
    open: bool = False
    rtp: Address | None = None
    rtcp: Address | None = None
    peer_rtcp: Address | None = None
    deadline: float | None = None


def _h2250(
    session_id: int,
    fmt: MediaFormat,
    *,
    media: Address | None = None,
    control: Address | None = None,
) -> tuple[str, Value]:
    params: Value = {"sessionID": session_id}
    if media is not None:
        params["mediaChannel"] = h245_address(media)
    if control is not None:
        params["mediaControlChannel"] = h245_address(control)
    params.update(caps.logical_channel_media(fmt))
    if fmt.kind == "audio":
        params["silenceSuppression"] = False
    return ("h2250LogicalChannelParameters", params)


def open_logical_channel(
    number: int, fmt: MediaFormat, *, control: Address, media: Address | None = None
) -> Value:
    """An OpenLogicalChannel for a channel we transmit (H.245 8.4.1, B.4.1.1)."""
    data_type = caps.data_type(fmt)
    if data_type is None:
        raise H323UsageError(f"no H.245 dataType for {fmt.codec.name}")
    return {
        "forwardLogicalChannelNumber": number,
        "forwardLogicalChannelParameters": {
            "dataType": data_type,
            "multiplexParameters": _h2250(SESSION_IDS[fmt.kind], fmt, media=media, control=control),
        },
    }


def reverse_proposal(number: int, fmt: MediaFormat, *, media: Address, control: Address) -> Value:
    """A fastStart proposal for a channel the peer transmits to us (H.323 8.1.7.1):
    forward nullData, reverse parameters with our RTP and RTCP addresses."""
    data_type = caps.data_type(fmt)
    if data_type is None:
        raise H323UsageError(f"no H.245 dataType for {fmt.codec.name}")
    return {
        "forwardLogicalChannelNumber": number,
        "forwardLogicalChannelParameters": {
            "dataType": ("nullData", 0),
            "multiplexParameters": ("none", 0),
        },
        "reverseLogicalChannelParameters": {
            "dataType": data_type,
            "multiplexParameters": _h2250(SESSION_IDS[fmt.kind], fmt, media=media, control=control),
        },
    }


def _olc_ack(number: int, session_id: int, media: Address, control: Address) -> Message:
    params = {
        "sessionID": session_id,
        "mediaChannel": h245_address(media),
        "mediaControlChannel": h245_address(control),
    }
    return (
        "response",
        (
            "openLogicalChannelAck",
            {
                "forwardLogicalChannelNumber": number,
                "forwardMultiplexAckParameters": ("h2250LogicalChannelAckParameters", params),
            },
        ),
    )


def _olc_reject(number: int, cause: str) -> Message:
    return (
        "response",
        ("openLogicalChannelReject", {"forwardLogicalChannelNumber": number, "cause": (cause, 0)}),
    )


def _h2250_of(parameters: Mapping[str, Any]) -> Mapping[str, Any]:
    mux = parameters.get("multiplexParameters", ("none", 0))
    if mux[0] == "h2250LogicalChannelParameters" and isinstance(mux[1], dict):
        return mux[1]
    return {}


def _kind_of(parameters: Mapping[str, Any], fmt: MediaFormat | None) -> str | None:
    if fmt is not None:
        return fmt.kind
    session = _h2250_of(parameters).get("sessionID")
    for kind, number in SESSION_IDS.items():
        if number == session:
            return kind
    return None


# --- fastStart (H.323 8.1.7) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FastStartChannel:
    """One fastStart element, read: direction, format and addresses.

    ``outgoing`` is from the reader's point of view: True when the reader transmits on it.
    """

    number: int
    kind: str
    fmt: MediaFormat
    outgoing: bool
    rtp: Address | None  # where the media of this channel goes
    rtcp: Address | None  # the RTCP address the element carries
    olc: Value


def fast_start_proposals(offer: SessionDescription, first_number: int = 1) -> list[Value]:
    """The fastStart OLCs of a Setup for ``offer`` (H.323 8.1.7.1), in its preference
    order: for each codec, the channel we transmit then the one we receive."""
    out: list[Value] = []
    number = first_number
    for m in offer.media:
        rtp, rtcp = rtp_address(offer, m), rtcp_address(offer, m)
        if m.port == 0 or m.kind not in ("audio", "video") or rtp is None or rtcp is None:
            continue
        for fmt in caps.formats_of(m):
            if caps.data_type(fmt) is None:
                continue
            if _sends(offer, m):
                out.append(open_logical_channel(number, fmt, control=rtcp))
                number += 1
            if _receives(offer, m):
                out.append(reverse_proposal(number, fmt, media=rtp, control=rtcp))
                number += 1
    return out


def read_fast_start(olc: Mapping[str, Any], *, proposer: bool) -> FastStartChannel | None:
    """What one fastStart element says, seen by its reader.

    ``proposer`` is False when reading the proposals of a Setup (a reverse element is
    a channel the reader transmits), True when reading what the callee returned (a
    reverse element is one the callee transmits, so the reader receives).
    """
    reverse = olc.get("reverseLogicalChannelParameters")
    params = reverse if reverse is not None else olc.get("forwardLogicalChannelParameters")
    if params is None:
        return None
    fmt = caps.format_from_channel(params)
    if fmt is None or fmt.kind not in SESSION_IDS:
        return None
    h2250 = _h2250_of(params)
    # a reverse element: the proposer receives; a forward one: the proposer transmits
    outgoing = (reverse is None) == proposer
    return FastStartChannel(
        number=int(olc["forwardLogicalChannelNumber"]),
        kind=fmt.kind,
        fmt=fmt,
        outgoing=outgoing,
        rtp=address_of(h2250.get("mediaChannel")),
        rtcp=address_of(h2250.get("mediaControlChannel")),
        olc=dict(olc),
    )


def offer_from_proposals(
    proposals: Sequence[FastStartChannel], fallback_ip: str | None = None
) -> SessionDescription | None:
    """The caller's offer as SDP from the proposals of its Setup (read by the callee).

    Each media kind gets the formats the caller takes (its reverse proposals) at the
    RTP address they carry; a kind the caller only sends is ``sendonly`` at its RTCP
    port minus one (RFC 3550 11: RTP on the even port below RTCP).
    """
    media: list[MediaDescription] = []
    address: str | None = None
    for kind in ("audio", "video"):
        ours = [p for p in proposals if p.kind == kind and p.outgoing]  # callee sends
        theirs = [p for p in proposals if p.kind == kind and not p.outgoing]  # callee gets
        chosen = ours or theirs
        if not chosen:
            continue
        rtp = next((p.rtp for p in ours if p.rtp is not None), None)
        direction: Direction | None = None
        if rtp is None:
            rtcp = next((p.rtcp for p in chosen if p.rtcp is not None), None)
            rtp = (rtcp[0], rtcp[1] - 1) if rtcp is not None else None
            direction = Direction.SENDONLY
        elif not theirs:
            direction = Direction.RECVONLY
        formats: list[MediaFormat] = []
        for p in chosen:
            if all(f.codec is not p.fmt.codec for f in formats):
                formats.append(p.fmt)
        m = media_line(kind, formats, rtp)
        if direction is not None:
            m.set_direction(direction)
        media.append(m)
        if rtp is not None and address is None:
            address = rtp[0]
    if not media:
        return None
    return new_sdp(address or fallback_ip or "0.0.0.0", media)


def accept_proposals(
    proposals: Sequence[FastStartChannel], answer: SessionDescription, first_number: int = 1
) -> tuple[list[Value], list[FastStartChannel]]:
    """The fastStart elements a callee returns for ``answer`` (H.323 8.1.7.1-8.1.7.2).

    For each ``m=`` line of the answer, the first proposal in the caller's order whose
    codec the answer holds, in each direction the answer allows: the element is the
    proposal with our addresses filled in (our RTCP in the reverse parameters of a
    channel we transmit, numbered by us; our RTP and RTCP in the forward parameters of
    one we receive). Returns the elements and the channels they open.
    """
    elements: list[Value] = []
    opened: list[FastStartChannel] = []
    number = first_number
    for m in answer.media:
        rtp, rtcp = rtp_address(answer, m), rtcp_address(answer, m)
        if m.port == 0 or rtp is None or rtcp is None:
            continue
        ours = caps.formats_of(m)
        for sending in (True, False):
            if sending and not _sends(answer, m):
                continue
            if not sending and not _receives(answer, m):
                continue
            pick = next(
                (
                    p
                    for p in proposals
                    if p.kind == m.kind
                    and p.outgoing == sending
                    and any(f.codec is p.fmt.codec for f in ours)
                ),
                None,
            )
            if pick is None:
                continue
            olc = dict(pick.olc)
            fmt = _matching(pick.fmt, ours) if pick.fmt.payload_type is None else pick.fmt
            if sending:
                reverse = dict(olc["reverseLogicalChannelParameters"])
                reverse["multiplexParameters"] = _h2250(SESSION_IDS[m.kind], pick.fmt, control=rtcp)
                olc["reverseLogicalChannelParameters"] = reverse
                olc["forwardLogicalChannelNumber"] = number
                number += 1
                opened.append(replace(pick, number=olc["forwardLogicalChannelNumber"], olc=olc))
            else:
                forward = dict(olc["forwardLogicalChannelParameters"])
                forward["multiplexParameters"] = _h2250(
                    SESSION_IDS[m.kind], pick.fmt, media=rtp, control=rtcp
                )
                olc["forwardLogicalChannelParameters"] = forward
                opened.append(replace(pick, fmt=fmt, olc=olc))
            elements.append(olc)
    return elements, opened


def answer_from_accepted(
    offer: SessionDescription, accepted: Sequence[FastStartChannel]
) -> SessionDescription:
    """The answer SDP to ``offer`` from the fastStart elements the callee returned.

    Each ``m=`` line of the offer (same order, RFC 3264 6) gets the codec of the channel
    we transmit at the callee's RTP address (its ``mediaChannel``); a kind on which the
    callee only transmits is ``sendonly`` at its RTCP port minus one; otherwise port 0.
    """
    media: list[MediaDescription] = []
    address: str | None = None
    for m in offer.media:
        ours = caps.formats_of(m) if m.port != 0 else []
        send = next((c for c in accepted if c.kind == m.kind and c.outgoing), None)
        recv = next((c for c in accepted if c.kind == m.kind and not c.outgoing), None)
        if send is not None and send.rtp is not None:
            line = media_line(m.kind, [_matching(send.fmt, ours)], send.rtp, m.proto)
            if recv is None:
                line.set_direction(Direction.RECVONLY)
        elif recv is not None and recv.rtcp is not None:
            rtp = (recv.rtcp[0], recv.rtcp[1] - 1)
            line = media_line(m.kind, [_matching(recv.fmt, ours)], rtp, m.proto)
            line.set_direction(Direction.SENDONLY)
        else:
            line = MediaDescription(m.kind, 0, m.proto, list(m.formats) or ["0"])
        if line.port and line.connection is not None and address is None:
            address = line.connection.address
        media.append(line)
    return new_sdp(address or "0.0.0.0", media)


# --- the session ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Msd:
    """Master/slave determination state (H.245 C.2)."""

    number: int = 0
    state: str = "idle"  # idle, outgoing (MSD sent), incoming (Ack sent, awaiting Ack)
    master: bool | None = None
    retries: int = 0
    deadline: float | None = None


@dataclass(slots=True)
class _Tcs:
    """Outgoing capability exchange state (H.245 C.3)."""

    sequence: int = 0
    pending: bool = False
    deadline: float | None = None
    empty: bool = False


@dataclass(slots=True)
class _Stats:
    sent: int = 0
    received: int = 0
    notes: list[str] = field(default_factory=list)


class H245Session:
    """One H.245 control channel's procedures for one call (H.245 8, annex C).

    ``local`` is the SDP of what we receive (our addresses and formats): our TCS
    announces it and our channel Acks carry its addresses. Channels we transmit are
    opened once the peer's TCS is known and master/slave determination is done, one per
    media kind, with the first format of ``local`` the peer's TCS also holds.
    """

    def __init__(
        self,
        *,
        now: float,
        local: SessionDescription | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        terminal_type: int = TERMINAL_TYPE_GATEWAY,
        timeout: float = T1,
        fast_started: bool = False,
    ) -> None:
        self.local = local
        self.started = False
        self.ended = False
        self.fast_started = fast_started
        self.peer_tcs: Value | None = None
        self.paused = False  # the peer sent us an empty capability set
        self.held = False  # we sent an empty capability set
        self.channels: dict[tuple[bool, int], Channel] = {}
        self.stats = _Stats()
        self._random = random_bytes
        self._terminal_type = terminal_type
        self._timeout = timeout
        self._msd = _Msd()
        self._tcs = _Tcs()
        self._out: list[Message] = []
        self._events: list[H245Event] = []
        self._next_number = 1
        self._awaiting_media = False
        self._resuming = False

    # -- outputs -------------------------------------------------------------------------

    def outgoing(self) -> list[Message]:
        """Messages to send, in order, drained."""
        out, self._out = self._out, []
        self.stats.sent += len(out)
        return out

    def events(self) -> list[H245Event]:
        """Events, in order, drained."""
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` is due, None when no procedure waits."""
        times = [self._msd.deadline, self._tcs.deadline]
        times += [c.deadline for c in self.channels.values()]
        present = [t for t in times if t is not None]
        return min(present) if present else None

    @property
    def msd_done(self) -> bool:
        """Master/slave determination is over (H.245 C.2)."""
        return self._msd.master is not None and self._msd.state == "idle"

    @property
    def master(self) -> bool | None:
        """Whether we are the master, None before the determination."""
        return self._msd.master

    @property
    def peer_takes_dtmf_signal(self) -> bool:
        """Whether the peer's TCS announces userInput dtmf (H.245 B.2.2.3), so a
        ``signal`` indication (with its duration) may be sent."""
        for entry in (self.peer_tcs or {}).get("capabilityTable", []):
            cap = entry.get("capability")
            if cap is None or not cap[0].endswith("UserInputCapability"):
                continue
            if cap[0] != "transmitUserInputCapability" and cap[1][0] == "dtmf":
                return True
        return False

    # -- commands ------------------------------------------------------------------------

    def start(self, now: float) -> None:
        """Begin the session: our TCS (when our media is known) and our MSD (H.245 8.2-8.3)."""
        if self.started or self.ended:
            return
        self.started = True
        if self.local is not None and self._tcs.sequence == 0:
            self.held = is_hold(self.local)
            self._send_tcs(now, empty=self.held)
        if self._msd.state == "idle" and self._msd.master is None:
            self._send_msd(now)

    def set_local(self, sdp: SessionDescription, now: float) -> None:
        """New media for our side: hold (an empty TCS, H.323 8.4.6) or a new TCS and, when
        our channels were closed meanwhile, new channels; RemoteMedia follows."""
        self.local = sdp
        if not self.started:
            return
        if is_hold(sdp):
            if not self.held:
                self.held = True
                self._send_tcs(now, empty=True)
            return
        self.held = False
        self._send_tcs(now)
        if not self.paused and (self.peer_tcs is not None or self.fast_started):
            self._awaiting_media = True
            if self.peer_tcs is not None and self.msd_done:
                self._open_channels(now)
            else:  # the channels of fastStart describe the peer already
                self._media_progress()

    def user_input(self, digit: str, duration_ms: int) -> None:
        """userInputIndication (H.245 6.x): a ``signal`` with its duration when the peer
        announced dtmf, else ``alphanumeric``."""
        if self.peer_takes_dtmf_signal and len(digit) == 1:
            value: Any = ("signal", {"signalType": digit, "duration": max(1, duration_ms)})
        else:
            value = ("alphanumeric", digit)
        self._out.append(("indication", ("userInput", value)))

    def fast_update(self) -> bool:
        """videoFastUpdatePicture on the video channel the peer transmits to us."""
        incoming = [c for (out, _), c in self.channels.items() if not out and c.kind == "video"]
        if not incoming:
            return False
        command = {
            "logicalChannelNumber": incoming[0].number,
            "type": ("videoFastUpdatePicture", 0),
        }
        self._out.append(("command", ("miscellaneousCommand", command)))
        return True

    def end_session(self) -> None:
        """endSessionCommand disconnect (H.245 8.x, H.323 8.5 step 3)."""
        if not self.ended:
            self.ended = True
            self._out.append(("command", ("endSessionCommand", ("disconnect", 0))))

    def adopt_fast_start(self, channels: Iterable[FastStartChannel]) -> None:
        """Channels opened by fastStart (H.323 8.1.7): known to H.245, not reopened."""
        self.fast_started = True
        for fs in channels:
            ch = Channel(fs.number, fs.kind, SESSION_IDS[fs.kind], fs.fmt, fs.outgoing, True)
            if fs.outgoing:
                ch.rtp, ch.rtcp = fs.rtp, fs.rtcp
            else:
                ch.peer_rtcp = fs.rtcp
            self.channels[(fs.outgoing, fs.number)] = ch
            if fs.outgoing:
                self._next_number = max(self._next_number, fs.number + 1)

    # -- input ---------------------------------------------------------------------------

    def receive(self, message: Message, now: float) -> None:
        """Handle one received MultimediaSystemControlMessage."""
        self.stats.received += 1
        kind, (name, value) = message
        handler = _HANDLERS.get((kind, name))
        if handler is not None:
            handler(self, value, now)
        elif kind == "request":
            # H.245 C.x: an unknown request is answered functionNotUnderstood
            self._out.append(("indication", ("functionNotUnderstood", ("request", (name, value)))))
        else:
            self.stats.notes.append(f"ignored {kind} {name}")

    def on_timer(self, now: float) -> None:
        """Expire the procedures whose timer ran out (T101, T103, T106 of H.245 annex C)."""
        if self._msd.deadline is not None and now >= self._msd.deadline:
            self._msd.deadline = None
            if self._msd.state == "outgoing":
                self._fail("no answer to MasterSlaveDetermination (T106)")
                return
            self._msd.state = "idle"  # incoming: the Ack of our decision never came
        if self._tcs.deadline is not None and now >= self._tcs.deadline:
            self._tcs.deadline = None
            self._fail("no answer to TerminalCapabilitySet (T101)")
            return
        for key, ch in list(self.channels.items()):
            if ch.deadline is not None and now >= ch.deadline:
                ch.deadline = None
                if not ch.open:
                    # H.245 C.5.4: the opening failed; the channel is closed
                    self._out.append(_close(ch.number))
                    del self.channels[key]
                    self.stats.notes.append(f"channel {ch.number} not acknowledged (T103)")
                    self._media_progress()

    # -- procedures ----------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.stats.notes.append(reason)
        self._events.append(SessionFailed(reason))

    def _send_msd(self, now: float) -> None:
        self._msd.number = int.from_bytes(self._random(3), "big") % _MOD24
        self._msd.state = "outgoing"
        self._msd.deadline = now + self._timeout
        body = {"terminalType": self._terminal_type, "statusDeterminationNumber": self._msd.number}
        self._out.append(("request", ("masterSlaveDetermination", body)))

    def _send_tcs(self, now: float, *, empty: bool = False) -> None:
        self._tcs.sequence = self._tcs.sequence % 255 + 1
        self._tcs.pending = True
        self._tcs.empty = empty
        self._tcs.deadline = now + self._timeout
        if empty or self.local is None:
            tcs: Value = {
                "sequenceNumber": self._tcs.sequence,
                "protocolIdentifier": H245_PROTOCOL_ID,
            }
        else:
            tcs = caps.terminal_capability_set(
                self.local, sequence_number=self._tcs.sequence, protocol_identifier=H245_PROTOCOL_ID
            )
        self._out.append(("request", ("terminalCapabilitySet", tcs)))

    def _on_msd(self, value: Value, now: float) -> None:
        """H.245 C.2.3: decide, acknowledge (the decision is the peer's role)."""
        if not self.started:
            self.start(now)
        theirs = int(value["terminalType"])
        if theirs != self._terminal_type:
            master = theirs < self._terminal_type
        else:
            diff = (int(value["statusDeterminationNumber"]) - self._msd.number) % _MOD24
            if diff in (0, _HALF24):
                if self._msd.state == "outgoing" and self._msd.retries < MSD_RETRIES:
                    self._msd.retries += 1
                    self._send_msd(now)
                    return
                reject = {"cause": ("identicalNumbers", 0)}
                self._out.append(("response", ("masterSlaveDeterminationReject", reject)))
                self._msd.state = "idle"
                self._msd.deadline = None
                return
            master = diff < _HALF24
        self._msd.master = master
        self._msd.state = "incoming"
        self._msd.deadline = now + self._timeout
        decision = ("slave", 0) if master else ("master", 0)
        self._out.append(("response", ("masterSlaveDeterminationAck", {"decision": decision})))

    def _on_msd_ack(self, value: Value, now: float) -> None:
        """H.245 C.2.3: the Ack gives our role; answer it when we started the procedure."""
        master = value["decision"][0] == "master"
        if self._msd.state == "outgoing":
            decision = ("slave", 0) if master else ("master", 0)
            self._out.append(("response", ("masterSlaveDeterminationAck", {"decision": decision})))
        elif self._msd.state == "idle":
            return
        elif self._msd.master is not None and self._msd.master != master:
            self.stats.notes.append("master/slave mismatch")
        self._msd.master = master
        self._msd.state = "idle"
        self._msd.deadline = None
        self._maybe_open(now)

    def _on_msd_reject(self, value: Value, now: float) -> None:
        if self._msd.state == "outgoing" and self._msd.retries < MSD_RETRIES:
            self._msd.retries += 1
            self._send_msd(now)
            return
        self._msd.state = "idle"
        self._msd.deadline = None
        self._fail("MasterSlaveDetermination rejected")

    def _on_msd_release(self, value: Any, now: float) -> None:
        self._msd.state = "idle"
        self._msd.deadline = None

    def _on_tcs(self, value: Value, now: float) -> None:
        """H.245 C.3.3: acknowledge; an empty set pauses, a set after it resumes."""
        if not self.started:
            self.start(now)
        self._out.append(
            ("response", ("terminalCapabilitySetAck", {"sequenceNumber": value["sequenceNumber"]}))
        )
        if "capabilityTable" not in value and "multiplexCapability" not in value:
            self._pause(now)
            return
        was_paused = self.paused
        self.peer_tcs = value
        if was_paused:
            self.paused = False
            self._resuming = True
            self._awaiting_media = True
            if self._msd.state == "idle":
                self._msd.master = None
                self._send_msd(now)  # H.323 8.4.6: the exchanges start again
            return
        if not self.fast_started:
            self._awaiting_media = True
        self._maybe_open(now)

    def _pause(self, now: float) -> None:
        """H.323 8.4.6: close what we transmit, wait for a new capability set."""
        self.paused = True
        for key, ch in list(self.channels.items()):
            if ch.outgoing:
                self._out.append(_close(ch.number))
                del self.channels[key]
        self._msd.master = None
        self._msd.state = "idle"
        self._msd.deadline = None
        self._awaiting_media = False
        self._events.append(PausedByPeer())

    def _on_tcs_ack(self, value: Value, now: float) -> None:
        if value.get("sequenceNumber") == self._tcs.sequence:
            self._tcs.pending = False
            self._tcs.deadline = None

    def _on_tcs_reject(self, value: Value, now: float) -> None:
        self._tcs.pending = False
        self._tcs.deadline = None
        self._fail(f"TerminalCapabilitySet rejected: {value.get('cause', ('?', 0))[0]}")

    def _on_tcs_release(self, value: Any, now: float) -> None:
        self.stats.notes.append("peer gave up waiting for our TerminalCapabilitySetAck")

    def _maybe_open(self, now: float) -> None:
        if self._awaiting_media and self.peer_tcs is not None and self.msd_done:
            self._open_channels(now)

    def _open_channels(self, now: float) -> None:
        """Open one channel per media kind we send (H.245 8.4.1), with the first format
        of our description the peer receives (capabilities.common_formats)."""
        local = self.local
        if local is None or self.peer_tcs is None or self.held:
            return
        for m in local.media:
            if m.port == 0 or m.kind not in ("audio", "video") or not _sends(local, m):
                continue
            rtcp = rtcp_address(local, m)
            if rtcp is None:
                continue
            if any(c.outgoing and c.kind == m.kind for c in self.channels.values()):
                continue
            common = [
                f for f in caps.common_formats([m], self.peer_tcs) if caps.data_type(f) is not None
            ]
            if not common:
                self.stats.notes.append(f"no {m.kind} format in common")
                continue
            number = self._next_number
            self._next_number += 1
            ch = Channel(number, m.kind, SESSION_IDS[m.kind], common[0], True)
            ch.deadline = now + self._timeout
            self.channels[(True, number)] = ch
            olc = open_logical_channel(number, common[0], control=rtcp)
            self._out.append(("request", ("openLogicalChannel", olc)))
        self._media_progress()

    def _media_progress(self) -> None:
        """Report the peer's media once every channel we opened has an answer."""
        if not self._awaiting_media or self.local is None:
            return
        if self.peer_tcs is None and not self.fast_started:
            return
        if any(c.outgoing and not c.open for c in self.channels.values()):
            return
        if not self.msd_done and not self.fast_started:
            return
        self._awaiting_media = False
        resumed, self._resuming = self._resuming, False
        self._events.append(RemoteMedia(self.remote_sdp(), resumed=resumed))

    def remote_sdp(self) -> SessionDescription:
        """The peer's media as SDP, one ``m=`` line per line of ``local`` (RFC 3264 6)."""
        local = self.local
        assert local is not None
        media: list[MediaDescription] = []
        address: str | None = None
        for m in local.media:
            send = next(
                (c for c in self.channels.values() if c.outgoing and c.kind == m.kind), None
            )
            recv = next(
                (c for c in self.channels.values() if not c.outgoing and c.kind == m.kind), None
            )
            ours = caps.formats_of(m) if m.port != 0 else []
            if send is not None and send.open and send.rtp is not None:
                formats = [_matching(send.fmt, ours)]
                if m.kind == "audio" and self.peer_tcs is not None:
                    formats += [
                        f for f in caps.common_formats([m], self.peer_tcs) if f.events is not None
                    ]
                line = media_line(m.kind, formats, send.rtp, m.proto)
            elif recv is not None and recv.peer_rtcp is not None:
                rtp = (recv.peer_rtcp[0], recv.peer_rtcp[1] - 1)
                line = media_line(m.kind, [_matching(recv.fmt, ours)], rtp, m.proto)
                line.set_direction(Direction.SENDONLY)
            else:
                line = MediaDescription(m.kind, 0, m.proto, list(m.formats) or ["0"])
            if line.port and line.connection is not None and address is None:
                address = line.connection.address
            media.append(line)
        return new_sdp(address or "0.0.0.0", media)

    @property
    def channels_settled(self) -> bool:
        """No channel we opened waits for its answer."""
        return not any(c.outgoing and not c.open for c in self.channels.values())

    def _on_olc(self, value: Value, now: float) -> None:
        """H.245 C.5.3: a channel the peer transmits; Ack with our RTP/RTCP or reject."""
        number = int(value["forwardLogicalChannelNumber"])
        if "reverseLogicalChannelParameters" in value:
            self._out.append(_olc_reject(number, "unsuitableReverseParameters"))
            return
        params = value["forwardLogicalChannelParameters"]
        fmt = caps.format_from_channel(params)
        local = self.local
        line = None
        if fmt is not None and local is not None:
            line = next(
                (
                    m
                    for m in local.media
                    if m.kind == fmt.kind and m.port != 0 and _receives(local, m)
                ),
                None,
            )
        if fmt is None or local is None or line is None:
            self._out.append(_olc_reject(number, "dataTypeNotSupported"))
            return
        if all(f.codec is not fmt.codec for f in caps.formats_of(line)):
            self._out.append(_olc_reject(number, "dataTypeNotAvailable"))
            return
        rtp, rtcp = rtp_address(local, line), rtcp_address(local, line)
        if rtp is None or rtcp is None:
            self._out.append(_olc_reject(number, "unspecified"))
            return
        h2250 = _h2250_of(params)
        session = int(h2250.get("sessionID") or SESSION_IDS[fmt.kind])
        ch = Channel(number, fmt.kind, session, fmt, False, True, rtp, rtcp)
        ch.peer_rtcp = address_of(h2250.get("mediaControlChannel"))
        self.channels[(False, number)] = ch
        self._out.append(_olc_ack(number, session, rtp, rtcp))

    def _on_olc_ack(self, value: Value, now: float) -> None:
        ch = self.channels.get((True, int(value["forwardLogicalChannelNumber"])))
        if ch is None:
            return
        ack = value.get("forwardMultiplexAckParameters", ("none", {}))
        params = ack[1] if ack[0] == "h2250LogicalChannelAckParameters" else {}
        ch.rtp = address_of(params.get("mediaChannel"))
        ch.rtcp = address_of(params.get("mediaControlChannel"))
        ch.open = True
        ch.deadline = None
        if ch.rtp is None:
            self.stats.notes.append(f"channel {ch.number} Ack without mediaChannel")
        self._media_progress()

    def _on_olc_reject(self, value: Value, now: float) -> None:
        number = int(value["forwardLogicalChannelNumber"])
        if self.channels.pop((True, number), None) is not None:
            self.stats.notes.append(f"channel {number} rejected: {value['cause'][0]}")
            self._media_progress()

    def _on_olc_confirm(self, value: Value, now: float) -> None:
        pass  # H.245 C.5: only for bidirectional channels, which we never open

    def _on_clc(self, value: Value, now: float) -> None:
        number = int(value["forwardLogicalChannelNumber"])
        self.channels.pop((False, number), None)
        ack = {"forwardLogicalChannelNumber": number}
        self._out.append(("response", ("closeLogicalChannelAck", ack)))

    def _on_clc_ack(self, value: Value, now: float) -> None:
        pass  # the channel was forgotten when the close was sent

    def _on_rcc(self, value: Value, now: float) -> None:
        """H.245 C.8: the peer asks us to close a channel we transmit: Ack, then close."""
        number = int(value["forwardLogicalChannelNumber"])
        ack = {"forwardLogicalChannelNumber": number}
        if self.channels.pop((True, number), None) is None:
            reject = {"forwardLogicalChannelNumber": number, "cause": ("unspecified", 0)}
            self._out.append(("response", ("requestChannelCloseReject", reject)))
            return
        self._out.append(("response", ("requestChannelCloseAck", ack)))
        self._out.append(_close(number))

    def _on_rtd(self, value: Value, now: float) -> None:
        response = {"sequenceNumber": value["sequenceNumber"]}
        self._out.append(("response", ("roundTripDelayResponse", response)))

    def _on_end_session(self, value: Any, now: float) -> None:
        self._events.append(SessionEnded())

    def _on_user_input(self, value: Any, now: float) -> None:
        name, body = value
        if name == "alphanumeric" and isinstance(body, str):
            for char in body:
                self._events.append(UserInput(char, None))
        elif name == "signal" and isinstance(body, dict):
            duration = body.get("duration")
            self._events.append(UserInput(str(body["signalType"]), duration))
        elif name == "extendedAlphanumeric" and isinstance(body, dict):
            for char in body.get("alphanumeric", ""):
                self._events.append(UserInput(char, None))
        else:
            self.stats.notes.append(f"ignored userInput {name}")

    def _on_misc_command(self, value: Value, now: float) -> None:
        kind = value["type"][0]
        if kind in ("videoFastUpdatePicture", "videoFastUpdateGOB", "videoFastUpdateMB"):
            self._events.append(FastUpdateRequest(int(value["logicalChannelNumber"])))
        else:
            self.stats.notes.append(f"ignored miscellaneousCommand {kind}")

    def _on_flow_control(self, value: Value, now: float) -> None:
        scope, restriction = value["scope"], value["restriction"]
        channel = int(scope[1]) if scope[0] == "logicalChannelNumber" else None
        rate = int(restriction[1]) if restriction[0] == "maximumBitRate" else None
        self._events.append(FlowControl(channel, rate))

    def _ignore(self, value: Any, now: float) -> None:
        pass


def _close(number: int) -> Message:
    return (
        "request",
        ("closeLogicalChannel", {"forwardLogicalChannelNumber": number, "source": ("user", 0)}),
    )


_HANDLERS: dict[tuple[str, str], Callable[[H245Session, Any, float], None]] = {
    ("request", "masterSlaveDetermination"): H245Session._on_msd,
    ("response", "masterSlaveDeterminationAck"): H245Session._on_msd_ack,
    ("response", "masterSlaveDeterminationReject"): H245Session._on_msd_reject,
    ("indication", "masterSlaveDeterminationRelease"): H245Session._on_msd_release,
    ("request", "terminalCapabilitySet"): H245Session._on_tcs,
    ("response", "terminalCapabilitySetAck"): H245Session._on_tcs_ack,
    ("response", "terminalCapabilitySetReject"): H245Session._on_tcs_reject,
    ("indication", "terminalCapabilitySetRelease"): H245Session._on_tcs_release,
    ("request", "openLogicalChannel"): H245Session._on_olc,
    ("response", "openLogicalChannelAck"): H245Session._on_olc_ack,
    ("response", "openLogicalChannelReject"): H245Session._on_olc_reject,
    ("indication", "openLogicalChannelConfirm"): H245Session._on_olc_confirm,
    ("request", "closeLogicalChannel"): H245Session._on_clc,
    ("response", "closeLogicalChannelAck"): H245Session._on_clc_ack,
    ("request", "requestChannelClose"): H245Session._on_rcc,
    ("response", "requestChannelCloseAck"): H245Session._ignore,
    ("response", "requestChannelCloseReject"): H245Session._ignore,
    ("request", "roundTripDelayRequest"): H245Session._on_rtd,
    ("response", "roundTripDelayResponse"): H245Session._ignore,
    ("command", "endSessionCommand"): H245Session._on_end_session,
    ("indication", "userInput"): H245Session._on_user_input,
    ("command", "miscellaneousCommand"): H245Session._on_misc_command,
    ("command", "flowControlCommand"): H245Session._on_flow_control,
}
