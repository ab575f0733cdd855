"""The codec catalogue (codecs/catalogue.yaml): RFC 3551 facts, H.245 mappings, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import ROOT, VECTORS

from gateway.media.codecs import (
    DEFAULT_CATALOGUE,
    CatalogueError,
    default_catalogue,
    load_catalogue,
)
from gateway.model.sdp import MediaDescription, SessionDescription

# RFC 3551 tables 4 and 5 (the entries the catalogue carries).
RFC3551_STATIC = [
    (0, "PCMU", 8000, 1),
    (3, "GSM", 8000, 1),
    (4, "G723", 8000, 1),
    (5, "DVI4", 8000, 1),
    (6, "DVI4", 16000, 1),
    (8, "PCMA", 8000, 1),
    (9, "G722", 8000, 1),
    (10, "L16", 44100, 2),
    (11, "L16", 44100, 1),
    (13, "CN", 8000, 1),
    (15, "G728", 8000, 1),
    (18, "G729", 8000, 1),
    (31, "H261", 90000, None),
    (34, "H263", 90000, None),
]


def test_default_path_is_the_project_data_folder() -> None:
    assert DEFAULT_CATALOGUE == ROOT / "codecs" / "catalogue.yaml"
    assert default_catalogue() is default_catalogue()
    assert len(load_catalogue()) == len(default_catalogue()) >= 20


@pytest.mark.parametrize(("pt", "encoding", "clock", "channels"), RFC3551_STATIC)
def test_static_payload_types_follow_rfc3551(
    pt: int, encoding: str, clock: int, channels: int | None
) -> None:
    codec = default_catalogue().by_static_pt(pt)
    assert codec is not None
    assert (codec.encoding, codec.clock_rate, codec.channels) == (encoding, clock, channels)
    assert default_catalogue().from_rtpmap(encoding, clock, channels) is codec


def test_unassigned_and_dynamic_payload_types_have_no_static_codec() -> None:
    catalogue = default_catalogue()
    for pt in (1, 2, 19, 35, 96, 101, 127):
        assert catalogue.by_static_pt(pt) is None
    h264 = catalogue.by_name("h264")
    assert h264 is not None and h264.static_pt is None and h264.payload_type == "dynamic"


@pytest.mark.parametrize(
    ("capability", "oid", "name"),
    [
        ("g711Ulaw64k", None, "PCMU"),
        ("g711Alaw64k", None, "PCMA"),
        ("g722-64k", None, "G722"),
        ("g722-56k", None, "G722"),
        ("g7231", None, "G723"),
        ("g728", None, "G728"),
        ("g729", None, "G729"),
        ("g729AnnexA", None, "G729"),
        ("gsmFullRate", None, "GSM"),
        ("h261VideoCapability", None, "H261"),
        ("h263VideoCapability", None, "H263"),
        ("genericVideoCapability", "0.0.8.241.0.0.1", "H264"),
        ("genericAudioCapability", "0.0.7.7221.1.0", "G7221"),
        ("genericAudioCapability", "0.0.7.7221.1.1.0", "G7221C"),
        ("receiveRTPAudioTelephonyEventCapability", None, "telephone-event"),
    ],
)
def test_h245_mappings(capability: str, oid: str | None, name: str) -> None:
    codec = default_catalogue().by_h245(capability, oid)
    assert codec is not None and codec.name == name


def test_h245_details() -> None:
    catalogue = default_catalogue()
    event = catalogue.by_name("telephone-event")
    assert event is not None and event.h245 is not None
    assert event.h245.user_input == "dtmf"
    assert event.rtpmap == "telephone-event/8000" and event.fmtp == "0-15"
    assert catalogue.by_h245("genericVideoCapability") is None  # the OID is what matters
    assert catalogue.by_h245("h262VideoCapability") is None
    h263p = catalogue.by_name("H263-1998")
    assert h263p is not None and h263p.h245 is not None
    assert h263p.h245.capability == "h263VideoCapability"


def test_rtpmap_lookup_is_case_insensitive_and_checks_channels() -> None:
    catalogue = default_catalogue()
    opus = catalogue.from_rtpmap("OPUS", 48000)
    assert opus is not None and opus.rtpmap == "opus/48000/2"
    assert catalogue.from_rtpmap("opus", 48000, 2) is opus
    assert catalogue.from_rtpmap("opus", 48000, 1) is None
    assert catalogue.from_rtpmap("pcmu", 8000) is catalogue.by_name("PCMU")
    assert catalogue.from_rtpmap("PCMU", 16000) is None
    assert catalogue.from_rtpmap("MP4A-LATM", 90000) is None


def test_codecs_of_the_tandberg_offer() -> None:
    body = (VECTORS / "sip" / "tandberg-TE4.1.1-INVITE-h264-h263-bfcp.sip").read_bytes()
    sdp = SessionDescription.parse(body.split(b"\r\n\r\n", 1)[1])
    catalogue = default_catalogue()
    audio = {pt: c.name if c else None for pt, c in catalogue.codecs_for(sdp.media[0])}
    assert audio == {
        100: None,  # MP4A-LATM: not in the catalogue
        102: "G7221",
        103: "G7221",
        9: "G722",
        18: "G729",
        11: None,  # a=rtpmap:11 L16/16000 overrides the static 44100 Hz meaning
        8: "PCMA",
        0: "PCMU",
        101: "telephone-event",
    }
    video = [c.name if c else None for _, c in catalogue.codecs_for(sdp.media[1])]
    assert video == ["H264", "H264", "H263-1998", "H263", "H261"]
    assert catalogue.codecs_for(sdp.media[2]) == []  # BFCP, format "*"
    fecc = catalogue.codecs_for(sdp.media[4])
    assert [(pt, c.name if c else None) for pt, c in fecc] == [(104, "H224")]


def test_static_payload_type_without_rtpmap_resolves() -> None:
    media = MediaDescription("audio", 6000, "RTP/AVP", ["0", "19"])
    media.add_attr("rtpmap", "19 CN/8000")  # Cisco's pre-RFC 3551 number for CN
    resolved = [(pt, c.name if c else None) for pt, c in default_catalogue().codecs_for(media)]
    assert resolved == [(0, "PCMU"), (19, "CN")]


# --- validation --------------------------------------------------------------------------

GOOD = """\
codecs:
  - name: PCMU
    kind: audio
    encoding: PCMU
    clock_rate: 8000
    channels: 1
    payload_type: 0
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalogue.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_minimal_file_loads(tmp_path: Path) -> None:
    catalogue = load_catalogue(_write(tmp_path, GOOD))
    assert [c.name for c in catalogue] == ["PCMU"]


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        (GOOD + GOOD.split("\n", 1)[1], ["PCMU", "twice"]),
        (
            GOOD + GOOD.split("\n", 1)[1].replace("name: PCMU", "name: ULAW"),
            ["static payload type 0", "PCMU", "ULAW"],
        ),
        (GOOD.replace("payload_type: 0", "payload_type: 96"), ["codecs[0] (PCMU)", "0-95"]),
        (GOOD.replace("payload_type: 0", "payload_type: static"), ["codecs[0] (PCMU)", "dynamic"]),
        (GOOD.replace("    channels: 1\n", ""), ["codecs[0] (PCMU)", "needs channels"]),
        (GOOD.replace("kind: audio", "kind: video"), ["channels is only for audio"]),
        (GOOD.replace("kind: audio", "kind: sound"), ["codecs[0] (PCMU).kind"]),
        (GOOD.replace("clock_rate: 8000", "clock_rate: 0"), ["codecs[0] (PCMU).clock_rate"]),
        (GOOD.replace("clock_rate: 8000", "clock_rate: '8000'"), [".clock_rate", "integer"]),
        (GOOD.replace("clock_rate: 8000", "clockrate: 8000"), ["clockrate", "xtra"]),
        (GOOD + "    h245: {capability: genericAudioCapability}\n", ["needs an oid"]),
        (GOOD + "    h245: {capability: g711Ulaw64k, oid: 1.2.3}\n", ["not a generic"]),
        (GOOD + "    h245: {capability: g711Ulaw64k, oid: 1.2.x}\n", ["h245.oid"]),
        ("codecs: []\n", ["codecs", "at least 1"]),
        ("- just a list\n", ["top level"]),
    ],
)
def test_invalid_catalogues_name_the_entry_and_field(
    tmp_path: Path, text: str, fragments: list[str]
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    message = str(info.value)
    assert message.startswith(str(path))
    for fragment in fragments:
        assert fragment in message


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD + "  - name: [unclosed\n")
    with pytest.raises(CatalogueError, match=r"line \d+: not valid YAML"):
        load_catalogue(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "nope.yaml")
