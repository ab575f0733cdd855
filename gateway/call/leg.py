"""What the controller needs of a call leg, whatever protocol it speaks.

A leg is one side of a bridged call. It reports :mod:`gateway.model.events` to its
``sink`` and takes the commands below; a SIP leg (:mod:`gateway.call.sip_leg`) and an
H.323 leg implement the same :class:`CallLeg`, and a :class:`Dialer` per protocol opens
outgoing legs towards a :class:`Target`. To plug in a protocol: write its leg and its
dialer, and register the dialer with the controller under the protocol's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from gateway.model.causes import Cause
from gateway.model.events import CallEvent, Context, Dtmf, Failed, MediaUpdateAnswer, Side
from gateway.model.sdp import SessionDescription

EventSink = Callable[["CallLeg", CallEvent], None]

# The context keys the gateway itself writes for the agent (the controller's _dial);
# a caller's own copy of them is dropped, and legs show them apart from what was typed.
OWN_CONTEXT = frozenset({"kiosk", "site", "service", "waited"})


class CallLeg(Protocol):
    """One side of a call, as the controller drives it."""

    side: Side
    label: str  # the controller's call id, for logs
    sink: EventSink | None
    protocol: str  # "sip", "h323": for call records

    @property
    def ended(self) -> bool:
        """True once the leg has nothing more to say."""

    @property
    def dialog_ids(self) -> tuple[str, str, str | None] | None:
        """The call's identifier and the two sides' tags as the protocol names them
        (SIP Call-ID and tags), for RFC 4235 dialog documents; None before there is one."""

    def ring(self, early_media: SessionDescription | None) -> None:
        """Caller side: the far end alerts (with early media when ``early_media`` is set)."""

    def answer(self, sdp: SessionDescription | None) -> None:
        """Caller side: the call is answered; ``sdp`` answers its offer, or is our offer."""

    def complete(self, answer: SessionDescription) -> None:
        """Called side: the answer to the offer it sent when it answered (late offer)."""

    def reject(self, failure: Failed) -> None:
        """Caller side: refuse the call before it was answered."""

    def hangup(self, cause: Cause = Cause.NORMAL_CLEARING, reason: str = "") -> None:
        """End the leg whatever its state (cancel, refuse or release)."""

    def update(self, offer: SessionDescription) -> None:
        """Send the peer a mid-call offer; its answer comes back as MediaUpdateAnswer."""

    def update_answer(self, result: MediaUpdateAnswer) -> None:
        """Answer (or refuse) the peer's pending mid-call offer."""

    def send_dtmf(self, event: Dtmf) -> None:
        """Pass a DTMF digit to the peer out of band."""

    def fast_update(self) -> None:
        """Ask the peer's video encoder for an intra frame."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a station can be reached now, in its own protocol's terms.

    ``uri`` is what the dialer calls: a SIP request URI, an H.323 alias or an E.164
    number; ``dest`` the transport address to send to.
    """

    station: str
    protocol: str  # the dialer's name: "sip", "h323"
    uri: str
    dest: tuple[str, int]
    transport: str = "udp"
    # (username, password) for a station that challenges us; never shown in a repr.
    credentials: tuple[str, str] | None = field(default=None, repr=False)
    # Who must admit a call before it is placed (an H.323 gatekeeper of the dialplan
    # with which the gateway is registered), or None.
    admission: str | None = None


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(frozen=True, slots=True, init=False)
class OutgoingCall:
    """What an outgoing leg tells the station about the call it offers."""

    caller: str  # the kiosk id
    caller_name: str  # how the agent's screen names the caller (the kiosk's label)
    service: str  # the service name the kiosk called
    offer: SessionDescription | None  # None: a late offer (the station offers)
    context: Context  # kiosk, site, service and what the citizen typed
    hops: int

    def __init__(
        self,
        caller: str,
        caller_name: str,
        service: str,
        offer: SessionDescription | None,
        context: Context,
        hops: int,
    ) -> None:
        object.__setattr__(self, "caller", caller)
        object.__setattr__(self, "caller_name", caller_name)
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "offer", offer)
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "hops", hops)


class Dialer(Protocol):
    """Opens outgoing legs of one protocol."""

    def dial(self, target: Target, call: OutgoingCall, label: str, sink: EventSink) -> CallLeg:
        """Start a call towards ``target``; events reach ``sink``."""
