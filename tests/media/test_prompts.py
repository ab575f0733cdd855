"""Announcements: G.711 coding, the shipped prompt, and the early-media SDP."""

from __future__ import annotations

import math
import struct
import sys

import pytest
from g711_reference import decode as decode_g711

from gateway.media.player import negotiated_g711
from gateway.media.prompts import (
    FRAME_SAMPLES,
    PROMPT_DIR,
    PromptError,
    early_answer,
    encode_g711,
    g711_formats,
    load_prompt,
    read_wav,
    restrict_offer,
)
from gateway.model.sdp import MediaDescription, SessionDescription

# Facts of ITU-T G.711: the codes of silence and of the extremes.
KNOWN = [
    ("PCMU", 0, 0xFF),
    ("PCMU", 32767, 0x80),
    ("PCMU", -32768, 0x00),
    ("PCMA", 0, 0xD5),
    ("PCMA", -1, 0x55),
    ("PCMA", 32767, 0xAA),
    ("PCMA", -32768, 0x2A),
]


def encode(samples: list[int] | range, codec: str) -> bytes:
    return encode_g711(struct.pack(f"<{len(samples)}h", *samples), codec)


@pytest.mark.parametrize(("codec", "sample", "code"), KNOWN)
def test_known_codes(codec: str, sample: int, code: int) -> None:
    assert encode([sample], codec) == bytes([code])


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_round_trip_error_stays_within_the_segment_step(codec: str) -> None:
    """FFmpeg's codes, read back by the reference decoder: one step of error at most."""
    samples = range(-32768, 32768, 7)
    back = decode_g711(encode(samples, codec), codec)
    assert len(back) == len(samples)
    for sample, heard in zip(samples, back, strict=True):
        # G.711 keeps 4 mantissa bits: the error is below 1/16 of the magnitude (+ step 16).
        assert abs(heard - sample) <= abs(sample) / 16 + 16, (sample, heard)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_every_code_decodes_to_itself(codec: str) -> None:
    """The reference decoder's value of each code is encoded back to that code."""
    codes = bytes(range(256))
    again = encode(decode_g711(codes, codec), codec)
    # mu-law has two zeros: 0x7F (-0) decodes to 0, which encodes as 0xFF (+0).
    expected = codes.replace(b"\x7f", b"\xff") if codec == "PCMU" else codes
    assert again == expected


def test_encode_a_tone() -> None:
    pcm = b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000))) for i in range(160)
    )
    mu = encode_g711(pcm, "PCMU")
    a = encode_g711(pcm, "PCMA")
    assert len(mu) == len(a) == 160
    decoded = decode_g711(mu, "PCMU")
    assert max(decoded) > 7000 and min(decoded) < -7000


def test_a_prompt_is_encoded_without_python_work_per_sample() -> None:
    """The first announcement of a codec encodes its prompt on the event loop: a table
    made and applied sample by sample in Python held the loop for 60 ms on an idle
    machine and for seconds on a loaded one (a test gateway's stack, dumped by its
    stall report, showed it there while its SIP went unanswered for 6 s)."""
    load_prompt.cache_clear()
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        prompt = load_prompt("attente", "PCMU", 0)
    finally:
        sys.setprofile(None)
    samples = len(prompt.frames) * FRAME_SAMPLES
    assert samples > 60_000
    assert calls < len(prompt.frames) * 2, calls  # the framing's slices, not the samples


def test_the_shipped_prompt_is_french_speech_of_a_few_seconds() -> None:
    pcm = read_wav(PROMPT_DIR / "fr" / "attente.wav")
    seconds = len(pcm) / 2 / 8000
    assert 3 < seconds < 20
    prompt = load_prompt("attente", "PCMA", 8)
    assert all(len(f) == FRAME_SAMPLES for f in prompt.frames)
    assert prompt.payload_type == 8 and prompt.seconds == pytest.approx(seconds + 1, abs=0.03)
    # Not silence: a good share of 20 ms frames carry sound.
    loud = sum(1 for f in prompt.frames if max(map(abs, decode_g711(f, "PCMA"))) > 2000)
    assert loud > len(prompt.frames) / 4


OFFER = (
    "v=0\r\no=kiosk 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 9 0 8 101\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
    "m=video 4002 RTP/AVP 96 97\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=42e01f\r\n"
    "a=rtcp-fb:96 nack pli\r\na=rtpmap:97 VP8/90000\r\na=rtcp-fb:97 nack pli\r\na=sendrecv\r\n"
    "m=application 5000 TCP/BFCP *\r\n"
)


def test_early_answer_picks_g711_dtmf_and_one_video_codec() -> None:
    made = early_answer(SessionDescription.parse(OFFER))
    assert made is not None
    answer, pt, codec = made
    assert (pt, codec) == (0, "PCMU")
    audio, video, app = answer.media
    assert audio.formats == ["0", "101"]
    assert {v for k, v in audio.attributes if k == "rtpmap"} == {
        "0 PCMU/8000",
        "101 telephone-event/8000",
    }
    assert video.formats == ["96"] and ("rtcp-fb", "97 nack pli") not in video.attributes
    assert app.port == 0
    assert answer.connection is not None and answer.connection.address == "0.0.0.0"


def test_restricted_offer_matches_what_the_kiosk_was_told() -> None:
    offer = SessionDescription.parse(OFFER)
    made = early_answer(offer)
    assert made is not None
    limited = restrict_offer(offer, made[0])
    assert [m.formats for m in limited.media[:2]] == [["0", "101"], ["96"]]
    assert limited.media[2].port == 0
    assert offer.media[0].formats == ["9", "0", "8", "101"]  # the original is untouched


def test_no_g711_means_no_announcement() -> None:
    g722_only = OFFER.replace("RTP/AVP 9 0 8 101", "RTP/AVP 9")
    assert early_answer(SessionDescription.parse(g722_only)) is None


@pytest.mark.parametrize("name", ["introuvable", "../fr/attente", "fr/attente", "", "Attente"])
def test_only_shipped_prompt_names_load(name: str) -> None:
    with pytest.raises(PromptError):
        load_prompt(name, "PCMU", 0)


def audio(formats: str, *rtpmaps: str) -> MediaDescription:
    media = MediaDescription.parse_media_line(f"audio 4000 RTP/AVP {formats}")
    for value in rtpmaps:
        media.add_attr("rtpmap", value)
    return media


def test_g711_formats_by_rtpmap_then_static_number() -> None:
    offer = SessionDescription.parse(OFFER)
    assert g711_formats(offer.media[0]) == [(0, "PCMU"), (8, "PCMA")]
    # rtpmap names win over RFC 3551 numbers, and compare case-insensitively (RFC 4855 3)
    assert g711_formats(audio("8 0 97", "0 G722/8000", "97 pcmu/8000")) == [
        (8, "PCMA"),
        (97, "PCMU"),
    ]
    assert g711_formats(audio("9 18")) == []


@pytest.mark.parametrize(
    ("receiver", "sender", "expected"),
    [
        (audio("0 8"), audio("8"), (8, "PCMA")),
        (audio("0 8"), audio("8 0"), (0, "PCMU")),  # the receiver's preference decides
        (audio("96 0", "96 PCMA/8000"), audio("8"), (96, "PCMA")),  # the receiver's number
        (audio("9 0"), audio("9"), None),  # G.722 agreed, no G.711 to play with
        (audio("0"), None, None),  # the other side has not answered
        (None, audio("0"), None),
    ],
)
def test_the_announcement_codec_is_one_both_sides_listed(
    receiver: MediaDescription | None,
    sender: MediaDescription | None,
    expected: tuple[int, str] | None,
) -> None:
    assert negotiated_g711(receiver, sender) == expected
