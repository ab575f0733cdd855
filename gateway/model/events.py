"""Neutral call-control events shared by every kind of call leg.

A leg (SIP today, H.323 next) turns its protocol into these events and the controller
consumes only these, so interworking lives in one place. The vocabulary follows the
classic try / ring / connect / fail / disconnect split (sippy's CCEvents); release
causes are ITU-T Q.850 values (:class:`~gateway.model.causes.Cause`), the one code
space both SIP (RFC 3326 ``Reason``) and H.225.0 understand.

Offer/answer (RFC 3264) runs across the legs: the offer of a call is in
:class:`CallAttempt` (early offer) or, when the caller sent none (a SIP INVITE without
SDP, H.323 slow start), in the called side's :class:`Answered` and the caller's
:class:`LateAnswer` closes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateway.model.causes import Cause
from gateway.model.sdp import SessionDescription


class Side(StrEnum):
    """Which half of a bridged call a leg or media stream belongs to."""

    A = "a"  # the calling side (a kiosk)
    B = "b"  # the called side (a partner's station)

    @property
    def other(self) -> Side:
        """The opposite side."""
        return Side.B if self is Side.A else Side.A


Context = tuple[tuple[str, str], ...]
"""What the caller passed for the agent, as (name, value) pairs in lower case without
any protocol prefix: ``("allocataire", "1234567")`` travels as a SIP header
``X-Visio-Allocataire`` and in an H.323 display name."""


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(frozen=True, slots=True, init=False)
class CallAttempt:
    """A new call ("try"): the only way a call enters the controller.

    ``kiosk`` is the authenticated caller's kiosk id, ``service`` what it dialled (a
    service name or number), ``offer`` its media offer or ``None`` for a late offer,
    ``hops`` how many more hops the call may take (SIP Max-Forwards, already
    decremented by the leg).
    """

    kiosk: str
    service: str
    offer: SessionDescription | None
    context: Context = ()
    appointment: bool = False
    hops: int = 69

    def __init__(
        self,
        kiosk: str,
        service: str,
        offer: SessionDescription | None,
        context: Context = (),
        appointment: bool = False,
        hops: int = 69,
    ) -> None:
        object.__setattr__(self, "kiosk", kiosk)
        object.__setattr__(self, "service", service)
        object.__setattr__(self, "offer", offer)
        object.__setattr__(self, "context", context)
        object.__setattr__(self, "appointment", appointment)
        object.__setattr__(self, "hops", hops)


@dataclass(frozen=True, slots=True, init=False)
class Ringing:
    """The far end is alerting ("ring"); ``early_media`` carries an SDP answer if any."""

    early_media: SessionDescription | None = None

    def __init__(self, early_media: SessionDescription | None = None) -> None:
        object.__setattr__(self, "early_media", early_media)


@dataclass(frozen=True, slots=True, init=False)
class Answered:
    """The far end accepted the call ("connect").

    ``sdp`` answers the offer the leg was given; when it was given none (late offer),
    ``sdp`` is the far end's own offer, and the leg waits for :meth:`CallLeg.complete`.
    """

    sdp: SessionDescription | None

    def __init__(self, sdp: SessionDescription | None) -> None:
        object.__setattr__(self, "sdp", sdp)


@dataclass(frozen=True, slots=True, init=False)
class LateAnswer:
    """The caller's answer to the offer it got when the call was answered (SIP ACK body)."""

    answer: SessionDescription

    def __init__(self, answer: SessionDescription) -> None:
        object.__setattr__(self, "answer", answer)


@dataclass(frozen=True, slots=True, init=False)
class Failed:
    """The attempt ended before it was answered ("fail"), with a Q.850 cause."""

    cause: Cause
    reason: str = ""
    retry_after: int | None = None  # seconds, when the far end said when to try again

    def __init__(self, cause: Cause, reason: str = "", retry_after: int | None = None) -> None:
        object.__setattr__(self, "cause", cause)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "retry_after", retry_after)


@dataclass(frozen=True, slots=True, init=False)
class Disconnected:
    """An established call was released ("disconnect") with a Q.850 cause."""

    cause: Cause = Cause.NORMAL_CLEARING
    reason: str = ""

    def __init__(self, cause: Cause = Cause.NORMAL_CLEARING, reason: str = "") -> None:
        object.__setattr__(self, "cause", cause)
        object.__setattr__(self, "reason", reason)


@dataclass(frozen=True, slots=True, init=False)
class MediaUpdate:
    """A mid-call offer (re-INVITE, UPDATE; H.245 channels reopened; hold and resume)."""

    offer: SessionDescription

    def __init__(self, offer: SessionDescription) -> None:
        object.__setattr__(self, "offer", offer)


@dataclass(frozen=True, slots=True, init=False)
class MediaUpdateAnswer:
    """The answer to a :class:`MediaUpdate`; ``answer`` is ``None`` when it was refused."""

    answer: SessionDescription | None
    refused: Cause | None = None

    def __init__(self, answer: SessionDescription | None, refused: Cause | None = None) -> None:
        object.__setattr__(self, "answer", answer)
        object.__setattr__(self, "refused", refused)


@dataclass(frozen=True, slots=True, init=False)
class Dtmf:
    """A DTMF digit received out of band (SIP INFO, H.245 userInput, Q.931 keypad)."""

    digit: str
    duration_ms: int = 250

    def __init__(self, digit: str, duration_ms: int = 250) -> None:
        object.__setattr__(self, "digit", digit)
        object.__setattr__(self, "duration_ms", duration_ms)

    def __reduce__(self) -> tuple[type[Dtmf], tuple[str, int]]:
        # The media workers pickle it; compiled, __new__ runs __init__ (with no arguments).
        return Dtmf, (self.digit, self.duration_ms)


@dataclass(frozen=True, slots=True)
class FastUpdate:
    """A request for a video intra frame (SIP INFO picture_fast_update, H.245 VFU)."""


CallEvent = (
    Ringing
    | Answered
    | LateAnswer
    | Failed
    | Disconnected
    | MediaUpdate
    | MediaUpdateAnswer
    | Dtmf
    | FastUpdate
)
"""What a leg reports to the controller once a call exists."""
