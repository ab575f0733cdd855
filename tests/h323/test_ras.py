"""H.225.0 RAS state machines (gateway.h323.ras) on a fake clock, in memory.

The gatekeeper is fed the requests a kiosk would send; the client is run against
scripted answers and against our own gatekeeper through an in-memory network that can
lose datagrams. What the gateway puts on the wire is also shown to tshark.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.h323 import asn1, messages
from gateway.h323.asn1 import H225_PROTOCOL_ID
from gateway.h323.messages import Alias
from gateway.h323.ras import (
    REPLY_MEMORY,
    Admission,
    AdmissionConfirmed,
    AdmissionRejected,
    Admitted,
    ClientState,
    DisengageConfirmed,
    Disengaged,
    DisengageRequested,
    Gatekeeper,
    GatekeeperClient,
    GatekeeperRegistered,
    GatekeeperUnregistered,
    Located,
    NotLocated,
    Registered,
    RegistrationFailed,
    Unregistered,
)

from .test_asn1 import _assert_clean, _tshark, _udp

GK_RAS = ("192.0.2.1", 1719)
GW_SIGNAL = ("192.0.2.1", 1720)
KIOSK_RAS = ("192.0.2.50", 5001)
KIOSK_SIGNAL = ("192.0.2.50", 1720)
OTHER_RAS = ("192.0.2.51", 5001)
OTHER_SIGNAL = ("192.0.2.51", 1720)
KIOSK = Alias("kiosk1")
KIOSK_E164 = Alias("0233000001", "dialledDigits")
CALL_ID = bytes(range(16))
CONF_ID = bytes(range(16, 32))

Sent = list[tuple[str, dict[str, Any], tuple[str, int]]]


def sent(entity: Gatekeeper | GatekeeperClient) -> Sent:
    """What the entity queued, decoded: [(message name, value, destination)]."""
    out: Sent = []
    for data, dest in entity.datagrams_to_send():
        name, value = asn1.decode_ras(data)
        out.append((name, value, dest))
    return out


def only(entity: Gatekeeper | GatekeeperClient) -> tuple[str, dict[str, Any], tuple[str, int]]:
    (message,) = sent(entity)
    return message


def enc(name: str, body: dict[str, Any]) -> bytes:
    return asn1.encode_ras((name, body))


# --- requests as a kiosk sends them ------------------------------------------------


def grq(seq: int = 1, **extra: Any) -> bytes:
    return enc(
        "gatekeeperRequest",
        {
            "requestSeqNum": seq,
            "protocolIdentifier": H225_PROTOCOL_ID,
            "rasAddress": messages.transport_address(KIOSK_RAS),
            "endpointType": messages.endpoint_type(gateway=False),
            "endpointAlias": messages.aliases([KIOSK]),
            **extra,
        },
    )


def rrq(
    seq: int = 2,
    *,
    names: tuple[Alias, ...] = (KIOSK, KIOSK_E164),
    signal: tuple[str, int] | None = KIOSK_SIGNAL,
    ras: tuple[str, int] = KIOSK_RAS,
    ttl: int | None = None,
    keep_alive: bool = False,
    endpoint_id: str | None = None,
    **extra: Any,
) -> bytes:
    body: dict[str, Any] = {
        "requestSeqNum": seq,
        "protocolIdentifier": H225_PROTOCOL_ID,
        "discoveryComplete": True,
        "callSignalAddress": [messages.transport_address(signal)] if signal else [],
        "rasAddress": [messages.transport_address(ras)],
        "terminalType": messages.endpoint_type(gateway=False),
        "endpointVendor": messages.vendor(),
        "keepAlive": keep_alive,
        "willSupplyUUIEs": False,
        "maintainConnection": False,
        **extra,
    }
    if names:
        body["terminalAlias"] = messages.aliases(names)
    if ttl is not None:
        body["timeToLive"] = ttl
    if endpoint_id is not None:
        body["endpointIdentifier"] = endpoint_id
    return enc("registrationRequest", body)


def arq(
    endpoint_id: str,
    seq: int = 3,
    *,
    destination: tuple[Alias, ...] = (Alias("3230", "dialledDigits"),),
    answer: bool = False,
    bandwidth: int = 7680,
    call_id: bytes = CALL_ID,
) -> bytes:
    body: dict[str, Any] = {
        "requestSeqNum": seq,
        "callType": ("pointToPoint", 0),
        "callModel": ("direct", 0),
        "endpointIdentifier": endpoint_id,
        "srcInfo": messages.aliases([KIOSK]),
        "bandWidth": bandwidth,
        "callReferenceValue": 7,
        "conferenceID": CONF_ID,
        "activeMC": False,
        "answerCall": answer,
        "canMapAlias": True,
        "callIdentifier": {"guid": call_id},
        "willSupplyUUIEs": False,
    }
    if destination:
        body["destinationInfo"] = messages.aliases(destination)
    return enc("admissionRequest", body)


def drq(endpoint_id: str, seq: int = 4, call_id: bytes = CALL_ID) -> bytes:
    return enc(
        "disengageRequest",
        {
            "requestSeqNum": seq,
            "endpointIdentifier": endpoint_id,
            "conferenceID": CONF_ID,
            "callReferenceValue": 7,
            "disengageReason": ("normalDrop", 0),
            "callIdentifier": {"guid": call_id},
            "answeredCall": True,
        },
    )


def urq(endpoint_id: str | None, seq: int = 5) -> bytes:
    body: dict[str, Any] = {
        "requestSeqNum": seq,
        "callSignalAddress": [messages.transport_address(KIOSK_SIGNAL)],
    }
    if endpoint_id is not None:
        body["endpointIdentifier"] = endpoint_id
    return enc("unregistrationRequest", body)


def lrq(alias: Alias, seq: int = 6) -> bytes:
    return enc(
        "locationRequest",
        {
            "requestSeqNum": seq,
            "destinationInfo": messages.aliases([alias]),
            "replyAddress": messages.transport_address(OTHER_RAS),
        },
    )


def gatekeeper(**options: Any) -> Gatekeeper:
    return Gatekeeper(GK_RAS, GW_SIGNAL, **options)


def registered(gk: Gatekeeper, now: float = 0.0, **rrq_options: Any) -> str:
    """Register the kiosk; its endpointIdentifier."""
    gk.receive(rrq(**rrq_options), KIOSK_RAS, now)
    name, value, _ = only(gk)
    assert name == "registrationConfirm", value
    (event,) = gk.events()
    assert isinstance(event, Registered)
    endpoint_id: str = value["endpointIdentifier"]
    return endpoint_id


# --- gatekeeper: discovery and registration ------------------------------------------


def test_grq_is_confirmed_with_our_identifier_and_ras_address() -> None:
    gk = gatekeeper(identifier="vrgw")
    gk.receive(grq(), KIOSK_RAS, 0.0)
    name, value, dest = only(gk)
    assert name == "gatekeeperConfirm"
    assert dest == KIOSK_RAS
    assert value["requestSeqNum"] == 1
    assert value["gatekeeperIdentifier"] == "vrgw"
    assert messages.address_of(value["rasAddress"]) == GK_RAS
    assert gk.events() == []


def test_grq_for_another_gatekeeper_or_an_excluded_unit_is_rejected() -> None:
    gk = gatekeeper(allowed=lambda names: Alias("kiosk1") not in names)
    gk.receive(grq(1, gatekeeperIdentifier="other"), KIOSK_RAS, 0.0)
    name, value, _ = only(gk)
    assert (name, value["rejectReason"]) == ("gatekeeperReject", ("undefinedReason", 0))
    gk.receive(grq(2), KIOSK_RAS, 0.0)
    name, value, _ = only(gk)
    assert (name, value["rejectReason"]) == ("gatekeeperReject", ("terminalExcluded", 0))
    assert value["gatekeeperIdentifier"] == "vrgw"


def test_rrq_registers_h323_id_and_e164_aliases() -> None:
    gk = gatekeeper(time_to_live=300)
    gk.receive(rrq(ttl=600), KIOSK_RAS, 0.0)
    name, value, dest = only(gk)
    assert name == "registrationConfirm"
    assert dest == KIOSK_RAS
    assert value["timeToLive"] == 300  # capped
    assert value["gatekeeperIdentifier"] == "vrgw"
    assert value["terminalAlias"] == [("h323-ID", "kiosk1"), ("dialledDigits", "0233000001")]
    assert [messages.address_of(a) for a in value["callSignalAddress"]] == [GW_SIGNAL]
    endpoint_id = value["endpointIdentifier"]
    assert gk.events() == [
        Registered(endpoint_id, (KIOSK, KIOSK_E164), KIOSK_SIGNAL, KIOSK_RAS, 300)
    ]
    assert gk.lookup("kiosk1") == KIOSK_SIGNAL
    assert gk.lookup("0233000001") == KIOSK_SIGNAL
    assert gk.lookup(KIOSK_E164) == KIOSK_SIGNAL
    assert gk.lookup(Alias("kiosk1", "dialledDigits")) is None
    assert gk.lookup("nobody") is None
    assert gk.registrations[endpoint_id].aliases == (KIOSK, KIOSK_E164)


def test_a_shorter_time_to_live_asked_for_is_granted() -> None:
    gk = gatekeeper(time_to_live=300)
    gk.receive(rrq(ttl=60), KIOSK_RAS, 0.0)
    assert only(gk)[1]["timeToLive"] == 60


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"signal": None}, "invalidCallSignalAddress"),
        ({"names": ()}, "invalidAlias"),
        ({"gatekeeperIdentifier": "someone-else"}, "undefinedReason"),
    ],
)
def test_rrq_with_a_bad_value_gets_its_reject(options: dict[str, Any], reason: str) -> None:
    gk = gatekeeper()
    gk.receive(rrq(**options), KIOSK_RAS, 0.0)
    name, value, dest = only(gk)
    assert (name, value["rejectReason"]) == ("registrationReject", (reason, 0))
    assert value["requestSeqNum"] == 2 and dest == KIOSK_RAS
    assert gk.events() == [] and not gk.registrations
    assert gk.counters.rejected_values == 1


def test_aliases_of_other_kinds_do_not_count() -> None:
    gk = gatekeeper()
    transport_id = ("transportID", messages.transport_address(KIOSK_SIGNAL))
    gk.receive(rrq(names=(), terminalAlias=[transport_id]), KIOSK_RAS, 0.0)
    assert only(gk)[1]["rejectReason"] == ("invalidAlias", 0)
    gk.receive(
        rrq(3, names=(), terminalAlias=[transport_id, ("url-ID", "h323:k@x")]), KIOSK_RAS, 0.0
    )
    assert only(gk)[1]["terminalAlias"] == [("url-ID", "h323:k@x")]


def test_the_dialplan_may_refuse_a_unit() -> None:
    seen: list[tuple[Alias, ...]] = []

    def allowed(names: tuple[Alias, ...]) -> bool:
        seen.append(names)
        return KIOSK_E164 not in names

    gk = gatekeeper(allowed=allowed)
    gk.receive(rrq(), KIOSK_RAS, 0.0)
    name, value, _ = only(gk)
    assert (name, value["rejectReason"]) == ("registrationReject", ("invalidAlias", 0))
    assert seen == [(KIOSK, KIOSK_E164)]
    gk.receive(rrq(3, names=(KIOSK,)), KIOSK_RAS, 0.0)
    assert only(gk)[0] == "registrationConfirm"


def test_an_alias_held_by_another_unit_is_a_duplicate() -> None:
    gk = gatekeeper()
    first = registered(gk)
    gk.receive(rrq(names=(Alias("other"), KIOSK), signal=OTHER_SIGNAL), OTHER_RAS, 1.0)
    name, value, dest = only(gk)
    assert name == "registrationReject" and dest == OTHER_RAS
    assert value["rejectReason"] == ("duplicateAlias", [("h323-ID", "kiosk1")])
    assert gk.lookup("kiosk1") == KIOSK_SIGNAL and list(gk.registrations) == [first]


def test_the_same_unit_registering_afresh_keeps_its_identifier() -> None:
    gk = gatekeeper()
    first = registered(gk)
    gk.receive(rrq(9, names=(KIOSK,)), KIOSK_RAS, 5.0)  # a reboot, one alias fewer
    name, value, _ = only(gk)
    assert name == "registrationConfirm" and value["endpointIdentifier"] == first
    assert gk.events() == [Registered(first, (KIOSK,), KIOSK_SIGNAL, KIOSK_RAS, 300)]
    assert gk.lookup("0233000001") is None and gk.lookup("kiosk1") == KIOSK_SIGNAL


def test_registrations_beyond_the_limit_are_refused() -> None:
    gk = gatekeeper(max_registrations=1)
    registered(gk)
    gk.receive(rrq(names=(Alias("other"),), signal=OTHER_SIGNAL), OTHER_RAS, 0.0)
    assert only(gk)[1]["rejectReason"] == ("resourceUnavailable", 0)


def test_keep_alive_refreshes_the_time_to_live_and_expiry_unregisters() -> None:
    gk = gatekeeper(time_to_live=60, ttl_grace=5)
    endpoint_id = registered(gk, ttl=60)
    assert gk.next_deadline() == 65.0
    # H323Plus sends its keep-alive 5 s before the time to live runs out
    gk.receive(rrq(3, names=(), keep_alive=True, endpoint_id=endpoint_id, ttl=60), KIOSK_RAS, 55.0)
    name, value, _ = only(gk)
    assert name == "registrationConfirm" and value["endpointIdentifier"] == endpoint_id
    assert value["timeToLive"] == 60
    assert gk.events() == []  # a keep-alive is no news
    assert gk.next_deadline() == 120.0
    gk.on_timer(65.0)  # the first deadline went stale
    assert gk.lookup("kiosk1") == KIOSK_SIGNAL and gk.events() == [] and not sent(gk)
    gk.on_timer(119.9)
    assert gk.lookup("kiosk1") == KIOSK_SIGNAL
    gk.on_timer(120.0)
    assert gk.lookup("kiosk1") is None and not gk.registrations
    assert gk.events() == [Unregistered(endpoint_id, (KIOSK, KIOSK_E164), "ttlExpired")]
    name, value, dest = only(gk)  # told, in case it is still there
    assert name == "unregistrationRequest" and dest == KIOSK_RAS
    assert value["reason"] == ("ttlExpired", 0) and value["endpointIdentifier"] == endpoint_id


def test_keep_alive_of_an_unknown_endpoint_asks_for_a_full_registration() -> None:
    gk = gatekeeper()
    gk.receive(rrq(names=(), keep_alive=True, endpoint_id="42_vrgw"), KIOSK_RAS, 0.0)
    assert only(gk)[1]["rejectReason"] == ("fullRegistrationRequired", 0)


def test_urq_unregisters() -> None:
    gk = gatekeeper()
    endpoint_id = registered(gk)
    gk.receive(urq(endpoint_id), KIOSK_RAS, 1.0)
    name, value, _ = only(gk)
    assert (name, value) == ("unregistrationConfirm", {"requestSeqNum": 5})
    assert gk.events() == [Unregistered(endpoint_id, (KIOSK, KIOSK_E164), "unregistered")]
    assert gk.lookup("kiosk1") is None and gk.next_deadline() is None
    gk.receive(urq(endpoint_id, 6), KIOSK_RAS, 1.0)
    assert only(gk)[1]["rejectReason"] == ("notCurrentlyRegistered", 0)


def test_urq_without_endpoint_identifier_matches_the_call_signal_address() -> None:
    gk = gatekeeper()
    endpoint_id = registered(gk)
    gk.receive(urq(None), KIOSK_RAS, 1.0)
    assert only(gk)[0] == "unregistrationConfirm"
    assert gk.events() == [Unregistered(endpoint_id, (KIOSK, KIOSK_E164), "unregistered")]


def test_our_own_urq_is_retried_then_given_up() -> None:
    gk = gatekeeper()
    endpoint_id = registered(gk)
    assert gk.unregister(endpoint_id, 10.0)
    assert gk.events() == [Unregistered(endpoint_id, (KIOSK, KIOSK_E164), "gatekeeper")]
    name, value, dest = only(gk)
    assert name == "unregistrationRequest" and dest == KIOSK_RAS
    assert value["reason"] == ("maintenance", 0)
    assert gk.next_deadline() == 13.0  # H.225.0 7.9: 3 s for URQ
    gk.on_timer(13.0)
    gk.on_timer(16.0)
    assert [m[1] for m in sent(gk)] == [value, value]  # the same request, twice more
    gk.on_timer(19.0)
    assert not sent(gk) and gk.counters.timeouts == 1 and gk.counters.retransmissions == 2
    assert not gk.unregister(endpoint_id, 20.0)


def test_our_urq_confirmed_stops_the_retries() -> None:
    gk = gatekeeper()
    endpoint_id = registered(gk)
    gk.unregister(endpoint_id, 0.0)
    seq = only(gk)[1]["requestSeqNum"]
    gk.receive(enc("unregistrationConfirm", {"requestSeqNum": seq}), KIOSK_RAS, 1.0)
    assert gk.next_deadline() is None
    gk.on_timer(3.0)
    assert not sent(gk)


# --- gatekeeper: admissions, calls, location ----------------------------------------


def test_arq_is_admitted_gatekeeper_routed_through_the_gateway() -> None:
    gk = gatekeeper()
    endpoint_id = registered(gk)
    gk.receive(arq(endpoint_id), KIOSK_RAS, 1.0)
    name, value, _ = only(gk)
    assert name == "admissionConfirm"
    assert value["callModel"] == ("gatekeeperRouted", 0)
    assert messages.address_of(value["destCallSignalAddress"]) == GW_SIGNAL
    assert value["bandWidth"] == 7680
    (event,) = gk.events()
    assert event == Admitted(
        Admission(
            endpoint_id=endpoint_id,
            call_id=CALL_ID,
            conference_id=CONF_ID,
            call_reference=7,
            answer_call=False,
            source=(KIOSK,),
            destination=(Alias("3230", "dialledDigits"),),
            destination_address=None,
            bandwidth=7680,
        )
    )


def test_an_answering_arq_needs_no_destination_and_bandwidth_is_capped() -> None:
    gk = gatekeeper(max_bandwidth=3840)
    endpoint_id = registered(gk)
    gk.receive(arq(endpoint_id, destination=(), answer=True), KIOSK_RAS, 1.0)
    name, value, _ = only(gk)
    assert name == "admissionConfirm" and value["bandWidth"] == 3840
    (event,) = gk.events()
    assert isinstance(event, Admitted) and event.admission.answer_call


@pytest.mark.parametrize(
    ("endpoint", "destination", "policy", "reason"),
    [
        ("99_vrgw", (Alias("3230", "dialledDigits"),), None, "callerNotRegistered"),
        (None, (), None, "incompleteAddress"),
        (
            None,
            (Alias("3230", "dialledDigits"),),
            "calledPartyNotRegistered",
            "calledPartyNotRegistered",
        ),
    ],
)
def test_arq_rejects(
    endpoint: str | None, destination: tuple[Alias, ...], policy: str | None, reason: str
) -> None:
    gk = gatekeeper(admission=lambda admission: policy)
    endpoint_id = registered(gk)
    gk.receive(arq(endpoint or endpoint_id, destination=destination), KIOSK_RAS, 1.0)
    name, value, _ = only(gk)
    assert (name, value) == ("admissionReject", {"requestSeqNum": 3, "rejectReason": (reason, 0)})
    assert gk.events() == []


def test_an_admission_policy_reason_that_does_not_exist_falls_back() -> None:
    gk = gatekeeper(admission=lambda admission: "bored")
    gk.receive(arq(registered(gk)), KIOSK_RAS, 1.0)
    assert only(gk)[1]["rejectReason"] == ("undefinedReason", 0)


def test_drq_ends_an_admitted_call() -> None:
    gk = gatekeeper()
    endpoint_id = registered(gk)
    gk.receive(arq(endpoint_id), KIOSK_RAS, 1.0)
    sent(gk), gk.events()
    gk.receive(drq(endpoint_id), KIOSK_RAS, 2.0)
    assert only(gk)[:2] == ("disengageConfirm", {"requestSeqNum": 4})
    assert gk.events() == [Disengaged(endpoint_id, CALL_ID, "normalDrop")]
    gk.receive(drq(endpoint_id, 5), KIOSK_RAS, 3.0)  # an unknown call: DCF, no event
    assert only(gk)[0] == "disengageConfirm" and gk.events() == []
    gk.receive(drq("99_vrgw", 6), KIOSK_RAS, 3.0)
    assert only(gk)[1]["rejectReason"] == ("notRegistered", 0)


def test_calls_of_an_endpoint_that_goes_away_are_disengaged() -> None:
    gk = gatekeeper(time_to_live=30, ttl_grace=0)
    endpoint_id = registered(gk)
    gk.receive(arq(endpoint_id), KIOSK_RAS, 1.0)
    sent(gk), gk.events()
    gk.on_timer(30.0)
    assert gk.events() == [
        Disengaged(endpoint_id, CALL_ID, "ttlExpired"),
        Unregistered(endpoint_id, (KIOSK, KIOSK_E164), "ttlExpired"),
    ]


def test_brq() -> None:
    gk = gatekeeper(max_bandwidth=5000)
    endpoint_id = registered(gk)
    body = {
        "requestSeqNum": 8,
        "endpointIdentifier": endpoint_id,
        "conferenceID": CONF_ID,
        "callReferenceValue": 7,
        "bandWidth": 9000,
    }
    gk.receive(enc("bandwidthRequest", body), KIOSK_RAS, 1.0)
    assert only(gk)[:2] == ("bandwidthConfirm", {"requestSeqNum": 8, "bandWidth": 5000})
    unknown = body | {"requestSeqNum": 9, "endpointIdentifier": "x"}
    gk.receive(enc("bandwidthRequest", unknown), KIOSK_RAS, 1.0)
    name, value, _ = only(gk)
    assert name == "bandwidthReject" and value["rejectReason"] == ("notBound", 0)


def test_lrq_for_a_registered_alias_points_at_the_gateway() -> None:
    gk = gatekeeper()
    registered(gk)
    gk.receive(lrq(KIOSK_E164), OTHER_RAS, 1.0)
    name, value, dest = only(gk)
    assert name == "locationConfirm" and dest == OTHER_RAS  # its replyAddress
    assert messages.address_of(value["callSignalAddress"]) == GW_SIGNAL
    assert messages.address_of(value["rasAddress"]) == GK_RAS
    assert value["destinationInfo"] == [("h323-ID", "kiosk1"), ("dialledDigits", "0233000001")]
    gk.receive(lrq(Alias("nobody"), 7), ("192.0.2.99", 1719), 1.0)
    name, value, dest = only(gk)
    assert (name, value["rejectReason"], dest) == (
        "locationReject",
        ("requestDenied", 0),
        OTHER_RAS,
    )


def test_unsolicited_irr_is_acknowledged_when_asked() -> None:
    gk = gatekeeper()
    endpoint_id = registered(gk)

    def irr(seq: int, endpoint: str, need: bool) -> bytes:
        return enc(
            "infoRequestResponse",
            {
                "requestSeqNum": seq,
                "endpointType": messages.endpoint_type(gateway=False),
                "endpointIdentifier": endpoint,
                "rasAddress": messages.transport_address(KIOSK_RAS),
                "callSignalAddress": [messages.transport_address(KIOSK_SIGNAL)],
                "needResponse": need,
            },
        )

    gk.receive(irr(10, endpoint_id, False), KIOSK_RAS, 1.0)
    assert not sent(gk)
    gk.receive(irr(11, endpoint_id, True), KIOSK_RAS, 1.0)
    assert only(gk)[:2] == ("infoRequestAck", {"requestSeqNum": 11})
    gk.receive(irr(12, "nobody", True), KIOSK_RAS, 1.0)
    assert only(gk)[:2] == (
        "infoRequestNak",
        {"requestSeqNum": 12, "nakReason": ("notRegistered", 0)},
    )


def test_other_messages_get_xrs_rac_or_nothing() -> None:
    gk = gatekeeper()
    irq = enc("infoRequest", {"requestSeqNum": 20, "callReferenceValue": 0})
    gk.receive(irq, KIOSK_RAS, 0.0)  # a request a gatekeeper does not serve
    assert only(gk)[:2] == ("unknownMessageResponse", {"requestSeqNum": 20})
    rai = {
        "requestSeqNum": 21,
        "protocolIdentifier": H225_PROTOCOL_ID,
        "endpointIdentifier": "1_vrgw",
        "protocols": [("voice", {"supportedPrefixes": []})],
        "almostOutOfResources": False,
    }
    gk.receive(enc("resourcesAvailableIndicate", rai), KIOSK_RAS, 0.0)
    assert only(gk)[0] == "resourcesAvailableConfirm"
    gk.receive(enc("admissionConfirm", _acf(99)), KIOSK_RAS, 0.0)  # answers nothing
    assert not sent(gk) and gk.counters.unknown == 2


# --- gatekeeper: repeats and malformed input -----------------------------------------


def test_a_retransmitted_request_gets_the_same_reply_and_is_handled_once() -> None:
    gk = gatekeeper()
    endpoint_id = registered(gk)
    gk.receive(arq(endpoint_id), KIOSK_RAS, 1.0)
    first = gk.datagrams_to_send()
    assert len(gk.events()) == 1
    gk.receive(arq(endpoint_id), KIOSK_RAS, 4.0)
    assert gk.datagrams_to_send() == first and gk.events() == []
    assert gk.counters.repeated_requests == 1
    gk.on_timer(1.0 + REPLY_MEMORY)  # forgotten: the same number is a new request
    gk.receive(arq(endpoint_id), KIOSK_RAS, 1.0 + REPLY_MEMORY)
    assert len(gk.events()) == 1


@pytest.mark.parametrize("data", [b"", b"\x00", b"\xff" * 30, b"not RAS at all", rrq()[:9]])
def test_undecodable_datagrams_are_dropped_and_counted(
    data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    gk = gatekeeper()
    with caplog.at_level(logging.WARNING, logger="gateway.h323.ras"):
        for i in range(3):
            gk.receive(data, KIOSK_RAS, float(i))
        gk.receive(data, KIOSK_RAS, 61.0)
    assert gk.counters.malformed == 4
    assert not sent(gk) and gk.events() == []
    assert len(caplog.records) == 2  # once per source per minute


def test_malformed_traffic_does_not_disturb_registrations() -> None:
    gk = gatekeeper()
    gk.receive(b"\x0e\x00", KIOSK_RAS, 0.0)
    registered(gk, 0.5)
    assert gk.lookup("kiosk1") == KIOSK_SIGNAL


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_fuzz_mutated_requests_never_raise(data: st.DataObject) -> None:
    gk = gatekeeper()
    endpoint_id = registered(gk)
    sample = data.draw(
        st.sampled_from([grq(), rrq(7), arq(endpoint_id), drq(endpoint_id), urq(endpoint_id)])
    )
    raw = bytearray(sample)
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    gk.receive(bytes(raw), KIOSK_RAS, 1.0)
    for out, _ in gk.datagrams_to_send():
        asn1.decode_ras(out)  # whatever we answer is valid RAS
    gk.events()
    gk.on_timer(1000.0)


# --- client: scripted gatekeeper ------------------------------------------------------

GW_RAS = ("192.0.2.1", 1719)
PARTNER_GK = ("198.51.100.1", 1719)
PARTNER_GK_RAS2 = ("198.51.100.1", 11719)


def client(**options: Any) -> GatekeeperClient:
    return GatekeeperClient(GW_RAS, PARTNER_GK, GW_SIGNAL, ["vrgw", "3230"], **options)


def answer(cl: GatekeeperClient, name: str, body: dict[str, Any], now: float) -> None:
    cl.receive(enc(name, body), PARTNER_GK, now)


def _gcf(seq: int) -> dict[str, Any]:
    return {
        "requestSeqNum": seq,
        "protocolIdentifier": H225_PROTOCOL_ID,
        "gatekeeperIdentifier": "partnergk",
        "rasAddress": messages.transport_address(PARTNER_GK_RAS2),
    }


def _rcf(seq: int, ttl: int | None = 60) -> dict[str, Any]:
    body: dict[str, Any] = {
        "requestSeqNum": seq,
        "protocolIdentifier": H225_PROTOCOL_ID,
        "callSignalAddress": [],
        "gatekeeperIdentifier": "partnergk",
        "endpointIdentifier": "7_endp",
        "willRespondToIRR": False,
        "maintainConnection": False,
    }
    if ttl is not None:
        body["timeToLive"] = ttl
    return body


def _acf(seq: int) -> dict[str, Any]:
    return {
        "requestSeqNum": seq,
        "bandWidth": 1280,
        "callModel": ("direct", 0),
        "destCallSignalAddress": messages.transport_address(("198.51.100.7", 1720)),
        "willRespondToIRR": False,
        "uuiesRequested": dict.fromkeys(
            (
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
            ),
            False,
        ),
    }


def registered_client(now: float = 0.0, ttl: int | None = 60, **options: Any) -> GatekeeperClient:
    cl = client(**options)
    cl.register(now)
    name, value, dest = only(cl)
    assert (name, dest) == ("gatekeeperRequest", PARTNER_GK)
    answer(cl, "gatekeeperConfirm", _gcf(value["requestSeqNum"]), now)
    name, value, dest = only(cl)
    assert (name, dest) == ("registrationRequest", PARTNER_GK_RAS2)
    answer(cl, "registrationConfirm", _rcf(value["requestSeqNum"], ttl), now)
    assert cl.events() == [GatekeeperRegistered("partnergk", "7_endp", ttl, PARTNER_GK_RAS2)]
    assert cl.registered
    return cl


def test_client_discovers_then_registers_as_a_gateway() -> None:
    cl = client()
    cl.register(0.0)
    name, value, _ = only(cl)
    assert name == "gatekeeperRequest"
    assert value["endpointAlias"] == [("h323-ID", "vrgw"), ("dialledDigits", "3230")]
    assert "gateway" in value["endpointType"]
    assert messages.address_of(value["rasAddress"]) == GW_RAS
    assert cl.state is ClientState.DISCOVERING
    answer(cl, "gatekeeperConfirm", _gcf(value["requestSeqNum"]), 0.1)
    name, value, dest = only(cl)
    assert name == "registrationRequest" and dest == PARTNER_GK_RAS2  # the GCF's rasAddress
    assert value["discoveryComplete"] is True and value["keepAlive"] is False
    assert value["gatekeeperIdentifier"] == "partnergk"
    assert value["timeToLive"] == 300
    assert [messages.address_of(a) for a in value["callSignalAddress"]] == [GW_SIGNAL]
    assert [messages.address_of(a) for a in value["rasAddress"]] == [GW_RAS]
    assert "gateway" in value["terminalType"]
    answer(cl, "registrationConfirm", _rcf(value["requestSeqNum"]), 0.2)
    assert cl.events() == [GatekeeperRegistered("partnergk", "7_endp", 60, PARTNER_GK_RAS2)]
    assert (cl.endpoint_id, cl.state) == ("7_endp", ClientState.REGISTERED)
    cl.register(0.3)  # already registered: nothing
    assert not sent(cl)


def test_client_may_skip_discovery() -> None:
    cl = client(discover=False, gatekeeper_id="partnergk")
    cl.register(0.0)
    name, value, dest = only(cl)
    assert (name, dest) == ("registrationRequest", PARTNER_GK)
    assert value["discoveryComplete"] is False and value["gatekeeperIdentifier"] == "partnergk"


def test_grq_is_retried_per_h225_then_registration_backs_off() -> None:
    cl = client(backoff=5.0, max_backoff=12.0)
    cl.register(0.0)
    first = only(cl)
    assert cl.next_deadline() == 5.0  # H.225.0 7.9: GRQ 5 s, two retries
    cl.on_timer(5.0)
    cl.on_timer(10.0)
    assert [m[:2] for m in sent(cl)] == [first[:2], first[:2]]
    cl.on_timer(15.0)
    assert cl.events() == [RegistrationFailed("timeout", 20.0)]
    assert cl.state is ClientState.WAITING and not sent(cl)
    cl.on_timer(20.0)
    assert only(cl)[0] == "gatekeeperRequest"
    for t in (25.0, 30.0, 35.0):
        cl.on_timer(t)
    sent(cl)
    assert cl.events() == [RegistrationFailed("timeout", 45.0)]  # 10 s
    for t in (45.0, 50.0, 55.0, 60.0):
        cl.on_timer(t)
    sent(cl)
    assert cl.events() == [RegistrationFailed("timeout", 72.0)]  # capped at 12 s


def test_rrq_reject_backs_off_and_discovery_required_starts_over() -> None:
    cl = client()
    cl.register(0.0)
    answer(cl, "gatekeeperConfirm", _gcf(only(cl)[1]["requestSeqNum"]), 0.0)
    seq = only(cl)[1]["requestSeqNum"]
    rrj = {
        "requestSeqNum": seq,
        "protocolIdentifier": H225_PROTOCOL_ID,
        "rejectReason": ("discoveryRequired", 0),
    }
    answer(cl, "registrationReject", rrj, 1.0)
    assert cl.events() == [RegistrationFailed("discoveryRequired", 6.0)]
    cl.on_timer(6.0)
    assert only(cl)[0] == "gatekeeperRequest"


def test_rrq_is_retried_every_3_seconds() -> None:
    cl = client(discover=False)
    cl.register(0.0)
    only(cl)
    assert cl.next_deadline() == 3.0
    cl.on_timer(3.0)
    cl.on_timer(6.0)
    assert len(sent(cl)) == 2
    cl.on_timer(9.0)
    assert cl.events() == [RegistrationFailed("timeout", 14.0)]


def test_keep_alive_goes_before_the_time_to_live_runs_out() -> None:
    cl = registered_client(ttl=60)
    assert cl.next_deadline() == 45.0  # a quarter of the time to live before
    cl.on_timer(45.0)
    name, value, dest = only(cl)
    assert (name, dest) == ("registrationRequest", PARTNER_GK_RAS2)
    assert value["keepAlive"] is True
    assert value["endpointIdentifier"] == "7_endp" and value["timeToLive"] == 60
    assert "terminalAlias" not in value
    answer(cl, "registrationConfirm", _rcf(value["requestSeqNum"], 120), 46.0)
    assert cl.events() == [] and cl.keep_alives == 1
    assert cl.next_deadline() == 46.0 + 90.0  # 120 - 30 (the lead is at most 30 s)


def test_keep_alive_lead_and_no_ttl() -> None:
    cl = registered_client(ttl=60, keep_alive_lead=57)
    assert cl.next_deadline() == 3.0
    cl = registered_client(ttl=None)
    assert cl.next_deadline() is None  # no time to live: no keep-alive


def test_unanswered_keep_alive_loses_the_registration_then_registers_again() -> None:
    cl = registered_client(ttl=60)
    cl.on_timer(45.0)
    cl.on_timer(48.0)
    cl.on_timer(51.0)
    assert len(sent(cl)) == 3
    cl.on_timer(54.0)
    assert cl.events() == [GatekeeperUnregistered("timeout")]
    assert cl.state is ClientState.WAITING and cl.endpoint_id is None
    cl.on_timer(59.0)
    name, _, dest = only(cl)
    assert (name, dest) == ("gatekeeperRequest", PARTNER_GK)  # discovered afresh


def test_rejected_keep_alive_registers_fully_at_once() -> None:
    cl = registered_client(ttl=60)
    cl.on_timer(45.0)
    seq = only(cl)[1]["requestSeqNum"]
    rrj = {
        "requestSeqNum": seq,
        "protocolIdentifier": H225_PROTOCOL_ID,
        "rejectReason": ("fullRegistrationRequired", 0),
    }
    answer(cl, "registrationReject", rrj, 46.0)
    assert cl.events() == [GatekeeperUnregistered("fullRegistrationRequired")]
    cl.on_timer(46.0)
    name, value, _ = only(cl)
    assert name == "registrationRequest" and value["keepAlive"] is False
    assert value["terminalAlias"] == [("h323-ID", "vrgw"), ("dialledDigits", "3230")]


def test_unregister() -> None:
    cl = registered_client()
    cl.unregister(1.0)
    name, value, _ = only(cl)
    assert name == "unregistrationRequest" and value["endpointIdentifier"] == "7_endp"
    assert cl.state.value == "unregistering"
    answer(cl, "unregistrationConfirm", {"requestSeqNum": value["requestSeqNum"]}, 1.1)
    assert cl.events() == [GatekeeperUnregistered("unregistered")]
    assert cl.state is ClientState.IDLE and cl.next_deadline() is None


def test_unregister_while_registering_stops_quietly() -> None:
    cl = client()
    cl.register(0.0)
    sent(cl)
    cl.unregister(1.0)
    assert not sent(cl) and cl.state is ClientState.IDLE
    cl.on_timer(100.0)
    assert not sent(cl) and cl.events() == []


def test_admission_confirmed_rejected_and_timed_out() -> None:
    cl = registered_client()
    cl.admit(CALL_ID, CONF_ID, "station1", False, 1.0, call_reference=9)
    name, value, _ = only(cl)
    assert name == "admissionRequest"
    assert value["endpointIdentifier"] == "7_endp" and value["answerCall"] is False
    assert value["destinationInfo"] == [("h323-ID", "station1")]
    assert value["srcInfo"] == [("h323-ID", "vrgw"), ("dialledDigits", "3230")]
    assert value["callIdentifier"] == {"guid": CALL_ID} and value["callReferenceValue"] == 9
    answer(cl, "admissionConfirm", _acf(value["requestSeqNum"]), 1.5)
    assert cl.events() == [AdmissionConfirmed(CALL_ID, ("198.51.100.7", 1720), "direct", 1280)]

    other = bytes(16)
    cl.admit(other, CONF_ID, "0612345678", False, 2.0)
    name, value, _ = only(cl)
    assert value["destinationInfo"] == [("dialledDigits", "0612345678")]
    arj = {"requestSeqNum": value["requestSeqNum"], "rejectReason": ("calledPartyNotRegistered", 0)}
    answer(cl, "admissionReject", arj, 2.1)
    assert cl.events() == [AdmissionRejected(other, "calledPartyNotRegistered")]

    cl.admit(other, CONF_ID, "x", True, 3.0)
    assert only(cl)[1]["answerCall"] is True
    for t in (8.0, 13.0, 18.0):  # ARQ: 5 s, two retries
        cl.on_timer(t)
    assert len(sent(cl)) == 2
    assert cl.events() == [AdmissionRejected(other, "timeout")]


def test_admission_without_registration_is_rejected_at_once() -> None:
    cl = client()
    cl.admit(CALL_ID, CONF_ID, "station1", False, 0.0)
    assert cl.events() == [AdmissionRejected(CALL_ID, "callerNotRegistered")]
    assert not sent(cl)


def test_request_in_progress_holds_the_retries() -> None:
    cl = registered_client()
    cl.admit(CALL_ID, CONF_ID, "station1", False, 1.0)
    seq = only(cl)[1]["requestSeqNum"]
    answer(cl, "requestInProgress", {"requestSeqNum": seq, "delay": 20000}, 2.0)
    assert cl.next_deadline() == 22.0
    cl.on_timer(10.0)
    assert not sent(cl)
    answer(cl, "admissionConfirm", _acf(seq), 15.0)
    assert isinstance(cl.events()[0], AdmissionConfirmed)


def test_locate() -> None:
    cl = registered_client()
    cl.locate("station1", 1.0)
    name, value, _ = only(cl)
    assert name == "locationRequest" and value["endpointIdentifier"] == "7_endp"
    assert messages.address_of(value["replyAddress"]) == GW_RAS
    lcf = {
        "requestSeqNum": value["requestSeqNum"],
        "callSignalAddress": messages.transport_address(("198.51.100.7", 1720)),
        "rasAddress": messages.transport_address(("198.51.100.7", 1719)),
    }
    answer(cl, "locationConfirm", lcf, 1.1)
    assert cl.events() == [
        Located(Alias("station1"), ("198.51.100.7", 1720), ("198.51.100.7", 1719))
    ]
    cl.locate("0612", 2.0)
    seq = only(cl)[1]["requestSeqNum"]
    answer(cl, "locationReject", {"requestSeqNum": seq, "rejectReason": ("requestDenied", 0)}, 2.1)
    assert cl.events() == [NotLocated(Alias("0612", "dialledDigits"), "requestDenied")]
    cl.locate("gone", 3.0)
    sent(cl)
    for t in (8.0, 13.0, 18.0):
        cl.on_timer(t)
    assert cl.events() == [NotLocated(Alias("gone"), "timeout")]


def test_disengage() -> None:
    cl = registered_client()
    assert not cl.disengage(CALL_ID, 0.5)  # never admitted
    cl.admit(CALL_ID, CONF_ID, "station1", False, 1.0, call_reference=9)
    answer(cl, "admissionConfirm", _acf(only(cl)[1]["requestSeqNum"]), 1.1)
    cl.events()
    assert cl.disengage(CALL_ID, 5.0)
    name, value, _ = only(cl)
    assert name == "disengageRequest"
    assert (value["conferenceID"], value["callReferenceValue"]) == (CONF_ID, 9)
    answer(cl, "disengageConfirm", {"requestSeqNum": value["requestSeqNum"]}, 5.1)
    assert cl.events() == [DisengageConfirmed(CALL_ID, True)]


def test_the_gatekeepers_requests_are_answered() -> None:
    cl = registered_client()
    irq = {
        "requestSeqNum": 100,
        "callReferenceValue": 0,
        "replyAddress": messages.transport_address(PARTNER_GK_RAS2),
    }
    answer(cl, "infoRequest", irq, 1.0)
    name, value, dest = only(cl)
    assert (name, dest) == ("infoRequestResponse", PARTNER_GK_RAS2)
    assert value["endpointIdentifier"] == "7_endp"
    assert [messages.address_of(a) for a in value["callSignalAddress"]] == [GW_SIGNAL]

    brq = {
        "requestSeqNum": 101,
        "endpointIdentifier": "7_endp",
        "conferenceID": CONF_ID,
        "callReferenceValue": 1,
        "bandWidth": 640,
    }
    answer(cl, "bandwidthRequest", brq, 1.0)
    assert only(cl)[:2] == ("bandwidthConfirm", {"requestSeqNum": 101, "bandWidth": 640})

    cl.admit(CALL_ID, CONF_ID, "station1", False, 1.0)
    answer(cl, "admissionConfirm", _acf(only(cl)[1]["requestSeqNum"]), 1.1)
    cl.events()
    forced = {
        "requestSeqNum": 102,
        "endpointIdentifier": "7_endp",
        "conferenceID": CONF_ID,
        "callReferenceValue": 0,
        "disengageReason": ("forcedDrop", 0),
        "callIdentifier": {"guid": CALL_ID},
    }
    answer(cl, "disengageRequest", forced, 2.0)
    assert only(cl)[:2] == ("disengageConfirm", {"requestSeqNum": 102})
    assert cl.events() == [DisengageRequested(CALL_ID, "forcedDrop")]

    answer(cl, "gatekeeperRequest", {**_grq_body(103)}, 2.0)  # not ours to serve
    assert only(cl)[1]["rejectReason"] == ("undefinedReason", 0)

    gk_urq = {
        "requestSeqNum": 104,
        "callSignalAddress": [],
        "endpointIdentifier": "7_endp",
        "reason": ("maintenance", 0),
    }
    answer(cl, "unregistrationRequest", gk_urq, 3.0)
    assert only(cl)[:2] == ("unregistrationConfirm", {"requestSeqNum": 104})
    assert cl.events() == [GatekeeperUnregistered("maintenance")]
    cl.on_timer(3.0)
    assert only(cl)[0] == "gatekeeperRequest"  # registering again at once


def _grq_body(seq: int) -> dict[str, Any]:
    return {
        "requestSeqNum": seq,
        "protocolIdentifier": H225_PROTOCOL_ID,
        "rasAddress": messages.transport_address(PARTNER_GK),
        "endpointType": messages.endpoint_type(gateway=False),
    }


def test_urq_for_someone_else_is_rejected() -> None:
    cl = registered_client()
    body = {"requestSeqNum": 5, "callSignalAddress": [], "endpointIdentifier": "other"}
    answer(cl, "unregistrationRequest", body, 1.0)
    assert only(cl)[1]["rejectReason"] == ("notCurrentlyRegistered", 0)
    assert cl.registered and cl.events() == []


def test_stray_and_mismatched_answers_are_ignored() -> None:
    cl = registered_client()
    answer(cl, "admissionConfirm", _acf(999), 1.0)
    cl.locate("station1", 1.0)
    seq = only(cl)[1]["requestSeqNum"]
    answer(cl, "admissionConfirm", _acf(seq), 1.1)  # not an answer to an LRQ
    assert cl.events() == [] and cl.counters.unknown == 2
    cl.receive(b"\x00\x01garbage", PARTNER_GK, 1.2)
    assert cl.counters.malformed == 1 and cl.events() == [] and not sent(cl)


# --- client and gatekeeper together, over a lossy network ------------------------------


class Network:
    """Carries datagrams between RAS entities by address; ``drop`` loses some."""

    def __init__(self, drop: Callable[[int, bytes], bool] = lambda i, d: False) -> None:
        self.nodes: dict[tuple[str, int], Gatekeeper | GatekeeperClient] = {}
        self.drop = drop
        self.count = 0

    def run(self, now: float) -> None:
        moved = True
        while moved:
            moved = False
            for address, node in list(self.nodes.items()):
                for data, dest in node.datagrams_to_send():
                    moved = True
                    self.count += 1
                    if not self.drop(self.count, data) and dest in self.nodes:
                        self.nodes[dest].receive(data, address, now)

    def advance(self, start: float, end: float, step: float = 0.5) -> None:
        now = start
        while now <= end:
            for node in list(self.nodes.values()):
                deadline = node.next_deadline()
                if deadline is not None and deadline <= now:
                    node.on_timer(now)
            self.run(now)
            now += step


def test_client_registers_with_our_gatekeeper_through_losses() -> None:
    gk = Gatekeeper(GK_RAS, GW_SIGNAL, time_to_live=60)
    cl = GatekeeperClient(KIOSK_RAS, GK_RAS, KIOSK_SIGNAL, ["kiosk1"], time_to_live=60)
    lost = {1, 5}  # the first GRQ and the first RCF
    net = Network(lambda i, d: i in lost)
    net.nodes = {GK_RAS: gk, KIOSK_RAS: cl}
    cl.register(0.0)
    net.run(0.0)
    net.advance(0.5, 20.0)
    assert cl.registered and gk.lookup("kiosk1") == KIOSK_SIGNAL
    registrations = [e for e in gk.events() if isinstance(e, Registered)]
    assert len(registrations) == 1  # the repeated RRQ was answered from memory
    assert gk.counters.repeated_requests == 1
    net.advance(20.0, 200.0, 1.0)  # keep-alives every 45 s hold the registration
    assert cl.keep_alives == 4 and gk.lookup("kiosk1") == KIOSK_SIGNAL
    cl.locate("kiosk1", 200.0)
    cl.admit(CALL_ID, CONF_ID, "3230", False, 200.0)
    net.run(200.0)
    events = cl.events()
    assert Located(Alias("kiosk1"), GW_SIGNAL, GK_RAS) in events
    assert AdmissionConfirmed(CALL_ID, GW_SIGNAL, "gatekeeperRouted", 7680) in events
    cl.unregister(201.0)
    net.run(201.0)
    assert gk.lookup("kiosk1") is None and cl.state is ClientState.IDLE


# --- what we send, shown to tshark -----------------------------------------------------


def test_tshark_dissects_what_the_gatekeeper_and_client_send(tmp_path: Path) -> None:
    gk = gatekeeper()
    cl = GatekeeperClient(KIOSK_RAS, GK_RAS, KIOSK_SIGNAL, ["kiosk1", "0233000001"])
    datagrams: list[bytes] = []

    def take(entity: Gatekeeper | GatekeeperClient) -> None:
        for data, _ in entity.datagrams_to_send():
            datagrams.append(data)
            (gk if entity is cl else cl).receive(data, KIOSK_RAS if entity is cl else GK_RAS, 0.0)

    cl.register(0.0)
    for _ in range(3):
        take(cl)
        take(gk)
    cl.admit(CALL_ID, CONF_ID, "3230", False, 0.0)
    cl.locate("kiosk1", 0.0)
    cl.locate("nobody", 0.0)
    take(cl)
    take(gk)
    cl.disengage(CALL_ID, 0.0)
    take(cl)
    take(gk)
    gk.receive(rrq(names=(KIOSK,), signal=OTHER_SIGNAL), OTHER_RAS, 0.0)  # duplicate alias
    gk.receive(lrq(Alias("kiosk1")), OTHER_RAS, 0.0)
    datagrams += [d for d, _ in gk.datagrams_to_send()]
    gk.unregister(next(iter(gk.registrations)), 0.0)
    take(gk)
    take(cl)
    # the answers to the gatekeeper's IRQ and BRQ, and ours to what a gatekeeper ignores
    irq = {"requestSeqNum": 50, "callReferenceValue": 0}
    cl.receive(enc("infoRequest", irq), GK_RAS, 0.0)
    brq = {
        "requestSeqNum": 51,
        "endpointIdentifier": "x",
        "conferenceID": CONF_ID,
        "callReferenceValue": 1,
        "bandWidth": 640,
    }
    cl.receive(enc("bandwidthRequest", brq), GK_RAS, 0.0)
    gk.receive(enc("infoRequest", irq), KIOSK_RAS, 0.0)
    gk.receive(enc("bandwidthRequest", brq), KIOSK_RAS, 0.0)
    datagrams += [d for d, _ in cl.datagrams_to_send() + gk.datagrams_to_send()]
    outputs = _tshark(tmp_path, [_udp(40000, 1719, d) for d in datagrams])
    names = []
    for data, output in zip(datagrams, outputs, strict=True):
        name = asn1.decode_ras(data)[0]
        names.append(name)
        _assert_clean(output, f"RasMessage: {name} (")
    assert set(names) >= {
        "gatekeeperRequest",
        "gatekeeperConfirm",
        "registrationRequest",
        "registrationConfirm",
        "registrationReject",
        "admissionRequest",
        "admissionConfirm",
        "locationRequest",
        "locationConfirm",
        "locationReject",
        "disengageRequest",
        "disengageConfirm",
        "unregistrationRequest",
        "unregistrationConfirm",
        "infoRequestResponse",
        "bandwidthConfirm",
        "bandwidthReject",
        "unknownMessageResponse",
    }
