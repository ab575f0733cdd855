"""The gateway process: builds the components from a dialplan and runs them on one loop."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import logging
import signal
import sqlite3
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from gateway.call.b2bua import B2BUA
from gateway.call.h323_leg import H323Acceptor, H323Dialer
from gateway.call.records import CallRecord
from gateway.call.scheduler import LoopScheduler
from gateway.call.sip_leg import SipDialer
from gateway.call.sip_ua import SipUserAgent
from gateway.call.stations import StationMonitor
from gateway.clock import Clock
from gateway.dialplan import Dialplan, DialplanError, load_dialplan
from gateway.edge.h323_ras import PartnerGatekeepers, RasEndpoint
from gateway.edge.h323_signalling import H323SignallingEndpoint, accepts_connections
from gateway.edge.sip_transport import ConnectionLimits, SipEndpoint, TlsSettings
from gateway.h323.messages import Alias
from gateway.h323.ras import Gatekeeper, RasEvent, Registered, Unregistered
from gateway.media.engine import MediaEngine, MediaError
from gateway.media.relay import RelayEngine
from gateway.media.rtpengine import RtpengineEngine, parse_address
from gateway.media.workers import WorkerRelayEngine
from gateway.metrics import GatewayMetrics
from gateway.presence.feed import AvailabilityFeed
from gateway.presence.server import PresenceServer
from gateway.presence.views import GatewayViews
from gateway.sip.guard import FloodGuard, FloodSettings
from gateway.state.records import RecordRow, RecordStore, SqliteRecordStore
from gateway.state.store import MemoryStore, Store

if TYPE_CHECKING:
    from gateway.http.api import QuietServer

log = logging.getLogger(__name__)


# Young-generation threshold of the cyclic collector (CPython's default is 700). SIP
# messages, events and SDPs die by reference counting; a young collection every 700
# allocations mostly walks live call state to find nothing to free.
GC_YOUNG_THRESHOLD = 50_000


def settle_garbage_collector() -> None:
    """Move what start-up built (modules, dialplan, web app) out of the collector's sight.

    Objects alive once the gateway listens live as long as the process: ``gc.freeze``
    puts them in the permanent generation, so a full collection no longer walks a few
    hundred thousand of them, and young collections run less often.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


T = TypeVar("T")
RECORD_FLUSH = 0.5  # seconds an ended call's record may wait to be written with others


async def _listening(what: str, opening: Awaitable[T]) -> T:
    """Open a listening socket; a failure names the address (``SIP 127.0.0.1:5060 (udp):
    address already in use``) instead of a bare errno."""
    try:
        return await opening
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else str(exc)
        raise OSError(exc.errno, f"{what}: {reason}") from exc


@dataclass(frozen=True, slots=True)
class Settings:
    """Process settings that are not routing data (those live in the dialplan)."""

    dialplan: Path
    sip_host: str = "127.0.0.1"
    sip_port: int = 5060
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    tcp: bool = True
    h323_port: int = 1720  # H.225.0 call signalling, on sip_host
    ras_port: int = 1719  # the gatekeeper's RAS (UDP), on sip_host; -1: no gatekeeper
    ring_timeout: float = 60.0
    test_clock: bool = False  # let PUT /api/v1/clock move the schedules' clock
    sip_t1: float = 0.5  # RFC 3261 T1 in seconds; shorter only for tests (--sip-t1)
    records: str = ":memory:"  # the call records' SQLite file (vrgw run names one)
    records_retention_days: int = 365
    media_engine: str = "builtin"  # or "rtpengine", driven over ng at ``rtpengine``
    media_workers: int = 0  # built-in relay: worker processes (0: in the gateway's loop)
    rtpengine: str = "127.0.0.1:22222"  # rtpengine's --listen-ng address, HOST:PORT
    rtpengine_prompts: Path | None = None  # the prompts' folder on rtpengine's host
    tls_cert: Path | None = None  # SIP over TLS: certificate chain and key (PEM), both
    tls_key: Path | None = None
    tls_port: int = 5061
    tls_ca: Path | None = None
    tls_verify_clients: bool = False
    max_connections_per_source: int = 32
    max_connections: int = 4096
    max_transactions_per_source: int = 1024

    def tls(self) -> TlsSettings | None:
        """The TLS listener's settings, None when no certificate is configured."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        return TlsSettings(
            self.tls_cert, self.tls_key, self.tls_port, self.tls_ca, self.tls_verify_clients
        )


def ras_flood_settings(dialplan: Dialplan) -> FloodSettings:
    """The per-source RAS rate limit of a dialplan's ``auth.bans`` (its ``ras_`` keys)."""
    bans = dialplan.auth.bans
    return FloodSettings(bans.ras_flood_rate, bans.ras_flood_burst, bans.duration)


def make_media_engine(settings: Settings, dialplan: Dialplan) -> MediaEngine:
    """The media engine ``settings.media_engine`` names: the built-in relay, set up by the
    dialplan's ``media`` section (in the gateway's loop, or spread over
    ``settings.media_workers`` processes), or rtpengine over ng (which has its own
    ports, address and media timeout, set on its command line)."""
    if settings.media_engine == "rtpengine":
        if settings.media_workers:
            raise OSError("--media-workers is for the built-in relay, not rtpengine")
        try:
            address = parse_address(settings.rtpengine)
        except ValueError as exc:
            raise OSError(f"--rtpengine: {exc}") from exc
        return RtpengineEngine(address, prompt_dir=settings.rtpengine_prompts)
    if settings.media_engine != "builtin":
        raise OSError(f"unknown media engine {settings.media_engine!r}")
    m = dialplan.media
    if settings.media_workers > 0:
        try:
            return WorkerRelayEngine(
                workers=settings.media_workers,
                bind_host=m.bind,
                advertise_host=m.advertise,
                port_min=m.port_min,
                port_max=m.port_max,
                timeout=m.timeout,
            )
        except ValueError as exc:
            raise OSError(f"media workers: {exc}") from exc
    return RelayEngine(
        bind_host=m.bind,
        advertise_host=m.advertise,
        port_min=m.port_min,
        port_max=m.port_max,
        timeout=m.timeout,
    )


class Gateway:
    """One running gateway: SIP endpoint, UA core, B2BUA, media engine, store, HTTP."""

    def __init__(self, settings: Settings, dialplan: Dialplan) -> None:
        self.settings = settings
        self.dialplan = dialplan
        self.store: Store = MemoryStore()
        self.media: MediaEngine = make_media_engine(settings, dialplan)
        self.endpoint = SipEndpoint(
            settings.sip_host,
            settings.sip_port,
            t1=settings.sip_t1,
            tls=settings.tls(),
            limits=ConnectionLimits(
                settings.max_connections_per_source,
                settings.max_connections,
                settings.max_transactions_per_source,
            ),
        )
        self.clock = Clock(adjustable=settings.test_clock)
        self.scheduler = LoopScheduler(self.clock.now)
        self.ua = SipUserAgent(self.endpoint, self.store, dialplan, self.scheduler)
        # The SIP listener's connection bounds, counted apart for H.225.0 (issue 13).
        self.h323 = H323SignallingEndpoint(
            settings.sip_host,
            settings.h323_port,
            limits=ConnectionLimits(settings.max_connections_per_source, settings.max_connections),
        )
        # The gateway's own gatekeeper (H.225.0 RAS): H.323 kiosks and stations register
        # with it; every call it admits is routed through the gateway (gatekeeperRouted).
        self.gatekeeper = Gatekeeper(
            (settings.sip_host, max(settings.ras_port, 0)),
            self.h323.address,
            allowed=self._h323_alias_allowed,
        )
        self.ras = RasEndpoint(self.gatekeeper, self._ras_events)
        self.ras_flood = FloodGuard(ras_flood_settings(dialplan))
        self.ras.flood = self.ras_flood  # checked before a datagram is decoded
        # Partners' own gatekeepers: the gateway registers with each and locates the
        # stations registered there (LRQ).
        self.partner_gatekeepers = PartnerGatekeepers(
            settings.sip_host, lambda: self.h323.address, self._located
        )
        self.monitor = StationMonitor(
            self.ua,
            self._station_changed,
            wall_clock=time.time,
            h323_lookup=self.gatekeeper.lookup,
            h323_probe=accepts_connections,
            h323_locate=self.partner_gatekeepers.where,
        )
        self.b2bua = B2BUA(
            dialplan,
            self.media,
            self.scheduler,
            {
                "sip": SipDialer(self.ua),
                "h323": H323Dialer(
                    self.h323, aliases=("vrgw",), admission=self.partner_gatekeepers
                ),
            },
            self.monitor.target,
            ring_timeout=settings.ring_timeout,
        )
        self.ua.invite_handler = self.b2bua
        self.h323.incoming = H323Acceptor(
            lambda: self.b2bua.dialplan, self.b2bua, self.gatekeeper.lookup
        ).incoming
        self.ua.registration_hook = self._registration_changed
        self.views = GatewayViews(self.b2bua)
        # Subscription lifetimes run on the monotonic clock: a test clock moved to next
        # Friday must not expire every subscription at once.
        self.presence = PresenceServer(self.ua, self.views, now=time.monotonic)
        self.feed = AvailabilityFeed()
        self.b2bua.on_change = self._partner_changed
        self.metrics = GatewayMetrics()
        self.metrics.attach(self)
        self.b2bua.on_record = self._record
        self.records: RecordStore = SqliteRecordStore(settings.records)
        self._unwritten: list[RecordRow] = []
        self._purging: asyncio.Task[None] | None = None
        self._http: asyncio.Task[None] | None = None
        self._http_server: QuietServer | None = None
        self.stopped = asyncio.Event()

    def _station_changed(self, station_id: str, reachable: bool) -> None:
        self.b2bua.station_reachable(station_id, reachable)

    def _h323_alias_allowed(self, aliases: tuple[Alias, ...]) -> bool:
        """Only units the dialplan knows register: a kiosk's username or a station's alias."""
        plan = self.b2bua.dialplan
        known = {k.username for k in plan.kiosks.values() if k.username}
        known |= {
            st.alias for p in plan.partners.values() for st in p.stations if st.alias is not None
        }
        return any(alias.value in known for alias in aliases)

    def _ras_events(self, events: list[RasEvent]) -> None:
        for event in events:
            if isinstance(event, Registered | Unregistered):
                names = [alias.value for alias in event.aliases]
                log.info(
                    "H.323 %s %s",
                    "registration" if isinstance(event, Registered) else "unregistration",
                    ", ".join(names),
                )
                self.scheduler.spawn(self.monitor.refresh_h323(names))

    def _located(self, gatekeeper: str, alias: str) -> None:
        self.scheduler.spawn(self.monitor.refresh_h323([alias]))

    def _registration_changed(self, username: str) -> None:
        self.scheduler.spawn(self.monitor.refresh_user(username))

    def _record(self, record: CallRecord) -> None:
        """An ended call: counted in the metrics now, written with the next batch of
        call records (at most RECORD_FLUSH seconds later: one transaction for many)."""
        self.metrics.record_call(record)
        self._unwritten.append(record.row())
        if len(self._unwritten) == 1:
            self.scheduler.call_later(RECORD_FLUSH, self._flush_soon)

    def _flush_soon(self) -> None:
        self.scheduler.spawn(self._write_records())

    async def _write_records(self) -> None:
        rows, self._unwritten = self._unwritten, []
        try:
            await self.records.add(rows)
        except (sqlite3.Error, OSError, RuntimeError) as exc:
            log.error("%d call records could not be written: %s", len(rows), exc)

    async def _purge_records(self) -> None:
        """Delete the records past their retention now, then every hour."""
        keep = self.settings.records_retention_days * 86400.0
        while True:
            try:
                gone = await self.records.purge(self.clock.now() - keep)
            except (sqlite3.Error, OSError) as exc:
                log.error("call records could not be purged: %s", exc)
            else:
                if gone:
                    log.info("%d call records older than %d days deleted", gone, keep // 86400)
            await asyncio.sleep(3600)

    def _partner_changed(self, partner: str) -> None:
        self.presence.changed(partner)
        self.feed.changed(partner)

    async def start(self) -> None:
        """Open sockets: media first, then SIP, then HTTP."""
        s = self.settings
        try:
            await self.media.start()
        except MediaError as exc:  # rtpengine not answering: a start-up error, no traceback
            raise OSError(f"media engine {s.media_engine}: {exc}") from exc
        sip = f"SIP {s.sip_host}:{s.sip_port} (udp{'+tcp' if s.tcp else ''})"
        if s.tls() is not None:
            sip += f", SIP TLS {s.sip_host}:{s.tls_port}"
        await _listening(sip, self.endpoint.start(tcp=s.tcp))
        await _listening(f"H.323 tcp {s.sip_host}:{s.h323_port}", self.h323.start())
        if s.ras_port >= 0:
            self.gatekeeper.call_signal_address = self.h323.address  # its port is known now
            ras = f"RAS udp {s.sip_host}:{s.ras_port}"
            await _listening(ras, self.ras.start(s.sip_host, s.ras_port))
        await self.partner_gatekeepers.start(self.dialplan.gatekeepers)
        try:
            await self.records.open()
        except (sqlite3.Error, OSError) as exc:
            raise OSError(f"call records file {self.settings.records}: {exc}") from exc
        self._purging = asyncio.get_running_loop().create_task(self._purge_records())
        self.monitor.start()
        if self.settings.http_port >= 0:
            from gateway.http.api import serve

            http = f"HTTP {s.http_host}:{s.http_port}"
            self._http_server, self._http = await _listening(http, serve(self))
        log.info(
            "vrgw listening: SIP %s:%d (udp%s%s), H.323 tcp %d, RAS udp %s, HTTP %s:%d, "
            "dialplan %s",
            self.settings.sip_host,
            self.endpoint.port,
            "+tcp" if self.settings.tcp else "",
            f", tls {self.endpoint.tls_port}" if self.endpoint.tls_port is not None else "",
            self.h323.port,
            self.ras.address[1] if self.ras.address else "off",
            self.settings.http_host,
            self.settings.http_port,
            self.dialplan.source,
        )

    def reload(self) -> tuple[bool, str]:
        """Load the dialplan again; a broken one is refused and the running one stays."""
        try:
            new = load_dialplan(self.dialplan.source)
        except DialplanError as exc:
            log.error("dialplan reload refused, keeping the running one: %s", exc)
            return False, str(exc)
        tls_ok, tls_why = self.endpoint.reload_tls()  # a renewed certificate, calls kept
        if not tls_ok:
            return False, f"TLS certificate: {tls_why}"
        self.dialplan = new
        self.ua.set_dialplan(new)
        self.ras_flood.settings = ras_flood_settings(new)  # bans in force stay in force
        self.b2bua.set_dialplan(new)
        self.scheduler.spawn(self.partner_gatekeepers.update(new.gatekeepers))
        self.presence.changed_all()
        log.info("dialplan reloaded from %s", new.source)
        return True, "reloaded"

    async def close(self) -> None:
        """End calls and subscriptions, close sockets."""
        await self.presence.close()
        await self.monitor.close()
        await self.b2bua.close()
        await self.scheduler.drain()
        if self._http_server is not None:
            self._http_server.stop()
        if self._http is not None:
            await asyncio.wait([self._http], timeout=3)
        await self.endpoint.close()
        await self.h323.close()
        self.ras.close()
        self.partner_gatekeepers.close()
        await self.media.close()
        await self.store.close()
        if self._purging is not None:
            self._purging.cancel()
        await self.scheduler.drain()
        await self._write_records()  # the last batch, whatever its timer
        await self.records.close()

    async def run_forever(self) -> None:
        """Run until SIGINT/SIGTERM; SIGHUP reloads the dialplan; SIGUSR1 writes every
        thread's Python stack to stderr (the log)."""
        # Handlers first: a SIGTERM that arrives while sockets open (the health check
        # already answers then) must stop the gateway cleanly, not kill it.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self.stopped.set)
        loop.add_signal_handler(signal.SIGTERM, self.stopped.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        # Not through the loop: faulthandler writes the stacks from its C handler, so a
        # gateway whose event loop is stuck still says where.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        await self.start()
        settle_garbage_collector()
        try:
            await self.stopped.wait()
        finally:
            log.info("stopping")
            await self.close()
            faulthandler.unregister(signal.SIGUSR1)
