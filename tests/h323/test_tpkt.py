"""TPKT framing (RFC 1006 6) on real captured streams and on broken input."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.h323 import tpkt
from gateway.h323.errors import H323ParseError, H323UsageError
from gateway.h323.tpkt import TpktFramer

from .vectors import load_vectors


def test_encode_writes_version_and_total_length() -> None:
    assert tpkt.encode(b"\x08\x02") == b"\x03\x00\x00\x06\x08\x02"
    assert tpkt.encode(b"") == b"\x03\x00\x00\x04"


def test_encode_refuses_an_oversized_payload() -> None:
    with pytest.raises(H323UsageError):
        tpkt.encode(bytes(65532))


def test_several_packets_in_one_segment_and_one_split() -> None:
    framer = TpktFramer()
    stream = tpkt.encode(b"one") + tpkt.encode(b"two") + tpkt.encode(b"three")
    assert framer.feed(stream[:-3]) == [b"one", b"two"]
    assert framer.pending == len(tpkt.encode(b"three")) - 3
    assert framer.feed(stream[-3:]) == [b"three"]
    assert framer.pending == 0


def test_bare_header_is_an_empty_keepalive() -> None:
    # ndpi-h323-overflow.pcap: 03 00 00 04 and nothing else
    framer = TpktFramer()
    assert framer.feed(b"\x03\x00\x00\x04") == [b""]
    assert framer.feed(tpkt.encode(b"x")) == [b"x"]


def test_captured_keepalive_is_found() -> None:
    empty = [v for v in load_vectors() if not v.data]
    assert [v.id for v in empty] == ["ndpi-h323-overflow#1-q931"]


def test_captured_split_pdus_were_reassembled() -> None:
    # ndpi-h323.pcap frames 48 and 50: a TPKT header alone, then the Alerting
    assert [v.id for v in load_vectors() if v.split] == ["ndpi-h323#50-q931"]


@pytest.mark.parametrize(
    "data",
    [b"\x04\x00\x00\x08abcd", b"\x03\x00\x00\x03", b"\x03\x00\x00\x00", b"\x00\x00\x00\x00"],
)
def test_bad_header_is_refused(data: bytes) -> None:
    with pytest.raises(H323ParseError):
        TpktFramer().feed(data)


def test_length_beyond_the_cap_is_refused_before_buffering() -> None:
    framer = TpktFramer(max_packet=1024)
    with pytest.raises(H323ParseError):
        framer.feed(b"\x03\x00\x08\x00")


def test_bad_cap_is_a_usage_error() -> None:
    with pytest.raises(H323UsageError):
        TpktFramer(max_packet=3)


def test_every_captured_pdu_fed_one_byte_at_a_time() -> None:
    payloads = [v.data for v in load_vectors() if v.kind != "ras"]
    stream = b"".join(tpkt.encode(p) for p in payloads)
    framer = TpktFramer()
    out: list[bytes] = []
    for i in range(len(stream)):
        out += framer.feed(stream[i : i + 1])
    assert out == payloads
    assert framer.pending == 0


def test_the_signalling_cap_refuses_a_hostile_length_at_its_header() -> None:
    # The largest length RFC 1006 allows: refused on its 4 header octets, nothing held.
    framer = TpktFramer(tpkt.SIGNALLING_MAX_PACKET)
    with pytest.raises(H323ParseError, match="65535"):
        framer.feed(b"\x03\x00\xff\xff")
    ok = TpktFramer(tpkt.SIGNALLING_MAX_PACKET)
    assert ok.feed(tpkt.encode(bytes(tpkt.SIGNALLING_MAX_PACKET - 4))) == [
        bytes(tpkt.SIGNALLING_MAX_PACKET - 4)
    ]


def test_every_captured_pdu_fits_the_signalling_cap() -> None:
    assert max(len(v.data) for v in load_vectors()) + 4 <= tpkt.SIGNALLING_MAX_PACKET // 8


def test_a_partial_packet_never_holds_more_than_the_cap() -> None:
    framer = TpktFramer(tpkt.SIGNALLING_MAX_PACKET)
    header = b"\x03\x00" + tpkt.SIGNALLING_MAX_PACKET.to_bytes(2, "big")
    assert framer.feed(header) == []
    for _ in range(tpkt.SIGNALLING_MAX_PACKET // 1000):
        assert framer.feed(bytes(1000)) == []
    assert framer.pending < tpkt.SIGNALLING_MAX_PACKET


@given(st.binary(min_size=4, max_size=64))
def test_garbage_is_refused_or_framed_never_buffered_past_the_cap(data: bytes) -> None:
    framer = TpktFramer(tpkt.SIGNALLING_MAX_PACKET)
    try:
        for payload in framer.feed(data):
            assert len(payload) <= tpkt.SIGNALLING_MAX_PACKET - 4
    except H323ParseError:
        return
    assert data[0] == tpkt.VERSION
    assert framer.pending <= tpkt.SIGNALLING_MAX_PACKET
