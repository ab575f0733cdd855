"""The asyncio edge of the SIP stack: UDP, TCP and TLS sockets around the sans-IO core.

One :class:`SipEndpoint` owns the sockets, one :class:`TransactionLayer` and a single
re-armed timer, in the manner of aioquic's protocol classes: bytes in -> parse -> feed
the layer -> hand its events to the transaction user -> write what it queued.

SIP over TLS (RFC 3261 26.2, RFC 5630) runs on its own port (5061 by default) with the
standard library's ``ssl``: TLS 1.2 with AEAD ciphers and forward secrecy, or TLS 1.3,
nothing older. Stream connections (TCP and TLS) are bounded per source address and in
total, and each accepted connection is counted before any TLS handshake starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, cast

from gateway.edge.bounds import TOTAL, ConnectionBounds
from gateway.model.loops import stop_reading
from gateway.sip.errors import SipParseError
from gateway.sip.guard import FloodGuard
from gateway.sip.message import (
    VIA_MEMO,
    Request,
    Response,
    StreamFramer,
    Via,
    parse_message,
    salvage_error_response,
)
from gateway.sip.timers import DEFAULT_TICK
from gateway.sip.transaction import T1, T2, T4, Address, TransactionEvent, TransactionLayer

log = logging.getLogger(__name__)

UDP_RCVBUF = 4 * 1024 * 1024
# With port 0 (any free port) UDP picks the number and TCP must take the same one, which
# another program may hold on TCP alone: so many picks before giving up.
ANY_PORT_ATTEMPTS = 8
UDP_BATCH = 64  # datagrams read per wake-up before yielding to other callbacks
# The transaction timers are armed on this grid (seconds), the layer's bucket width: SIP
# timers are 100 ms (the 100 Trying) and up, so firing up to 50 ms late changes nothing
# on the wire, while it gathers the many deadlines of a busy gateway into a few wake-ups.
TIMER_GRID = DEFAULT_TICK


def transaction_layer(t1: float = T1) -> TransactionLayer:
    """A transaction layer on timer T1 (seconds), with T2 and T4 kept in the RFC's ratios.

    RFC 3261 17.1.1.1 lets a closed network choose a T1 below 500 ms; tests do, so that
    a UDP transaction ends in seconds rather than the 32 s of 64*T1 (Timers B, F, H, J,
    L, M). T2 (the cap of the doubling retransmissions) and T4 (Timers I and K) follow,
    8 and 10 times T1 as in Table 4, so every wait shrinks alike. Timer D is not a
    multiple of T1 in the layer (17.1.1.2 asks for at least 32 s): it stays 32 s.
    """
    if not (math.isfinite(t1) and t1 > 0):
        raise ValueError(f"T1 must be a positive number of seconds, not {t1!r}")
    return TransactionLayer(t1=t1, t2=t1 * (T2 / T1), t4=t1 * (T4 / T1))


class TransactionUser(Protocol):
    """The layer above transactions (RFC 3261 section 8/12/13: UA core, registrar, B2BUA)."""

    def handle_event(self, event: TransactionEvent) -> None:
        """Consume one transaction event; may call back into the endpoint to send."""


class EndpointCounters:
    """Plain counters read by the metrics exporter (cheaper than labels on the hot path)."""

    __slots__ = (
        "parse_errors",
        "received",
        "refused_transactions",
        "send_errors",
        "sent",
        "tls_handshake_failures",
    )

    def __init__(self) -> None:
        self.received = 0
        self.sent = 0
        self.parse_errors = 0
        self.send_errors = 0
        self.refused_transactions = 0  # requests over the per-source transaction bound
        self.tls_handshake_failures = 0


# TLS 1.2 suites kept: ECDHE key exchange (forward secrecy) with an AEAD cipher only.
# TLS 1.3 suites are all AEAD and are not set through this string (OpenSSL keeps them).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
TLS_HANDSHAKE_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """The TLS listener and client: certificate chain and key (PEM files), the port,
    and the CA file that client certificates (``verify_clients``) and the certificates
    of stations called over TLS are checked against (None: the system's CAs)."""

    cert: Path
    key: Path
    port: int = 5061
    ca: Path | None = None
    verify_clients: bool = False


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Bounds on stream connections (TCP and TLS together) and server transactions.

    RFC 3261 26.3.2.4 asks a server to protect itself against denial of service: one
    source may hold ``per_source`` connections and ``transactions_per_source`` server
    transactions not yet answered, everyone together ``total`` connections; 0 lifts a
    bound.
    """

    per_source: int = 32
    total: int = 4096
    transactions_per_source: int = 1024


def _tls_context(settings: TlsSettings, *, server: bool) -> ssl.SSLContext:
    """A context with TLS 1.2+ and AEAD suites only (RFC 7525 4.2), certificate loaded."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(settings.cert, settings.key)
    if server:
        if settings.verify_clients:
            ctx.verify_mode = ssl.CERT_REQUIRED
        if settings.ca is not None:
            ctx.load_verify_locations(settings.ca)
        elif settings.verify_clients:
            ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    else:
        # A station is called by its address (RFC 5922 7.2: its certificate names it).
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        if settings.ca is not None:
            ctx.load_verify_locations(settings.ca)
        else:
            ctx.load_default_certs()
    return ctx


class _TcpConnection(asyncio.Protocol):
    def __init__(
        self,
        endpoint: SipEndpoint,
        kind: str = "tcp",
        *,
        outgoing: bool = False,
        peer: Address | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.kind = kind  # "tcp" or "tls": the transport name messages carry up
        self.outgoing = outgoing
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Address = peer or ("", 0)
        # Holds a place in the endpoint's connection counts: an accepted TLS connection
        # (``peer`` given) was counted at accept time, before its handshake.
        self.counted = peer is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport implements asyncio.Transport without subclassing it.
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        endpoint = self.endpoint
        if not self.outgoing and not self.counted:
            if not endpoint._admit_connection(self.peer[0]):
                transport.close()
                return
            self.counted = True
        self.transport = cast(asyncio.Transport, transport)
        endpoint._streams(self.kind)[self.peer] = self

    def _release(self) -> None:
        if self.counted:
            self.counted = False
            self.endpoint._connection_closed(self.peer[0])

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.framer.feed(data)
        except SipParseError as exc:
            # A broken stream cannot be resynchronised (18.3): answer if we can, then close.
            self.endpoint.counters.parse_errors += 1
            log.info("closing TCP %s:%s: %s", *self.peer, exc.reason)
            reply = salvage_error_response(
                bytes(self.framer._buf), exc.status, exc.reason, self.peer
            )
            if reply is not None and self.transport is not None:
                self.transport.write(reply)
            if self.transport is not None:
                self.transport.close()
            return
        for raw in messages:
            self.endpoint.data_received(raw, self.peer, self.kind, stream=True)

    def connection_lost(self, exc: Exception | None) -> None:
        table = self.endpoint._streams(self.kind)
        if table.get(self.peer) is self:
            del table[self.peer]
        self._release()


class SipEndpoint:
    """UDP and TCP listeners plus the transaction layer and its timer."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        layer: TransactionLayer | None = None,
        t1: float = T1,
        tls: TlsSettings | None = None,
        limits: ConnectionLimits | None = None,
        wire: Callable[[bytes, Address, str], None] | None = None,
    ) -> None:
        """``t1`` sets the timers of the layer built here (see :func:`transaction_layer`);
        ``tls`` adds the TLS listener and client, ``limits`` bounds connections.
        ``wire``, when given, takes every outgoing message (data, destination,
        transport) in place of the sockets: the in-memory tests' network."""
        if layer is not None and t1 != T1:
            raise ValueError("give either a transaction layer or its T1, not both")
        self.host = host
        self.port = port
        # Not ``layer or ...``: an empty layer is falsy (it has a length).
        self.layer = layer if layer is not None else transaction_layer(t1)
        self.counters = EndpointCounters()
        # The per-source rate limit (RFC 3261 26.3.2.4 asks for some DoS protection),
        # set by the UA from the dialplan; None: none.
        self.flood: FloodGuard | None = None
        self.tu: TransactionUser | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: socket.socket | None = None
        self._tcp_server: asyncio.AbstractServer | None = None
        self._tcp: dict[Address, _TcpConnection] = {}
        self._tls: dict[Address, _TcpConnection] = {}
        self._connecting: dict[tuple[str, Address], list[bytes]] = {}
        self.tls_settings = tls
        self.tls_port: int | None = None
        self._tls_server: ssl.SSLContext | None = None
        self._tls_client: ssl.SSLContext | None = None
        self._tls_socket: socket.socket | None = None
        self._tls_accepting: asyncio.Task[None] | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self.limits = limits if limits is not None else ConnectionLimits()
        self.layer.max_per_source = self.limits.transactions_per_source
        self.bounds = ConnectionBounds(self.limits.per_source, self.limits.total)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._pumping = False
        self._wire = wire

    # -- life cycle -------------------------------------------------------------------
    async def start(self, *, tcp: bool = True) -> None:
        """Bind the UDP socket and, unless told otherwise, the TCP listener."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        any_port = self.port == 0
        for attempt in range(1, ANY_PORT_ATTEMPTS + 1):
            sock = self._bind_udp()
            if not tcp:
                break
            try:
                self._tcp_server = await loop.create_server(
                    lambda: _TcpConnection(self), self.host, self.port, reuse_address=True
                )
                break
            except OSError as exc:
                stop_reading(loop, sock.fileno())
                sock.close()
                self._udp = None
                if not (any_port and exc.errno == errno.EADDRINUSE) or attempt == ANY_PORT_ATTEMPTS:
                    raise
                self.port = 0  # the number UDP got is taken on TCP: another pick
        if self.tls_settings is not None:
            await self.start_tls(self.tls_settings)

    def _bind_udp(self) -> socket.socket:
        """Bind the UDP socket on ``self.port`` (0: any), which then holds its number.

        A plain non-blocking socket read in batches from add_reader costs a fraction of a
        datagram transport per message (one callback per wake-up, no wrapper objects).
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            # A burst (or a pause of the loop) must not overflow the kernel's queue: lost
            # responses cost a retransmission cycle. Linux caps this at net.core.rmem_max.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RCVBUF)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self._udp = sock
        self.port = sock.getsockname()[1]
        self.loop.add_reader(sock.fileno(), self._udp_readable)
        return sock

    async def start_tls(self, settings: TlsSettings) -> None:
        """Load the certificate and open the TLS listener (RFC 3261 26.2: sips, 5061).

        The endpoint accepts on a plain listening socket: each connection is counted
        against the limits first, then its handshake runs with the context of the moment
        (``connect_accepted_socket``), so :meth:`reload_tls` takes effect on the next one.
        """
        self._tls_server = _tls_context(settings, server=True)
        self._tls_client = _tls_context(settings, server=False)
        self.tls_settings = settings
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, settings.port))
            listener.listen(256)
            listener.setblocking(False)
        except OSError:
            listener.close()
            raise
        self._tls_socket = listener
        self.tls_port = listener.getsockname()[1]
        self._tls_accepting = self.loop.create_task(self._accept_tls(listener))

    async def _accept_tls(self, listener: socket.socket) -> None:
        loop = self.loop
        while True:
            try:
                sock, addr = await loop.sock_accept(listener)
            except OSError as exc:
                log.warning("TLS accept failed: %s", exc)
                await asyncio.sleep(0.1)  # out of descriptors: let some close
                continue
            peer = (addr[0], addr[1])
            if not self._admit_connection(peer[0]):
                sock.close()
                continue
            task = loop.create_task(self._tls_handshake(sock, peer))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _tls_handshake(self, sock: socket.socket, peer: Address) -> None:
        conn = _TcpConnection(self, "tls", peer=peer)
        try:
            ctx = self._tls_server
            if ctx is None:
                raise ssl.SSLError("TLS is not configured")
            await self.loop.connect_accepted_socket(
                lambda: conn, sock, ssl=ctx, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT
            )
        except OSError as exc:  # ssl.SSLError and TimeoutError included
            self.counters.tls_handshake_failures += 1
            log.info("TLS handshake with %s:%s failed: %s", peer[0], peer[1], exc)
            sock.close()
            conn._release()

    def reload_tls(self) -> tuple[bool, str]:
        """Read the certificate and key again (a renewal): new handshakes use them, the
        connections and calls already up keep theirs. A broken pair is refused and the
        running one stays."""
        settings = self.tls_settings
        if settings is None or self._tls_server is None:
            return True, "no TLS"
        try:
            server = _tls_context(settings, server=True)
            client = _tls_context(settings, server=False)
        except OSError as exc:  # ssl.SSLError included
            log.error("TLS certificate reload refused, keeping the running one: %s", exc)
            return False, str(exc)
        self._tls_server, self._tls_client = server, client
        log.info("TLS certificate reloaded from %s", settings.cert)
        return True, "reloaded"

    # -- connection bounds --------------------------------------------------------------
    def _admit_connection(self, ip: str) -> bool:
        """Count an accepted stream connection, or refuse it over a bound (26.3.2.4)."""
        refused = self.bounds.admit(ip)
        if refused is None:
            return True
        if refused == TOTAL:
            self._log_refusal(ip, f"{self.bounds.open} connections open in total")
        else:
            self._log_refusal(ip, f"{self.bounds.held(ip)} connections open from this source")
        return False

    def _connection_closed(self, ip: str) -> None:
        self.bounds.release(ip)

    def _log_refusal(self, ip: str, why: str) -> None:
        """One warning per source a minute: a flood must not flood the log as well."""
        if self.bounds.should_log(ip, time.monotonic()):
            log.warning("refused from %s: %s", ip, why)

    @property
    def open_connections(self) -> int:
        """Stream connections accepted and open now (TCP and TLS, handshakes included)."""
        return self.bounds.open

    def _streams(self, kind: str) -> dict[Address, _TcpConnection]:
        return self._tls if kind == "tls" else self._tcp

    async def close(self) -> None:
        """Close every socket and stop the timer."""
        if self._timer is not None:
            self._timer.cancel()
        if self._udp is not None:
            if self._loop is not None:
                stop_reading(self._loop, self._udp.fileno())
            self._udp.close()
            self._udp = None
        for conn in [*self._tcp.values(), *self._tls.values()]:
            if conn.transport is not None:
                conn.transport.close()
        if self._tls_accepting is not None:
            self._tls_accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tls_accepting
        for task in list(self._handshakes):
            task.cancel()
        if self._tls_socket is not None:
            self._tls_socket.close()
            self._tls_socket = None
        if self._tcp_server is not None:
            self._tcp_server.close()
            await self._tcp_server.wait_closed()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the endpoint runs on, for the layers above to arm their timers.

        Kept rather than asked for: on Python 3.11 every ``asyncio.get_running_loop()``
        checks the process id with a ``getpid`` system call, several times per call.
        """
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def now(self) -> float:
        """The clock the transaction layer runs on (the loop's monotonic time)."""
        assert self._loop is not None
        return self._loop.time()

    # -- receive path -------------------------------------------------------------------
    def _udp_readable(self) -> None:
        sock = self._udp
        if sock is None:
            return
        recv = sock.recvfrom
        for _ in range(UDP_BATCH):
            try:
                data, addr = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP port unreachable from a vanished peer surfaces here on Linux; the
                # transaction that sent to it times out on its own.
                log.debug("udp receive error: %s", exc)
                continue
            self.data_received(data, (addr[0], addr[1]), "udp")

    def data_received(
        self, data: bytes, source: Address, transport: str, *, stream: bool = False
    ) -> None:
        """One datagram or one framed stream message arrived."""
        self.counters.received += 1
        flood = self.flood
        if flood is not None and not flood.admit(source[0], self.now()):
            if flood.started:
                for ban in flood.started:
                    log.warning(
                        "flood from %s: %d messages over the rate limit, banned for %.0f s",
                        ban.key,
                        ban.failures,
                        ban.until - ban.since,
                    )
                flood.started.clear()
            return  # dropped unread: an answer would feed the flood
        if flood is not None and flood.ended:
            for ban in flood.ended:
                log.warning("flood ban of %s ended", ban.key)
            flood.ended.clear()
        if data in (b"\r\n\r\n", b"\r\n"):
            if transport == "udp" and data == b"\r\n\r\n":
                self._write(b"\r\n", source, transport)  # RFC 5626 4.4.1 keep-alive pong
            return
        try:
            message = parse_message(data, stream=stream)
        except SipParseError as exc:
            self.counters.parse_errors += 1
            log.info("bad message from %s:%s: %s", source[0], source[1], exc.reason)
            reply = salvage_error_response(data, exc.status, exc.reason, source)
            if reply is not None:
                self._write(reply, source, transport)
            return
        layer = self.layer
        layer.receive(message, source, transport, self.now())
        if layer.refused_sources:
            for ip in layer.refused_sources:
                self.counters.refused_transactions += 1
                self._log_refusal(ip, "too many transactions from this source")
            layer.refused_sources.clear()
        self._pump()

    # -- send path ----------------------------------------------------------------------
    def send_request(self, request: Request, dest: Address, transport: str) -> str:
        """Start a client transaction and send (the request's Via must be set)."""
        key = self.layer.send_request(request, dest, transport, self.now())
        self._flush_if_idle()
        return key

    def send_response(self, key: str, response: Response) -> None:
        """Answer through a server transaction."""
        self.layer.send_response(key, response, self.now())
        self._flush_if_idle()

    def send_stateless(self, message: Request | Response, dest: Address, transport: str) -> None:
        """Send outside a transaction (ACK for 2xx)."""
        self.layer.send_stateless(message, dest, transport)
        self._flush_if_idle()

    def via_for(self, transport: str, branch: str) -> str:
        """Our Via value for a new request (18.1.1), asking for rport (RFC 3581).

        The parsed form goes into the Via memo at once: the transaction layer reads the
        branch back from the request, and each response brings the same text back.
        """
        transport, host = transport.upper(), self.host
        port = self._port_for(transport)
        text = f"SIP/2.0/{transport} {host}:{port};branch={branch};rport"
        if ":" not in host:  # an IPv6 literal would need brackets: left to the parser
            VIA_MEMO.seed(
                text, Via(transport, host.lower(), port, {"branch": branch, "rport": None})
            )
        return text

    def _port_for(self, transport: str) -> int:
        """Our listening port for a transport: the TLS port for TLS, else the SIP port."""
        if transport.lower() == "tls" and self.tls_port is not None:
            return self.tls_port
        return self.port

    def contact_uri(self, transport: str, user: str = "vrgw") -> str:
        """The Contact URI legs put in dialog-creating messages (transport=tls over
        TLS, RFC 3261 26.2.2 / RFC 5630 3.1.2, rather than a sips: URI)."""
        suffix = f";transport={transport}" if transport in ("tcp", "tls") else ""
        return f"sip:{user}@{self.host}:{self._port_for(transport)}{suffix}"

    def _flush_if_idle(self) -> None:
        if not self._pumping:
            self._pump()

    def _pump(self) -> None:
        """Drain events to the TU, then write out and re-arm the timer."""
        if self._pumping:
            return
        self._pumping = True
        try:
            layer = self.layer
            tu = self.tu
            while (event := layer.next_event()) is not None:
                if tu is not None:
                    try:
                        tu.handle_event(event)
                    except Exception:  # a TU bug must not take the endpoint down
                        log.exception("transaction user failed on %r", type(event).__name__)
            for out in layer.datagrams_to_send():
                self._write(out.data, out.dest, out.transport)
        finally:
            self._pumping = False
        self._rearm()

    def _rearm(self) -> None:
        """Keep one loop timer no later than the layer's next deadline (on the grid).

        The timer is moved only when a deadline comes *earlier* than the armed one; when
        the earliest deadline goes away or gets later (a transaction ended), the armed
        timer is left to fire early, finds nothing due and re-arms. That spares a cancel
        and a new loop handle on almost every message.
        """
        when = self.layer.next_timer()
        if when is None:
            return
        when = math.ceil(when / TIMER_GRID) * TIMER_GRID
        armed = self._timer_when
        if armed is not None and armed <= when:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_when = when
        assert self._loop is not None
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_when = None
        self.layer.handle_timer(self.now())
        self._pump()

    def _write(self, data: bytes, dest: Address, transport: str) -> None:
        self.counters.sent += 1
        if self._wire is not None:
            self._wire(data, dest, transport)
            return
        if transport == "udp":
            if self._udp is not None:
                try:
                    self._udp.sendto(data, dest)
                except (BlockingIOError, InterruptedError):
                    self.counters.send_errors += 1  # full send queue: retransmission covers it
                except OSError as exc:
                    self.counters.send_errors += 1
                    log.debug("udp send to %s:%s failed: %s", dest[0], dest[1], exc)
            return
        kind = "tls" if transport == "tls" else "tcp"
        conn = self._streams(kind).get(dest)
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)
            return
        pending = self._connecting.get((kind, dest))
        if pending is not None:
            pending.append(data)
            return
        self._connecting[(kind, dest)] = [data]
        assert self._loop is not None
        self._loop.create_task(self._connect(dest, kind))

    async def _connect(self, dest: Address, kind: str = "tcp") -> None:
        """Open an outgoing TCP or TLS connection (18.1.1, 26.2) and flush what waited."""
        assert self._loop is not None
        try:
            if kind == "tls":
                if self._tls_client is None:
                    raise OSError("TLS is not configured (vrgw run --tls-cert, --tls-key)")
                await self._loop.create_connection(
                    lambda: _TcpConnection(self, "tls", outgoing=True),
                    dest[0],
                    dest[1],
                    ssl=self._tls_client,
                    server_hostname=dest[0],
                    ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
                )
            else:
                await self._loop.create_connection(
                    lambda: _TcpConnection(self, outgoing=True), dest[0], dest[1]
                )
        except OSError as exc:  # ssl.SSLError and TimeoutError included
            dropped = self._connecting.pop((kind, dest), [])
            self.counters.send_errors += len(dropped)
            log.warning("%s connect to %s:%s failed: %s", kind.upper(), dest[0], dest[1], exc)
            self.layer.unreachable(dest, kind)  # RFC 3261 17.1.4: the transactions fail
            self._pump()
            return
        queued = self._connecting.pop((kind, dest), [])
        conn = self._streams(kind).get(dest)
        if conn is not None and conn.transport is not None:
            for data in queued:
                conn.transport.write(data)
