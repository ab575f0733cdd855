"""Release causes across protocols: SIP status codes and ITU-T Q.850 cause values.

Mappings follow RFC 3398 (ISUP/SIP interworking) sections 7.2.4.1 (Q.850 -> SIP) and
8.2.6.1 (SIP -> Q.850); the ``Reason`` header that carries a Q.850 cause in SIP is
RFC 3326. H.225.0 ReleaseComplete reasons map through the same Q.850 values.
"""

from __future__ import annotations

import re

NORMAL_CLEARING = 16
USER_BUSY = 17
NO_USER_RESPONSE = 18
NO_ANSWER = 19
CALL_REJECTED = 21
UNALLOCATED_NUMBER = 1
NO_ROUTE_DESTINATION = 3
DESTINATION_OUT_OF_ORDER = 27
INVALID_NUMBER_FORMAT = 28
NORMAL_UNSPECIFIED = 31
NO_CIRCUIT_AVAILABLE = 34
TEMPORARY_FAILURE = 41
SWITCHING_EQUIPMENT_CONGESTION = 42
RESOURCE_UNAVAILABLE = 47
BEARER_NOT_AVAILABLE = 58
SERVICE_NOT_IMPLEMENTED = 79
INCOMPATIBLE_DESTINATION = 88
RECOVERY_ON_TIMER_EXPIRY = 102
INTERWORKING = 127

# RFC 3398 8.2.6.1: SIP final response -> Q.850 cause.
_SIP_TO_Q850 = {
    400: 41,
    401: 21,
    402: 21,
    403: 21,
    404: 1,
    405: 63,
    406: 79,
    407: 21,
    408: 102,
    410: 22,
    413: 127,
    414: 127,
    415: 79,
    416: 127,
    420: 127,
    421: 127,
    423: 127,
    480: 18,
    481: 41,
    482: 25,
    483: 25,
    484: 28,
    485: 1,
    486: 17,
    487: 127,
    488: 65,
    500: 41,
    501: 79,
    502: 38,
    503: 41,
    504: 102,
    505: 127,
    513: 127,
    600: 17,
    603: 21,
    604: 1,
    606: 58,
}

# RFC 3398 7.2.4.1: Q.850 cause -> SIP final response.
_Q850_TO_SIP = {
    1: 404,
    2: 404,
    3: 404,
    17: 486,
    18: 408,
    19: 480,
    20: 480,
    21: 403,
    22: 410,
    23: 410,
    26: 404,
    27: 502,
    28: 484,
    29: 501,
    31: 480,
    34: 503,
    38: 503,
    41: 503,
    42: 503,
    47: 503,
    55: 403,
    57: 403,
    58: 503,
    65: 488,
    69: 501,
    70: 488,
    79: 501,
    87: 403,
    88: 503,
    102: 504,
    111: 500,
    127: 500,
}


def q850_from_sip(status: int) -> int:
    """The Q.850 cause for a SIP final status (RFC 3398 8.2.6.1); 31 for the unlisted."""
    if status in _SIP_TO_Q850:
        return _SIP_TO_Q850[status]
    if 200 <= status < 300:
        return NORMAL_CLEARING
    return NORMAL_UNSPECIFIED


def sip_from_q850(cause: int) -> int:
    """The SIP status for a Q.850 cause (RFC 3398 7.2.4.1); 500 for the unlisted."""
    return _Q850_TO_SIP.get(cause, 480 if cause < 32 else 500)


def reason_header(cause: int, text: str = "") -> str:
    """A ``Reason`` header value carrying a Q.850 cause (RFC 3326 section 2)."""
    clean = text.replace('"', "'").replace("\\", "/")
    return f'Q.850;cause={cause};text="{clean}"' if clean else f"Q.850;cause={cause}"


_REASON = re.compile(
    r'\s*Q\.850\s*;(?:.*?;)?\s*cause\s*=\s*(\d+)(?:.*?text\s*=\s*"([^"]*)")?', re.I
)


def parse_reason(value: str | None) -> tuple[int, str] | None:
    """The Q.850 cause and text of a ``Reason`` header (RFC 3326), if it has one."""
    if not value:
        return None
    for item in value.split(","):
        m = _REASON.match(item)
        if m is not None:
            return int(m.group(1)), m.group(2) or ""
    return None
