"""SIP messages on bytes, in one import (RFC 3261 7, 8.1.1, 18, 20, 25).

The code lives in modules that each do one job; this module gathers the names the rest
of the gateway uses:

- ``gateway.sip.headers``: header names, comma lists, the :class:`Headers` collection;
- ``gateway.sip.fields``: the parsed Via and CSeq values;
- ``gateway.sip.messages``: :class:`Request` and :class:`Response`;
- ``gateway.sip.parser``: :func:`parse_message` and the TCP :class:`StreamFramer`;
- ``gateway.sip.responses``: :func:`make_response`, :func:`salvage_error_response`.
"""

from __future__ import annotations

from gateway.sip.fields import VIA_MEMO, CSeq, Via
from gateway.sip.headers import Headers, canonical_name, split_list
from gateway.sip.messages import REASON_PHRASES, Message, Request, Response
from gateway.sip.parser import MAX_BODY_BYTES, MAX_HEADER_BYTES, StreamFramer, parse_message
from gateway.sip.responses import make_response, salvage_error_response

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_HEADER_BYTES",
    "REASON_PHRASES",
    "VIA_MEMO",
    "CSeq",
    "Headers",
    "Message",
    "Request",
    "Response",
    "StreamFramer",
    "Via",
    "canonical_name",
    "make_response",
    "parse_message",
    "salvage_error_response",
    "split_list",
]
