"""SIP, SIPS and tel URIs and name-addr values (RFC 3261 section 19.1 and 25.1, RFC 3966).

Parsing keeps the escaped text of every part, so that serialising an unmodified URI gives
back what was received; :attr:`SipUri.user_unescaped` is what routing compares.

Parsed values are shared: the same From, To, Contact and Request-URI text comes back in
every message of a call, so short values are parsed once and memoised
(:class:`~gateway.model.memo.Memo`). URIs and name-addrs are therefore immutable, their
parameters included; their ``with_*`` methods return copies.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from urllib.parse import unquote

from gateway.model.memo import Memo
from gateway.sip.errors import SipParseError

# RFC 3261 25.1:
#   SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
#   userinfo = ( user / telephone-subscriber ) [ ":" password ] "@"
#   hostport = host [ ":" port ]; host = hostname / IPv4address / IPv6reference
# The user part may hold ";" (user-unreserved, and RFC 3966 "phone-context" parameters
# of a telephone-subscriber), so only "@" ends it; "?" does not, so that an unescaped
# "@" in a header part (Refer-To ...?Replaces=id@host) is not taken for userinfo.
_SIP_URI = re.compile(
    r"""
    (?P<scheme>sips?):
    (?:(?P<user>[^:@?]+)(?::(?P<password>[^@;?]*))?@)?
    (?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-]+)
    (?::(?P<port>[0-9]{1,5}))?
    (?P<params>(?:;[^?]*)?)
    (?:\?(?P<headers>.*))?
    \Z""",
    re.VERBOSE | re.IGNORECASE,
)
# The same with the user part of 25.1 to the letter, for a userinfo holding "?" or "/"
# (user-unreserved) that the lenient form above stops at. Tried second, so that a
# headers part with an unescaped "@" is still read as headers.
_SIP_URI_STRICT_USER = re.compile(
    r"""
    (?P<scheme>sips?):
    (?P<user>(?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|%[0-9A-Fa-f]{2})+)
    (?::(?P<password>(?:[A-Za-z0-9\-_.!~*'()&=+$,]|%[0-9A-Fa-f]{2})*))?@
    (?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-]+)
    (?::(?P<port>[0-9]{1,5}))?
    (?P<params>(?:;[^?]*)?)
    (?:\?(?P<headers>.*))?
    \Z""",
    re.VERBOSE | re.IGNORECASE,
)
# No URI holds white space or a control character (25.1): "sip:caf @host" is malformed,
# not a user "caf " (RFC 4475 3.1.2.14).
_NOT_IN_URI = re.compile(r"[\x00-\x20\x7f]")
# RFC 3966 3: telephone-uri = "tel:" telephone-subscriber
_TEL_URI = re.compile(r"tel:(?P<number>[0-9A-Fa-f*#+\-.()pPwW]+)(?P<params>(?:;.*)?)\Z", re.I)
# RFC 3986 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), e.g. "h323"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")


# Parameters of a URI or of a header value (;name=value, ;flag), in order.
Params = Mapping[str, str | None]
NO_PARAMS: Params = MappingProxyType({})


# The values below are init=False: their __init__ is written out so that mypyc compiles it
# (docs/architecture.md, "Compiled, optionally"; tests/model/test_written_out_inits.py).
class FrozenParams:
    """Base of the values whose ``params`` are made read-only when they are built.

    The memos hand the same parsed value to every caller that asks for the same text, so
    neither the value nor its parameters may change. The parsers pass read-only mappings
    they alone refer to; any other mapping is copied first (:func:`frozen_params`, which
    the subclasses' ``__init__`` calls).
    """

    __slots__ = ()
    params: Params


def frozen_params(params: Params) -> Params:
    """``params`` read-only: as it is when the parser made it, else a read-only copy.

    What the ``__init__`` of every :class:`FrozenParams` value stores as its ``params``.
    """
    if type(params) is MappingProxyType:
        return params
    return MappingProxyType(dict(params))


def _parse_params(text: str) -> Params:
    """Split ``;a=b;c`` into a read-only ordered mapping with lower-cased names."""
    if not text:
        return NO_PARAMS
    params: dict[str, str | None] = {}
    for item in text.split(";")[1:]:
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not name:
            raise SipParseError(f"empty URI parameter name in {text!r}")
        params[name] = value.strip() if sep else None
    return MappingProxyType(params)


def format_params(params: Params) -> str:
    """Serialise an ordered parameter mapping back to ``;a=b;c`` form."""
    if not params:
        return ""
    return "".join([f";{k}" if v is None else f";{k}={v}" for k, v in params.items()])


@dataclass(frozen=True, slots=True, init=False)
class SipUri(FrozenParams):
    """A ``sip:`` or ``sips:`` URI (RFC 3261 19.1.1); immutable, parameters included."""

    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)
    headers: str | None = None
    password: str | None = None

    def __init__(
        self,
        scheme: str,
        user: str | None,
        host: str,
        port: int | None = None,
        params: Params = NO_PARAMS,
        headers: str | None = None,
        password: str | None = None,
    ) -> None:
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "user", user)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "params", frozen_params(params))
        object.__setattr__(self, "headers", headers)
        object.__setattr__(self, "password", password)

    @property
    def user_unescaped(self) -> str | None:
        """The user part with %-escapes decoded (19.1.4 compares unescaped)."""
        return unquote(self.user) if self.user is not None else None

    @property
    def transport(self) -> str:
        """The ``transport`` parameter, lower case, ``udp`` when absent (19.1.1)."""
        value = self.params.get("transport")
        return value.lower() if value else "udp"

    def host_port(self, default_port: int = 5060) -> tuple[str, int]:
        """Host without IPv6 brackets and port (default 5060, 5061 for sips)."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        if self.port is not None:
            return host, self.port
        return host, 5061 if self.scheme == "sips" else default_port

    def with_params(self, **changes: str | None) -> SipUri:
        """A copy with URI parameters set (a value of ``None`` means a flag parameter)."""
        params = dict(self.params)
        params.update(changes)
        return replace(self, params=params)

    def without_params(self, *names: str) -> SipUri:
        """A copy without the named URI parameters."""
        return replace(self, params={k: v for k, v in self.params.items() if k not in names})

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(format_params(self.params))
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)


@dataclass(frozen=True, slots=True, init=False)
class TelUri(FrozenParams):
    """A ``tel:`` URI (RFC 3966), as ISDN gateways and some stations address E.164 numbers."""

    number: str
    params: Params = field(default_factory=dict)

    def __init__(self, number: str, params: Params = NO_PARAMS) -> None:
        object.__setattr__(self, "number", number)
        object.__setattr__(self, "params", frozen_params(params))

    @property
    def user_unescaped(self) -> str:
        """The number without visual separators, for routing."""
        return re.sub(r"[\-.()]", "", self.number)

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


Uri = SipUri | TelUri


def _parse_uri(text: str) -> Uri:
    """Parse a SIP, SIPS or tel URI; anything else is a :class:`SipParseError` (416 for schemes)."""
    text = text.strip()
    if _NOT_IN_URI.search(text):
        raise SipParseError(f"white space or control character in URI {text[:80]!r}")
    m = _SIP_URI.match(text) or _SIP_URI_STRICT_USER.match(text)
    if m is not None:
        port = m.group("port")
        if port is not None and not 0 < int(port) < 65536:
            raise SipParseError(f"port out of range in URI {text!r}")
        return SipUri(
            scheme=m.group("scheme").lower(),
            user=m.group("user"),
            password=m.group("password"),
            host=m.group("host").lower(),
            port=int(port) if port is not None else None,
            params=_parse_params(m.group("params")),
            headers=m.group("headers"),
        )
    t = _TEL_URI.match(text)
    if t is not None:
        return TelUri(number=t.group("number"), params=_parse_params(t.group("params")))
    scheme = text.partition(":")[0]
    if _SCHEME.match(scheme) and scheme.lower() not in ("sip", "sips", "tel"):
        raise SipParseError(f"unsupported URI scheme {scheme!r}", status=416)
    raise SipParseError(f"malformed URI {text!r}")


# The Request-URI and the Contact of a peer come back in every request of its calls.
URI_MEMO: Memo[Uri] = Memo(_parse_uri)
# parse_uri(text): a SIP, SIPS or tel URI (RFC 3261 19.1, RFC 3966), parsed once.
parse_uri = URI_MEMO.__getitem__


def parse_sip_uri(text: str) -> SipUri:
    """Parse a URI that must be ``sip:`` or ``sips:`` (Contact, Route, Via targets)."""
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise SipParseError(f"a SIP URI is required here, got {text!r}")
    return uri


@dataclass(frozen=True, slots=True, init=False)
class NameAddr(FrozenParams):
    """``[display-name] <URI> *(;param)`` as in From, To, Contact, Route (RFC 3261 20.10).

    Immutable, parameters included: a parsed value is shared by every message with the
    same text.
    """

    uri: Uri
    display: str | None = None
    params: Params = field(default_factory=dict)
    wildcard: bool = False  # Contact: * (RFC 3261 10.2.2)

    def __init__(
        self,
        uri: Uri,
        display: str | None = None,
        params: Params = NO_PARAMS,
        wildcard: bool = False,
    ) -> None:
        object.__setattr__(self, "uri", uri)
        object.__setattr__(self, "display", display)
        object.__setattr__(self, "params", frozen_params(params))
        object.__setattr__(self, "wildcard", wildcard)

    @property
    def tag(self) -> str | None:
        """The ``tag`` header parameter of From and To (19.3)."""
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        """A copy with the ``tag`` parameter set."""
        params = dict(self.params)
        params["tag"] = tag
        return replace(self, params=params)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        display = f"{self.display} " if self.display else ""
        return f"{display}<{self.uri}>{format_params(self.params)}"


def _split_params_outside_quotes(text: str) -> tuple[str, str]:
    """Split ``value;params`` at the first ``;`` that is not inside quotes."""
    quoted = False
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            return text[:i], text[i:]
    return text, ""


# Everything up to the first "<" outside a quoted-string (RFC 3261 25.1: inside quotes a
# backslash escapes the next character; outside, it is an ordinary one).
_BEFORE_LT = re.compile(r'(?:[^"<]|"(?:[^"\\]|\\.)*")*<', re.S)


def _find_lt_outside_quotes(text: str) -> int:
    """Index of the first "<" outside a quoted-string (a display name may hold one), or -1."""
    m = _BEFORE_LT.match(text)
    return m.end() - 1 if m is not None else -1


# display-name = *(token LWS) / quoted-string (RFC 3261 25.1)
_QUOTED_STRING = re.compile(r'"(?:[^"\\]|\\.)*"\Z', re.S)
_TOKENS = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+(?:[ \t]+[A-Za-z0-9\-.!%*_+`'~]+)*\Z")


def _parse_addr_head(head: str) -> tuple[Uri, str | None]:
    """The URI and display name of ``[display-name] <URI>`` (RFC 3261 20.10, 25.1).

    The display name is one quoted-string or tokens: "Mairie@Lessay" unquoted is not
    one (RFC 4475 3.1.2.15).
    """
    lt = head.find("<") if '"' not in head else _find_lt_outside_quotes(head)
    display = head[:lt].strip() or None
    if display is not None:
        if display.startswith('"'):
            if not _QUOTED_STRING.match(display):
                raise SipParseError(f"malformed quoted display name in {head!r}")
        elif not _TOKENS.match(display):
            raise SipParseError(f"display name neither tokens nor quoted in {head!r}")
    return parse_uri(head[lt + 1 : -1]), display


# Display name and URI come back alike in every call of a peer while the tag differs:
# the part of a name-addr up to its ">" is kept by text on its own.
ADDR_HEAD_MEMO: Memo[tuple[Uri, str | None]] = Memo(_parse_addr_head)
_addr_head = ADDR_HEAD_MEMO.__getitem__


def _parse_name_addr(text: str) -> NameAddr:
    """Parse a name-addr or addr-spec with header parameters (RFC 3261 20.10, 20.20, 20.39).

    Without angle brackets, every ``;param`` after the URI is a header parameter.
    """
    text = text.strip()
    if text == "*":
        return NameAddr(uri=SipUri("sip", None, "*"), wildcard=True)
    # Most values carry no quoted display name: a plain find is then exact and cheap.
    lt = text.find("<") if '"' not in text else _find_lt_outside_quotes(text)
    if lt >= 0:
        gt = text.find(">", lt)
        if gt < 0:
            raise SipParseError(f"unterminated '<' in {text!r}")
        uri, display = _addr_head(text[: gt + 1])
        rest = text[gt + 1 :].strip()
        params = _parse_params(rest)
        if rest and not rest.startswith(";"):
            raise SipParseError(f"junk after '>' in {text!r}")
        return NameAddr(uri, display, params)
    if text.startswith('"'):
        raise SipParseError(f"quoted display name without a <URI> in {text!r}")
    addr, params_text = _split_params_outside_quotes(text)
    if "?" in addr:
        # Unbracketed, ";" starts header parameters and "?" has no meaning: a URI with
        # headers must be in angle brackets (RFC 3261 20, 20.10; RFC 4475 3.1.2.13).
        raise SipParseError(f"URI with headers outside angle brackets in {text!r}")
    return NameAddr(uri=parse_uri(addr), params=_parse_params(params_text))


# From, To and Contact values: the same in every message of a dialog.
NAME_ADDR_MEMO: Memo[NameAddr] = Memo(_parse_name_addr)
# parse_name_addr(text): a name-addr or addr-spec with its header parameters (RFC 3261
# 20.10), parsed once.
parse_name_addr = NAME_ADDR_MEMO.__getitem__
