"""Tests for gateway.sip.message.StreamFramer: SIP over a byte stream (RFC 3261 18.3).

As h11 does, the framer is fed the real captured messages one byte at a time and in
random chunks; whatever the chunking, the same messages must come out.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sip_vectors import SipVector, load_vectors

from gateway.sip.errors import SipParseError
from gateway.sip.message import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    StreamFramer,
    parse_message,
)


def feed_in_chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    """Feed ``data`` cut at the given chunk sizes (cycled), collecting the messages."""
    framer = StreamFramer()
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(data):
        size = max(1, sizes[i % len(sizes)]) if sizes else len(data)
        out += framer.feed(data[pos : pos + size])
        pos += size
        i += 1
    assert framer.buffered == 0
    return out


def stream_of(vectors: tuple[SipVector, ...]) -> bytes:
    return b"".join(v.data for v in vectors)


def test_one_message_in_one_piece() -> None:
    v = load_vectors()[0]
    framer = StreamFramer()
    assert framer.feed(v.data) == [v.data]
    assert framer.buffered == 0
    assert framer.feed(b"") == []


def test_every_captured_message_fed_one_byte_at_a_time(sip_vector: SipVector) -> None:
    framer = StreamFramer()
    got: list[bytes] = []
    for i in range(len(sip_vector.data)):
        got += framer.feed(sip_vector.data[i : i + 1])
        if i < len(sip_vector.data) - 1:
            assert got == []  # nothing comes out before the last body byte
    assert got == [sip_vector.data]
    assert framer.buffered == 0
    framed = parse_message(got[0], stream=True)
    assert framed.serialize() == parse_message(sip_vector.data).serialize()


def test_all_captures_as_one_stream_byte_by_byte() -> None:
    vectors = load_vectors()
    data = stream_of(vectors)
    assert feed_in_chunks(data, [1]) == [v.data for v in vectors]


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 3000), min_size=1, max_size=40))
def test_all_captures_in_random_chunks(sizes: list[int]) -> None:
    vectors = load_vectors()
    assert feed_in_chunks(stream_of(vectors), sizes) == [v.data for v in vectors]


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=12),
    keepalives=st.lists(st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]), min_size=12, max_size=12),
    sizes=st.lists(st.integers(1, 700), min_size=1, max_size=20),
)
def test_keepalives_between_messages_are_skipped(
    picks: list[int], keepalives: list[bytes], sizes: list[int]
) -> None:
    vectors = load_vectors()
    chosen = [vectors[p % len(vectors)].data for p in picks]
    data = b"".join(k + m for k, m in zip(keepalives, chosen, strict=False)) + keepalives[-1]
    assert feed_in_chunks(data, sizes) == chosen


def test_keepalive_alone_gives_nothing() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == []
    assert framer.feed(b"\r") == []
    assert framer.feed(b"\n") == []
    assert framer.buffered == 0


def test_incomplete_body_waits() -> None:
    v = next(v for v in load_vectors() if v.data.endswith(b"\r\n") and b"application/sdp" in v.data)
    framer = StreamFramer()
    assert framer.feed(v.data[:-1]) == []
    assert framer.buffered == len(v.data) - 1
    assert framer.feed(v.data[-1:] + b"\r\n") == [v.data]
    assert framer.buffered == 0


def test_compact_content_length_and_odd_spacing() -> None:
    msg = (
        b"MESSAGE sip:caf@visio-relais.example SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bKl\r\n"
        b"To: <sip:caf@visio-relais.example>\r\n"
        b"From: <sip:kiosk@visio-relais.example>;tag=1\r\n"
        b"Call-ID: compact-l\r\n"
        b"CSeq: 1 MESSAGE\r\n"
        b"L \t:\t 4\r\n"
        b"\r\n"
        b"ab\r\n"
    )
    assert feed_in_chunks(msg + msg, [3]) == [msg, msg]
    assert parse_message(msg, stream=True).body == b"ab\r\n"


def test_content_length_lookalike_in_body_is_ignored() -> None:
    body = b"SIP/2.0 200 OK\r\nContent-Length: 999\r\n"
    msg = (
        b"NOTIFY sip:kiosk@192.0.2.10 SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP 192.0.2.20;branch=z9hG4bKn\r\n"
        b"To: <sip:kiosk@visio-relais.example>;tag=2\r\n"
        b"From: <sip:caf@visio-relais.example>;tag=1\r\n"
        b"Call-ID: sipfrag\r\n"
        b"CSeq: 3 NOTIFY\r\n"
        b"Content-Type: message/sipfrag\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    assert feed_in_chunks(msg * 3, [1]) == [msg] * 3


def _head(*lines: bytes) -> bytes:
    start = b"OPTIONS sip:caf@visio-relais.example SIP/2.0\r\n"
    via = b"Via: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bKf\r\n"
    return start + via + b"".join(line + b"\r\n" for line in lines)


@pytest.mark.parametrize(
    ("head", "status", "reason"),
    [
        (_head() + b"\r\n", 400, "missing Content-Length"),
        (_head(b"Content-Length: abc") + b"\r\n", 400, "malformed Content-Length"),
        (_head(b"Content-Length: -1") + b"\r\n", 400, "malformed Content-Length"),
        (_head(b"Content-Length:") + b"\r\n", 400, "malformed Content-Length"),
        (_head(b"Content-Length: \xc2\xb2") + b"\r\n", 400, "malformed Content-Length"),
        (_head(f"Content-Length: {MAX_BODY_BYTES + 1}".encode()) + b"\r\n", 413, "too large"),
    ],
)
def test_bad_content_length_on_a_stream(head: bytes, status: int, reason: str) -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError, match=reason) as info:
        for i in range(len(head)):
            framer.feed(head[i : i + 1])
    assert info.value.status == status


def test_endless_header_section_is_413() -> None:
    framer = StreamFramer()
    framer.feed(_head())
    chunk = b"X-Filler: " + b"a" * 1000 + b"\r\n"
    with pytest.raises(SipParseError, match="too large") as info:
        for _ in range(MAX_HEADER_BYTES // len(chunk) + 2):
            framer.feed(chunk)
    assert info.value.status == 413


def test_dribbled_header_costs_linear_time() -> None:
    """A peer sending a large header one byte per segment must not cost a rescan each time."""

    def dribble(size: int) -> float:
        framer = StreamFramer()
        data = _head() + b"X: " + b"a" * size
        start = time.perf_counter()
        for i in range(len(data)):
            framer.feed(data[i : i + 1])
        return time.perf_counter() - start

    small = min(dribble(6_000) for _ in range(2))
    large = dribble(60_000)
    # linear: about 10 times longer; the rescanning framer took about 100 times longer
    assert large < 30 * small
