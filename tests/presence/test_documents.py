"""Presence documents against the PIDF, data-model, RPID and dialog-info schemas.

The schemas in ``schemas/`` express RFC 3863, RFC 4479, RFC 4480 and RFC 4235; every
document the gateway can send for a partner or a station is checked against them, and
broken documents are shown to be refused (so the check can fail).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from gateway.partners.desk import Availability, StationState, Status
from gateway.partners.schedule import ClosedReason
from gateway.presence.documents import (
    DialogEntry,
    PresenceView,
    dialog_info_document,
    parse_pidf,
    pidf_document,
)
from gateway.presence.views import (
    PARTNER_ACTIVITIES,
    STATION_ACTIVITIES,
    availability_note,
)
from gateway.texts import text

SCHEMAS = Path(__file__).parent / "schemas"
PARIS_NOW = datetime(2026, 11, 22, 10, 0).astimezone()


@pytest.fixture(scope="module")
def pidf_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "presence-all.xsd")))


@pytest.fixture(scope="module")
def dialog_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "dialog-info.xsd")))


def valid(schema: etree.XMLSchema, body: bytes) -> bool:
    ok = schema.validate(etree.fromstring(body))
    return bool(ok)


@pytest.mark.parametrize("status", list(Status))
def test_every_partner_status_validates(pidf_schema: etree.XMLSchema, status: Status) -> None:
    av = Availability(
        "msa",
        status,
        queue_length=2 if status is Status.BUSY else 0,
        estimated_wait=600 if status is Status.BUSY else None,
        closed_reason=ClosedReason.HOLIDAY if status is Status.CLOSED else None,
        detail="Ascension" if status is Status.CLOSED else "",
        next_opening=PARIS_NOW.replace(day=26, hour=9) if status is Status.CLOSED else None,
    )
    note = availability_note(av, PARIS_NOW)
    body = pidf_document(
        PresenceView(
            "sip:msa@visio.example", status is Status.OPEN, note, PARTNER_ACTIVITIES[status]
        )
    )
    assert valid(pidf_schema, body), pidf_schema.error_log
    opened, got_note, activities = parse_pidf(body)
    assert opened is (status is Status.OPEN)
    assert got_note == note and activities == PARTNER_ACTIVITIES[status]


def test_notes_read_as_a_citizen_expects() -> None:
    busy = Availability("caf", Status.BUSY, queue_length=2, estimated_wait=600)
    assert availability_note(busy, PARIS_NOW) == "Occupé - 2 personnes en attente, environ 10 min"
    closed = Availability(
        "ft",
        Status.CLOSED,
        closed_reason=ClosedReason.OUTSIDE_HOURS,
        next_opening=PARIS_NOW.replace(day=26, hour=9),  # Thursday
    )
    assert availability_note(closed, PARIS_NOW) == "Fermé - ouvre jeudi à 9h00"
    booked = Availability(
        "ft",
        Status.CLOSED,
        closed_reason=ClosedReason.OUTSIDE_HOURS,
        next_opening=PARIS_NOW.replace(day=24, hour=14),  # Tuesday
        next_opening_appointment=True,
    )
    assert availability_note(booked, PARIS_NOW) == "Fermé - ouvre mardi à 14h00 sur rendez-vous"
    assert availability_note(Availability("x", Status.OPEN), PARIS_NOW) == "Disponible"


@pytest.mark.parametrize("state", list(StationState))
def test_every_station_state_validates(pidf_schema: etree.XMLSchema, state: StationState) -> None:
    body = pidf_document(
        PresenceView(
            "sip:caf-1@visio.example",
            state is StationState.IDLE,
            text(f"station_{state.value}"),
            STATION_ACTIVITIES[state],
            contact="sip:caf-1@127.0.0.1:5070",
            timestamp=datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        )
    )
    assert valid(pidf_schema, body), pidf_schema.error_log


def test_dialog_info_validates_and_counts_versions(dialog_schema: etree.XMLSchema) -> None:
    entries = [
        DialogEntry("c1", "early", "recipient", "abc@host", "t1", "t2", "sip:a@x", "sip:b@x"),
        DialogEntry("c2", "confirmed", "recipient", duration=42),
        DialogEntry("c3", "terminated", event="remote-bye"),
    ]
    for version in (0, 1, 17):
        body = dialog_info_document("sip:caf-1@visio.example", version, entries)
        assert valid(dialog_schema, body), dialog_schema.error_log
    empty = dialog_info_document("sip:caf@visio.example", 2, [], full=True)
    assert valid(dialog_schema, empty)
    with pytest.raises(ValueError):
        dialog_info_document("sip:caf@visio.example", -1, [])


def test_special_characters_are_escaped(pidf_schema: etree.XMLSchema) -> None:
    note = 'Fermé <b>& "ouvert"</b> bientôt'
    body = pidf_document(PresenceView("sip:a@b?x=1&y=2", True, note))
    assert b"<b>" not in body
    assert valid(pidf_schema, body)
    assert parse_pidf(body)[1] == note
    assert "Fermé".encode() in body  # UTF-8, not character references


def test_unknown_activity_and_naive_timestamp_refused() -> None:
    with pytest.raises(ValueError):
        PresenceView("sip:a@b", True, "x", ("flying",))
    with pytest.raises(ValueError):
        PresenceView("sip:a@b", True, "x", timestamp=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "broken",
    [
        # no entity attribute
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple id="t"><status>'
        b"<basic>open</basic></status></tuple></presence>",
        # basic must be open or closed
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="t">'
        b"<status><basic>busy</basic></status></tuple></presence>",
        # note before status
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"><tuple id="t">'
        b"<note>x</note><status><basic>open</basic></status></tuple></presence>",
        # an activity RPID does not define
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        b'xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" '
        b'xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@b">'
        b'<dm:person id="p"><rpid:activities><rpid:flying/></rpid:activities></dm:person>'
        b"</presence>",
    ],
)
def test_pidf_schema_refuses_broken_documents(pidf_schema: etree.XMLSchema, broken: bytes) -> None:
    assert not valid(pidf_schema, broken)


@pytest.mark.parametrize(
    "broken",
    [
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="x" state="full" '
        b'entity="sip:a@b"/>',
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" '
        b'entity="sip:a@b"><dialog id="d"><state>ringing</state></dialog></dialog-info>',
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" entity="sip:a@b"/>',
        b'<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" '
        b'entity="sip:a@b"><dialog id="d" direction="outbound"><state>early</state>'
        b"</dialog></dialog-info>",
    ],
)
def test_dialog_schema_refuses_broken_documents(
    dialog_schema: etree.XMLSchema, broken: bytes
) -> None:
    assert not valid(dialog_schema, broken)


def test_parse_pidf_refuses_garbage() -> None:
    for junk in (b"not xml", b"<other/>", b'<presence xmlns="urn:ietf:params:xml:ns:pidf"/>'):
        with pytest.raises(ValueError):
            parse_pidf(junk)
