"""The asyncio edge of H.225.0 RAS: one UDP socket around one sans-IO RAS entity.

RAS runs over UDP (H.225.0 7.6; port 1719 for a gatekeeper). A :class:`RasEndpoint`
owns the socket of one :class:`~gateway.h323.ras.Gatekeeper` or
:class:`~gateway.h323.ras.GatekeeperClient`: each datagram goes to ``receive()``, then
it *pumps*: sends what the entity queued, hands its events to ``on_events`` and arms
one loop timer on its ``next_deadline()``. Commands of the layers above go through
:meth:`RasEndpoint.run`, which gives them the loop's time and pumps afterwards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol, TypeVar

from gateway.h323.messages import Address
from gateway.h323.ras import RAS_PORT, RasEvent

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["RAS_PORT", "RasCore", "RasEndpoint"]


class RasCore(Protocol):
    """What the edge needs of a sans-IO RAS entity (both classes of gateway.h323.ras)."""

    ras_address: Address

    def receive(self, data: bytes, source: Address, now: float) -> None: ...

    def datagrams_to_send(self) -> list[tuple[bytes, Address]]: ...

    def next_deadline(self) -> float | None: ...

    def on_timer(self, now: float) -> None: ...

    def events(self) -> list[RasEvent]: ...


class RasEndpoint(asyncio.DatagramProtocol):
    """One UDP socket, one RAS entity, one timer."""

    def __init__(
        self, core: RasCore, on_events: Callable[[list[RasEvent]], None] | None = None
    ) -> None:
        self.core = core
        self.on_events = on_events
        self.address: Address | None = None
        self.send_errors = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when: float | None = None
        self._pumping = False

    # -- life cycle -------------------------------------------------------------------
    async def start(
        self, host: str, port: int = RAS_PORT, *, advertise: str | None = None
    ) -> Address:
        """Bind ``host:port`` (0: any free port) and tell the core its RAS address.

        ``advertise`` is the IPv4 address put in our RAS messages when ``host`` is a
        wildcard such as 0.0.0.0 (a rasAddress must be one the peers can reach).
        """
        loop = asyncio.get_running_loop()
        self._loop = loop
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=(host, port))
        self._transport = transport
        bound = transport.get_extra_info("sockname")
        self.address = (advertise or bound[0], int(bound[1]))
        self.core.ras_address = self.address
        self.pump()
        return self.address

    def close(self) -> None:
        """Stop the timer and close the socket (what is still queued is sent first)."""
        if self._transport is not None and not self._transport.is_closing():
            self._send_queued()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_when = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def now(self) -> float:
        """The clock the core runs on: the loop's monotonic time."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop.time()

    def run(self, command: Callable[[float], T]) -> T:
        """Run ``command(now)`` on the core (register, admit, locate...), then pump."""
        try:
            return command(self.now())
        finally:
            self.pump()

    # -- asyncio callbacks ----------------------------------------------------------------
    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.core.receive(data, (str(addr[0]), int(addr[1])), self.now())
        self.pump()

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer that went away: its request times out.
        log.debug("RAS socket error: %s", exc)

    # -- output ---------------------------------------------------------------------------
    def pump(self) -> None:
        """Send what the core queued, deliver its events, re-arm the timer."""
        if self._pumping:  # an event handler called run(): the outer pump goes on
            return
        self._pumping = True
        try:
            while True:
                self._send_queued()
                events = self.core.events()
                if not events:
                    break
                if self.on_events is not None:
                    self.on_events(events)
        finally:
            self._pumping = False
        self._arm()

    def _send_queued(self) -> None:
        transport = self._transport
        for data, dest in self.core.datagrams_to_send():
            if transport is None or transport.is_closing():
                self.send_errors += 1
                continue
            try:
                transport.sendto(data, dest)
            except OSError as exc:
                self.send_errors += 1
                log.info("RAS: cannot send to %s:%s: %s", dest[0], dest[1], exc)

    def _arm(self) -> None:
        if self._transport is None:
            return
        deadline = self.core.next_deadline()
        if deadline == self._timer_when:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_when = deadline
        if deadline is not None:
            self.now()  # makes sure the loop is known
            assert self._loop is not None
            self._timer = self._loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_when = None
        self.core.on_timer(self.now())
        self.pump()
