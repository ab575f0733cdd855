"""The asyncio edge of H.225.0 RAS: one UDP socket around one sans-IO RAS entity.

RAS runs over UDP (H.225.0 7.6; port 1719 for a gatekeeper). A :class:`RasEndpoint`
owns the socket of one :class:`~gateway.h323.ras.Gatekeeper` or
:class:`~gateway.h323.ras.GatekeeperClient`: each datagram goes to ``receive()``, then
it *pumps*: sends what the entity queued, hands its events to ``on_events`` and arms
one loop timer on its ``next_deadline()``. Commands of the layers above go through
:meth:`RasEndpoint.run`, which gives them the loop's time and pumps afterwards.

A gatekeeper's socket takes datagrams from anyone, and decoding one (aligned PER,
X.691, through pycrate) costs about a hundred times what reading a SIP header does.
H.225.0 7.6 sets no limit, so the SIP side's answer is reused (issue 13): a
:class:`~gateway.sip.guard.FloodGuard` per endpoint, checked with the datagram's source
address *before* anything is decoded; a source over its rate has the excess dropped
unread and, when it keeps on, is banned (logged once at the start and once at the end,
everything it sends dropped silently: an answer, even a reject, would feed the flood).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from gateway.h323.call import H323Call
from gateway.h323.messages import Address
from gateway.h323.ras import (
    RAS_PORT,
    AdmissionConfirmed,
    AdmissionRejected,
    DisengageRequested,
    GatekeeperClient,
    GatekeeperRegistered,
    GatekeeperUnregistered,
    Located,
    NotLocated,
    RasEvent,
    RegistrationFailed,
)
from gateway.sip.guard import FloodGuard

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["RAS_PORT", "GatekeeperConfig", "PartnerGatekeepers", "RasCore", "RasEndpoint"]


class GatekeeperConfig(Protocol):
    """A partner gatekeeper as configured (the dialplan's ``GatekeeperSettings``)."""

    @property
    def id(self) -> str: ...
    @property
    def address(self) -> Address: ...
    @property
    def aliases(self) -> tuple[str, ...]: ...
    @property
    def identifier(self) -> str | None: ...


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
        # The per-source rate limit before decoding (set by the application); None: none.
        self.flood: FloodGuard | None = None
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
        now = self.now()
        flood = self.flood
        if flood is not None and not self._admitted(flood, str(addr[0]), now):
            return  # dropped unread
        self.core.receive(data, (str(addr[0]), int(addr[1])), now)
        self.pump()

    @staticmethod
    def _admitted(flood: FloodGuard, source: str, now: float) -> bool:
        """The flood guard's verdict on one datagram; its bans logged as they start
        and end (the same lines as SIP's, named RAS)."""
        admitted = flood.admit(source, now)
        for ban in flood.started:
            log.warning(
                "RAS flood from %s: %d messages over the rate limit, banned for %.0f s",
                ban.key,
                ban.failures,
                ban.until - ban.since,
            )
        flood.started.clear()
        for ban in flood.ended:
            log.warning("RAS flood ban of %s ended", ban.key)
        flood.ended.clear()
        return admitted

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


class PartnerGatekeepers:
    """The gateway registered with partners' gatekeepers, and where they locate stations.

    One :class:`~gateway.h323.ras.GatekeeperClient` and one UDP socket per gatekeeper of
    the dialplan. :meth:`where` answers at once from what the gatekeeper last said (an
    LCF, or nothing), and asks again (LRQ, H.225.0 7.13) when that answer is older than
    ``refresh`` seconds; ``on_located(gatekeeper, alias)`` then says the answer changed,
    so that the station monitor looks again without waiting for its next sweep.
    """

    def __init__(
        self,
        host: str,
        call_signal_address: Callable[[], Address],
        on_located: Callable[[str, str], None],
        *,
        refresh: float = 30.0,
    ) -> None:
        self.host = host
        self.call_signal_address = call_signal_address
        self.on_located = on_located
        self.refresh = refresh
        self.clients: dict[str, tuple[GatekeeperClient, RasEndpoint]] = {}
        self._where: dict[tuple[str, str], tuple[Address | None, float]] = {}
        self._asking: set[tuple[str, str]] = set()
        self._settings: dict[str, tuple[object, ...]] = {}
        # callIdentifier -> (gatekeeper, done, dropped) of the calls asked or admitted
        self._admissions: dict[
            bytes, tuple[str, Callable[[Address | None, str], None], Callable[[], None]]
        ] = {}

    async def start(self, gatekeepers: Sequence[GatekeeperConfig]) -> None:
        """Open a RAS socket per gatekeeper and register with each (GRQ, RRQ)."""
        for settings in gatekeepers:
            self._settings[settings.id] = _identity(settings)
            client = GatekeeperClient(
                (self.host, 0),
                settings.address,
                self.call_signal_address(),
                settings.aliases,
                gatekeeper_id=settings.identifier,
            )
            endpoint = RasEndpoint(client, functools.partial(self._events, settings.id))
            await endpoint.start(self.host, 0)
            endpoint.run(client.register)
            self.clients[settings.id] = (client, endpoint)
            log.info(
                "H.323: registering with gatekeeper %s at %s:%d", settings.id, *settings.address
            )

    def where(self, gatekeeper: str, alias: str) -> Address | None:
        """Where ``gatekeeper`` last located ``alias`` (None: not located, or not yet)."""
        key = (gatekeeper, alias)
        found = self.clients.get(gatekeeper)
        if found is None:
            return None
        client, endpoint = found
        if not client.registered:
            return None  # asked once registered: a gatekeeper may refuse strangers' LRQs
        answer, at = self._where.get(key, (None, -math.inf))
        # A unit not found yet may register any moment: asked again sooner.
        wait = self.refresh if answer is not None else self.refresh / 6
        if endpoint.now() - at >= wait and key not in self._asking:
            self._asking.add(key)
            endpoint.run(lambda now: client.locate(alias, now))
        return answer

    def admit(
        self,
        gatekeeper: str,
        call: H323Call,
        alias: str,
        dest: Address,
        done: Callable[[Address | None, str], None],
        dropped: Callable[[], None],
    ) -> None:
        """ARQ to ``gatekeeper`` for our call to ``alias`` (H.225.0 7.8); ``done`` runs
        from the loop with the ACF's address, or None and the ARJ's reason."""
        loop = asyncio.get_running_loop()
        found = self.clients.get(gatekeeper)
        if found is None:
            loop.call_soon(done, None, "gatekeeperUnknown")
            return
        client, endpoint = found
        self._admissions[call.call_id] = (gatekeeper, done, dropped)
        endpoint.run(
            lambda now: client.admit(
                call.call_id, call.conference_id, alias, False, now, destination_address=dest
            )
        )

    def disengage(self, gatekeeper: str, call: H323Call) -> None:
        """DRQ for an admitted call that ended (H.225.0 7.10)."""
        self._admissions.pop(call.call_id, None)
        found = self.clients.get(gatekeeper)
        if found is not None:
            client, endpoint = found
            endpoint.run(lambda now: client.disengage(call.call_id, now))

    def _admission(self, event: AdmissionConfirmed | AdmissionRejected) -> None:
        pending = self._admissions.get(event.call_id)
        if pending is None:
            return
        loop = asyncio.get_running_loop()
        done = pending[1]
        if isinstance(event, AdmissionConfirmed) and event.dest_call_signal_address:
            loop.call_soon(done, event.dest_call_signal_address, "")
            return
        del self._admissions[event.call_id]
        reason = event.reason if isinstance(event, AdmissionRejected) else "noAddress"
        loop.call_soon(done, None, reason)

    def _events(self, gatekeeper: str, events: list[RasEvent]) -> None:
        for event in events:
            if isinstance(event, AdmissionConfirmed | AdmissionRejected):
                self._admission(event)
                continue
            if isinstance(event, DisengageRequested):
                pending = self._admissions.pop(event.call_id, None)
                if pending is not None:
                    asyncio.get_running_loop().call_soon(pending[2])
                continue
            if isinstance(event, Located | NotLocated):
                key = (gatekeeper, event.alias.value)
                self._asking.discard(key)
                found = event.call_signal_address if isinstance(event, Located) else None
                endpoint = self.clients[gatekeeper][1]
                before = self._where.get(key, (None, 0.0))[0]
                self._where[key] = (found, endpoint.now())
                if found != before:
                    self.on_located(gatekeeper, event.alias.value)
            elif isinstance(event, GatekeeperRegistered):
                log.info("H.323: registered with gatekeeper %s", gatekeeper)
            elif isinstance(event, GatekeeperUnregistered | RegistrationFailed):
                log.warning("H.323: gatekeeper %s: %s", gatekeeper, event)

    async def update(self, gatekeepers: Sequence[GatekeeperConfig]) -> None:
        """Follow a reloaded dialplan: a gatekeeper gone or changed (address, aliases,
        identifier) is left (URQ) and its answers forgotten; one new or changed is
        registered with; the others keep their registration untouched."""
        wanted = {settings.id: settings for settings in gatekeepers}
        for name in list(self.clients):
            settings = wanted.get(name)
            if settings is None or _identity(settings) != self._settings.get(name):
                self._leave(name)
                log.info("H.323: gatekeeper %s left after a dialplan reload", name)
        await self.start([settings for settings in gatekeepers if settings.id not in self.clients])

    def _leave(self, name: str) -> None:
        client, endpoint = self.clients.pop(name)
        self._settings.pop(name, None)
        if client.registered:
            endpoint.run(client.unregister)
        endpoint.close()
        for key in [key for key in self._where if key[0] == name]:
            del self._where[key]
        self._asking = {key for key in self._asking if key[0] != name}

    def close(self) -> None:
        """Unregister (URQ, sent as the sockets close) and close every socket."""
        for name in list(self.clients):
            self._leave(name)


def _identity(settings: GatekeeperConfig) -> tuple[object, ...]:
    """What makes a registration with a gatekeeper: changing any of it means a new one."""
    return (settings.address, tuple(settings.aliases), settings.identifier)
