"""Q.931 messages as H.225.0 uses them for call signalling (H.225.0 7.2-7.4, Q.931 4).

A message is the protocol discriminator (8), a call reference (two octets in H.225.0
7.2.2, with the flag bit of Q.931 4.3), the message type (Q.931 4.4) and information
elements in order (Q.931 4.5). The elements the gateway reads or writes are typed;
any other one (and any typed one whose contents would not re-encode to the same
octets) is kept as :class:`RawIE`, so that a decoded message encodes back to the very
bytes received. Whatever is not a Q.931 message raises
:class:`~gateway.h323.errors.H323ParseError` carrying the cause of Q.931 5.8.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, TypeVar

from gateway.h323.errors import H323ParseError, H323UsageError
from gateway.model.causes import Cause

PROTOCOL_DISCRIMINATOR = 0x08  # Q.931 4.2: Q.931/I.451 user-network call control
USER_USER_X208 = 0x05  # H.225.0 7.2.2.x: User-user protocol discriminator "X.208/X.209"


class MessageType(IntEnum):
    """Message type octet (Q.931 4.4 Table 4-2, Q.932 for Facility)."""

    ALERTING = 0x01
    CALL_PROCEEDING = 0x02
    PROGRESS = 0x03
    SETUP = 0x05
    CONNECT = 0x07
    SETUP_ACKNOWLEDGE = 0x0D
    CONNECT_ACKNOWLEDGE = 0x0F
    USER_INFORMATION = 0x20
    SUSPEND_REJECT = 0x21
    RESUME_REJECT = 0x22
    SUSPEND = 0x25
    RESUME = 0x26
    SUSPEND_ACKNOWLEDGE = 0x2D
    RESUME_ACKNOWLEDGE = 0x2E
    DISCONNECT = 0x45
    RESTART = 0x46
    RELEASE = 0x4D
    RESTART_ACKNOWLEDGE = 0x4E
    RELEASE_COMPLETE = 0x5A
    SEGMENT = 0x60
    FACILITY = 0x62
    NOTIFY = 0x6E
    STATUS_ENQUIRY = 0x75
    CONGESTION_CONTROL = 0x79
    INFORMATION = 0x7B
    STATUS = 0x7D


class IECode(IntEnum):
    """Information element identifiers of codeset 0 (Q.931 4.5 Table 4-3)."""

    SEGMENTED_MESSAGE = 0x00
    BEARER_CAPABILITY = 0x04
    CAUSE = 0x08
    CALL_IDENTITY = 0x10
    CALL_STATE = 0x14
    CHANNEL_IDENTIFICATION = 0x18
    FACILITY = 0x1C
    PROGRESS_INDICATOR = 0x1E
    NETWORK_SPECIFIC_FACILITIES = 0x20
    NOTIFICATION_INDICATOR = 0x27
    DISPLAY = 0x28
    DATE_TIME = 0x29
    KEYPAD_FACILITY = 0x2C
    SIGNAL = 0x34
    CONNECTED_NUMBER = 0x4C
    CALLING_PARTY_NUMBER = 0x6C
    CALLING_PARTY_SUBADDRESS = 0x6D
    CALLED_PARTY_NUMBER = 0x70
    CALLED_PARTY_SUBADDRESS = 0x71
    REDIRECTING_NUMBER = 0x74
    TRANSIT_NETWORK_SELECTION = 0x78
    RESTART_INDICATOR = 0x79
    LOW_LAYER_COMPATIBILITY = 0x7C
    HIGH_LAYER_COMPATIBILITY = 0x7D
    USER_USER = 0x7E
    ESCAPE = 0x7F
    # Single-octet elements (Q.931 4.5.1), identified by their high half
    SHIFT = 0x90
    MORE_DATA = 0xA0
    SENDING_COMPLETE = 0xA1
    CONGESTION_LEVEL = 0xB0
    REPEAT_INDICATOR = 0xD0


# --- information elements ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawIE:
    """An element kept as received: its identifier and contents (Q.931 4.5.1).

    ``codeset`` is the codeset in force where it appeared (Q.931 4.5.2-4.5.3); it is
    informative only, the shift elements themselves stay in the message.
    """

    code: int
    data: bytes
    codeset: int = 0

    def content(self) -> bytes:
        return self.data


@dataclass(frozen=True, slots=True)
class SingleOctetIE:
    """A single-octet element (Q.931 4.5.1 type 1 or 2: shift, sending complete...)."""

    octet: int

    @property
    def code(self) -> int:
        """The identifier: the high half for type 1, the whole octet for type 2."""
        return self.octet if self.octet & 0xF0 == 0xA0 else self.octet & 0xF0

    @property
    def value(self) -> int:
        """The contents of a type 1 element (the low half)."""
        return self.octet & 0x0F


@dataclass(frozen=True, slots=True)
class BearerCapability:
    """Bearer capability (Q.931 4.5.5): H.225.0 7.2.2.1 asks for it in every Setup.

    ``transfer_capability`` 0x08 unrestricted digital, 0x10 3.1 kHz audio (the
    H.225.0 values), 0x00 speech; ``transfer_rate`` 0x10 64 kbit/s, 0x18 multirate
    (with ``rate_multiplier``); ``layer1`` the user information layer 1 protocol (5:
    H.221 and H.242 for video). ``extra`` holds octets 5a onward as received.
    """

    code: ClassVar[int] = IECode.BEARER_CAPABILITY
    transfer_capability: int = 0x08
    transfer_rate: int = 0x10
    rate_multiplier: int | None = None
    layer1: int | None = None
    extra: bytes = b""
    coding_standard: int = 0
    transfer_mode: int = 0

    def content(self) -> bytes:
        out = bytearray(
            (
                0x80 | self.coding_standard << 5 | self.transfer_capability,
                0x80 | self.transfer_mode << 5 | self.transfer_rate,
            )
        )
        if self.rate_multiplier is not None:
            out.append(0x80 | self.rate_multiplier)
        if self.layer1 is not None:
            # octet 5 is extended (bit 8 at 0) when 5a follows, not octet 6 or 7
            more = bool(self.extra) and self.extra[0] & 0x60 not in (0x40, 0x60)
            out.append((0 if more else 0x80) | 0x20 | self.layer1)
        out += self.extra
        return bytes(out)

    @classmethod
    def parse(cls, data: bytes) -> BearerCapability:
        coding, itc = data[0] >> 5 & 3, data[0] & 0x1F
        mode, rate = data[1] >> 5 & 3, data[1] & 0x1F
        pos = 2
        multiplier = None
        if rate == 0x18:
            multiplier = data[2] & 0x7F
            pos = 3
        layer1 = None
        if pos < len(data) and data[pos] & 0x60 == 0x20:  # layer 1 identification "01"
            layer1 = data[pos] & 0x1F
            pos += 1
        return cls(itc, rate, multiplier, layer1, data[pos:], coding, mode)


@dataclass(frozen=True, slots=True)
class CauseIE:
    """Cause (Q.931 4.5.12, Q.850 2): location, cause value, optional diagnostics.

    ``location`` 0 user, 1 private network serving the local user, ... (Q.850 2.2.3).
    """

    code: ClassVar[int] = IECode.CAUSE
    value: int
    location: int = 0
    diagnostics: bytes = b""
    coding_standard: int = 0
    recommendation: int | None = None

    @property
    def cause(self) -> Cause:
        """The Q.850 cause, an unknown value counted as its class's default."""
        return Cause.of(self.value)

    def content(self) -> bytes:
        head = self.coding_standard << 5 | self.location
        if self.recommendation is None:
            out = bytes((0x80 | head, 0x80 | self.value))
        else:
            out = bytes((head, 0x80 | self.recommendation, 0x80 | self.value))
        return out + self.diagnostics

    @classmethod
    def parse(cls, data: bytes) -> CauseIE:
        coding, location = data[0] >> 5 & 3, data[0] & 0x0F
        pos, recommendation = 1, None
        if not data[0] & 0x80:
            recommendation = data[1] & 0x7F
            pos = 2
        return cls(data[pos] & 0x7F, location, data[pos + 1 :], coding, recommendation)


@dataclass(frozen=True, slots=True)
class CallState:
    """Call state (Q.931 4.5.7): the state value a STATUS reports (Q.931 5.8.10)."""

    code: ClassVar[int] = IECode.CALL_STATE
    state: int
    coding_standard: int = 0

    def content(self) -> bytes:
        return bytes((self.coding_standard << 6 | self.state,))

    @classmethod
    def parse(cls, data: bytes) -> CallState:
        if len(data) != 1:
            raise ValueError("call state is one octet")
        return cls(data[0] & 0x3F, data[0] >> 6)


@dataclass(frozen=True, slots=True)
class FacilityIE:
    """Facility (Q.932 8.2.3): supplementary service APDUs, kept as octets."""

    code: ClassVar[int] = IECode.FACILITY
    data: bytes = b""

    def content(self) -> bytes:
        return self.data

    @classmethod
    def parse(cls, data: bytes) -> FacilityIE:
        return cls(data)


@dataclass(frozen=True, slots=True)
class ProgressIndicator:
    """Progress indicator (Q.931 4.5.23): 1 not end-to-end ISDN, 8 in-band info now."""

    code: ClassVar[int] = IECode.PROGRESS_INDICATOR
    description: int
    location: int = 0
    coding_standard: int = 0

    def content(self) -> bytes:
        return bytes((0x80 | self.coding_standard << 5 | self.location, 0x80 | self.description))

    @classmethod
    def parse(cls, data: bytes) -> ProgressIndicator:
        if len(data) != 2:
            raise ValueError("progress indicator is two octets")
        return cls(data[1] & 0x7F, data[0] & 0x0F, data[0] >> 5 & 3)


@dataclass(frozen=True, slots=True)
class NotificationIndicator:
    """Notification indicator (Q.931 4.5.22): 0 user suspended, 1 user resumed..."""

    code: ClassVar[int] = IECode.NOTIFICATION_INDICATOR
    description: int
    extra: bytes = b""  # Q.932 extended descriptions, as received

    def content(self) -> bytes:
        return bytes((0x80 | self.description,)) + self.extra

    @classmethod
    def parse(cls, data: bytes) -> NotificationIndicator:
        return cls(data[0] & 0x7F, data[1:])


def _ia5(data: bytes) -> str:
    return data.decode("latin-1")  # lossless: what a peer sends beyond IA5 survives


def _to_ia5(text: str, what: str) -> bytes:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        raise H323UsageError(f"{what} {text!r} has characters beyond Latin-1") from None


@dataclass(frozen=True, slots=True)
class Display:
    """Display (Q.931 4.5.16): IA5 text; H.225.0 puts the caller's name there."""

    code: ClassVar[int] = IECode.DISPLAY
    text: str

    def content(self) -> bytes:
        return _to_ia5(self.text, "display")

    @classmethod
    def parse(cls, data: bytes) -> Display:
        return cls(_ia5(data))


@dataclass(frozen=True, slots=True)
class KeypadFacility:
    """Keypad facility (Q.931 4.5.18): IA5 digits; H323Plus sends DTMF this way."""

    code: ClassVar[int] = IECode.KEYPAD_FACILITY
    digits: str

    def content(self) -> bytes:
        return _to_ia5(self.digits, "keypad digits")

    @classmethod
    def parse(cls, data: bytes) -> KeypadFacility:
        return cls(_ia5(data))


@dataclass(frozen=True, slots=True)
class Signal:
    """Signal (Q.931 4.5.28): 1 ring back tone on, 0x3F tones off..."""

    code: ClassVar[int] = IECode.SIGNAL
    value: int

    def content(self) -> bytes:
        return bytes((self.value,))

    @classmethod
    def parse(cls, data: bytes) -> Signal:
        if len(data) != 1:
            raise ValueError("signal is one octet")
        return cls(data[0])


@dataclass(frozen=True, slots=True)
class CalledPartyNumber:
    """Called party number (Q.931 4.5.8): type of number, numbering plan, IA5 digits.

    ``type_of_number`` 0 unknown, 1 international, 2 national, 4 subscriber;
    ``numbering_plan`` 0 unknown, 1 E.164, 9 private.
    """

    code: ClassVar[int] = IECode.CALLED_PARTY_NUMBER
    digits: str
    type_of_number: int = 0
    numbering_plan: int = 1

    def content(self) -> bytes:
        head = 0x80 | self.type_of_number << 4 | self.numbering_plan
        return bytes((head,)) + _to_ia5(self.digits, "number")

    @classmethod
    def parse(cls, data: bytes) -> CalledPartyNumber:
        return cls(_ia5(data[1:]), data[0] >> 4 & 7, data[0] & 0x0F)


@dataclass(frozen=True, slots=True)
class CallingPartyNumber:
    """Calling party number (Q.931 4.5.10): as the called number, plus octet 3a.

    ``presentation`` 0 allowed, 1 restricted; ``screening`` 0 user-provided not
    screened, 3 network provided; both absent when octet 3a is.
    """

    code: ClassVar[int] = IECode.CALLING_PARTY_NUMBER
    digits: str
    type_of_number: int = 0
    numbering_plan: int = 1
    presentation: int | None = None
    screening: int = 0

    def content(self) -> bytes:
        head = self.type_of_number << 4 | self.numbering_plan
        if self.presentation is None:
            out = bytes((0x80 | head,))
        else:
            out = bytes((head, 0x80 | self.presentation << 5 | self.screening))
        return out + _to_ia5(self.digits, "number")

    @classmethod
    def parse(cls, data: bytes) -> CallingPartyNumber:
        head = data[0]
        if head & 0x80:
            return cls(_ia5(data[1:]), head >> 4 & 7, head & 0x0F)
        return cls(_ia5(data[2:]), head >> 4 & 7, head & 0x0F, data[1] >> 5 & 3, data[1] & 3)


@dataclass(frozen=True, slots=True)
class UserUser:
    """User-user (Q.931 4.5.30, H.225.0 7.2.2.x): the H323-UserInformation PER octets.

    H.225.0 codes its length in two octets and the protocol discriminator 5 (X.208).
    """

    code: ClassVar[int] = IECode.USER_USER
    data: bytes
    protocol: int = USER_USER_X208

    def content(self) -> bytes:
        return bytes((self.protocol,)) + self.data

    @classmethod
    def parse(cls, data: bytes) -> UserUser:
        return cls(data[1:], data[0])


TypedIE = (
    BearerCapability
    | CauseIE
    | CallState
    | FacilityIE
    | ProgressIndicator
    | NotificationIndicator
    | Display
    | KeypadFacility
    | Signal
    | CalledPartyNumber
    | CallingPartyNumber
    | UserUser
)
InformationElement = TypedIE | RawIE | SingleOctetIE
_IE = TypeVar("_IE", bound=TypedIE)

_TYPED: dict[int, type[TypedIE]] = {
    cls.code: cls
    for cls in (
        BearerCapability,
        CauseIE,
        CallState,
        FacilityIE,
        ProgressIndicator,
        NotificationIndicator,
        Display,
        KeypadFacility,
        Signal,
        CalledPartyNumber,
        CallingPartyNumber,
        UserUser,
    )
}


def _typed(code: int, data: bytes) -> InformationElement:
    """The typed element if its contents parse and re-encode to the same octets."""
    cls = _TYPED.get(code)
    if cls is None:
        return RawIE(code, data)
    try:
        typed = cls.parse(data)
    except (IndexError, ValueError):
        return RawIE(code, data)
    return typed if typed.content() == data else RawIE(code, data)


# --- messages ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Q931Message:
    """One Q.931 message (Q.931 4.1): call reference, message type, elements in order.

    ``from_originator`` is the call reference flag (Q.931 4.3): true (flag 0) in
    messages sent by the side that allocated the call reference, false in those sent
    to it. ``message_type`` is a :class:`MessageType` when known, else the raw value.
    """

    message_type: int
    call_reference: int
    from_originator: bool = True
    ies: tuple[InformationElement, ...] = field(default=())
    call_reference_length: int = 2

    def find(self, cls: type[_IE]) -> _IE | None:
        """The first element of that type in codeset 0, or None when there is none.

        An element with that identifier whose contents could not be read raises
        :class:`H323ParseError` with cause 100 (Q.931 5.8.7.2).
        """
        for ie in self.ies:
            if isinstance(ie, cls):
                return ie
            if isinstance(ie, RawIE) and ie.code == cls.code and ie.codeset == 0:
                raise H323ParseError(f"invalid {cls.__name__} contents", cause=100)
        return None

    def find_all(self, cls: type[_IE]) -> list[_IE]:
        """Every element of that type, in order (Q.931 allows repeats of some)."""
        return [ie for ie in self.ies if isinstance(ie, cls)]

    @property
    def user_user(self) -> bytes | None:
        """The H323-UserInformation octets of the User-user element (H.225.0 7.2.2)."""
        ie = self.find(UserUser)
        return None if ie is None else ie.data

    @property
    def cause(self) -> CauseIE | None:
        """The Cause element, if any (Q.931 4.5.12)."""
        return self.find(CauseIE)

    def encode(self) -> bytes:
        """The message octets (Q.931 4), elements in the order given."""
        length = self.call_reference_length
        limit = 1 << (8 * length - 1) if length else 1
        if not 0 <= length <= 2 or not 0 <= self.call_reference < limit:
            raise H323UsageError(
                f"call reference {self.call_reference} does not fit {length} octets"
            )
        if not 0 <= self.message_type <= 0x7F:
            raise H323UsageError(f"message type {self.message_type} is not 7 bits")
        out = bytearray((PROTOCOL_DISCRIMINATOR, length))
        if length:
            ref = self.call_reference.to_bytes(length, "big")
            out.append(ref[0] | (0 if self.from_originator else 0x80))
            out += ref[1:]
        out.append(self.message_type)
        for ie in self.ies:
            _encode_ie(out, ie)
        return bytes(out)


def _encode_ie(out: bytearray, ie: InformationElement) -> None:
    if isinstance(ie, SingleOctetIE):
        if not 0x80 <= ie.octet <= 0xFF:
            raise H323UsageError(f"single-octet element {ie.octet:#x} lacks bit 8")
        out.append(ie.octet)
        return
    if not 0 <= ie.code <= 0x7F:
        raise H323UsageError(f"element identifier {ie.code:#x} is not a variable-length one")
    data = ie.content()
    # H.225.0 7.2.2's two-octet length is User-user's in codeset 0 only: in another
    # codeset 0x7E is some other element with the one-octet length of Q.931 4.5.1
    codeset = ie.codeset if isinstance(ie, RawIE) else 0
    if ie.code == IECode.USER_USER and codeset == 0:
        if len(data) > 0xFFFF:
            raise H323UsageError("user-user contents longer than 65,535 octets")
        out += bytes((ie.code, len(data) >> 8, len(data) & 0xFF))
    else:
        if len(data) > 0xFF:
            raise H323UsageError(f"element {ie.code:#x} longer than 255 octets")
        out += bytes((ie.code, len(data)))
    out += data


def message(
    message_type: MessageType,
    call_reference: int,
    ies: Iterable[InformationElement],
    *,
    from_originator: bool = True,
) -> Q931Message:
    """A message with a two-octet call reference (H.225.0 7.2.2)."""
    return Q931Message(message_type, call_reference, from_originator, tuple(ies))


def decode(data: bytes) -> Q931Message:
    """Parse one Q.931 message (Q.931 4); malformed input raises H323ParseError.

    The cause carried by the error follows Q.931 5.8: 95 for a message too short or
    with a bad header or an element overrunning the message.
    """
    size = len(data)
    if size < 3:
        raise H323ParseError("message shorter than its header")
    if data[0] != PROTOCOL_DISCRIMINATOR:
        raise H323ParseError(f"protocol discriminator {data[0]:#x} is not Q.931")
    ref_len = data[1] & 0x0F
    if data[1] & 0xF0 or ref_len > 2:
        raise H323ParseError(f"call reference length {data[1]} (H.225.0 uses 2)", cause=81)
    pos = 2 + ref_len
    if size <= pos:
        raise H323ParseError("message truncated in its header")
    from_originator = True
    ref = 0
    if ref_len:
        from_originator = not data[2] & 0x80
        ref = int.from_bytes(bytes((data[2] & 0x7F,)) + data[3:pos], "big")
    mtype = data[pos]
    if mtype & 0x80:
        raise H323ParseError(f"message type octet {mtype:#x} has bit 8 set")
    pos += 1
    message_type: int = MessageType(mtype) if mtype in _KNOWN_TYPES else mtype
    ies: list[InformationElement] = []
    active, next_only = 0, None  # codesets (Q.931 4.5.2-4.5.3)
    while pos < size:
        octet = data[pos]
        if octet & 0x80:  # single octet (Q.931 4.5.1)
            ies.append(SingleOctetIE(octet))
            pos += 1
            if octet & 0xF0 == IECode.SHIFT:
                if octet & 0x08:
                    next_only = octet & 0x07
                else:
                    active = octet & 0x07
            continue
        codeset = active if next_only is None else next_only
        next_only = None
        if octet == IECode.USER_USER and codeset == 0:  # two-octet length in H.225.0
            if pos + 3 > size:
                raise H323ParseError("user-user element truncated")
            length = data[pos + 1] << 8 | data[pos + 2]
            start = pos + 3
        else:
            if pos + 2 > size:
                raise H323ParseError(f"element {octet:#x} truncated")
            length = data[pos + 1]
            start = pos + 2
        end = start + length
        if end > size:
            raise H323ParseError(f"element {octet:#x} overruns the message")
        content = data[start:end]
        if codeset == 0:
            ies.append(_typed(octet, content))
        else:
            ies.append(RawIE(octet, content, codeset))
        pos = end
    return Q931Message(message_type, ref, from_originator, tuple(ies), ref_len)


_KNOWN_TYPES = frozenset(int(t) for t in MessageType)
