"""SDP session descriptions (RFC 8866), parsed and serialised without loss.

The B2BUA rewrites what one side offers before handing it to the other side, so the
model is a set of small mutable dataclasses with a fast :meth:`SessionDescription.copy`.
A well-formed CRLF description serialises back to the exact bytes it was parsed from:
known lines are kept in RFC 8866 order, and lines of a type this module does not know
are kept at the place they had among the known lines of their section.

Grammar (RFC 8866 section 9), which the parser checks line by line::

    session-description = version-field origin-field session-name-field
                          [information-field] [uri-field] *email-field *phone-field
                          [connection-field] *bandwidth-field 1*time-description
                          [zone-field] [key-field] *attribute-field *media-description
    time-description    = timing-field *repeat-field
    media-description   = media-field [information-field] *connection-field
                          *bandwidth-field [key-field] *attribute-field

Interop leniency, on purpose: bare LF line ends, a missing last line end, blank lines,
known lines out of order within their section, and a missing ``t=`` are accepted.

Constructors take optional fields by keyword only (``Origin`` and ``TimeDescription``
every field): ``MediaDescription("audio", 4000, "RTP/AVP", ["0"], connection=...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Set
from dataclasses import KW_ONLY, dataclass, field
from enum import StrEnum

from gateway.model.memo import Memo

logger = logging.getLogger(__name__)


class SdpError(ValueError):
    """A session description that does not follow RFC 8866; ``line`` is 1-based."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"SDP line {line}: {reason}" if line is not None else f"SDP: {reason}")
        self.reason = reason
        self.line = line


class Direction(StrEnum):
    """Media direction attributes (RFC 8866 section 6.7, RFC 3264 section 5.1)."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    @property
    def reverse(self) -> Direction:
        """The direction seen from the other end (what an answerer mirrors, RFC 3264 6.1)."""
        if self is Direction.SENDONLY:
            return Direction.RECVONLY
        if self is Direction.RECVONLY:
            return Direction.SENDONLY
        return self


_DIRECTIONS = frozenset(d.value for d in Direction)
_DIRECTION_OF = {d.value: d for d in Direction}  # cheaper than Direction(value)


def _number(text: str, what: str, line: int | None) -> int:
    # str.isdigit() alone accepts characters such as "²" that int() rejects.
    if not text or not text.isascii() or not text.isdigit():
        raise SdpError(f"{what} must be a decimal number, got {text!r}", line)
    return int(text)


# init=False: the __init__ is written out so that mypyc compiles it (docs/architecture.md,
# "Compiled, optionally"; tests/model/test_written_out_inits.py checks it).
@dataclass(slots=True, kw_only=True, init=False)
class Origin:
    """The ``o=`` line: who created the session and its version (RFC 8866 5.2)."""

    username: str
    sess_id: str  # opaque: only ever compared, so kept as text
    sess_version: int
    nettype: str
    addrtype: str
    address: str

    def __init__(
        self,
        *,
        username: str,
        sess_id: str,
        sess_version: int,
        nettype: str,
        addrtype: str,
        address: str,
    ) -> None:
        self.username = username
        self.sess_id = sess_id
        self.sess_version = sess_version
        self.nettype = nettype
        self.addrtype = addrtype
        self.address = address

    @classmethod
    def parse(cls, value: str, line: int | None = None) -> Origin:
        """Parse the value of an ``o=`` line."""
        parts = value.split()
        if len(parts) != 6:
            raise SdpError(
                f"o= needs 6 fields (username sess-id sess-version nettype addrtype "
                f"address), got {len(parts)}",
                line,
            )
        return cls(
            username=parts[0],
            sess_id=parts[1],
            sess_version=_number(parts[2], "o= sess-version", line),
            nettype=parts[3],
            addrtype=parts[4],
            address=parts[5],
        )

    def copy(self) -> Origin:
        """A copy, so that one description's version is bumped alone (RFC 3264 8)."""
        return Origin(
            username=self.username,
            sess_id=self.sess_id,
            sess_version=self.sess_version,
            nettype=self.nettype,
            addrtype=self.addrtype,
            address=self.address,
        )

    def serialize(self) -> str:
        """The value of the ``o=`` line."""
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line (RFC 8866 5.7); ``ttl`` and ``num`` only for multicast addresses.

    Immutable, so that copies of a description share it (rewriting one means assigning
    another ``Connection``).

    ``address`` is keyword-only: ``Connection(address="192.0.2.1")`` or
    ``Connection("IN", "IP6", address="2001:db8::1")``.
    """

    nettype: str = "IN"
    addrtype: str = "IP4"
    _: KW_ONLY
    address: str
    ttl: int | None = None
    num: int | None = None

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """An ``IN IP4`` or ``IN IP6`` connection for a unicast address literal."""
        return cls("IN", "IP6" if ":" in address else "IP4", address=address)

    @staticmethod
    def parse(value: str, line: int | None = None) -> Connection:
        """Parse the value of a ``c=`` line (RFC 8866 5.7: ``IP4 addr/ttl/num``, ``IP6 addr/num``).

        Memoised by text (a kiosk or a station sends the same ``c=`` in every
        description); an error names ``line``.
        """
        try:
            return CONNECTION_MEMO[value]
        except SdpError as exc:
            raise SdpError(exc.reason, line) from None

    def serialize(self) -> str:
        """The value of the ``c=`` line."""
        address = self.address
        if self.ttl is not None:
            address += f"/{self.ttl}"
        if self.num is not None:
            address += f"/{self.num}"
        return f"{self.nettype} {self.addrtype} {address}"

    @property
    def is_unspecified(self) -> bool:
        """``0.0.0.0`` or ``::``: the RFC 2543 way of putting a stream on hold."""
        return self.address in ("0.0.0.0", "::")


def _parse_connection(value: str) -> Connection:
    """A ``c=`` value, parsed cold (RFC 8866 5.7); errors name no line."""
    parts = value.split()
    if len(parts) != 3:
        raise SdpError(f"c= needs 3 fields (nettype addrtype address), got {len(parts)}")
    nettype, addrtype, address = parts
    ttl: int | None = None
    num: int | None = None
    if "/" in address and addrtype in ("IP4", "IP6"):
        base, *suffix = address.split("/")
        if not base or len(suffix) > (2 if addrtype == "IP4" else 1):
            raise SdpError(f"c= malformed multicast address {address!r}")
        numbers = [_number(s, "c= ttl/number of addresses", None) for s in suffix]
        if addrtype == "IP4":
            ttl = numbers[0]
            num = numbers[1] if len(numbers) > 1 else None
        else:
            num = numbers[0]
        address = base
    return Connection(nettype, addrtype, address=address, ttl=ttl, num=num)


# A kiosk or a station sends the same c= in every description, and Connection is
# immutable: parsed values are shared.
CONNECTION_MEMO: Memo[Connection] = Memo(_parse_connection)


@dataclass(slots=True, kw_only=True, init=False)
class TimeDescription:
    """A ``t=`` line and the ``r=`` lines that follow it (RFC 8866 5.9 and 5.10)."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)

    def __init__(self, *, start: int = 0, stop: int = 0, repeats: list[str] | None = None) -> None:
        self.start = start
        self.stop = stop
        self.repeats = [] if repeats is None else repeats

    def copy(self) -> TimeDescription:
        """A copy with its own list of repeats."""
        return TimeDescription(start=self.start, stop=self.stop, repeats=list(self.repeats))


class _Attributes:
    """Attribute helpers shared by the session and media levels (RFC 8866 5.13)."""

    __slots__ = ()
    attributes: list[tuple[str, str | None]]

    def get_attr(self, name: str) -> str | None:
        """Value of the first ``a=name``: ``""`` for a flag attribute, ``None`` if absent."""
        for key, value in self.attributes:
            if key == name:
                return "" if value is None else value
        return None

    def get_attrs(self, name: str) -> list[str]:
        """Values of every ``a=name`` in order (``""`` for flag attributes)."""
        return ["" if v is None else v for k, v in self.attributes if k == name]

    def has_attr(self, name: str) -> bool:
        """Whether at least one ``a=name`` is present."""
        for key, _ in self.attributes:  # noqa: SIM110 - any() over a generator costs more
            if key == name:
                return True
        return False

    def add_attr(self, name: str, value: str | None = None) -> None:
        """Append ``a=name`` or ``a=name:value``."""
        self.attributes.append((name, value))

    def remove_attrs(self, names: Iterable[str] | str) -> int:
        """Remove every attribute whose name is in ``names``; return how many went."""
        wanted: Set[str]
        if type(names) is frozenset or type(names) is set:  # the usual case, no ABC check
            wanted = names
        elif isinstance(names, str):
            wanted = {names}
        else:
            wanted = names if isinstance(names, Set) else set(names)  # no copy of a set
        kept = [item for item in self.attributes if item[0] not in wanted]
        removed = len(self.attributes) - len(kept)
        if removed:
            self.attributes[:] = kept
        return removed

    @property
    def direction(self) -> Direction | None:
        """The direction attribute stated at this level, ``None`` when there is none.

        For the direction that applies to a stream (media level, else session level,
        else sendrecv) use :meth:`SessionDescription.effective_direction`.
        """
        for key, _ in self.attributes:
            if key in _DIRECTIONS:
                return _DIRECTION_OF[key]
        return None

    def set_direction(self, direction: Direction | str) -> None:
        """State ``direction`` at this level, in place of any direction attribute here."""
        value = Direction(direction).value
        for i, (key, _) in enumerate(self.attributes):
            if key in _DIRECTIONS:
                self.attributes[i] = (value, None)
                self.attributes[i + 1 :] = [
                    a for a in self.attributes[i + 1 :] if a[0] not in _DIRECTIONS
                ]
                return
        self.attributes.append((value, None))


def _parse_attribute(value: str, line: int | None) -> tuple[str, str | None]:
    name, sep, rest = value.partition(":")
    if not name:
        raise SdpError(f"a= attribute without a name: {value[:40]!r}", line)
    return name, rest if sep else None


def _parse_bandwidth(value: str, line: int | None) -> tuple[str, int]:
    bwtype, sep, amount = value.partition(":")
    if not sep or not bwtype:
        raise SdpError(f"b= must be <bwtype>:<bandwidth>, got {value[:40]!r}", line)
    return bwtype, _number(amount, "b= bandwidth", line)


def _weave(known: list[str], extra: list[tuple[int, str]]) -> list[str]:
    """Put unknown lines back at their place among the known lines of a section."""
    if not extra:
        return known
    out: list[str] = []
    pending = iter(sorted(extra, key=lambda item: item[0]))
    nxt = next(pending, None)
    for i, line in enumerate(known):
        while nxt is not None and nxt[0] <= i:
            out.append(nxt[1])
            nxt = next(pending, None)
        out.append(line)
    while nxt is not None:
        out.append(nxt[1])
        nxt = next(pending, None)
    return out


@dataclass(slots=True, init=False)
class MediaDescription(_Attributes):
    """One ``m=`` section (RFC 8866 5.14) with its connection, bandwidth and attributes.

    ``formats`` are kept as text (payload type numbers for RTP profiles, ``*`` for
    BFCP, ...). ``extra_lines`` holds lines of an unknown type as
    ``(index among the known lines of the section, full line)``.
    """

    kind: str
    port: int
    proto: str
    formats: list[str]
    _: KW_ONLY
    port_count: int | None = None
    connection: Connection | None = None
    bandwidths: list[tuple[str, int]] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    info: str | None = None
    key: str | None = None
    extra_connections: list[Connection] = field(default_factory=list)
    extra_lines: list[tuple[int, str]] = field(default_factory=list)

    def __init__(
        self,
        kind: str,
        port: int,
        proto: str,
        formats: list[str],
        *,
        port_count: int | None = None,
        connection: Connection | None = None,
        bandwidths: list[tuple[str, int]] | None = None,
        attributes: list[tuple[str, str | None]] | None = None,
        info: str | None = None,
        key: str | None = None,
        extra_connections: list[Connection] | None = None,
        extra_lines: list[tuple[int, str]] | None = None,
    ) -> None:
        # None stands for the default factories: a fresh list each.
        self.kind = kind
        self.port = port
        self.proto = proto
        self.formats = formats
        self.port_count = port_count
        self.connection = connection
        self.bandwidths = [] if bandwidths is None else bandwidths
        self.attributes = [] if attributes is None else attributes
        self.info = info
        self.key = key
        self.extra_connections = [] if extra_connections is None else extra_connections
        self.extra_lines = [] if extra_lines is None else extra_lines

    @classmethod
    def parse_media_line(cls, value: str, line: int | None = None) -> MediaDescription:
        """Parse the value of an ``m=`` line (``media port[/count] proto fmt...``)."""
        parts = value.split()
        if len(parts) < 3:
            raise SdpError(f"m= needs at least media, port and proto, got {value[:60]!r}", line)
        port_text, slash, count_text = parts[1].partition("/")
        port = _number(port_text, "m= port", line)
        if port > 65535:
            raise SdpError(f"m= port {port} is out of range", line)
        count: int | None = None
        if slash:
            count = _number(count_text, "m= number of ports", line)
            if count < 1:
                raise SdpError("m= number of ports must be at least 1", line)
        return cls(parts[0], port, parts[2], parts[3:], port_count=count)

    def copy(self) -> MediaDescription:
        """A deep copy (every list and nested line object is new)."""
        return MediaDescription(
            self.kind,
            self.port,
            self.proto,
            list(self.formats),
            port_count=self.port_count,
            connection=self.connection,  # Connection is immutable: shared
            bandwidths=list(self.bandwidths),
            attributes=list(self.attributes),
            info=self.info,
            key=self.key,
            extra_connections=list(self.extra_connections),
            extra_lines=list(self.extra_lines),
        )

    @property
    def payload_types(self) -> list[int]:
        """The formats that are RTP payload type numbers, in preference order."""
        return [int(f) for f in self.formats if f.isascii() and f.isdigit() and len(f) <= 3]

    def rtpmap(self) -> dict[int, tuple[str, int, int]]:
        """``a=rtpmap`` as ``{pt: (encoding, clock rate, channels)}`` (RFC 8866 6.6).

        Malformed rtpmap values are skipped (and logged): they must not fail a call.
        """
        result: dict[int, tuple[str, int, int]] = {}
        for key, value in self.attributes:
            if key != "rtpmap" or value is None:
                continue
            pt_text, _, spec = value.strip().partition(" ")
            parts = spec.strip().split("/")
            try:
                pt = _number(pt_text, "rtpmap payload type", None)
                clock = _number(parts[1], "rtpmap clock rate", None) if len(parts) > 1 else 0
                channels = _number(parts[2], "rtpmap channels", None) if len(parts) > 2 else 1
            except SdpError:
                logger.debug("ignoring malformed a=rtpmap:%s", value)
                continue
            if not parts[0] or len(parts) < 2 or pt > 127:
                logger.debug("ignoring malformed a=rtpmap:%s", value)
                continue
            result[pt] = (parts[0], clock, channels)
        return result

    def fmtp(self) -> dict[int, str]:
        """``a=fmtp`` as ``{pt: format parameters}`` (RFC 8866 6.15)."""
        result: dict[int, str] = {}
        for key, value in self.attributes:
            if key != "fmtp" or value is None:
                continue
            pt_text, _, params = value.strip().partition(" ")
            if pt_text.isascii() and pt_text.isdigit() and len(pt_text) <= 3:
                result[int(pt_text)] = params.strip()
        return result

    def serialize_lines(self) -> list[str]:
        """The lines of this section, without line ends."""
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        head = f"m={self.kind} {port} {self.proto}"
        lines = [" ".join([head, *self.formats]) if self.formats else head]
        if self.info is not None:
            lines.append(f"i={self.info}")
        if self.connection is not None:
            lines.append(f"c={self.connection.serialize()}")
        if self.extra_connections:
            lines += [f"c={c.serialize()}" for c in self.extra_connections]
        if self.bandwidths:
            lines += [f"b={t}:{bw}" for t, bw in self.bandwidths]
        if self.key is not None:
            lines.append(f"k={self.key}")
        if self.attributes:
            lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        return _weave(lines, self.extra_lines) if self.extra_lines else lines


# Lines that only the session level may carry (RFC 8866 section 9).
_SESSION_ONLY = frozenset("vosuepztr")


@dataclass(slots=True, init=False)
class SessionDescription(_Attributes):
    """A whole session description (RFC 8866 section 5), mutable so it can be rewritten."""

    version: int
    origin: Origin
    session_name: str
    _: KW_ONLY
    info: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[tuple[str, int]] = field(default_factory=list)
    times: list[TimeDescription] = field(default_factory=lambda: [TimeDescription()])
    zone: str | None = None
    key: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    extra_lines: list[tuple[int, str]] = field(default_factory=list)

    def __init__(
        self,
        version: int,
        origin: Origin,
        session_name: str,
        *,
        info: str | None = None,
        uri: str | None = None,
        emails: list[str] | None = None,
        phones: list[str] | None = None,
        connection: Connection | None = None,
        bandwidths: list[tuple[str, int]] | None = None,
        times: list[TimeDescription] | None = None,
        zone: str | None = None,
        key: str | None = None,
        attributes: list[tuple[str, str | None]] | None = None,
        media: list[MediaDescription] | None = None,
        extra_lines: list[tuple[int, str]] | None = None,
    ) -> None:
        # None stands for the default factories: fresh lists, one t=0 0 in times.
        self.version = version
        self.origin = origin
        self.session_name = session_name
        self.info = info
        self.uri = uri
        self.emails = [] if emails is None else emails
        self.phones = [] if phones is None else phones
        self.connection = connection
        self.bandwidths = [] if bandwidths is None else bandwidths
        self.times = [TimeDescription()] if times is None else times
        self.zone = zone
        self.key = key
        self.attributes = [] if attributes is None else attributes
        self.media = [] if media is None else media
        self.extra_lines = [] if extra_lines is None else extra_lines

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse a session description; raise :class:`SdpError` naming the bad line."""
        text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
        if not text.strip():
            raise SdpError("empty session description")
        return _Parser().run(text)

    def serialize(self) -> bytes:
        """The description as bytes with CRLF line ends (RFC 8866 section 5)."""
        # Optional lists are tested before their comprehension: most are empty, and an
        # empty comprehension still costs a call.
        lines = [f"v={self.version}", f"o={self.origin.serialize()}", f"s={self.session_name}"]
        if self.info is not None:
            lines.append(f"i={self.info}")
        if self.uri is not None:
            lines.append(f"u={self.uri}")
        if self.emails:
            lines += [f"e={e}" for e in self.emails]
        if self.phones:
            lines += [f"p={p}" for p in self.phones]
        if self.connection is not None:
            lines.append(f"c={self.connection.serialize()}")
        if self.bandwidths:
            lines += [f"b={t}:{bw}" for t, bw in self.bandwidths]
        for t in self.times:
            lines.append(f"t={t.start} {t.stop}")
            if t.repeats:
                lines += [f"r={r}" for r in t.repeats]
        if self.zone is not None:
            lines.append(f"z={self.zone}")
        if self.key is not None:
            lines.append(f"k={self.key}")
        if self.attributes:
            lines += [f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes]
        if self.extra_lines:
            lines = _weave(lines, self.extra_lines)
        for m in self.media:
            lines += m.serialize_lines()
        lines.append("")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape")

    def copy(self) -> SessionDescription:
        """A deep copy, much cheaper than :func:`copy.deepcopy`."""
        return SessionDescription(
            self.version,
            self.origin.copy(),
            self.session_name,
            info=self.info,
            uri=self.uri,
            emails=list(self.emails),
            phones=list(self.phones),
            connection=self.connection,  # Connection is immutable: shared
            bandwidths=list(self.bandwidths),
            times=[t.copy() for t in self.times],
            zone=self.zone,
            key=self.key,
            attributes=list(self.attributes),
            media=[m.copy() for m in self.media],
            extra_lines=list(self.extra_lines),
        )

    def bump_version(self) -> None:
        """Increment ``o=`` sess-version, as every changed offer must (RFC 3264 8)."""
        self.origin.sess_version += 1

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The connection that applies to ``media``: its own, else the session's."""
        return media.connection if media.connection is not None else self.connection

    def effective_direction(self, media: MediaDescription) -> Direction:
        """Direction of ``media``: media level, else session level, else sendrecv (RFC 8866 6.7)."""
        return media.direction or self.direction or Direction.SENDRECV


_NO_ORIGIN = Origin(
    username="-", sess_id="0", sess_version=0, nettype="IN", addrtype="IP4", address="0.0.0.0"
)


class _Parser:
    """One pass over the lines; keeps the state of the section being read."""

    def __init__(self) -> None:
        self.version: int | None = None
        self.origin: Origin | None = None
        self.session_name: str | None = None
        # The placeholder origin never leaves the parser: run() sets the parsed one or
        # refuses a description without o=. No time description until a t= line.
        self.session = SessionDescription(0, _NO_ORIGIN, "-", times=[])
        self.media: MediaDescription | None = None
        self.known = 0  # known lines read so far in the current section

    def run(self, text: str) -> SessionDescription:
        if "\x00" in text:
            raise SdpError("NUL character", text.count("\n", 0, text.index("\x00")) + 1)
        first = True
        for number, raw in enumerate(text.split("\n"), 1):
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line:
                continue
            if len(line) < 2 or line[1] != "=" or not (line[0].isascii() and line[0].isalpha()):
                raise SdpError(f"expected '<type>=<value>', got {line[:40]!r}", number)
            if "\r" in line:
                raise SdpError("CR inside a line", number)
            if first and line[0] != "v":
                raise SdpError(f"a session description starts with v=, not {line[:2]!r}", number)
            first = False
            if self.media is None:
                self.session_line(line[0], line[2:], line, number)
            else:
                self.media_line(self.media, line[0], line[2:], line, number)
        if self.origin is None:
            raise SdpError("missing o= line")
        if self.session_name is None:
            raise SdpError("missing s= line")
        s = self.session
        s.version = self.version or 0
        s.origin = self.origin
        s.session_name = self.session_name
        return s

    def session_line(self, kind: str, value: str, line: str, number: int) -> None:
        s = self.session
        # Cases by how often each line type comes (a=, then m= and c=): the
        # patterns are tried in turn.
        match kind:
            case "a":
                s.attributes.append(_parse_attribute(value, number))
            case "m":
                self.start_media(value, number)
                return
            case "c":
                if s.connection is not None:
                    raise SdpError("second session-level c= line", number)
                s.connection = Connection.parse(value, number)
            case "o":
                if self.origin is not None:
                    raise SdpError("second o= line", number)
                self.origin = Origin.parse(value, number)
            case "v":
                if self.version is not None:
                    raise SdpError("second v= line", number)
                if value != "0":
                    raise SdpError(f"unsupported SDP version {value!r} (only v=0)", number)
                self.version = 0
            case "s":
                if self.session_name is not None:
                    raise SdpError("second s= line", number)
                self.session_name = value
            case "t":
                parts = value.split()
                if len(parts) != 2:
                    raise SdpError(f"t= needs start and stop times, got {value[:40]!r}", number)
                s.times.append(
                    TimeDescription(
                        start=_number(parts[0], "t= start time", number),
                        stop=_number(parts[1], "t= stop time", number),
                    )
                )
            case "b":
                s.bandwidths.append(_parse_bandwidth(value, number))
            case "i":
                if s.info is not None:
                    raise SdpError("second session-level i= line", number)
                s.info = value
            case "u":
                if s.uri is not None:
                    raise SdpError("second u= line", number)
                s.uri = value
            case "e":
                s.emails.append(value)
            case "p":
                s.phones.append(value)
            case "r":
                if not s.times:
                    raise SdpError("r= line before any t= line", number)
                s.times[-1].repeats.append(value)
            case "z":
                if s.zone is not None:
                    raise SdpError("second z= line", number)
                s.zone = value
            case "k":
                if s.key is not None:
                    raise SdpError("second session-level k= line", number)
                s.key = value
            case _:
                s.extra_lines.append((self.known, line))
                return
        self.known += 1

    def start_media(self, value: str, number: int) -> None:
        if self.origin is None or self.session_name is None:
            raise SdpError("m= line before the o= and s= lines", number)
        self.media = MediaDescription.parse_media_line(value, number)
        self.session.media.append(self.media)
        self.known = 1

    def media_line(
        self, m: MediaDescription, kind: str, value: str, line: str, number: int
    ) -> None:
        match kind:
            case "a":
                m.attributes.append(_parse_attribute(value, number))
            case "c":
                conn = Connection.parse(value, number)
                if m.connection is None:
                    m.connection = conn
                else:
                    m.extra_connections.append(conn)
            case "b":
                m.bandwidths.append(_parse_bandwidth(value, number))
            case "m":
                self.start_media(value, number)
                return
            case "i":
                if m.info is not None:
                    raise SdpError("second media-level i= line", number)
                m.info = value
            case "k":
                if m.key is not None:
                    raise SdpError("second media-level k= line", number)
                m.key = value
            case _ if kind in _SESSION_ONLY:
                raise SdpError(f"{kind}= is not allowed inside a media description", number)
            case _:
                m.extra_lines.append((self.known, line))
                return
        self.known += 1


__all__ = [
    "Connection",
    "Direction",
    "MediaDescription",
    "Origin",
    "SdpError",
    "SessionDescription",
    "TimeDescription",
]
