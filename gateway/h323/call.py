"""One H.323 call, sans-IO: H.225.0 call signalling and its H.245 session.

:class:`H323Call` runs the Q.931 procedures of H.225.0 7.3-7.4 (Q.931 5, with the
timers of Q.931 9.1) for one call on one signalling connection, both as the caller and
as the callee. Media are set up by fastStart (H.323 8.1.7) when both sides take it,
else by an :class:`~gateway.h323.h245.H245Session` tunnelled in the UUIEs (H.225.0
7.3.2 ``h245Control``, H.323 8.2.1) or carried over a separate TCP connection the edge
opens to the peer's ``h245Address`` (H.323 8.2.2). The gateway always offers
tunnelling and never offers an ``h245Address`` of its own.

Input: TPKT payloads of the signalling connection (:meth:`H323Call.receive`) and of the
separate H.245 connection (:meth:`H323Call.receive_h245`), the time, and the leg's
commands. Output: TPKT payloads to send (:meth:`H323Call.data_to_send`,
:meth:`H323Call.h245_data_to_send`), events (:meth:`H323Call.events`) and one deadline
(:meth:`H323Call.next_deadline`). Nothing raises out of :meth:`H323Call.receive`: a
message that cannot be read is answered as Q.931 5.8 says and the reason is kept in
:attr:`H323Call.notes`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from gateway.h323 import asn1, h245, messages, q931
from gateway.h323.errors import H323ParseError, H323UsageError
from gateway.h323.h245 import FastStartChannel, H245Session
from gateway.h323.messages import Alias
from gateway.h323.q931 import MessageType
from gateway.model.causes import Cause
from gateway.model.sdp import SessionDescription

Address = tuple[str, int]
Value = dict[str, Any]

# Q.931 9.1 Table 9-1 (user side), as H.225.0 7.4 keeps them; T301 at least 3 minutes.
T303: Final = 4.0  # Setup sent, no answer
T310: Final = 30.0  # CallProceeding received, no Alerting/Connect
T301: Final = 180.0  # Alerting received, no Connect

# H.225.0 7.3.5 Table 5 (ReleaseCompleteReason -> Q.850 cause) and the causes we send a
# reason with (the unambiguous pairs of that table).
_REASON_CAUSE: Final = {
    "noBandwidth": Cause.NO_CIRCUIT_AVAILABLE,
    "gatekeeperResources": Cause.RESOURCE_UNAVAILABLE,
    "unreachableDestination": Cause.NO_ROUTE_TO_DESTINATION,
    "destinationRejection": Cause.NORMAL_CLEARING,
    "invalidRevision": Cause.INCOMPATIBLE_DESTINATION,
    "noPermission": Cause.PROTOCOL_ERROR,
    "unreachableGatekeeper": Cause.NETWORK_OUT_OF_ORDER,
    "gatewayResources": Cause.SWITCHING_EQUIPMENT_CONGESTION,
    "badFormatAddress": Cause.INVALID_NUMBER_FORMAT,
    "adaptiveBusy": Cause.TEMPORARY_FAILURE,
    "inConf": Cause.USER_BUSY,
    "undefinedReason": Cause.NORMAL_UNSPECIFIED,
    "facilityCallDeflection": Cause.NORMAL_CLEARING,
    "securityDenied": Cause.NORMAL_UNSPECIFIED,
    "calledPartyNotRegistered": Cause.SUBSCRIBER_ABSENT,
    "callerNotRegistered": Cause.NORMAL_UNSPECIFIED,
    "newConnectionNeeded": Cause.RESOURCE_UNAVAILABLE,
    "nonStandardReason": Cause.INTERWORKING,
    "replaceWithConferenceInvite": Cause.NORMAL_UNSPECIFIED,
    "genericDataReason": Cause.NORMAL_UNSPECIFIED,
    "neededFeatureNotSupported": Cause.NORMAL_UNSPECIFIED,
    "tunnelledSignallingRejected": Cause.INTERWORKING,
}
_CAUSE_REASON: Final = {
    Cause.NO_CIRCUIT_AVAILABLE: "noBandwidth",
    Cause.NO_ROUTE_TO_DESTINATION: "unreachableDestination",
    Cause.CALL_REJECTED: "destinationRejection",
    Cause.INCOMPATIBLE_DESTINATION: "invalidRevision",
    Cause.NETWORK_OUT_OF_ORDER: "unreachableGatekeeper",
    Cause.SWITCHING_EQUIPMENT_CONGESTION: "gatewayResources",
    Cause.RESOURCE_UNAVAILABLE: "gatewayResources",
    Cause.INVALID_NUMBER_FORMAT: "badFormatAddress",
    Cause.USER_BUSY: "inConf",
    Cause.SUBSCRIBER_ABSENT: "calledPartyNotRegistered",
    Cause.NORMAL_UNSPECIFIED: "undefinedReason",
}
# The characters of DTMF (RFC 4733 3.2 events 0-16) a keypad element may carry.
_DTMF: Final = frozenset("0123456789*#ABCDabcd!")
# Q.931 4.5.23: progress descriptions that announce in-band information.
_INBAND: Final = frozenset({1, 8})


class CallState(IntEnum):
    """Q.931 call states (Q.931 2.1.1, the user side) that H.225.0 uses."""

    NULL = 0
    CALL_INITIATED = 1
    OUTGOING_CALL_PROCEEDING = 3
    CALL_DELIVERED = 4
    CALL_PRESENT = 6
    CALL_RECEIVED = 7
    INCOMING_CALL_PROCEEDING = 9
    ACTIVE = 10


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offered:
    """A Setup came in; ``offer`` from its fastStart proposals, None for slow start."""

    destination: str
    calling: str | None
    display: str | None
    offer: SessionDescription | None
    source_address: Address | None


@dataclass(frozen=True, slots=True)
class Proceeding:
    """CallProceeding received (H.225.0 7.3.2)."""


@dataclass(frozen=True, slots=True)
class Alerted:
    """Alerting received (H.225.0 7.3.3)."""


@dataclass(frozen=True, slots=True)
class Progressed:
    """Progress or Alerting with in-band information and the media fixed by fastStart."""

    early_media: SessionDescription | None


@dataclass(frozen=True, slots=True)
class Connected:
    """Connect received; ``answer`` from fastStart, None for slow start (MediaReady follows)."""

    answer: SessionDescription | None


@dataclass(frozen=True, slots=True)
class MediaReady:
    """H.245 finished opening the media (slow start, or a change): the peer's media."""

    sdp: SessionDescription


@dataclass(frozen=True, slots=True)
class Released:
    """The call is over: ReleaseComplete received, a timer ran out, H.245 ended it."""

    cause: Cause
    reason: str | None


@dataclass(frozen=True, slots=True)
class DigitReceived:
    """A digit from userInputIndication or a Q.931 Information keypad element."""

    digit: str
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class FastUpdateRequested:
    """videoFastUpdatePicture received (H.245 miscellaneousCommand)."""


@dataclass(frozen=True, slots=True)
class Paused:
    """The peer sent an empty capability set (third-party pause, H.323 8.4.6)."""


@dataclass(frozen=True, slots=True)
class Resumed:
    """New capabilities and channels after a pause: the peer's media."""

    sdp: SessionDescription


@dataclass(frozen=True, slots=True)
class OpenH245Connection:
    """The peer does not tunnel and gave an h245Address: open TCP to it, then call
    :meth:`H323Call.h245_connected`."""

    address: Address


Event = (
    Offered
    | Proceeding
    | Alerted
    | Progressed
    | Connected
    | MediaReady
    | Released
    | DigitReceived
    | FastUpdateRequested
    | Paused
    | Resumed
    | OpenH245Connection
)


def _display_of(text: str | None) -> str | None:
    if not text:
        return None
    return text[:82]  # Q.931 4.5.16: at most 82 characters of IA5


def _aliases(value: Sequence[tuple[str, Any]] | None) -> list[str]:
    out: list[str] = []
    for kind, alias in value or []:
        if kind in ("h323-ID", "dialledDigits", "url-ID", "email-ID") and isinstance(alias, str):
            out.append(alias)
    return out


class H323Call:
    """One call on one H.225.0 signalling connection (one call per connection)."""

    def __init__(
        self,
        *,
        outgoing: bool,
        local_address: Address,
        now: float,
        call_reference: int | None = None,
        local_aliases: Sequence[str] = ("vrgw",),
        display: str | None = None,
        random_bytes: Callable[[int], bytes] = os.urandom,
        t303: float = T303,
        t310: float = T310,
        t301: float = T301,
        h245_timeout: float = h245.T1,
    ) -> None:
        self.outgoing = outgoing
        self.local_address = local_address
        self.local_aliases = tuple(local_aliases)
        self.display = display
        self.state = CallState.NULL
        self.notes: list[str] = []
        self.release_cause: Cause | None = None
        self.remote_tunnelling: bool | None = None
        self._random = random_bytes
        if call_reference is None:
            call_reference = int.from_bytes(random_bytes(2), "big") & 0x7FFF or 1
        self.call_reference = call_reference
        self.call_id = random_bytes(16)
        self.conference_id = random_bytes(16)
        self._timers = {"t303": t303, "t310": t310, "t301": t301}
        self._h245_timeout = h245_timeout
        self._deadline: tuple[str, float] | None = None
        self._out: list[bytes] = []
        self._h245_out: list[bytes] = []
        self._events: list[Event] = []
        self._ended = False
        # media
        self._offer: SessionDescription | None = None  # ours, as the caller
        self._proposals: list[FastStartChannel] = []  # the peer's, as the callee
        self._fast_start_sent = False
        self._fast_start: list[FastStartChannel] | None = None  # accepted channels
        self._answer: SessionDescription | None = None
        self._session: H245Session | None = None
        self._transport: str | None = None  # "tunnel" or "separate" once usable
        self._h245_address: Address | None = None
        self._h245_asked = False
        self._tunnel_pending: list[bytes] = []
        self._local_media: SessionDescription | None = None
        self.peer_address: Address | None = None

    # -- outputs -------------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """The call is released (ReleaseComplete sent or received)."""
        return self._ended

    def data_to_send(self) -> list[bytes]:
        """TPKT payloads for the signalling connection, drained."""
        out, self._out = self._out, []
        return out

    def h245_data_to_send(self) -> list[bytes]:
        """TPKT payloads for the separate H.245 connection, drained."""
        out, self._h245_out = self._h245_out, []
        return out

    def events(self) -> list[Event]:
        """Events, in order, drained."""
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` is due (a Q.931 or an H.245 timer), None when none runs."""
        if self._ended:
            return None
        times = [self._deadline[1]] if self._deadline else []
        if self._session is not None:
            deadline = self._session.next_deadline()
            if deadline is not None:
                times.append(deadline)
        return min(times) if times else None

    @property
    def session(self) -> H245Session | None:
        """The H.245 session, once one runs."""
        return self._session

    @property
    def fast_start_channels(self) -> list[FastStartChannel]:
        """The channels fastStart opened (empty for a slow start)."""
        return list(self._fast_start or [])

    # -- the caller's side ---------------------------------------------------------------

    def setup(
        self,
        *,
        destination: str | None,
        destination_address: Address,
        offer: SessionDescription | None,
        calling_number: str | None = None,
        display: str | None = None,
        now: float,
    ) -> None:
        """Send Setup (H.225.0 7.3.1) with fastStart proposals built from ``offer`` (None:
        slow start), h245Tunnelling true, no h245Address; T303 starts."""
        if not self.outgoing or self.state is not CallState.NULL or self._ended:
            raise H323UsageError("setup() is for a new outgoing call")
        self._offer = offer.copy() if offer is not None else None
        self._local_media = self._offer
        self.peer_address = destination_address
        proposals: list[bytes] = []
        if offer is not None:
            proposals = [asn1.encode_olc(p) for p in h245.fast_start_proposals(offer)]
        self._fast_start_sent = bool(proposals)
        dest_aliases: list[Alias] = []
        if destination:
            kind = "dialledDigits" if destination.isdigit() else "h323-ID"
            dest_aliases.append(Alias(destination, kind))
        body = messages.setup(
            call_id=self.call_id,
            conference_id=self.conference_id,
            source_address=self.local_address,
            source_aliases=[Alias(a) for a in self.local_aliases],
            destination_aliases=dest_aliases,
            destination_address=destination_address,
            fast_start=proposals,
        )
        has_video = offer is not None and any(m.kind == "video" and m.port for m in offer.media)
        bearer = (
            q931.BearerCapability(0x08, 0x18, 6, 5)
            if has_video
            else q931.BearerCapability(0x08, 0x10, None, 5)
        )
        ies: list[q931.InformationElement] = [bearer]
        shown = _display_of(display or self.display)
        if shown:
            ies.append(q931.Display(shown))
        if calling_number and calling_number.isdigit():
            ies.append(q931.CallingPartyNumber(calling_number, presentation=0))
        if destination and destination.isdigit():
            ies.append(q931.CalledPartyNumber(destination))
        self._send(MessageType.SETUP, body, ies)
        self.state = CallState.CALL_INITIATED
        self._arm("t303", now)

    # -- the callee's side ---------------------------------------------------------------

    def proceeding(self, now: float) -> None:
        """CallProceeding (H.225.0 7.3.2): the call is being routed."""
        if self.outgoing or self.state is not CallState.CALL_PRESENT:
            return
        self._send(MessageType.CALL_PROCEEDING, messages.call_proceeding(call_id=self.call_id))
        self.state = CallState.INCOMING_CALL_PROCEEDING

    def alerting(self, now: float) -> None:
        """Alerting (H.225.0 7.3.3): the station rings."""
        if self.outgoing or self.state not in (
            CallState.CALL_PRESENT,
            CallState.INCOMING_CALL_PROCEEDING,
        ):
            return
        self._send(MessageType.ALERTING, messages.alerting(call_id=self.call_id))
        self.state = CallState.CALL_RECEIVED

    def progress(self, early: SessionDescription, now: float) -> None:
        """Progress (H.225.0 7.3.9) with in-band information (Q.931 4.5.23, description
        8): the caller hears what ``early`` describes before the call is answered (the
        queue's announcement). The Setup's fastStart proposals that match ``early`` are
        accepted here (H.323 8.1.7.2 allows it in any message up to Connect), so the
        media then stay; without proposals it is a plain Progress."""
        if self.outgoing or self.state not in (
            CallState.CALL_PRESENT,
            CallState.INCOMING_CALL_PROCEEDING,
            CallState.CALL_RECEIVED,
        ):
            return
        elements: list[bytes] = []
        if self._proposals and self._fast_start is None:
            values, opened = h245.accept_proposals(self._proposals, early)
            if opened:
                elements = [asn1.encode_olc(v) for v in values]
                self._fast_start = opened
                self._answer = self._local_media = early.copy()
        body = messages.progress(call_id=self.call_id, fast_start=elements)
        self._send(MessageType.PROGRESS, body, [q931.ProgressIndicator(description=8)])

    def connect(self, answer: SessionDescription | None, now: float) -> None:
        """Connect (H.225.0 7.3.4); with the fastStart elements of the Setup's proposals
        that match ``answer`` (H.323 8.1.7.2), or slow start: H.245 begins with a TCS
        describing ``answer`` (tunnelled in the Connect itself when the caller tunnels)."""
        if self.outgoing or self.state not in (
            CallState.CALL_PRESENT,
            CallState.INCOMING_CALL_PROCEEDING,
            CallState.CALL_RECEIVED,
        ):
            raise H323UsageError("connect() answers an incoming call")
        elements: list[bytes] = []
        if self._fast_start is None:  # not accepted already, with early media
            self._answer = answer.copy() if answer is not None else None
            self._local_media = self._answer
            if answer is not None and self._proposals:
                values, opened = h245.accept_proposals(self._proposals, answer)
                if opened:
                    elements = [asn1.encode_olc(v) for v in values]
                    self._fast_start = opened
        body = messages.connect(
            call_id=self.call_id, conference_id=self.conference_id, fast_start=elements
        )
        if self._fast_start is None and self._proposals:
            body[1]["fastConnectRefused"] = 0
        if self._fast_start is None:
            # slow start: H.245 now, in this very Connect when tunnelled
            existed = self._session is not None
            session = self._ensure_session(now)
            if existed and self._local_media is not None:
                session.set_local(self._local_media, now)
            self._flush_h245(to_tunnel_only=True)
        self.state = CallState.ACTIVE
        shown = _display_of(self.display)
        ies: list[q931.InformationElement] = [q931.Display(shown)] if shown else []
        self._send(MessageType.CONNECT, body, ies, tunnel=True)
        self._flush_h245()

    # -- both ----------------------------------------------------------------------------

    def release(self, cause: Cause, now: float) -> None:
        """ReleaseComplete (H.225.0 7.3.5) with a Cause element and the matching
        ReleaseCompleteReason; an H.245 session is ended first (H.323 8.5)."""
        if self._ended:
            return
        if self._session is not None and self._transport is not None and not self._session.ended:
            self._session.end_session()
        self._flush_h245(to_tunnel_only=True)
        self._send_release(cause)
        self._finish(None)

    def send_digit(self, digit: str, duration_ms: int, now: float) -> None:
        """A DTMF digit: H.245 userInputIndication when a session runs, else a Q.931
        Information message with a keypad element (H.225.0 7.3.6)."""
        if self._ended or not digit:
            return
        session = self._session
        if session is not None and self._transport is not None and session.peer_tcs is not None:
            session.user_input(digit, duration_ms)
            self._flush_h245()
            return
        self._send(
            MessageType.INFORMATION,
            messages.information(call_id=self.call_id),
            [q931.KeypadFacility(digit)],
        )

    def request_fast_update(self, now: float) -> None:
        """videoFastUpdatePicture on the video channel the peer sends us (H.245)."""
        if self._ended:
            return
        session = self._session
        if session is None:
            if self._fast_start is None:
                return
            session = self._ensure_session(now)
        if session.fast_update():
            self._flush_h245()
        else:
            self.notes.append("fast update: no video channel from the peer")

    def update_media(self, sdp: SessionDescription, now: float) -> None:
        """A new description of our side: hold (sendonly/inactive or 0.0.0.0: an empty
        capability set, H.323 8.4.6) or resume (a new TCS and channels); MediaReady
        follows once the peer's channels are known again."""
        if self._ended:
            return
        self._local_media = sdp.copy()
        session = self._ensure_session(now)
        session.set_local(self._local_media, now)
        self._flush_h245()
        self._drain_session(now)

    def receive(self, payload: bytes, now: float) -> None:
        """One TPKT payload of the signalling connection: a Q.931 message and its UUIE."""
        if self._ended:
            return
        try:
            msg = q931.decode(payload)
        except H323ParseError as exc:
            # Q.931 5.8.1-5.8.2: a message too short or with a bad header is ignored
            self.notes.append(f"ignored unreadable message: {exc.reason}")
            return
        try:
            self._dispatch(msg, now)
        except H323ParseError as exc:
            self._on_bad_message(msg, exc)
        except (H323UsageError, ValueError, KeyError, TypeError) as exc:
            # a message we read but cannot act on (a value we cannot translate or
            # encode back): the call cannot go on (Q.850 127, interworking)
            self.notes.append(f"cannot handle {_name(msg.message_type)}: {exc!r}")
            if not self._ended:
                self._send_release(Cause.INTERWORKING)
                self._finish(Released(Cause.INTERWORKING, f"cannot handle: {exc}"))
        self._drain_session(now)

    def receive_h245(self, payload: bytes, now: float) -> None:
        """One TPKT payload of the separate H.245 connection (H.323 8.2.2)."""
        if self._ended:
            return
        self._h245_input(payload, now)
        self._drain_session(now)

    def h245_connected(self, now: float) -> None:
        """The edge opened the separate H.245 connection: the session starts on it."""
        if self._ended:
            return
        self._transport = "separate"
        session = self._ensure_session(now)
        session.start(now)
        self._flush_h245()

    def connection_lost(self, reason: str, now: float) -> None:
        """The signalling connection closed under the call: it is over (H.225.0 7.1)."""
        if self._ended:
            return
        self.notes.append(f"signalling connection lost: {reason}")
        self._finish(Released(Cause.NORMAL_UNSPECIFIED, reason))

    def on_timer(self, now: float) -> None:
        """Run out the Q.931 timer due (T303, T310, T301) and the H.245 ones."""
        if self._ended:
            return
        if self._deadline is not None and now >= self._deadline[1]:
            name = self._deadline[0]
            self._deadline = None
            self.notes.append(f"{name.upper()} expired")
            # Q.931 5.1.1 and 5.1.7: T303 and T310 clear with cause 102; after
            # Alerting, no answer is cause 19 (Q.850 2.2.7: user alerted, no answer)
            cause = Cause.NO_ANSWER if name == "t301" else Cause.RECOVERY_ON_TIMER_EXPIRY
            self._send_release(cause)
            self._finish(Released(cause, f"{name.upper()} expired"))
            return
        if self._session is not None:
            self._session.on_timer(now)
            self._flush_h245()
            self._drain_session(now)

    # -- signalling input ----------------------------------------------------------------

    def _dispatch(self, msg: q931.Q931Message, now: float) -> None:
        mtype = msg.message_type
        if mtype == MessageType.SETUP:
            self._on_setup(msg, now)
            return
        if self.state is CallState.NULL and not self.outgoing:
            self.notes.append(f"message {mtype:#x} before Setup")
            if mtype not in (MessageType.RELEASE_COMPLETE, MessageType.STATUS):
                self._send_release(Cause.INVALID_CALL_REFERENCE, reference=msg)
            return
        if msg.call_reference != self.call_reference or msg.from_originator == self.outgoing:
            # Q.931 5.8.3.2: a call reference not in use: ReleaseComplete with cause 81
            self.notes.append(f"message {mtype:#x} for call reference {msg.call_reference}")
            if mtype != MessageType.RELEASE_COMPLETE:
                self._send_release(Cause.INVALID_CALL_REFERENCE, reference=msg)
            return
        handler = _DISPATCH.get(mtype)
        if handler is None:
            # Q.931 5.8.4: a message type we do not know or take: STATUS, cause 97
            self._send_status(Cause.MESSAGE_TYPE_NOT_IMPLEMENTED)
            self.notes.append(f"unknown message type {mtype:#x}")
            return
        handler(self, msg, now)

    def _on_bad_message(self, msg: q931.Q931Message, exc: H323ParseError) -> None:
        """Q.931 5.8.6-5.8.7: a mandatory part missing or unreadable. A Setup or a
        Connect cannot be acted on (ReleaseComplete with the cause); anything else gets
        a STATUS with the cause and the call goes on."""
        self.notes.append(f"bad {_name(msg.message_type)}: {exc.reason}")
        cause = Cause.of(exc.cause)
        if msg.message_type in (MessageType.SETUP, MessageType.CONNECT):
            if msg.message_type == MessageType.SETUP and self.state is CallState.NULL:
                self.call_reference = msg.call_reference
            self._send_release(cause)
            self._finish(Released(cause, exc.reason))
        elif msg.message_type != MessageType.RELEASE_COMPLETE:
            self._send_status(cause)
        else:
            self._finish(Released(Cause.NORMAL_UNSPECIFIED, exc.reason))

    def _uuie(
        self, msg: q931.Q931Message, required: bool = True
    ) -> tuple[str, Value, Value] | None:
        """(body name, body, h323-uu-pdu) of the message's UUIE (H.225.0 7.2.2)."""
        data = msg.user_user
        if data is None:
            if required:
                raise H323ParseError("no User-user element", cause=96)
            return None
        uuie = asn1.decode_uuie(data)
        pdu = uuie["h323-uu-pdu"]
        name, body = pdu["h323-message-body"]
        return name, body if isinstance(body, dict) else {}, pdu

    def _on_setup(self, msg: q931.Q931Message, now: float) -> None:
        if self.outgoing or self.state is not CallState.NULL:
            self._send_status(Cause.MESSAGE_NOT_COMPATIBLE_WITH_CALL_STATE, msg)
            return
        if not msg.from_originator:
            raise H323ParseError("Setup with the call reference flag set", cause=81)
        self.call_reference = msg.call_reference
        self.state = CallState.CALL_PRESENT
        uu = self._uuie(msg)
        assert uu is not None
        name, body, pdu = uu
        if name != "setup":
            raise H323ParseError(f"Setup carrying a {name} UUIE", cause=100)
        call_id = body.get("callIdentifier", {}).get("guid")
        if isinstance(call_id, bytes) and len(call_id) == 16:
            self.call_id = call_id
        conference = body.get("conferenceID")
        if isinstance(conference, bytes) and len(conference) == 16:
            self.conference_id = conference
        self.remote_tunnelling = bool(pdu.get("h245Tunnelling", False))
        if self.remote_tunnelling:
            self._transport = "tunnel"
        proposals = []
        for element in body.get("fastStart", []):
            try:
                olc = asn1.decode_olc(element)
            except H323ParseError as exc:
                self.notes.append(f"fastStart element unreadable: {exc.reason}")
                continue
            read = h245.read_fast_start(olc, proposer=False)
            if read is not None:
                proposals.append(read)
        self._proposals = proposals
        source = (
            messages.address_of(body["sourceCallSignalAddress"])
            if ("sourceCallSignalAddress" in body)
            else None
        )
        self.peer_address = source
        offer = h245.offer_from_proposals(proposals, source[0] if source else None)
        called = msg.find(q931.CalledPartyNumber)
        destinations = _aliases(body.get("destinationAddress"))
        destination = destinations[0] if destinations else (called.digits if called else "")
        calling_ie = msg.find(q931.CallingPartyNumber)
        sources = _aliases(body.get("sourceAddress"))
        calling = calling_ie.digits if calling_ie else (sources[0] if sources else None)
        display_ie = msg.find(q931.Display)
        # H323Plus ends its display text with a NUL (a C string): drop it
        display = display_ie.text.rstrip("\x00") or None if display_ie else None
        self._events.append(Offered(destination, calling, display, offer, source))
        self._h245_control(pdu, now)
        self._h245_address_from(body, pdu)

    def _on_response(self, msg: q931.Q931Message, now: float) -> tuple[str, Value, Value] | None:
        """What every answer to our Setup carries: tunnelling, h245Address, fastStart,
        tunnelled H.245 (H.225.0 7.3.2-7.3.4, H.323 8.1.7.2 and 8.2.1)."""
        uu = self._uuie(msg, required=False)
        if uu is None:
            return None
        _, body, pdu = uu
        tunnelling = bool(pdu.get("h245Tunnelling", False))
        if self.remote_tunnelling is None:
            self.remote_tunnelling = tunnelling
            if tunnelling and self._transport is None:
                self._transport = "tunnel"
        if self._fast_start is None and self._fast_start_sent:
            if "fastStart" in body:
                self._accept_fast_start(body["fastStart"], now)
            elif "fastConnectRefused" in body:
                self._fast_start_sent = False
        self._h245_control(pdu, now)
        self._h245_address_from(body, pdu)
        if self._fast_start is None and not self._fast_start_sent:
            self._start_slow(now)
        return uu

    def _accept_fast_start(self, elements: list[bytes], now: float) -> None:
        accepted: list[FastStartChannel] = []
        for element in elements:
            try:
                olc = asn1.decode_olc(element)
            except H323ParseError as exc:
                self.notes.append(f"fastStart element unreadable: {exc.reason}")
                continue
            read = h245.read_fast_start(olc, proposer=True)
            if read is not None:
                accepted.append(read)
        if not accepted or self._offer is None:
            self.notes.append("fastStart answer without a usable channel")
            return
        self._fast_start = accepted
        self._answer = h245.answer_from_accepted(self._offer, accepted)
        if self._session is not None:
            self._session.adopt_fast_start(accepted)

    def _on_call_proceeding(self, msg: q931.Q931Message, now: float) -> None:
        if self.state is not CallState.CALL_INITIATED:
            self._unexpected(msg)
            return
        self._on_response(msg, now)
        self.state = CallState.OUTGOING_CALL_PROCEEDING
        self._arm("t310", now)
        self._events.append(Proceeding())

    def _on_alerting(self, msg: q931.Q931Message, now: float) -> None:
        if self.state not in (CallState.CALL_INITIATED, CallState.OUTGOING_CALL_PROCEEDING):
            self._unexpected(msg)
            return
        self._on_response(msg, now)
        self.state = CallState.CALL_DELIVERED
        self._arm("t301", now)
        self._events.append(Alerted())
        if self._answer is not None and self._inband(msg):
            self._events.append(Progressed(self._answer.copy()))

    def _on_progress(self, msg: q931.Q931Message, now: float) -> None:
        if self.state not in (
            CallState.CALL_INITIATED,
            CallState.OUTGOING_CALL_PROCEEDING,
            CallState.CALL_DELIVERED,
        ):
            self._unexpected(msg)
            return
        self._on_response(msg, now)
        if self.state is CallState.CALL_INITIATED:
            self._arm("t310", now)  # Q.931 5.1.6: Progress stops T303 as well
            self.state = CallState.OUTGOING_CALL_PROCEEDING
        if self._answer is not None and self._inband(msg):
            self._events.append(Progressed(self._answer.copy()))

    def _on_connect(self, msg: q931.Q931Message, now: float) -> None:
        if self.state not in (
            CallState.CALL_INITIATED,
            CallState.OUTGOING_CALL_PROCEEDING,
            CallState.CALL_DELIVERED,
        ):
            self._unexpected(msg)
            return
        uu = self._uuie(msg, required=False)
        if uu is not None and uu[0] != "connect":
            raise H323ParseError(f"Connect carrying a {uu[0]} UUIE", cause=100)
        self._deadline = None
        self.state = CallState.ACTIVE
        if self._fast_start_sent and self._fast_start is None and uu and "fastStart" not in uu[1]:
            self._fast_start_sent = False  # H.323 8.1.7.2: no fastStart by Connect
        self._on_response(msg, now)
        self._events.append(Connected(self._answer.copy() if self._answer is not None else None))

    def _on_release_complete(self, msg: q931.Q931Message, now: float) -> None:
        cause_ie = msg.cause
        reason: str | None = None
        try:
            uu = self._uuie(msg, required=False)
        except H323ParseError as exc:
            self.notes.append(f"ReleaseComplete UUIE unreadable: {exc.reason}")
            uu = None
        if uu is not None:
            value = uu[1].get("reason")
            if isinstance(value, tuple):
                reason = value[0]
        if cause_ie is not None:
            cause = cause_ie.cause
        elif reason is not None:
            cause = _REASON_CAUSE.get(reason, Cause.NORMAL_UNSPECIFIED)
        else:
            cause = Cause.NORMAL_CLEARING
        self._finish(Released(cause, reason))

    def _on_release(self, msg: q931.Q931Message, now: float) -> None:
        """DISCONNECT or RELEASE (Q.931 5.3, not used by H.225.0 but seen): end the call."""
        cause_ie = msg.cause
        cause = cause_ie.cause if cause_ie is not None else Cause.NORMAL_CLEARING
        self._send_release(cause)
        self._finish(Released(cause, _name(msg.message_type)))

    def _on_facility(self, msg: q931.Q931Message, now: float) -> None:
        uu = self._uuie(msg, required=False)
        if uu is None:
            return
        name, body, pdu = uu
        if self.outgoing and self.state is not CallState.ACTIVE:
            self._on_response(msg, now)
            return
        self._h245_control(pdu, now)
        self._h245_address_from(body, pdu)
        if name == "facility" and body.get("reason", ("",))[0] == "startH245":
            address = messages.address_of(body["h245Address"]) if "h245Address" in body else None
            if address is not None:
                self._ask_h245(address)

    def _on_information(self, msg: q931.Q931Message, now: float) -> None:
        uu = self._uuie(msg, required=False)
        if uu is not None:
            self._h245_control(uu[2], now)
        keypad = msg.find(q931.KeypadFacility)
        if keypad is not None:
            # H323Plus ends the keypad digits with a NUL: only DTMF characters count
            for digit in keypad.digits:
                if digit in _DTMF:
                    self._events.append(DigitReceived(digit, None))

    def _on_notify(self, msg: q931.Q931Message, now: float) -> None:
        uu = self._uuie(msg, required=False)
        if uu is not None:
            self._h245_control(uu[2], now)

    def _on_status_enquiry(self, msg: q931.Q931Message, now: float) -> None:
        self._send_status(Cause.RESPONSE_TO_STATUS_ENQUIRY)

    def _on_status(self, msg: q931.Q931Message, now: float) -> None:
        """Q.931 5.8.11: a STATUS reporting the Null state ends the call; others are noted."""
        state = msg.find(q931.CallState)
        cause_ie = msg.cause
        if state is not None and state.state == 0 and self.state is not CallState.NULL:
            cause = (
                cause_ie.cause
                if cause_ie is not None
                else Cause.MESSAGE_NOT_COMPATIBLE_WITH_CALL_STATE
            )
            self._finish(Released(cause, "peer reports the Null state"))
            return
        if cause_ie is not None and cause_ie.value != Cause.RESPONSE_TO_STATUS_ENQUIRY:
            self.notes.append(f"peer STATUS cause {cause_ie.value}")

    def _unexpected(self, msg: q931.Q931Message) -> None:
        """Q.931 5.8.4: a message not allowed in this state gets STATUS with cause 101."""
        self.notes.append(f"{_name(msg.message_type)} in state {self.state.name}")
        self._send_status(Cause.MESSAGE_NOT_COMPATIBLE_WITH_CALL_STATE)

    @staticmethod
    def _inband(msg: q931.Q931Message) -> bool:
        try:
            return any(p.description in _INBAND for p in msg.find_all(q931.ProgressIndicator))
        except H323ParseError:
            return False

    # -- H.245 ---------------------------------------------------------------------------

    def _h245_address_from(self, body: Value, pdu: Value) -> None:
        if "h245Address" not in body or self.remote_tunnelling:
            return
        address = messages.address_of(body["h245Address"])
        if address is not None:
            self._ask_h245(address)

    def _ask_h245(self, address: Address) -> None:
        if self._h245_asked or self._transport == "tunnel":
            return
        self._h245_asked = True
        self._h245_address = address
        self._events.append(OpenH245Connection(address))

    def _h245_control(self, pdu: Value, now: float) -> None:
        """Tunnelled H.245 messages of a UUIE (H.323 8.2.1)."""
        for data in pdu.get("h245Control", []) or []:
            if self._transport is None:
                self._transport = "tunnel"
            self._h245_input(data, now)

    def _h245_input(self, data: bytes, now: float) -> None:
        try:
            message = asn1.decode_h245(data)
        except H323ParseError as exc:
            self.notes.append(f"H.245 message unreadable: {exc.reason}")
            return
        session = self._ensure_session(now)
        if not session.started:
            session.start(now)
        try:
            session.receive(message, now)
        except (H323UsageError, ValueError, KeyError, TypeError) as exc:
            # H.245 values we decode but cannot translate: that message is dropped
            self.notes.append(f"H.245 {message[1][0]} not handled: {exc!r}")
        self._flush_h245()

    def _ensure_session(self, now: float) -> H245Session:
        if self._session is None:
            self._session = H245Session(
                now=now,
                local=self._local_media,
                random_bytes=self._random,
                timeout=self._h245_timeout,
            )
            if self._fast_start is not None:
                self._session.adopt_fast_start(self._fast_start)
            if self._transport is not None:
                self._session.start(now)
        return self._session

    def _start_slow(self, now: float) -> None:
        """Slow start: H.245 begins as soon as it has a way to the peer."""
        if self._transport is None:
            return
        session = self._ensure_session(now)
        session.start(now)
        self._flush_h245()

    def _flush_h245(self, *, to_tunnel_only: bool = False) -> None:
        session = self._session
        if session is None or self._transport is None or self._ended:
            return
        encoded: list[bytes] = []
        for message in session.outgoing():
            try:
                encoded.append(asn1.encode_h245(message))
            except H323UsageError as exc:  # an echo of a peer's odd value, say
                self.notes.append(f"H.245 {message[1][0]} not sent: {exc}")
        if self._transport == "separate":
            self._h245_out.extend(encoded)
            return
        self._tunnel_pending.extend(encoded)
        if self._tunnel_pending and not to_tunnel_only:
            self._send(
                MessageType.FACILITY,
                messages.facility(call_id=self.call_id, reason="transportedInformation"),
                tunnel=True,
            )

    def _drain_session(self, now: float) -> None:
        session = self._session
        if session is None:
            return
        for event in session.events():
            if isinstance(event, h245.RemoteMedia):
                if event.resumed:
                    self._events.append(Resumed(event.sdp))
                else:
                    self._events.append(MediaReady(event.sdp))
            elif isinstance(event, h245.UserInput):
                self._events.append(DigitReceived(event.digit, event.duration_ms))
            elif isinstance(event, h245.FastUpdateRequest):
                self._events.append(FastUpdateRequested())
            elif isinstance(event, h245.PausedByPeer):
                self._events.append(Paused())
            elif isinstance(event, h245.FlowControl):
                self.notes.append(f"flowControlCommand {event}")
            elif isinstance(event, h245.SessionEnded):
                # H.323 8.5: answer endSessionCommand with ours, then ReleaseComplete
                if not self._ended:
                    session.end_session()
                    self._flush_h245(to_tunnel_only=True)
                    self._send_release(Cause.NORMAL_CLEARING)
                    self._finish(Released(Cause.NORMAL_CLEARING, "endSessionCommand"))
            elif isinstance(event, h245.SessionFailed):
                self.notes.append(f"H.245: {event.reason}")
                if not self._ended and self._fast_start is None:
                    session.end_session()
                    self._flush_h245(to_tunnel_only=True)
                    self._send_release(Cause.PROTOCOL_ERROR)
                    self._finish(Released(Cause.PROTOCOL_ERROR, event.reason))
        self._flush_h245()

    # -- signalling output ---------------------------------------------------------------

    def _send(
        self,
        mtype: MessageType,
        body: tuple[str, Value],
        ies: Sequence[q931.InformationElement] = (),
        *,
        tunnel: bool = False,
    ) -> None:
        control: list[bytes] = []
        if self._transport == "tunnel" and (tunnel or self._tunnel_pending):
            control, self._tunnel_pending = self._tunnel_pending, []
        # H.323 8.2.1: the callee tunnels only if the caller offered to
        tunnelling = self.remote_tunnelling is not False
        uu = messages.uu_pdu(body, h245_tunnelling=tunnelling, h245_control=control)
        all_ies = [*ies, q931.UserUser(asn1.encode_uuie(uu))]
        msg = q931.message(mtype, self.call_reference, all_ies, from_originator=self.outgoing)
        self._out.append(msg.encode())

    def _send_release(self, cause: Cause, reference: q931.Q931Message | None = None) -> None:
        body = messages.release_complete(call_id=self.call_id, reason=_CAUSE_REASON.get(cause))
        control: list[bytes] = []
        if reference is None and self._transport == "tunnel":
            control, self._tunnel_pending = self._tunnel_pending, []
        uu = messages.uu_pdu(body, h245_tunnelling=True, h245_control=control)
        ies: list[q931.InformationElement] = [
            q931.CauseIE(int(cause)),
            q931.UserUser(asn1.encode_uuie(uu)),
        ]
        if reference is not None:
            msg = q931.message(
                MessageType.RELEASE_COMPLETE,
                reference.call_reference,
                ies,
                from_originator=not reference.from_originator,
            )
        else:
            self.release_cause = cause
            msg = q931.message(
                MessageType.RELEASE_COMPLETE,
                self.call_reference,
                ies,
                from_originator=self.outgoing,
            )
        self._out.append(msg.encode())

    def _send_status(self, cause: Cause, reference: q931.Q931Message | None = None) -> None:
        """STATUS (Q.931 5.8.10, H.225.0 7.4.5) with our cause and call state."""
        body = messages.status(call_id=self.call_id)
        uu = messages.uu_pdu(body, h245_tunnelling=True)
        ies: list[q931.InformationElement] = [
            q931.CauseIE(int(cause)),
            q931.CallState(int(self.state)),
            q931.UserUser(asn1.encode_uuie(uu)),
        ]
        ref = reference.call_reference if reference is not None else self.call_reference
        origin = not reference.from_originator if reference is not None else self.outgoing
        self._out.append(
            q931.message(MessageType.STATUS, ref, ies, from_originator=origin).encode()
        )

    # -- timers and the end --------------------------------------------------------------

    def _arm(self, name: str, now: float) -> None:
        self._deadline = (name, now + self._timers[name])

    def _finish(self, event: Released | None) -> None:
        self._ended = True
        self._deadline = None
        self.state = CallState.NULL
        if event is not None:
            if self.release_cause is None:
                self.release_cause = event.cause
            self._events.append(event)


def _name(mtype: int) -> str:
    try:
        return MessageType(mtype).name
    except ValueError:
        return f"message type {mtype:#x}"


_DISPATCH: dict[int, Callable[[H323Call, q931.Q931Message, float], None]] = {
    MessageType.CALL_PROCEEDING: H323Call._on_call_proceeding,
    MessageType.ALERTING: H323Call._on_alerting,
    MessageType.PROGRESS: H323Call._on_progress,
    MessageType.CONNECT: H323Call._on_connect,
    MessageType.RELEASE_COMPLETE: H323Call._on_release_complete,
    MessageType.DISCONNECT: H323Call._on_release,
    MessageType.RELEASE: H323Call._on_release,
    MessageType.FACILITY: H323Call._on_facility,
    MessageType.INFORMATION: H323Call._on_information,
    MessageType.NOTIFY: H323Call._on_notify,
    MessageType.STATUS_ENQUIRY: H323Call._on_status_enquiry,
    MessageType.STATUS: H323Call._on_status,
}
