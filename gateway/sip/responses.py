"""Responses built from a request: the normal way, and from a request that did not parse.

:func:`make_response` copies what RFC 3261 8.2.6.2 asks a UAS to copy;
:func:`salvage_error_response` answers a request too broken to parse when its Via, From,
To, Call-ID and CSeq lines can still be found (21.4.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from gateway.sip.errors import SipParseError
from gateway.sip.fields import parse_via
from gateway.sip.headers import Headers, canonical_name, split_list
from gateway.sip.messages import Request, Response
from gateway.sip.parser import MAX_HEADER_BYTES, parse_message, split_head


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    extra: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """Build a response that copies Via, From, To, Call-ID and CSeq (RFC 3261 8.2.6.2).

    ``to_tag`` is added to To unless the request already carries one (in-dialog).
    """
    rh = request.headers
    # (canonical name, name, value): the copied fields are named here once and for all.
    fields = [("via", "Via", v) for v in rh.get_all("via")]
    fields.append(("from", "From", rh.get("from") or ""))
    to_value = rh.get("to") or ""
    if to_tag is not None and status != 100 and request.to.tag is None:
        to_value = f"{to_value};tag={to_tag}"
    fields.append(("to", "To", to_value))
    fields.append(("call-id", "Call-ID", request.call_id))
    # The CSeq as received: the method's spelling is what the client matches on (17.1.3).
    fields.append(("cseq", "CSeq", rh.get("cseq") or str(request.cseq)))
    fields += [(canonical_name(name), name, value) for name, value in extra]
    return Response(status, reason, Headers.from_fields(fields), body)


_SALVAGE = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*(.*?)\r?$", re.I | re.M)


def salvage_error_response(
    data: bytes, status: int, reason: str, source: tuple[str, int] | None = None
) -> bytes | None:
    """Best-effort error response to a request that failed to parse (RFC 3261 21.4.1).

    Copies the raw Via, From, To, Call-ID and CSeq lines when all are present; returns
    ``None`` when the input is a response or too broken to answer (then it is dropped).
    With the ``source`` it came from, the top Via gets ``received``/``rport`` as for any
    request (18.2.1, RFC 3581 4) when it parses.
    """
    if data.lstrip().startswith(b"SIP/"):
        return None
    head, _ = split_head(data[:MAX_HEADER_BYTES].lstrip(b"\r\n"))
    found: dict[str, list[bytes]] = {}
    for m in _SALVAGE.finditer(head):
        key = canonical_name(m.group(1).decode("ascii"))
        found.setdefault(key, []).append(m.group(2))
    if any(k not in found for k in ("via", "from", "to", "call-id", "cseq")):
        return None
    if source is not None:
        found["via"][0] = _stamped_via_line(found["via"][0], source)
    reason = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in reason)[:120]
    lines = [f"SIP/2.0 {status} {reason}".encode()]
    for key, name in (
        ("via", b"Via"),
        ("from", b"From"),
        ("to", b"To"),
        ("call-id", b"Call-ID"),
        ("cseq", b"CSeq"),
    ):
        for value in found[key] if key == "via" else found[key][:1]:
            lines.append(name + b": " + value)
    lines.append(b"Content-Length: 0")
    reply = b"\r\n".join(lines) + b"\r\n\r\n"
    try:
        parse_message(reply)
    except SipParseError:
        return None  # the copied headers are broken too: the client could not match it
    return reply


def _stamped_via_line(line: bytes, source: tuple[str, int]) -> bytes:
    """A raw Via line with its first value stamped for ``source``; as it was if unparsable."""
    try:
        text = line.decode("utf-8")
        first, *rest = split_list(text)
        stamped = parse_via(first).stamped(source)
    except (UnicodeDecodeError, ValueError, SipParseError):
        return line
    return ", ".join([str(stamped), *rest]).encode()
