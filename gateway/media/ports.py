"""The relay's UDP ports: even/odd RTP/RTCP pairs, bound on demand and pooled.

Ports come in pairs (RFC 3550 11: RTP on an even port, RTCP on the next one) from the
engine's range; a port some other process holds is skipped, never fatal. A pair is
watched by the loop from its binding to its closing, with the forwarder's callbacks.

Creating, binding and watching four sockets per call, then closing them, cost about a
tenth of a call's CPU on the signalling path, so a released pair stays bound and
watched in a pool of at most :data:`POOL_MAX` pairs, and goes to a later call once it
has been quiet for :data:`REUSE_QUIET` seconds. The quiet time keeps late packets of a
finished call from latching (RFC 4961) the next call's streams; a packet that reaches a
pooled pair restarts it. When the range is exhausted, a pooled pair that is not quiet
yet is still better than no pair.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections import deque
from collections.abc import Callable

from gateway.media.engine import MediaError
from gateway.media.forwarding import Leg, PortPair
from gateway.model.loops import stop_reading

logger = logging.getLogger(__name__)

# A pooled pair is handed to a new call only after this long without a packet, so that
# late packets of the previous call cannot latch (RFC 4961) the new call's streams.
REUSE_QUIET = 1.0
POOL_MAX = 512  # idle pairs kept bound at most (two descriptors each)

# What bind() says when a port is not ours to take (held elsewhere, or privileged).
_PORT_TAKEN = frozenset({errno.EADDRINUSE, errno.EACCES})

ReaderCallback = Callable[[PortPair], None]


class PortPool:
    """Hands out port pairs for calls' legs and takes them back.

    ``relay_rtp`` and ``relay_rtcp`` are the reader callbacks of every pair bound;
    ``loop`` gives the running loop and ``clock`` its time.
    """

    def __init__(
        self,
        *,
        bind_host: str,
        family: socket.AddressFamily,
        port_min: int,
        port_max: int,
        relay_rtp: ReaderCallback,
        relay_rtcp: ReaderCallback,
        loop: Callable[[], asyncio.AbstractEventLoop],
        clock: Callable[[], float],
    ) -> None:
        first = port_min + (port_min % 2)
        if not (0 < port_min <= port_max <= 65535) or first + 1 > port_max:
            raise ValueError(f"port range {port_min}-{port_max} holds no even/odd port pair")
        self.bind_host = bind_host
        self.port_min = port_min
        self.port_max = port_max
        self._family = family
        self._relay_rtp = relay_rtp
        self._relay_rtcp = relay_rtcp
        self._loop = loop
        self._now = clock
        self._free: deque[int] = deque(range(first, port_max, 2))  # RTP ports never bound
        self._idle: deque[PortPair] = deque()  # released pairs, oldest first
        self.in_use = 0  # ports (two per pair) that legs hold

    @property
    def idle(self) -> int:
        """Ports bound but held by no leg."""
        return 2 * len(self._idle)

    def take(self) -> PortPair:
        """A port pair for a leg: a quiet one from the pool, else a newly bound one."""
        idle = self._idle
        if idle and idle[0].quiet_since <= self._now() - REUSE_QUIET:
            pair = idle.popleft()
        else:
            try:
                pair = self._bind_pair()
            except MediaError:
                if not idle:
                    raise
                pair = idle.popleft()  # the range is exhausted: better a recent pair than none
        self.in_use += 2
        return pair

    def give_back(self, pair: PortPair) -> None:
        """A pair a leg no longer holds: into the pool, or closed when the pool is full."""
        self.in_use -= 2
        pair.facing = pair.other = None
        pair.quiet_since = self._now()
        self._idle.append(pair)
        if len(self._idle) > POOL_MAX:
            self._close_pair(self._idle.popleft())

    def attach(self, pair: PortPair, leg: Leg, other: Leg) -> None:
        """Give ``pair`` to ``leg``: what reaches it is forwarded to ``other``."""
        pair.facing, pair.other = leg, other
        leg.pair = pair
        leg.port, leg.rtp_sock, leg.rtcp_sock = pair.port, pair.rtp, pair.rtcp

    def release(self, leg: Leg) -> None:
        """Take a leg's pair back, if it holds one."""
        pair = leg.pair
        if pair is None:
            return
        leg.pair = leg.port = leg.rtp_sock = leg.rtcp_sock = None
        self.give_back(pair)

    def close(self) -> None:
        """Close every pooled pair (pairs that legs hold must be released first)."""
        while self._idle:
            self._close_pair(self._idle.popleft())

    def _bind_pair(self) -> PortPair:
        for _ in range(len(self._free)):
            port = self._free.popleft()
            try:
                rtp = self._bind(port)
            except OSError as exc:
                self._free.append(port)
                self._skip_or_raise(port, exc)
                continue
            try:
                rtcp = self._bind(port + 1)
            except OSError as exc:
                rtp.close()
                self._free.append(port)
                self._skip_or_raise(port + 1, exc)
                continue
            pair = PortPair(port, rtp, rtcp)
            loop = self._loop()
            # Watched once for the pair's whole life; the callbacks look up its legs.
            try:
                loop.add_reader(rtp.fileno(), self._relay_rtp, pair)
                loop.add_reader(rtcp.fileno(), self._relay_rtcp, pair)
            except OSError as exc:  # the poller is full: no other port would do better
                stop_reading(loop, rtp.fileno())
                rtp.close()
                rtcp.close()
                self._free.append(port)
                raise MediaError(
                    f"cannot watch RTP/RTCP ports {port}-{port + 1}: {exc}", cause=exc
                ) from exc
            return pair
        raise MediaError(f"no free RTP/RTCP port pair in {self.port_min}-{self.port_max}")

    @staticmethod
    def _skip_or_raise(port: int, exc: OSError) -> None:
        """A port another process holds is skipped; any other failure (no descriptor
        left, an address that is not ours) would fail on every port: it ends the search."""
        if exc.errno not in _PORT_TAKEN:
            raise MediaError(f"cannot bind UDP port {port}: {exc}", cause=exc) from exc
        logger.info("UDP port %d unavailable (%s): skipped", port, exc.strerror)

    def _bind(self, port: int) -> socket.socket:
        sock = socket.socket(self._family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.bind_host, port))
        except OSError:
            sock.close()
            raise
        return sock

    def _close_pair(self, pair: PortPair) -> None:
        loop = self._loop()
        stop_reading(loop, pair.rtp.fileno())
        stop_reading(loop, pair.rtcp.fileno())
        pair.rtp.close()
        pair.rtcp.close()
        # Freed ports go to the back of the queue: stale packets of the old call
        # should not land in the next one.
        self._free.append(pair.port)
