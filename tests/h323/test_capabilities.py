"""H.245 capabilities <-> SDP (gateway.h323.capabilities), checked against pycrate's PER.

Every H.245 value built here is encoded and decoded again (aligned PER through
gateway.h323.asn1) before it is read back: SDP -> TCS -> SDP for each codec, H.264
profile-level-id <-> H.241, a real Tandberg offer, and the capability sets real H.323
units sent in the shared captures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import VECTORS

from gateway.h323 import asn1, q931
from gateway.h323.asn1 import H245_PROTOCOL_ID
from gateway.h323.capabilities import (
    FS_UNIT,
    H241_CUSTOM_MAX_FS,
    H241_CUSTOM_MAX_MBPS,
    H241_LEVEL,
    H241_PROFILE,
    MBPS_UNIT,
    CapabilityError,
    MediaFormat,
    common_formats,
    data_type,
    format_events,
    format_from_channel,
    formats_from_tcs,
    formats_of,
    h241_parameters,
    h264_params,
    logical_channel_media,
    parse_events,
    sdp_media_from_tcs,
    terminal_capability_set,
)
from gateway.model.codecs import CatalogueError, default_catalogue, load_catalogue
from gateway.model.sdp import MediaDescription, SessionDescription

from .vectors import load_vectors, pdus

TANDBERG = VECTORS / "sip" / "tandberg-TE4.1.1-INVITE-h264-h263-bfcp.sip"
H264_OID = (0, 0, 8, 241, 0, 0, 1)


# --- helpers --------------------------------------------------------------------------


def pdu_round_trip(message: tuple[str, Any]) -> tuple[str, Any]:
    """Encode an H.245 message in aligned PER and decode it again (pycrate, via asn1)."""
    data = asn1.encode_h245(message)
    back = asn1.decode_h245(data)
    assert back == message, "the decoded value differs from the encoded one"
    return back


def tcs_round_trip(tcs: dict[str, Any]) -> dict[str, Any]:
    """The TCS as a peer would read it: encoded, decoded."""
    kind, (name, value) = pdu_round_trip(("request", ("terminalCapabilitySet", tcs)))
    assert (kind, name) == ("request", "terminalCapabilitySet")
    result: dict[str, Any] = value
    return result


def sdp_with(*media: str) -> SessionDescription:
    """A session description with the given ``m=`` sections (lines joined with CRLF)."""
    head = ["v=0", "o=- 1 1 IN IP4 192.0.2.1", "s=-", "c=IN IP4 192.0.2.1", "t=0 0"]
    return SessionDescription.parse("\r\n".join(head + list(media)) + "\r\n")


def tcs_of(sdp: SessionDescription) -> dict[str, Any]:
    return terminal_capability_set(sdp, sequence_number=1, protocol_identifier=H245_PROTOCOL_ID)


def summary(media: list[MediaDescription]) -> list[tuple[str, str, str | None]]:
    """(kind, rtpmap, fmtp) of every format, in order."""
    out: list[tuple[str, str, str | None]] = []
    for m in media:
        rtpmap = m.rtpmap()
        fmtp = m.fmtp()
        for pt in m.payload_types:
            encoding, clock, channels = rtpmap[pt]
            spec = f"{encoding}/{clock}" + (f"/{channels}" if channels > 1 else "")
            out.append((m.kind, spec, fmtp.get(pt)))
    return out


# --- SDP -> TCS -> SDP, codec by codec ----------------------------------------------------


@pytest.mark.parametrize(
    ("media", "expected", "ptime"),
    [
        (["m=audio 4000 RTP/AVP 8", "a=ptime:20"], [("audio", "PCMA/8000", None)], "20"),
        (["m=audio 4000 RTP/AVP 0", "a=ptime:30"], [("audio", "PCMU/8000", None)], "30"),
        (["m=audio 4000 RTP/AVP 9"], [("audio", "G722/8000", None)], "20"),
        (
            ["m=audio 4000 RTP/AVP 18", "a=fmtp:18 annexb=no", "a=ptime:40"],
            [("audio", "G729/8000", "annexb=no")],
            "40",
        ),
        (["m=audio 4000 RTP/AVP 18"], [("audio", "G729/8000", None)], "20"),
        (
            ["m=audio 4000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16"],
            [("audio", "PCMU/8000", None), ("audio", "telephone-event/8000", "0-16")],
            "20",
        ),
    ],
    ids=["PCMA", "PCMU-30ms", "G722", "G729-no-annexb", "G729-annexb", "PCMU+events"],
)
def test_audio_survives_sdp_tcs_sdp(
    media: list[str], expected: list[tuple[str, str, str | None]], ptime: str
) -> None:
    tcs = tcs_round_trip(tcs_of(sdp_with(*media)))
    back = sdp_media_from_tcs(tcs)
    assert summary(back) == expected
    assert back[0].get_attr("ptime") == ptime


def test_g729_announces_annex_a_and_annex_b_by_the_annexb_parameter() -> None:
    def names(fmtp: str | None) -> list[str]:
        lines = ["m=audio 4000 RTP/AVP 18"] + ([f"a=fmtp:18 {fmtp}"] if fmtp else [])
        table = tcs_of(sdp_with(*lines))["capabilityTable"]
        return [e["capability"][1][0] for e in table]

    # RFC 4856: annexb=yes by default; a decoder with Annex B also takes plain G.729.
    assert names(None) == ["g729", "g729AnnexA", "g729wAnnexB", "g729AnnexAwAnnexB"]
    assert names("annexb=no") == ["g729", "g729AnnexA"]
    table = tcs_of(sdp_with("m=audio 4000 RTP/AVP 18", "a=ptime:30"))["capabilityTable"]
    assert {e["capability"][1][1] for e in table} == {3}  # 10 ms frames (H.245 counts)


def test_telephone_events_become_rtp_events_and_user_input() -> None:
    sdp = sdp_with(
        "m=audio 4000 RTP/AVP 8 96",
        "a=rtpmap:96 telephone-event/8000",
        "a=fmtp:96 0-15",
    )
    tcs = tcs_round_trip(tcs_of(sdp))
    caps = [e["capability"] for e in tcs["capabilityTable"]]
    assert caps == [
        ("receiveAudioCapability", ("g711Alaw64k", 20)),
        (
            "receiveRTPAudioTelephonyEventCapability",
            {"dynamicRTPPayloadType": 96, "audioTelephoneEvent": "0-15"},
        ),
        ("receiveAndTransmitUserInputCapability", ("dtmf", 0)),
        ("receiveAndTransmitUserInputCapability", ("basicString", 0)),
    ]  # no hookflash: event 16 (flash) is not offered
    assert tcs["capabilityDescriptors"][0]["simultaneousCapabilities"] == [[1], [2], [3, 4]]
    assert parse_events("0-15,16") == frozenset(range(17))
    assert format_events(range(17)) == "0-16" and format_events([1, 3, 4]) == "1,3-4"


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        (
            ["m=video 4002 RTP/AVP 31", "a=fmtp:31 CIF=1;QCIF=1", "b=AS:384"],
            [("video", "H261/90000", "QCIF=1;CIF=1")],
        ),
        (
            ["m=video 4002 RTP/AVP 34", "a=fmtp:34 SQCIF=1;QCIF=1;CIF=2;CIF4=4"],
            [("video", "H263/90000", "SQCIF=1;QCIF=1;CIF=2;CIF4=4")],
        ),
        (
            ["m=video 4002 RTP/AVP 100", "a=rtpmap:100 H263-1998/90000", "a=fmtp:100 CIF=1"],
            [("video", "H263-1998/90000", "CIF=1")],
        ),
        (  # RFC 4587 4.1: no picture size means QCIF at MPI 1
            ["m=video 4002 RTP/AVP 31"],
            [("video", "H261/90000", "QCIF=1")],
        ),
        (
            [
                "m=video 4002 RTP/AVP 97",
                "a=rtpmap:97 H264/90000",
                "a=fmtp:97 profile-level-id=42e01f;packetization-mode=1",
            ],
            [("video", "H264/90000", "profile-level-id=42e01f;packetization-mode=1")],
        ),
        (
            [
                "m=video 4002 RTP/AVP 97",
                "a=rtpmap:97 H264/90000",
                "a=fmtp:97 profile-level-id=640028",
            ],
            [("video", "H264/90000", "profile-level-id=640028")],
        ),
    ],
    ids=["H261", "H263", "H263-1998", "H261-default-size", "H264-CB-mode1", "H264-High"],
)
def test_video_survives_sdp_tcs_sdp(
    media: list[str], expected: list[tuple[str, str, str | None]]
) -> None:
    tcs = tcs_round_trip(tcs_of(sdp_with(*media)))
    assert summary(sdp_media_from_tcs(tcs)) == expected


def test_h263_plus_is_told_from_h263_by_its_options() -> None:
    sdp = sdp_with(
        "m=video 4002 RTP/AVP 99 34",
        "a=rtpmap:99 H263-1998/90000",
        "a=fmtp:99 CIF=1",
        "a=fmtp:34 CIF=1",
    )
    table = tcs_round_trip(tcs_of(sdp))["capabilityTable"]
    plus, plain = (e["capability"][1] for e in table)
    assert plus[0] == plain[0] == "h263VideoCapability"
    assert "h263Options" in plus[1] and "h263Options" not in plain[1]


def test_video_rate_comes_from_sdp_in_h245_units_and_is_capped() -> None:
    sdp = sdp_with(
        "m=video 4002 RTP/AVP 31 34", "b=TIAS:2500000", "a=fmtp:31 CIF=1", "a=fmtp:34 CIF=1"
    )
    table = tcs_of(sdp)["capabilityTable"]
    h261, h263 = (e["capability"][1][1]["maxBitRate"] for e in table)
    assert (h261, h263) == (19200, 25000)  # 100 bit/s units; H.261 tops at 19200


# --- H.264 and H.241 ----------------------------------------------------------------------

H264 = default_catalogue().by_name("H264")
assert H264 is not None


def h241_value(profile: int, level: int, **custom: int) -> dict[str, Any]:
    collapsing = [
        {
            "parameterIdentifier": ("standard", H241_PROFILE),
            "parameterValue": ("booleanArray", profile),
        },
        {"parameterIdentifier": ("standard", H241_LEVEL), "parameterValue": ("unsignedMin", level)},
    ]
    ids = {"mbps": H241_CUSTOM_MAX_MBPS, "fs": H241_CUSTOM_MAX_FS}
    for name, amount in custom.items():
        collapsing.append(
            {
                "parameterIdentifier": ("standard", ids[name]),
                "parameterValue": ("unsignedMin", amount),
            }
        )
    return {
        "capabilityIdentifier": ("standard", H264_OID),
        "maxBitRate": 7680,
        "collapsing": collapsing,
    }


@pytest.mark.parametrize(
    ("pli", "profile", "level", "back"),
    [
        ("42e01f", 64, 71, "42e01f"),  # Constrained Baseline, level 3.1
        ("42801e", 64, 64, "42e01e"),  # Baseline level 3: H.241 has one Baseline bit
        ("4d0028", 32, 85, "4d0028"),  # Main, level 4
        ("640028", 8, 85, "640028"),  # High, level 4
        ("42f00b", 64, 19, "42f00b"),  # level 1b: level_idc 11 with constraint_set3
        ("64000b", 8, 22, "64000b"),  # High level 1.1 (no 1b meaning outside B/M/E)
    ],
)
def test_profile_level_id_and_h241_both_ways(pli: str, profile: int, level: int, back: str) -> None:
    assert H264 is not None
    bit, value, collapsing = h241_parameters([("profile-level-id", pli)], H264)
    assert (bit, value) == (profile, level)
    assert collapsing[0]["parameterIdentifier"] == ("standard", 41)
    assert collapsing[1]["parameterValue"] == ("unsignedMin", level)
    assert h264_params(h241_value(profile, level), H264) == [[("profile-level-id", back)]]


def test_custom_limits_in_h241_units_both_ways() -> None:
    assert H264 is not None
    params = [("profile-level-id", "42e01f"), ("max-mbps", "108000"), ("max-fs", "3600")]
    _, _, collapsing = h241_parameters(params, H264)
    custom = {p["parameterIdentifier"][1]: p["parameterValue"] for p in collapsing[2:]}
    # 500 MB/s and 256 MBs units, rounded up: 3600 macroblocks (720p) need 15 units.
    assert custom == {3: ("unsignedMin", 216), 4: ("unsignedMin", 15)}
    assert (MBPS_UNIT, FS_UNIT) == (500, 256)
    (back,) = h264_params(h241_value(64, 71, mbps=216, fs=15), H264)
    assert back == [("profile-level-id", "42e01f"), ("max-mbps", "108000"), ("max-fs", "3840")]


def test_several_profile_bits_give_one_sdp_format_each() -> None:
    assert H264 is not None
    formats = h264_params(h241_value(64 | 32 | 8, 64), H264)
    assert [f[0][1] for f in formats] == ["42e01e", "4d001e", "64001e"]


def test_a_profile_the_catalogue_lacks_is_refused() -> None:
    assert H264 is not None
    with pytest.raises(CapabilityError, match=r"no H\.241 value"):
        h241_parameters([("profile-level-id", "53001f")], H264)
    with pytest.raises(CapabilityError, match="hex"):
        h241_parameters([("profile-level-id", "zz")], H264)


def test_h264_packetization_modes_go_to_the_multiplex_capability() -> None:
    sdp = sdp_with(
        "m=video 4002 RTP/AVP 97 98",
        "a=rtpmap:97 H264/90000",
        "a=fmtp:97 profile-level-id=42e01f;packetization-mode=1",
        "a=rtpmap:98 H264/90000",
        "a=fmtp:98 profile-level-id=42e01f",
    )
    tcs = tcs_round_trip(tcs_of(sdp))
    mux = tcs["multiplexCapability"][1]["mediaPacketizationCapability"]
    assert [d["payloadDescriptor"] for d in mux["rtpPayloadType"]] == [
        ("oid", (0, 0, 8, 241, 0, 0, 0, 1)),
        ("oid", (0, 0, 8, 241, 0, 0, 0, 0)),
    ]
    assert len(tcs["capabilityTable"]) == 1  # one capability, two packetizations
    fmtps = [f for _, _, f in summary(sdp_media_from_tcs(tcs))]
    assert fmtps == ["profile-level-id=42e01f;packetization-mode=1", "profile-level-id=42e01f"]


# --- OpenLogicalChannel -------------------------------------------------------------------


def olc_for(fmt: MediaFormat, session: int) -> dict[str, Any]:
    kind = data_type(fmt)
    assert kind is not None
    params: dict[str, Any] = {"sessionID": session, **logical_channel_media(fmt)}
    return {
        "forwardLogicalChannelNumber": 1,
        "forwardLogicalChannelParameters": {
            "dataType": kind,
            "multiplexParameters": ("h2250LogicalChannelParameters", params),
        },
    }


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        (["m=audio 4000 RTP/AVP 0", "a=ptime:30"], ("audioData", ("g711Ulaw64k", 30))),
        (["m=audio 4000 RTP/AVP 18", "a=fmtp:18 annexb=no"], ("audioData", ("g729", 2))),
        (
            ["m=video 4002 RTP/AVP 34", "a=fmtp:34 CIF=1", "b=AS:512"],
            ("videoData", ("h263VideoCapability", "cifMPI", 1)),
        ),
        (
            [
                "m=video 4002 RTP/AVP 109",
                "a=rtpmap:109 H264/90000",
                "a=fmtp:109 profile-level-id=4d0028;packetization-mode=1;max-fs=8160",
                "b=AS:2048",
            ],
            ("videoData", ("genericVideoCapability", "maxBitRate", 20480)),
        ),
    ],
    ids=["PCMU", "G729", "H263", "H264"],
)
def test_open_logical_channel_data_type_round_trip(
    media: list[str], expected: tuple[Any, ...]
) -> None:
    (fmt,) = formats_of(sdp_with(*media).media[0])
    olc = olc_for(fmt, 1 if fmt.kind == "audio" else 2)
    back = asn1.decode_olc(asn1.encode_olc(olc))
    assert back == olc
    kind, choice = back["forwardLogicalChannelParameters"]["dataType"]
    if len(expected[1]) == 2:
        assert (kind, choice) == expected
    else:
        assert (kind, choice[0], choice[1][expected[1][1]]) == (expected[0], *expected[1][::2])
    read = format_from_channel(back["forwardLogicalChannelParameters"])
    assert read is not None and read.codec is fmt.codec
    assert read.payload_type == fmt.payload_type
    if fmt.codec.name == "H264":
        assert read.params == (*fmt.params[:1], ("max-fs", "8192"), ("packetization-mode", "1"))


def test_telephone_events_have_no_channel_of_their_own() -> None:
    sdp = sdp_with("m=audio 4000 RTP/AVP 101", "a=rtpmap:101 telephone-event/8000")
    (fmt,) = formats_of(sdp.media[0])
    assert data_type(fmt) is None


# --- a real SIP video unit ----------------------------------------------------------------


def tandberg_offer() -> SessionDescription:
    raw = TANDBERG.read_bytes()
    _, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        _, sep, body = raw.partition(b"\n\n")
    return SessionDescription.parse(body)


def test_the_tandberg_offer_becomes_a_tcs_that_pycrate_reads_back() -> None:
    tcs = tcs_round_trip(tcs_of(tandberg_offer()))
    caps = [e["capability"] for e in tcs["capabilityTable"]]
    audio = [c[1][0] for c in caps if c[0] == "receiveAudioCapability"]
    assert audio == [
        "g722-64k", "g729", "g729AnnexA", "g729wAnnexB", "g729AnnexAwAnnexB",
        "g711Alaw64k", "g711Ulaw64k",
    ]  # fmt: skip
    video = [c[1] for c in caps if c[0] == "receiveVideoCapability"]
    assert [v[0] for v in video] == [
        "genericVideoCapability", "h263VideoCapability", "h263VideoCapability",
        "h261VideoCapability",
    ]  # fmt: skip
    h264 = video[0][1]
    assert h264["capabilityIdentifier"] == ("standard", H264_OID)
    params = {p["parameterIdentifier"][1]: p["parameterValue"][1] for p in h264["collapsing"]}
    # 42800d: Baseline level 1.3; max-mbps 40500, max-fs 1344, max-br 906 (kbit/s).
    assert params == {41: 64, 42: 36, 3: 81, 4: 6, 6: 37}
    assert video[1][1]["cif4MPI"] == 2 and "h263Options" in video[1][1]  # H263-1998
    sets = tcs["capabilityDescriptors"][0]["simultaneousCapabilities"]
    assert len(sets) == 5  # audio, events, user input, main video, slides video
    # BFCP and H.224 (far-end camera control) are not H.245 media capabilities here.
    back = sdp_media_from_tcs(tcs)
    assert [m.kind for m in back] == ["audio", "video"]


def test_the_tandberg_offer_against_a_cisco_tcs_keeps_the_offer_order() -> None:
    cisco = next(tcs for name, tcs in captured_tcs() if name == "h245_alpha#16-h245")
    common = common_formats(tandberg_offer(), cisco)
    assert [(f.codec.name, f.payload_type) for f in common] == [
        ("G722", 9), ("G729", 18), ("PCMA", 8), ("PCMU", 0), ("telephone-event", 101),
    ]  # fmt: skip
    g729 = common[1]
    assert g729.param("annexb") == "yes" and g729.ptime == 20  # both take Annex B
    assert common[-1].events == "0-15"


# --- capability sets of real H.323 units --------------------------------------------------


def captured_tcs() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every TerminalCapabilitySet in the captures: separate H.245 channels and H.245
    tunnelled in H.225.0 (h245Control), decoded with pycrate."""
    for v in pdus("h245"):
        _, (name, value) = asn1.decode_h245(v.data)
        if name == "terminalCapabilitySet":
            yield v.id, value
    for v in pdus("q931"):
        try:
            uu = q931.decode(v.data).user_user
            pdu = asn1.decode_uuie(uu)["h323-uu-pdu"] if uu else {}
        except Exception:  # the malformed Setup of ndpi-h323 frame 65
            continue
        for tunnelled in pdu.get("h245Control", []):
            _, (name, value) = asn1.decode_h245(tunnelled)
            if name == "terminalCapabilitySet":
                yield v.id, value


def test_the_captures_hold_capability_sets_from_several_units() -> None:
    names = [name for name, _ in captured_tcs()]
    assert len(names) >= 20
    assert {n.split("#")[0] for n in names} >= {
        "ndpi-h323", "h245_alpha", "h245_signal", "h323_ss_hold_resume", "fax_t38_h323_ogw",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ndpi-h323#25-h245", ["m=audio 9 RTP/AVP 8", "a=rtpmap:8 PCMA/8000", "a=ptime:30"]),
        (
            "h245_alpha#16-h245",
            [
                "m=audio 9 RTP/AVP 9 0 8 18 96",
                "a=rtpmap:9 G722/8000",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:18 G729/8000",
                "a=rtpmap:96 telephone-event/8000",
                "a=fmtp:96 0-16",
                "a=ptime:20",
            ],
        ),
        (
            "h245_alpha#17-h245",
            [
                "m=audio 9 RTP/AVP 0 96",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:96 telephone-event/8000",
                "a=fmtp:96 0-15",
                "a=ptime:60",
            ],
        ),
    ],
)
def test_captured_capability_sets_become_sdp(name: str, expected: list[str]) -> None:
    tcs = dict(captured_tcs())[name]
    assert sdp_media_from_tcs(tcs)[0].serialize_lines() == expected


def test_every_captured_capability_set_maps_to_sdp_that_maps_back() -> None:
    for name, tcs in captured_tcs():
        media = sdp_media_from_tcs(tcs)
        if not tcs.get("capabilityTable"):
            assert media == [], name  # an empty TCS: the peer is on hold (H.323 8.4.6)
            continue
        # The SDP offer made from the TCS, once more as a TCS, names the same codecs
        # (SDP has one a=ptime per m= line: only the first audio codec keeps its own).
        again = tcs_round_trip(
            tcs_of(sdp_with(*(line for m in media for line in m.serialize_lines())))
        )
        first, second = formats_from_tcs(tcs), formats_from_tcs(again)
        assert [f.codec.name for f in first] == [f.codec.name for f in second], name
        assert first[0].ptime == second[0].ptime, name


def test_the_fast_start_channels_of_a_real_setup() -> None:
    setups = [v for v in load_vectors() if v.id == "fax_t38_h323_ogw#5-q931"]
    uu = q931.decode(setups[0].data).user_user
    assert uu is not None
    body = asn1.decode_uuie(uu)["h323-uu-pdu"]["h323-message-body"][1]
    channels = [asn1.decode_olc(raw) for raw in body["fastStart"]]
    forward = format_from_channel(channels[0]["forwardLogicalChannelParameters"])
    reverse = format_from_channel(channels[1]["reverseLogicalChannelParameters"])
    assert forward is not None and reverse is not None
    assert (forward.codec.name, forward.ptime, reverse.codec.name) == ("PCMU", 20, "PCMU")
    assert format_from_channel(channels[1]["forwardLogicalChannelParameters"]) is None


# --- choosing what both sides take -------------------------------------------------------


def test_common_formats_prefer_the_sdp_order_and_reduce_parameters() -> None:
    offer = sdp_with(
        "m=audio 4000 RTP/AVP 0 8 18 101",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "m=video 4002 RTP/AVP 97 31",
        "a=rtpmap:97 H264/90000",
        "a=fmtp:97 profile-level-id=42e01f;packetization-mode=1",
        "a=fmtp:31 CIF=1;QCIF=1",
    )
    theirs = tcs_of(
        sdp_with(
            "m=audio 4000 RTP/AVP 18 8",
            "a=fmtp:18 annexb=no",
            "a=ptime:40",
            "m=video 4002 RTP/AVP 96 31",
            "a=rtpmap:96 H264/90000",
            "a=fmtp:96 profile-level-id=42801e;packetization-mode=1",
            "a=fmtp:31 QCIF=2",
        )
    )
    common = common_formats(offer, tcs_round_trip(theirs))
    assert [(f.codec.name, f.payload_type) for f in common] == [
        ("PCMA", 8),
        ("G729", 18),
        ("H264", 97),
        ("H261", 31),
    ]  # fmt: skip  (no telephone events: the other side has no user input)
    assert common[0].ptime == 20
    assert common[1].param("annexb") == "no"
    assert common[2].param("profile-level-id") == "42e01e"  # the lower level, our profile
    assert common[2].param("packetization-mode") == "1"
    assert common[3].params == (("QCIF", "2"),)  # CIF only on our side; slower MPI


def test_a_picture_size_left_out_means_qcif_on_both_sides() -> None:
    # RFC 4587 4.1 / RFC 4629 8.1.1: a plain "m=video ... 31" (or 34) is QCIF at MPI 1,
    # and is announced so; the intersection must read it the same way, or such a kiosk
    # would never get a video channel.
    offer = sdp_with("m=video 4002 RTP/AVP 31 34")
    theirs = tcs_of(sdp_with("m=video 4002 RTP/AVP 34 31", "a=fmtp:31 CIF=1;QCIF=2"))
    common = common_formats(offer, tcs_round_trip(theirs))
    assert [(f.codec.name, f.params) for f in common] == [
        ("H261", (("QCIF", "2"),)),
        ("H263", (("QCIF", "1"),)),
    ]


def test_h264_needs_the_same_profile_and_packetization() -> None:
    offer = sdp_with(
        "m=video 4002 RTP/AVP 97",
        "a=rtpmap:97 H264/90000",
        "a=fmtp:97 profile-level-id=640028;packetization-mode=1",
    )
    baseline = tcs_of(
        sdp_with(
            "m=video 4 RTP/AVP 96", "a=rtpmap:96 H264/90000", "a=fmtp:96 profile-level-id=42e01f"
        )
    )
    assert common_formats(offer, baseline) == []


# --- the catalogue's H.245 fields ---------------------------------------------------------


@pytest.mark.parametrize(
    ("h245", "message"),
    [
        ("{capability: g711Ulaw64k, fmtp: {g729: annexb=no}}", "fmtp given for g729"),
        ("{capability: g711Ulaw64k, h241: {profiles: {66: 64}, levels: {10: 15}}}", "h241"),
        ("{capability: g711Ulaw64k, user_input_events: {dtmf: 'a-b'}}", "RFC 4733"),
        ("{capability: g711Ulaw64k, frame_ms: 0}", "frame_ms"),
        (
            "{capability: genericVideoCapability, oid: 0.0.8.241.0.0.1, "
            "h241: {profiles: {66: 3}, levels: {10: 15}}}",
            "powers of two",
        ),
    ],
)
def test_the_loader_checks_the_h245_fields(h245: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        "codecs:\n  - {name: X, kind: audio, encoding: X, clock_rate: 8000, channels: 1,\n"
        f"     payload_type: dynamic, h245: {h245}}}\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogueError, match=message):
        load_catalogue(path)
