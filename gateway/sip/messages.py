"""SIP requests and responses (RFC 3261 section 7), built or parsed.

A message holds its start line, its :class:`~gateway.sip.headers.Headers` and its body.
The headers every message carries (RFC 3261 8.1.1: Via, From, To, Call-ID, CSeq) and a
request's Request-URI are parsed once and kept in a slot each, since the stack reads them
dozens of times per call. ``parse_message`` has them parsed as soon as it has built a
message (:meth:`Message.check_mandatory`), so that a received message missing one is
refused there; in a message the gateway builds, each is parsed the first time it is read.
"""

from __future__ import annotations

from gateway.sip.errors import SipParseError, SipUsageError
from gateway.sip.fields import CSeq, Via, parse_cseq, parse_via
from gateway.sip.headers import Headers, split_list
from gateway.sip.uri import NameAddr, Uri, parse_name_addr, parse_uri

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


class Message:
    """Common part of requests and responses: headers, body and the parsed headers."""

    __slots__ = ("_call_id", "_cseq", "_from", "_to", "_vias", "body", "headers")

    def __init__(self, headers: Headers | None, body: bytes) -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        # Parsed once, when first read or by check_mandatory (see the module docstring).
        self._vias: list[Via] | None = None
        self._call_id: str | None = None
        self._cseq: CSeq | None = None
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None

    # -- the headers of RFC 3261 8.1.1 ----------------------------------------------------
    # Each is parsed by one function below, from its values as received. A property parses
    # its header on first access; check_mandatory parses all five in one go.

    @property
    def vias(self) -> list[Via]:
        """All Via values, topmost first (20.42)."""
        if self._vias is None:
            self._vias = _vias(self.headers.by_name().get("via"))
        return self._vias

    @property
    def top_via(self) -> Via:
        """The topmost Via; a :class:`SipParseError` when the message has none."""
        vias = self.vias
        if not vias:
            raise SipParseError("missing Via")
        return vias[0]

    @property
    def call_id(self) -> str:
        """The Call-ID (20.8); a :class:`SipParseError` when missing or empty."""
        if self._call_id is None:
            self._call_id = _call_id(self.headers.by_name().get("call-id"))
        return self._call_id

    @property
    def cseq(self) -> CSeq:
        """The CSeq (20.16); a :class:`SipParseError` when missing or malformed."""
        if self._cseq is None:
            self._cseq = _cseq(self.headers.by_name().get("cseq"))
        return self._cseq

    @property
    def from_(self) -> NameAddr:
        """The From header (20.20); a :class:`SipParseError` when missing or malformed."""
        if self._from is None:
            self._from = _name_addr(self.headers.by_name().get("from"), "From")
        return self._from

    @property
    def to(self) -> NameAddr:
        """The To header (20.39); a :class:`SipParseError` when missing or malformed."""
        if self._to is None:
            self._to = _name_addr(self.headers.by_name().get("to"), "To")
        return self._to

    def check_mandatory(self) -> None:
        """Parse Call-ID, CSeq, Via, From and To now (RFC 3261 8.1.1).

        A :class:`SipParseError` names the first one missing or malformed, in that order.
        """
        by_name = self.headers.by_name()
        self._call_id = _call_id(by_name.get("call-id"))
        self._cseq = _cseq(by_name.get("cseq"))
        self._vias = _vias(by_name.get("via"))
        if not self._vias:
            raise SipParseError("missing Via")
        self._from = _name_addr(by_name.get("from"), "From")
        self._to = _name_addr(by_name.get("to"), "To")

    def set_top_via(self, via: Via) -> None:
        """Replace the topmost Via value (received/rport stamping, 18.2.1)."""
        values = self.headers.get_all("via")
        values[0] = str(via)
        self.headers.remove("via")
        for i, v in enumerate(values):
            self.headers.insert(i, "Via", v)
        self._vias = None

    # -- headers parsed on each access ---------------------------------------------------
    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values (20.10)."""
        return [parse_name_addr(v) for v in self.headers.get_all("contact")]

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower case, without parameters (20.15)."""
        value = self.headers.get("content-type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def _serialize(self, start_line: str) -> bytes:
        """The message on the wire with its own Content-Length (7, 18.3, 20.14)."""
        body = self.body
        fields = self.headers.serialize()
        return f"{start_line}\r\n{fields}Content-Length: {len(body)}\r\n\r\n".encode() + body


# -- each header of RFC 3261 8.1.1 from its values, one per field line ---------------------


def _call_id(values: list[str] | None) -> str:
    """Call-ID (20.8): missing or empty, the message is malformed."""
    if not values or not values[0]:
        raise SipParseError("missing Call-ID")
    return values[0].strip()


def _cseq(values: list[str] | None) -> CSeq:
    """CSeq (20.16), the first one."""
    if values is None:
        raise SipParseError("missing CSeq")
    return parse_cseq(values[0])


def _vias(values: list[str] | None) -> list[Via]:
    """Every Via value, comma lists split (7.3.1, 20.42); an empty list when none."""
    if values is None:
        return []
    return [parse_via(item) for value in values for item in split_list(value)]


def _name_addr(values: list[str] | None, name: str) -> NameAddr:
    """From (20.20) or To (20.39), the first one."""
    if values is None:
        raise SipParseError(f"missing {name}")
    return parse_name_addr(values[0])


class Request(Message):
    """A SIP request (RFC 3261 7.1); the Request-URI is parsed on first access."""

    __slots__ = ("_uri", "method", "uri_text")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri_text = str(uri)
        self._uri: Uri | None = None if isinstance(uri, str) else uri

    @property
    def uri(self) -> Uri:
        """The parsed Request-URI (7.1, 19.1); a :class:`SipParseError` when malformed."""
        if self._uri is None:
            self._uri = parse_uri(self.uri_text)
        return self._uri

    def serialize(self) -> bytes:
        """The message on the wire, Content-Length computed from the body."""
        return self._serialize(f"{self.method} {self.uri_text} SIP/2.0")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text}>"


class Response(Message):
    """A SIP response (RFC 3261 7.2); the reason phrase defaults to the usual one (21)."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        if not 100 <= status <= 699:
            raise SipUsageError(f"status {status} out of range")
        super().__init__(headers, body)
        self.status = status
        self.reason = reason if reason is not None else REASON_PHRASES.get(status, "Unknown")

    def serialize(self) -> bytes:
        """The message on the wire, Content-Length computed from the body."""
        return self._serialize(f"SIP/2.0 {self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"
