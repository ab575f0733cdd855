"""Reliable provisional responses, UAC side, sans-IO (RFC 3262).

A UAS that needs its 1xx to arrive (early media, a gateway to the PSTN) sends it with
``Require: 100rel`` and an ``RSeq`` number, and retransmits it until a PRACK carrying
``RAck`` acknowledges it. This module tells a UAC which 1xx are reliable, what the
PRACK's ``RAck`` says, and which arrivals are retransmissions that need no new PRACK
(the PRACK is a client transaction of its own and retransmits itself, RFC 3262 4).
"""

from __future__ import annotations

from enum import Enum

from gateway.sip.errors import SipParseError
from gateway.sip.message import CSeq, Request, Response

__all__ = [
    "OPTION_TAG",
    "RSEQ_MAX",
    "Arrival",
    "ReliableProvisionals",
    "parse_rseq",
    "rack_for",
    "rack_value",
    "reliable_rseq",
    "requires_100rel",
]

OPTION_TAG = "100rel"  # RFC 3262 10: the option tag in Supported and Require
# RFC 3262 3: the first RSeq of a transaction lies in 1..2**31-1. Later ones add one each;
# a UAS that started at the very top and sent several would overflow it: not supported.
RSEQ_MAX = 2**31 - 1


def parse_rseq(value: str) -> int:
    """The response-num of an RSeq value (RFC 3262 7.1); SipParseError unless 1..2**31-1."""
    text = value.strip()
    # isascii: str.isdigit() accepts digits such as "²" that int() refuses.
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        raise SipParseError(f"RSeq {value!r} is not a response number")
    number = int(text)
    if not 1 <= number <= RSEQ_MAX:
        raise SipParseError(f"RSeq {number} is out of range 1-{RSEQ_MAX}")
    return number


def requires_100rel(message: Request | Response) -> bool:
    """Whether ``Require`` lists ``100rel`` (option tags compare case-insensitively, 19.2)."""
    return any(tag.strip().lower() == OPTION_TAG for tag in message.headers.get_all("require"))


def reliable_rseq(response: Response) -> int | None:
    """The RSeq of a reliable provisional response, or None for any other response.

    Reliable means a 101-199 with ``Require: 100rel`` and a valid RSeq (RFC 3262 3); a
    100 Trying is hop-by-hop and never reliable.
    """
    if not 101 <= response.status <= 199 or not requires_100rel(response):
        return None
    value = response.headers.get("rseq")
    if value is None:
        return None
    try:
        return parse_rseq(value)
    except SipParseError:
        return None


def rack_value(rseq: int, cseq: CSeq) -> str:
    """The RAck of a PRACK: response-num, CSeq number and method (RFC 3262 7.2)."""
    return f"{rseq} {cseq.seq} {cseq.method}"


def rack_for(response: Response) -> str | None:
    """The RAck acknowledging a reliable provisional response, None if it is not one."""
    rseq = reliable_rseq(response)
    return None if rseq is None else rack_value(rseq, response.cseq)


class Arrival(Enum):
    """What a UAC makes of a provisional response to its INVITE (RFC 3262 4)."""

    UNRELIABLE = "unreliable"  # an ordinary 1xx: no PRACK
    NEW = "new"  # the next reliable 1xx of its early dialog: PRACK it and act on it
    REPEAT = "repeat"  # an RSeq already seen: a retransmission, nothing more to do
    GAP = "gap"  # beyond the next number: an earlier one is missing; drop it, no PRACK


class ReliableProvisionals:
    """The last in-order RSeq of each early dialog of one INVITE (RFC 3262 4).

    Forked early dialogs number their responses independently, so the sequence is kept
    per To tag. Keep one instance per INVITE transaction, until its final response.
    """

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def receive(self, response: Response) -> Arrival:
        """Classify a 1xx and remember its RSeq when it is the next one."""
        rseq = reliable_rseq(response)
        if rseq is None:
            return Arrival.UNRELIABLE
        tag = response.to.tag or ""
        last = self._last.get(tag)
        # The first reliable 1xx of a dialog sets the sequence, whatever its number.
        if last is None or rseq == last + 1:
            self._last[tag] = rseq
            return Arrival.NEW
        return Arrival.REPEAT if rseq <= last else Arrival.GAP

    def last(self, to_tag: str | None) -> int | None:
        """The RSeq last acknowledged in the early dialog of this To tag."""
        return self._last.get(to_tag or "")
