"""The asyncio edge of H.323 call signalling: TCP connections around the sans-IO calls.

H.225.0 call signalling runs on TCP (port 1720 by default), each Q.931 message in a
TPKT packet (RFC 1006 6, H.225.0 7.1), one call per connection here. An
:class:`H323Connection` owns one connection and one :class:`~gateway.h323.call.H323Call`,
and, when the peer does not tunnel H.245 (H.323 8.2.1), the separate H.245 connection
the call asks for. After every input (bytes, a timer, a command of the leg) it
*pumps*: writes what the call queued, re-arms the call's one timer and hands the call's
events to its :class:`CallHandler`, the call leg. :class:`H323SignallingEndpoint`
listens for incoming calls and opens outgoing ones.

The listener protects itself as the SIP one does (issue 13; H.225.0 sets no such
limits, RFC 3261 26.3.2.4 is the model): accepted connections are bounded per source
address and in total (:class:`~gateway.edge.bounds.ConnectionBounds`; one over a bound
is closed before a byte is read), a TPKT may not exceed
:data:`~gateway.h323.tpkt.SIGNALLING_MAX_PACKET` (a broken stream closes its own
connection and no other), and a connection that has not brought a Setup within
``setup_timeout`` seconds is closed (nothing in H.225.0 7.1 would ever end it). The
gateway never gives an ``h245Address`` of its own, so it accepts no H.245 connection:
the only separate H.245 connections are those it opens, one per call at most, with the
same TPKT bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

from gateway.edge.bounds import ConnectionBounds
from gateway.edge.sip_transport import ConnectionLimits
from gateway.h323 import tpkt
from gateway.h323.call import CallState, Event, H323Call, OpenH245Connection
from gateway.h323.errors import H323ParseError

log = logging.getLogger(__name__)

Address = tuple[str, int]
DEFAULT_PORT = 1720  # the well-known TCP port of H.225.0 call signalling
CONNECT_TIMEOUT = 5.0  # seconds to open a connection to a station before giving up
# Seconds an accepted connection may stay open without a Setup (a unit sends it at once:
# H.225.0 8.1 opens the connection to send it; T303 on the caller's side is 4 s).
SETUP_TIMEOUT = 10.0


class SignallingCounters:
    """Plain counters of the listener, read by the metrics exporter."""

    __slots__ = ("broken_streams", "setup_timeouts")

    def __init__(self) -> None:
        self.broken_streams = 0  # connections closed on a bad TPKT (RFC 1006 6)
        self.setup_timeouts = 0  # accepted connections closed for want of a Setup


class CallHandler(Protocol):
    """Who the call's events go to: the call leg."""

    def on_h323_events(self, events: list[Event]) -> None:
        """Events of the call, in order."""

    def on_connection_lost(self, reason: str) -> None:
        """The signalling connection failed or closed before the call was released."""


IncomingCall = Callable[["H323Connection"], CallHandler | None]


class _Stream(asyncio.Protocol):
    """One TCP connection carrying TPKT packets to a callback."""

    def __init__(
        self,
        on_payload: Callable[[bytes], None],
        on_lost: Callable[[str], None],
        on_made: Callable[[asyncio.Transport], None] | None = None,
        on_broken: Callable[[str], None] | None = None,
    ) -> None:
        self.framer = tpkt.TpktFramer(tpkt.SIGNALLING_MAX_PACKET)
        self.transport: asyncio.Transport | None = None
        self.on_payload = on_payload
        self.on_lost = on_lost
        self.on_made = on_made
        self.on_broken = on_broken

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass: cast, not assert.
        self.transport = cast(asyncio.Transport, transport)
        if self.on_made is not None:
            self.on_made(self.transport)

    def data_received(self, data: bytes) -> None:
        try:
            payloads = self.framer.feed(data)
        except H323ParseError as exc:
            # A broken TPKT stream cannot be re-synchronised: this connection is lost,
            # and only this one (its call, if any, ends as on any lost connection).
            if self.on_broken is not None:
                self.on_broken(exc.reason)
            else:
                log.warning("H.323: bad TPKT stream: %s", exc.reason)
            if self.transport is not None:
                self.transport.abort()
            return
        for payload in payloads:
            if payload:  # an empty TPKT is a keep-alive
                self.on_payload(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.on_lost(str(exc) if exc else "closed by the peer")

    @property
    def writable(self) -> bool:
        """Connected and not closing: what the call queued may be taken and written."""
        return self.transport is not None and not self.transport.is_closing()

    def send(self, payloads: list[bytes]) -> None:
        if self.transport is not None and payloads:
            self.transport.writelines([tpkt.encode(p) for p in payloads])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class H323Connection:
    """One H.323 call and the connections that carry it (signalling, separate H.245)."""

    def __init__(
        self,
        call: H323Call,
        loop: asyncio.AbstractEventLoop,
        on_closed: Callable[[H323Connection], None] | None = None,
    ) -> None:
        self.call = call
        self.loop = loop
        self.handler: CallHandler | None = None
        self.peer: Address | None = None
        self._on_closed = on_closed
        self._signalling: _Stream | None = None
        self._h245: _Stream | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._setup_timer: asyncio.TimerHandle | None = None
        self.counted: str | None = None  # the source whose bound this connection holds

    def now(self) -> float:
        """The clock the call's timers run on (the loop's monotonic time)."""
        return self.loop.time()

    # -- wiring -------------------------------------------------------------------------

    def stream(
        self,
        on_made: Callable[[asyncio.Transport], None] | None = None,
        on_broken: Callable[[str], None] | None = None,
    ) -> _Stream:
        """The protocol object of the signalling connection."""
        self._signalling = _Stream(self._on_payload, self._on_lost, on_made, on_broken)
        return self._signalling

    def expect_setup(self, timeout: float, on_timeout: Callable[[], None]) -> None:
        """Close the connection if no Setup has come within ``timeout`` seconds (an
        accepted connection); ``on_timeout`` runs first."""

        def check() -> None:
            self._setup_timer = None
            if not self._closed and not self.call.ended and self.call.state is CallState.NULL:
                on_timeout()
                self._on_lost(f"no Setup within {timeout:g} s")

        self._setup_timer = self.loop.call_later(timeout, check)

    def _spawn(self, step: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(step)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def open(self, address: Address) -> None:
        """Connect to ``address`` (an outgoing call) and send what the call queued."""
        self.peer = address
        try:
            await asyncio.wait_for(
                self.loop.create_connection(self.stream, address[0], address[1]),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            self._on_lost(f"cannot connect to {address[0]}:{address[1]}: {exc or 'timeout'}")
            return
        self.pump()

    def _on_payload(self, payload: bytes) -> None:
        self.call.receive(payload, self.loop.time())
        self.pump()

    def _on_h245_payload(self, payload: bytes) -> None:
        self.call.receive_h245(payload, self.loop.time())
        self.pump()

    def _on_lost(self, reason: str) -> None:
        if self._closed:
            return
        self.close()
        if not self.call.ended:
            # The engine stops its timers; the leg, which knows whether the station was
            # ever reached, tells the controller (its events here would say less).
            self.call.connection_lost(reason, self.loop.time())
            self.call.events()
            if self.handler is not None:
                self.handler.on_connection_lost(reason)

    def _on_h245_lost(self, reason: str) -> None:
        self._h245 = None
        log.debug("H.323: separate H.245 connection closed: %s", reason)

    async def _open_h245(self, address: Address) -> None:
        # The same TPKT bound as the signalling connection: junk on it closes it alone.
        stream = _Stream(self._on_h245_payload, self._on_h245_lost)
        try:
            await asyncio.wait_for(
                self.loop.create_connection(lambda: stream, address[0], address[1]),
                CONNECT_TIMEOUT,
            )
        except (OSError, TimeoutError) as exc:
            log.warning("H.323: cannot open H.245 to %s:%d: %s", *address, exc)
            return  # the call's H.245 timers end it
        self._h245 = stream
        self.call.h245_connected(self.loop.time())
        self.pump()

    # -- the pump -----------------------------------------------------------------------

    def pump(self) -> None:
        """Write what the call queued, re-arm its timer, hand its events on.

        What the call queues before its connection is up (a leg's hang-up while an
        outgoing connection is being opened) stays queued until it is.
        """
        signalling = self._signalling
        if signalling is not None and signalling.writable:
            signalling.send(self.call.data_to_send())
        if self._h245 is not None and self._h245.writable:
            self._h245.send(self.call.h245_data_to_send())
        events = self.call.events()
        for event in events:
            if isinstance(event, OpenH245Connection):
                self._spawn(self._open_h245(event.address))
        self._arm()
        if events and self.handler is not None:
            self.handler.on_h323_events(events)
        if self.call.ended and signalling is not None and signalling.writable:
            # The last messages are written: closing flushes them first.
            signalling.send(self.call.data_to_send())
            self.close()

    def _arm(self) -> None:
        deadline = self.call.next_deadline()
        if deadline == self._timer_at:
            return
        self._cancel_timer()
        if deadline is not None:
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self.call.on_timer(self.loop.time())
        self.pump()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None

    def close(self) -> None:
        """Close both connections (after the call's last message went out)."""
        if self._closed and self._signalling is None:
            return
        self._closed = True
        self._cancel_timer()
        if self._setup_timer is not None:
            self._setup_timer.cancel()
            self._setup_timer = None
        for stream in (self._h245, self._signalling):
            if stream is not None:
                stream.close()
        self._h245 = self._signalling = None
        if self._on_closed is not None:
            self._on_closed(self)


async def accepts_connections(address: Address, timeout: float = CONNECT_TIMEOUT) -> bool:
    """Whether an H.323 unit's call signalling port takes a TCP connection now (the
    station keep-alive; the connection is closed at once, before any message)."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address[0], address[1]), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class H323SignallingEndpoint:
    """Listens for H.225.0 calls and opens connections for outgoing ones.

    ``limits`` bounds the accepted connections per source and in total (the SIP
    listener's :class:`~gateway.edge.sip_transport.ConnectionLimits`, counted apart;
    its transaction bound means nothing here: one call per connection). Outgoing
    connections (calls to stations, keep-alive probes) are not counted.
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        limits: ConnectionLimits | None = None,
        setup_timeout: float = SETUP_TIMEOUT,
    ) -> None:
        self.host = host
        self.port = port
        self.incoming: IncomingCall | None = None
        self._server: asyncio.Server | None = None
        self.connections: set[H323Connection] = set()
        limits = limits if limits is not None else ConnectionLimits()
        self.bounds = ConnectionBounds(limits.per_source, limits.total)
        self.setup_timeout = setup_timeout
        self.counters = SignallingCounters()

    def now(self) -> float:
        """The clock the calls' timers run on (the loop's monotonic time)."""
        return asyncio.get_running_loop().time()

    @property
    def address(self) -> Address:
        """The address calls reach us at (the callSignalAddress we give)."""
        return (self.host, self.port)

    async def start(self) -> None:
        """Listen on the signalling port (0: a free port, read back into ``port``)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def _accept(self) -> _Stream:
        loop = asyncio.get_running_loop()
        call = H323Call(outgoing=False, local_address=self.address, now=loop.time())
        conn = H323Connection(call, loop, self._connection_closed)

        def made(transport: asyncio.Transport) -> None:
            peer = transport.get_extra_info("peername")
            conn.peer = (peer[0], peer[1]) if peer else None
            source = conn.peer[0] if conn.peer else ""
            refused = self.bounds.admit(source)
            if refused is not None:
                # Closed before a byte is read; the connection never becomes a call.
                conn._closed = True
                transport.abort()
                if self.bounds.should_log(source, loop.time()):
                    log.warning(
                        "H.323: connection from %s refused: %d open from it, %d in all (%s)",
                        source,
                        self.bounds.held(source),
                        self.bounds.open,
                        refused,
                    )
                return
            conn.counted = source
            self.connections.add(conn)
            conn.handler = self.incoming(conn) if self.incoming is not None else None
            if conn.handler is None:
                conn.close()
                return
            if self.setup_timeout > 0:
                conn.expect_setup(self.setup_timeout, self._setup_timed_out)

        def broken(reason: str) -> None:
            self.counters.broken_streams += 1
            source = conn.peer[0] if conn.peer else ""
            if self.bounds.should_log(source, loop.time()):
                log.warning("H.323: bad TPKT stream from %s, connection closed: %s", source, reason)

        return conn.stream(made, broken)

    def _setup_timed_out(self) -> None:
        self.counters.setup_timeouts += 1

    def _connection_closed(self, conn: H323Connection) -> None:
        self.connections.discard(conn)
        if conn.counted is not None:
            self.bounds.release(conn.counted)
            conn.counted = None

    def dial(self, call: H323Call, address: Address, handler: CallHandler) -> H323Connection:
        """Open the connection of an outgoing call whose Setup is queued."""
        loop = asyncio.get_running_loop()
        conn = H323Connection(call, loop, self._connection_closed)
        conn.handler = handler
        self.connections.add(conn)
        conn._spawn(conn.open(address))
        return conn

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for conn in list(self.connections):
            conn.close()
        self.connections.clear()
