"""Q.931 messages of H.225.0 (Q.931 4, H.225.0 7.2-7.4): real vectors and broken input."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.h323 import q931
from gateway.h323.errors import H323ParseError, H323UsageError
from gateway.h323.q931 import (
    BearerCapability,
    CalledPartyNumber,
    CallingPartyNumber,
    CallState,
    CauseIE,
    Display,
    FacilityIE,
    KeypadFacility,
    MessageType,
    NotificationIndicator,
    ProgressIndicator,
    Q931Message,
    RawIE,
    Signal,
    SingleOctetIE,
    UserUser,
)
from gateway.model.causes import Cause

from .vectors import H323Vector, pdus

VECTORS = pdus("q931")


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v.id)
def test_vector_decodes_and_encodes_to_the_same_bytes(vector: H323Vector) -> None:
    message = q931.decode(vector.data)
    assert message.encode() == vector.data
    assert message.user_user is not None  # H.225.0 7.2.2: every message carries a UUIE


def test_vector_message_types_are_all_known() -> None:
    kinds = Counter(MessageType(q931.decode(v.data).message_type).name for v in VECTORS)
    assert kinds == {
        "FACILITY": 56,
        "NOTIFY": 25,
        "RELEASE_COMPLETE": 12,
        "SETUP": 11,
        "CALL_PROCEEDING": 9,
        "CONNECT": 9,
        "ALERTING": 8,
        "PROGRESS": 6,
        "USER_INFORMATION": 5,
    }


def test_captured_setup_is_typed() -> None:
    setup = q931.decode(VECTORS[0].data)  # fax_t38_h323_ogw frame 5
    assert setup.message_type is MessageType.SETUP
    assert setup.from_originator and setup.call_reference == 1
    bearer = setup.find(BearerCapability)
    assert bearer is not None and bearer.transfer_capability == 0x10 and bearer.layer1 == 3
    called = setup.find(CalledPartyNumber)
    assert called is not None and called.digits == "1234"


def test_captured_release_complete_cause() -> None:
    releases = [q931.decode(v.data) for v in VECTORS if v.data[4] == 0x5A]
    causes = {m.cause.cause for m in releases if m.cause is not None}
    assert Cause.NORMAL_CLEARING in causes
    assert {m.from_originator for m in releases} == {True, False}


def test_captured_signal_and_display() -> None:
    infos = [q931.decode(v.data) for v in VECTORS]
    assert any(m.find(Signal) == Signal(0x3F) for m in infos)  # tones off, Cisco hold
    displays = {d.text for m in infos for d in m.find_all(Display)}
    assert "cisco Systems, Inc." in displays


def test_typed_elements_round_trip() -> None:
    ies = (
        BearerCapability(transfer_capability=0x08, transfer_rate=0x18, rate_multiplier=6, layer1=5),
        CauseIE(17, location=1),
        CauseIE(127, location=0, recommendation=0, diagnostics=b"\x01"),
        CallState(10),
        FacilityIE(b""),
        ProgressIndicator(8),
        NotificationIndicator(0x71),
        Display("Mairie de Saint-Lô"),
        KeypadFacility("12#"),
        Signal(1),
        CalledPartyNumber("0233000000", type_of_number=2, numbering_plan=1),
        CallingPartyNumber("1001", presentation=0, screening=3),
        CallingPartyNumber("1002"),
        SingleOctetIE(0xA1),
        RawIE(0x4C, b"\x81123"),
        UserUser(b"\x05" * 300),
    )
    message = q931.message(MessageType.SETUP, 0x1234, ies)
    decoded = q931.decode(message.encode())
    assert decoded == message
    assert decoded.find(CauseIE) == CauseIE(17, location=1)
    assert decoded.cause is not None and decoded.cause.cause is Cause.USER_BUSY
    assert decoded.find_all(CauseIE)[1].cause is Cause.INTERWORKING


def test_call_reference_flag() -> None:
    sent = q931.message(MessageType.ALERTING, 0x7FFF, (), from_originator=False)
    assert sent.encode() == b"\x08\x02\xff\xff\x01"
    back = q931.decode(sent.encode())
    assert back.call_reference == 0x7FFF and not back.from_originator


def test_unknown_cause_value_counts_as_its_class() -> None:
    ie = q931.decode(q931.message(MessageType.RELEASE_COMPLETE, 1, [CauseIE(45)]).encode())
    assert (
        ie.cause is not None
        and ie.cause.value == 45
        and ie.cause.cause is Cause.RESOURCE_UNAVAILABLE
    )


def test_unknown_message_type_is_kept_as_a_number() -> None:
    message = q931.decode(b"\x08\x02\x00\x01\x13")
    assert message.message_type == 0x13 and not isinstance(message.message_type, MessageType)
    assert message.encode() == b"\x08\x02\x00\x01\x13"


def test_garbled_typed_element_is_raw_and_find_reports_cause_100() -> None:
    data = b"\x08\x02\x00\x01\x5a\x08\x01\x80"  # a Cause without its value octet
    message = q931.decode(data)
    assert message.ies == (RawIE(0x08, b"\x80"),)
    assert message.encode() == data
    with pytest.raises(H323ParseError) as info:
        message.find(CauseIE)
    assert info.value.cause == 100


def test_codeset_shift_keeps_other_codesets_raw() -> None:
    # a locking shift to codeset 6, then an element 0x08 that is not a Cause there
    data = b"\x08\x02\x00\x01\x7b\x96\x08\x01\x00"
    message = q931.decode(data)
    assert message.ies == (SingleOctetIE(0x96), RawIE(0x08, b"\x00", codeset=6))
    assert message.find(CauseIE) is None
    assert message.encode() == data


@pytest.mark.parametrize(
    ("data", "cause"),
    [
        (b"", 95),
        (b"\x08\x02", 95),
        (b"\x09\x02\x00\x01\x05", 95),  # not Q.931
        (b"\x08\x03\x00\x01\x02\x05", 81),  # call reference of 3 octets
        (b"\x08\x02\x00\x01", 95),  # no message type
        (b"\x08\x02\x00\x01\x85", 95),  # message type with bit 8
        (b"\x08\x02\x00\x01\x05\x04", 95),  # element without length
        (b"\x08\x02\x00\x01\x05\x04\x03\x88", 95),  # element overruns
        (b"\x08\x02\x00\x01\x05\x7e\x00", 95),  # user-user with a 1-octet length
        (b"\x08\x02\x00\x01\x05\x7e\x00\x05\x05", 95),
    ],
)
def test_malformed_messages(data: bytes, cause: int) -> None:
    with pytest.raises(H323ParseError) as info:
        q931.decode(data)
    assert info.value.cause == cause


@pytest.mark.parametrize("vector", VECTORS[:12], ids=lambda v: v.id)
def test_every_truncation_of_a_vector_fails_cleanly(vector: H323Vector) -> None:
    for size in range(len(vector.data)):
        try:
            message = q931.decode(vector.data[:size])
        except H323ParseError:
            continue
        assert message.encode() == vector.data[:size]


def test_usage_errors() -> None:
    with pytest.raises(H323UsageError):
        Q931Message(MessageType.SETUP, 0x8000).encode()
    with pytest.raises(H323UsageError):
        Q931Message(0x80, 1).encode()
    with pytest.raises(H323UsageError):
        q931.message(MessageType.SETUP, 1, [Display("x" * 256)]).encode()
    with pytest.raises(H323UsageError):
        q931.message(MessageType.SETUP, 1, [Display("Łódź")]).encode()
    with pytest.raises(H323UsageError):
        q931.message(MessageType.SETUP, 1, [SingleOctetIE(0x21)]).encode()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_raise_only_parse_errors(data: bytes) -> None:
    try:
        message = q931.decode(data)
    except H323ParseError:
        return
    assert message.encode() == data


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_mutated_vectors(data: st.DataObject) -> None:
    vector = data.draw(st.sampled_from(VECTORS))
    raw = bytearray(vector.data)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    try:
        message = q931.decode(bytes(raw))
    except H323ParseError:
        return
    assert message.encode() == bytes(raw)
