"""SIP transactions, sans-IO (RFC 3261 section 17, amended by RFC 6026).

The layer is fed messages and the current time, and gives back datagrams to send,
transaction-user events and the time of its next timer. It owns every retransmission
and timeout of timers A-K (plus L and M of RFC 6026) so that the layers above never
see a duplicate. It never touches a socket and never reads a clock.

Transports are named ``"udp"`` or ``"tcp"``; on a reliable transport the retransmission
timers are not armed and the wait timers D, I, J, K are zero (17.1.1.2, 17.2.2).
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from enum import Enum

from gateway.sip.errors import SipUsageError
from gateway.sip.ids import random_hex
from gateway.sip.message import Headers, Request, Response, make_response
from gateway.sip.timers import TimerWheel

Address = tuple[str, int]

MAGIC_COOKIE = "z9hG4bK"  # 8.1.1.7

# Table 4 of RFC 3261 (A.): default timer values in seconds.
T1 = 0.5
T2 = 4.0
T4 = 5.0
TIMER_C = 180.0  # 16.6 item 11: "greater than 3 minutes"
# 17.2.1: an INVITE server transaction sends 100 (Trying) unless the TU answers within
# 200 ms. It waits this long for the TU's own response first (the edge's 50 ms timer
# grid included, the 100 still leaves within 200 ms), which spares the 100 whenever the
# callee rings at once, as stations on a LAN do.
TRYING_DELAY = 0.1


def new_branch() -> str:
    """A fresh RFC 3261 branch (magic cookie + 64 random bits)."""
    return MAGIC_COOKIE + random_hex(8)


class TxState(Enum):
    """Transaction states of figures 5-8 of RFC 3261 and figure 2 of RFC 6026."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


# -- events handed to the transaction user ---------------------------------------
# The events made for every message (RequestReceived, ResponseReceived, Outgoing) are
# plain slotted dataclasses: a frozen one pays an object.__setattr__ call per field, and
# each lives only from the layer to its one consumer. Treat them as read-only all the same.
# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).


@dataclass(slots=True, init=False)
class RequestReceived:
    """A new request created a server transaction (or is an ACK for a 2xx, ``key`` None)."""

    request: Request
    source: Address
    transport: str
    key: str | None

    def __init__(self, request: Request, source: Address, transport: str, key: str | None) -> None:
        self.request = request
        self.source = source
        self.transport = transport
        self.key = key


@dataclass(slots=True, init=False)
class ResponseReceived:
    """A response for a client transaction we sent (1xx and the first final; 2xx repeats).

    It names the transaction by ``key`` only: the TU that sent the request keeps it, and
    the layer lets go of its copy once the transaction only waits (see ``_retire``).
    """

    response: Response
    key: str

    def __init__(self, response: Response, key: str) -> None:
        self.response = response
        self.key = key


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response matching no transaction; only 2xx to INVITE are passed up (13.2.2.4)."""

    response: Response


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B, F or H fired: the peer never answered (or never ACKed our final)."""

    key: str
    method: str
    client: bool


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """Our 2xx to an INVITE was retransmitted for 64*T1 with no ACK (RFC 3261 13.3.1.4)."""

    key: str
    request: Request


@dataclass(frozen=True, slots=True)
class TransportError:
    """A message could not be sent (17.1.4, 17.2.4); the transaction is gone."""

    key: str
    method: str
    client: bool


TransactionEvent = (
    RequestReceived
    | ResponseReceived
    | StrayResponse
    | TransactionTimeout
    | AckTimeout
    | TransportError
)


@dataclass(slots=True, init=False)
class Outgoing:
    """Bytes to put on the wire."""

    data: bytes
    dest: Address
    transport: str

    def __init__(self, data: bytes, dest: Address, transport: str) -> None:
        self.data = data
        self.dest = dest
        self.transport = transport


# -- transactions ----------------------------------------------------------------


class _Tx:
    __slots__ = (
        "accept_key",
        "client",
        "dest",
        "generation",
        "interval",
        "key",
        "method",
        "out",
        "request",
        "state",
        "transport",
    )

    def __init__(
        self, key: str, request: Request, dest: Address, transport: str, client: bool
    ) -> None:
        self.key = key
        # Let go of (None) once the transaction only waits and repeats bytes: see _retire.
        self.request: Request | None = request
        self.method = request.method
        self.dest = dest
        self.transport = transport
        self.client = client
        self.state = TxState.TRYING
        self.out: bytes = b""  # bytes retransmitted by timers A, E, G or on request repeats
        self.accept_key: tuple[str, int] | None = None  # server INVITE: (Call-ID, CSeq)
        self.interval = T1
        self.generation = 0  # changes cancel the timers armed before

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


def server_key(request: Request) -> str:
    """Server transaction key (17.2.3): branch, sent-by and method, ACK as INVITE.

    A branch without the magic cookie (RFC 2543 peers) falls back to Call-ID, From tag,
    CSeq number and sent-by, which is what 17.2.3 compares for such requests.
    """
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch
    sent_by = f"{via.host}:{via.port or 5060}"
    if branch and branch.startswith(MAGIC_COOKIE):
        return f"s|{branch}|{sent_by}|{method}"
    return f"s2543|{request.call_id}|{request.from_.tag}|{request.cseq.seq}|{sent_by}|{method}"


def client_key(branch: str, method: str) -> str:
    """Client transaction key (17.1.3): branch and CSeq method (ACK belongs to INVITE)."""
    return f"c|{branch}|{'INVITE' if method == 'ACK' else method}"


# Methods counted under their own name in the statistics; any other is "other", so that
# a peer inventing methods cannot grow the metrics' label sets.
COUNTED_METHODS = frozenset(
    {
        "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "SUBSCRIBE", "NOTIFY",
        "INFO", "UPDATE", "PRACK", "MESSAGE", "REFER", "PUBLISH",
    }
)  # fmt: skip


def counted_method(method: str) -> str:
    """The method as the statistics name it (a bounded set)."""
    return method if method in COUNTED_METHODS else "other"


class TransactionStats:
    """Plain counters for the metrics exporter, by bounded labels.

    ``finals``: final responses by (role, method, status), where role is ``server`` (we
    answered) or ``client`` (we were answered); ``retransmissions``: our own requests
    and responses sent again by timers A, E and G (17.1.1.2, 17.1.2.2, 17.2.1);
    ``repeats``: requests a peer sent again and the layer absorbed (17.2.1, 17.2.2);
    ``timeouts``: transactions ended by timers B, F, H and 2xx without ACK.
    """

    __slots__ = ("finals", "repeats", "retransmissions", "timeouts")

    def __init__(self) -> None:
        self.finals: dict[tuple[str, str, int], int] = {}
        self.retransmissions: dict[str, int] = {}
        self.repeats: dict[str, int] = {}
        self.timeouts: dict[str, int] = {}

    def final(self, role: str, method: str, status: int) -> None:
        key = (role, counted_method(method), status)
        self.finals[key] = self.finals.get(key, 0) + 1

    @staticmethod
    def bump(table: dict[str, int], method: str) -> None:
        name = counted_method(method)
        table[name] = table.get(name, 0) + 1


class TransactionLayer:
    """All client and server transactions of one SIP endpoint (RFC 3261 section 17)."""

    def __init__(
        self,
        *,
        t1: float = T1,
        t2: float = T2,
        t4: float = T4,
        trying_delay: float | None = TRYING_DELAY,
    ) -> None:
        self.t1, self.t2, self.t4 = t1, t2, t4
        # 0: the 100 (Trying) goes out at once; None: never, the TU sends its own.
        self.trying_delay = trying_delay
        self._txs: dict[str, _Tx] = {}
        # 2xx responses to INVITE awaiting their ACK, by (Call-ID, CSeq number).
        self._accepted: dict[tuple[str, int], str] = {}
        # (key, generation, timer name): an entry whose generation is no longer its
        # transaction's is stale and skipped when it comes due.
        self._timers: TimerWheel[tuple[str, int, str]] = TimerWheel()
        self._seq = itertools.count()
        self._out: list[Outgoing] = []
        self._events: deque[TransactionEvent] = deque()
        self.stats = TransactionStats()
        # Server transactions outside dialogs not yet answered finally, per source IP,
        # and the bound on them (0: none): a new request over the bound is dropped
        # unanswered (RFC 3261 26.3.2.4), its source appended to ``refused_sources`` for
        # the edge to log and count. Answered ones (lingering for Timers J, K, L) no
        # longer count: a busy but honest peer keeps thousands of those.
        self.max_per_source = 0
        self._per_source: dict[str, int] = {}
        self._pending: dict[str, str] = {}  # counted transaction key -> source IP
        self.refused_sources: list[str] = []

    # -- outputs -------------------------------------------------------------------
    def datagrams_to_send(self) -> list[Outgoing]:
        """Take the messages queued for the wire since the last call."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> TransactionEvent | None:
        """Pop the next event for the transaction user."""
        return self._events.popleft() if self._events else None

    def next_timer(self) -> float | None:
        """When :meth:`handle_timer` must next be called (absolute time), or ``None``.

        Never later than the next live timer; it may be the deadline of a timer that a
        state change made stale, in which case that call finds nothing to do.
        """
        if not self._txs:
            self._timers.clear()  # every entry left is stale
            return None
        return self._timers.next_deadline()

    def __len__(self) -> int:
        return len(self._txs)

    def get_request(self, key: str) -> Request | None:
        """The request a live transaction was created for."""
        tx = self._txs.get(key)
        return tx.request if tx is not None else None

    def find_invite_for_cancel(self, cancel: Request) -> str | None:
        """The INVITE server transaction a CANCEL targets (9.2): same key but for method."""
        key = server_key(cancel)
        invite_key = key[: key.rfind("|")] + "|INVITE"
        tx = self._txs.get(invite_key)
        if tx is None or tx.client:
            return None
        return invite_key

    def is_final_sent(self, key: str) -> bool:
        """Whether a server transaction already answered with a final response."""
        tx = self._txs.get(key)
        return tx is None or tx.state not in (TxState.TRYING, TxState.PROCEEDING)

    # -- internals -------------------------------------------------------------------
    def _arm(self, tx: _Tx, delay: float, name: str, now: float) -> None:
        self._timers.arm(now + delay, (tx.key, tx.generation, name))

    def _send(self, tx: _Tx, data: bytes) -> None:
        self._out.append(Outgoing(data, tx.dest, tx.transport))

    def _terminate(self, tx: _Tx) -> None:
        tx.state = TxState.TERMINATED
        tx.generation = next(self._seq)
        if self._txs.pop(tx.key, None) is not None and not tx.client:
            self._answered(tx.key)
        if tx.accept_key is not None:
            self._accepted.pop(tx.accept_key, None)

    def _answered(self, key: str) -> None:
        """A server transaction counted against its source is answered (or gone)."""
        ip = self._pending.pop(key, None)
        if ip is None:
            return
        held = self._per_source.get(ip, 0) - 1
        if held > 0:
            self._per_source[ip] = held
        else:
            self._per_source.pop(ip, None)

    @staticmethod
    def _retire(tx: _Tx) -> None:
        """Drop the message of a transaction that now only waits (timers D, I, J, K, L, M).

        Those waits last up to 32 s; at a hundred calls a second the parsed messages
        they would keep alive number in the hundreds of thousands of objects, walked by
        every run of the cyclic garbage collector. Repeats need only the bytes in ``out``.
        """
        tx.request = None

    def _enter(self, tx: _Tx, state: TxState) -> None:
        tx.state = state
        # The old state's timers no longer apply. Generations are unique across the
        # layer, so a later transaction with the same key (a stuck request copy arriving
        # after the first one ended) can never match a stale timer of the old one.
        tx.generation = next(self._seq)

    # -- client side (17.1) ------------------------------------------------------------
    def send_request(self, request: Request, dest: Address, transport: str, now: float) -> str:
        """Start a client transaction; ``request`` must carry its Via with a fresh branch."""
        branch = request.top_via.branch
        if not branch:
            raise SipUsageError("request has no Via branch")
        if request.method == "ACK":
            raise SipUsageError("ACK is not a transaction: use send_stateless")
        key = client_key(branch, request.method)
        if key in self._txs:
            raise SipUsageError(f"transaction {key} exists")
        tx = _Tx(key, request, dest, transport, client=True)
        tx.state = TxState.CALLING if request.method == "INVITE" else TxState.TRYING
        tx.interval = self.t1  # the layer's T1, not the module default
        tx.generation = next(self._seq)
        tx.out = request.serialize()
        self._txs[key] = tx
        self._send(tx, tx.out)
        if not tx.reliable:
            self._arm(tx, self.t1, "A" if request.method == "INVITE" else "E", now)
        self._arm(tx, 64 * self.t1, "B" if request.method == "INVITE" else "F", now)
        return key

    def send_stateless(self, message: Request | Response, dest: Address, transport: str) -> None:
        """Send outside any transaction (ACK for 2xx, 13.2.2.4; stray responses)."""
        self._out.append(Outgoing(message.serialize(), dest, transport))

    def cancel_timeout(self, key: str) -> None:
        """Forget a client transaction the TU abandoned (no more events)."""
        tx = self._txs.get(key)
        if tx is not None:
            self._terminate(tx)

    def _client_response(self, tx: _Tx, response: Response, now: float) -> None:
        status = response.status
        if tx.state is TxState.ACCEPTED:  # an INVITE's (RFC 6026 7.2)
            if 200 <= status < 300:
                # 2xx repeats go to the TU, which repeats its ACK.
                self._events.append(ResponseReceived(response, tx.key))
            return
        request = tx.request
        if request is None:  # a wait state: only the repeats handled below apply
            if tx.state is TxState.COMPLETED and tx.method == "INVITE" and status >= 300:
                self._send(tx, tx.out)  # 17.1.1.2: repeat ACK for a repeated final
            return
        if tx.method == "INVITE":
            if tx.state in (TxState.CALLING, TxState.PROCEEDING):
                if status < 200:
                    # 17.1.1.2 stops A and B in Proceeding; a guard like the proxy's
                    # Timer C (16.6, 3 min, refreshed by each provisional) keeps a
                    # vanished callee from holding the transaction forever.
                    self._enter(tx, TxState.PROCEEDING)
                    self._arm(tx, TIMER_C, "C", now)
                elif status < 300:
                    # RFC 6026 7.2: Accepted, Timer M absorbs 2xx repeats passed to the TU.
                    self.stats.final("client", tx.method, status)
                    self._enter(tx, TxState.ACCEPTED)
                    self._arm(tx, 64 * self.t1, "M", now)
                    self._retire(tx)
                else:
                    self.stats.final("client", tx.method, status)
                    self._enter(tx, TxState.COMPLETED)
                    tx.out = self._ack_for(request, response).serialize()
                    self._send(tx, tx.out)
                    # RFC 3261 17.1.1.2: "at least 32 s" over UDP, which is 64*T1 at the
                    # RFC's T1; a layer given a shorter T1 (test gateways) scales it too.
                    self._arm(tx, 0 if tx.reliable else 64 * self.t1, "D", now)
                    self._retire(tx)
                self._events.append(ResponseReceived(response, tx.key))
            return
        # non-INVITE (17.1.2.2)
        if tx.state in (TxState.TRYING, TxState.PROCEEDING):
            if status < 200:
                if tx.state is TxState.TRYING:
                    tx.state = TxState.PROCEEDING
                self._events.append(ResponseReceived(response, tx.key))
            else:
                self.stats.final("client", tx.method, status)
                self._enter(tx, TxState.COMPLETED)
                self._arm(tx, 0 if tx.reliable else self.t4, "K", now)
                self._retire(tx)
                self._events.append(ResponseReceived(response, tx.key))

    @staticmethod
    def _ack_for(request: Request, response: Response) -> Request:
        """ACK for a non-2xx final (17.1.1.3): same branch, To with the response's tag."""
        headers = Headers(
            [
                ("Via", request.headers.get_all("via")[0]),
                ("Max-Forwards", "70"),
                ("From", request.headers.get("from") or ""),
                ("To", response.headers.get("to") or ""),
                ("Call-ID", request.call_id),
                ("CSeq", f"{request.cseq.seq} ACK"),
            ]
        )
        for route in request.headers.get_all("route"):
            headers.add("Route", route)
        return Request("ACK", request.uri_text, headers)

    # -- server side (17.2) -------------------------------------------------------------
    def send_response(self, key: str, response: Response, now: float) -> None:
        """Answer through a server transaction (a 2xx to INVITE is retransmitted until ACK)."""
        tx = self._txs.get(key)
        if tx is None or tx.client:
            raise SipUsageError(f"no server transaction {key}")
        if tx.state not in (TxState.TRYING, TxState.PROCEEDING):
            raise SipUsageError(f"transaction {key} already answered finally")
        data = response.serialize()
        self._send(tx, data)
        tx.out = data
        status = response.status
        if status < 200:
            tx.state = TxState.PROCEEDING
            return
        self._answered(key)
        self.stats.final("server", tx.method, status)
        if tx.method == "INVITE":
            if status < 300:
                # RFC 6026 8.7 Accepted; the 2xx is repeated by T1 doubling (13.3.1.4).
                self._enter(tx, TxState.ACCEPTED)
                request = tx.request
                assert request is not None  # only wait states let it go
                tx.accept_key = (request.call_id, request.cseq.seq)
                self._accepted[tx.accept_key] = key
                tx.interval = self.t1
                if not tx.reliable:
                    self._arm(tx, self.t1, "G2xx", now)
                self._arm(tx, 64 * self.t1, "H2xx", now)
            else:
                self._enter(tx, TxState.COMPLETED)
                tx.interval = self.t1
                if not tx.reliable:
                    self._arm(tx, self.t1, "G", now)
                self._arm(tx, 64 * self.t1, "H", now)
                self._retire(tx)
        else:
            self._enter(tx, TxState.COMPLETED)
            self._arm(tx, 0 if tx.reliable else 64 * self.t1, "J", now)
            self._retire(tx)

    def _server_request(
        self, request: Request, source: Address, transport: str, now: float
    ) -> None:
        if request.method == "ACK":
            self._server_ack(request, source, transport, now)
            return
        key = server_key(request)
        tx = self._txs.get(key)
        if tx is not None:
            TransactionStats.bump(self.stats.repeats, tx.method)
            # A repeat: answer again with the last response, if any (17.2.1, 17.2.2).
            if tx.out and tx.state in (TxState.PROCEEDING, TxState.COMPLETED, TxState.ACCEPTED):
                self._send(tx, tx.out)
            elif (
                tx.method == "INVITE"
                and tx.state is TxState.PROCEEDING
                and self.trying_delay is not None
            ):
                self._send_trying(tx)  # the caller is already retransmitting: no more waiting
            return
        # 18.2.1 and RFC 3581 4: the top Via says where the request came from, so
        # that every response (copied from it, 8.2.6.2) tells the client its address.
        via = request.top_via
        stamped = via.stamped(source)
        if stamped is not via:
            request.set_top_via(stamped)
        # 18.2.2: responses go to the source IP and the Via port, or to the source
        # port as well when the client asked for rport (RFC 3581 4); on a stream, back
        # on the connection the request came in on.
        if transport == "udp" and not via.rport_requested:
            dest = (source[0], via.port or 5060)
        else:
            dest = source
        # Requests within a dialog (a To tag) and CANCELs belong to calls already
        # admitted: refusing a BYE or a CANCEL would leave a call up, so they are exempt.
        if self.max_per_source and request.to.tag is None and request.method != "CANCEL":
            held = self._per_source.get(source[0], 0)
            if held >= self.max_per_source:
                self.refused_sources.append(source[0])
                return
            self._per_source[source[0]] = held + 1
            self._pending[key] = source[0]
        tx = _Tx(key, request, dest, transport, client=False)
        tx.state = TxState.PROCEEDING if request.method == "INVITE" else TxState.TRYING
        tx.generation = next(self._seq)
        self._txs[key] = tx
        if tx.method == "INVITE" and self.trying_delay is not None:
            if self.trying_delay > 0:
                self._arm(tx, self.trying_delay, "Trying", now)
            else:
                self._send_trying(tx)
        self._events.append(RequestReceived(request, source, transport, key))

    def _send_trying(self, tx: _Tx) -> None:
        """100 (Trying) for an INVITE the TU has not answered yet (17.2.1, 8.2.6.1)."""
        request = tx.request
        if tx.out or request is None:
            return  # the TU has answered: its response is what repeats get
        timestamp = request.headers.get("timestamp")
        extra = [("Timestamp", timestamp)] if timestamp is not None else []
        tx.out = make_response(request, 100, extra=extra).serialize()
        self._send(tx, tx.out)

    def _server_ack(self, ack: Request, source: Address, transport: str, now: float) -> None:
        key = server_key(ack)
        tx = self._txs.get(key)
        if tx is not None and tx.state is TxState.COMPLETED:
            # ACK for our non-2xx final (17.2.1): Confirmed, then Timer I.
            self._enter(tx, TxState.CONFIRMED)
            self._arm(tx, 0 if tx.reliable else self.t4, "I", now)
            return
        if tx is not None and tx.state is TxState.CONFIRMED:
            return  # repeated ACK, absorbed
        # ACK for a 2xx is its own request (13.2.2.4): stop our 2xx repeats, pass it up.
        # The INVITE transaction stays Accepted until Timer L (RFC 6026 8.7) so that a
        # late copy of the INVITE is absorbed instead of starting a second call.
        inv_key = self._accepted.pop((ack.call_id, ack.cseq.seq), None)
        if inv_key is not None:
            inv = self._txs.get(inv_key)
            if inv is not None:
                self._enter(inv, TxState.ACCEPTED)
                self._arm(inv, 64 * self.t1, "L", now)
                self._retire(inv)
        self._events.append(RequestReceived(ack, source, transport, None))

    # -- inputs ---------------------------------------------------------------------
    def receive(
        self, message: Request | Response, source: Address, transport: str, now: float
    ) -> None:
        """Feed a parsed message from the transport (17.1.3 and 17.2.3 matching)."""
        if isinstance(message, Request):
            self._server_request(message, source, transport, now)
            return
        branch = message.top_via.branch
        if branch is None:
            return
        tx = self._txs.get(client_key(branch, message.cseq.method))
        if tx is None:
            # Stray response (17.1.3): a 2xx repeat after Timer M is still useful to the
            # TU (it must ACK again); anything else is dropped.
            if 200 <= message.status < 300 and message.cseq.method == "INVITE":
                self._events.append(StrayResponse(message))
            return
        self._client_response(tx, message, now)

    def transport_failed(self, key: str) -> None:
        """The edge could not send for this transaction (17.1.4): end it with an event."""
        tx = self._txs.get(key)
        if tx is None:
            return
        self._terminate(tx)
        self._events.append(TransportError(key, tx.method, tx.client))

    def unreachable(self, dest: Address, transport: str) -> None:
        """The edge could not open a connection to ``dest`` (refused, or a TLS handshake
        that failed): each client transaction still waiting on it ends now with a
        TransportError (17.1.4), not after Timer B or F."""
        waiting = (TxState.CALLING, TxState.TRYING, TxState.PROCEEDING)
        for key in [
            k
            for k, tx in self._txs.items()
            if tx.client and tx.dest == dest and tx.transport == transport and tx.state in waiting
        ]:
            self.transport_failed(key)

    def handle_timer(self, now: float) -> None:
        """Fire every timer due at ``now`` (RFC 3261 17 figures 5-8, RFC 6026)."""
        # Firing may arm timers already due (zero waits on a reliable transport).
        while due := self._timers.pop_due(now):
            for key, generation, name in due:
                tx = self._txs.get(key)
                if tx is not None and tx.generation == generation:
                    self._fire(tx, name, now)

    def _fire(self, tx: _Tx, name: str, now: float) -> None:
        if name == "Trying":
            if tx.state is TxState.PROCEEDING:
                self._send_trying(tx)
        elif name in ("A", "E", "G", "G2xx"):
            self._send(tx, tx.out)
            TransactionStats.bump(self.stats.retransmissions, tx.method)
            if name == "A":
                tx.interval *= 2  # A doubles without cap (17.1.1.2)
            else:
                tx.interval = min(2 * tx.interval, self.t2)
            if name == "E" and tx.state is TxState.PROCEEDING:
                tx.interval = self.t2  # 17.1.2.2: E fires every T2 in Proceeding
            self._arm(tx, tx.interval, name, now)
        elif name in ("B", "C", "F"):
            self._terminate(tx)
            TransactionStats.bump(self.stats.timeouts, tx.method)
            self._events.append(TransactionTimeout(tx.key, tx.method, client=True))
        elif name == "H":
            self._terminate(tx)
            TransactionStats.bump(self.stats.timeouts, tx.method)
            self._events.append(TransactionTimeout(tx.key, tx.method, client=False))
        elif name == "H2xx":
            self._terminate(tx)
            TransactionStats.bump(self.stats.timeouts, tx.method)
            assert tx.request is not None  # Accepted before the ACK keeps it
            self._events.append(AckTimeout(tx.key, tx.request))
        else:  # D, I, J, K, L, M: the wait states end
            self._terminate(tx)
