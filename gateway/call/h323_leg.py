"""H.323 call legs: a partner's H.323 station, or an H.323 kiosk, as one side of a call.

:class:`H323Leg` is a :class:`~gateway.call.leg.CallLeg` over one
:class:`~gateway.h323.call.H323Call` carried by an
:class:`~gateway.edge.h323_signalling.H323Connection`: it turns the call's events into
the neutral ones of :mod:`gateway.model.events`, and the controller's commands into
H.225.0 and H.245. The interworking rules live here and nowhere else:

- Setup carries the anchored offer as fastStart proposals (H.323 8.1.7); an answer
  comes back with the first fastStart reply, or after slow start (H.245 capability
  exchange and logical channels), reported then as the answer.
- Alerting is ringing; Progress with media accepted is early media.
- ReleaseComplete and Q.931 causes end the leg with the same Q.850 cause the SIP side
  then maps to a status (RFC 3398), so a station's "user busy" (17) is busy for the
  kiosk and for the desk.
- The kiosk's context (its site, what the citizen typed) reaches the agent as the
  Display of the Setup (Q.931 4.5.16), in the French words of :mod:`gateway.texts`.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable
from enum import Enum
from typing import Protocol

from gateway.call.leg import OWN_CONTEXT, CallLeg, EventSink, OutgoingCall, Target
from gateway.dialplan import Dialplan, Kiosk
from gateway.h323.call import (
    Alerted,
    Connected,
    DigitReceived,
    Event,
    FastUpdateRequested,
    H323Call,
    MediaReady,
    Offered,
    Paused,
    Progressed,
    Released,
    Resumed,
)
from gateway.model.causes import Cause
from gateway.model.events import (
    Answered,
    CallAttempt,
    CallEvent,
    Disconnected,
    Dtmf,
    Failed,
    FastUpdate,
    LateAnswer,
    MediaUpdate,
    MediaUpdateAnswer,
    Ringing,
    Side,
)
from gateway.model.sdp import SessionDescription
from gateway.texts import text

log = logging.getLogger(__name__)

DISPLAY_MAX = 82  # octets of a Q.931 Display's contents (Q.931 4.5.16, H.225.0 7.2.2.5)
# What the citizen may type, named for the agent (keys of gateway.texts).
DISPLAY_NAMES = {"allocataire": "display_allocataire"}


Address = tuple[str, int]


class Connection(Protocol):
    """What a leg needs of the edge that carries its call (``H323Connection`` is one)."""

    call: H323Call
    peer: tuple[str, int] | None

    def now(self) -> float:
        """The clock of the call's timers."""

    def pump(self) -> None:
        """Send what the call queued, re-arm its timer, hand its events on."""


class Signalling(Protocol):
    """What the dialer needs of the H.225.0 edge (``H323SignallingEndpoint`` is one)."""

    @property
    def address(self) -> Address:
        """Our call signalling address, as the units see it."""

    def now(self) -> float:
        """The clock of the calls' timers."""

    def dial(self, call: H323Call, address: Address, handler: H323Leg) -> Connection:
        """Open a TCP connection to ``address`` and carry ``call`` on it."""


class _State(Enum):
    CALLING = "calling"  # B: Setup sent; A: Setup received, not yet answered
    RINGING = "ringing"  # B: Alerting or Progress seen; A: Alerting sent
    CONNECTING = "connecting"  # Connect seen or sent, slow start under way
    CONNECTED = "connected"
    ENDED = "ended"


def display_of(call: OutgoingCall) -> str:
    """What the agent's unit shows of the caller: kiosk, site and what was typed.

    The kiosk's own context items (``X-Visio-Context: allocataire=1234567`` reaches the
    model as ``("context", "allocataire=1234567")``) follow the kiosk's label and site;
    a number typed for a partner is named in French. The Display element is IA5
    (Q.931 4.5.16): accents are dropped rather than refused, and the text is cut to the
    element's 82 octets.
    """
    context = dict(call.context)
    parts = [call.caller_name]
    site = context.get("site")
    if site and site not in call.caller_name:
        parts.append(site)
    for key, value in call.context:
        if key in OWN_CONTEXT:
            continue
        for item in value.split(";"):
            name, sep, typed = item.strip().partition("=")
            if not sep:
                name, typed = key, item.strip()
            if not typed:
                continue
            known = DISPLAY_NAMES.get(name.strip().lower())
            parts.append(text(known, value=typed) if known else f"{name.strip()} {typed}")
    return _ia5(" - ".join(parts))[:DISPLAY_MAX]


def _ia5(value: str) -> str:
    plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in plain if 32 <= ord(ch) < 127)


# H.225.0 7.8 AdmissionRejectReason -> the Q.850 cause the station's call fails with.
# H.225.0 names no cause; these say what each reason tells of the unit (a denial is a
# refusal, an unknown unit is absent, a full gatekeeper a lack of resources).
_ARJ_CAUSES: dict[str, Cause] = {
    "calledPartyNotRegistered": Cause.SUBSCRIBER_ABSENT,
    "invalidPermission": Cause.CALL_REJECTED,
    "requestDenied": Cause.CALL_REJECTED,
    "securityDenial": Cause.CALL_REJECTED,
    "callerNotRegistered": Cause.TEMPORARY_FAILURE,  # our registration lapsed meanwhile
    "resourceUnavailable": Cause.RESOURCE_UNAVAILABLE,
    "exceedsCallCapacity": Cause.NO_CIRCUIT_AVAILABLE,
    "noRouteToDestination": Cause.NO_ROUTE_TO_DESTINATION,
    "timeout": Cause.TEMPORARY_FAILURE,  # the gatekeeper did not answer the ARQ
}


def admission_refusal(reason: str) -> Failed:
    """The failure of a call its gatekeeper did not admit (ARJ, or no answer)."""
    return Failed(_ARJ_CAUSES.get(reason, Cause.CALL_REJECTED), f"gatekeeper: {reason}")


class Admission(Protocol):
    """The gatekeepers the gateway is registered with, asked before each call to one of
    their units (ARQ, H.225.0 7.8) and told when it ends (DRQ, 7.10)."""

    def admit(
        self,
        gatekeeper: str,
        call: H323Call,
        alias: str,
        dest: Address,
        done: Callable[[Address | None, str], None],
        dropped: Callable[[], None],
    ) -> None:
        """ARQ for ``call``; later ``done(address, "")`` with where to send the Setup
        (ACF) or ``done(None, reason)`` (ARJ, timeout), never from within this call.
        ``dropped()`` if the gatekeeper ends the call itself (its DRQ)."""

    def disengage(self, gatekeeper: str, call: H323Call) -> None:
        """DRQ: the admitted call is over."""


class H323Leg:
    """One side of a call on an H.323 unit (a :class:`CallLeg`).

    Side B is a partner's station the gateway calls; side A a kiosk that called the
    gateway (its Setup arrived on :class:`H323Acceptor`'s port).
    """

    protocol = "h323"

    def __init__(self, side: Side, label: str, sink: EventSink | None) -> None:
        self.side = side
        self.label = label
        self.sink = sink
        self.state = _State.CALLING
        self.conn: Connection | None = None
        self.on_offered: Callable[[H323Leg, Offered], None] | None = None
        # The unit's media as it last described them (fastStart, or its channels).
        self._peer_sdp: SessionDescription | None = None
        self._late = False  # A: the kiosk sent no fastStart; its media comes by H.245
        # Run once when the leg ends (the gatekeeper's DRQ for an admitted call).
        self.on_ended: Callable[[], None] | None = None

    # -- the CallLeg protocol -----------------------------------------------------------

    @property
    def ended(self) -> bool:
        """True once released (or never connected)."""
        return self.state is _State.ENDED

    @property
    def dialog_ids(self) -> tuple[str, str, str | None] | None:
        """H.323 calls have no SIP dialog to show in RFC 4235 documents."""
        return None

    def _now(self) -> float:
        assert self.conn is not None
        return self.conn.now()

    def ring(self, early_media: SessionDescription | None) -> None:
        """Kiosk side: Alerting (H.225.0 7.3.3), or with early media (the queue's
        announcement) Progress accepting the kiosk's fastStart proposals for it; a kiosk
        in slow start has no media before Connect and hears its own ringback."""
        if self.conn is None or self.state is _State.ENDED:
            return
        if early_media is not None and not self._late:
            self.state = _State.RINGING
            self.conn.call.progress(early_media, self._now())
            self.conn.pump()
        elif self.state is _State.CALLING:
            self.state = _State.RINGING
            self.conn.call.alerting(self._now())
            self.conn.pump()

    def answer(self, sdp: SessionDescription | None) -> None:
        """Kiosk side: Connect, accepting the fastStart proposals that match ``sdp``; with
        no proposals (slow start) ``sdp`` is the station's offer and H.245 carries it."""
        if self.state in (_State.ENDED, _State.CONNECTED) or self.conn is None:
            return
        self.state = _State.CONNECTING if self._late else _State.CONNECTED
        self.conn.call.connect(sdp, self._now())
        self.conn.pump()

    def complete(self, answer: SessionDescription) -> None:
        """A station leg is always given an offer (fastStart or slow start from it)."""
        log.warning("%s: late-offer answer for an H.323 station ignored", self.label)

    def reject(self, failure: Failed) -> None:
        """Kiosk side: ReleaseComplete with the refusal's cause (Q.931 5.3)."""
        self.hangup(failure.cause, failure.reason)

    def hangup(self, cause: Cause = Cause.NORMAL_CLEARING, reason: str = "") -> None:
        """ReleaseComplete with ``cause`` (H.225.0 7.3.9, Q.931 5.3), whatever the state."""
        if self.state is _State.ENDED:
            return
        self._end()
        if self.conn is not None:
            self.conn.call.release(cause, self._now())
            self.conn.pump()

    def update(self, offer: SessionDescription) -> None:
        """Hold, resume or a new description of our media: an empty capability set
        (third-party pause, H.323 8.4.6), or capabilities and channels again.

        H.323 has no answer to it: the unit's media stay what it last described, so the
        answer is that description seen from the offer's directions (RFC 3264 6.1), at
        once. Should the unit reopen its channels elsewhere, that comes later as a
        :class:`MediaUpdate` of its own.
        """
        if self.conn is None or self.state is not _State.CONNECTED or self._peer_sdp is None:
            self._emit(MediaUpdateAnswer(None, Cause.TEMPORARY_FAILURE))
            return
        self.conn.call.update_media(offer, self._now())
        self.conn.pump()
        answer = self._peer_sdp.copy()
        for ours, theirs in zip(offer.media, answer.media, strict=False):
            theirs.set_direction(offer.effective_direction(ours).reverse)
        self._emit(MediaUpdateAnswer(answer))

    def update_answer(self, result: MediaUpdateAnswer) -> None:
        """The unit's own media changes are not offers to answer in H.323."""

    def send_dtmf(self, event: Dtmf) -> None:
        """userInputIndication, or a Q.931 keypad Information without H.245."""
        if self.conn is not None and self.state is _State.CONNECTED:
            self.conn.call.send_digit(event.digit, event.duration_ms, self._now())
            self.conn.pump()

    def fast_update(self) -> None:
        """videoFastUpdatePicture on the unit's video channel (H.245)."""
        if self.conn is not None and self.state is _State.CONNECTED:
            self.conn.call.request_fast_update(self._now())
            self.conn.pump()

    # -- the call's events --------------------------------------------------------------

    def on_h323_events(self, events: list[Event]) -> None:
        """Turn the H.323 call's events into neutral call events."""
        for event in events:
            self._on_event(event)

    def _on_event(self, event: Event) -> None:
        if self.state is _State.ENDED:
            return
        if isinstance(event, Offered):
            self._late = event.offer is None
            self._peer_sdp = event.offer
            if self.on_offered is not None:
                self.on_offered(self, event)
        elif isinstance(event, Alerted) and self.state is _State.CALLING:
            self.state = _State.RINGING
            self._emit(Ringing(None))
        elif isinstance(event, Progressed) and self.state is _State.CALLING:
            self.state = _State.RINGING
            self._emit(Ringing(event.early_media))
        elif isinstance(event, Connected):
            if event.answer is not None:
                self.state = _State.CONNECTED
                self._peer_sdp = event.answer
                self._emit(Answered(event.answer))
            else:
                self.state = _State.CONNECTING  # slow start: the answer comes with MediaReady
        elif isinstance(event, MediaReady):
            self._media_ready(event.sdp)
        elif isinstance(event, Resumed):
            self._peer_sdp = event.sdp
            self._emit(MediaUpdate(event.sdp))
        elif isinstance(event, Paused):
            log.info("%s: the unit paused its media (empty capability set)", self.label)
        elif isinstance(event, DigitReceived):
            duration = event.duration_ms if event.duration_ms is not None else 250
            self._emit(Dtmf(event.digit, duration))
        elif isinstance(event, FastUpdateRequested):
            self._emit(FastUpdate())
        elif isinstance(event, Released):
            self._released(event.cause, event.reason or "")

    def _media_ready(self, sdp: SessionDescription) -> None:
        if self.state is _State.CONNECTING:
            self.state = _State.CONNECTED
            self._peer_sdp = sdp
            # B: the station's answer to our offer; A: the kiosk's answer to the
            # station's offer it was connected with (the late-offer path).
            self._emit(Answered(sdp) if self.side is Side.B else LateAnswer(sdp))
        elif self.state is _State.CONNECTED and _addresses(sdp) != _addresses(self._peer_sdp):
            # The unit reopened its channels elsewhere (after a resume, say).
            self._peer_sdp = sdp
            self._emit(MediaUpdate(sdp))

    def on_connection_lost(self, reason: str) -> None:
        """The unit's connection went away without a ReleaseComplete."""
        log.info("%s: H.323 connection lost: %s", self.label, reason)
        cause = (
            Cause.NORMAL_UNSPECIFIED
            if self.state is _State.CONNECTED or self.side is Side.A
            else Cause.DESTINATION_OUT_OF_ORDER
        )
        self._released(cause, reason)

    def _released(self, cause: Cause, reason: str) -> None:
        was_connected = self.state in (_State.CONNECTED, _State.CONNECTING)
        self._end()
        if was_connected or self.side is Side.A:
            # No text of our own: the controller names the side that hung up.
            self._emit(Disconnected(cause, reason))
        else:
            self._emit(Failed(cause, reason))

    def _end(self) -> None:
        self.state = _State.ENDED
        ended, self.on_ended = self.on_ended, None
        if ended is not None:
            ended()

    def drop(self, reason: str) -> None:
        """Station side: its gatekeeper ended the call (its DRQ, H.225.0 7.10): release
        the unit and tell the controller."""
        if self.state is _State.ENDED:
            return
        connected = self.state in (_State.CONNECTED, _State.CONNECTING)
        self.hangup(Cause.NORMAL_CLEARING, reason)
        if connected:
            self._emit(Disconnected(Cause.NORMAL_CLEARING, reason))
        else:
            self._emit(Failed(Cause.CALL_REJECTED, reason))

    def not_admitted(self, failure: Failed) -> None:
        """Station side: its gatekeeper refused the call (ARJ): no Setup was sent."""
        if self.state is not _State.ENDED:
            self._end()
            self._emit(failure)

    def _emit(self, event: CallEvent) -> None:
        if self.sink is not None:
            self.sink(self, event)


def _addresses(sdp: SessionDescription | None) -> list[tuple[str | None, int]]:
    """Where each stream of ``sdp`` is received (connection address and port)."""
    if sdp is None:
        return []
    return [
        ((c.address if (c := sdp.connection_for(m)) is not None else None), m.port)
        for m in sdp.media
    ]


class H323Acceptor:
    """Incoming H.323 calls: kiosks that call the gateway directly (H.225.0 Setup).

    A kiosk is known by the address its call comes from, as a SIP kiosk trusted by
    address is (the dialplan's ``addresses``), or by its registration with the gateway's
    gatekeeper; the Setup's destination alias or E.164 number is the service it dials.
    A call from elsewhere is released with cause 21 (call rejected).
    """

    def __init__(
        self,
        dialplan: Callable[[], Dialplan],
        handler: AttemptHandler,
        registered_at: Callable[[str], tuple[str, int] | None] | None = None,
    ) -> None:
        self.dialplan = dialplan
        self.handler = handler
        # Where an alias is registered with the gateway's gatekeeper (RAS), if anywhere.
        self.registered_at = registered_at

    def kiosk_of(self, host: str, calling: str | None) -> Kiosk | None:
        """The kiosk a Setup comes from: trusted by its address, or registered with the
        gateway's gatekeeper under the kiosk's username *and* calling from the address
        it registered (an alias alone is a claim anyone can make; H.235 is not used)."""
        plan = self.dialplan()
        kiosk = plan.kiosk_for_address(host)
        if kiosk is not None or calling is None or self.registered_at is None:
            return kiosk
        where = self.registered_at(calling)
        if where is None or where[0] != host:
            return None
        return plan.kiosk_for_user(calling)

    def incoming(self, conn: Connection) -> H323Leg:
        """The leg of a new signalling connection; its Setup decides the rest."""
        leg = H323Leg(Side.A, "h323-in", None)
        leg.conn = conn
        leg.on_offered = self._offered
        return leg

    def _offered(self, leg: H323Leg, event: Offered) -> None:
        assert leg.conn is not None
        host = leg.conn.peer[0] if leg.conn.peer else ""
        kiosk = self.kiosk_of(host, event.calling)
        if kiosk is None:
            log.info("H.323 Setup from %s refused: not a kiosk", host or "?")
            leg.hangup(Cause.CALL_REJECTED, "not a kiosk")
            return
        service = self.dialplan().resolve_service(event.destination)
        if service is not None:  # what the kiosk's screen shows once connected
            leg.conn.call.display = service.label
        leg.conn.call.proceeding(leg.conn.now())  # H.225.0 7.3.2: the call is ours
        leg.conn.pump()
        self.handler.on_attempt(
            leg, CallAttempt(kiosk=kiosk.id, service=event.destination, offer=event.offer)
        )


class AttemptHandler(Protocol):
    """Where a new call goes (the controller)."""

    def on_attempt(self, leg: CallLeg, attempt: CallAttempt) -> None:
        """A kiosk starts a call."""


class H323Dialer:
    """Opens legs towards H.323 stations (a :class:`~gateway.call.leg.Dialer`)."""

    def __init__(
        self,
        endpoint: Signalling,
        *,
        aliases: tuple[str, ...],
        admission: Admission | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.aliases = aliases
        self.admission = admission

    def dial(self, target: Target, call: OutgoingCall, label: str, sink: EventSink) -> H323Leg:
        """Setup towards ``target.dest`` for ``target.uri`` (an h323-ID or E.164 number);
        for a target with an ``admission`` gatekeeper, once that gatekeeper admitted it
        (ACF), to the address it gave."""
        leg = H323Leg(Side.B, label, sink)
        h323 = H323Call(
            outgoing=True,
            local_address=self.endpoint.address,
            now=self.endpoint.now(),
            local_aliases=self.aliases,
        )
        gatekeeper, admission = target.admission, self.admission
        if gatekeeper is None or admission is None:
            self._setup(leg, h323, target, call, target.dest)
            return leg

        def admitted(address: Address | None, reason: str) -> None:
            if address is not None and leg.ended:
                admission.disengage(gatekeeper, h323)  # hung up while we waited
            elif address is None:
                log.info("%s: gatekeeper %s refused the call: %s", label, gatekeeper, reason)
                leg.not_admitted(admission_refusal(reason))
            else:
                leg.on_ended = lambda: admission.disengage(gatekeeper, h323)
                self._setup(leg, h323, target, call, address)

        def dropped() -> None:
            leg.on_ended = None  # the gatekeeper forgot the call already: no DRQ
            leg.drop("ended by the gatekeeper")

        admission.admit(gatekeeper, h323, target.uri, target.dest, admitted, dropped)
        return leg

    def _setup(
        self, leg: H323Leg, h323: H323Call, target: Target, call: OutgoingCall, dest: Address
    ) -> None:
        now = self.endpoint.now()
        h323.setup(
            destination=target.uri or None,
            destination_address=dest,
            offer=call.offer,
            calling_number=None,
            display=display_of(call),
            now=now,
        )
        leg.conn = self.endpoint.dial(h323, dest, leg)
