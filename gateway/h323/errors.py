"""Errors of the H.323 wire layer, split as h11 does: the peer misbehaved, or we misused it."""

from __future__ import annotations


class H323ParseError(Exception):
    """The peer sent bytes that are not a valid TPKT frame, Q.931 message or PER value.

    ``cause`` is the Q.850 cause value a ReleaseComplete or STATUS answering a bad
    Q.931 message should carry (Q.931 5.8): 95 invalid message (the default), 96
    mandatory information element missing, 100 invalid information element contents.
    """

    def __init__(self, reason: str, cause: int = 95) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


class H323UsageError(Exception):
    """Our own code called the H.323 layer in a way it does not support (a bug here)."""
