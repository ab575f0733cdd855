"""SIP dialogs, sans-IO (RFC 3261 section 12).

A dialog is the peer-to-peer relationship an INVITE sets up: Call-ID, both tags, both
CSeq spaces, the remote target and the route set. :class:`Dialog` builds requests
within it (12.2.1.1) and knows where they go next (loose routing, 16.12).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

from gateway.sip.errors import SipParseError
from gateway.sip.ids import random_hex
from gateway.sip.message import Headers, Request, Response
from gateway.sip.transaction import Address, new_branch
from gateway.sip.uri import SipUri, parse_name_addr, parse_sip_uri


def new_tag() -> str:
    """A globally unique tag with enough randomness (19.3: at least 32 bits)."""
    return random_hex(6)


def new_call_id(host: str) -> str:
    """A globally unique Call-ID (8.1.1.4)."""
    return f"{random_hex(12)}@{host}"


class DialogState(Enum):
    """Dialog states of 12.1: early after a tagged provisional, confirmed after a 2xx."""

    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(slots=True, init=False)
class Dialog:
    """One dialog as seen from our side (RFC 3261 12)."""

    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str  # full From (UAC) / To (UAS) value without the tag parameter
    remote_uri: str
    remote_target: str
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    transport: str = "udp"
    state: DialogState = DialogState.EARLY
    peer: Address | None = None  # where the peer actually is (symmetric, like rport)

    def __init__(
        self,
        call_id: str,
        local_tag: str,
        remote_tag: str | None,
        local_uri: str,
        remote_uri: str,
        remote_target: str,
        route_set: list[str] | None = None,
        local_seq: int = 0,
        remote_seq: int | None = None,
        transport: str = "udp",
        state: DialogState = DialogState.EARLY,
        peer: Address | None = None,
    ) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set = [] if route_set is None else route_set  # None: a fresh list
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.transport = transport
        self.state = state
        self.peer = peer

    @classmethod
    def as_uas(cls, request: Request, local_tag: str, source: Address, transport: str) -> Dialog:
        """Dialog state of the UAS for a dialog-creating request (12.1.1)."""
        contacts = request.contacts
        if not contacts:
            raise SipParseError("dialog-creating request without Contact")
        from_na = request.from_
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=from_na.tag,
            local_uri=_strip_tag(request.headers.get("to") or "", request.to.tag),
            remote_uri=_strip_tag(request.headers.get("from") or "", from_na.tag),
            remote_target=str(contacts[0].uri),
            route_set=request.headers.get_all("record-route"),
            local_seq=0,
            remote_seq=request.cseq.seq,
            transport=transport,
            peer=source,
        )

    @classmethod
    def as_uac(cls, request: Request, response: Response, peer: Address, transport: str) -> Dialog:
        """Dialog state of the UAC from a tagged 1xx or 2xx (12.1.2): routes reversed."""
        contacts = response.contacts
        target = str(contacts[0].uri) if contacts else request.uri_text
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag,
            local_uri=_strip_tag(request.headers.get("from") or "", request.from_.tag),
            remote_uri=_strip_tag(request.headers.get("to") or "", request.to.tag),
            remote_target=target,
            route_set=list(reversed(response.headers.get_all("record-route"))),
            local_seq=request.cseq.seq,
            transport=transport,
            peer=peer,
        )

    def update_target(self, message: Request | Response) -> None:
        """A target refresh (re-INVITE, UPDATE, their 2xx) replaces the remote target (12.2)."""
        contacts = message.contacts
        if contacts:
            self.remote_target = str(contacts[0].uri)

    def check_remote_cseq(self, request: Request) -> bool:
        """In-dialog request order (12.2.2): a lower CSeq is out of order (answer 500)."""
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def next_hop(self) -> SipUri:
        """Where an in-dialog request is sent (12.2.1.1, loose routing 16.12)."""
        if self.route_set:
            return parse_sip_uri(str(parse_name_addr(self.route_set[0]).uri))
        return parse_sip_uri(self.remote_target)

    def destination(self) -> Address:
        """The transport address for in-dialog requests: the peer we latched, or the hop."""
        if self.peer is not None and not self.route_set:
            return self.peer
        return self.next_hop().host_port()

    def new_request(
        self,
        method: str,
        via: str,
        contact: str | None = None,
        *,
        body: bytes = b"",
        content_type: str | None = None,
        extra: list[tuple[str, str]] | None = None,
        cseq: int | None = None,
    ) -> Request:
        """Build a request within the dialog (12.2.1.1); ``via`` carries a fresh branch."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        remote = self.remote_uri + (f";tag={self.remote_tag}" if self.remote_tag else "")
        headers = Headers(
            [
                ("Via", via),
                ("Max-Forwards", "70"),
                ("From", f"{self.local_uri};tag={self.local_tag}"),
                ("To", remote),
                ("Call-ID", self.call_id),
                ("CSeq", f"{cseq} {method}"),
            ]
        )
        for route in self.route_set:
            headers.add("Route", route)
        if contact is not None:
            headers.add("Contact", f"<{contact}>")
        for name, value in extra or ():
            headers.add(name, value)
        if body:
            headers.add("Content-Type", content_type or "application/sdp")
        return Request(method, self.remote_target, headers, body)

    def ack_for_2xx(self, invite_cseq: int, via_host: str, via_port: int) -> Request:
        """The ACK for a 2xx (13.2.2.4): same CSeq number, its own branch."""
        via = f"SIP/2.0/{self.transport.upper()} {via_host}:{via_port};branch={new_branch()};rport"
        return self.new_request("ACK", via, cseq=invite_cseq)


def _strip_tag(value: str, tag: str | None) -> str:
    """A From/To value without its tag parameter, keeping the rest verbatim.

    ``tag`` comes from the already parsed header, so the value is not parsed again; the
    tag is looked for only after the closing ``>`` (a URI parameter is not a tag).
    """
    if tag is None:
        return value
    start = value.rfind(">") + 1
    head, tail = value[:start], value[start:]
    tail = _TAG_PARAM.sub("", tail, count=1)
    return head + tail


_TAG_PARAM = re.compile(r";\s*tag\s*=\s*[^;\s]*", re.I)
