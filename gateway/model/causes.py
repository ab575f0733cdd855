"""Release causes as one type: the ITU-T Q.850 cause values every leg speaks.

Q.850 (05/1998) Table 1 is the one code space that SIP (RFC 3326 ``Reason``, RFC 3398
mapping) and H.225.0 (Q.931 Cause IE, ReleaseCompleteReason) both understand, so the
controller decides on these values only; each protocol maps them at its own edge.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Cause(IntEnum):
    """A Q.850 cause value (Q.850 Table 1, with the class in the bits above the low 4)."""

    UNALLOCATED_NUMBER = 1
    NO_ROUTE_TO_TRANSIT_NETWORK = 2
    NO_ROUTE_TO_DESTINATION = 3
    CHANNEL_UNACCEPTABLE = 6
    NORMAL_CLEARING = 16
    USER_BUSY = 17
    NO_USER_RESPONDING = 18
    NO_ANSWER = 19
    SUBSCRIBER_ABSENT = 20
    CALL_REJECTED = 21
    NUMBER_CHANGED = 22
    REDIRECTION_TO_NEW_DESTINATION = 23
    EXCHANGE_ROUTING_ERROR = 25
    NON_SELECTED_USER_CLEARING = 26
    DESTINATION_OUT_OF_ORDER = 27
    INVALID_NUMBER_FORMAT = 28
    FACILITY_REJECTED = 29
    RESPONSE_TO_STATUS_ENQUIRY = 30
    NORMAL_UNSPECIFIED = 31
    NO_CIRCUIT_AVAILABLE = 34
    NETWORK_OUT_OF_ORDER = 38
    TEMPORARY_FAILURE = 41
    SWITCHING_EQUIPMENT_CONGESTION = 42
    ACCESS_INFORMATION_DISCARDED = 43
    REQUESTED_CHANNEL_NOT_AVAILABLE = 44
    RESOURCE_UNAVAILABLE = 47
    QUALITY_OF_SERVICE_NOT_AVAILABLE = 49
    FACILITY_NOT_SUBSCRIBED = 50
    INCOMING_CALLS_BARRED_WITHIN_CUG = 55
    BEARER_CAPABILITY_NOT_AUTHORIZED = 57
    BEARER_CAPABILITY_NOT_AVAILABLE = 58
    SERVICE_NOT_AVAILABLE = 63
    BEARER_CAPABILITY_NOT_IMPLEMENTED = 65
    CHANNEL_TYPE_NOT_IMPLEMENTED = 66
    FACILITY_NOT_IMPLEMENTED = 69
    ONLY_RESTRICTED_DIGITAL_INFORMATION = 70
    SERVICE_NOT_IMPLEMENTED = 79
    INVALID_CALL_REFERENCE = 81
    USER_NOT_MEMBER_OF_CUG = 87
    INCOMPATIBLE_DESTINATION = 88
    INVALID_TRANSIT_NETWORK = 91
    INVALID_MESSAGE = 95
    MANDATORY_IE_MISSING = 96
    MESSAGE_TYPE_NOT_IMPLEMENTED = 97
    MESSAGE_NOT_COMPATIBLE_WITH_STATE = 98
    IE_NOT_IMPLEMENTED = 99
    INVALID_IE_CONTENTS = 100
    MESSAGE_NOT_COMPATIBLE_WITH_CALL_STATE = 101
    RECOVERY_ON_TIMER_EXPIRY = 102
    PARAMETER_NOT_IMPLEMENTED = 103
    PROTOCOL_ERROR = 111
    INTERWORKING = 127

    @classmethod
    def of(cls, value: int) -> Cause:
        """The cause for a received value; an unknown one counts as its class's default.

        Q.850 section 2.2.7.1: a cause value not implemented is treated as the
        "unspecified" cause of its class (31, 47, 63, 79, 95, 111 or 127).
        """
        try:
            return cls(value)
        except ValueError:
            pass
        if not 0 <= value <= 127:
            return cls.NORMAL_UNSPECIFIED
        return _CLASS_DEFAULT[value >> 4]

    @property
    def unanswered(self) -> bool:
        """Nobody took the call (no reply, rang out, timer expiry), as opposed to a refusal."""
        return self in _UNANSWERED


_CLASS_DEFAULT = {
    0: Cause.NORMAL_UNSPECIFIED,
    1: Cause.NORMAL_UNSPECIFIED,
    2: Cause.RESOURCE_UNAVAILABLE,
    3: Cause.SERVICE_NOT_AVAILABLE,
    4: Cause.SERVICE_NOT_IMPLEMENTED,
    5: Cause.INVALID_MESSAGE,
    6: Cause.PROTOCOL_ERROR,
    7: Cause.INTERWORKING,
}

_UNANSWERED = frozenset({Cause.NO_USER_RESPONDING, Cause.NO_ANSWER, Cause.RECOVERY_ON_TIMER_EXPIRY})


class Refusal(StrEnum):
    """Why the gateway itself refused a call; the value keys a phrase of gateway.texts.

    Each refusal releases the caller with one Q.850 cause (:attr:`cause`), which each
    leg maps to its protocol (RFC 3398 7.2.4.1 for SIP: 31 and 20 -> 480, 17 -> 486).
    """

    UNKNOWN_SERVICE = "unknown_service"
    NOT_OFFERED = "not_offered"
    SITE_CLOSED = "site_closed"
    CLOSED = "closed"
    APPOINTMENT_ONLY = "appointment_only"
    NO_STATION = "no_station"
    QUEUE_FULL = "queue_full"
    QUEUE_TIMEOUT = "queue_timeout"
    ALL_BUSY = "all_busy"
    NO_ANSWER = "no_answer"
    MEDIA_UNAVAILABLE = "media_unavailable"
    ENCRYPTION_REQUIRED = "encryption_required"

    @property
    def cause(self) -> Cause:
        """The Q.850 cause the caller is released with."""
        return _REFUSAL_CAUSE[self]

    @property
    def text_key(self) -> str:
        """The key of its French phrase in gateway.texts."""
        return f"reason_{self.value}"


_REFUSAL_CAUSE = {
    Refusal.UNKNOWN_SERVICE: Cause.NO_ROUTE_TO_DESTINATION,
    Refusal.NOT_OFFERED: Cause.CALL_REJECTED,
    Refusal.SITE_CLOSED: Cause.NORMAL_UNSPECIFIED,
    Refusal.CLOSED: Cause.NORMAL_UNSPECIFIED,
    Refusal.APPOINTMENT_ONLY: Cause.NORMAL_UNSPECIFIED,
    Refusal.NO_STATION: Cause.SUBSCRIBER_ABSENT,
    Refusal.QUEUE_FULL: Cause.USER_BUSY,
    Refusal.QUEUE_TIMEOUT: Cause.NO_ANSWER,
    Refusal.ALL_BUSY: Cause.USER_BUSY,
    Refusal.NO_ANSWER: Cause.NO_ANSWER,
    Refusal.MEDIA_UNAVAILABLE: Cause.RESOURCE_UNAVAILABLE,
    # Plain RTP where the site or partner requires SRTP: the bearer offered is not one
    # this call may use (SIP: 488 Not Acceptable Here, RFC 3398 7.2.4.1).
    Refusal.ENCRYPTION_REQUIRED: Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED,
}
