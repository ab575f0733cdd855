"""Presence documents: PIDF with RPID (RFC 3863, RFC 4479, RFC 4480) and dialog-info (RFC 4235).

Sans-IO builders on the standard library's ElementTree: every text and attribute goes
through the serializer, so notes and URIs can never inject markup.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

PIDF_CONTENT_TYPE = "application/pidf+xml"
DIALOG_INFO_CONTENT_TYPE = "application/dialog-info+xml"

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
DM_NS = "urn:ietf:params:xml:ns:pidf:data-model"
RPID_NS = "urn:ietf:params:xml:ns:pidf:rpid"
DIALOG_NS = "urn:ietf:params:xml:ns:dialog-info"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

# RFC 4480 3.2: the activity elements an <rpid:activities> may hold.
RPID_ACTIVITIES = frozenset(
    {
        "appointment",
        "away",
        "breakfast",
        "busy",
        "dinner",
        "holiday",
        "in-transit",
        "looking-for-work",
        "meal",
        "meeting",
        "on-the-phone",
        "performance",
        "permanent-absence",
        "playing",
        "presentation",
        "shopping",
        "sleeping",
        "spectator",
        "steering",
        "travel",
        "tv",
        "unknown",
        "vacation",
        "working",
        "worship",
    }
)

ET.register_namespace("dm", DM_NS)
ET.register_namespace("rpid", RPID_NS)


@dataclass(frozen=True, slots=True)
class PresenceView:
    """What one PIDF document says about one presentity."""

    entity: str
    open: bool
    note: str
    activities: tuple[str, ...] = ()
    contact: str | None = None
    timestamp: datetime | None = None
    tuple_id: str = "t1"
    person_id: str = "p1"
    lang: str = "fr"

    def __post_init__(self) -> None:
        unknown = [a for a in self.activities if a not in RPID_ACTIVITIES]
        if unknown:
            raise ValueError(f"not RPID activities (RFC 4480 3.2): {unknown}")
        if self.timestamp is not None and self.timestamp.utcoffset() is None:
            raise ValueError("a PIDF timestamp needs a UTC offset (RFC 3339)")


def _serialize(root: ET.Element, default_namespace: str) -> bytes:
    # ElementTree keeps one global prefix map; the gateway serializes on one thread, so
    # mapping the document's own namespace to no prefix just before writing is safe.
    # Unprefixed elements are what simple PIDF readers (PJSIP's among them) expect.
    ET.register_namespace("", default_namespace)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data


def pidf_document(view: PresenceView) -> bytes:
    """A PIDF document (RFC 3863 4) with a data-model person (RFC 4479) and RPID activities."""
    root = ET.Element(f"{{{PIDF_NS}}}presence", {"entity": view.entity})
    tup = ET.SubElement(root, f"{{{PIDF_NS}}}tuple", {"id": view.tuple_id})
    status = ET.SubElement(tup, f"{{{PIDF_NS}}}status")
    ET.SubElement(status, f"{{{PIDF_NS}}}basic").text = "open" if view.open else "closed"
    if view.contact is not None:
        ET.SubElement(tup, f"{{{PIDF_NS}}}contact").text = view.contact
    ET.SubElement(tup, f"{{{PIDF_NS}}}note", {XML_LANG: view.lang}).text = view.note
    if view.timestamp is not None:
        ET.SubElement(tup, f"{{{PIDF_NS}}}timestamp").text = view.timestamp.isoformat()
    person = ET.SubElement(root, f"{{{DM_NS}}}person", {"id": view.person_id})
    if view.activities:
        activities = ET.SubElement(person, f"{{{RPID_NS}}}activities")
        for name in view.activities:
            ET.SubElement(activities, f"{{{RPID_NS}}}{name}")
    ET.SubElement(person, f"{{{DM_NS}}}note", {XML_LANG: view.lang}).text = view.note
    return _serialize(root, PIDF_NS)


def parse_pidf(body: bytes) -> tuple[bool, str, tuple[str, ...]]:
    """(open, note, activities) of a PIDF document; ValueError when it is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise ValueError(f"not XML: {exc}") from None
    if root.tag != f"{{{PIDF_NS}}}presence":
        raise ValueError(f"not a PIDF document: root {root.tag}")
    basic = root.find(f"{{{PIDF_NS}}}tuple/{{{PIDF_NS}}}status/{{{PIDF_NS}}}basic")
    if basic is None or basic.text not in ("open", "closed"):
        raise ValueError("PIDF tuple without a valid basic status")
    note = root.find(f"{{{PIDF_NS}}}tuple/{{{PIDF_NS}}}note")
    activities = root.find(f"{{{DM_NS}}}person/{{{RPID_NS}}}activities")
    names = tuple(
        child.tag.rsplit("}", 1)[-1] for child in (activities if activities is not None else [])
    )
    return basic.text == "open", (note.text or "") if note is not None else "", names


DialogState = Literal["trying", "proceeding", "early", "confirmed", "terminated"]


@dataclass(frozen=True, slots=True)
class DialogEntry:
    """One dialog of a dialog-info document (RFC 4235 4.1.6)."""

    id: str
    state: DialogState
    direction: Literal["initiator", "recipient"] | None = None
    call_id: str | None = None
    local_tag: str | None = None
    remote_tag: str | None = None
    local_identity: str | None = None
    remote_identity: str | None = None
    event: str | None = None
    duration: int | None = None


def dialog_info_document(
    entity: str, version: int, dialogs: Sequence[DialogEntry], *, full: bool = True
) -> bytes:
    """A dialog-info document (RFC 4235 4.1): version counts documents sent (4.1.2)."""
    if version < 0:
        raise ValueError("dialog-info version is a non-negative integer")
    root = ET.Element(
        f"{{{DIALOG_NS}}}dialog-info",
        {"version": str(version), "state": "full" if full else "partial", "entity": entity},
    )
    for entry in dialogs:
        attrs = {"id": entry.id}
        for name, value in (
            ("call-id", entry.call_id),
            ("local-tag", entry.local_tag),
            ("remote-tag", entry.remote_tag),
            ("direction", entry.direction),
        ):
            if value is not None:
                attrs[name] = value
        dialog = ET.SubElement(root, f"{{{DIALOG_NS}}}dialog", attrs)
        state_attrs = {"event": entry.event} if entry.event else {}
        ET.SubElement(dialog, f"{{{DIALOG_NS}}}state", state_attrs).text = entry.state
        if entry.duration is not None:
            ET.SubElement(dialog, f"{{{DIALOG_NS}}}duration").text = str(entry.duration)
        for tag, identity in (("local", entry.local_identity), ("remote", entry.remote_identity)):
            if identity is not None:
                part = ET.SubElement(dialog, f"{{{DIALOG_NS}}}{tag}")
                ET.SubElement(part, f"{{{DIALOG_NS}}}identity").text = identity
    return _serialize(root, DIALOG_NS)
