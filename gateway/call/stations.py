"""Where each partner station can be reached, and whether it answers: the station monitor.

A station is *reachable* when it has a live registration (or a static address) and has
not failed its OPTIONS keep-alive twice in a row (RFC 3261 11: OPTIONS as a capability
and liveness query; any final response proves the station is there). The monitor
tells the B2BUA when that verdict changes; the desks turn it into ``offline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from gateway.call.leg import Target
from gateway.dialplan import Dialplan, Station
from gateway.sip.dialog import new_tag
from gateway.sip.message import Headers, Request, Response
from gateway.sip.transaction import Address, new_branch
from gateway.state.store import Store

if TYPE_CHECKING:
    from gateway.call.sip_ua import DialogUser

log = logging.getLogger(__name__)

FAILURES_OFFLINE = 2  # consecutive unanswered OPTIONS before a station is offline
SWEEP_INTERVAL = 1.0  # seconds between registration expiry and keep-alive checks


H323_PROBE = "h323-connect"  # the in-flight mark of an H.323 station's connection check


class _Probe:
    """The keep-alive of one station: OPTIONS for a SIP station (the probe owns its client
    transactions), a TCP connection to the call signalling port of an H.323 one."""

    def __init__(self, monitor: StationMonitor, station_id: str) -> None:
        self.monitor = monitor
        self.station_id = station_id
        self.failures = 0
        self.in_flight: str | None = None
        self.next_at = 0.0

    def on_request(self, request: Request, key: str) -> None:  # pragma: no cover - never
        """Probes own no dialog."""

    def on_response(self, response: Response, key: str) -> None:
        """Any final answer means the station is alive (even 405 or 501)."""
        if response.status >= 200:
            self.answered(key)

    def answered(self, key: str) -> None:
        """The station answered the check ``key``: it is there."""
        if key != self.in_flight:
            return
        self.in_flight = None
        self.failures = 0
        self.monitor.verdict(self.station_id, alive=True)

    def on_timeout(self, key: str) -> None:
        """No answer to OPTIONS within 64*T1 (timer F), or no connection to an H.323 unit."""
        if key != self.in_flight:
            return
        self.in_flight = None
        self.failures += 1
        log.info("station %s: keep-alive unanswered (%d in a row)", self.station_id, self.failures)
        if self.failures >= FAILURES_OFFLINE:
            self.monitor.verdict(self.station_id, alive=False)


class _Vias(Protocol):
    def via_for(self, transport: str, branch: str) -> str:
        """The Via header value of a new request sent over ``transport``."""


class Prober(Protocol):
    """What the monitor needs of the SIP user agent (``SipUserAgent`` is one).

    A protocol rather than the class: the monitor is tested against a small fake, and a
    compiled build (scripts/build-core) checks argument classes at run time.
    """

    dialplan: Dialplan

    @property
    def store(self) -> Store:
        """Where registrations are kept."""

    @property
    def endpoint(self) -> _Vias:
        """The transport, for the Via of a probe."""

    def new_call_id(self) -> str:
        """A fresh Call-ID."""

    def send_request(self, leg: DialogUser, request: Request, dest: Address, transport: str) -> str:
        """Send a request and route its responses to ``leg``; the transaction key."""


class StationMonitor:
    """Keeps every station's target and reachability up to date."""

    def __init__(
        self,
        ua: Prober,
        on_change: Callable[[str, bool], None],
        *,
        wall_clock: Callable[[], float],
        h323_lookup: Callable[[str], tuple[str, int] | None] | None = None,
        h323_probe: Callable[[tuple[str, int]], Awaitable[bool]] | None = None,
        h323_locate: Callable[[str, str], tuple[str, int] | None] | None = None,
    ) -> None:
        self.ua = ua
        # Where an H.323 alias is registered with the gateway's gatekeeper (RAS), if any.
        self.h323_lookup = h323_lookup
        # Whether an H.323 unit's call signalling port takes a connection (the edge's).
        self.h323_probe = h323_probe
        # Where a partner's gatekeeper last located an alias (gatekeeper id, alias).
        self.h323_locate = h323_locate
        self._checks: set[asyncio.Task[None]] = set()
        self.on_change = on_change
        self.wall_clock = wall_clock
        self.targets: dict[str, Target] = {}
        self.alive: dict[str, bool] = {}  # keep-alive verdicts (absent = not probed yet)
        self.reachable: dict[str, bool] = {}
        self.probes: dict[str, _Probe] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def dialplan(self) -> Dialplan:
        """The dialplan in force."""
        return self.ua.dialplan

    def start(self) -> None:
        """Static stations are reachable at once; the sweep task watches the rest."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop sweeping and probing."""
        for check in list(self._checks):
            check.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def target(self, station_id: str) -> Target | None:
        """Where to send an INVITE for this station now (None if it cannot be reached)."""
        return self.targets.get(station_id)

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a sweep must never stop the monitor
                log.exception("station sweep failed")
            await asyncio.sleep(SWEEP_INTERVAL)

    async def sweep(self) -> None:
        """Re-read registrations, send due keep-alives, publish changed verdicts."""
        now = self.wall_clock()
        for partner in self.dialplan.partners.values():
            for station in partner.stations:
                await self.refresh(station, now)

    async def refresh_h323(self, aliases: Iterable[str]) -> None:
        """A unit registered with the gatekeeper, or left it: look at its stations now."""
        names = set(aliases)
        now = self.wall_clock()
        for partner in self.dialplan.partners.values():
            for station in partner.stations:
                if station.protocol == "h323" and station.alias in names:
                    await self.refresh(station, now)

    async def refresh_user(self, username: str) -> None:
        """A REGISTER for ``username`` changed its bindings: look again at once."""
        found = self.dialplan.station_for_user(username)
        if found is not None:
            await self.refresh(found[1], self.wall_clock())

    async def refresh(self, station: Station, now: float) -> None:
        """Update one station's target, probe it if due, and publish its reachability."""
        target = await self._locate(station)
        if target is None:
            self.targets.pop(station.id, None)
            self.alive.pop(station.id, None)
            probe = self.probes.pop(station.id, None)
            if probe is not None:
                probe.failures = 0
        else:
            previous = self.targets.get(station.id)
            self.targets[station.id] = target
            if previous is not None and previous.dest != target.dest:
                self.alive.pop(station.id, None)  # a new registration: a fresh start
            if station.keepalive > 0:
                self._probe(station, target, now)
        reachable = target is not None and self.alive.get(station.id, True)
        if self.reachable.get(station.id) != reachable:
            self.reachable[station.id] = reachable
            log.info("station %s is %s", station.id, "reachable" if reachable else "offline")
            self.on_change(station.id, reachable)

    async def _check(self, probe: _Probe, target: Target) -> None:
        assert self.h323_probe is not None
        if await self.h323_probe(target.dest):
            probe.answered(H323_PROBE)
        else:
            probe.on_timeout(H323_PROBE)

    def verdict(self, station_id: str, *, alive: bool) -> None:
        """A keep-alive verdict: publish it at once if it changes reachability."""
        self.alive[station_id] = alive
        reachable = alive and station_id in self.targets
        if self.reachable.get(station_id) != reachable:
            self.reachable[station_id] = reachable
            log.info("station %s is %s", station_id, "reachable" if reachable else "offline")
            self.on_change(station_id, reachable)

    async def _locate(self, station: Station) -> Target | None:
        # The gateway's own login, should the station challenge its INVITE (RFC 3261 22.2).
        credentials = self.dialplan.outbound_credentials(station.id)
        if station.protocol == "h323":
            if station.address is not None:
                dest = (station.address.host, station.address.port)
            elif station.gatekeeper is not None and station.alias is not None:
                where = (
                    self.h323_locate(station.gatekeeper, station.alias)
                    if self.h323_locate
                    else None
                )
                if where is None:
                    return None
                dest = where
            elif station.alias is not None and self.h323_lookup is not None:
                found = self.h323_lookup(station.alias)
                if found is None:
                    return None
                dest = found
            else:
                return None
            return Target(
                station.id,
                "h323",
                station.alias or "",
                dest,
                "tcp",
                # A unit of a partner's gatekeeper is called once that gatekeeper admits
                # the call (ARQ/ACF, H.225.0 7.8): the gateway is registered there.
                admission=station.gatekeeper if station.address is None else None,
            )
        if station.address is not None:
            addr = station.address
            uri = f"sip:{station.id}@{addr.hostport}"
            if addr.transport != "udp":  # tcp, or tls (RFC 3261 26.2.2)
                uri += f";transport={addr.transport}"
            return Target(
                station.id, "sip", uri, (addr.host, addr.port), addr.transport, credentials
            )
        if station.username is None:
            return None
        bindings = await self.ua.store.get_bindings(station.username)
        if not bindings:
            return None
        latest = max(bindings, key=lambda b: b.expires_at)  # the most recent registration
        return Target(
            station.id, "sip", latest.contact, latest.source, latest.transport, credentials
        )

    def _probe(self, station: Station, target: Target, now: float) -> None:
        probe = self.probes.get(station.id)
        if probe is None:
            probe = self.probes[station.id] = _Probe(self, station.id)
            probe.next_at = now + station.keepalive
            return
        if probe.in_flight is not None or now < probe.next_at:
            return
        probe.next_at = now + station.keepalive
        if target.protocol == "h323":
            # H.225.0 has no ping outside a call: a unit that takes a TCP connection on
            # its call signalling port is there (the connection is closed at once).
            if self.h323_probe is not None:
                probe.in_flight = H323_PROBE
                task = asyncio.get_running_loop().create_task(self._check(probe, target))
                self._checks.add(task)
                task.add_done_callback(self._checks.discard)
            return
        endpoint = self.ua.endpoint
        domain = self.dialplan.domain
        headers = Headers(
            [
                ("Via", endpoint.via_for(target.transport, new_branch())),
                ("Max-Forwards", "70"),
                ("From", f"<sip:vrgw@{domain}>;tag={new_tag()}"),
                ("To", f"<sip:{station.id}@{domain}>"),
                ("Call-ID", self.ua.new_call_id()),
                ("CSeq", "1 OPTIONS"),
                ("Accept", "application/sdp"),
            ]
        )
        request = Request("OPTIONS", target.uri, headers)
        probe.in_flight = self.ua.send_request(probe, request, target.dest, target.transport)
