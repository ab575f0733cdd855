"""The parse caches of the SIP stack give what a cold parse gives, errors included.

Header names, Via sent-by, the ``[display] <URI>`` part of name-addrs, SDP ``c=`` values
and whole short header values are kept by text, each in a
:class:`~gateway.model.memo.Memo`. A cache must never turn a malformed value into a good
one, nor a good one into another, whatever was parsed before it; and what it hands out
is immutable, so that no caller can change what the next one gets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sip_vectors import load_vectors

from gateway.edge.sip_transport import SipEndpoint
from gateway.model import sdp as sdp_module
from gateway.model.memo import Memo
from gateway.model.sdp import CONNECTION_MEMO, Connection, SdpError
from gateway.sip import fields as fields_module
from gateway.sip import uri as uri_module
from gateway.sip.errors import SipParseError
from gateway.sip.fields import CSEQ_MEMO, VIA_MEMO, VIA_SENT_MEMO, Via
from gateway.sip.headers import CANONICAL_NAME_MEMO, HEADER_NAME_MEMO
from gateway.sip.message import Request, Response, parse_message
from gateway.sip.uri import ADDR_HEAD_MEMO, NAME_ADDR_MEMO, URI_MEMO, NameAddr

# Every process-wide cache of the SIP stack and of the SDP model.
MEMOS: list[Memo[Any]] = [
    CANONICAL_NAME_MEMO,
    HEADER_NAME_MEMO,
    VIA_SENT_MEMO,
    VIA_MEMO,
    CSEQ_MEMO,
    URI_MEMO,
    ADDR_HEAD_MEMO,
    NAME_ADDR_MEMO,
    CONNECTION_MEMO,
]


def outcome(parse: Callable[[], Any]) -> tuple[Any, ...]:
    """What a parse gave: its value's fields, or its error's type and message."""
    try:
        value = parse()
    except (SipParseError, SdpError) as exc:
        return ("error", type(exc).__name__, str(exc))
    return fields_of(value)


def fields_of(value: Any) -> tuple[Any, ...]:
    """A parsed value as plain data, to compare two parses."""
    if isinstance(value, Via):
        return ("via", value.transport, value.host, value.port, list(value.params.items()))
    if isinstance(value, NameAddr):
        return ("name-addr", str(value.uri), value.display, list(value.params.items()))
    return ("value", value)


@settings(max_examples=400, deadline=None)
@given(
    sent=st.text(alphabet="SIP/2.0UDTCudp pe.x:15[]\t\n", max_size=32),
    params=st.text(alphabet=';=branchz9 rport5\n\t"', max_size=16),
)
@example(sent="SIP/2.0/UDP h", params=";branch=a\nb")  # LF in the parameters
@example(sent="SIP/2.0/UDP\nh", params=";branch=a")  # LF as the LWS of sent-by
@example(sent="SIP/2.0/UDP h:99999", params=";branch=a")
def test_via_sent_by_cache_agrees_with_a_cold_parse(sent: str, params: str) -> None:
    text = sent + params
    VIA_SENT_MEMO.clear()
    cold = outcome(lambda: fields_module._parse_via(text))
    outcome(lambda: fields_module._parse_via(sent + ";branch=z9hG4bKwarm"))  # sent-by kept
    assert outcome(lambda: fields_module._parse_via(text)) == cold


@settings(max_examples=400, deadline=None)
@given(
    head=st.text(alphabet='"a b<>sip:@x.1\\', max_size=28),
    tail=st.text(alphabet=';=tag1 x>"', max_size=12),
)
@example(head='"Mairie" <sip:k@x>', tail=" junk;tag=1")
@example(head="<sip:k@x>", tail=";=x")
@example(head='"a<b" <sip:k@x>', tail=";tag=q")
def test_name_addr_head_cache_agrees_with_a_cold_parse(head: str, tail: str) -> None:
    text = head + tail
    ADDR_HEAD_MEMO.clear()
    cold = outcome(lambda: uri_module._parse_name_addr(text))
    outcome(lambda: uri_module._parse_name_addr(head + ";tag=warm"))
    assert outcome(lambda: uri_module._parse_name_addr(text)) == cold


def test_name_addrs_sharing_a_head_keep_their_own_tags() -> None:
    a = uri_module._parse_name_addr('"Kiosque" <sip:k1@example.fr>;tag=1')
    b = uri_module._parse_name_addr('"Kiosque" <sip:k1@example.fr>;tag=2')
    assert (a.tag, b.tag) == ("1", "2")
    assert a.uri is b.uri  # the URI is shared, the parameters are not
    with pytest.raises(SipParseError, match="junk after"):
        uri_module._parse_name_addr('"Kiosque" <sip:k1@example.fr> junk')


def test_connection_memo_shares_values_and_keeps_no_error() -> None:
    first = Connection.parse("IN IP4 192.0.2.7", 3)
    assert Connection.parse("IN IP4 192.0.2.7", 9) is first
    assert first.address == "192.0.2.7"
    for line in (4, 5):
        with pytest.raises(SdpError) as info:
            Connection.parse("IN IP4", line)
        assert info.value.line == line  # errors are not kept: each names its own line
    assert "IN IP4" not in sdp_module.CONNECTION_MEMO


def test_memo_keeps_short_texts_only_and_never_errors() -> None:
    calls: list[str] = []

    def parse(text: str) -> tuple[str]:
        calls.append(text)
        if text == "bad":
            raise SipParseError("bad value")
        return (text,)

    memo: Memo[tuple[str]] = Memo(parse, max_len=5, size=3)
    assert memo["abc"] == ("abc",) and memo["abc"] == ("abc",)
    assert calls == ["abc"]
    assert memo["longer text"] == memo["longer text"]
    assert calls.count("longer text") == 2  # too long to keep
    for _ in range(2):
        with pytest.raises(SipParseError):
            memo["bad"]
    assert calls.count("bad") == 2
    memo["d"]
    memo["e"]
    assert len(memo) == 3
    memo["f"]  # full: emptied, then "f" kept
    assert len(memo) == 1 and memo.get("f") == ("f",) and memo.get("abc") is None
    memo.seed("g", ("seeded",))
    assert memo["g"] == ("seeded",) and calls.count("g") == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "GW.Example.FR"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_via_seeded_by_the_endpoint_is_what_the_parser_gives(host: str, transport: str) -> None:
    endpoint = SipEndpoint(host, 5060)
    text = endpoint.via_for(transport, "z9hG4bKseed1")
    seeded = VIA_MEMO.get(text)
    assert seeded is not None
    assert seeded == fields_module._parse_via(text)
    assert seeded.branch == "z9hG4bKseed1" and seeded.rport_requested


def test_ipv6_endpoint_leaves_its_via_to_the_parser() -> None:
    endpoint = SipEndpoint("::1", 5060)
    text = endpoint.via_for("udp", "z9hG4bKseed6")
    assert VIA_MEMO.get(text) is None


def test_a_line_feed_in_via_parameters_is_refused_cold_and_warm() -> None:
    VIA_SENT_MEMO.clear()
    for _ in range(2):  # the second time the sent-by is known
        with pytest.raises(SipParseError, match="malformed Via"):
            fields_module._parse_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa\nInjected: 1")
        fields_module._parse_via("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKb")


def message_outcome(data: bytes) -> tuple[Any, ...]:
    """What parsing a whole message gave: its parsed headers, or its error."""
    try:
        msg = parse_message(data)
    except SipParseError as exc:
        return ("error", exc.status, exc.reason)
    start = msg.method + " " + str(msg.uri) if isinstance(msg, Request) else msg.status
    return (
        start,
        msg.call_id,
        str(msg.cseq),
        [fields_of(via) for via in msg.vias],
        fields_of(msg.from_),
        fields_of(msg.to),
        list(msg.headers.items()),
        msg.body,
    )


def test_every_captured_message_parses_alike_with_cold_and_warm_memos() -> None:
    for vector in load_vectors():
        for memo in MEMOS:
            memo.clear()
        cold = message_outcome(vector.data)
        assert message_outcome(vector.data) == cold, vector.id  # now every memo is warm


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["From", "f", "To", "t", "Via", "v", "CSeq", "Call-ID", "i"]),
    value=st.text(alphabet='"<>sip:@x.1;=tag ,SIP/2.0UDP5', max_size=30),
)
def test_a_mutated_mandatory_header_parses_alike_cold_and_warm(name: str, value: str) -> None:
    data = (
        "OPTIONS sip:caf@192.0.2.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKm\r\n"
        "From: <sip:k@192.0.2.9>;tag=1\r\nTo: <sip:caf@192.0.2.1>\r\n"
        "Call-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
        f"{name}: {value}\r\nContent-Length: 0\r\n\r\n"
    ).encode()
    for memo in MEMOS:
        memo.clear()
    cold = message_outcome(data)
    assert message_outcome(data) == cold


def test_every_cache_is_one_memo_type_with_one_rule() -> None:
    assert all(type(memo) is Memo for memo in MEMOS)
    sizes = {memo._size for memo in MEMOS}
    assert sizes == {4096}  # emptied when full, at the same size everywhere


def test_a_malformed_header_name_is_refused_every_time() -> None:
    HEADER_NAME_MEMO.clear()
    for _ in range(2):
        with pytest.raises(SipParseError, match="invalid header name"):
            HEADER_NAME_MEMO["Bad Name"]
    assert "Bad Name" not in HEADER_NAME_MEMO
    assert HEADER_NAME_MEMO["Via "] == ("via", "Via") and CANONICAL_NAME_MEMO["v"] == "via"


def test_memoised_values_are_shared_and_cannot_be_changed() -> None:
    data = load_vectors()[0].data
    first, second = parse_message(data), parse_message(data)
    assert second.to is first.to and second.cseq is first.cseq
    assert second.top_via is first.top_via
    values: list[Any] = [first.top_via, first.to, first.from_, first.to.uri, first.cseq]
    if isinstance(first, Request):
        values.append(first.uri)
    for value in values:
        for name in (f.name for f in dataclasses.fields(value)):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(value, name, getattr(value, name))
        params = getattr(value, "params", None)
        if params is not None:
            with pytest.raises(TypeError):
                params["tag"] = "changed"
    assert isinstance(first, Request | Response)


def test_values_built_from_a_caller_dict_do_not_follow_it() -> None:
    params: dict[str, str | None] = {"branch": "z9hG4bKown"}
    via = Via("UDP", "192.0.2.1", 5060, params)
    params["branch"] = "changed"
    assert via.branch == "z9hG4bKown"
    assert via.with_params(rport="5").params == {"branch": "z9hG4bKown", "rport": "5"}
