"""The parsed values of Via and CSeq, two of the headers every message carries.

RFC 3261 8.1.1 makes To, From, CSeq, Call-ID, Max-Forwards and Via mandatory in a
request; To and From are name-addrs (``gateway.sip.uri``), Call-ID is kept as text. A
Via comes back in every response to the request that carried it, a CSeq value in every
message of a transaction: both are memoised (:class:`~gateway.model.memo.Memo`), so the
values are immutable.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from types import MappingProxyType

from gateway.model.memo import Memo
from gateway.sip.errors import SipParseError
from gateway.sip.headers import TOKEN, is_number
from gateway.sip.uri import NO_PARAMS, FrozenParams, Params, format_params, frozen_params

# Via: sent-protocol LWS sent-by *( SEMI via-params ) (RFC 3261 20.42, 25.1)
_VIA_SENT = re.compile(
    r"\s*SIP\s*/\s*2\.0\s*/\s*(?P<transport>[A-Za-z0-9\-]+)\s+"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._\-]+)(?:\s*:\s*(?P<port>\d{1,5}))?\s*\Z",
    re.I,
)


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(frozen=True, slots=True, init=False)
class Via(FrozenParams):
    """One Via header value (RFC 3261 20.42, rport from RFC 3581).

    Immutable, parameters included: a parsed Via is shared by every message that
    carries the same text.
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    def __init__(
        self, transport: str, host: str, port: int | None = None, params: Params = NO_PARAMS
    ) -> None:
        object.__setattr__(self, "transport", transport)
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "params", frozen_params(params))

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

    def stamped(self, source: tuple[str, int]) -> Via:
        """This Via as the server transport leaves it for the source it came from.

        RFC 3261 18.2.1: ``received`` with the source address when the sent-by host is a
        name or another address; RFC 3581 4: ``received`` always and an empty ``rport``
        filled with the source port when the client asked for rport. ``self`` when
        nothing changes (the usual case on a LAN without rport).
        """
        host, port = source
        rport = self.params.get("rport", "")
        wants_rport = rport is None  # present and empty: the client asks (RFC 3581 3)
        if "rport" not in self.params and _same_address(self.host, host):
            return self
        if wants_rport:
            return self.with_params(received=host, rport=str(port))
        if self.params.get("received") == host:
            return self
        return self.with_params(received=host)

    @staticmethod
    def parse(text: str) -> Via:
        """Parse one Via value (20.42); malformed values are a :class:`SipParseError`.

        Memoised: the Via of each request the gateway sends comes back in every response
        to it.
        """
        return parse_via(text)

    def with_params(self, **changes: str | None) -> Via:
        """A copy with parameters set or replaced."""
        params = dict(self.params)
        params.update(changes)
        return Via(self.transport, self.host, self.port, params)

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{format_params(self.params)}"


def _same_address(sent_by: str, source: str) -> bool:
    """Whether a Via sent-by host is the IP address a packet came from (18.2.1).

    A host name never is (the server must say which address it saw); IPv6 literals are
    compared as addresses, brackets and spelling aside.
    """
    if sent_by == source:
        return True
    try:
        return ipaddress.ip_address(sent_by.strip("[]")) == ipaddress.ip_address(source)
    except ValueError:
        return False


def _parse_via_sent(sent: str) -> tuple[str, str, int | None]:
    """``SIP/2.0/transport host[:port]``, the part of a Via before its parameters."""
    m = _VIA_SENT.match(sent)
    if m is None:
        raise SipParseError("malformed Via sent-by")
    port = m.group("port")
    if port is not None and not 0 < int(port) < 65536:
        raise SipParseError("Via port out of range")
    return m.group("transport").upper(), m.group("host").lower(), int(port) if port else None


# The sent-protocol and sent-by come back the same from each peer while the parameters
# (the branch at least) differ: that part is kept by text on its own.
VIA_SENT_MEMO: Memo[tuple[str, str, int | None]] = Memo(_parse_via_sent)
_via_sent = VIA_SENT_MEMO.__getitem__


def _parse_via(text: str) -> Via:
    """A Via value, parsed cold (RFC 3261 20.42, 25.1)."""
    sent, sep, rest = text.partition(";")
    if "\n" in rest:  # a bare line feed would end the header on the next hop
        raise SipParseError(f"malformed Via {text!r}")
    try:
        transport, host, port = _via_sent(sent)
    except SipParseError as exc:
        raise SipParseError(f"{exc.reason} in {text!r}") from None
    params: dict[str, str | None] = {}
    if sep:
        for item in rest.split(";"):
            name, eq, value = item.partition("=")
            name = name.strip().lower()
            if not name:
                raise SipParseError(f"empty Via parameter in {text!r}")
            params[name] = value.strip() if eq else None
    rport = params.get("rport")
    if rport and not (is_number(rport) and 0 < int(rport) < 65536):
        # response_address() trusts it: refuse it here, where a 400 can be sent
        raise SipParseError(f"malformed Via rport in {text!r}")
    return Via(transport, host, port, MappingProxyType(params))


# The endpoint seeds it with the Via of each request it sends (SipEndpoint.via_for): the
# transaction layer reads that Via back, and so does every response to the request.
VIA_MEMO: Memo[Via] = Memo(_parse_via)
# parse_via(text): one Via value, parsed once (RFC 3261 20.42).
parse_via = VIA_MEMO.__getitem__


@dataclass(frozen=True, slots=True, init=False)
class CSeq:
    """CSeq: sequence number and method (RFC 3261 20.16)."""

    seq: int
    method: str

    def __init__(self, seq: int, method: str) -> None:
        object.__setattr__(self, "seq", seq)
        object.__setattr__(self, "method", method)

    @staticmethod
    def parse(text: str) -> CSeq:
        """Parse ``1*DIGIT LWS Method`` (20.16); memoised."""
        return parse_cseq(text)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def _parse_cseq(text: str) -> CSeq:
    """A CSeq value, parsed cold (RFC 3261 20.16): the number below 2**31 (8.1.1.5)."""
    num, _, method = text.strip().partition(" ")
    method = method.strip()
    if not is_number(num) or len(num) > 10 or not TOKEN.match(method):
        raise SipParseError(f"malformed CSeq {text!r}")
    if int(num) >= 2**31:
        raise SipParseError(f"CSeq number out of range {text!r}")
    return CSeq(int(num), method.upper())


# "1 INVITE", "2 BYE": the same few values in every call.
CSEQ_MEMO: Memo[CSeq] = Memo(_parse_cseq, max_len=64)
# parse_cseq(text): one CSeq value, parsed once (RFC 3261 20.16).
parse_cseq = CSEQ_MEMO.__getitem__
