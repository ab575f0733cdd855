"""H.225.0 RAS, sans-IO: the gateway as gatekeeper and as an endpoint of another one.

RAS (Registration, Admission and Status, H.225.0 7.6-7.15; procedures in H.323 7.2
and 8) runs over UDP, port 1719. Each request carries a ``requestSeqNum`` that its
confirm, reject or RequestInProgress repeats; the requester retransmits the same
datagram after a timeout and gives up after a few retries (H.225.0 7.9).

:class:`Gatekeeper` is the gateway acting as gatekeeper for the kiosks and stations that
register with it (GRQ, RRQ, URQ, ARQ, BRQ, DRQ, LRQ, IRR), with every call routed
through the gateway (callModel gatekeeperRouted). :class:`GatekeeperClient` registers
the gateway as an endpoint (terminalType gateway) with a partner's own gatekeeper and
asks it for admissions and locations.

Both are fed datagrams and the time, and give back datagrams, one deadline and events,
in the manner of :class:`gateway.sip.transaction.TransactionLayer`::

    ras.receive(data, source, now)     # a datagram arrived
    ras.on_timer(now)                  # at or after ras.next_deadline()
    ras.datagrams_to_send()            # [(bytes, address)], drained
    ras.events()                       # [event], drained

Nothing here raises on what a peer sends: an undecodable datagram is counted and
dropped, a request with a value we cannot use gets its reject.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from gateway.h323 import asn1
from gateway.h323.asn1 import H225_PROTOCOL_ID
from gateway.h323.errors import H323ParseError, H323UsageError
from gateway.h323.messages import (
    Address,
    Alias,
    address_of,
    aliases,
    endpoint_type,
    transport_address,
    vendor,
)

log = logging.getLogger(__name__)

Value = dict[str, Any]
Message = tuple[str, Value]

RAS_PORT: Final = 1719  # H.225.0 7.6: the well-known unicast RAS port (1718: multicast)

# H.225.0 7.9 (RAS timers): the recommended default timeout for the answer to each
# request (seconds) and retry count: 5 s for the requests a gatekeeper may have to
# route or look up (GRQ, ARQ, LRQ), 3 s for the others, two retries each. The standard's
# table itself was not at hand here: GNU Gatekeeper's client cites it for its GRQ (5 s,
# 2 retries) and H323Plus uses 3 s and 2 retries for every request; each value can be
# overridden (``timeouts=``, ``retries=``).
RAS_TIMEOUTS: Final[Mapping[str, float]] = {
    "gatekeeperRequest": 5.0,
    "registrationRequest": 3.0,
    "unregistrationRequest": 3.0,
    "admissionRequest": 5.0,
    "bandwidthRequest": 3.0,
    "disengageRequest": 3.0,
    "locationRequest": 5.0,
    "infoRequest": 3.0,
}
RAS_RETRIES: Final = 2

# A retransmitted request (same source, message and sequence number) is answered with
# the reply already sent for as long as its sender may still retry (3 tries of 5 s).
REPLY_MEMORY: Final = 30.0
REPLY_MEMORY_SIZE: Final = 10_000
MALFORMED_LOG_INTERVAL: Final = 60.0  # seconds between two logs for one source

DEFAULT_TTL: Final = 300  # seconds granted to a registration (H.225.0 RCF timeToLive)
DEFAULT_BANDWIDTH: Final = 7680  # units of 100 bit/s (H.225.0 BandWidth): 768 kbit/s

_ANSWERS: Final[Mapping[str, frozenset[str]]] = {
    "gatekeeperRequest": frozenset({"gatekeeperConfirm", "gatekeeperReject"}),
    "registrationRequest": frozenset({"registrationConfirm", "registrationReject"}),
    "unregistrationRequest": frozenset({"unregistrationConfirm", "unregistrationReject"}),
    "admissionRequest": frozenset({"admissionConfirm", "admissionReject"}),
    "bandwidthRequest": frozenset({"bandwidthConfirm", "bandwidthReject"}),
    "disengageRequest": frozenset({"disengageConfirm", "disengageReject"}),
    "locationRequest": frozenset({"locationConfirm", "locationReject"}),
    "infoRequest": frozenset({"infoRequestResponse"}),
}
# An IRR answers our IRQ or comes unsolicited: receive() tells them apart.
_REPLIES: Final = frozenset().union(*_ANSWERS.values()) - {"infoRequestResponse"} | {
    "requestInProgress",
    "unknownMessageResponse",
    "infoRequestAck",
    "infoRequestNak",
    "resourcesAvailableConfirm",
}
# The reject of each request, and the reason used when the request itself is at fault.
_REJECTS: Final[Mapping[str, tuple[str, str]]] = {
    "gatekeeperRequest": ("gatekeeperReject", "undefinedReason"),
    "registrationRequest": ("registrationReject", "undefinedReason"),
    "unregistrationRequest": ("unregistrationReject", "undefinedReason"),
    "admissionRequest": ("admissionReject", "undefinedReason"),
    "bandwidthRequest": ("bandwidthReject", "undefinedReason"),
    "disengageRequest": ("disengageReject", "notRegistered"),
    "locationRequest": ("locationReject", "undefinedReason"),
    "infoRequestResponse": ("infoRequestNak", "undefinedReason"),
}
_UUIES: Final = (
    "setup",
    "callProceeding",
    "connect",
    "alerting",
    "information",
    "releaseComplete",
    "facility",
    "progress",
    "empty",
    "status",
    "statusInquiry",
    "setupAcknowledge",
    "notify",
)


class RasValueError(Exception):
    """A decoded request holds a value we cannot use; ``reason`` names its reject."""

    def __init__(self, reason: str, detail: str, taken: tuple[Alias, ...] = ()) -> None:
        super().__init__(detail)
        self.reason = reason
        self.taken = taken  # the aliases of a duplicateAlias reject


# -- events ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registered:
    """An endpoint registered with our gatekeeper (RRQ -> RCF, H.323 7.2.2).

    Also emitted again when a unit registers afresh (a full RRQ after a reboot) under
    the same call signalling address: treat it as an update.
    """

    endpoint_id: str
    aliases: tuple[Alias, ...]
    call_signal_address: Address
    ras_address: Address
    time_to_live: int | None


@dataclass(frozen=True, slots=True)
class Unregistered:
    """A registration ended: ``reason`` is ``"unregistered"`` (its URQ), ``"ttlExpired"``
    (no keep-alive in time) or ``"gatekeeper"`` (we unregistered it)."""

    endpoint_id: str
    aliases: tuple[Alias, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Admission:
    """What an ARQ asks for (H.225.0 ARQ), as the admission policy and event see it."""

    endpoint_id: str
    call_id: bytes  # callIdentifier guid (or conferenceID for a version 1 endpoint)
    conference_id: bytes
    call_reference: int
    answer_call: bool
    source: tuple[Alias, ...]
    destination: tuple[Alias, ...]
    destination_address: Address | None
    bandwidth: int


@dataclass(frozen=True, slots=True)
class Admitted:
    """ARQ -> ACF: the endpoint may place or answer the call, routed through us."""

    admission: Admission


@dataclass(frozen=True, slots=True)
class Disengaged:
    """A call admitted earlier is over (DRQ -> DCF), or its endpoint went away."""

    endpoint_id: str
    call_id: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class GatekeeperRegistered:
    """Our RRQ was confirmed by the partner's gatekeeper (RCF)."""

    gatekeeper_id: str | None
    endpoint_id: str
    time_to_live: int | None
    gatekeeper_address: Address


@dataclass(frozen=True, slots=True)
class GatekeeperUnregistered:
    """We are no longer registered: our URQ, the gatekeeper's URQ (its reason), or a
    keep-alive that went unanswered (``"timeout"``) or was rejected."""

    reason: str


@dataclass(frozen=True, slots=True)
class RegistrationFailed:
    """A GRQ or full RRQ was rejected or timed out; another try comes at ``retry_at``."""

    reason: str
    retry_at: float


@dataclass(frozen=True, slots=True)
class AdmissionConfirmed:
    """ACF for :meth:`GatekeeperClient.admit`: where to send the Setup."""

    call_id: bytes
    dest_call_signal_address: Address | None
    call_model: str
    bandwidth: int


@dataclass(frozen=True, slots=True)
class AdmissionRejected:
    """ARJ (its reason), an unanswered ARQ (``"timeout"``) or no registration."""

    call_id: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Located:
    """LCF for :meth:`GatekeeperClient.locate`."""

    alias: Alias
    call_signal_address: Address
    ras_address: Address | None


@dataclass(frozen=True, slots=True)
class NotLocated:
    """LRJ (its reason) or an unanswered LRQ (``"timeout"``)."""

    alias: Alias
    reason: str


@dataclass(frozen=True, slots=True)
class DisengageConfirmed:
    """Our DRQ was answered (DCF, or DRJ: the gatekeeper forgot the call anyway)."""

    call_id: bytes
    confirmed: bool


@dataclass(frozen=True, slots=True)
class DisengageRequested:
    """The gatekeeper ended one of our calls (its DRQ, answered with DCF): hang up."""

    call_id: bytes
    reason: str


RasEvent = (
    Registered
    | Unregistered
    | Admitted
    | Disengaged
    | GatekeeperRegistered
    | GatekeeperUnregistered
    | RegistrationFailed
    | AdmissionConfirmed
    | AdmissionRejected
    | Located
    | NotLocated
    | DisengageConfirmed
    | DisengageRequested
)


# -- value helpers -----------------------------------------------------------------


def _ip(value: Any) -> Address | None:
    """``(ip, port)`` of a decoded TransportAddress, None if not a usable IPv4 one."""
    try:
        address = address_of(value)
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    if address is None or address[1] == 0:
        return None
    return address


def _first_ip(values: Iterable[Any]) -> Address | None:
    for value in values:
        address = _ip(value)
        if address is not None:
            return address
    return None


def _aliases_of(values: Iterable[Any]) -> tuple[Alias, ...]:
    """The name-like aliases of a decoded ``SEQUENCE OF AliasAddress`` (H.225.0 7.6)."""
    out: list[Alias] = []
    for value in values:
        if not (
            isinstance(value, tuple)
            and value[0] in ("h323-ID", "dialledDigits", "url-ID", "email-ID")
            and isinstance(value[1], str)
        ):
            continue
        alias = Alias(value[1], value[0])
        try:
            alias.to_value()  # one we could not send back (in an RCF, say) is left out
        except H323UsageError:
            continue
        if alias not in out:
            out.append(alias)
    return tuple(out)


def _as_alias(alias: Alias | str) -> Alias:
    """An :class:`Alias` from a name: all digits (and ``*#,``) is E.164, else h323-ID."""
    if isinstance(alias, Alias):
        return alias
    if alias and all(c in "0123456789*#," for c in alias):
        return Alias(alias, "dialledDigits")
    return Alias(alias)


def _guid(value: Any) -> bytes | None:
    if isinstance(value, dict) and isinstance(value.get("guid"), bytes):
        guid: bytes = value["guid"]
        return guid if len(guid) == 16 else None
    return None


def _reason_name(value: Any) -> str:
    """The alternative of a reject/reason CHOICE, e.g. ``("invalidAlias", 0)``."""
    if isinstance(value, tuple) and value and isinstance(value[0], str):
        return value[0]
    return "undefinedReason"


def _no_uuies() -> Value:
    return dict.fromkeys(_UUIES, False)


# -- the shared request/reply machinery -------------------------------------------


@dataclass(slots=True)
class RasCounters:
    """Plain counters for the metrics exporter."""

    received: int = 0
    sent: int = 0
    malformed: int = 0  # datagrams that do not decode as a RasMessage
    rejected_values: int = 0  # decoded requests refused for a bad value
    repeated_requests: int = 0  # retransmissions answered from the reply memory
    retransmissions: int = 0  # our own requests sent again
    timeouts: int = 0  # our own requests never answered
    unknown: int = 0  # messages answered with XRS or ignored


@dataclass(slots=True)
class _Pending:
    seq: int
    request: str
    data: bytes
    dest: Address
    timeout: float
    tries_left: int
    deadline: float
    tag: tuple[Any, ...]


class _RasEntity:
    """Sequence numbers, retransmissions, the reply memory and the error policy.

    Subclasses implement :meth:`_on_request`, :meth:`_on_answer` and
    :meth:`_on_timeout`, and may add deadlines through :meth:`_own_deadline` and
    :meth:`_own_timer`.
    """

    def __init__(
        self,
        ras_address: Address,
        *,
        timeouts: Mapping[str, float] | None = None,
        retries: int = RAS_RETRIES,
    ) -> None:
        self.ras_address = ras_address
        self.timeouts = {**RAS_TIMEOUTS, **(timeouts or {})}
        self.retries = retries
        self.counters = RasCounters()
        self._out: list[tuple[bytes, Address]] = []
        self._events: list[RasEvent] = []
        self._pending: dict[int, _Pending] = {}
        self._seq = 0
        # (source, message name, requestSeqNum) -> (reply, destination), in arrival order
        self._replies: dict[tuple[Address, str, int], tuple[bytes, Address]] = {}
        self._reply_order: deque[tuple[float, tuple[Address, str, int]]] = deque()
        self._malformed_logged: dict[str, float] = {}
        self._replying_to: tuple[Address, str, int] | None = None  # the request answered

    # -- outputs ---------------------------------------------------------------
    def datagrams_to_send(self) -> list[tuple[bytes, Address]]:
        """Take the datagrams queued since the last call: ``[(bytes, (ip, port))]``."""
        out, self._out = self._out, []
        return out

    def events(self) -> list[RasEvent]:
        """Take the events queued since the last call."""
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` must next be called (absolute time), or None."""
        deadlines = [p.deadline for p in self._pending.values()]
        own = self._own_deadline()
        if own is not None:
            deadlines.append(own)
        return min(deadlines) if deadlines else None

    # -- inputs ----------------------------------------------------------------
    def receive(self, data: bytes, source: Address, now: float) -> None:
        """One RAS datagram from ``source``; never raises for what the peer sent."""
        self.counters.received += 1
        self._forget_replies(now)
        try:
            name, value = asn1.decode_ras(data)
        except H323ParseError as exc:
            self._malformed(source, now, exc.reason)
            return
        if not isinstance(value, dict) or not isinstance(value.get("requestSeqNum"), int):
            self._malformed(source, now, f"{name} without a sequence number")
            return
        seq: int = value["requestSeqNum"]
        if name == "infoRequestResponse":
            pending = self._pending.get(seq)
            if pending is not None and pending.request == "infoRequest":
                self._answered(name, value, pending, now)
                return
        if name in _REPLIES:
            self._on_reply(name, value, source, now)
            return
        key = (source, name, seq)
        remembered = self._replies.get(key)
        if remembered is not None:
            self.counters.repeated_requests += 1
            self._out.append(remembered)
            self.counters.sent += 1
            return
        self._replying_to = key
        try:
            self._on_request(name, value, source, now)
        except RasValueError as exc:
            self.counters.rejected_values += 1
            log.info("RAS %s from %s:%s refused: %s", name, *source, exc)
            self._reject(name, value, exc.reason, source, now, exc.taken)
        except (H323UsageError, KeyError, TypeError, ValueError, IndexError) as exc:
            # A value decoded fine but cannot be used (or answered) the way it is.
            self.counters.rejected_values += 1
            log.info("RAS %s from %s:%s has a bad value: %s", name, *source, exc)
            self._reject(name, value, None, source, now)
        finally:
            self._replying_to = None

    def on_timer(self, now: float) -> None:
        """Retransmit, time out, expire: whatever is due at ``now``."""
        self._forget_replies(now)
        for seq, pending in list(self._pending.items()):
            if pending.deadline > now:
                continue
            if pending.tries_left > 0:
                pending.tries_left -= 1
                pending.deadline = now + pending.timeout
                self._out.append((pending.data, pending.dest))
                self.counters.sent += 1
                self.counters.retransmissions += 1
            else:
                del self._pending[seq]
                self.counters.timeouts += 1
                self._on_timeout(pending, now)
        self._own_timer(now)

    # -- helpers for subclasses -------------------------------------------------
    def _forget_replies(self, now: float) -> None:
        """Drop the replies remembered for longer than a sender may retry (no timer:
        done as datagrams and timers come)."""
        while self._reply_order and self._reply_order[0][0] <= now:
            _, key = self._reply_order.popleft()
            self._replies.pop(key, None)

    def _reply(self, message: Message, dest: Address, now: float) -> None:
        """Send the answer to the request being handled, and remember it for repeats."""
        data = asn1.encode_ras(message)
        self._out.append((data, dest))
        self.counters.sent += 1
        key = self._replying_to
        if key is not None:
            self._replies[key] = (data, dest)
            self._reply_order.append((now + REPLY_MEMORY, key))
            if len(self._reply_order) > REPLY_MEMORY_SIZE:  # a flood: forget the oldest
                self._replies.pop(self._reply_order.popleft()[1], None)

    def _request(
        self, name: str, body: Value, dest: Address, now: float, tag: tuple[Any, ...]
    ) -> int:
        """Send a new request and keep it for retransmission; its sequence number."""
        seq = self._next_seq()
        data = asn1.encode_ras((name, {"requestSeqNum": seq, **body}))
        timeout = self.timeouts.get(name, 3.0)
        self._pending[seq] = _Pending(
            seq, name, data, dest, timeout, self.retries, now + timeout, tag
        )
        self._out.append((data, dest))
        self.counters.sent += 1
        return seq

    def _cancel(self, predicate: Callable[[_Pending], bool]) -> None:
        for seq, pending in list(self._pending.items()):
            if predicate(pending):
                del self._pending[seq]

    def _next_seq(self) -> int:
        for _ in range(65535):
            self._seq = self._seq % 65535 + 1  # RequestSeqNum is 1..65535
            if self._seq not in self._pending:
                return self._seq
        raise H323UsageError("65535 RAS requests in flight")

    def _reject(
        self,
        name: str,
        value: Value,
        reason: str | None,
        source: Address,
        now: float,
        taken: tuple[Alias, ...] = (),
    ) -> None:
        """Answer a request with its reject (or XRS when it has none)."""
        seq = value.get("requestSeqNum", 1)
        if name not in _REJECTS:
            self.counters.unknown += 1
            if name.endswith(("Request", "Indicate", "Indication")) or name in (
                "nonStandardMessage",
                "admissionConfirmSequence",
            ):
                self._reply(("unknownMessageResponse", {"requestSeqNum": seq}), source, now)
            return
        reject, default = _REJECTS[name]
        body: Value = {"requestSeqNum": seq, "rejectReason": (reason or default, 0)}
        if reject == "infoRequestNak":
            body = {"requestSeqNum": seq, "nakReason": (reason or default, 0)}
        elif reject in ("gatekeeperReject", "registrationReject"):
            body["protocolIdentifier"] = H225_PROTOCOL_ID
            self._identify(body)
        elif reject == "bandwidthReject":
            body["allowedBandWidth"] = 0
        if reason == "duplicateAlias":
            body["rejectReason"] = ("duplicateAlias", aliases(taken))
        dest = source
        if name == "locationRequest":
            dest = _ip(value.get("replyAddress")) or source
        try:
            self._reply((reject, body), dest, now)
        except H323UsageError as exc:
            if reason is None or reason == default:
                log.warning("RAS: cannot build %s: %s", reject, exc)
                return
            # A reason this reject does not have (an admission policy's typo, say).
            log.warning("RAS: %s with reason %r: %s", reject, reason, exc)
            self._reject(name, value, None, source, now)

    def _identify(self, body: Value) -> None:
        """Add our gatekeeperIdentifier to a GRJ/RRJ, where we have one."""

    def _malformed(self, source: Address, now: float, reason: str) -> None:
        self.counters.malformed += 1
        last = self._malformed_logged.get(source[0])
        if last is None or now - last >= MALFORMED_LOG_INTERVAL:
            if len(self._malformed_logged) > 1024:
                self._malformed_logged.clear()
            self._malformed_logged[source[0]] = now
            log.warning("RAS: dropped undecodable datagram from %s:%s: %s", *source, reason)

    def _on_reply(self, name: str, value: Value, source: Address, now: float) -> None:
        seq: int = value["requestSeqNum"]
        pending = self._pending.get(seq)
        if pending is None:
            self.counters.unknown += 1
            log.debug("RAS: %s %d from %s:%s matches no request", name, seq, *source)
            return
        if name == "requestInProgress":
            # H.225.0 7.9: the answer will take ``delay`` ms; wait that long, once more.
            delay = value.get("delay", 0)
            pending.deadline = now + max(delay / 1000.0, pending.timeout)
            return
        if name == "unknownMessageResponse":
            del self._pending[seq]
            self._on_answer(pending, "unknownMessageResponse", value, now)
            return
        if name not in _ANSWERS.get(pending.request, ()):
            self.counters.unknown += 1
            log.info("RAS: %s %d does not answer our %s", name, seq, pending.request)
            return
        self._answered(name, value, pending, now)

    def _answered(self, name: str, value: Value, pending: _Pending, now: float) -> None:
        del self._pending[pending.seq]
        try:
            self._on_answer(pending, name, value, now)
        except (H323UsageError, KeyError, TypeError, ValueError, IndexError) as exc:
            self.counters.rejected_values += 1
            log.warning("RAS: unusable %s for %s: %s", name, pending.request, exc)
            self._on_answer(pending, "unusableAnswer", {"requestSeqNum": pending.seq}, now)

    # -- subclass hooks ---------------------------------------------------------
    def _on_request(self, name: str, value: Value, source: Address, now: float) -> None:
        raise NotImplementedError

    def _on_answer(self, pending: _Pending, name: str, value: Value, now: float) -> None:
        raise NotImplementedError

    def _on_timeout(self, pending: _Pending, now: float) -> None:
        raise NotImplementedError

    def _own_deadline(self) -> float | None:
        return None

    def _own_timer(self, now: float) -> None:
        return None


# -- the gatekeeper ----------------------------------------------------------------


@dataclass(slots=True)
class Registration:
    """One endpoint registered with our gatekeeper."""

    endpoint_id: str
    aliases: tuple[Alias, ...]
    call_signal_address: Address
    ras_address: Address
    time_to_live: int | None
    expires: float | None
    calls: set[bytes] = field(default_factory=set)


AliasPolicy = Callable[[tuple[Alias, ...]], bool]
AdmissionPolicy = Callable[[Admission], str | None]


class Gatekeeper(_RasEntity):
    """The gateway's own gatekeeper (H.323 7.2, H.225.0 7.6-7.15), sans-IO.

    ``call_signal_address`` is the gateway's H.225.0 call signalling address: every
    ACF and LCF points there (callModel gatekeeperRouted), so that every call crosses
    the gateway's media engine. ``allowed(aliases)`` may refuse a unit (RRJ
    invalidAlias, GRJ terminalExcluded); ``admission(admission)`` may refuse a call by
    returning an AdmissionRejectReason name. ``time_to_live`` caps the registrations'
    lifetime; one lapses ``ttl_grace`` seconds after its time to live ran out without
    a keep-alive RRQ.
    """

    def __init__(
        self,
        ras_address: Address,
        call_signal_address: Address,
        *,
        identifier: str = "vrgw",
        time_to_live: int = DEFAULT_TTL,
        ttl_grace: float = 10.0,
        allowed: AliasPolicy | None = None,
        admission: AdmissionPolicy | None = None,
        max_bandwidth: int | None = None,
        max_registrations: int | None = None,
        timeouts: Mapping[str, float] | None = None,
        retries: int = RAS_RETRIES,
    ) -> None:
        super().__init__(ras_address, timeouts=timeouts, retries=retries)
        if not 1 <= len(identifier) <= 128:
            raise H323UsageError("a gatekeeperIdentifier has 1 to 128 characters")
        if time_to_live < 1:
            raise H323UsageError("the time to live must be at least one second")
        self.identifier = identifier
        self.call_signal_address = call_signal_address
        self.time_to_live = time_to_live
        self.ttl_grace = ttl_grace
        self.allowed = allowed
        self.admission = admission
        self.max_bandwidth = max_bandwidth
        self.max_registrations = max_registrations
        self._registrations: dict[str, Registration] = {}
        self._by_alias: dict[Alias, str] = {}
        self._calls: dict[bytes, tuple[str, Admission]] = {}
        self._expiries: list[tuple[float, str]] = []  # heap; stale entries skipped
        self._next_id = 0

    # -- queries ----------------------------------------------------------------
    @property
    def registrations(self) -> Mapping[str, Registration]:
        """The current registrations by endpointIdentifier (read only)."""
        return self._registrations

    def lookup(self, alias: Alias | str) -> Address | None:
        """The call signalling address of a registered alias (h323-ID or E.164)."""
        registration = self.registration_of(alias)
        return registration.call_signal_address if registration is not None else None

    def registration_of(self, alias: Alias | str) -> Registration | None:
        """The registration holding an alias; a plain name matches either kind."""
        if isinstance(alias, Alias):
            candidates = [alias]
        else:
            candidates = [Alias(alias), Alias(alias, "dialledDigits")]
        for candidate in candidates:
            endpoint_id = self._by_alias.get(candidate)
            if endpoint_id is not None:
                return self._registrations[endpoint_id]
        return None

    # -- commands ---------------------------------------------------------------
    def unregister(self, endpoint_id: str, now: float, reason: str = "maintenance") -> bool:
        """Unregister an endpoint ourselves (our URQ, H.225.0 URQ); False if unknown."""
        registration = self._registrations.get(endpoint_id)
        if registration is None:
            return False
        self._remove(registration, "gatekeeper")
        self._send_urq(registration, reason, now)
        return True

    # -- requests -------------------------------------------------------------------
    def _on_request(self, name: str, value: Value, source: Address, now: float) -> None:
        handler = self._HANDLERS.get(name)
        if handler is None:
            if name == "resourcesAvailableIndicate":  # H.225.0 RAI -> RAC
                body = {"requestSeqNum": value["requestSeqNum"]}
                body["protocolIdentifier"] = H225_PROTOCOL_ID
                self._reply(("resourcesAvailableConfirm", body), source, now)
                return
            log.info("RAS: %s from %s:%s not handled by a gatekeeper", name, *source)
            self._reject(name, value, None, source, now)
            return
        handler(self, value, source, now)

    def _identify(self, body: Value) -> None:
        body["gatekeeperIdentifier"] = self.identifier

    def _check_gatekeeper_id(self, value: Value) -> None:
        wanted = value.get("gatekeeperIdentifier")
        if wanted is not None and wanted != self.identifier:
            raise RasValueError("undefinedReason", f"for gatekeeper {wanted!r}, not us")

    def _grq(self, value: Value, source: Address, now: float) -> None:
        """GRQ -> GCF, or GRJ (H.323 7.2.1 gatekeeper discovery)."""
        self._check_gatekeeper_id(value)
        names = _aliases_of(value.get("endpointAlias", []))
        if names and self.allowed is not None and not self.allowed(names):
            raise RasValueError("terminalExcluded", f"aliases {names} not allowed")
        body = {
            "requestSeqNum": value["requestSeqNum"],
            "protocolIdentifier": H225_PROTOCOL_ID,
            "gatekeeperIdentifier": self.identifier,
            "rasAddress": transport_address(self.ras_address),
        }
        self._reply(("gatekeeperConfirm", body), source, now)

    def _rrq(self, value: Value, source: Address, now: float) -> None:
        """RRQ -> RCF or RRJ (H.323 7.2.2), full or lightweight (keepAlive)."""
        self._check_gatekeeper_id(value)
        if value.get("keepAlive"):
            self._keep_alive(value, source, now)
            return
        signal = _first_ip(value.get("callSignalAddress", []))
        if signal is None:
            raise RasValueError("invalidCallSignalAddress", "no IPv4 callSignalAddress")
        ras = _first_ip(value.get("rasAddress", [])) or source
        if ras[0] == "0.0.0.0":
            ras = source
        names = _aliases_of(value.get("terminalAlias", []))
        if not names:
            raise RasValueError("invalidAlias", "no h323-ID or E.164 alias")
        if self.allowed is not None and not self.allowed(names):
            raise RasValueError("invalidAlias", f"aliases {names} not allowed")
        # The same unit registering afresh (a reboot): same call signalling address.
        previous = next(
            (r for r in self._registrations.values() if r.call_signal_address == signal),
            None,
        )
        taken = tuple(
            a
            for a in names
            if a in self._by_alias
            and (previous is None or self._by_alias[a] != previous.endpoint_id)
        )
        if taken:
            raise RasValueError("duplicateAlias", f"aliases {taken} registered elsewhere", taken)
        if (
            previous is None
            and self.max_registrations is not None
            and len(self._registrations) >= self.max_registrations
        ):
            raise RasValueError("resourceUnavailable", "registration table full")
        ttl = self._granted_ttl(value.get("timeToLive"))
        if previous is not None:
            self._unindex(previous)
            endpoint_id = previous.endpoint_id
            registration = previous
            registration.aliases = names
            registration.ras_address = ras
            registration.time_to_live = ttl
        else:
            self._next_id += 1
            endpoint_id = f"{self._next_id}_{self.identifier}"[:128]
            registration = Registration(endpoint_id, names, signal, ras, ttl, None)
            self._registrations[endpoint_id] = registration
        for alias in names:
            self._by_alias[alias] = endpoint_id
        self._refresh(registration, now)
        self._reply(self._rcf(value["requestSeqNum"], registration), source, now)
        self._events.append(Registered(endpoint_id, names, signal, ras, ttl))

    def _keep_alive(self, value: Value, source: Address, now: float) -> None:
        """A lightweight RRQ (H.225.0 RRQ keepAlive): refresh the time to live."""
        registration = self._registrations.get(value.get("endpointIdentifier", ""))
        if registration is None:
            raise RasValueError("fullRegistrationRequired", "keep-alive of an unknown endpoint")
        registration.time_to_live = self._granted_ttl(value.get("timeToLive"))
        self._refresh(registration, now)
        self._reply(self._rcf(value["requestSeqNum"], registration), source, now)

    def _rcf(self, seq: int, registration: Registration) -> Message:
        body: Value = {
            "requestSeqNum": seq,
            "protocolIdentifier": H225_PROTOCOL_ID,
            "callSignalAddress": [transport_address(self.call_signal_address)],
            "terminalAlias": aliases(registration.aliases),
            "gatekeeperIdentifier": self.identifier,
            "endpointIdentifier": registration.endpoint_id,
            "willRespondToIRR": False,
            "maintainConnection": False,
        }
        if registration.time_to_live is not None:
            body["timeToLive"] = registration.time_to_live
        return ("registrationConfirm", body)

    def _granted_ttl(self, requested: Any) -> int:
        if isinstance(requested, int) and requested > 0:
            return min(requested, self.time_to_live)
        return self.time_to_live

    def _refresh(self, registration: Registration, now: float) -> None:
        if registration.time_to_live is None:
            registration.expires = None
            return
        registration.expires = now + registration.time_to_live + self.ttl_grace
        heapq.heappush(self._expiries, (registration.expires, registration.endpoint_id))

    def _urq(self, value: Value, source: Address, now: float) -> None:
        """URQ from an endpoint -> UCF, or URJ notCurrentlyRegistered."""
        registration = self._registrations.get(value.get("endpointIdentifier", ""))
        if registration is None:
            signal = _first_ip(value.get("callSignalAddress", []))
            registration = next(
                (r for r in self._registrations.values() if r.call_signal_address == signal),
                None,
            )
        if registration is None:
            raise RasValueError("notCurrentlyRegistered", "URQ of an unknown endpoint")
        self._remove(registration, "unregistered")
        self._reply(
            ("unregistrationConfirm", {"requestSeqNum": value["requestSeqNum"]}), source, now
        )

    def _arq(self, value: Value, source: Address, now: float) -> None:
        """ARQ -> ACF gatekeeperRouted to our call signalling address, or ARJ."""
        registration = self._registrations.get(value.get("endpointIdentifier", ""))
        if registration is None:
            raise RasValueError("callerNotRegistered", "ARQ of an unknown endpoint")
        conference_id = value["conferenceID"]
        call_id = _guid(value.get("callIdentifier")) or conference_id
        answer = bool(value["answerCall"])
        destination = _aliases_of(value.get("destinationInfo", []))
        dest_address = _ip(value.get("destCallSignalAddress"))
        if not answer and not destination and dest_address is None:
            raise RasValueError("incompleteAddress", "ARQ with no destination")
        bandwidth = int(value["bandWidth"])
        if self.max_bandwidth is not None:
            bandwidth = min(bandwidth, self.max_bandwidth)
        admission = Admission(
            endpoint_id=registration.endpoint_id,
            call_id=call_id,
            conference_id=conference_id,
            call_reference=int(value["callReferenceValue"]),
            answer_call=answer,
            source=_aliases_of(value.get("srcInfo", [])),
            destination=destination,
            destination_address=dest_address,
            bandwidth=bandwidth,
        )
        if self.admission is not None:
            refusal = self.admission(admission)
            if refusal is not None:
                raise RasValueError(refusal, f"admission refused: {refusal}")
        body: Value = {
            "requestSeqNum": value["requestSeqNum"],
            "bandWidth": bandwidth,
            "callModel": ("gatekeeperRouted", 0),
            "destCallSignalAddress": transport_address(self.call_signal_address),
            "willRespondToIRR": False,
            "uuiesRequested": _no_uuies(),
        }
        self._reply(("admissionConfirm", body), source, now)
        self._calls[call_id] = (registration.endpoint_id, admission)
        registration.calls.add(call_id)
        self._events.append(Admitted(admission))

    def _brq(self, value: Value, source: Address, now: float) -> None:
        """BRQ -> BCF with the bandwidth granted, or BRJ notBound."""
        if value.get("endpointIdentifier") not in self._registrations:
            raise RasValueError("notBound", "BRQ of an unknown endpoint")
        bandwidth = int(value["bandWidth"])
        if self.max_bandwidth is not None:
            bandwidth = min(bandwidth, self.max_bandwidth)
        body = {"requestSeqNum": value["requestSeqNum"], "bandWidth": bandwidth}
        self._reply(("bandwidthConfirm", body), source, now)

    def _drq(self, value: Value, source: Address, now: float) -> None:
        """DRQ -> DCF (also for a call we no longer know), DRJ notRegistered."""
        registration = self._registrations.get(value.get("endpointIdentifier", ""))
        if registration is None:
            raise RasValueError("notRegistered", "DRQ of an unknown endpoint")
        call_id = _guid(value.get("callIdentifier")) or value["conferenceID"]
        self._reply(("disengageConfirm", {"requestSeqNum": value["requestSeqNum"]}), source, now)
        if call_id in self._calls:
            del self._calls[call_id]
            registration.calls.discard(call_id)
            reason = _reason_name(value.get("disengageReason"))
            self._events.append(Disengaged(registration.endpoint_id, call_id, reason))

    def _lrq(self, value: Value, source: Address, now: float) -> None:
        """LRQ -> LCF for a registered alias (pointing at us), else LRJ."""
        reply_to = _ip(value.get("replyAddress")) or source
        found = None
        for alias in _aliases_of(value.get("destinationInfo", [])):
            found = self.registration_of(alias)
            if found is not None:
                break
        if found is None:
            raise RasValueError("requestDenied", "no such alias registered")
        body = {
            "requestSeqNum": value["requestSeqNum"],
            "callSignalAddress": transport_address(self.call_signal_address),
            "rasAddress": transport_address(self.ras_address),
            "destinationInfo": aliases(found.aliases),
        }
        self._reply(("locationConfirm", body), reply_to, now)

    def _irr(self, value: Value, source: Address, now: float) -> None:
        """An unsolicited IRR: IACK if it asks for an answer (INAK if unregistered)."""
        if not value.get("needResponse"):
            return
        if value.get("endpointIdentifier") not in self._registrations:
            raise RasValueError("notRegistered", "IRR of an unknown endpoint")
        self._reply(("infoRequestAck", {"requestSeqNum": value["requestSeqNum"]}), source, now)

    _HANDLERS: Final[Mapping[str, Callable[[Gatekeeper, Value, Address, float], None]]] = {
        "gatekeeperRequest": _grq,
        "registrationRequest": _rrq,
        "unregistrationRequest": _urq,
        "admissionRequest": _arq,
        "bandwidthRequest": _brq,
        "disengageRequest": _drq,
        "locationRequest": _lrq,
        "infoRequestResponse": _irr,
    }

    # -- our own requests and timers ----------------------------------------------
    def _send_urq(self, registration: Registration, reason: str, now: float) -> None:
        body: Value = {
            "callSignalAddress": [transport_address(registration.call_signal_address)],
            "endpointIdentifier": registration.endpoint_id,
            "gatekeeperIdentifier": self.identifier,
            "reason": (reason, 0),
        }
        self._request("unregistrationRequest", body, registration.ras_address, now, ("urq",))

    def _on_answer(self, pending: _Pending, name: str, value: Value, now: float) -> None:
        log.debug("RAS: %s answered our %s", name, pending.request)

    def _on_timeout(self, pending: _Pending, now: float) -> None:
        log.info("RAS: our %s to %s:%s went unanswered", pending.request, *pending.dest)

    def _own_deadline(self) -> float | None:
        while self._expiries:
            when, endpoint_id = self._expiries[0]
            registration = self._registrations.get(endpoint_id)
            if registration is not None and registration.expires == when:
                return when
            heapq.heappop(self._expiries)  # stale: refreshed or gone since
        return None

    def _own_timer(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] <= now:
            when, endpoint_id = heapq.heappop(self._expiries)
            registration = self._registrations.get(endpoint_id)
            if registration is None or registration.expires != when:
                continue
            log.info("RAS: registration %s %s lapsed", endpoint_id, registration.aliases)
            self._remove(registration, "ttlExpired")
            self._send_urq(registration, "ttlExpired", now)

    def _remove(self, registration: Registration, reason: str) -> None:
        del self._registrations[registration.endpoint_id]
        self._unindex(registration)
        registration.expires = None
        for call_id in sorted(registration.calls):
            if self._calls.pop(call_id, None) is not None:
                self._events.append(Disengaged(registration.endpoint_id, call_id, reason))
        registration.calls.clear()
        self._events.append(Unregistered(registration.endpoint_id, registration.aliases, reason))

    def _unindex(self, registration: Registration) -> None:
        for alias in registration.aliases:
            if self._by_alias.get(alias) == registration.endpoint_id:
                del self._by_alias[alias]


# -- the client ----------------------------------------------------------------------


class ClientState(Enum):
    """Where :class:`GatekeeperClient` stands with its gatekeeper."""

    IDLE = "idle"
    DISCOVERING = "discovering"  # GRQ sent
    REGISTERING = "registering"  # full RRQ sent
    REGISTERED = "registered"
    UNREGISTERING = "unregistering"  # our URQ sent
    WAITING = "waiting"  # rejected or timed out: the next try comes after a back-off


@dataclass(slots=True)
class _Call:
    conference_id: bytes
    call_reference: int
    answer_call: bool


class GatekeeperClient(_RasEntity):
    """The gateway registered as an endpoint with another gatekeeper (H.323 7.2), sans-IO.

    :meth:`register` starts: a GRQ (``discover``) or straight an RRQ to ``gatekeeper``,
    terminalType gateway with ``aliases`` and ``call_signal_address``. Once confirmed,
    a lightweight RRQ (keepAlive) goes out ``keep_alive_lead`` seconds before the time
    to live runs out (by default a quarter of it, at most 30 s). A rejected or
    unanswered registration is tried again after a back-off doubling from
    ``backoff`` to ``max_backoff`` seconds.
    """

    def __init__(
        self,
        ras_address: Address,
        gatekeeper: Address,
        call_signal_address: Address,
        aliases: Sequence[Alias | str],
        *,
        gatekeeper_id: str | None = None,
        discover: bool = True,
        time_to_live: int | None = DEFAULT_TTL,
        keep_alive_lead: float | None = None,
        backoff: float = 5.0,
        max_backoff: float = 120.0,
        bandwidth: int = DEFAULT_BANDWIDTH,
        timeouts: Mapping[str, float] | None = None,
        retries: int = RAS_RETRIES,
    ) -> None:
        super().__init__(ras_address, timeouts=timeouts, retries=retries)
        self.gatekeeper = gatekeeper  # where requests go: the GCF's rasAddress once known
        self.configured_gatekeeper = gatekeeper
        self.call_signal_address = call_signal_address
        self.aliases = tuple(_as_alias(a) for a in aliases)
        if not self.aliases:
            raise H323UsageError("a gatekeeper client needs at least one alias")
        self.configured_gatekeeper_id = gatekeeper_id
        self.discover = discover
        self.time_to_live = time_to_live
        self.keep_alive_lead = keep_alive_lead
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.bandwidth = bandwidth
        self.state = ClientState.IDLE
        self.gatekeeper_id: str | None = gatekeeper_id
        self.endpoint_id: str | None = None
        self.granted_ttl: int | None = None
        self.keep_alives = 0  # keep-alive RRQs confirmed, for tests and metrics
        self._discovered = False
        self._refresh_at: float | None = None
        self._retry_at: float | None = None
        self._delay = backoff
        self._calls: dict[bytes, _Call] = {}

    @property
    def registered(self) -> bool:
        return self.state is ClientState.REGISTERED

    # -- commands ---------------------------------------------------------------
    def register(self, now: float) -> None:
        """Start registering (GRQ or RRQ); nothing if already on the way or done."""
        if self.state in (ClientState.IDLE, ClientState.WAITING):
            self._retry_at = None
            self._start(now)

    def unregister(self, now: float) -> None:
        """URQ (H.225.0 URQ) and stop; a registration in progress is abandoned."""
        self._retry_at = None
        self._refresh_at = None
        self._cancel(lambda p: p.tag[0] in ("grq", "rrq"))
        if self.state is ClientState.REGISTERED and self.endpoint_id is not None:
            body: Value = {
                "callSignalAddress": [transport_address(self.call_signal_address)],
                "endpointAlias": aliases(self.aliases),
                "endpointIdentifier": self.endpoint_id,
                "reason": ("undefinedReason", 0),
            }
            if self.gatekeeper_id:
                body["gatekeeperIdentifier"] = self.gatekeeper_id
            self._request("unregistrationRequest", body, self.gatekeeper, now, ("urq",))
            self.state = ClientState.UNREGISTERING
        elif self.state is not ClientState.UNREGISTERING:
            self.state = ClientState.IDLE

    def admit(
        self,
        call_id: bytes,
        conference_id: bytes,
        destination: Alias | str | Sequence[Alias | str],
        answer_call: bool,
        now: float,
        *,
        call_reference: int = 0,
        source: Sequence[Alias | str] = (),
        destination_address: Address | None = None,
        source_address: Address | None = None,
        bandwidth: int | None = None,
    ) -> None:
        """ARQ for a call we place (``answer_call`` False) or answer: an
        :class:`AdmissionConfirmed` or :class:`AdmissionRejected` event follows."""
        if len(call_id) != 16 or len(conference_id) != 16:
            raise H323UsageError("callIdentifier and conferenceID are 16 octets")
        if self.state is not ClientState.REGISTERED or self.endpoint_id is None:
            self._events.append(AdmissionRejected(call_id, "callerNotRegistered"))
            return
        wanted = [destination] if isinstance(destination, (Alias, str)) else list(destination)
        dest = [_as_alias(a) for a in wanted]
        src = [_as_alias(a) for a in source]
        if answer_call:
            dest = dest or list(self.aliases)
        else:
            src = src or list(self.aliases)
        body: Value = {
            "callType": ("pointToPoint", 0),
            "callModel": ("direct", 0),
            "endpointIdentifier": self.endpoint_id,
            "srcInfo": aliases(src) if src else aliases(self.aliases),
            "bandWidth": bandwidth if bandwidth is not None else self.bandwidth,
            "callReferenceValue": call_reference,
            "conferenceID": conference_id,
            "activeMC": False,
            "answerCall": answer_call,
            "canMapAlias": True,
            "callIdentifier": {"guid": call_id},
            "willSupplyUUIEs": False,
        }
        if dest:
            body["destinationInfo"] = aliases(dest)
        if answer_call:
            body["destCallSignalAddress"] = transport_address(self.call_signal_address)
            if source_address is not None:
                body["srcCallSignalAddress"] = transport_address(source_address)
        else:
            body["srcCallSignalAddress"] = transport_address(self.call_signal_address)
            if destination_address is not None:
                body["destCallSignalAddress"] = transport_address(destination_address)
        if self.gatekeeper_id:
            body["gatekeeperIdentifier"] = self.gatekeeper_id
        self._calls[call_id] = _Call(conference_id, call_reference, answer_call)
        self._request("admissionRequest", body, self.gatekeeper, now, ("arq", call_id))

    def locate(self, alias: Alias | str, now: float) -> None:
        """LRQ for one alias: a :class:`Located` or :class:`NotLocated` event follows."""
        wanted = _as_alias(alias)
        body: Value = {
            "destinationInfo": aliases([wanted]),
            "replyAddress": transport_address(self.ras_address),
            "sourceInfo": aliases(self.aliases),
            "canMapAlias": False,
        }
        if self.endpoint_id is not None and self.state is ClientState.REGISTERED:
            body["endpointIdentifier"] = self.endpoint_id
        if self.gatekeeper_id:
            body["gatekeeperIdentifier"] = self.gatekeeper_id
        self._request("locationRequest", body, self.gatekeeper, now, ("lrq", wanted))

    def disengage(self, call_id: bytes, now: float, reason: str = "normalDrop") -> bool:
        """DRQ for an admitted call; False (and nothing sent) for an unknown one."""
        call = self._calls.pop(call_id, None)
        if call is None or self.endpoint_id is None:
            return False
        body: Value = {
            "endpointIdentifier": self.endpoint_id,
            "conferenceID": call.conference_id,
            "callReferenceValue": call.call_reference,
            "disengageReason": (reason, 0),
            "callIdentifier": {"guid": call_id},
            "answeredCall": call.answer_call,
        }
        if self.gatekeeper_id:
            body["gatekeeperIdentifier"] = self.gatekeeper_id
        self._request("disengageRequest", body, self.gatekeeper, now, ("drq", call_id))
        return True

    # -- registration -------------------------------------------------------------
    def _start(self, now: float) -> None:
        if self.discover and not self._discovered:
            body: Value = {
                "protocolIdentifier": H225_PROTOCOL_ID,
                "rasAddress": transport_address(self.ras_address),
                "endpointType": endpoint_type(gateway=True),
                "endpointAlias": aliases(self.aliases),
            }
            if self.configured_gatekeeper_id:
                body["gatekeeperIdentifier"] = self.configured_gatekeeper_id
            self.gatekeeper = self.configured_gatekeeper
            self.state = ClientState.DISCOVERING
            self._request("gatekeeperRequest", body, self.gatekeeper, now, ("grq",))
        else:
            self.state = ClientState.REGISTERING
            self._send_rrq(now, keep_alive=False)

    def _send_rrq(self, now: float, *, keep_alive: bool) -> None:
        body: Value = {
            "protocolIdentifier": H225_PROTOCOL_ID,
            "discoveryComplete": self._discovered,
            "callSignalAddress": [transport_address(self.call_signal_address)],
            "rasAddress": [transport_address(self.ras_address)],
            "terminalType": endpoint_type(gateway=True),
            "endpointVendor": vendor(),
            "keepAlive": keep_alive,
            "willSupplyUUIEs": False,
            "maintainConnection": False,
        }
        if not keep_alive:
            body["terminalAlias"] = aliases(self.aliases)
        if self.gatekeeper_id:
            body["gatekeeperIdentifier"] = self.gatekeeper_id
        if keep_alive and self.endpoint_id is not None:
            body["endpointIdentifier"] = self.endpoint_id
        ttl = self.granted_ttl if keep_alive else self.time_to_live
        if ttl is not None:
            body["timeToLive"] = ttl
        self._request("registrationRequest", body, self.gatekeeper, now, ("rrq", keep_alive))

    def _registered(self, value: Value, now: float) -> None:
        self.endpoint_id = value["endpointIdentifier"]
        self.gatekeeper_id = value.get("gatekeeperIdentifier", self.gatekeeper_id)
        ttl = value.get("timeToLive")
        self.granted_ttl = ttl if isinstance(ttl, int) and ttl > 0 else None
        self.state = ClientState.REGISTERED
        self._delay = self.backoff
        self._schedule_refresh(now)

    def _schedule_refresh(self, now: float) -> None:
        ttl = self.granted_ttl
        if ttl is None:
            self._refresh_at = None
            return
        lead = self.keep_alive_lead if self.keep_alive_lead is not None else min(ttl / 4, 30.0)
        self._refresh_at = now + max(ttl - lead, 1.0)

    def _failed(self, reason: str, now: float) -> None:
        """A registration attempt failed: try again after the back-off."""
        self._retry_at = now + self._delay
        self._delay = min(self._delay * 2, self.max_backoff)
        self.state = ClientState.WAITING
        self._events.append(RegistrationFailed(reason, self._retry_at))

    def _lost(self, reason: str, now: float, *, again_at: float) -> None:
        """We were registered and are no longer: say so, and register again."""
        self.state = ClientState.WAITING
        self.endpoint_id = None
        self._refresh_at = None
        self._retry_at = again_at
        self._events.append(GatekeeperUnregistered(reason))

    # -- answers ------------------------------------------------------------------
    def _on_answer(self, pending: _Pending, name: str, value: Value, now: float) -> None:
        kind = pending.tag[0]
        if kind == "grq":
            self._on_grq_answer(name, value, now)
        elif kind == "rrq":
            self._on_rrq_answer(name, value, now, keep_alive=pending.tag[1])
        elif kind == "urq":
            self.state = ClientState.IDLE
            self.endpoint_id = None
            self._events.append(GatekeeperUnregistered("unregistered"))
        elif kind == "arq":
            call_id: bytes = pending.tag[1]
            if name == "admissionConfirm":
                self._events.append(
                    AdmissionConfirmed(
                        call_id,
                        _ip(value.get("destCallSignalAddress")),
                        _reason_name(value.get("callModel")),
                        int(value.get("bandWidth", 0)),
                    )
                )
            else:
                self._calls.pop(call_id, None)
                reason = _reason_name(value.get("rejectReason", ("unknownMessage", 0)))
                self._events.append(AdmissionRejected(call_id, reason))
        elif kind == "lrq":
            alias: Alias = pending.tag[1]
            signal = _ip(value.get("callSignalAddress"))
            if name == "locationConfirm" and signal is not None:
                self._events.append(Located(alias, signal, _ip(value.get("rasAddress"))))
            else:
                reason = _reason_name(value.get("rejectReason", ("unknownMessage", 0)))
                self._events.append(NotLocated(alias, reason))
        elif kind == "drq":
            confirmed = name == "disengageConfirm"
            self._events.append(DisengageConfirmed(pending.tag[1], confirmed))

    def _on_grq_answer(self, name: str, value: Value, now: float) -> None:
        if self.state is not ClientState.DISCOVERING:
            return
        if name != "gatekeeperConfirm":
            self._failed(_reason_name(value.get("rejectReason")), now)
            return
        self._discovered = True
        self.gatekeeper_id = value.get("gatekeeperIdentifier", self.configured_gatekeeper_id)
        self.gatekeeper = _ip(value.get("rasAddress")) or self.gatekeeper
        self.state = ClientState.REGISTERING
        self._send_rrq(now, keep_alive=False)

    def _on_rrq_answer(self, name: str, value: Value, now: float, *, keep_alive: bool) -> None:
        if keep_alive:
            if self.state is not ClientState.REGISTERED:
                return
            if name == "registrationConfirm":
                self.keep_alives += 1
                ttl = value.get("timeToLive")
                if isinstance(ttl, int) and ttl > 0:
                    self.granted_ttl = ttl
                self._schedule_refresh(now)
                return
            reason = _reason_name(value.get("rejectReason"))
            if reason == "discoveryRequired":
                self._discovered = False
            self._lost(reason, now, again_at=now)  # full registration at once
            return
        if self.state is not ClientState.REGISTERING:
            return
        if name == "registrationConfirm":
            self._registered(value, now)
            self._events.append(
                GatekeeperRegistered(
                    self.gatekeeper_id,
                    value["endpointIdentifier"],
                    self.granted_ttl,
                    self.gatekeeper,
                )
            )
            return
        reason = _reason_name(value.get("rejectReason"))
        if reason == "discoveryRequired":
            self._discovered = False
        self._failed(reason, now)

    def _on_timeout(self, pending: _Pending, now: float) -> None:
        kind = pending.tag[0]
        log.info("RAS: our %s to %s:%s went unanswered", pending.request, *pending.dest)
        if kind == "grq" and self.state is ClientState.DISCOVERING:
            self._failed("timeout", now)
        elif kind == "rrq":
            if pending.tag[1]:
                if self.state is ClientState.REGISTERED:
                    self._discovered = False if self.discover else self._discovered
                    self._lost("timeout", now, again_at=now + self._delay)
            elif self.state is ClientState.REGISTERING:
                self._discovered = False if self.discover else self._discovered
                self._failed("timeout", now)
        elif kind == "urq":
            self.state = ClientState.IDLE
            self.endpoint_id = None
            self._events.append(GatekeeperUnregistered("unregistered"))
        elif kind == "arq":
            self._calls.pop(pending.tag[1], None)
            self._events.append(AdmissionRejected(pending.tag[1], "timeout"))
        elif kind == "lrq":
            self._events.append(NotLocated(pending.tag[1], "timeout"))
        elif kind == "drq":
            self._events.append(DisengageConfirmed(pending.tag[1], False))

    # -- the gatekeeper's requests ----------------------------------------------------
    def _on_request(self, name: str, value: Value, source: Address, now: float) -> None:
        seq = value["requestSeqNum"]
        if name == "infoRequest":
            self._send_irr(value, source, now)
        elif name == "unregistrationRequest":
            ours = value.get("endpointIdentifier")
            if self.state is not ClientState.REGISTERED or (
                ours is not None and ours != self.endpoint_id
            ):
                raise RasValueError("notCurrentlyRegistered", "URQ for another endpoint")
            self._reply(("unregistrationConfirm", {"requestSeqNum": seq}), source, now)
            reason = _reason_name(value.get("reason"))
            self._cancel(lambda p: p.tag == ("rrq", True))
            self._discovered = False if self.discover else self._discovered
            # H.323 7.2.2: an endpoint unregistered by its gatekeeper registers afresh.
            self._lost(reason, now, again_at=now)
        elif name == "disengageRequest":
            if value.get("endpointIdentifier") != self.endpoint_id:
                raise RasValueError("notRegistered", "DRQ for another endpoint")
            call_id = _guid(value.get("callIdentifier")) or value["conferenceID"]
            self._reply(("disengageConfirm", {"requestSeqNum": seq}), source, now)
            if self._calls.pop(call_id, None) is not None:
                reason = _reason_name(value.get("disengageReason"))
                self._events.append(DisengageRequested(call_id, reason))
        elif name == "bandwidthRequest":
            body = {"requestSeqNum": seq, "bandWidth": int(value["bandWidth"])}
            self._reply(("bandwidthConfirm", body), source, now)
        else:
            log.info("RAS: %s from %s:%s not handled by an endpoint", name, *source)
            self._reject(name, value, None, source, now)

    def _send_irr(self, value: Value, source: Address, now: float) -> None:
        """IRQ -> IRR (H.225.0 IRQ/IRR): who we are, for the gatekeeper's poll."""
        body: Value = {
            "requestSeqNum": value["requestSeqNum"],
            "endpointType": endpoint_type(gateway=True),
            "endpointIdentifier": self.endpoint_id or "unregistered",
            "rasAddress": transport_address(self.ras_address),
            "callSignalAddress": [transport_address(self.call_signal_address)],
            "endpointAlias": aliases(self.aliases),
            "needResponse": False,
            "unsolicited": False,
        }
        self._reply(("infoRequestResponse", body), _ip(value.get("replyAddress")) or source, now)

    # -- timers ------------------------------------------------------------------------
    def _own_deadline(self) -> float | None:
        times = [t for t in (self._refresh_at, self._retry_at) if t is not None]
        return min(times) if times else None

    def _own_timer(self, now: float) -> None:
        if self._refresh_at is not None and self._refresh_at <= now:
            self._refresh_at = None
            if self.state is ClientState.REGISTERED:
                self._send_rrq(now, keep_alive=True)
        if self._retry_at is not None and self._retry_at <= now:
            self._retry_at = None
            if self.state is ClientState.WAITING:
                self._start(now)
