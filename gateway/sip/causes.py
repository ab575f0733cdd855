"""SIP statuses and Q.850 causes, both ways: RFC 3398 tables and the RFC 3326 ``Reason``.

Mappings follow RFC 3398 (ISUP/SIP interworking) sections 7.2.4.1 (Q.850 -> SIP) and
8.2.6.1 (SIP -> Q.850); the ``Reason`` header that carries a Q.850 cause in SIP is
RFC 3326. The controller decides on :class:`~gateway.model.causes.Cause` only; these
tables are used at the SIP edge of a leg.
"""

from __future__ import annotations

import re

from gateway.model.causes import Cause

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


def q850_from_sip(status: int) -> Cause:
    """The Q.850 cause for a SIP final status (RFC 3398 8.2.6.1); 31 for the unlisted."""
    if status in _SIP_TO_Q850:
        return Cause(_SIP_TO_Q850[status])
    if 200 <= status < 300:
        return Cause.NORMAL_CLEARING
    return Cause.NORMAL_UNSPECIFIED


def sip_from_q850(cause: int) -> int:
    """The SIP status for a Q.850 cause (RFC 3398 7.2.4.1); 480 or 500 for the unlisted."""
    return _Q850_TO_SIP.get(cause, 480 if cause < 32 else 500)


def reason_header(cause: int, text: str = "") -> str:
    """A ``Reason`` header value carrying a Q.850 cause (RFC 3326 section 2)."""
    clean = text.replace('"', "'").replace("\\", "/")
    return f'Q.850;cause={int(cause)};text="{clean}"' if clean else f"Q.850;cause={int(cause)}"


_REASON = re.compile(
    r'\s*Q\.850\s*;(?:.*?;)?\s*cause\s*=\s*(\d{1,3})(?:.*?text\s*=\s*"([^"]*)")?', re.I
)


def parse_reason(value: str | None) -> tuple[Cause, str] | None:
    """The Q.850 cause and text of a ``Reason`` header (RFC 3326), if it has one."""
    if not value:
        return None
    for item in value.split(","):
        m = _REASON.match(item)
        if m is not None:
            return Cause.of(int(m.group(1))), m.group(2) or ""
    return None
