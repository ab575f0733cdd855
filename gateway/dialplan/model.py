"""The routing data the B2BUA queries: kiosks, services, partners and their stations.

These are plain frozen dataclasses built once by :func:`gateway.dialplan.load_dialplan`;
every lookup the call path makes is a dictionary access prepared at construction.
Passwords are kept apart from the entities, wrapped in :class:`pydantic.SecretStr`, so
that no ``repr`` or log line of a kiosk, station or dialplan can reveal one.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pydantic import SecretStr

from gateway.partners.desk import DeskSettings
from gateway.partners.schedule import Schedule

Transport = Literal["udp", "tcp", "tls"]
DigestAlgorithm = Literal["SHA-256", "MD5"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a dialplan: the file, the 1-based line (if known) and why."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        if self.line is None:
            return f"{self.file}: {self.reason}"
        return f"{self.file}:{self.line}: {self.reason}"


class DialplanError(Exception):
    """A dialplan that cannot be used; ``str(e)`` is ``file:line: reason`` of the first problem.

    ``problems`` lists every problem found (the first one included), sorted by file
    and line, so that an operator can fix them all in one pass.
    """

    file: str
    line: int | None
    reason: str

    def __init__(
        self, file: str, line: int | None, reason: str, *, more: Sequence[Problem] = ()
    ) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        self.problems: tuple[Problem, ...] = (Problem(file, line, reason), *more)
        super().__init__(str(self.problems[0]))

    def __str__(self) -> str:
        return str(self.problems[0])


@functools.lru_cache(maxsize=1024)
def normalise_ip(text: str) -> str | None:
    """Canonical text of an IP address (brackets dropped, IPv4-mapped IPv6 unmapped), or None."""
    candidate = text.strip()
    if candidate.startswith("[") and candidate.endswith("]"):
        candidate = candidate[1:-1]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; they are the same kiosk.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


@dataclass(frozen=True, slots=True)
class BanSettings:
    """Failed authentications that ban a source address or a login, and for how long.

    ``source_failures`` from one address, or ``account_failures`` on one login, within
    ``window`` seconds ban it for ``duration`` seconds; 0 turns that limit off. A source
    sending more than ``flood_rate`` messages a second (after a ``flood_burst``) has the
    excess dropped, and is banned as long when it keeps on; ``flood_rate`` 0: no limit.
    ``ras_flood_rate`` and ``ras_flood_burst`` are the same limit for H.225.0 RAS
    datagrams to the gateway's gatekeeper, counted apart: a unit sends a handful of
    them a minute, and each costs far more to decode than a SIP message.
    """

    source_failures: int = 10
    account_failures: int = 30
    window: float = 60.0
    duration: float = 600.0
    flood_rate: float = 200.0
    flood_burst: float = 400.0
    ras_flood_rate: float = 20.0
    ras_flood_burst: float = 60.0


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Digest authentication of kiosks and stations (RFC 3261 22.4, RFC 8760 for SHA-256)."""

    realm: str
    algorithms: tuple[DigestAlgorithm, ...] = ("SHA-256", "MD5")
    nonce_ttl: int = 300  # seconds a nonce stays valid before a "stale" challenge
    bans: BanSettings = field(default_factory=BanSettings)


MIN_TOKEN_LENGTH = 20  # characters of an admin bearer token: not guessable by hand


@dataclass(frozen=True, slots=True)
class AdminToken:
    """A bearer token of the admin API (RFC 6750) and the role it gives."""

    name: str  # who holds it, for logs
    role: str  # "operator": everything; "monitoring": reads only
    token: SecretStr = field(repr=False)


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """Who may use the admin API. Without tokens, only loopback clients may."""

    tokens: tuple[AdminToken, ...] = ()
    public_on_loopback: bool = False  # /healthz and /metrics need no token from loopback


@dataclass(frozen=True, slots=True)
class MediaSettings:
    """Where the media relay binds and which ports it may use (RTP even, RTCP odd: RFC 3550 11)."""

    bind: str = "127.0.0.1"
    advertise: str | None = None  # address written in SDP; None means ``bind``
    port_min: int = 20000
    port_max: int = 29999
    timeout: float = 60.0  # seconds without media before the call is ended; 0 = never


@dataclass(frozen=True, slots=True)
class SessionTimerSettings:
    """Session refresh interval offered and the smallest one accepted (RFC 4028 4 and 5)."""

    expires: int = 1800
    min_se: int = 90


@dataclass(frozen=True, slots=True)
class RegistrationSettings:
    """Bounds of a binding's lifetime at the registrar (RFC 3261 10.2.1.1 and 10.3 step 7)."""

    min_expires: int = 60
    max_expires: int = 3600
    default_expires: int = 600


@dataclass(frozen=True, slots=True)
class StaticAddress:
    """A station that does not register: where to send its INVITEs."""

    host: str  # IPv6 literals without brackets
    port: int = 5060
    transport: Transport = "udp"

    @property
    def hostport(self) -> str:
        """``host:port`` as written in a SIP URI (IPv6 in brackets, RFC 3261 19.1.1)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Kiosk:
    """A public kiosk ("borne usager") at a site, and the services its buttons may dial."""

    id: str
    site: str
    label: str
    username: str | None
    addresses: tuple[str, ...]  # source IPs trusted without authentication
    services: frozenset[str]
    opening_hours: Schedule | None = None  # the site's own hours; None = the partner's only
    # The login's own digest algorithms (RFC 8760), None: the dialplan's ``auth`` ones.
    algorithms: tuple[DigestAlgorithm, ...] | None = None
    # The site requires SRTP (SDES, RFC 4568) from this kiosk: plain media is refused.
    encryption_required: bool = False
    # kbit/s the site's link carries (a DSL town hall): the gateway writes it as b=AS and
    # b=TIAS (RFC 4566 5.8, RFC 3890) into the SDP of this kiosk's calls, both legs.
    bandwidth: int | None = None


@dataclass(frozen=True, slots=True)
class Service:
    """What a kiosk button dials, by name or number; ``label`` is the French screen text."""

    name: str
    number: str
    partner: str
    label: str


@dataclass(frozen=True, slots=True)
class Station:
    """A partner's expert station: it registers (``username``) or sits at a static ``address``.

    ``max_calls`` is how many calls it takes at once: 1 for a videoconference unit (the
    partner shows as busy meanwhile), 0 for no limit (a load-test peer).
    """

    id: str
    partner: str
    username: str | None
    address: StaticAddress | None
    protocol: str = "sip"  # or "h323": which dialer calls it
    alias: str | None = None  # H.323: the unit's h323-ID or E.164 number
    gatekeeper: str | None = None  # H.323: located through this partner gatekeeper (LRQ)
    max_calls: int = 1
    keepalive: float = 30.0  # seconds between OPTIONS checks; 0 = never
    # The gateway's own login when this station challenges its INVITEs with 401/407
    # (RFC 3261 22.2); the password is in Dialplan.station_secrets.
    auth_username: str | None = None
    # The registering login's own digest algorithms, None: the dialplan's ``auth`` ones.
    algorithms: tuple[DigestAlgorithm, ...] | None = None
    # kbit/s the station's link carries, as a kiosk's ``bandwidth`` (the lower one wins).
    bandwidth: int | None = None


@dataclass(frozen=True, slots=True)
class GatekeeperSettings:
    """A partner's gatekeeper: the gateway registers with it as ``aliases`` (H.225.0 RAS)
    and asks it where that partner's stations are (LRQ)."""

    id: str
    address: tuple[str, int]  # its RAS address
    aliases: tuple[str, ...] = ("vrgw",)
    identifier: str | None = None  # its gatekeeperIdentifier, if it wants one


@dataclass(frozen=True, slots=True)
class Partner:
    """A partner organisation (CAF, CPAM, ...) and its stations, in hunting order."""

    id: str
    name: str
    stations: tuple[Station, ...]
    schedule: Schedule | None = None  # None: always open
    desk: DeskSettings = field(default_factory=DeskSettings)
    encryption_required: bool = False  # kiosks calling it must use SRTP (RFC 4568)


@dataclass(frozen=True, eq=False, kw_only=True)
class Dialplan:
    """One department's routing data, indexed for the lookups the B2BUA and registrar make."""

    source: Path
    domain: str
    auth: AuthSettings
    timezone: str = "Europe/Paris"
    admin: AdminSettings = field(default_factory=AdminSettings)
    media: MediaSettings = field(default_factory=MediaSettings)
    session_timer: SessionTimerSettings = field(default_factory=SessionTimerSettings)
    registration: RegistrationSettings = field(default_factory=RegistrationSettings)
    gatekeepers: tuple[GatekeeperSettings, ...] = ()  # partners' H.323 gatekeepers
    kiosks: Mapping[str, Kiosk] = field(default_factory=dict)
    services: Mapping[str, Service] = field(default_factory=dict)
    partners: Mapping[str, Partner] = field(default_factory=dict)
    credentials: Mapping[str, SecretStr] = field(default_factory=dict, repr=False)
    # Passwords of the stations' ``auth_username`` logins, by station id: a namespace apart
    # from ``credentials``, which holds the logins kiosks and stations use towards us.
    station_secrets: Mapping[str, SecretStr] = field(default_factory=dict, repr=False)

    _kiosk_by_user: Mapping[str, Kiosk] = field(init=False, repr=False)
    _kiosk_by_address: Mapping[str, Kiosk] = field(init=False, repr=False)
    _station_by_user: Mapping[str, tuple[Partner, Station]] = field(init=False, repr=False)
    _service_by_key: Mapping[str, Service] = field(init=False, repr=False)
    _outbound_by_station: Mapping[str, tuple[str, SecretStr]] = field(init=False, repr=False)
    _algorithms_by_user: Mapping[str, tuple[DigestAlgorithm, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Frozen views, so that a shared dialplan cannot be edited behind the B2BUA's back.
        def freeze(name: str, value: Mapping[str, object]) -> None:
            object.__setattr__(self, name, MappingProxyType(dict(value)))

        freeze("kiosks", self.kiosks)
        freeze("services", self.services)
        freeze("partners", self.partners)
        freeze("credentials", self.credentials)
        freeze("station_secrets", self.station_secrets)
        freeze(
            "_kiosk_by_user",
            {k.username: k for k in self.kiosks.values() if k.username is not None},
        )
        by_address: dict[str, Kiosk] = {}
        for kiosk in self.kiosks.values():
            for address in kiosk.addresses:
                by_address[normalise_ip(address) or address] = kiosk
        freeze("_kiosk_by_address", by_address)
        freeze(
            "_station_by_user",
            {
                station.username: (partner, station)
                for partner in self.partners.values()
                for station in partner.stations
                if station.username is not None
            },
        )
        by_key: dict[str, Service] = {}
        for service in self.services.values():
            by_key[service.name.lower()] = service
            by_key[service.number] = service
        freeze("_service_by_key", by_key)
        own: dict[str, tuple[DigestAlgorithm, ...]] = {
            k.username: k.algorithms
            for k in self.kiosks.values()
            if k.username is not None and k.algorithms is not None
        }
        for partner in self.partners.values():
            for station in partner.stations:
                if station.username is not None and station.algorithms is not None:
                    own[station.username] = station.algorithms
        freeze("_algorithms_by_user", own)
        freeze(
            "_outbound_by_station",
            {
                station.id: (station.auth_username, self.station_secrets[station.id])
                for partner in self.partners.values()
                for station in partner.stations
                if station.auth_username is not None and station.id in self.station_secrets
            },
        )

    def kiosk_for_user(self, username: str) -> Kiosk | None:
        """The kiosk that logs in as ``username`` (user parts compare exactly, RFC 3261 19.1.4)."""
        return self._kiosk_by_user.get(username)

    def kiosk_for_address(self, host: str) -> Kiosk | None:
        """The kiosk trusted by its source IP ``host`` (IPv4, IPv6, bracketed or v4-mapped)."""
        kiosk = self._kiosk_by_address.get(host)  # the usual case: already canonical text
        if kiosk is not None:
            return kiosk
        address = normalise_ip(host)
        return None if address is None else self._kiosk_by_address.get(address)

    def station_for_user(self, username: str) -> tuple[Partner, Station] | None:
        """The station that registers as ``username``, with its partner."""
        return self._station_by_user.get(username)

    def secret_for(self, username: str) -> str | None:
        """The digest password of a kiosk or station login, or None for an unknown user."""
        secret = self.credentials.get(username)
        return None if secret is None else secret.get_secret_value()

    def algorithms_for(self, username: str) -> tuple[DigestAlgorithm, ...]:
        """The digest algorithms offered to and accepted from a login, preferred first.

        A kiosk's or station's own ``algorithms``, else the ``auth`` section's (RFC 8760);
        an unknown username gets the latter too, so that challenges do not tell it apart.
        """
        return self._algorithms_by_user.get(username, self.auth.algorithms)

    def outbound_credentials(self, station_id: str) -> tuple[str, str] | None:
        """(username, password) the gateway answers this station's challenges with, or None.

        RFC 3261 22.2: a UAC resends a challenged request with credentials for the realm;
        a station without ``auth`` in the dialplan gets none, and its 401/407 ends the call.
        """
        found = self._outbound_by_station.get(station_id)
        return None if found is None else (found[0], found[1].get_secret_value())

    def resolve_service(self, user_part: str) -> Service | None:
        """The service a kiosk dialled: by name (case-insensitive) or by number."""
        return self._service_by_key.get(user_part.strip().lower())

    def may_call(self, kiosk: Kiosk, service: Service) -> bool:
        """Whether ``kiosk`` offers ``service`` (not every site offers every partner)."""
        return service.name in kiosk.services and self.services.get(service.name) == service

    def partner_for(self, service: Service) -> Partner:
        """The partner a service routes to (the loader guarantees it exists)."""
        return self.partners[service.partner]
