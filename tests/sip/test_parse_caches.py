"""The parse caches of the SIP stack give what a cold parse gives, errors included.

Via sent-by, the ``[display] <URI>`` part of name-addrs, SDP ``c=`` values and whole
short header values are kept by text (gateway.sip.uri.Memo and friends). A cache must
never turn a malformed value into a good one, nor a good one into another, whatever was
parsed before it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.edge.sip_transport import SipEndpoint
from gateway.model import sdp as sdp_module
from gateway.model.sdp import Connection, SdpError
from gateway.sip import message as message_module
from gateway.sip import uri as uri_module
from gateway.sip.errors import SipParseError
from gateway.sip.message import VIA_MEMO, Via
from gateway.sip.uri import Memo, NameAddr


def outcome(parse: Callable[[], Any]) -> tuple[str, Any]:
    """What a parse gave: its value's fields, or its error's type and message."""
    try:
        value = parse()
    except (SipParseError, SdpError) as exc:
        return ("error", type(exc).__name__, str(exc))
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
    message_module._VIA_SENT.clear()
    cold = outcome(lambda: Via._parse(text))
    outcome(lambda: Via._parse(sent + ";branch=z9hG4bKwarm"))  # the same sent-by, cached
    assert outcome(lambda: Via._parse(text)) == cold


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
    uri_module._ADDR_HEADS.clear()
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
    assert "IN IP4" not in sdp_module._CONNECTIONS


def test_memo_keeps_short_texts_only_and_never_errors() -> None:
    calls: list[str] = []

    def parse(text: str) -> tuple[str]:
        calls.append(text)
        if text == "bad":
            raise SipParseError("bad value")
        return (text,)

    memo: Memo[tuple[str]] = Memo(parse, max_len=5, size=3)
    assert memo("abc") == ("abc",) and memo("abc") == ("abc",)
    assert calls == ["abc"]
    memo("longer text")
    memo("longer text")
    assert calls.count("longer text") == 2  # too long to keep
    for _ in range(2):
        with pytest.raises(SipParseError):
            memo("bad")
    assert calls.count("bad") == 2
    memo("d")
    memo("e")
    assert len(memo) == 3
    memo("f")  # full: emptied, then "f" kept
    assert len(memo) == 1 and memo.get("f") == ("f",) and memo.get("abc") is None


@pytest.mark.parametrize("host", ["127.0.0.1", "GW.Example.FR"])
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_via_seeded_by_the_endpoint_is_what_the_parser_gives(host: str, transport: str) -> None:
    endpoint = SipEndpoint(host, 5060)
    text = endpoint.via_for(transport, "z9hG4bKseed1")
    seeded = VIA_MEMO.get(text)
    assert seeded is not None
    assert seeded == Via._parse(text)
    assert seeded.branch == "z9hG4bKseed1" and seeded.rport_requested


def test_ipv6_endpoint_leaves_its_via_to_the_parser() -> None:
    endpoint = SipEndpoint("::1", 5060)
    text = endpoint.via_for("udp", "z9hG4bKseed6")
    assert VIA_MEMO.get(text) is None


def test_a_line_feed_in_via_parameters_is_refused_cold_and_warm() -> None:
    message_module._VIA_SENT.clear()
    for _ in range(2):  # the second time the sent-by is known
        with pytest.raises(SipParseError, match="malformed Via"):
            Via._parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa\nInjected: 1")
        Via._parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKb")
