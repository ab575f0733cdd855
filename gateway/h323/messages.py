"""Typed builders of the H.225.0 values the gateway sends (H.225.0 7.3-7.4, 7.6-7.15).

Each function returns the pycrate value structure that :mod:`gateway.h323.asn1`
encodes, so that the state machines do not write nested dicts by hand. Addresses are
``(ip, port)`` with a dotted IPv4 text; aliases are :class:`Alias` values. The
extension additions H.225.0 version 4 makes mandatory (callIdentifier,
multipleCalls, maintainConnection, mediaWaitForConnect, canOverlapSend...) are always
filled in, because H323Plus and GNU Gatekeeper expect them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.h323.asn1 import H225_PROTOCOL_ID
from gateway.h323.errors import H323UsageError

Value = dict[str, Any]
Address = tuple[str, int]

# H.225.0 7.6 (EndpointType.vendor): T.35 country France (0x3D), our own manufacturer
# code within it is not registered, so 0 with an explicit product identifier.
T35_COUNTRY_FRANCE = 0x3D
PRODUCT_ID = b"visio-relais gateway"
VERSION_ID = b"0.1"


@dataclass(frozen=True, slots=True)
class Alias:
    """An AliasAddress (H.225.0 7.6): ``h323-ID`` (a name) or ``dialledDigits`` (E.164)."""

    value: str
    kind: str = "h323-ID"  # or "dialledDigits", "url-ID", "email-ID"

    def to_value(self) -> tuple[str, str]:
        if self.kind == "dialledDigits" and not all(c in "0123456789#*," for c in self.value):
            raise H323UsageError(f"dialledDigits {self.value!r} holds other characters")
        if not self.value:
            raise H323UsageError("an alias cannot be empty")
        return (self.kind, self.value)


def transport_address(address: Address) -> tuple[str, Value]:
    """A TransportAddress ipAddress (H.225.0 7.6) from ``(ip, port)``."""
    ip, port = address
    try:
        packed = ipaddress.IPv4Address(ip).packed
    except ValueError:
        raise H323UsageError(f"{ip!r} is not an IPv4 address") from None
    if not 0 <= port <= 0xFFFF:
        raise H323UsageError(f"port {port} out of range")
    return ("ipAddress", {"ip": packed, "port": port})


def address_of(value: tuple[str, Value]) -> Address | None:
    """``(ip, port)`` of an ipAddress TransportAddress, None for other kinds."""
    if value[0] != "ipAddress":
        return None
    return (str(ipaddress.IPv4Address(value[1]["ip"])), int(value[1]["port"]))


def aliases(items: Iterable[Alias]) -> list[tuple[str, str]]:
    return [a.to_value() for a in items]


def vendor() -> Value:
    """VendorIdentifier (H.225.0 7.6)."""
    return {
        "vendor": {"t35CountryCode": T35_COUNTRY_FRANCE, "t35Extension": 0, "manufacturerCode": 0},
        "productId": PRODUCT_ID,
        "versionId": VERSION_ID,
    }


def endpoint_type(*, gateway: bool = True) -> Value:
    """EndpointType (H.225.0 7.6): a gateway for voice and video, else a terminal."""
    value: Value = {"vendor": vendor(), "mc": False, "undefinedNode": False}
    if gateway:
        value["gateway"] = {"protocol": [("voice", {"supportedPrefixes": []})]}
    else:
        value["terminal"] = {}
    return value


def _guid(value: bytes, what: str) -> bytes:
    if len(value) != 16:
        raise H323UsageError(f"{what} must be 16 octets, not {len(value)}")
    return value


def uu_pdu(
    body: tuple[str, Value],
    *,
    h245_tunnelling: bool = True,
    h245_control: Sequence[bytes] = (),
) -> Value:
    """An H323-UserInformation around a message body (H.225.0 7.3, 8.2.1 tunnelling)."""
    pdu: Value = {"h323-message-body": body, "h245Tunnelling": h245_tunnelling}
    if h245_control:
        pdu["h245Control"] = list(h245_control)
    return {"h323-uu-pdu": pdu}


def _common(call_id: bytes) -> Value:
    return {
        "protocolIdentifier": H225_PROTOCOL_ID,
        "callIdentifier": {"guid": _guid(call_id, "callIdentifier")},
    }


def setup(
    *,
    call_id: bytes,
    conference_id: bytes,
    source_address: Address,
    source_aliases: Sequence[Alias] = (),
    destination_aliases: Sequence[Alias] = (),
    destination_address: Address | None = None,
    h245_address: Address | None = None,
    fast_start: Sequence[bytes] = (),
    gateway: bool = True,
) -> tuple[str, Value]:
    """Setup-UUIE (H.225.0 7.3.1): a new call, with fastStart OLCs if any."""
    body = _common(call_id)
    body.update(
        {
            "sourceInfo": endpoint_type(gateway=gateway),
            "activeMC": False,
            "conferenceID": _guid(conference_id, "conferenceID"),
            "conferenceGoal": ("create", 0),
            "callType": ("pointToPoint", 0),
            "sourceCallSignalAddress": transport_address(source_address),
            "mediaWaitForConnect": False,
            "canOverlapSend": False,
            "multipleCalls": False,
            "maintainConnection": False,
        }
    )
    if source_aliases:
        body["sourceAddress"] = aliases(source_aliases)
    if destination_aliases:
        body["destinationAddress"] = aliases(destination_aliases)
    if destination_address is not None:
        body["destCallSignalAddress"] = transport_address(destination_address)
    if h245_address is not None:
        body["h245Address"] = transport_address(h245_address)
    if fast_start:
        body["fastStart"] = list(fast_start)
    return ("setup", body)


def _answer(
    name: str,
    call_id: bytes,
    h245_address: Address | None,
    fast_start: Sequence[bytes],
    extra: Value | None = None,
) -> tuple[str, Value]:
    body = _common(call_id)
    body["destinationInfo"] = endpoint_type()
    if extra:
        body.update(extra)
    if h245_address is not None:
        body["h245Address"] = transport_address(h245_address)
    if fast_start:
        body["fastStart"] = list(fast_start)
    body["multipleCalls"] = False
    body["maintainConnection"] = False
    return (name, body)


def call_proceeding(
    *, call_id: bytes, h245_address: Address | None = None, fast_start: Sequence[bytes] = ()
) -> tuple[str, Value]:
    """CallProceeding-UUIE (H.225.0 7.3.2)."""
    return _answer("callProceeding", call_id, h245_address, fast_start)


def alerting(
    *, call_id: bytes, h245_address: Address | None = None, fast_start: Sequence[bytes] = ()
) -> tuple[str, Value]:
    """Alerting-UUIE (H.225.0 7.3.3)."""
    return _answer("alerting", call_id, h245_address, fast_start)


def progress(
    *, call_id: bytes, h245_address: Address | None = None, fast_start: Sequence[bytes] = ()
) -> tuple[str, Value]:
    """Progress-UUIE (H.225.0 7.3.9)."""
    return _answer("progress", call_id, h245_address, fast_start)


def connect(
    *,
    call_id: bytes,
    conference_id: bytes,
    h245_address: Address | None = None,
    fast_start: Sequence[bytes] = (),
) -> tuple[str, Value]:
    """Connect-UUIE (H.225.0 7.3.4): the call is answered."""
    extra = {"conferenceID": _guid(conference_id, "conferenceID")}
    return _answer("connect", call_id, h245_address, fast_start, extra)


def facility(
    *,
    call_id: bytes,
    reason: str = "transportedInformation",
    conference_id: bytes | None = None,
    alternative_address: Address | None = None,
) -> tuple[str, Value]:
    """Facility-UUIE (H.225.0 7.4.2): tunnelled H.245, startH245, redirection..."""
    body = _common(call_id)
    body["reason"] = (reason, 0)
    if conference_id is not None:
        body["conferenceID"] = _guid(conference_id, "conferenceID")
    if alternative_address is not None:
        body["alternativeAddress"] = transport_address(alternative_address)
    body["multipleCalls"] = False
    body["maintainConnection"] = False
    return ("facility", body)


def information(*, call_id: bytes) -> tuple[str, Value]:
    """Information-UUIE (H.225.0 7.3.6)."""
    return ("information", _common(call_id))


def notify(*, call_id: bytes) -> tuple[str, Value]:
    """Notify-UUIE (H.225.0 7.4.4)."""
    return ("notify", _common(call_id))


def status(*, call_id: bytes) -> tuple[str, Value]:
    """Status-UUIE (H.225.0 7.4.5), the answer to a STATUS ENQUIRY."""
    return ("status", _common(call_id))


# ReleaseCompleteReason values of type NULL (H.225.0 7.3.5; Table 5 maps them to Q.850)
RELEASE_REASONS = frozenset(
    {
        "noBandwidth",
        "gatekeeperResources",
        "unreachableDestination",
        "destinationRejection",
        "invalidRevision",
        "noPermission",
        "unreachableGatekeeper",
        "gatewayResources",
        "badFormatAddress",
        "adaptiveBusy",
        "inConf",
        "undefinedReason",
        "facilityCallDeflection",
        "securityDenied",
        "calledPartyNotRegistered",
        "callerNotRegistered",
        "newConnectionNeeded",
        "genericDataReason",
        "neededFeatureNotSupported",
        "tunnelledSignallingRejected",
        "invalidCID",
        "hopCountExceeded",
    }
)


def release_complete(*, call_id: bytes, reason: str | None = None) -> tuple[str, Value]:
    """ReleaseComplete-UUIE (H.225.0 7.3.5), with a ReleaseCompleteReason if given."""
    body = _common(call_id)
    if reason is not None:
        if reason not in RELEASE_REASONS:
            raise H323UsageError(f"unknown ReleaseCompleteReason {reason!r}")
        body["reason"] = (reason, 0)
    return ("releaseComplete", body)
