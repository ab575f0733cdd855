"""SIP messages on bytes: parsing, serialisation, stream framing (RFC 3261 7, 18, 20, 25).

The parser splits the start line and the header fields once and keeps the raw values;
the few headers every layer needs (Via, From, To, Call-ID, CSeq) are parsed on first
access and cached, the others only when someone asks for them. Everything that is not
SIP raises :class:`~gateway.sip.errors.SipParseError` and nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from gateway.sip.errors import SipParseError, SipUsageError
from gateway.sip.uri import (
    NAME_ADDR_MEMO,
    URI_MEMO,
    Memo,
    NameAddr,
    Uri,
    format_params,
    parse_name_addr,
)

# RFC 3261 7.3.3 and the IANA registry: compact forms of header names.
COMPACT_FORMS = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "x": "session-expires",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "y": "identity",
}

# Headers whose values are comma-separated lists that may be combined on one line
# (RFC 3261 7.3.1). Authorization and friends are not: their commas separate parameters.
LIST_HEADERS = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "in-reply-to",
        "reason",
    }
)

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024

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

# RFC 3261 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# Request-Line = Method SP Request-URI SP SIP-Version CRLF
_REQUEST_LINE = re.compile(r"([A-Za-z0-9\-.!%*_+`'~]+) (\S+) (SIP/\d+\.\d+)\Z")
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
_STATUS_LINE = re.compile(r"(SIP/\d+\.\d+) ([1-6]\d\d)(?: (.*))?\Z")
# header-name: lws-tolerant colon (7.3.1)
_FOLD = re.compile(r"\r?\n[ \t]+")
# Via: sent-protocol LWS sent-by *( SEMI via-params ) (20.42)
_VIA = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*(?P<transport>[A-Za-z0-9\-]+)\s+"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-]+)(?:\s*:\s*(?P<port>\d{1,5}))?"
    r"(?P<params>\s*(?:;.*)?)\Z",
    re.I,
)


def _is_number(text: str) -> bool:
    """ASCII digits only: str.isdigit() also accepts "²" and other digits int() refuses."""
    return text.isascii() and text.isdigit()


_CANONICAL: dict[str, str] = {}
# Header names as received (spaces before the colon included) already checked against the
# token rule: the canonical key and the name as it is kept.
_VALID_NAMES: dict[str, tuple[str, str]] = {}


def canonical_name(name: str) -> str:
    """Lower-case header name with compact forms expanded (7.3.3)."""
    known = _CANONICAL.get(name)
    if known is not None:
        return known
    lname = name.lower()
    canon = COMPACT_FORMS.get(lname, lname)
    if len(_CANONICAL) < 4096:  # the names in use are few; never let a peer grow it unbounded
        _CANONICAL[name] = canon
    return canon


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value outside quotes and angle brackets (7.3.1)."""
    if "," not in value:
        return [value.strip()] if value.strip() else []
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            item = value[start:i].strip()
            if item:
                out.append(item)
            start = i + 1
        i += 1
    item = value[start:].strip()
    if item:
        out.append(item)
    return out


@dataclass(frozen=True, slots=True)
class Via:
    """One Via header value (RFC 3261 20.42, rport from RFC 3581)."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        """The branch parameter that names the transaction (17.2.3)."""
        return self.params.get("branch")

    @property
    def rport_requested(self) -> bool:
        """The client asked for symmetric response routing (RFC 3581 section 4)."""
        return "rport" in self.params

    def response_address(self, default_port: int = 5060) -> tuple[str, int]:
        """Where responses go (18.2.2, RFC 3581 section 4): received/rport over sent-by."""
        host = self.params.get("received") or self.host
        rport = self.params.get("rport")
        port = int(rport) if rport else (self.port or default_port)
        return host.strip("[]"), port

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value; malformed values are a :class:`SipParseError`.

        Memoised: the Via of each request the gateway sends comes back in every response
        to it. Treat the result as immutable (:meth:`with_params` copies).
        """
        return VIA_MEMO(text)

    @classmethod
    def _parse(cls, text: str) -> Via:
        # sent-protocol and sent-by come back the same from each peer, the parameters
        # (the branch at least) differ: the part before the first ";" is kept by text.
        sent, sep, rest = text.partition(";")
        if "\n" in rest:  # as the whole-value pattern did: its ".*" stops at a line feed
            raise SipParseError(f"malformed Via {text!r}")
        head = _VIA_SENT.get(sent) or _parse_via_sent(sent, text)
        params: dict[str, str | None] = {}
        if sep:
            for item in rest.split(";"):
                name, sep, value = item.partition("=")
                name = name.strip().lower()
                if not name:
                    raise SipParseError(f"empty Via parameter in {text!r}")
                params[name] = value.strip() if sep else None
        rport = params.get("rport")
        if rport and not (_is_number(rport) and 0 < int(rport) < 65536):
            # response_address() trusts it: refuse it here, where a 400 can be sent
            raise SipParseError(f"malformed Via rport in {text!r}")
        return cls(head[0], head[1], head[2], params)

    def with_params(self, **changes: str | None) -> Via:
        """A copy with parameters set or replaced."""
        params = dict(self.params)
        params.update(changes)
        return Via(self.transport, self.host, self.port, params)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


# sent-protocol and sent-by of Via values already parsed: (transport, host, port).
_VIA_SENT: dict[str, tuple[str, str, int | None]] = {}


def _parse_via_sent(sent: str, text: str) -> tuple[str, str, int | None]:
    """``SIP/2.0/transport host[:port]`` of a Via value (RFC 3261 20.42, 25.1)."""
    m = _VIA.match(sent)
    if m is None:
        raise SipParseError(f"malformed Via {text!r}")
    port = m.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise SipParseError(f"Via port out of range in {text!r}")
    head = (m.group("transport").upper(), m.group("host").lower(), int(port) if port else None)
    if len(_VIA_SENT) >= 1024:
        _VIA_SENT.clear()
    _VIA_SENT[sent] = head
    return head


def _parse_cseq_value(value: str) -> CSeq:
    """``CSeq: 1*DIGIT LWS Method`` (RFC 3261 20.16)."""
    num, _, method = value.strip().partition(" ")
    method = method.strip()
    if not _is_number(num) or len(num) > 10 or not _TOKEN.match(method):
        raise SipParseError(f"malformed CSeq {value!r}")
    if int(num) >= 2**31:
        raise SipParseError(f"CSeq number out of range {value!r}")
    return CSeq(int(num), method.upper())


# "1 INVITE", "2 BYE": the same few values in every call.
CSEQ_MEMO: Memo[CSeq] = Memo(_parse_cseq_value, max_len=64, size=1024)
# The gateway seeds it with the Via of each request it sends (SipEndpoint.via_for): the
# transaction layer reads that Via back, and so does every response to the request.
VIA_MEMO: Memo[Via] = Memo(Via._parse)


@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq: sequence number and method (RFC 3261 20.16)."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


class Headers:
    """Ordered header fields keeping their received names; lookups by canonical name.

    Lookups go through an index built on first use and dropped by any change, so the
    dozens of reads a message gets on its way through the stack cost a dict access each.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        known = _CANONICAL.get  # a dict lookup per name; the call only for a new spelling
        self._items: list[tuple[str, str, str]] = [
            (known(n) or canonical_name(n), n, v) for n, v in items
        ]
        self._index: dict[str, list[str]] | None = None

    @classmethod
    def _adopt(
        cls, items: list[tuple[str, str, str]], index: dict[str, list[str]] | None = None
    ) -> Headers:
        """Headers around (canonical name, name, value) items built by the caller."""
        h = cls()  # the normal constructor: what mypyc (scripts/build-core) can compile
        h._items = items
        h._index = index
        return h

    def _build_index(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for k, _, v in self._items:
            values = index.get(k)
            if values is None:
                index[k] = [v]
            else:
                values.append(v)
        self._index = index
        return index

    def get(self, name: str) -> str | None:
        """The first value of a header, or ``None``."""
        index = self._index if self._index is not None else self._build_index()
        # The stack asks by canonical name; only another spelling needs canonical_name.
        values = index.get(name)
        if values is None and _CANONICAL.get(name) != name:
            values = index.get(canonical_name(name))
        return values[0] if values else None

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, comma lists split for list headers (7.3.1)."""
        index = self._index if self._index is not None else self._build_index()
        key = name
        values = index.get(key)
        if values is None and _CANONICAL.get(name) != name:
            key = canonical_name(name)
            values = index.get(key)
        if not values:
            return []
        if key in LIST_HEADERS:
            return [item for v in values for item in split_list(v)]
        return list(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> None:
        """Append a header field."""
        self._items.append((canonical_name(name), name, value))
        self._index = None

    def prepend(self, name: str, value: str) -> None:
        """Insert a header field before all others (Via on the way out, 18.1.1)."""
        self._items.insert(0, (canonical_name(name), name, value))
        self._index = None

    def set(self, name: str, value: str) -> None:
        """Replace every field of this name by one, at the place of the first."""
        key = canonical_name(name)
        self._index = None
        for i, (k, _, _) in enumerate(self._items):
            if k == key:
                self._items[i] = (key, name, value)
                self._items = [it for j, it in enumerate(self._items) if j <= i or it[0] != key]
                return
        self._items.append((key, name, value))

    def remove(self, name: str) -> None:
        """Remove every field of this name."""
        key = canonical_name(name)
        self._items = [it for it in self._items if it[0] != key]
        self._index = None

    def starting_with(self, prefix: str) -> list[tuple[str, str, str]]:
        """(canonical name, name as received, value) of the fields whose canonical name
        starts with ``prefix`` (lower case), in order."""
        return [item for item in self._items if item[0].startswith(prefix)]

    def items(self) -> Iterator[tuple[str, str]]:
        """(name as received, value) pairs in order."""
        for _, n, v in self._items:
            yield n, v

    def copy(self) -> Headers:
        """A shallow copy (values are immutable strings)."""
        return Headers._adopt(list(self._items))

    def insert(self, position: int, name: str, value: str) -> None:
        """Insert a header field at a position among all fields."""
        self._items.insert(position, (canonical_name(name), name, value))
        self._index = None

    def __len__(self) -> int:
        return len(self._items)


class Message:
    """Common part of requests and responses; the lazily parsed headers live here.

    Each parsed header has its own slot (``None`` until first asked for): the stack reads
    Call-ID, CSeq, Via, From and To dozens of times per call.
    """

    __slots__ = ("_call_id", "_cseq", "_from", "_to", "_vias", "body", "headers")

    def __init__(self, headers: Headers, body: bytes) -> None:
        self.headers = headers
        self.body = body
        self._vias: list[Via] | None = None
        self._call_id: str | None = None
        self._cseq: CSeq | None = None
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None

    # -- lazily parsed headers (RFC 3261 8.1.1) ---------------------------------
    @property
    def vias(self) -> list[Via]:
        """All Via values, topmost first."""
        cached = self._vias
        if cached is None:
            cached = self._vias = [VIA_MEMO(v) for v in self.headers.get_all("via")]
        return cached

    @property
    def top_via(self) -> Via:
        """The topmost Via; a message without one is malformed."""
        vias = self.vias
        if not vias:
            raise SipParseError("missing Via")
        return vias[0]

    def set_top_via(self, via: Via) -> None:
        """Replace the topmost Via value (received/rport stamping, 18.2.1)."""
        values = self.headers.get_all("via")
        values[0] = str(via)
        self.headers.remove("via")
        for i, v in enumerate(values):
            self.headers.insert(i, "Via", v)
        self._vias = None

    @property
    def call_id(self) -> str:
        """The Call-ID (20.8)."""
        cached = self._call_id
        if cached is None:
            value = self.headers.get("call-id")
            if not value:
                raise SipParseError("missing Call-ID")
            cached = self._call_id = value.strip()
        return cached

    @property
    def cseq(self) -> CSeq:
        """The parsed CSeq (20.16)."""
        cached = self._cseq
        if cached is None:
            value = self.headers.get("cseq")
            if value is None:
                raise SipParseError("missing CSeq")
            cached = self._cseq = CSEQ_MEMO(value)
        return cached

    def _name_addr(self, key: str) -> NameAddr:
        value = self.headers.get(key)
        if value is None:
            raise SipParseError(f"missing {key.title()}")
        return parse_name_addr(value)

    @property
    def from_(self) -> NameAddr:
        """The From header (20.20)."""
        cached = self._from
        if cached is None:
            cached = self._from = self._name_addr("from")
        return cached

    @property
    def to(self) -> NameAddr:
        """The To header (20.39)."""
        cached = self._to
        if cached is None:
            cached = self._to = self._name_addr("to")
        return cached

    @property
    def contacts(self) -> list[NameAddr]:
        """Contact values (20.10)."""
        return [parse_name_addr(v) for v in self.headers.get_all("contact")]

    @property
    def content_type(self) -> str | None:
        """The media type of the body, lower case, without parameters."""
        value = self.headers.get("content-type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def _serialize(self, start_line: str) -> bytes:
        body = self.body
        fields = "".join(
            [f"{n}: {v}\r\n" for k, n, v in self.headers._items if k != "content-length"]
        )
        return f"{start_line}\r\n{fields}Content-Length: {len(body)}\r\n\r\n".encode() + body


class Request(Message):
    """A SIP request (RFC 3261 7.1)."""

    __slots__ = ("_uri", "method", "uri_text")

    def __init__(
        self,
        method: str,
        uri: Uri | str,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        # Message.__init__ inline (a super() call per message is measurable here).
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._vias = self._call_id = self._cseq = self._from = self._to = None
        self.method = method
        self.uri_text = str(uri)
        self._uri: Uri | None = None if isinstance(uri, str) else uri

    @property
    def uri(self) -> Uri:
        """The parsed Request-URI."""
        cached = self._uri
        if cached is None:
            text = self.uri_text
            cached = self._uri = URI_MEMO.get(text) or URI_MEMO.parse(text)
        return cached

    def serialize(self) -> bytes:
        """The message on the wire, Content-Length computed from the body."""
        return self._serialize(f"{self.method} {self.uri_text} SIP/2.0")

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri_text}>"


class Response(Message):
    """A SIP response (RFC 3261 7.2)."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        # Message.__init__ inline, as in Request.
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._vias = self._call_id = self._cseq = self._from = self._to = None
        if not 100 <= status <= 699:
            raise SipUsageError(f"status {status} out of range")
        self.status = status
        self.reason = reason if reason is not None else REASON_PHRASES.get(status, "Unknown")

    def serialize(self) -> bytes:
        """The message on the wire, Content-Length computed from the body."""
        return self._serialize(f"SIP/2.0 {self.status} {self.reason}")

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _check_header_name(raw: str) -> tuple[str, str]:
    """A header name as received, checked against the token rule (RFC 3261 7.3.1, 25.1)."""
    name = raw.strip()
    if not _TOKEN.match(name):
        raise SipParseError(f"invalid header name {name[:40]!r}")
    known = (canonical_name(name), name)
    if len(_VALID_NAMES) < 4096:
        _VALID_NAMES[raw] = known
    return known


def _split_head(data: bytes) -> tuple[bytes, bytes]:
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
    head_bytes, body = _split_head(data.lstrip(b"\r\n"))
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
    items: list[tuple[str, str, str]] = []
    index: dict[str, list[str]] = {}
    add_item = items.append
    valid = _VALID_NAMES.get
    slot = index.setdefault
    for line in lines[1:]:
        raw, sep, value = line.partition(":")
        if not sep:
            raise SipParseError(f"header line without colon: {line[:60]!r}")
        known = valid(raw)
        if known is None:
            known = _check_header_name(raw)
        value = value.strip()
        add_item((known[0], known[1], value))
        slot(known[0], []).append(value)
    headers = Headers._adopt(items, index)

    length_text = headers.get("content-length")
    if length_text is not None:
        if not _is_number(length_text):
            raise SipParseError(f"malformed Content-Length {length_text!r}")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise SipParseError("body too large", status=413)
        if length > len(body):
            raise SipParseError(
                f"Content-Length {length} exceeds the {len(body)} body bytes received"
            )
        body = body[:length]

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
    _check_mandatory(msg, index)
    return msg


def _check_mandatory(msg: Request | Response, index: dict[str, list[str]]) -> None:
    """RFC 3261 8.1.1: To, From, CSeq, Call-ID, Via in every message; parse them now.

    Straight from the parser's index into the message's slots: the same checks as the
    lazy properties, without a property and a lookup call per header.
    """
    values = index.get("call-id")
    if not values or not values[0]:
        raise SipParseError("missing Call-ID")
    msg._call_id = values[0]
    values = index.get("cseq")
    if values is None:
        raise SipParseError("missing CSeq")
    text = values[0]
    cseq = msg._cseq = CSEQ_MEMO.get(text) or CSEQ_MEMO.parse(text)
    values = index.get("via")
    if not values:
        raise SipParseError("missing Via")
    via = VIA_MEMO.get
    vias = msg._vias = [via(item) or VIA_MEMO.parse(item) for v in values for item in split_list(v)]
    if not vias:
        raise SipParseError("missing Via")
    values = index.get("from")
    if values is None:
        raise SipParseError("missing From")
    text = values[0]
    msg._from = NAME_ADDR_MEMO.get(text) or NAME_ADDR_MEMO.parse(text)
    values = index.get("to")
    if values is None:
        raise SipParseError("missing To")
    text = values[0]
    msg._to = NAME_ADDR_MEMO.get(text) or NAME_ADDR_MEMO.parse(text)
    if isinstance(msg, Request):
        if cseq.method != msg.method:
            raise SipParseError(f"CSeq method {cseq.method} does not match {msg.method}")
        values = index.get("max-forwards")
        if values is not None:
            mf = values[0]
            if not _is_number(mf) or int(mf) > 255:
                raise SipParseError(f"malformed Max-Forwards {mf!r}")


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


_CL_LINE = re.compile(rb"\r?\n(?:content-length|l)[ \t]*:[ \t]*(\S*)", re.I)


def _content_length(head: bytes) -> int:
    m = _CL_LINE.search(head)
    if m is None:
        raise SipParseError("missing Content-Length on a stream transport")
    if not m.group(1).isdigit():
        raise SipParseError(f"malformed Content-Length {m.group(1)[:20]!r}")
    length = int(m.group(1))
    if length > MAX_BODY_BYTES:
        raise SipParseError("body too large", status=413)
    return length


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
    # (canonical name, name, value) straight away: these names need no canonical_name.
    items = [("via", "Via", v) for v in rh.get_all("via")]
    items.append(("from", "From", rh.get("from") or ""))
    to_value = rh.get("to") or ""
    if to_tag is not None and status != 100 and request.to.tag is None:
        to_value = f"{to_value};tag={to_tag}"
    items.append(("to", "To", to_value))
    items.append(("call-id", "Call-ID", request.call_id))
    cseq = request.cseq
    items.append(("cseq", "CSeq", f"{cseq.seq} {cseq.method}"))
    if extra:
        known = _CANONICAL.get
        items += [(known(n) or canonical_name(n), n, v) for n, v in extra]
    return Response(status, reason, Headers._adopt(items), body)


_SALVAGE = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*(.*?)\r?$", re.I | re.M)


def salvage_error_response(data: bytes, status: int, reason: str) -> bytes | None:
    """Best-effort error response to a request that failed to parse (RFC 3261 21.4.1).

    Copies the raw Via, From, To, Call-ID and CSeq lines when all are present; returns
    ``None`` when the input is a response or too broken to answer (then it is dropped).
    """
    if data.lstrip().startswith(b"SIP/"):
        return None
    head, _ = _split_head(data[:MAX_HEADER_BYTES].lstrip(b"\r\n"))
    found: dict[str, list[bytes]] = {}
    for m in _SALVAGE.finditer(head):
        key = canonical_name(m.group(1).decode("ascii"))
        found.setdefault(key, []).append(m.group(2))
    if any(k not in found for k in ("via", "from", "to", "call-id", "cseq")):
        return None
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
