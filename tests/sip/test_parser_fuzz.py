"""Fuzzing the SIP parser: only SipParseError may escape (RFC 3261 25, 18.3, 21.4.1).

Inputs are real captured messages mutated by byte flips, truncation, insertions, header
duplication and deletion, plus purely random bytes. Any other exception, or a salvaged
error response that does not itself parse, is a bug.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sip_vectors import load_vectors

from gateway.sip.errors import SipParseError
from gateway.sip.message import (
    Request,
    Response,
    StreamFramer,
    canonical_name,
    parse_message,
    salvage_error_response,
)

SEEDS = [v.data for v in load_vectors()]

# Bytes that mean something to a SIP parser, to insert where they hurt.
SPECIALS = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"\r\n ",
    b"\r\n\t",
    b":",
    b";",
    b",",
    b"<",
    b">",
    b'"',
    b"\\",
    b"@",
    b"?",
    b"%",
    b"=",
    b"[",
    b"]",
    b" ",
    b"\t",
    b"\x00",
    b"\xff",
    b"\xc3",
    "²".encode(),
    "١".encode(),
    b"0",
    b"99999999999",
    b"-1",
    b"SIP/2.0",
    b"SIP/7.0",
    b"z9hG4bK",
    b";tag=",
    b";rport=",
    b";branch=",
    b"Content-Length: 1\r\n",
    b"l: 99999999\r\n",
    b"Via: \r\n",
    b"CSeq: \r\n",
]

SETTINGS = settings(
    max_examples=700,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A captured message after one to four random mutations."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "special", "dup", "drop", "lf"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[pos:]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "special":
            data[pos:pos] = draw(st.sampled_from(SPECIALS))
        elif kind in ("dup", "drop"):
            head_end = data.find(b"\r\n\r\n")
            lines = bytes(data[: max(head_end, 0)]).split(b"\r\n")
            if len(lines) > 1:
                i = draw(st.integers(1, len(lines) - 1))
                if kind == "dup":
                    lines.insert(draw(st.integers(1, len(lines))), lines[i])
                else:
                    del lines[i]
                data[: max(head_end, 0)] = b"\r\n".join(lines)
        elif kind == "lf":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n", draw(st.integers(1, 30))))
    return bytes(data)


def check_parse(data: bytes) -> Request | Response | None:
    """Parse; only SipParseError may escape; a parsed message must survive a round trip."""
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        assert 400 <= exc.status <= 699
        check_salvage(data, exc)
        return None
    # lazily parsed parts may still refuse, but only with SipParseError
    for part in ("contacts", "content_type", "vias"):
        with contextlib.suppress(SipParseError):
            getattr(msg, part)
    if isinstance(msg, Request):
        msg.uri  # noqa: B018 - parsed by parse_message already: must not raise now
    again = parse_message(msg.serialize())
    assert type(again) is type(msg)
    assert again.serialize() == msg.serialize()
    expected = [(n, v) for n, v in msg.headers.items() if canonical_name(n) != "content-length"]
    assert list(again.headers.items()) == [*expected, ("Content-Length", str(len(msg.body)))]
    assert again.body == msg.body
    return msg


def check_salvage(data: bytes, exc: SipParseError) -> None:
    """21.4.1: a request we could not parse gets a parseable error response, or none."""
    reply = salvage_error_response(data, exc.status, exc.reason)
    if reply is None:
        return
    assert not data.lstrip().startswith(b"SIP/")
    resp = parse_message(reply)
    assert isinstance(resp, Response)
    assert 400 <= resp.status <= 699
    assert resp.status == exc.status


@SETTINGS
@given(data=mutated())
def test_mutated_messages_only_raise_sip_parse_error(data: bytes) -> None:
    check_parse(data)


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=600))
def test_random_bytes_only_raise_sip_parse_error(data: bytes) -> None:
    check_parse(data)
    framer = StreamFramer()
    with contextlib.suppress(SipParseError):
        framer.feed(data)


_LINE_CHARS = st.sampled_from(
    [*'abcSIPVvia:;,<>"\\@?%=[]/. \t0123456789-²١', "\r\n", "\n", "sip:", "tag="]
)
_MANDATORY = ("Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq")
_OTHERS = ("Contact", "m", "Route", "Content-Length", "l", "Max-Forwards", "X-Odd", "Bad Name", "")
_HEADER_NAMES = st.sampled_from(_MANDATORY + _OTHERS)


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    """A message assembled from plausible start lines and header lines of random text."""
    start = draw(
        st.sampled_from(
            [
                "INVITE sip:caf@visio-relais.example SIP/2.0",
                "OPTIONS sip:%61@[::1]:5060;transport=tcp SIP/2.0",
                "BYE tel:+33233000000 SIP/2.0",
                "ACK sip:x SIP/7.0",
                "SIP/2.0 200 OK",
                "SIP/2.0 487 Request Terminated",
                "SIP/7.0 100 Trying",
            ]
        )
    )
    lines = [start]
    for _ in range(draw(st.integers(0, 12))):
        name = draw(_HEADER_NAMES)
        value = "".join(draw(st.lists(_LINE_CHARS, max_size=30)))
        lines.append(f"{name}:{value}")
    body = draw(st.binary(max_size=20))
    return "\r\n".join(lines).encode() + b"\r\n\r\n" + body


@SETTINGS
@given(data=structured())
def test_structured_garbage_only_raises_sip_parse_error(data: bytes) -> None:
    check_parse(data)


@SETTINGS
@given(data=mutated(), sizes=st.lists(st.integers(1, 400), min_size=1, max_size=10))
def test_stream_framer_only_raises_sip_parse_error(data: bytes, sizes: list[int]) -> None:
    framer = StreamFramer()
    stream = data + SEEDS[0]  # a good message behind a bad one
    framed: list[bytes] = []
    pos = 0
    i = 0
    try:
        while pos < len(stream):
            size = sizes[i % len(sizes)]
            framed += framer.feed(stream[pos : pos + size])
            pos += size
            i += 1
    except SipParseError as exc:
        assert exc.status in (400, 413)
    for raw in framed:
        try:
            parse_message(raw, stream=True)
        except SipParseError as exc:
            check_salvage(raw, exc)


@pytest.mark.parametrize(
    "data",
    [
        # found while writing these tests; each once escaped as ValueError or was misread
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1;rport=x\r\n"
        b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: ² OPTIONS\r\n\r\n".encode(),
        "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nl: ³\r\n"
        "From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n".encode(),
    ],
)
def test_regressions(data: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(data)
    check_parse(data)
