"""Tests for gateway.sip.uri: SIP/SIPS/tel URIs and name-addr (RFC 3261 19.1, 20.10, 25.1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.sip.errors import SipParseError
from gateway.sip.uri import (
    NameAddr,
    SipUri,
    TelUri,
    _find_lt_outside_quotes,
    format_params,
    parse_name_addr,
    parse_sip_uri,
    parse_uri,
)

# -- SIP URIs (19.1.1) -------------------------------------------------------------------


def test_full_sip_uri_every_part() -> None:
    uri = parse_uri("sip:alice:secretword@atlanta.com:5070;transport=tcp;lr?subject=project")
    assert isinstance(uri, SipUri)
    assert uri.scheme == "sip"
    assert uri.user == "alice"
    assert uri.password == "secretword"
    assert uri.host == "atlanta.com"
    assert uri.port == 5070
    assert uri.params == {"transport": "tcp", "lr": None}
    assert uri.headers == "subject=project"
    assert uri.transport == "tcp"
    assert uri.host_port() == ("atlanta.com", 5070)


def test_host_only_uri_has_no_user_and_default_port() -> None:
    uri = parse_sip_uri("sip:10.180.110.58")
    assert uri.user is None
    assert uri.port is None
    assert uri.transport == "udp"
    assert uri.host_port() == ("10.180.110.58", 5060)
    assert uri.host_port(default_port=5080) == ("10.180.110.58", 5080)


def test_sips_defaults_to_5061() -> None:
    uri = parse_sip_uri("sips:bob@biloxi.com")
    assert uri.scheme == "sips"
    assert uri.host_port() == ("biloxi.com", 5061)


def test_scheme_and_host_are_case_insensitive_user_is_not() -> None:
    uri = parse_sip_uri("SIP:Alice@AtLanta.COM;Transport=TCP")
    assert uri.scheme == "sip"
    assert uri.host == "atlanta.com"
    assert uri.user == "Alice"  # 19.1.4: the user part compares case-sensitively
    assert uri.params == {"transport": "TCP"}
    assert uri.transport == "tcp"


@pytest.mark.parametrize(
    ("text", "user", "unescaped"),
    [
        ("sip:%61lice@atlanta.com", "%61lice", "alice"),
        ("sip:kiosk%2D017@visio-relais.example", "kiosk%2D017", "kiosk-017"),
        ("sip:%C3%A9lodie@example.com", "%C3%A9lodie", "élodie"),
        (
            "sip:+33123456789;phone-context=+33@gw.example;user=phone",
            "+33123456789;phone-context=+33",
            "+33123456789;phone-context=+33",
        ),
    ],
)
def test_escaped_user_parts(text: str, user: str, unescaped: str) -> None:
    uri = parse_sip_uri(text)
    assert uri.user == user  # kept escaped, so str() gives back what was received
    assert uri.user_unescaped == unescaped
    assert str(uri) == text


def test_user_part_with_semicolon_parameter_and_escaped_at() -> None:
    # As in the RFC 4475 torture tests: ";" is legal in the user part (user-unreserved), and
    # the host is what follows the "@", not the text before the first ";".
    uri = parse_sip_uri("sip:user;par=u%40example.net@example.com")
    assert uri.host == "example.com"
    assert uri.user == "user;par=u%40example.net"
    assert uri.user_unescaped == "user;par=u@example.net"
    assert uri.params == {}


def test_at_sign_in_uri_headers_does_not_become_userinfo() -> None:
    # Refer-To values often carry an unescaped Call-ID with "@" in the Replaces header.
    uri = parse_sip_uri("sip:10.0.0.1?Replaces=abc@10.0.0.2%3Bto-tag%3D1")
    assert uri.user is None
    assert uri.host == "10.0.0.1"
    assert uri.headers == "Replaces=abc@10.0.0.2%3Bto-tag%3D1"


@pytest.mark.parametrize(
    ("text", "host", "port", "bare"),
    [
        ("sip:[2001:db8::10]", "[2001:db8::10]", None, "2001:db8::10"),
        ("sip:alice@[2001:db8::10]:5070", "[2001:db8::10]", 5070, "2001:db8::10"),
        (
            "sip:[::ffff:192.0.2.1]:5060;transport=tcp",
            "[::ffff:192.0.2.1]",
            5060,
            "::ffff:192.0.2.1",
        ),
    ],
)
def test_ipv6_references(text: str, host: str, port: int | None, bare: str) -> None:
    uri = parse_sip_uri(text)
    assert uri.host == host
    assert uri.port == port
    assert uri.host_port()[0] == bare
    assert str(uri) == text


@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_port_out_of_range(port: str) -> None:
    with pytest.raises(SipParseError, match="port out of range") as info:
        parse_uri(f"sip:alice@atlanta.com:{port}")
    assert info.value.status == 400


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:alice@",
        "sip:alice@atlanta.com:50a",
        "sip:alice@atlan ta.com",
        "sip:alice@[2001:db8::1",
        "sip:alice@atlanta.com;=tcp",
        "alice@atlanta.com",
        "",
    ],
)
def test_malformed_sip_uris(text: str) -> None:
    with pytest.raises(SipParseError) as info:
        parse_uri(text)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "text",
    [
        "http://www.example.com/",
        "mailto:agent@caf.example",
        "urn:service:sos",
        "h323:caf-station@10.0.0.9",  # digits are legal in a scheme (RFC 3986 3.1)
        "im:kiosk@example.com",
    ],
)
def test_unsupported_scheme_is_416(text: str) -> None:
    with pytest.raises(SipParseError, match="unsupported URI scheme") as info:
        parse_uri(text)
    assert info.value.status == 416


def test_parse_sip_uri_refuses_tel() -> None:
    with pytest.raises(SipParseError, match="SIP URI is required"):
        parse_sip_uri("tel:+33123456789")


def test_with_and_without_params_leave_the_original_alone() -> None:
    uri = parse_sip_uri("sip:bob@biloxi.com;transport=udp")
    changed = uri.with_params(transport="tcp", lr=None)
    assert str(changed) == "sip:bob@biloxi.com;transport=tcp;lr"
    assert str(changed.without_params("transport")) == "sip:bob@biloxi.com;lr"
    assert str(uri) == "sip:bob@biloxi.com;transport=udp"


def test_format_params() -> None:
    assert format_params({}) == ""
    assert format_params({"lr": None, "maddr": "239.255.255.1", "ttl": "15"}) == (
        ";lr;maddr=239.255.255.1;ttl=15"
    )


# -- tel URIs (RFC 3966) --------------------------------------------------------------


def test_global_tel_uri() -> None:
    uri = parse_uri("tel:+33-1-23-45-67-89")
    assert isinstance(uri, TelUri)
    assert uri.number == "+33-1-23-45-67-89"
    assert uri.user_unescaped == "+33123456789"
    assert str(uri) == "tel:+33-1-23-45-67-89"


def test_local_tel_uri_with_context() -> None:
    uri = parse_uri("TEL:3979;phone-context=manche.visio-relais.example;ext=12")
    assert isinstance(uri, TelUri)
    assert uri.number == "3979"
    assert uri.params == {"phone-context": "manche.visio-relais.example", "ext": "12"}


@pytest.mark.parametrize("text", ["tel:", "tel:+33 1 23", "tel:abc@host"])
def test_malformed_tel(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uri(text)


# -- str() round trips -------------------------------------------------------------------

ROUND_TRIP = [
    "sip:alice@atlanta.com",
    "sips:bob:pw@biloxi.com:5061;transport=tls",
    "sip:+33123456789@gw.example;user=phone",
    "sip:carol@chicago.com;lr;maddr=239.255.255.1;ttl=15",
    "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
    "sip:conference0_alias@rd.pexip.com",
    "sip:[2001:db8::1]:5080;transport=tcp",
    "tel:+1-201-555-0123;phone-context=example.com",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_str_round_trip(text: str) -> None:
    uri = parse_uri(text)
    assert str(uri) == text
    assert parse_uri(str(uri)) == uri


_USER = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,", min_size=1)
_HOST = st.from_regex(r"[a-z][a-z0-9\-]{0,10}(\.[a-z][a-z0-9\-]{0,10}){0,3}", fullmatch=True)
_PARAM = st.tuples(
    st.from_regex(r"[a-z][a-z0-9\-]{0,8}", fullmatch=True),
    st.none() | st.from_regex(r"[a-zA-Z0-9\-.]{1,8}", fullmatch=True),
)


@settings(max_examples=200, deadline=None)
@given(
    scheme=st.sampled_from(["sip", "sips"]),
    user=st.none() | _USER,
    host=_HOST,
    port=st.none() | st.integers(1, 65535),
    params=st.lists(_PARAM, max_size=4, unique_by=lambda p: p[0]),
)
def test_generated_uris_round_trip(
    scheme: str,
    user: str | None,
    host: str,
    port: int | None,
    params: list[tuple[str, str | None]],
) -> None:
    uri = SipUri(scheme, user, host, port, dict(params))
    parsed = parse_sip_uri(str(uri))
    assert parsed == uri
    assert str(parsed) == str(uri)


# -- name-addr and addr-spec (20.10) ------------------------------------------------------


def test_name_addr_with_quoted_display_and_tag() -> None:
    na = parse_name_addr('"TE002" <sip:TE002-sip@rd.pexip.com>;tag=81b7df65ad9d4')
    assert na.display == '"TE002"'
    assert isinstance(na.uri, SipUri)
    assert na.uri.user == "TE002-sip"
    assert na.tag == "81b7df65ad9d4"
    assert str(na) == '"TE002" <sip:TE002-sip@rd.pexip.com>;tag=81b7df65ad9d4'


def test_name_addr_unquoted_display_tokens() -> None:
    na = parse_name_addr("Bob Smith <sip:bob@biloxi.com>")
    assert na.display == "Bob Smith"
    assert na.params == {}


def test_uri_parameters_inside_brackets_header_parameters_outside() -> None:
    na = parse_name_addr("<sip:alice@pc33.atlanta.com;transport=tcp>;expires=3600;q=0.7")
    assert isinstance(na.uri, SipUri)
    assert na.uri.params == {"transport": "tcp"}
    assert na.params == {"expires": "3600", "q": "0.7"}


def test_addr_spec_parameters_are_header_parameters() -> None:
    # 20.10: without angle brackets every ";param" after the URI belongs to the header.
    na = parse_name_addr("sip:bob@biloxi.com;tag=a6c85cf;expires=60")
    assert isinstance(na.uri, SipUri)
    assert na.uri.params == {}
    assert na.tag == "a6c85cf"
    assert na.params["expires"] == "60"


@pytest.mark.parametrize(
    ("text", "display"),
    [
        ('"Doe, John" <sip:john@example.com>', '"Doe, John"'),
        ('"Mairie; guichet 2" <sip:kiosk@example.com>;tag=x', '"Mairie; guichet 2"'),
        ('"A \\"quoted\\" word" <sip:q@example.com>', '"A \\"quoted\\" word"'),
        ('"Kiosk <Saint-Lô>" <sip:kiosk-050@example.com>', '"Kiosk <Saint-Lô>"'),
        ('"Élodie Lefèvre" <sip:elodie@example.com>', '"Élodie Lefèvre"'),
        ('"" <sip:anonymous@anonymous.invalid>', '""'),
    ],
)
def test_quoted_display_names(text: str, display: str) -> None:
    na = parse_name_addr(text)
    assert na.display == display
    assert isinstance(na.uri, SipUri)
    assert na.uri.host.endswith(".com") or na.uri.host.endswith(".invalid")
    assert str(parse_name_addr(str(na))) == str(na)


def test_name_addr_with_tel_uri() -> None:
    na = parse_name_addr("<tel:+33123456789>;tag=1928301774")
    assert isinstance(na.uri, TelUri)
    assert na.tag == "1928301774"


def test_with_tag_copies() -> None:
    na = parse_name_addr("<sip:bob@biloxi.com>")
    tagged = na.with_tag("314159")
    assert tagged.tag == "314159"
    assert na.tag is None
    assert str(tagged) == "<sip:bob@biloxi.com>;tag=314159"


def test_wildcard_contact() -> None:
    na = parse_name_addr(" * ")
    assert na.wildcard
    assert str(na) == "*"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<sip:alice@atlanta.com", "unterminated '<'"),
        ('"Alice <sip:alice@atlanta.com>', "quoted display name without a <URI>"),
        ('"Alice" sip:alice@atlanta.com', "quoted display name without a <URI>"),
        ("<sip:alice@atlanta.com> junk", "junk after '>'"),
        ("<sip:alice@atlanta.com>;=x", "empty URI parameter name"),
        ("<>", "malformed URI"),
    ],
)
def test_malformed_name_addr(text: str, message: str) -> None:
    with pytest.raises(SipParseError, match=message):
        parse_name_addr(text)


def test_unsupported_scheme_in_name_addr_is_416() -> None:
    with pytest.raises(SipParseError) as info:
        parse_name_addr('"Web" <https://example.com/agent>')
    assert info.value.status == 416


def test_name_addr_equality_is_structural() -> None:
    a = parse_name_addr("<sip:bob@biloxi.com>;tag=1")
    b = NameAddr(uri=parse_uri("sip:bob@biloxi.com"), params={"tag": "1"})
    assert a == b


def _lt_by_hand(text: str) -> int:
    """The first "<" outside quotes, one character at a time (the reference)."""
    quoted = escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "<" and not quoted:
            return i
    return -1


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet='"\\<> a;', max_size=30))
def test_lt_outside_quotes_matches_a_character_scan(text: str) -> None:
    assert _find_lt_outside_quotes(text) == _lt_by_hand(text)


def test_quoted_display_names_with_brackets_and_escapes() -> None:
    na = parse_name_addr(r'"Mairie \"<annexe>\" de Vire" <sip:kiosk-050@example.fr>;tag=1')
    assert na.display == r'"Mairie \"<annexe>\" de Vire"'
    assert str(na.uri) == "sip:kiosk-050@example.fr" and na.tag == "1"
    with pytest.raises(SipParseError):
        parse_name_addr('"unterminated <sip:a@b>')
