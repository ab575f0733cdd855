"""SDP parsing and serialisation (RFC 8866) on real descriptions from real devices."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
from typing import Any

import pytest
from harness import VECTORS, tshark_output
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.model.sdp import (
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    TimeDescription,
)

TANDBERG = VECTORS / "sip" / "tandberg-TE4.1.1-INVITE-h264-h263-bfcp.sip"

# SDP bodies per capture, counted once by hand with tshark: a drop means extraction broke.
PCAPS = {
    "sip/sip_basic_do_183.pcapng": 3,
    "sip/sip_basic_eo_180.pcapng": 2,
    "sip/sip_dtmf_info.pcapng": 2,
    "sip/sip_dtmf_nte_rfc4733.pcapng": 2,
    "sip/sip_hold_resume.pcapng": 10,
    "sip/sip_prack_eo_180.pcapng": 2,
    "sip/sip_refer_transfer.pcapng": 5,
    "rtp/rtp_sip_g711ulaw_20ms.pcapng": 3,
    "rtp/rtp_sip_g722_h264.pcapng": 2,
}


def _collect_bodies(node: Any, out: list[bytes]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "sip.msg_body_raw":
                out.append(bytes.fromhex(value[0]))
            else:
                _collect_bodies(value, out)
    elif isinstance(node, list):
        for item in node:
            _collect_bodies(item, out)


@functools.cache
def sdp_bodies(relative: str) -> tuple[bytes, ...]:
    """The raw SDP bodies of a capture, from tshark's reassembled SIP message bodies."""
    dissected = tshark_output("-Y", "sdp", "-T", "json", "-x", capture=VECTORS / relative)
    bodies: list[bytes] = []
    _collect_bodies(json.loads(dissected), bodies)
    return tuple(bodies)


def tandberg_body() -> bytes:
    return TANDBERG.read_bytes().split(b"\r\n\r\n", 1)[1]


# --- real descriptions -------------------------------------------------------------------


@pytest.mark.parametrize("relative", sorted(PCAPS))
def test_every_captured_sdp_round_trips(relative: str) -> None:
    bodies = sdp_bodies(relative)
    assert len(bodies) == PCAPS[relative]
    for body in bodies:
        sdp = SessionDescription.parse(body)
        assert sdp.serialize() == body
        assert sdp.media, "every captured SDP carries at least one m= line"


def test_tandberg_video_invite() -> None:
    body = tandberg_body()
    sdp = SessionDescription.parse(body)
    assert sdp.serialize() == body
    assert sdp.origin == Origin(
        username="tandberg",
        sess_id="2",
        sess_version=1,
        nettype="IN",
        addrtype="IP4",
        address="10.44.10.2",
    )
    assert sdp.connection == Connection(address="10.44.10.2")
    assert sdp.bandwidths == [("AS", 1152)]
    assert [(m.kind, m.port, m.proto) for m in sdp.media] == [
        ("audio", 2326, "RTP/AVP"),
        ("video", 2328, "RTP/AVP"),
        ("application", 5070, "UDP/BFCP"),
        ("video", 2330, "RTP/AVP"),
        ("application", 2332, "RTP/AVP"),
    ]
    audio, main, bfcp, slides, h224 = sdp.media
    assert audio.payload_types == [100, 102, 103, 9, 18, 11, 8, 0, 101]
    assert audio.rtpmap()[101] == ("telephone-event", 8000, 1)
    assert audio.rtpmap()[11] == ("L16", 16000, 1)
    assert audio.fmtp()[18] == "annexb=yes"
    assert len(audio.get_attrs("crypto")) == 3
    assert audio.bandwidths == [("TIAS", 64000)]
    assert main.rtpmap()[99] == ("H263-1998", 90000, 1)
    assert "packetization-mode=1" in main.fmtp()[98]
    assert main.get_attr("rtcp-fb") == "* nack pli"
    assert main.get_attr("content") == "main"
    assert slides.get_attr("content") == "slides"
    assert bfcp.formats == ["*"] and bfcp.payload_types == []
    assert bfcp.get_attr("floorctrl") == "c-s"
    assert h224.rtpmap() == {104: ("H224", 4800, 1)}
    assert all(sdp.effective_direction(m) is Direction.SENDRECV for m in sdp.media)
    assert bfcp.direction is None  # nothing stated on the BFCP line itself


def test_cisco_hold_with_unspecified_address() -> None:
    held = [
        SessionDescription.parse(b)
        for b in sdp_bodies("sip/sip_hold_resume.pcapng")
        if b"a=inactive" in b
    ]
    assert len(held) == 4
    old_style = [s for s in held if s.connection and s.connection.is_unspecified]
    assert len(old_style) == 2
    for sdp in held:
        assert sdp.effective_direction(sdp.media[0]) is Direction.INACTIVE


def test_refer_capture_keeps_odd_spacing_and_sendonly() -> None:
    bodies = [SessionDescription.parse(b) for b in sdp_bodies("sip/sip_refer_transfer.pcapng")]
    opus = bodies[0].media[0]
    assert opus.rtpmap()[114] == ("opus", 48000, 2)
    # "a=fmtp:114  maxplaybackrate=..." has two spaces; the helper strips, the line stays
    assert opus.fmtp()[114].startswith("maxplaybackrate=16000;")
    assert opus.get_attrs("fmtp")[0].startswith("114  maxplaybackrate=16000;")
    directions = [b.effective_direction(b.media[0]) for b in bodies]
    assert Direction.SENDONLY in directions and Direction.RECVONLY in directions


def test_cisco_video_feedback_attributes() -> None:
    offer, answer = (
        SessionDescription.parse(b) for b in sdp_bodies("rtp/rtp_sip_g722_h264.pcapng")
    )
    video = answer.media[1]
    assert video.rtpmap() == {100: ("H264", 90000, 1)}
    assert video.get_attrs("rtcp-fb") == ["* nack pli", "* ccm fir", "* ccm tmmbr"]
    assert offer.media[1].payload_types == [100, 126, 97]
    assert offer.bandwidths == [("TIAS", 4000000), ("AS", 4000)]


# --- line ends, unknown lines, multicast ------------------------------------------------

MINIMAL = (
    b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=sendonly\r\n"
)


def test_bare_lf_is_accepted_and_written_back_as_crlf() -> None:
    sdp = SessionDescription.parse(MINIMAL.replace(b"\r\n", b"\n"))
    assert sdp.serialize() == MINIMAL


def test_missing_final_line_end_and_blank_lines_are_tolerated() -> None:
    sloppy = MINIMAL.rstrip(b"\r\n").replace(b"t=0 0\r\n", b"t=0 0\r\n\r\n")
    assert SessionDescription.parse(sloppy).serialize() == MINIMAL


def test_unknown_line_types_keep_their_place() -> None:
    text = (
        b"v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\ny=session extension\r\n"
        b"c=IN IP4 192.0.2.1\r\nt=0 0\r\na=tool:x\r\nq=after attributes\r\n"
        b"m=audio 4000 RTP/AVP 0\r\nx=right after m\r\na=rtpmap:0 PCMU/8000\r\n"
        b"w=between\r\na=ptime:20\r\n"
    )
    sdp = SessionDescription.parse(text)
    assert sdp.serialize() == text
    assert [line for _, line in sdp.extra_lines] == ["y=session extension", "q=after attributes"]
    assert [line for _, line in sdp.media[0].extra_lines] == ["x=right after m", "w=between"]


def test_multicast_connections_round_trip() -> None:
    text = (
        b"v=0\r\no=jdoe 3724394400 3724394405 IN IP4 198.51.100.1\r\ns=Call to John Smith\r\n"
        b"i=SDP Offer #1\r\nu=http://www.jdoe.example.com/home.html\r\n"
        b"e=Jane Doe <jane@jdoe.example.com>\r\np=+1 617 555-6011\r\n"
        b"c=IN IP4 233.252.0.1/127/3\r\nb=CT:128\r\nt=2873397496 2873404696\r\n"
        b"r=7d 1h 0 25h\r\nz=2882844526 -1h 2898848070 0\r\nk=prompt\r\na=recvonly\r\n"
        b"m=audio 49170/2 RTP/AVP 0\r\ni=voice\r\nc=IN IP6 ff1e:db8::1/3\r\n"
        b"c=IN IP6 ff1e:db8::2\r\nb=AS:64\r\nk=prompt\r\n"
    )
    sdp = SessionDescription.parse(text)
    assert sdp.serialize() == text
    assert sdp.connection == Connection(address="233.252.0.1", ttl=127, num=3)
    media = sdp.media[0]
    assert media.port_count == 2
    assert media.connection == Connection("IN", "IP6", address="ff1e:db8::1", num=3)
    assert media.extra_connections == [Connection("IN", "IP6", address="ff1e:db8::2")]
    assert sdp.times == [
        TimeDescription(start=2873397496, stop=2873404696, repeats=["7d 1h 0 25h"])
    ]
    assert sdp.effective_direction(media) is Direction.RECVONLY


def test_building_a_description_from_scratch() -> None:
    origin = Origin(
        username="vrgw",
        sess_id="42",
        sess_version=1,
        nettype="IN",
        addrtype="IP4",
        address="192.0.2.9",
    )
    sdp = SessionDescription(0, origin, "visio-relais")
    sdp.connection = Connection.for_address("192.0.2.9")
    audio = MediaDescription("audio", 30000, "RTP/AVP", ["0", "101"])
    audio.add_attr("rtpmap", "101 telephone-event/8000")
    audio.set_direction("recvonly")
    sdp.media.append(audio)
    assert sdp.serialize() == (
        b"v=0\r\no=vrgw 42 1 IN IP4 192.0.2.9\r\ns=visio-relais\r\nc=IN IP4 192.0.2.9\r\n"
        b"t=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        b"a=recvonly\r\n"
    )
    assert Connection.for_address("2001:db8::1").addrtype == "IP6"


# --- helpers -----------------------------------------------------------------------------


def test_attribute_helpers() -> None:
    media = SessionDescription.parse(MINIMAL).media[0]
    assert media.get_attr("sendonly") == ""
    assert media.get_attr("rtpmap") == "0 PCMU/8000"
    assert media.get_attr("fmtp") is None
    assert media.has_attr("rtpmap") and not media.has_attr("ptime")
    media.add_attr("candidate", "1 1 UDP 1 192.0.2.1 4000 typ host")
    media.add_attr("ice-ufrag", "abcd")
    assert media.remove_attrs(["candidate", "ice-ufrag", "ice-pwd"]) == 2
    assert media.remove_attrs("ice-pwd") == 0
    assert [a for a, _ in media.attributes] == ["rtpmap", "sendonly"]


def test_set_direction_replaces_in_place_and_drops_duplicates() -> None:
    media = SessionDescription.parse(MINIMAL).media[0]
    media.add_attr("ptime", "20")
    media.add_attr("inactive")  # a contradictory second direction from a broken peer
    media.set_direction(Direction.SENDRECV)
    assert media.attributes == [("rtpmap", "0 PCMU/8000"), ("sendrecv", None), ("ptime", "20")]
    with pytest.raises(ValueError):
        media.set_direction("sideways")


def test_effective_direction_falls_back_to_session_then_sendrecv() -> None:
    sdp = SessionDescription.parse(MINIMAL)
    media = sdp.media[0]
    assert sdp.effective_direction(media) is Direction.SENDONLY
    media.remove_attrs(["sendonly"])
    assert sdp.effective_direction(media) is Direction.SENDRECV
    sdp.set_direction(Direction.INACTIVE)
    assert sdp.direction is Direction.INACTIVE
    assert sdp.effective_direction(media) is Direction.INACTIVE
    assert [d.reverse for d in Direction] == [
        Direction.SENDRECV,
        Direction.RECVONLY,
        Direction.SENDONLY,
        Direction.INACTIVE,
    ]


def test_optional_fields_are_given_by_keyword() -> None:
    media = MediaDescription("audio", 4000, "RTP/AVP", ["0"], port_count=2)
    assert media.serialize_lines()[0] == "m=audio 4000/2 RTP/AVP 0"
    with pytest.raises(TypeError):
        MediaDescription("audio", 4000, "RTP/AVP", ["0"], 2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Origin("-", "0", 0, "IN", "IP4", "0.0.0.0")  # type: ignore[misc]
    with pytest.raises(TypeError):
        TimeDescription(0, 0)  # type: ignore[misc]


def test_copies_share_only_immutable_parts() -> None:
    sdp = SessionDescription.parse(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
        b"m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n"
    )
    clone = sdp.copy()
    assert clone == sdp and clone.connection is sdp.connection  # Connection is frozen
    clone.origin.sess_version += 1
    clone.times[0].repeats.append("7d 1h 0 25h")
    clone.media[0].attributes.append(("ptime", "20"))
    assert sdp.origin.sess_version == 1 and sdp.times[0].repeats == []
    assert sdp.media[0].attributes == [("sendrecv", None)]


def test_rtpmap_skips_malformed_values() -> None:
    media = MediaDescription("audio", 4000, "RTP/AVP", ["0", "96", "97", "98"])
    media.attributes = [
        ("rtpmap", "0 PCMU/8000"),
        ("rtpmap", "96 opus/48000/2"),
        ("rtpmap", "97 broken"),
        ("rtpmap", "x PCMA/8000"),
        ("rtpmap", "300 L16/8000"),
        ("rtpmap", None),
        ("fmtp", "96 useinbandfec=1"),
        ("fmtp", "* anything"),
    ]
    assert media.rtpmap() == {0: ("PCMU", 8000, 1), 96: ("opus", 48000, 2)}
    assert media.fmtp() == {96: "useinbandfec=1"}


def test_copy_is_deep_and_bump_version() -> None:
    original = SessionDescription.parse(tandberg_body())
    clone = original.copy()
    assert clone == original and clone.serialize() == original.serialize()
    clone.bump_version()
    assert clone.connection is not None and clone.media[0].connection is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        clone.connection.address = "203.0.113.5"  # type: ignore[misc]
    clone.connection = Connection.for_address("203.0.113.5")  # shared, so replaced
    clone.media[1].port = 1
    clone.media[1].attributes.clear()
    clone.media[1].formats.append("127")
    clone.times[0].repeats.append("1d 1h 0")
    assert original.serialize() == tandberg_body()
    assert clone.origin.sess_version == original.origin.sess_version + 1


# --- errors ------------------------------------------------------------------------------

HEAD = "v=0\no=- 1 2 IN IP4 192.0.2.1\ns=-\n"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("o=- 1 2 IN IP4 192.0.2.1\nv=0\n", 1, "starts with v="),
        ("v=1\n", 1, "only v=0"),
        ("v=0\no=- 1 IN IP4 192.0.2.1\n", 2, "o= needs 6 fields"),
        ("v=0\no=- 1 two IN IP4 192.0.2.1\n", 2, "sess-version must be a decimal"),
        (HEAD + "t=0 0\nm=audio abc RTP/AVP 0\n", 5, "m= port must be a decimal"),
        (HEAD + "m=audio 70000 RTP/AVP 0\n", 4, "out of range"),
        (HEAD + "m=audio 4000/0 RTP/AVP 0\n", 4, "at least 1"),
        (HEAD + "m=audio\n", 4, "m= needs at least"),
        (HEAD + "c=IN IP4\n", 4, "c= needs 3 fields"),
        (HEAD + "c=IN IP4 233.252.0.1/x\n", 4, "c= ttl"),
        (HEAD + "c=IN IP6 ff1e::1/1/2\n", 4, "malformed multicast"),
        (HEAD + "c=IN IP4 192.0.2.1\nc=IN IP4 192.0.2.2\n", 5, "second session-level c="),
        (HEAD + "b=AS64\n", 4, "b= must be"),
        (HEAD + "b=AS:lots\n", 4, "b= bandwidth"),
        (HEAD + "t=0\n", 4, "t= needs start and stop"),
        (HEAD + "r=7d 1h 0 25h\n", 4, "r= line before any t="),
        (HEAD + "t=0 0\nm=audio 4000 RTP/AVP 0\no=- 1 2 IN IP4 192.0.2.1\n", 6, "not allowed"),
        (HEAD + "t=0 0\nm=audio 4000 RTP/AVP 0\nt=0 0\n", 6, "not allowed"),
        (HEAD + "s=again\n", 4, "second s="),
        (HEAD + "a=:value\n", 4, "without a name"),
        (HEAD + "this is not sdp\n", 4, "expected '<type>=<value>'"),
        (HEAD + "1=one\n", 4, "expected '<type>=<value>'"),
        (HEAD + "a=x\x00y\n", 4, "NUL"),
        (HEAD + "a=x\ry\r\n", 4, "CR inside"),
        ("v=0\ns=-\nt=0 0\n", None, "missing o="),
        ("v=0\no=- 1 2 IN IP4 192.0.2.1\nm=audio 4000 RTP/AVP 0\n", 3, "before the o= and s="),
        ("v=0\no=- 1 2 IN IP4 192.0.2.1\nt=0 0\n", None, "missing s="),
        ("\r\n \r\n", None, "empty"),
    ],
)
def test_errors_name_the_line_and_the_problem(text: str, line: int | None, fragment: str) -> None:
    with pytest.raises(SdpError) as info:
        SessionDescription.parse(text.encode())
    assert info.value.line == line
    assert fragment in str(info.value)
    if line is not None:
        assert str(info.value).startswith(f"SDP line {line}: ")


# --- property tests ----------------------------------------------------------------------

_LINE_ALPHABET = st.sampled_from(
    [*"vosicbtrmaz", "=", " ", "0", "1", "9", "/", ":", "IN", "IP4", "\r", "\x00", "é"]
)
_LINES = st.lists(st.lists(_LINE_ALPHABET, max_size=12).map("".join), max_size=12)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_only_raise_sdp_error(data: bytes) -> None:
    with contextlib.suppress(SdpError):
        SessionDescription.parse(data)


@settings(max_examples=300)
@given(_LINES)
def test_random_sdp_like_lines_only_raise_sdp_error(lines: list[str]) -> None:
    text = "\r\n".join([HEAD.replace("\n", "\r\n"), *lines])
    try:
        sdp = SessionDescription.parse(text.encode())
    except SdpError:
        return
    # whatever parsed must serialise into something that parses to the same model
    assert SessionDescription.parse(sdp.serialize()) == sdp


_TOKEN = st.text("abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=8)
_ATTRS = st.lists(st.tuples(_TOKEN, st.none() | st.text("abc 019/:=;-", max_size=10)), max_size=5)


@st.composite
def _descriptions(draw: st.DrawFn) -> SessionDescription:
    sdp = SessionDescription(
        0,
        Origin(
            username=draw(_TOKEN),
            sess_id=str(draw(st.integers(0, 2**63))),
            sess_version=draw(st.integers(0, 2**32)),
            nettype="IN",
            addrtype="IP4",
            address="192.0.2.1",
        ),
        draw(st.text("abc XYZ-", min_size=1, max_size=10)),
        connection=draw(st.none() | st.just(Connection(address="192.0.2.1"))),
        bandwidths=draw(
            st.lists(
                st.tuples(st.sampled_from(["AS", "TIAS", "CT"]), st.integers(0, 10**7)), max_size=2
            )
        ),
        attributes=draw(_ATTRS),
    )
    for _ in range(draw(st.integers(0, 3))):
        media = MediaDescription(
            draw(st.sampled_from(["audio", "video", "application"])),
            draw(st.integers(0, 65535)),
            draw(st.sampled_from(["RTP/AVP", "RTP/SAVPF", "UDP/BFCP"])),
            draw(st.lists(st.integers(0, 127).map(str), max_size=4)),
            port_count=draw(st.none() | st.integers(1, 4)),
            attributes=draw(_ATTRS),
        )
        sdp.media.append(media)
    return sdp


@settings(max_examples=200)
@given(_descriptions())
def test_generated_descriptions_survive_serialize_parse(sdp: SessionDescription) -> None:
    data = sdp.serialize()
    again = SessionDescription.parse(data)
    assert again == sdp
    assert again.serialize() == data
