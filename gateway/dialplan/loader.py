"""Load a dialplan from YAML: structure (pydantic), meaning (cross references), secrets.

Every problem is reported with the file and line of the YAML node it concerns. The file
is composed into PyYAML's node tree first, so that the ``loc`` of a pydantic error, or the
path of a semantic check, can be walked back down that tree to a line number.

Loading has no side effect: a caller that reloads keeps its running dialplan whenever
:func:`load_dialplan` raises.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
import types
from collections.abc import Iterable, Mapping
from datetime import date, time
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gateway.dialplan.model import (
    MIN_TOKEN_LENGTH,
    AdminSettings,
    AdminToken,
    AuthSettings,
    BanSettings,
    DialplanError,
    DigestAlgorithm,
    GatekeeperSettings,
    Kiosk,
    MediaSettings,
    Partner,
    Problem,
    RegistrationSettings,
    Service,
    SessionTimerSettings,
    StaticAddress,
    Station,
    normalise_ip,
)
from gateway.dialplan.model import Dialplan as Dialplan
from gateway.partners.desk import DeskSettings, QueueSettings
from gateway.partners.schedule import Closure, MonthlySlot, Schedule, WeeklySlot

_log = logging.getLogger(__name__)

Loc = tuple[str | int, ...]

SUPPORTED_VERSION = 1
DEFAULT_SIP_PORT = 5060  # RFC 3261 19.1.2
DEFAULT_H323_PORT = 1720  # H.225.0 call signalling (H.323 well-known TCP port)
DEFAULT_RAS_PORT = 1719  # H.225.0 RAS (UDP)


# --------------------------------------------------------------------------------------
# Scalar checks. Messages may quote the offending text: none of these ever sees a secret.


def _fail(reason: str) -> PydanticCustomError:
    # The reason travels as context so that braces in it are not read as placeholders.
    return PydanticCustomError("dialplan", "{reason}", {"reason": reason})


_IDENT = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SERVICE_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_NUMBER = re.compile(r"[0-9]{1,15}")  # E.164 allows at most 15 digits (ITU-T E.164 6.1)
_SECRET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
# RFC 1123 2.1 host names: letters, digits and inner hyphens, 63 octets a label.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?:{_LABEL}\.)*{_LABEL}\.?")


def _ident(value: str) -> str:
    if not _IDENT.fullmatch(value):
        raise _fail(
            f"{value!r} is not a valid id: use lower-case letters, digits, '-' and '_' "
            "(at most 64, starting with a letter or digit)"
        )
    return value


def _service_name(value: str) -> str:
    if not _SERVICE_NAME.fullmatch(value):
        raise _fail(
            f"{value!r} is not a valid service name: use lower-case letters, digits, "
            "'-' and '_' (at most 32, starting with a letter)"
        )
    return value


def _username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise _fail(
            f"{value!r} is not a valid username: use letters, digits, '.', '-' and '_' "
            "(at most 64, starting with a letter or digit)"
        )
    return value


def _number_is_text(value: object) -> object:
    # YAML reads 1001 as an int and 0123 as octal 83: only a quoted number is unambiguous.
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise _fail(f'write the number as a quoted string, e.g. "{value}"')
    return value


def _number(value: str) -> str:
    if not _NUMBER.fullmatch(value):
        raise _fail(f"{value!r} is not a valid number: use 1 to 15 digits")
    return value


def _secret_name(value: str) -> str:
    if not _SECRET_NAME.fullmatch(value):
        raise _fail(f"{value!r} is not a valid secret name")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise _fail(f"{value!r} is not a valid environment variable name")
    return value


def _is_host(value: str) -> bool:
    if normalise_ip(value) is not None:
        return True
    if len(value) > 253 or not _HOSTNAME.fullmatch(value):
        return False
    # "10.0.0.300" matches the host-name grammar but is a mistyped IPv4 address.
    return not re.fullmatch(r"[0-9.]+", value)


def _host(value: str) -> str:
    if not _is_host(value):
        raise _fail(f"{value!r} is not a valid host name or IP address")
    return value


def _ip(value: str) -> str:
    address = normalise_ip(value)
    if address is None:
        raise _fail(f"{value!r} is not an IP address")
    return address


def parse_hostport(text: str, default_port: int = DEFAULT_SIP_PORT) -> tuple[str, int]:
    """Split ``host[:port]`` (``[v6]:port`` for IPv6, RFC 3261 19.1.1); raise ValueError."""
    text = text.strip()
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::([0-9]{1,5}))?", text)
    if bracketed:
        host, port_text = bracketed[1], bracketed[2]
        if not isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            raise ValueError(f"{host!r} in brackets is not an IPv6 address")
    elif text.count(":") >= 2:
        host, port_text = str(ipaddress.IPv6Address(text)), None
    else:
        host, colon, port_text = text.partition(":")
        if colon and not re.fullmatch(r"[0-9]{1,5}", port_text):
            raise ValueError(f"{text!r}: the port must be a number")
        port_text = port_text or None
    if not _is_host(host):
        raise ValueError(f"{host!r} is not a valid host name or IP address")
    port = int(port_text) if port_text else default_port
    if not 1 <= port <= 65535:
        raise ValueError(f"{text!r}: port {port} is out of range 1-65535")
    return normalise_ip(host) or host, port


def _hostport(value: str) -> str:
    try:
        parse_hostport(value)
    except ValueError:
        raise _fail(
            f"{value!r} is not a valid address: write host, host:port or [IPv6]:port"
        ) from None
    return value


def _version(value: int) -> int:
    if value != SUPPORTED_VERSION:
        raise _fail(f"unsupported version {value}: this gateway reads version {SUPPORTED_VERSION}")
    return value


def _refuse_literal_secret(value: object) -> object:
    if value is not None and not isinstance(value, dict):
        # Never echo the value: it is probably a password.
        raise _fail(
            "a password cannot be written in the dialplan: "
            "use {secret: NAME} (from secrets_file) or {env: VARIABLE}"
        )
    return value


def _services_or_all(value: object) -> object:
    if value == "all":
        return None
    if not isinstance(value, list):
        raise _fail('must be a list of service names or "all"')
    return value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


_DAYS = {
    **{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{
        name: i
        for i, name in enumerate(
            ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
        )
    },
}
_CLOCK = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])|24:00")


def _day(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() in _DAYS:
        return _DAYS[value.strip().lower()]
    raise _fail(f"unknown day {value!r} (write mon, tue, ... sun, or lundi ... dimanche)")


def _clock(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        raise _fail("write clock times in quotes, e.g. '12:00' (YAML reads 12:00 as a number)")
    if not isinstance(value, str) or not _CLOCK.fullmatch(value.strip()):
        raise _fail(f"expected a clock time HH:MM, got {value!r}")
    text = value.strip()
    if text == "24:00":
        return time(23, 59, 59, 999999)
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _day_date(value: object) -> object:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail(f"expected a date YYYY-MM-DD, got {value!r}")


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(f"unknown time zone {value!r} (e.g. Europe/Paris)") from None
    return value


Ident = Annotated[str, AfterValidator(_ident)]
ServiceName = Annotated[str, AfterValidator(_service_name)]
Username = Annotated[str, AfterValidator(_username)]
Number = Annotated[str, BeforeValidator(_number_is_text), AfterValidator(_number)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Host = Annotated[str, AfterValidator(_host)]
IpText = Annotated[str, AfterValidator(_ip)]
HostPort = Annotated[str, AfterValidator(_hostport)]
TransportText = Annotated[Literal["udp", "tcp", "tls"], BeforeValidator(_lower)]
# ``required``: the kiosk's media must be SRTP (SDES, RFC 4568), else the call is refused.
EncryptionText = Annotated[Literal["optional", "required"], BeforeValidator(_lower)]
ProtocolText = Annotated[Literal["sip", "h323"], BeforeValidator(_lower)]
# An E.164 number as dialled (ITU-T E.164: at most 15 digits; national forms allowed).
E164 = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,20}$")]
# An h323-ID (H.225.0 AliasAddress, BMPString of 1-256 characters) or E.164 digits.
Alias = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")]
AlgorithmText = Annotated[Literal["SHA-256", "MD5"], BeforeValidator(_upper)]
Day = Annotated[int, BeforeValidator(_day)]
ClockTime = Annotated[time, BeforeValidator(_clock)]
DayDate = Annotated[date, BeforeValidator(_day_date)]
TimeZoneName = Annotated[str, AfterValidator(_timezone)]


# --------------------------------------------------------------------------------------
# The document schema: what the YAML may say, before any cross reference is checked.


class _Doc(BaseModel):
    # strict: YAML's guesses (yes -> True, 1e3 -> float) must not be coerced silently;
    # extra="forbid": a mistyped key is an error, not an ignored line.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SecretRefDoc(_Doc):
    """``{secret: NAME}`` (a line of the secrets file) or ``{env: VARIABLE}``."""

    secret: Annotated[str, AfterValidator(_secret_name)] | None = None
    env: Annotated[str, AfterValidator(_env_name)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRefDoc:
        if (self.secret is None) == (self.env is None):
            raise _fail("give exactly one of 'secret' or 'env'")
        return self


Password = Annotated[SecretRefDoc | None, BeforeValidator(_refuse_literal_secret)]


class BansDoc(_Doc):
    """``auth.bans``: failed authentications that ban a source or a login (0: never)."""

    source_failures: int = Field(default=10, ge=0, le=100_000)
    account_failures: int = Field(default=30, ge=0, le=100_000)
    window: float = Field(default=60.0, ge=1, le=86400)
    duration: float = Field(default=600.0, ge=1, le=7 * 86400)
    flood_rate: float = Field(default=200.0, ge=0, le=1_000_000)
    flood_burst: float = Field(default=400.0, ge=1, le=1_000_000)
    ras_flood_rate: float = Field(default=20.0, ge=0, le=1_000_000)
    ras_flood_burst: float = Field(default=60.0, ge=1, le=1_000_000)


class AuthDoc(_Doc):
    """The ``auth`` section (RFC 3261 22.4, RFC 8760)."""

    realm: Text | None = None
    algorithms: list[AlgorithmText] = Field(default=["SHA-256", "MD5"], min_length=1)
    nonce_ttl: int = Field(default=300, ge=1, le=86400)
    bans: BansDoc = BansDoc()


class AdminTokenDoc(_Doc):
    """One bearer token of the admin API: who holds it and what it may do."""

    name: Text
    role: Literal["operator", "monitoring"]
    token: Annotated[SecretRefDoc, BeforeValidator(_refuse_literal_secret)]


class AdminDoc(_Doc):
    """The ``admin`` section: bearer tokens of the admin HTTP API."""

    tokens: list[AdminTokenDoc] = []
    public_on_loopback: bool = False  # /healthz and /metrics without a token from loopback


class MediaDoc(_Doc):
    """The ``media`` section."""

    bind: IpText = "127.0.0.1"
    advertise: IpText | None = None
    port_min: int = Field(default=20000, ge=1024, le=65534)
    port_max: int = Field(default=29999, ge=1025, le=65535)
    timeout: float = Field(default=60.0, ge=0)


class SessionTimerDoc(_Doc):
    """The ``session_timer`` section (RFC 4028)."""

    expires: int = Field(default=1800, ge=90)
    min_se: int = Field(default=90, ge=90)  # RFC 4028 4: Min-SE is never below 90 s


class H320GatewayDoc(_Doc):
    """One item of ``h323.gateways``: an H.320/H.323 gateway that reaches ISDN units."""

    id: Ident
    address: HostPort  # its H.225.0 call signalling address (port 1720 by default)


class GatekeeperDoc(_Doc):
    """One item of ``h323.gatekeepers``: a partner's gatekeeper the gateway registers
    with (H.225.0 RAS) and locates stations through (LRQ)."""

    id: Ident
    address: HostPort  # its RAS address (UDP, port 1719 by default)
    aliases: list[Alias] = Field(default=["vrgw"], min_length=1)  # what we register as
    identifier: Alias | None = None  # its gatekeeperIdentifier, when it insists on one


class H323Doc(_Doc):
    """The ``h323`` section."""

    gateways: list[H320GatewayDoc] = []
    gatekeepers: list[GatekeeperDoc] = []


class RegistrationDoc(_Doc):
    """The ``registration`` section (RFC 3261 10.3)."""

    min_expires: int = Field(default=60, ge=1)
    max_expires: int = Field(default=3600, ge=1)
    default_expires: int = Field(default=600, ge=1)


class SlotDoc(_Doc):
    """A weekly slot: ``{days: [wed, thu], from: "09:00", to: "12:00"}``."""

    days: list[Day] = Field(min_length=1)
    start: ClockTime = Field(alias="from")
    end: ClockTime = Field(alias="to")
    appointment: bool = False  # True: only callers with an appointment


class MonthlySlotDoc(_Doc):
    """A monthly slot: ``{nth: 4, day: fri, from: "09:00", to: "12:00"}`` (nth -1 = last)."""

    nth: Literal[1, 2, 3, 4, 5, -1]
    day: Day
    start: ClockTime = Field(alias="from")
    end: ClockTime = Field(alias="to")
    appointment: bool = False


class ClosureDoc(_Doc):
    """An exceptional closure, whole days: ``{from: 2026-12-24, to: 2026-12-31}``."""

    first: DayDate = Field(alias="from")
    last: DayDate | None = Field(default=None, alias="to")
    reason: Text | None = None


class ScheduleDoc(_Doc):
    """Opening hours of a partner (``schedule``) or of a kiosk's site (``opening_hours``)."""

    weekly: list[SlotDoc] = Field(default_factory=list)
    monthly: list[MonthlySlotDoc] = Field(default_factory=list)
    closures: list[ClosureDoc] = Field(default_factory=list)
    holidays: Literal["france", "alsace-moselle", "none"] = "france"


class QueueDoc(_Doc):
    """A partner's ``queue``: bounds, and what a waiting caller hears."""

    max_length: int = Field(default=10, ge=0, le=1000)
    max_wait: float = Field(default=900.0, ge=10, le=86400)
    waiting: Literal["announcement", "ringing"] = "announcement"


class KioskDoc(_Doc):
    """One item of ``kiosks``."""

    id: Ident
    site: Text
    label: Text | None = None
    username: Username | None = None
    password: Password = None
    addresses: list[IpText] = Field(default_factory=list)
    # This login's own digest algorithms (RFC 8760); absent: those of ``auth``.
    algorithms: list[AlgorithmText] | None = Field(default=None, min_length=1)
    services: Annotated[list[ServiceName] | None, BeforeValidator(_services_or_all)]
    opening_hours: ScheduleDoc | None = None
    encryption: EncryptionText = "optional"
    # kbit/s the site's link carries: written as b=AS/b=TIAS into its calls' SDP
    bandwidth: int | None = Field(default=None, ge=128, le=1_000_000)


class ServiceDoc(_Doc):
    """One item of ``services``."""

    name: ServiceName
    number: Number
    partner: Ident
    label: Text | None = None


class StationAuthDoc(_Doc):
    """A station's ``auth``: the gateway's login when the station challenges it (RFC 3261 22.2)."""

    username: Username
    password: Password


class StationDoc(_Doc):
    """One item of a partner's ``stations``."""

    id: Ident
    protocol: ProtocolText = "sip"
    username: Username | None = None
    password: Password = None
    algorithms: list[AlgorithmText] | None = Field(default=None, min_length=1)
    address: HostPort | None = None
    transport: TransportText | None = None
    alias: Alias | None = None  # H.323: the unit's h323-ID or E.164 number, put in Setup
    number: E164 | None = None  # an ISDN unit's number, called through the gateway `via`
    via: Ident | None = None  # the id of an h323.gateways entry
    gatekeeper: Ident | None = None  # the id of an h323.gatekeepers entry: located by LRQ
    max_calls: int = Field(default=1, ge=0)
    keepalive: float = Field(default=30.0, ge=0, le=3600)  # OPTIONS interval; 0 = none
    auth: StationAuthDoc | None = None
    bandwidth: int | None = Field(default=None, ge=128, le=1_000_000)  # kbit/s, as a kiosk's


class PartnerDoc(_Doc):
    """One item of ``partners``."""

    id: Ident
    name: Text
    stations: list[StationDoc] = Field(min_length=1)
    schedule: ScheduleDoc | None = None  # absent: always open
    queue: QueueDoc = QueueDoc()
    wrap_up: float = Field(default=30.0, ge=0, le=3600)
    pause_after: int = Field(default=3, ge=0, le=100)
    typical_call: float = Field(default=600.0, gt=0, le=86400)
    encryption: EncryptionText = "optional"


class DialplanDoc(_Doc):
    """The whole file."""

    version: Annotated[int, AfterValidator(_version)]
    domain: Host
    timezone: TimeZoneName = "Europe/Paris"
    secrets_file: Text | None = None
    auth: AuthDoc = AuthDoc()
    admin: AdminDoc = AdminDoc()
    media: MediaDoc = MediaDoc()
    session_timer: SessionTimerDoc = SessionTimerDoc()
    registration: RegistrationDoc = RegistrationDoc()
    h323: H323Doc = H323Doc()
    kiosks: list[KioskDoc] = Field(min_length=1)
    services: list[ServiceDoc] = Field(min_length=1)
    partners: list[PartnerDoc] = Field(min_length=1)


# --------------------------------------------------------------------------------------
# Problems and where they are.


def _path(loc: Loc) -> str:
    """``('kiosks', 0, 'services', 2)`` -> ``kiosks[0].services[2]``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _walk(root: yaml.Node, loc: Loc) -> tuple[yaml.Node, yaml.Node]:
    """The node at ``loc`` (or its nearest existing ancestor) and the node to report it at.

    A value reached through a key is reported at the key, which is where the reader
    looks for ``media:`` or ``services:`` even when the value is a block below. Parts
    that match nothing (a key that is missing) are skipped.
    """
    node, anchor = root, root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = None
            for key, value in node.value:
                # After a merge ("<<") the last pair wins, as in the constructed data.
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    match = (key, value)
            if match is not None:
                anchor, node = match
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            node = anchor = node.value[part]
    return node, anchor


def _line_of(root: yaml.Node, loc: Loc) -> int:
    """1-based line where the problem at ``loc`` is reported."""
    return int(_walk(root, loc)[1].start_mark.line) + 1


class _Problems:
    """Collects problems of one dialplan file, located through its node tree."""

    def __init__(self, file: str, root: yaml.Node | None) -> None:
        self.file = file
        self.root = root
        self.items: list[Problem] = []

    def at(self, loc: Loc, reason: str, *, line_loc: Loc | None = None) -> None:
        line = (
            None
            if self.root is None
            else _line_of(self.root, loc if line_loc is None else line_loc)
        )
        self.items.append(Problem(self.file, line, f"{_path(loc)}: {reason}" if loc else reason))

    def add(self, problem: Problem) -> None:
        self.items.append(problem)

    def raise_if_any(self) -> None:
        if not self.items:
            return
        ordered = sorted(self.items, key=lambda p: (p.file != self.file, p.file, p.line or 0))
        first, *more = ordered
        raise DialplanError(first.file, first.line, first.reason, more=more)


def _fields_at(loc: Loc) -> list[str]:
    """Names of the keys the schema allows in the mapping at ``loc``."""
    tp: Any = DialplanDoc
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            if get_origin(tp) is list:
                tp = get_args(tp)[0]
        elif isinstance(tp, type) and issubclass(tp, BaseModel):
            fields = _keys_of(tp)
            if part in fields:
                tp = fields[part]
    tp = _unwrap(tp)
    return list(_keys_of(tp)) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _keys_of(model: type[BaseModel]) -> dict[str, Any]:
    """YAML keys of a schema model (aliases such as ``from`` in place of field names)."""
    return {(f.alias or name): f.annotation for name, f in model.model_fields.items()}


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            tp = next(arg for arg in get_args(tp) if arg is not type(None))
        else:
            return tp


def _validate(data: dict[str, Any], problems: _Problems) -> DialplanDoc:
    try:
        return DialplanDoc.model_validate(data)
    except ValidationError as exc:
        # include_input=False: an input may be a literal password.
        errors = exc.errors(include_url=False, include_input=False)
    # Raised outside the handler so that no traceback chains the ValidationError (its
    # text quotes inputs).
    for error in errors:
        loc: Loc = tuple(error["loc"])
        kind = error["type"]
        if kind == "missing":
            problems.at(loc[:-1], f"missing required key '{loc[-1]}'")
        elif kind == "extra_forbidden":
            allowed = _fields_at(loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed)
            problems.at(loc[:-1], f"unknown key '{loc[-1]}' ({hint})", line_loc=loc)
        else:
            message = str(error["msg"])
            if message[:1].isupper() and message[1:2].islower():
                message = message[0].lower() + message[1:]
            if (
                kind == "string_type"
                and problems.root is not None
                and isinstance(_walk(problems.root, loc)[0], yaml.ScalarNode)
            ):
                # yes/no/on/off, 1.0 and 2024-01-01 are not strings to YAML 1.1.
                message += " (quote it: YAML read a number, boolean or date)"
            problems.at(loc, message)
    problems.raise_if_any()
    raise AssertionError("a ValidationError without errors")


# --------------------------------------------------------------------------------------
# Reading YAML.


def _yaml_reason(exc: yaml.MarkedYAMLError) -> str:
    # PyYAML's str() appends a snippet of the line: keep only the words, one line.
    reason = f"YAML syntax error: {exc.problem or exc.context or 'unreadable'}"
    return f"{reason} ({exc.context})" if exc.problem and exc.context else reason


def _compose(text: str, file: str) -> yaml.Node | None:
    try:
        # The reader rejects control characters as soon as it is built.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        reason = f"YAML syntax error: character #x{exc.character:04x} is not allowed"
        raise DialplanError(file, text.count("\n", 0, exc.position) + 1, reason) from None
    try:
        return loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise DialplanError(file, line, _yaml_reason(exc)) from None
    except RecursionError:  # PyYAML's composer recurses once per level of nesting
        line = loader.get_mark().line + 1
        raise DialplanError(file, line, "YAML nested too deeply") from None
    finally:
        loader.dispose()


def _construct(root: yaml.Node, file: str) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        raise DialplanError(file, line, _yaml_reason(exc)) from None
    except (ValueError, OverflowError) as exc:
        # A scalar the YAML 1.1 resolver tags as a timestamp that is no date: 2027-00-01.
        raise DialplanError(file, _unbuildable_line(root), f"invalid value: {exc}") from None
    finally:
        loader.dispose()


def _unbuildable_line(root: yaml.Node) -> int | None:
    """The line of the first scalar PyYAML cannot turn into a value, if any."""
    loader = yaml.SafeLoader("")
    stack = [root]
    try:
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.ScalarNode):
                try:
                    loader.construct_object(node)
                except (ValueError, OverflowError):
                    return int(node.start_mark.line) + 1
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(reversed(node.value))
            elif isinstance(node, yaml.MappingNode):
                for key, value in reversed(node.value):
                    stack += [value, key]
    finally:
        loader.dispose()
    return None


def _duplicate_keys(node: yaml.Node, loc: Loc, problems: _Problems, seen: set[int]) -> None:
    """PyYAML keeps the last of two equal keys silently; a dialplan must not."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in keys:
                    problems.add(
                        Problem(
                            problems.file,
                            key.start_mark.line + 1,
                            f"{_path((*loc, key.value))}: duplicate key '{key.value}'",
                        )
                    )
                keys.add(key.value)
            _duplicate_keys(value, (*loc, str(key.value)), problems, seen)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _duplicate_keys(item, (*loc, index), problems, seen)


def _read_text(path: Path, file: str) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = f"cannot read the file: {exc.strerror or exc}"
    else:
        try:
            return raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            # The exception holds the raw bytes (maybe a secret): keep only the offset.
            start = exc.start
        raise DialplanError(file, raw.count(b"\n", 0, start) + 1, "the file is not valid UTF-8")
    raise DialplanError(file, None, reason)


# --------------------------------------------------------------------------------------
# Secrets.


def _read_secrets(path: Path, file: str) -> dict[str, tuple[SecretStr, int]]:
    """Parse ``name: value`` lines; values are taken verbatim (quotes stripped, no escapes).

    A dedicated parser rather than YAML: a password may hold ``#``, ``:`` or ``{``, and
    no error message may quote a line of this file.
    """
    text = _read_text(path, file)
    secrets: dict[str, tuple[SecretStr, int]] = {}
    problems: list[Problem] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped == "---":
            continue
        name, colon, value = stripped.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not _SECRET_NAME.fullmatch(name):
            problems.append(Problem(file, number, "expected a line 'name: value'"))
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if not value:
            problems.append(Problem(file, number, f"secret '{name}' is empty"))
        elif name in secrets:
            first = secrets[name][1]
            problems.append(
                Problem(file, number, f"secret '{name}' is defined twice (first at line {first})")
            )
        else:
            secrets[name] = (SecretStr(value), number)
    if problems:
        first_problem, *more = problems
        raise DialplanError(first_problem.file, first_problem.line, first_problem.reason, more=more)
    return secrets


class _SecretSource:
    """Resolves ``{secret: ...}`` and ``{env: ...}`` references, reading the file once."""

    def __init__(
        self, doc: DialplanDoc, base: Path, env: Mapping[str, str], problems: _Problems
    ) -> None:
        self.env = env
        self.problems = problems
        self.secrets: dict[str, tuple[SecretStr, int]] | None = None
        self.secrets_file: str | None = None
        if doc.secrets_file is not None:
            path = Path(doc.secrets_file).expanduser()
            path = path if path.is_absolute() else base / path
            self.secrets_file = str(path)
            if not path.is_file():
                problems.at(("secrets_file",), f"secrets file {self.secrets_file} does not exist")
                return
            try:
                self.secrets = _read_secrets(path, self.secrets_file)
            except DialplanError as exc:
                for problem in exc.problems:
                    problems.add(problem)

    def resolve(self, ref: SecretRefDoc, loc: Loc) -> SecretStr | None:
        if ref.env is not None:
            value = self.env.get(ref.env)
            if value is None:
                self.problems.at((*loc, "env"), f"environment variable {ref.env} is not set")
                return None
            if not value:
                self.problems.at((*loc, "env"), f"environment variable {ref.env} is empty")
                return None
            return SecretStr(value)
        assert ref.secret is not None  # guaranteed by SecretRefDoc._exactly_one
        if self.secrets_file is None:
            self.problems.at(
                (*loc, "secret"),
                f"secret '{ref.secret}' is referenced but the dialplan has no secrets_file",
            )
            return None
        if self.secrets is None:
            return None  # the missing or broken file is already reported
        found = self.secrets.get(ref.secret)
        if found is None:
            self.problems.at(
                (*loc, "secret"), f"secret '{ref.secret}' is not defined in {self.secrets_file}"
            )
            return None
        return found[0]


# --------------------------------------------------------------------------------------
# Meaning: cross references, uniqueness, ranges that span several keys.


def _unique(
    problems: _Problems, what: str, items: Iterable[tuple[str, Loc]], *, fold: bool = False
) -> None:
    seen: dict[str, Loc] = {}
    for value, loc in items:
        key = value.lower() if fold else value
        if key in seen:
            problems.at(
                loc,
                f"duplicate {what} '{value}' (first at line {_first_line(problems, seen[key])})",
            )
        else:
            seen[key] = loc


def _first_line(problems: _Problems, loc: Loc) -> int | str:
    return "?" if problems.root is None else _line_of(problems.root, loc)


def _check_settings(doc: DialplanDoc, problems: _Problems) -> None:
    media = doc.media
    if media.port_min % 2:
        problems.at(
            ("media", "port_min"), f"must be even (RTP uses even ports), got {media.port_min}"
        )
    if media.port_min >= media.port_max:
        problems.at(
            ("media", "port_max"),
            f"must be greater than port_min ({media.port_min}), got {media.port_max}",
        )
    if media.advertise is not None and ipaddress.ip_address(media.advertise).is_unspecified:
        problems.at(("media", "advertise"), f"{media.advertise} cannot be advertised in SDP")
    if media.advertise is None and ipaddress.ip_address(media.bind).is_unspecified:
        problems.at(
            ("media", "bind"),
            f"binding to {media.bind} needs media.advertise: the address written in SDP",
        )
    timer = doc.session_timer
    if timer.expires < timer.min_se:
        problems.at(
            ("session_timer", "expires"),
            f"must be at least min_se ({timer.min_se}), got {timer.expires}",
        )
    reg = doc.registration
    if not reg.min_expires <= reg.max_expires:
        problems.at(
            ("registration", "max_expires"),
            f"must be at least min_expires ({reg.min_expires}), got {reg.max_expires}",
        )
    elif not reg.min_expires <= reg.default_expires <= reg.max_expires:
        problems.at(
            ("registration", "default_expires"),
            f"must lie between min_expires ({reg.min_expires}) and max_expires "
            f"({reg.max_expires}), got {reg.default_expires}",
        )
    algorithms = doc.auth.algorithms
    for index, name in enumerate(algorithms):
        if name in algorithms[:index]:
            problems.at(("auth", "algorithms", index), f"{name} is listed twice")


def _check_login(
    problems: _Problems,
    what: str,
    username: str | None,
    password: SecretRefDoc | None,
    loc: Loc,
    algorithms: list[DigestAlgorithm] | None = None,
) -> None:
    if username is not None and password is None:
        problems.at((*loc, "username"), f"{what} has a username but no password")
    if username is None and password is not None:
        problems.at((*loc, "password"), f"{what} has a password but no username")
    if algorithms is not None and username is None:
        problems.at((*loc, "algorithms"), f"{what}: algorithms apply to a digest login only")
    for index, name in enumerate(algorithms or ()):
        if name in (algorithms or ())[:index]:
            problems.at((*loc, "algorithms", index), f"{name} is listed twice")


def _check_references(doc: DialplanDoc, problems: _Problems) -> None:
    service_names = [s.name for s in doc.services]
    partner_ids = {p.id for p in doc.partners}

    _unique(problems, "kiosk id", ((k.id, ("kiosks", i, "id")) for i, k in enumerate(doc.kiosks)))
    _unique(
        problems,
        "service name",
        ((s.name, ("services", i, "name")) for i, s in enumerate(doc.services)),
    )
    _unique(
        problems,
        "service number",
        ((s.number, ("services", i, "number")) for i, s in enumerate(doc.services)),
    )
    _unique(
        problems, "partner id", ((p.id, ("partners", i, "id")) for i, p in enumerate(doc.partners))
    )
    stations = [
        (station, ("partners", p, "stations", s))
        for p, partner in enumerate(doc.partners)
        for s, station in enumerate(partner.stations)
    ]
    _unique(problems, "station id", ((st.id, (*loc, "id")) for st, loc in stations))

    # Kiosks and stations share one digest namespace: secret_for() answers for both.
    logins: list[tuple[str, Loc]] = [
        (k.username, ("kiosks", i, "username"))
        for i, k in enumerate(doc.kiosks)
        if k.username is not None
    ]
    logins += [(st.username, (*loc, "username")) for st, loc in stations if st.username is not None]
    _unique(problems, "username", logins)
    dialable = {s.name for s in doc.services} | {s.number for s in doc.services}
    for username, loc in logins:
        if username.lower() in dialable:
            problems.at(loc, f"username '{username}' is also a service name or number")

    _unique(
        problems,
        "kiosk address",
        (
            (address, ("kiosks", i, "addresses", j))
            for i, k in enumerate(doc.kiosks)
            for j, address in enumerate(k.addresses)
        ),
    )

    for i, kiosk in enumerate(doc.kiosks):
        loc = ("kiosks", i)
        _check_login(
            problems, f"kiosk '{kiosk.id}'", kiosk.username, kiosk.password, loc, kiosk.algorithms
        )
        if kiosk.username is None and not kiosk.addresses:
            problems.at(
                loc,
                f"kiosk '{kiosk.id}' needs a username (digest login) or addresses (trusted IPs)",
            )
        for j, name in enumerate(kiosk.services or ()):
            if name not in service_names:
                problems.at(
                    (*loc, "services", j),
                    f"unknown service '{name}' (defined: {', '.join(service_names)})",
                )
            elif name in (kiosk.services or ())[:j]:
                problems.at((*loc, "services", j), f"service '{name}' is listed twice")

    for i, service in enumerate(doc.services):
        if service.partner not in partner_ids:
            problems.at(
                ("services", i, "partner"),
                f"unknown partner '{service.partner}' (defined: {', '.join(sorted(partner_ids))})",
            )

    for i, kiosk in enumerate(doc.kiosks):
        if kiosk.opening_hours is not None:
            _check_schedule(problems, kiosk.opening_hours, ("kiosks", i, "opening_hours"))
    for i, partner in enumerate(doc.partners):
        if partner.schedule is not None:
            _check_schedule(problems, partner.schedule, ("partners", i, "schedule"))

    gateways = {g.id for g in doc.h323.gateways}
    gatekeepers = {g.id for g in doc.h323.gatekeepers}
    _unique(
        problems,
        "gatekeeper id",
        ((g.id, ("h323", "gatekeepers", i, "id")) for i, g in enumerate(doc.h323.gatekeepers)),
    )
    _unique(
        problems,
        "H.320 gateway id",
        ((g.id, ("h323", "gateways", i, "id")) for i, g in enumerate(doc.h323.gateways)),
    )
    for station, loc in stations:
        what = f"station '{station.id}'"
        if station.gatekeeper is not None:
            # A unit registered with a partner's gatekeeper: located there by its alias.
            if station.protocol != "h323":
                problems.at((*loc, "gatekeeper"), f"{what}: gatekeeper is for H.323 stations")
            elif station.gatekeeper not in gatekeepers:
                known = ", ".join(sorted(gatekeepers)) or "none"
                problems.at(
                    (*loc, "gatekeeper"),
                    f"{what}: unknown gatekeeper '{station.gatekeeper}' (defined: {known})",
                )
            elif station.alias is None:
                problems.at(loc, f"{what}: a station found through a gatekeeper needs its alias")
            elif station.address is not None or station.via is not None:
                problems.at(
                    (*loc, "gatekeeper"), f"{what}: give a gatekeeper, an address or via, one only"
                )
            continue
        if station.via is not None or station.number is not None:
            # An ISDN unit: its E.164 number through a named H.320 gateway.
            if station.protocol != "h323":
                problems.at(loc, f"{what}: number and via are for H.323 (ISDN) stations")
            elif station.via is None:
                problems.at(
                    (*loc, "number"),
                    f"{what}: a number needs via (the H.320 gateway to call it through)",
                )
            elif station.via not in gateways:
                known = ", ".join(sorted(gateways)) or "none"
                problems.at(
                    (*loc, "via"), f"{what}: unknown gateway '{station.via}' (defined: {known})"
                )
            elif station.number is None:
                problems.at((*loc, "via"), f"{what}: via needs the unit's number")
            elif station.address is not None:
                problems.at((*loc, "address"), f"{what}: an ISDN unit has a number, not an address")
            continue
        if station.protocol == "h323":
            # Called at a fixed address, or where its registration with the gateway's
            # gatekeeper (RAS, by its alias) says it is.
            if station.address is None and station.alias is None:
                problems.at(
                    loc,
                    f"{what}: an H.323 station needs an address (host[:port]) or the alias "
                    "it registers with",
                )
            for key in ("username", "password", "algorithms", "transport", "auth"):
                if getattr(station, key) is not None:
                    problems.at((*loc, key), f"{what}: {key} applies to SIP stations only")
            continue
        if station.alias is not None:
            problems.at((*loc, "alias"), f"{what}: alias applies to H.323 stations only")
        if station.username is None and station.address is None:
            problems.at(loc, f"{what} needs a username (it registers) or an address (static)")
        elif station.username is not None and station.address is not None:
            problems.at((*loc, "address"), f"{what} has both a username and an address: keep one")
        _check_login(problems, what, station.username, station.password, loc, station.algorithms)
        if station.transport is not None and station.address is None:
            problems.at((*loc, "transport"), f"{what}: transport applies to a static address only")
        if station.auth is not None and station.auth.password is None:
            problems.at((*loc, "auth", "password"), f"{what}: auth needs a password")


def _check_schedule(problems: _Problems, doc: ScheduleDoc, loc: Loc) -> None:
    slots: list[tuple[str, SlotDoc | MonthlySlotDoc]] = [
        *(("weekly", s) for s in doc.weekly),
        *(("monthly", s) for s in doc.monthly),
    ]
    counters = {"weekly": 0, "monthly": 0}
    for kind, slot in slots:
        index = counters[kind]
        counters[kind] += 1
        if slot.end <= slot.start:
            problems.at(
                (*loc, kind, index, "to"),
                f"slot ends ({slot.end:%H:%M}) before it starts ({slot.start:%H:%M})",
            )
    for j, closure in enumerate(doc.closures):
        if closure.last is not None and closure.last < closure.first:
            problems.at((*loc, "closures", j, "to"), "closure ends before it starts")


def _schedule(doc: ScheduleDoc | None, tz: str) -> Schedule | None:
    if doc is None:
        return None
    return Schedule(
        weekly=[
            WeeklySlot(
                frozenset(s.days), s.start, s.end, "appointment" if s.appointment else "walk_in"
            )
            for s in doc.weekly
        ],
        monthly=[
            MonthlySlot(s.nth, s.day, s.start, s.end, "appointment" if s.appointment else "walk_in")
            for s in doc.monthly
        ],
        closures=[Closure(c.first, c.last or c.first, c.reason or "") for c in doc.closures],
        holidays=doc.holidays,
        tz=tz,
    )


# --------------------------------------------------------------------------------------
# Building the runtime model.


def _build(doc: DialplanDoc, source: Path, secrets: _SecretSource, problems: _Problems) -> Dialplan:
    credentials: dict[str, SecretStr] = {}
    station_secrets: dict[str, SecretStr] = {}

    def login(username: str | None, password: SecretRefDoc | None, loc: Loc) -> None:
        if username is not None and password is not None:
            value = secrets.resolve(password, (*loc, "password"))
            if value is not None:
                credentials[username] = value

    partners = {p.id: p for p in doc.partners}
    services = {
        s.name: Service(
            name=s.name,
            number=s.number,
            partner=s.partner,
            label=s.label or partners[s.partner].name,
        )
        for s in doc.services
    }
    kiosks: dict[str, Kiosk] = {}
    for i, k in enumerate(doc.kiosks):
        login(k.username, k.password, ("kiosks", i))
        kiosks[k.id] = Kiosk(
            id=k.id,
            site=k.site,
            label=k.label or k.site,
            username=k.username,
            addresses=tuple(k.addresses),
            algorithms=None if k.algorithms is None else tuple(k.algorithms),
            services=frozenset(services if k.services is None else k.services),
            opening_hours=_schedule(k.opening_hours, doc.timezone),
            encryption_required=k.encryption == "required",
            bandwidth=k.bandwidth,
        )
    built_partners: dict[str, Partner] = {}
    for p, partner in enumerate(doc.partners):
        stations = []
        for s, st in enumerate(partner.stations):
            login(st.username, st.password, ("partners", p, "stations", s))
            if st.auth is not None and st.auth.password is not None:
                secret = secrets.resolve(
                    st.auth.password, ("partners", p, "stations", s, "auth", "password")
                )
                if secret is not None:
                    station_secrets[st.id] = secret
            address = None
            via = next((g for g in doc.h323.gateways if g.id == st.via), None)
            if via is not None:  # an ISDN unit: the H.320 gateway's address
                host, port = parse_hostport(via.address, DEFAULT_H323_PORT)
                address = StaticAddress(host=host, port=port, transport="tcp")
            elif st.address is not None and st.protocol == "h323":
                host, port = parse_hostport(st.address, DEFAULT_H323_PORT)
                address = StaticAddress(host=host, port=port, transport="tcp")
            elif st.address is not None:
                host, port = parse_hostport(st.address)
                address = StaticAddress(host=host, port=port, transport=st.transport or "udp")
            stations.append(
                Station(
                    id=st.id,
                    partner=partner.id,
                    username=st.username,
                    address=address,
                    algorithms=None if st.algorithms is None else tuple(st.algorithms),
                    protocol=st.protocol,
                    alias=st.number if st.via is not None else st.alias,
                    gatekeeper=st.gatekeeper,
                    max_calls=st.max_calls,
                    keepalive=st.keepalive,
                    auth_username=None if st.auth is None else st.auth.username,
                    bandwidth=st.bandwidth,
                )
            )
        built_partners[partner.id] = Partner(
            id=partner.id,
            name=partner.name,
            stations=tuple(stations),
            schedule=_schedule(partner.schedule, doc.timezone),
            encryption_required=partner.encryption == "required",
            desk=DeskSettings(
                wrap_up=partner.wrap_up,
                pause_after=partner.pause_after,
                typical_call=partner.typical_call,
                queue=QueueSettings(
                    max_length=partner.queue.max_length,
                    max_wait=partner.queue.max_wait,
                    waiting=partner.queue.waiting,
                ),
            ),
        )
    tokens: list[AdminToken] = []
    for t, token in enumerate(doc.admin.tokens):
        value = secrets.resolve(token.token, ("admin", "tokens", t, "token"))
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_LENGTH:
            problems.at(
                ("admin", "tokens", t, "token"),
                f"the token of {token.name!r} is shorter than {MIN_TOKEN_LENGTH} characters",
            )
        elif value is not None:
            tokens.append(AdminToken(token.name, token.role, value))
    problems.raise_if_any()
    return Dialplan(
        source=source,
        domain=doc.domain,
        timezone=doc.timezone,
        auth=AuthSettings(
            realm=doc.auth.realm or doc.domain,
            algorithms=tuple(doc.auth.algorithms),
            nonce_ttl=doc.auth.nonce_ttl,
            bans=BanSettings(
                source_failures=doc.auth.bans.source_failures,
                account_failures=doc.auth.bans.account_failures,
                window=float(doc.auth.bans.window),
                duration=float(doc.auth.bans.duration),
                flood_rate=float(doc.auth.bans.flood_rate),
                flood_burst=float(doc.auth.bans.flood_burst),
                ras_flood_rate=float(doc.auth.bans.ras_flood_rate),
                ras_flood_burst=float(doc.auth.bans.ras_flood_burst),
            ),
        ),
        admin=AdminSettings(tokens=tuple(tokens), public_on_loopback=doc.admin.public_on_loopback),
        media=MediaSettings(
            bind=doc.media.bind,
            advertise=doc.media.advertise,
            port_min=doc.media.port_min,
            port_max=doc.media.port_max,
            timeout=float(doc.media.timeout),
        ),
        session_timer=SessionTimerSettings(
            expires=doc.session_timer.expires, min_se=doc.session_timer.min_se
        ),
        registration=RegistrationSettings(
            min_expires=doc.registration.min_expires,
            max_expires=doc.registration.max_expires,
            default_expires=doc.registration.default_expires,
        ),
        gatekeepers=tuple(
            GatekeeperSettings(
                id=g.id,
                address=parse_hostport(g.address, DEFAULT_RAS_PORT),
                aliases=tuple(g.aliases),
                identifier=g.identifier,
            )
            for g in doc.h323.gatekeepers
        ),
        kiosks=kiosks,
        services=services,
        partners=built_partners,
        credentials=credentials,
        station_secrets=station_secrets,
    )


def load_dialplan(path: Path | str, *, env: Mapping[str, str] | None = None) -> Dialplan:
    """Read, validate and index a dialplan file; raise :class:`DialplanError` if it is unusable.

    ``env`` supplies ``{env: ...}`` secrets and defaults to ``os.environ``. The function
    has no side effect, so a failed reload leaves the caller's current dialplan in force.
    """
    path = Path(path)
    file = str(path)
    text = _read_text(path, file)
    root = _compose(text, file)
    if root is None:
        raise DialplanError(file, 1, "the dialplan is empty")
    problems = _Problems(file, root)
    _duplicate_keys(root, (), problems, set())
    problems.raise_if_any()
    data = _construct(root, file)
    if not isinstance(data, dict):
        raise DialplanError(
            file, root.start_mark.line + 1, "the dialplan must be a mapping of keys to values"
        )
    doc = _validate(data, problems)
    _check_settings(doc, problems)
    _check_references(doc, problems)
    problems.raise_if_any()
    routed = {s.partner for s in doc.services}
    for partner in doc.partners:
        if partner.id not in routed:
            _log.warning("%s: partner %r has no service routing to it", file, partner.id)
    secrets = _SecretSource(doc, path.parent, os.environ if env is None else env, problems)
    dialplan = _build(doc, path.absolute(), secrets, problems)
    _log.info(
        "dialplan %s loaded: %d kiosks, %d services, %d partners",
        file,
        len(dialplan.kiosks),
        len(dialplan.services),
        len(dialplan.partners),
    )
    return dialplan
