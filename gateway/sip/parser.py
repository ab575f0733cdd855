"""SIP messages from bytes: the parser and the stream framer (RFC 3261 7, 18.3, 25).

:func:`parse_message` splits the start line and the header fields once, keeps the raw
values and has the message parse the headers every layer needs (RFC 3261 8.1.1), so
that a message missing one is refused here, where a 400 can still be sent.
:class:`StreamFramer` cuts a TCP byte stream into messages by Content-Length. Whatever
is not SIP raises :class:`~gateway.sip.errors.SipParseError` and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from gateway.sip.errors import SipParseError
from gateway.sip.headers import Headers, header_name, is_number, split_list
from gateway.sip.messages import Request, Response
from gateway.sip.uri import SipUri, parse_name_addr

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024

# Request-Line = Method SP Request-URI SP SIP-Version CRLF (RFC 3261 7.1, 25.1)
_REQUEST_LINE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+) (\S+) (SIP/\d+\.\d+)\Z")
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF (7.2)
_STATUS_LINE = re.compile(r"(SIP/\d+\.\d+) ([1-6]\d\d)(?: (.*))?\Z")
# A header line continued on the next one (LWS, 7.3.1)
_FOLD = re.compile(r"\r?\n[ \t]+")
# SIP-date = rfc1123-date = wkday "," SP date1 SP time SP "GMT" (RFC 3261 20.17, 25.1)
_SIP_DATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (?:0[1-9]|[12]\d|3[01]) "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
    r"(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60) GMT\Z"
)


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """The header section and the body, cut at the first empty line (RFC 3261 7)."""
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return data[:idx], data[idx + 4 :]
    idx = data.find(b"\n\n")  # tolerate bare LF line ends (RFC 3261 7.5 asks for CRLF)
    if idx >= 0:
        return data[:idx], data[idx + 2 :]
    return data.rstrip(b"\r\n"), b""


def parse_message(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one complete SIP message (RFC 3261 7, 18.3).

    On a datagram a body longer than Content-Length is truncated and a shorter one is an
    error; with ``stream`` the framer has already cut the message at Content-Length.
    """
    head_bytes, body = split_head(data.lstrip(b"\r\n"))
    if not head_bytes:
        raise SipParseError("empty message")
    if len(head_bytes) > MAX_HEADER_BYTES:
        raise SipParseError("header section too large", status=413)
    try:
        head = head_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"header section is not UTF-8 (byte {exc.start})") from None
    if "\n " in head or "\n\t" in head:
        head = _FOLD.sub(" ", head)
    # Every LF ends a line, with or without its CR: a peer mixing both must not get a
    # bare LF through inside a value, where the next hop would see a new header.
    lines = head.replace("\r\n", "\n").split("\n")
    start = lines[0]
    if "\x00" in head:  # one scan here rather than one per header value
        if "\x00" in start:
            raise SipParseError("NUL byte in the start line")
        line = next(line for line in lines if "\x00" in line)
        raise SipParseError(f"NUL byte in header {line.partition(':')[0].strip()[:40]!r}")
    headers = _headers(lines)
    body = _body(headers, body)

    msg: Request | Response
    if start.startswith("SIP/"):
        m = _STATUS_LINE.match(start)
        if m is None:
            raise SipParseError(f"malformed status line {start[:80]!r}")
        if m.group(1) != "SIP/2.0":
            raise SipParseError(f"unsupported version {m.group(1)}", status=505)
        msg = Response(int(m.group(2)), m.group(3) or "", headers, body)
    else:
        m = _REQUEST_LINE.match(start)
        if m is None:
            raise SipParseError(f"malformed request line {start[:80]!r}")
        if m.group(3) != "SIP/2.0":
            raise SipParseError(f"unsupported version {m.group(3)}", status=505)
        msg = Request(m.group(1).upper(), m.group(2), headers, body)
        msg.uri  # noqa: B018 - validate the Request-URI now (416 / 400)
    msg.check_mandatory()
    if isinstance(msg, Request):
        _check_request(msg)
    return msg


def _headers(lines: list[str]) -> Headers:
    """The header fields after the start line, with the index of their values by name."""
    fields: list[tuple[str, str, str]] = []
    index: dict[str, list[str]] = {}
    for line in lines[1:]:
        raw, sep, value = line.partition(":")
        if not sep:
            raise SipParseError(f"header line without colon: {line[:60]!r}")
        key, name = header_name(raw)
        value = value.strip()
        fields.append((key, name, value))
        index.setdefault(key, []).append(value)
    return Headers.from_fields(fields, index)


def _body(headers: Headers, body: bytes) -> bytes:
    """The body as Content-Length delimits it (RFC 3261 18.3, 20.14)."""
    length_text = headers.get("content-length")
    if length_text is None:
        return body
    if not is_number(length_text):
        raise SipParseError(f"malformed Content-Length {length_text!r}")
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        raise SipParseError("body too large", status=413)
    if length > len(body):
        raise SipParseError(f"Content-Length {length} exceeds the {len(body)} body bytes received")
    return body[:length]


def _check_request(request: Request) -> None:
    """What a request adds to 8.1.1, checked before any layer acts on it.

    CSeq names its method (8.1.1.5); Max-Forwards <= 255; no URI headers in the
    Request-URI (19.1.1, table 1); Date in the RFC 1123 form in GMT (20.17); Expires a
    delta-seconds below 2**32 (20.19); every Contact parses (20.10). A request failing one
    gets its 400 here rather than a challenge or a 200 further up (RFC 4475 3.1.2).
    """
    method = request.cseq.method
    if method != request.method:
        raise SipParseError(f"CSeq method {method} does not match {request.method}")
    by_name = request.headers.by_name()
    max_forwards = request.headers.get("max-forwards")
    if max_forwards is not None and not (is_number(max_forwards) and int(max_forwards) <= 255):
        raise SipParseError(f"malformed Max-Forwards {max_forwards!r}")
    uri = request.uri
    if type(uri) is SipUri and uri.headers is not None:
        raise SipParseError("URI headers are not allowed in a Request-URI")
    _check_optional(by_name)


def _check_optional(by_name: Mapping[str, list[str]]) -> None:
    """Date, Expires and Contact, when a request carries them (20.17, 20.19, 20.10)."""
    dates = by_name.get("date")
    if dates is not None and not all(_SIP_DATE.match(d) for d in dates):
        raise SipParseError("Date is not an RFC 1123 date in GMT")
    expires = by_name.get("expires")
    if expires is not None and not all(is_number(e) and int(e) < 2**32 for e in expires):
        raise SipParseError("malformed Expires")
    contacts = by_name.get("contact")
    if contacts is not None:
        for value in contacts:
            for item in split_list(value):
                parse_name_addr(item)


class StreamFramer:
    """Cuts a TCP byte stream into SIP messages by Content-Length (RFC 3261 18.3).

    Feed it bytes in any chunking; it returns each complete message. Leading CRLFs
    (keep-alives, RFC 5626 3.5.1) are skipped. A missing Content-Length on a stream is a
    :class:`SipParseError`, after which the connection must be closed.
    """

    __slots__ = ("_buf", "_scanned")

    def __init__(self) -> None:
        self._buf = bytearray()
        # Bytes already searched for the end of the header section: a peer dribbling a
        # large header a byte at a time must not cost a rescan of the whole buffer each time.
        self._scanned = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the complete messages now available."""
        self._buf += data
        out: list[bytes] = []
        while True:
            while self._buf[:2] == b"\r\n":
                del self._buf[:2]
                self._scanned = 0
            if not self._buf:
                return out
            end = self._buf.find(b"\r\n\r\n", self._scanned)
            if end < 0:
                self._scanned = max(0, len(self._buf) - 3)
                if len(self._buf) > MAX_HEADER_BYTES:
                    raise SipParseError("header section too large", status=413)
                return out
            head = bytes(self._buf[:end])
            length = _content_length(head)
            total = end + 4 + length
            if len(self._buf) < total:
                return out
            out.append(bytes(self._buf[:total]))
            del self._buf[:total]
            self._scanned = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete message."""
        return len(self._buf)


# Content-Length or its compact form l, in a header section not yet decoded (20.14)
_CL_LINE = re.compile(rb"\r?\n(?:content-length|l)[ \t]*:[ \t]*(\S*)", re.I)


def _content_length(head: bytes) -> int:
    """The Content-Length a stream message must carry (18.3)."""
    m = _CL_LINE.search(head)
    if m is None:
        raise SipParseError("missing Content-Length on a stream transport")
    if not m.group(1).isdigit():
        raise SipParseError(f"malformed Content-Length {m.group(1)[:20]!r}")
    length = int(m.group(1))
    if length > MAX_BODY_BYTES:
        raise SipParseError("body too large", status=413)
    return length
