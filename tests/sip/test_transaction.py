"""Tests for gateway.sip.transaction: timers A-K and RFC 6026, with a fake clock.

A client and a server TransactionLayer are wired through an in-memory network that can
drop or delay each datagram (the aioquic way): no sockets, no sleeps. Every datagram is
parsed on the way through, so what the layers send is also checked to be valid SIP.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.edge.sip_transport import TIMER_GRID
from gateway.sip.errors import SipUsageError
from gateway.sip.message import Headers, Request, Response, make_response, parse_message
from gateway.sip.transaction import (
    MAGIC_COOKIE,
    T1,
    T2,
    T4,
    TIMER_C,
    TRYING_DELAY,
    AckTimeout,
    Outgoing,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    TransactionEvent,
    TransactionLayer,
    TransactionTimeout,
    TransportError,
    client_key,
    new_branch,
    server_key,
)

CLIENT = ("192.0.2.10", 5060)  # the kiosk side
SERVER = ("192.0.2.20", 5060)  # the gateway
SERVER_TAG = "srv-tag"


# -- messages ------------------------------------------------------------------------------


def request(
    method: str = "INVITE",
    *,
    branch: str | None = None,
    cseq: int = 1,
    call_id: str = "call-1@192.0.2.10",
    transport: str = "UDP",
    rport: bool = False,
    routes: tuple[str, ...] = (),
    via: str | None = None,
) -> Request:
    """A request as the kiosk would send it, with a fresh branch unless one is given."""
    branch = branch if branch is not None else new_branch()
    via = via or f"SIP/2.0/{transport} {CLIENT[0]}:{CLIENT[1]};branch={branch}" + (
        ";rport" if rport else ""
    )
    headers = Headers(
        [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", '"Mairie" <sip:kiosk-050@visio-relais.example>;tag=kiosk-tag'),
            ("To", "<sip:caf@visio-relais.example>"),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            *(("Route", r) for r in routes),
        ]
    )
    return Request(method, "sip:caf@192.0.2.20", headers)


def cancel_for(invite: Request) -> Request:
    """CANCEL for an INVITE (9.1): same Via, Request-URI, Call-ID, From, To and CSeq number."""
    headers = Headers(
        [
            ("Via", invite.headers.get_all("via")[0]),
            ("Max-Forwards", "70"),
            ("From", invite.headers.get("from") or ""),
            ("To", invite.headers.get("to") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} CANCEL"),
        ]
    )
    return Request("CANCEL", invite.uri_text, headers)


def ack_for_2xx(response: Response) -> Request:
    """The UAC core's ACK for a 2xx (13.2.2.4): a new transaction-less request, new branch."""
    transport, (host, port) = response.top_via.transport, CLIENT
    headers = Headers(
        [
            ("Via", f"SIP/2.0/{transport} {host}:{port};branch={new_branch()}"),
            ("Max-Forwards", "70"),
            ("From", response.headers.get("from") or ""),
            ("To", response.headers.get("to") or ""),
            ("Call-ID", response.call_id),
            ("CSeq", f"{response.cseq.seq} ACK"),
        ]
    )
    return Request("ACK", "sip:caf@192.0.2.20", headers)


# -- the harness ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """One datagram a layer handed to the network, parsed."""

    time: float
    sender: str  # "client" or "server"
    out: Outgoing
    message: Request | Response

    @property
    def label(self) -> str:
        m = self.message
        return m.method if isinstance(m, Request) else f"{m.status}/{m.cseq.method}"


Handler = Callable[["Net", TransactionEvent], None]
E = TypeVar("E")


@dataclass
class Net:
    """Client and server layers joined by a network that drops or delays what it is told to."""

    transport: str = "udp"
    client: TransactionLayer = field(default_factory=TransactionLayer)
    # The server's TU decides on every response, 100 (Trying) included: the tests of the
    # automatic 100 (RFC 3261 17.2.1) pass a server layer with a trying delay.
    server: TransactionLayer = field(default_factory=lambda: TransactionLayer(trying_delay=None))
    drop: Callable[[Wire], bool] = lambda w: False
    delay: Callable[[Wire], float] = lambda w: 0.0
    on_client: Handler | None = None
    on_server: Handler | None = None
    now: float = 0.0
    wire: list[Wire] = field(default_factory=list)
    delivered: list[Wire] = field(default_factory=list)
    client_events: list[tuple[float, TransactionEvent]] = field(default_factory=list)
    server_events: list[tuple[float, TransactionEvent]] = field(default_factory=list)
    _agenda: list[tuple[float, int, Callable[[], object]]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    # -- driving ---------------------------------------------------------------------
    def at(self, when: float, action: Callable[[], object]) -> None:
        """Run ``action`` at fake time ``when`` (a TU doing something later)."""
        heapq.heappush(self._agenda, (when, next(self._seq), action))

    def send(self, req: Request) -> str:
        """The client TU starts a transaction now."""
        key = self.client.send_request(req, SERVER, self.transport, self.now)
        self.flush()
        return key

    def respond(self, key: str, response: Response) -> None:
        """The server TU answers now."""
        self.server.send_response(key, response, self.now)
        self.flush()

    def run(self, until: float = 1000.0) -> None:
        """Advance the fake clock event by event until nothing is left (or ``until``)."""
        while True:
            times = [
                t for t in (self.client.next_timer(), self.server.next_timer()) if t is not None
            ]
            if self._agenda:
                times.append(self._agenda[0][0])
            if not times or min(times) > until:
                self.now = max(self.now, until) if times else self.now
                return
            self.now = max(self.now, min(times))
            self.client.handle_timer(self.now)
            self.server.handle_timer(self.now)
            self.flush()
            while self._agenda and self._agenda[0][0] <= self.now:
                _, _, action = heapq.heappop(self._agenda)
                action()
                self.flush()

    def flush(self) -> None:
        """Move datagrams onto the network and events to the TUs until all is quiet."""
        busy = True
        while busy:
            busy = False
            for side, layer in (("client", self.client), ("server", self.server)):
                for out in layer.datagrams_to_send():
                    busy = True
                    self._transmit(side, out)
                while (event := layer.next_event()) is not None:
                    busy = True
                    if side == "client":
                        self.client_events.append((self.now, event))
                        if self.on_client is not None:
                            self.on_client(self, event)
                    else:
                        self.server_events.append((self.now, event))
                        if self.on_server is not None:
                            self.on_server(self, event)

    def _transmit(self, side: str, out: Outgoing) -> None:
        w = Wire(self.now, side, out, parse_message(out.data))
        self.wire.append(w)
        assert out.transport == self.transport
        assert out.dest == (SERVER if side == "client" else CLIENT)
        if self.drop(w):
            return
        self.at(self.now + self.delay(w), lambda: self._deliver(w))

    def _deliver(self, w: Wire) -> None:
        self.delivered.append(w)
        layer, source = (self.server, CLIENT) if w.sender == "client" else (self.client, SERVER)
        layer.receive(parse_message(w.out.data), source, self.transport, self.now)

    # -- looking at what happened ---------------------------------------------------------
    def sent(self, side: str, label: str) -> list[float]:
        """Times at which ``side`` put a message with this label on the wire."""
        return [w.time for w in self.wire if w.sender == side and w.label == label]

    def events(self, side: str, kind: type[E]) -> list[E]:
        """The events of one kind the client or the server TU was given, in order."""
        source = self.client_events if side == "client" else self.server_events
        return [e for _, e in source if isinstance(e, kind)]

    def assert_empty(self) -> None:
        """Nothing left behind: no transaction, no timer (the layers can be dropped)."""
        assert len(self.client) == 0, self.client._txs
        assert len(self.server) == 0, self.server._txs
        assert self.client.next_timer() is None
        assert self.server.next_timer() is None


def ack_2xx_tu(net: Net, event: TransactionEvent) -> None:
    """A UAC core that ACKs every 2xx to INVITE it is shown, repeats included (13.2.2.4)."""
    if isinstance(event, ResponseReceived) and event.response.cseq.method != "INVITE":
        return
    if isinstance(event, ResponseReceived | StrayResponse) and 200 <= event.response.status < 300:
        net.client.send_stateless(ack_for_2xx(event.response), SERVER, net.transport)


def answering_tu(
    status: int, *, after: float = 0.0, provisional: int | None = None, prov_after: float = 0.0
) -> Handler:
    """A UAS core that answers every new request with ``status`` after ``after`` seconds."""

    def handle(net: Net, event: TransactionEvent) -> None:
        if not isinstance(event, RequestReceived) or event.key is None:
            return
        key, req = event.key, event.request

        def ring() -> None:
            if provisional is not None and not net.server.is_final_sent(key):
                net.respond(key, make_response(req, provisional, to_tag=SERVER_TAG))

        def answer() -> None:
            net.respond(key, make_response(req, status, to_tag=SERVER_TAG))

        if req.method == "INVITE":
            net.at(net.now + prov_after, ring)
        net.at(net.now + after, answer)

    return handle


def from_client(label: str) -> Callable[[Wire], bool]:
    return lambda w: w.sender == "client" and w.label == label


def from_server(label: str) -> Callable[[Wire], bool]:
    return lambda w: w.sender == "server" and w.label == label


# -- INVITE client transaction (17.1.1) ----------------------------------------------------


def test_timer_a_doubles_until_timer_b() -> None:
    net = Net(drop=lambda w: True)
    invite = request()
    key = net.send(invite)
    assert key == client_key(invite.top_via.branch or "", "INVITE")
    net.run()
    # A: T1, 2T1, 4T1 ... without the T2 cap; B fires at 64*T1
    assert net.sent("client", "INVITE") == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert all(w.out.data == invite.serialize() for w in net.wire)
    (timeout,) = net.events("client", TransactionTimeout)
    assert timeout == TransactionTimeout(key, "INVITE", client=True)
    assert net.client_events[-1][0] == 64 * T1
    net.assert_empty()


def test_timers_follow_the_layer_t1() -> None:
    net = Net(client=TransactionLayer(t1=0.1, t2=0.4), drop=lambda w: True)
    net.send(request())
    net.run()
    assert net.sent("client", "INVITE") == pytest.approx([0.0, 0.1, 0.3, 0.7, 1.5, 3.1, 6.3])
    assert net.client_events[-1][0] == pytest.approx(6.4)
    net.send(request("OPTIONS"))
    start = net.now
    net.run()
    sent = [t - start for t in net.sent("client", "OPTIONS")]
    assert sent == pytest.approx(
        [0.0, 0.1, 0.3, 0.7, 1.1, 1.5, 1.9, 2.3, 2.7, 3.1, 3.5, 3.9, 4.3, 4.7, 5.1, 5.5, 5.9, 6.3]
    )
    net.assert_empty()


def test_provisional_stops_retransmissions_and_timer_b() -> None:
    net = Net(
        on_server=answering_tu(200, after=40.0, provisional=180, prov_after=2.0),
        on_client=ack_2xx_tu,
    )
    net.send(request())
    net.run()
    assert net.sent("client", "INVITE") == [0.0, 0.5, 1.5]  # 180 at 2.0, then silence
    statuses = [e.response.status for e in net.events("client", ResponseReceived)]
    assert statuses[:2] == [180, 200]
    assert not net.events("client", TransactionTimeout)  # B was stopped by the 180
    net.assert_empty()


def test_retransmitted_invite_gets_the_last_provisional_again() -> None:
    net = Net(
        on_server=answering_tu(486, after=5.0, provisional=180),
        drop=lambda w: w.label == "180/INVITE" and w.time == 0.0,
    )
    net.send(request())
    net.run()
    assert net.sent("server", "180/INVITE") == [0.0, 0.5]  # repeated for the INVITE at 0.5
    assert net.sent("client", "INVITE") == [0.0, 0.5]
    assert len(net.events("server", RequestReceived)) == 1
    net.assert_empty()


# -- 100 (Trying) from the INVITE server transaction (17.2.1) ------------------------------


def trying_server() -> TransactionLayer:
    return TransactionLayer(trying_delay=TRYING_DELAY)


def test_no_trying_when_the_tu_rings_within_the_delay() -> None:
    net = Net(server=trying_server(), on_server=answering_tu(200, after=3.0, provisional=180))
    net.on_client = ack_2xx_tu
    net.send(request())
    net.run()
    assert net.sent("server", "100/INVITE") == []
    assert net.sent("server", "180/INVITE") == [0.0]
    assert net.sent("client", "INVITE") == [0.0]
    net.assert_empty()


def test_trying_after_the_delay_stops_the_callers_retransmissions() -> None:
    net = Net(
        server=trying_server(),
        on_server=answering_tu(486, after=20.0, provisional=180, prov_after=2.0),
    )
    net.send(request())
    net.run()
    assert net.sent("server", "100/INVITE") == [TRYING_DELAY]
    assert TRYING_DELAY < 0.2 - TIMER_GRID  # still within 200 ms once on the edge's grid
    assert net.sent("client", "INVITE") == [0.0]  # Proceeding from the 100 on: no Timer A
    statuses = [e.response.status for e in net.events("client", ResponseReceived)]
    assert statuses == [100, 180, 486]
    (trying,) = [w for w in net.wire if w.label == "100/INVITE"]
    assert trying.message.to.tag is None  # 8.2.6.1: no To tag on a 100
    net.assert_empty()


def test_a_repeated_invite_gets_its_trying_at_once() -> None:
    net = Net(
        server=TransactionLayer(trying_delay=1.0),
        on_server=answering_tu(486, after=3.0),
    )
    net.send(request())
    net.run()
    # Timer A repeats the INVITE at T1, before the 1 s delay: the repeat is answered
    assert net.sent("client", "INVITE") == [0.0, 0.5]
    assert net.sent("server", "100/INVITE") == [0.5]
    net.assert_empty()


def test_trying_at_once_copies_the_timestamp() -> None:
    layer = TransactionLayer(trying_delay=0)
    invite = request()
    invite.headers.add("Timestamp", "54.3 0.2")
    layer.receive(invite, CLIENT, "udp", 0.0)
    (out,) = layer.datagrams_to_send()
    trying = parse_message(out.data)
    assert isinstance(trying, Response) and trying.status == 100
    assert trying.headers.get("timestamp") == "54.3 0.2"  # RFC 3261 8.2.6.1
    layer.receive(request("OPTIONS"), CLIENT, "udp", 0.0)
    assert layer.datagrams_to_send() == []  # only INVITE gets an automatic 100


def test_no_trying_after_a_final_answer() -> None:
    net = Net(server=trying_server(), on_server=answering_tu(486, after=0.05))
    net.send(request())
    net.run()
    assert net.sent("server", "100/INVITE") == []
    assert net.sent("server", "486/INVITE") == [0.05]
    net.assert_empty()


def test_timer_c_guards_a_proceeding_invite() -> None:
    net = Net(on_server=answering_tu(200, after=10_000.0, provisional=183))
    key = net.send(request())
    net.run(until=TIMER_C + 1)
    assert net.events("client", TransactionTimeout) == [
        TransactionTimeout(key, "INVITE", client=True)
    ]
    assert len(net.client) == 0


def test_ack_for_a_non_2xx_final() -> None:
    routes = ("<sip:p1.visio-relais.example;lr>", "<sip:p2.visio-relais.example;lr>")
    net = Net(on_server=answering_tu(486))
    invite = request(routes=routes)
    key = net.send(invite)
    net.run()
    (final,) = net.events("client", ResponseReceived)
    assert isinstance(final, ResponseReceived)
    assert (final.key, final.response.status) == (key, 486)
    (ack_wire,) = [w for w in net.wire if w.label == "ACK"]
    ack = ack_wire.message
    assert isinstance(ack, Request)
    # 17.1.1.3: same Request-URI, Call-ID, From, CSeq number and top Via (same branch),
    # To with the tag of the response, the INVITE's Route set
    assert ack.uri_text == invite.uri_text
    assert ack.call_id == invite.call_id
    assert ack.headers.get("from") == invite.headers.get("from")
    assert ack.cseq.seq == invite.cseq.seq and ack.cseq.method == "ACK"
    assert ack.headers.get_all("via") == [invite.headers.get_all("via")[0]]
    assert ack.to.tag == SERVER_TAG
    assert ack.headers.get_all("route") == list(routes)
    # the ACK belongs to the server transaction: it is absorbed, not passed up
    assert [type(e) for _, e in net.server_events] == [RequestReceived]
    # D (32 s) at the client, I (T4) at the server
    assert net.sent("client", "ACK") == [0.0]
    net.assert_empty()


def test_lost_ack_repeated_final_is_reacked_not_reported() -> None:
    net = Net(on_server=answering_tu(603), drop=lambda w: w.label == "ACK" and w.time == 0.0)
    net.send(request())
    net.run()
    assert net.sent("server", "603/INVITE") == [0.0, 0.5]  # Timer G
    assert net.sent("client", "ACK") == [0.0, 0.5]
    acks = [w.out.data for w in net.wire if w.label == "ACK"]
    assert acks[0] == acks[1]
    assert len(net.events("client", ResponseReceived)) == 1  # the repeat is absorbed
    net.assert_empty()


def test_timer_g_capped_at_t2_then_timer_h() -> None:
    net = Net(on_server=answering_tu(480), drop=lambda w: w.label == "ACK")
    net.send(request())
    net.run()
    assert net.sent("server", "480/INVITE") == [
        0.0,
        0.5,
        1.5,
        3.5,
        7.5,
        11.5,
        15.5,
        19.5,
        23.5,
        27.5,
        31.5,
    ]
    (timeout,) = net.events("server", TransactionTimeout)
    assert isinstance(timeout, TransactionTimeout) and not timeout.client
    assert timeout.method == "INVITE"
    assert len(net.events("client", ResponseReceived)) == 1
    net.assert_empty()


def test_wait_timers_on_udp() -> None:
    net = Net(on_server=answering_tu(486))
    net.send(request())
    net.run(until=T4 - 0.01)
    assert len(net.server) == 1  # Confirmed, absorbing ACK copies until I
    net.run(until=T4)
    assert len(net.server) == 0
    net.run(until=31.99)
    assert len(net.client) == 1  # Completed until D (32 s)
    net.run(until=32.0)
    net.assert_empty()


# -- 2xx to INVITE (13.3.1.4, RFC 6026) ------------------------------------------------------


def test_2xx_retransmitted_until_the_ack() -> None:
    net = Net(
        on_server=answering_tu(200),
        on_client=ack_2xx_tu,
        drop=lambda w: w.label == "ACK" and w.time < 1,
    )
    net.send(request())
    net.run()
    assert net.sent("server", "200/INVITE") == [0.0, 0.5, 1.5]
    assert net.sent("client", "ACK") == [0.0, 0.5, 1.5]
    # the ACK for a 2xx has its own branch and reaches the TU (matched by Call-ID+CSeq)
    acks = [e for e in net.events("server", RequestReceived) if e.request.method == "ACK"]
    assert len(acks) == 1 and acks[0].key is None
    assert not net.events("server", AckTimeout)
    # the 2xx repeats are shown to the client TU (it must re-ACK), as RFC 6026 7.2 says
    finals = [e.response.status for e in net.events("client", ResponseReceived)]
    assert finals == [200, 200, 200]
    net.assert_empty()


def test_accepted_client_invite_lets_go_of_its_request() -> None:
    """Timer M keeps an accepted INVITE for 64*T1 (RFC 6026 7.2) only to pass 2xx repeats
    up: it holds the key, not the request, which the TU keeps for as long as it needs."""
    layer = TransactionLayer()
    invite = request()
    key = layer.send_request(invite, SERVER, "udp", 0.0)
    layer.datagrams_to_send()
    assert layer.get_request(key) is invite
    ok = make_response(invite, 200, to_tag=SERVER_TAG)
    layer.receive(parse_message(ok.serialize()), SERVER, "udp", 0.1)
    first = layer.next_event()
    assert isinstance(first, ResponseReceived) and first.key == key
    assert layer.get_request(key) is None
    layer.receive(parse_message(ok.serialize()), SERVER, "udp", 0.6)
    repeat = layer.next_event()
    assert isinstance(repeat, ResponseReceived) and repeat.key == key
    assert repeat.response.status == 200
    # a stray non-2xx in Accepted is absorbed
    layer.receive(parse_message(make_response(invite, 500).serialize()), SERVER, "udp", 0.7)
    assert layer.next_event() is None
    assert len(layer) == 1


def test_ack_timeout_when_the_2xx_is_never_acked() -> None:
    net = Net(on_server=answering_tu(200), on_client=ack_2xx_tu, drop=from_client("ACK"))
    invite = request()
    net.send(invite)
    net.run()
    assert net.sent("server", "200/INVITE") == [
        0.0,
        0.5,
        1.5,
        3.5,
        7.5,
        11.5,
        15.5,
        19.5,
        23.5,
        27.5,
        31.5,
    ]
    (timeout,) = net.events("server", AckTimeout)
    assert isinstance(timeout, AckTimeout)
    assert timeout.request.call_id == invite.call_id
    assert net.server_events[-1][0] == 64 * T1
    net.assert_empty()


def test_2xx_after_timer_m_is_a_stray_response() -> None:
    net = Net()
    invite = request()
    net.send(invite)
    ok = make_response(invite, 200, to_tag=SERVER_TAG)
    net.client.receive(ok, SERVER, "udp", 0.1)
    net.run()
    assert len(net.client) == 0  # Timer M
    net.client.receive(ok, SERVER, "udp", net.now + 1)
    net.flush()
    assert isinstance(net.client_events[-1][1], StrayResponse)
    # other strays are dropped: a 2xx to OPTIONS, a non-2xx to INVITE
    net.client.receive(make_response(request("OPTIONS"), 200), SERVER, "udp", net.now)
    net.client.receive(make_response(invite, 486, to_tag="x"), SERVER, "udp", net.now)
    net.flush()
    assert len(net.events("client", StrayResponse)) == 1


def test_late_invite_copy_after_the_ack_is_absorbed() -> None:
    """RFC 6026 8.7: the server stays in Accepted after the ACK, until Timer L."""
    # the first INVITE is delayed 3 s, its retransmission (0.5 s) goes straight through
    net = Net(
        on_server=answering_tu(200),
        on_client=ack_2xx_tu,
        delay=lambda w: 3.0 if w.label == "INVITE" and w.time == 0.0 else 0.0,
    )
    net.send(request())
    net.run()
    invites = [e for e in net.events("server", RequestReceived) if e.request.method == "INVITE"]
    assert len(invites) == 1  # the copy arriving at 3 s did not start a second call
    net.assert_empty()


def test_2xx_on_tcp_is_not_retransmitted_but_still_times_out() -> None:
    net = Net(
        transport="tcp", on_server=answering_tu(200), on_client=ack_2xx_tu, drop=from_client("ACK")
    )
    net.send(request(transport="TCP"))
    net.run()
    assert net.sent("server", "200/INVITE") == [0.0]
    assert len(net.events("server", AckTimeout)) == 1
    net.assert_empty()


# -- non-INVITE client and server (17.1.2, 17.2.2) -----------------------------------------


def test_timer_e_caps_at_t2_then_timer_f() -> None:
    net = Net(drop=lambda w: True)
    key = net.send(request("OPTIONS"))
    net.run()
    assert net.sent("client", "OPTIONS") == [
        0.0,
        0.5,
        1.5,
        3.5,
        7.5,
        11.5,
        15.5,
        19.5,
        23.5,
        27.5,
        31.5,
    ]
    assert net.events("client", TransactionTimeout) == [
        TransactionTimeout(key, "OPTIONS", client=True)
    ]
    assert net.client_events[-1][0] == 64 * T1
    net.assert_empty()


def test_timer_e_every_t2_once_proceeding() -> None:
    net = Net(on_server=answering_tu(200, after=10.0))
    net.on_server = _with_trying(net.on_server)
    net.send(request("REGISTER"))
    net.run()
    # 100 at 0: Proceeding; E still fires at T1, then every T2 (17.1.2.2)
    assert net.sent("client", "REGISTER") == [0.0, 0.5, 0.5 + T2, 0.5 + 2 * T2]
    assert net.sent("server", "100/REGISTER") == [0.0, 0.5, 4.5, 8.5]  # repeated per request
    statuses = [e.response.status for e in net.events("client", ResponseReceived)]
    # 17.1.2.2: every provisional is passed up in Proceeding, repeats included
    assert statuses == [100, 100, 100, 100, 200]
    assert len(net.events("server", RequestReceived)) == 1
    net.assert_empty()


def _with_trying(inner: Handler | None) -> Handler:
    def handle(net: Net, event: TransactionEvent) -> None:
        if isinstance(event, RequestReceived) and event.key is not None:
            net.respond(event.key, make_response(event.request, 100))
        if inner is not None:
            inner(net, event)

    return handle


def test_final_repeated_for_a_retransmitted_request_then_timers_k_and_j() -> None:
    net = Net(
        on_server=answering_tu(200), drop=lambda w: w.label == "200/OPTIONS" and w.time == 0.0
    )
    net.send(request("OPTIONS"))
    net.run(until=0.5)
    assert net.sent("client", "OPTIONS") == [0.0, 0.5]
    assert net.sent("server", "200/OPTIONS") == [0.0, 0.5]
    (rr,) = net.events("server", RequestReceived)
    net.run(until=0.5 + T4 - 0.01)
    assert len(net.client) == 1
    net.run(until=0.5 + T4)
    assert len(net.client) == 0  # K = T4 after the final
    assert len(net.server) == 1
    net.run(until=64 * T1 - 0.01)
    assert len(net.server) == 1
    net.run(until=64 * T1)
    net.assert_empty()  # J = 64*T1 after the final
    assert len(net.events("client", ResponseReceived)) == 1
    assert isinstance(rr, RequestReceived) and rr.source == CLIENT and rr.transport == "udp"


def test_late_final_after_timer_f_is_dropped() -> None:
    net = Net(drop=lambda w: True)
    opts = request("OPTIONS")
    net.send(opts)
    net.run()
    net.client.receive(make_response(opts, 200), SERVER, "udp", net.now)
    net.flush()
    assert [type(e) for _, e in net.client_events] == [TransactionTimeout]


# -- reliable transports: no retransmission, zero wait timers --------------------------------


@pytest.mark.parametrize(("method", "status"), [("INVITE", 486), ("OPTIONS", 200), ("BYE", 481)])
def test_tcp_wait_timers_are_zero(method: str, status: int) -> None:
    net = Net(transport="tcp", on_server=answering_tu(status, after=1.0))
    net.send(request(method, transport="TCP"))
    net.run()
    assert net.now == 1.0  # D, I, J and K all fire at the moment of the final / ACK
    assert net.sent("client", method) == [0.0]  # neither A nor E on a stream
    assert len(net.wire) == (3 if method == "INVITE" else 2)
    net.assert_empty()


def test_tcp_timer_b_still_runs() -> None:
    net = Net(transport="tcp", drop=lambda w: True)
    net.send(request(transport="TCP"))
    net.run()
    assert net.sent("client", "INVITE") == [0.0]
    assert len(net.events("client", TransactionTimeout)) == 1
    assert net.now == 64 * T1
    net.assert_empty()


# -- CANCEL (9) -------------------------------------------------------------------------------


def test_cancel_matched_to_its_invite() -> None:
    def uas(net: Net, event: TransactionEvent) -> None:
        if not isinstance(event, RequestReceived) or event.key is None:
            return
        req = event.request
        if req.method == "INVITE":
            net.respond(event.key, make_response(req, 180, to_tag=SERVER_TAG))
        elif req.method == "CANCEL":
            invite_key = net.server.find_invite_for_cancel(req)
            assert invite_key is not None
            assert invite_key != event.key
            invite = net.server.get_request(invite_key)
            assert invite is not None and invite.method == "INVITE"
            net.respond(event.key, make_response(req, 200, to_tag=SERVER_TAG))
            assert not net.server.is_final_sent(invite_key)
            net.respond(invite_key, make_response(invite, 487, to_tag=SERVER_TAG))
            assert net.server.is_final_sent(invite_key)

    net = Net(on_server=uas)
    invite = request()
    invite_key = net.send(invite)
    net.at(1.0, lambda: net.send(cancel_for(invite)))
    net.run()
    got = [
        (e.response.cseq.method, e.response.status) for e in net.events("client", ResponseReceived)
    ]
    assert got == [("INVITE", 180), ("CANCEL", 200), ("INVITE", 487)]
    assert net.sent("client", "ACK") == [1.0]
    assert invite_key.startswith("c|")
    net.assert_empty()


def test_cancel_without_invite_is_not_matched() -> None:
    layer = TransactionLayer()
    cancel = cancel_for(request())
    layer.receive(cancel, CLIENT, "udp", 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    assert layer.find_invite_for_cancel(cancel) is None
    # our own client INVITE with that branch is not a match either (9.2 is server side)
    invite = request(branch="z9hG4bKown")
    layer.send_request(invite, SERVER, "udp", 0.0)
    assert layer.find_invite_for_cancel(cancel_for(invite)) is None


# -- RFC 2543 peers (17.2.3 fallback) ---------------------------------------------------------


def test_rfc2543_branches_fall_back_to_dialog_identifiers() -> None:
    layer = TransactionLayer()
    first = request(branch="1", call_id="a@host")
    other = request(branch="1", call_id="b@host")  # same old-style branch, another call
    assert not server_key(first).startswith("s|")
    layer.receive(first, CLIENT, "udp", 0.0)
    layer.receive(other, CLIENT, "udp", 0.0)
    keys = [
        e.key for e in (layer.next_event(), layer.next_event()) if isinstance(e, RequestReceived)
    ]
    assert len(set(keys)) == 2 and None not in keys
    # a retransmission matches, and gets the last response again
    layer.send_response(keys[0] or "", make_response(first, 180, to_tag="t"), 0.0)
    layer.datagrams_to_send()
    layer.receive(parse_message(first.serialize()), CLIENT, "udp", 0.2)
    assert layer.next_event() is None
    (repeat,) = layer.datagrams_to_send()
    resent = parse_message(repeat.data)
    assert isinstance(resent, Response) and resent.status == 180
    # the CANCEL and the ACK for a non-2xx find their INVITE
    assert layer.find_invite_for_cancel(cancel_for(first)) == keys[0]
    layer.send_response(keys[0] or "", make_response(first, 486, to_tag="t"), 0.3)
    ack = request("ACK", branch="1", call_id="a@host")
    layer.receive(ack, CLIENT, "udp", 0.4)
    assert layer.next_event() is None  # absorbed by the INVITE transaction
    layer.handle_timer(0.4 + T4)
    assert layer.get_request(keys[0] or "") is None
    assert layer.get_request(keys[1] or "") is other


def test_request_without_branch_still_gets_a_transaction() -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", via=f"SIP/2.0/UDP {CLIENT[0]}")
    layer.receive(req, CLIENT, "udp", 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.receive(req, CLIENT, "udp", 0.1)
    assert layer.next_event() is None
    # and a response without a branch matches nothing
    layer.receive(make_response(req, 200), SERVER, "udp", 0.2)
    assert layer.next_event() is None


def test_sent_by_and_method_separate_transactions() -> None:
    layer = TransactionLayer()
    branch = "z9hG4bKshared"
    a = request("OPTIONS", branch=branch)
    b = request("OPTIONS", via=f"SIP/2.0/UDP 198.51.100.1:5062;branch={branch}")
    c = request("INFO", branch=branch)
    for r in (a, b, c):
        layer.receive(r, CLIENT, "udp", 0.0)
    assert len(layer) == 3


# -- where responses go (18.2.2, RFC 3581) ------------------------------------------------------


@pytest.mark.parametrize(
    ("transport", "rport", "dest"),
    [
        ("udp", False, ("203.0.113.9", 5060)),  # source IP, Via port
        ("udp", True, ("203.0.113.9", 40123)),  # source IP and port
        ("tcp", False, ("203.0.113.9", 40123)),  # back on the connection
    ],
)
def test_response_destination(transport: str, rport: bool, dest: tuple[str, int]) -> None:
    layer = TransactionLayer()
    req = request("OPTIONS", transport=transport.upper(), rport=rport)
    layer.receive(req, ("203.0.113.9", 40123), transport, 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.send_response(event.key, make_response(req, 200), 0.0)
    (out,) = layer.datagrams_to_send()
    assert out.dest == dest
    assert out.transport == transport


# -- transport errors and the TU's own mistakes ----------------------------------------------


def test_transport_failed_ends_a_client_transaction() -> None:
    net = Net(drop=lambda w: True)
    key = net.send(request())
    net.client.transport_failed(key)
    net.flush()
    assert net.events("client", TransportError) == [TransportError(key, "INVITE", client=True)]
    net.run()
    assert net.sent("client", "INVITE") == [0.0]  # no retransmission after the failure
    assert len(net.client_events) == 1
    net.assert_empty()
    net.client.transport_failed(key)  # unknown key: nothing happens
    assert net.client.next_event() is None


def test_transport_failed_ends_a_server_transaction() -> None:
    layer = TransactionLayer()
    layer.receive(request(), CLIENT, "udp", 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.transport_failed(event.key)
    assert layer.next_event() == TransportError(event.key, "INVITE", client=False)
    assert len(layer) == 0
    with pytest.raises(SipUsageError):
        layer.send_response(event.key, make_response(event.request, 500), 0.0)


def test_cancel_timeout_forgets_silently() -> None:
    net = Net(drop=lambda w: True)
    key = net.send(request("OPTIONS"))
    net.client.cancel_timeout(key)
    net.run()
    assert net.client_events == []
    net.assert_empty()


def test_usage_errors() -> None:
    layer = TransactionLayer()
    no_branch = request("OPTIONS", via=f"SIP/2.0/UDP {CLIENT[0]}")
    with pytest.raises(SipUsageError, match="no Via branch"):
        layer.send_request(no_branch, SERVER, "udp", 0.0)
    with pytest.raises(SipUsageError, match="send_stateless"):
        layer.send_request(request("ACK"), SERVER, "udp", 0.0)
    opts = request("OPTIONS")
    layer.send_request(opts, SERVER, "udp", 0.0)
    with pytest.raises(SipUsageError, match="exists"):
        layer.send_request(opts, SERVER, "udp", 0.0)
    client_key_ = client_key(opts.top_via.branch or "", "OPTIONS")
    with pytest.raises(SipUsageError, match="no server transaction"):
        layer.send_response(client_key_, make_response(opts, 200), 0.0)
    layer.receive(request("BYE"), CLIENT, "udp", 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.send_response(event.key, make_response(event.request, 200), 0.0)
    with pytest.raises(SipUsageError, match="already answered"):
        layer.send_response(event.key, make_response(event.request, 500), 0.0)


def test_idle_layer_has_no_timer_and_branches_are_fresh() -> None:
    layer = TransactionLayer()
    assert layer.next_timer() is None
    assert layer.datagrams_to_send() == []
    assert layer.next_event() is None
    branches = {new_branch() for _ in range(100)}
    assert len(branches) == 100
    assert all(b.startswith(MAGIC_COOKIE) and len(b) > len(MAGIC_COOKIE) + 8 for b in branches)


def test_a_late_copy_after_termination_gets_timers_of_its_own() -> None:
    """A request copy arriving after its transaction ended starts a new one (17.2.3):
    timers armed for the old one must not fire for the new one."""
    layer = TransactionLayer()
    invite = request(branch="z9hG4bKlate")
    layer.receive(invite, CLIENT, "udp", 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.send_response(event.key, make_response(invite, 486, to_tag="t"), 0.0)  # G, H armed
    ack = request("ACK", branch="z9hG4bKlate")
    layer.receive(ack, CLIENT, "udp", 0.1)  # Confirmed: I armed, G and H now stale
    layer.handle_timer(0.1 + T4)  # I: gone
    assert len(layer) == 0
    # the same INVITE again, much later (a stuck copy); the TU answers again
    layer.receive(invite, CLIENT, "udp", 10.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.send_response(event.key, make_response(invite, 486, to_tag="t"), 10.0)
    timeouts: list[float] = []
    now = 10.0
    while (when := layer.next_timer()) is not None:
        now = when
        layer.handle_timer(now)
        while (e := layer.next_event()) is not None:
            assert isinstance(e, TransactionTimeout)
            timeouts.append(now)
    assert timeouts == [10.0 + 64 * T1]  # its own Timer H, not the old one at 32 s


# -- property: whatever the network does, one outcome and nothing left behind ---------------


@settings(max_examples=250, deadline=None)
@given(
    method=st.sampled_from(["INVITE", "INVITE", "OPTIONS", "BYE"]),
    status=st.sampled_from([200, 202, 404, 486, 503, 603]),
    transport=st.sampled_from(["udp", "udp", "udp", "tcp"]),
    provisional=st.booleans(),
    trying=st.booleans(),
    answer_after=st.sampled_from([0.0, 0.2, 1.0, 4.0, 20.0]),
    drops=st.lists(st.booleans(), max_size=40),
    # RFC 3261 17.1.2.2 and 17.2.1 rest on T4 (5 s) being the longest a message stays in
    # the network: a copy delayed by exactly T4 ties with Timer I or K, and whichever the
    # harness runs first decides (hypothesis found a retransmitted INVITE arriving as
    # Timer I fired, taken for a new request). Delays stay below T4.
    delays=st.lists(st.sampled_from([0.0, 0.01, 0.3, 0.7, 2.0, 4.9]), min_size=4, max_size=20),
)
@example(  # found by hypothesis: a repeat of the OPTIONS outlived Timer J
    method="OPTIONS",
    status=200,
    transport="udp",
    provisional=False,
    trying=False,
    answer_after=0.0,
    drops=[False, True, True, True, False, True, True, True, True, False, True, True],
    delays=[0.0, 0.0, 0.0, 4.9],
)
def test_any_loss_pattern_ends_with_one_outcome_and_empty_layers(
    method: str,
    status: int,
    transport: str,
    provisional: bool,
    trying: bool,
    answer_after: float,
    drops: list[bool],
    delays: list[float],
) -> None:
    drop_iter = iter(drops)
    counter = itertools.count()

    def delay(w: Wire) -> float:
        if transport == "tcp":
            return 0.05  # a stream keeps order
        return delays[next(counter) % len(delays)]

    net = Net(
        transport=transport,
        server=TransactionLayer(trying_delay=TRYING_DELAY if trying else None),
        on_server=answering_tu(
            status, after=answer_after, provisional=180 if provisional else None, prov_after=0.1
        ),
        on_client=ack_2xx_tu,
        drop=lambda w: transport == "udp" and next(drop_iter, False),
        delay=delay,
    )
    req = request(method, transport=transport.upper())
    net.send(req)
    net.run()

    net.assert_empty()
    finals = [e for e in net.events("client", ResponseReceived) if e.response.status >= 200]
    timeouts = net.events("client", TransactionTimeout)
    if finals:
        assert not timeouts
        assert {f.response.status for f in finals} == {status}
        if method != "INVITE" or status >= 300:
            assert len(finals) == 1  # repeats are absorbed by the transaction
    else:
        assert len(timeouts) == 1  # no answer got through: exactly one timeout
    if method != "INVITE" or status >= 300:
        assert not net.events("client", StrayResponse)
    # The server TU saw the request once if any copy arrived, and again only for a copy
    # arriving after the server transaction ended: the client repeats a non-INVITE until
    # Timer F (64*T1 after it started) while Timer J ends 64*T1 after the answer, so a
    # repeat sent at 31.5 s and delayed past 32 s is a new request (RFC 3261 17.2.3).
    arrived = any(w.sender == "client" and w.label == method for w in net.delivered)
    new_requests = [
        (t, e) for t, e in net.server_events if isinstance(e, RequestReceived) and e.key
    ]
    assert len(new_requests) >= (1 if arrived else 0)
    if len(new_requests) > 1:
        answered = min(w.time for w in net.wire if w.sender == "server" and w.label[0] != "1")
        wait = 64 * T1 if method != "INVITE" else T4  # Timer J; Timer I at the least
        assert transport == "udp"
        assert all(t >= answered + wait for t, _ in new_requests[1:]), new_requests
    if transport == "tcp":
        assert len(finals) == 1


@pytest.mark.parametrize(("t1", "timer_d"), [(0.5, 32.0), (0.05, 3.2)])
def test_timer_d_is_64_t1_after_a_failed_invite(t1: float, timer_d: float) -> None:
    """RFC 3261 17.1.1.2: Completed lasts Timer D, 32 s at the RFC's T1, then ends."""
    net = Net(client=TransactionLayer(t1=t1, t2=8 * t1), on_server=answering_tu(486))
    net.send(request())
    net.run(until=timer_d - 0.1)
    assert len(net.client) == 1  # still absorbing repeats of the 486
    net.run(until=timer_d + 0.1)  # the 50 ms timer grid at most
    assert len(net.client) == 0


# -- statistics for the metrics (bounded labels) ---------------------------------------


def test_statistics_count_finals_retransmissions_repeats_and_timeouts() -> None:
    net = Net(
        on_server=answering_tu(486, after=1.0, provisional=180, prov_after=2.0),
        drop=lambda w: w.label == "486/INVITE" and w.time == 1.0,  # the first 486 is lost
    )
    net.send(request())
    net.run()
    client, server = net.client.stats, net.server.stats
    # The client repeated its INVITE twice (timer A) before the 486 got through; the
    # server absorbed both repeats and sent its 486 again (timer G) on the first one.
    assert client.retransmissions == {"INVITE": 2} and server.repeats == {"INVITE": 2}
    assert client.finals == {("client", "INVITE", 486): 1}
    assert server.finals == {("server", "INVITE", 486): 1}
    lost = Net(drop=lambda w: True)
    lost.send(request("FOO"))  # an unknown method counts as "other"
    lost.run()
    assert lost.client.stats.timeouts == {"other": 1}
    assert lost.client.stats.retransmissions == {"other": 10}
