"""Neutral call-control events shared by every kind of call leg.

A leg (SIP today, H.323 later) turns its protocol into these events and the B2BUA
controller consumes only these, so interworking lives in one place. The vocabulary
follows the classic try / ring / connect / fail / disconnect split; release causes
are ITU-T Q.850 cause values, the one code space both SIP (RFC 3326 ``Reason``) and
H.225.0 understand.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from gateway.model.sdp import SessionDescription


class Side(StrEnum):
    """Which half of a bridged call a leg or media stream belongs to."""

    A = "a"  # the calling side (a kiosk)
    B = "b"  # the called side (a partner's station)

    @property
    def other(self) -> Side:
        return Side.B if self is Side.A else Side.A


@dataclass(frozen=True, slots=True)
class CallAttempt:
    """A new call arrives on a leg ("try"): who calls whom, with the caller's offer."""

    caller: str
    callee: str
    offer: SessionDescription | None
    context: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Ringing:
    """The far end is alerting ("ring"); ``early_media`` carries an SDP answer if any."""

    early_media: SessionDescription | None = None


@dataclass(frozen=True, slots=True)
class Answered:
    """The far end accepted the call ("connect") with its media answer."""

    answer: SessionDescription | None


@dataclass(frozen=True, slots=True)
class Failed:
    """The attempt ended before it was answered ("fail").

    ``cause`` is a Q.850 cause value; ``sip_status`` the SIP final status when the
    failure came from SIP, so that a SIP-to-SIP call can keep the exact code.
    """

    cause: int
    sip_status: int | None = None
    reason: str = ""
    retry_after: int | None = None


@dataclass(frozen=True, slots=True)
class Disconnected:
    """An established call was released ("disconnect") with a Q.850 cause."""

    cause: int = 16  # normal call clearing
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MediaUpdate:
    """A mid-call offer (re-INVITE, UPDATE; hold, resume, codec change)."""

    offer: SessionDescription


@dataclass(frozen=True, slots=True)
class MediaUpdateAnswer:
    """The answer to a :class:`MediaUpdate`; ``None`` with ``rejected`` set on failure."""

    answer: SessionDescription | None
    rejected: int | None = None


@dataclass(frozen=True, slots=True)
class Dtmf:
    """A DTMF digit received out of band (SIP INFO, H.245 userInput, Q.931 keypad)."""

    digit: str
    duration_ms: int = 250


@dataclass(frozen=True, slots=True)
class FastUpdate:
    """A request for a video intra frame (SIP INFO picture_fast_update, H.245 VFU)."""


CallEvent = (
    CallAttempt
    | Ringing
    | Answered
    | Failed
    | Disconnected
    | MediaUpdate
    | MediaUpdateAnswer
    | Dtmf
    | FastUpdate
)
