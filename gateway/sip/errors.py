"""Errors of the SIP layer, split as h11 does: the peer misbehaved, or we misused the API."""

from __future__ import annotations


class SipParseError(Exception):
    """The peer sent something that is not valid SIP (RFC 3261 section 25).

    ``status`` is the response a server should answer a request with (400 unless the
    problem has a more precise code, such as 413 or 505).
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class SipUsageError(Exception):
    """Our own code called the SIP layer in a way it does not support (a bug here)."""
