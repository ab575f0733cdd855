"""Tests for gateway.sip.reliable: reliable provisional responses, UAC side (RFC 3262)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.errors import SipParseError
from gateway.sip.message import CSeq, Response, parse_message
from gateway.sip.reliable import (
    RSEQ_MAX,
    Arrival,
    ReliableProvisionals,
    parse_rseq,
    rack_for,
    rack_value,
    reliable_rseq,
    requires_100rel,
)


def provisional(
    status: int = 180,
    *,
    require: str | None = "100rel",
    rseq: str | None = "1",
    tag: str | None = "st1",
    cseq: str = "7 INVITE",
) -> Response:
    """A provisional response to an INVITE, as a UAS would put it on the wire."""
    lines = [
        f"SIP/2.0 {status} Whatever",
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKabc;received=127.0.0.1",
        "From: <sip:vrgw@127.0.0.1>;tag=gw1",
        "To: <sip:station@127.0.0.1>" + (f";tag={tag}" if tag else ""),
        "Call-ID: rel-1@127.0.0.1",
        f"CSeq: {cseq}",
        "Contact: <sip:station@127.0.0.1:5070>",
    ]
    if require is not None:
        lines.append(f"Require: {require}")
    if rseq is not None:
        lines.append(f"RSeq: {rseq}")
    lines += ["Content-Length: 0", "", ""]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Response)
    return message


# --- RSeq ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [("1", 1), (" 42 ", 42), ("0000000007", 7), (str(RSEQ_MAX), 2**31 - 1)],
)
def test_parse_rseq_accepts_response_numbers(text: str, number: int) -> None:
    assert parse_rseq(text) == number


@pytest.mark.parametrize(
    "text",
    ["", " ", "0", str(2**31), "4294967296", "99999999999", "-1", "+1", "1.0", "0x1", "²", "1 2"],
)
def test_parse_rseq_refuses_what_is_not_in_range(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_rseq(text)


@settings(max_examples=300)
@given(st.text(max_size=14))
def test_parse_rseq_raises_only_the_parse_error(text: str) -> None:
    try:
        number = parse_rseq(text)
    except SipParseError:
        return
    assert 1 <= number <= RSEQ_MAX


# --- Which 1xx are reliable ----------------------------------------------------------------


def test_a_180_with_require_and_rseq_is_reliable() -> None:
    response = provisional(180, rseq="1")
    assert requires_100rel(response)
    assert reliable_rseq(response) == 1
    assert rack_for(response) == "1 7 INVITE"


@pytest.mark.parametrize(
    "require", ["100rel", "100REL", "timer, 100rel", " 100rel ,precondition", "100Rel"]
)
def test_the_option_tag_is_found_in_any_case_and_list(require: str) -> None:
    assert reliable_rseq(provisional(183, require=require, rseq="12")) == 12


@pytest.mark.parametrize(
    ("status", "require", "rseq"),
    [
        (180, None, "1"),  # RSeq without Require: a UAS that forgot, or a stray header
        (180, "timer", "1"),
        (180, "100relx", "1"),
        (180, "100rel", None),  # Require without RSeq: cannot be acknowledged
        (180, "100rel", "0"),
        (180, "100rel", str(2**31)),
        (180, "100rel", "one"),
        (100, "100rel", "1"),  # 100 Trying is hop by hop, never reliable
    ],
)
def test_other_provisionals_are_not_reliable(status: int, require: str | None, rseq: str) -> None:
    response = provisional(status, require=require, rseq=rseq)
    assert reliable_rseq(response) is None
    assert rack_for(response) is None
    assert ReliableProvisionals().receive(response) is Arrival.UNRELIABLE


def test_final_responses_are_never_reliable() -> None:
    lines = (
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n"
        "To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nRequire: 100rel\r\n"
        "RSeq: 5\r\nContent-Length: 0\r\n\r\n"
    )
    response = parse_message(lines.encode())
    assert isinstance(response, Response)
    assert reliable_rseq(response) is None


def test_rack_value_is_rseq_cseq_method() -> None:
    assert rack_value(776656, CSeq(1, "INVITE")) == "776656 1 INVITE"
    assert rack_for(provisional(183, rseq="9", cseq="314159 INVITE")) == "9 314159 INVITE"


# --- Sequence per early dialog ----------------------------------------------------------------


def test_retransmissions_are_recognised_and_only_the_next_number_is_new() -> None:
    tracker = ReliableProvisionals()
    assert tracker.last("st1") is None
    assert tracker.receive(provisional(180, rseq="500")) is Arrival.NEW  # any first number
    assert tracker.last("st1") == 500
    assert tracker.receive(provisional(180, rseq="500")) is Arrival.REPEAT
    assert tracker.receive(provisional(180, rseq="499")) is Arrival.REPEAT
    assert tracker.receive(provisional(183, rseq="502")) is Arrival.GAP  # 501 is missing
    assert tracker.last("st1") == 500  # a gap does not move the sequence
    assert tracker.receive(provisional(183, rseq="501")) is Arrival.NEW
    assert tracker.receive(provisional(183, rseq="502")) is Arrival.NEW
    assert tracker.receive(provisional(183, rseq="501")) is Arrival.REPEAT
    assert tracker.last("st1") == 502


def test_unreliable_provisionals_do_not_touch_the_sequence() -> None:
    tracker = ReliableProvisionals()
    assert tracker.receive(provisional(180, require=None, rseq="3")) is Arrival.UNRELIABLE
    assert tracker.last("st1") is None
    assert tracker.receive(provisional(180, rseq="3")) is Arrival.NEW


def test_forked_early_dialogs_have_their_own_sequences() -> None:
    tracker = ReliableProvisionals()
    assert tracker.receive(provisional(180, rseq="10", tag="a")) is Arrival.NEW
    assert tracker.receive(provisional(180, rseq="77", tag="b")) is Arrival.NEW
    assert tracker.receive(provisional(180, rseq="10", tag="b")) is Arrival.REPEAT
    assert tracker.receive(provisional(183, rseq="11", tag="a")) is Arrival.NEW
    assert (tracker.last("a"), tracker.last("b")) == (11, 77)


@settings(max_examples=200)
@given(st.lists(st.integers(1, 20), max_size=30))
def test_new_arrivals_form_one_consecutive_run(numbers: list[int]) -> None:
    tracker = ReliableProvisionals()
    new = [n for n in numbers if tracker.receive(provisional(rseq=str(n))) is Arrival.NEW]
    if not numbers:
        assert new == []
        return
    assert new[0] == numbers[0]  # the first reliable 1xx starts the sequence
    assert new == list(range(numbers[0], numbers[0] + len(new)))
    assert tracker.last("st1") == new[-1]
