"""Tests for gateway.sip.message: parsing and serialising SIP messages (RFC 3261 7, 20, 25).

The odd-but-valid and invalid messages are written for this project in the spirit of the
RFC 4475 torture tests; none is copied from it.
"""

from __future__ import annotations

import pytest
from sip_vectors import SipVector, load_vectors

from gateway.sip.errors import SipParseError, SipUsageError
from gateway.sip.message import (
    MAX_BODY_BYTES,
    MAX_HEADER_BYTES,
    CSeq,
    Headers,
    Request,
    Response,
    Via,
    canonical_name,
    make_response,
    parse_message,
    salvage_error_response,
    split_list,
)
from gateway.sip.uri import SipUri


def crlf(text: str) -> bytes:
    """Test messages are written with "\\n" line ends; the wire wants CRLF."""
    return text.replace("\n", "\r\n").encode()


SDP = (
    "v=0\r\no=kiosk 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 49170 RTP/AVP 0\r\n"
)

INVITE = (
    crlf(
        f"""INVITE sip:caf@visio-relais.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport
Max-Forwards: 70
To: "CAF accueil" <sip:caf@visio-relais.example>
From: "Mairie de Coutances" <sip:kiosk-050@visio-relais.example>;tag=1928301774
Call-ID: a84b4c76e66710@192.0.2.10
CSeq: 314159 INVITE
Contact: <sip:kiosk-050@192.0.2.10>
Content-Type: application/sdp
Content-Length: {len(SDP)}

"""
    )
    + SDP.encode()
)


def request_with(*lines: str, method: str = "OPTIONS", body: bytes = b"") -> bytes:
    """A minimal valid request whose header lines are replaced/extended by ``lines``."""
    base = {
        "via": "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKnashds8",
        "to": "To: <sip:caf@visio-relais.example>",
        "from": "From: <sip:kiosk-050@visio-relais.example>;tag=88sja8x",
        "call-id": "Call-ID: 987asjd97y7atg",
        "cseq": f"CSeq: 1 {method}",
    }
    extra: list[str] = []
    replaced: set[str] = set()
    for line in lines:
        name = canonical_name(line.partition(":")[0].strip())
        if name in base and name not in replaced:
            base[name] = line
            replaced.add(name)
        else:
            extra.append(line)
    head = [f"{method} sip:caf@visio-relais.example SIP/2.0", *base.values(), *extra]
    return ("\r\n".join(h for h in head if h) + "\r\n\r\n").encode() + body


def without(header: str) -> bytes:
    """The minimal request missing one mandatory header."""
    return request_with(f"{header}:", method="OPTIONS").replace(f"{header}:\r\n".encode(), b"")


# -- a plain request ---------------------------------------------------------------------


def test_parse_invite() -> None:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.uri_text == "sip:caf@visio-relais.example"
    assert isinstance(msg.uri, SipUri) and msg.uri.user == "caf"
    assert msg.call_id == "a84b4c76e66710@192.0.2.10"
    assert msg.cseq == CSeq(314159, "INVITE")
    assert msg.top_via.branch == "z9hG4bK776asdhds"
    assert msg.top_via.rport_requested
    assert msg.from_.tag == "1928301774"
    assert msg.from_.display == '"Mairie de Coutances"'
    assert msg.to.tag is None
    assert [str(c.uri) for c in msg.contacts] == ["sip:kiosk-050@192.0.2.10"]
    assert msg.content_type == "application/sdp"
    assert msg.body == SDP.encode()
    assert repr(msg) == "<Request INVITE sip:caf@visio-relais.example>"


def test_parse_response() -> None:
    data = crlf(
        """SIP/2.0 180 Ringing
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;received=198.51.100.4;rport=6011
To: <sip:caf@visio-relais.example>;tag=a6c85cf
From: <sip:kiosk-050@visio-relais.example>;tag=1928301774
Call-ID: a84b4c76e66710@192.0.2.10
CSeq: 314159 INVITE
Content-Length: 0

"""
    )
    msg = parse_message(data)
    assert isinstance(msg, Response)
    assert msg.status == 180
    assert msg.reason == "Ringing"
    assert msg.to.tag == "a6c85cf"
    assert msg.top_via.response_address() == ("198.51.100.4", 6011)
    assert msg.body == b""
    assert repr(msg) == "<Response 180 Ringing>"


# -- header forms (7.3) -------------------------------------------------------------------


def test_compact_header_names() -> None:
    data = crlf(
        """INVITE sip:caf@visio-relais.example SIP/2.0
v: SIP/2.0/TCP 192.0.2.10;branch=z9hG4bKcompact
t: <sip:caf@visio-relais.example>
f: <sip:kiosk-050@visio-relais.example>;tag=456248
i: 0ha0isndaksdj@192.0.2.10
CSeq: 8 INVITE
m: <sip:kiosk-050@192.0.2.10;transport=tcp>
k: timer, 100rel
c: application/sdp
l: 5

v=0
"""
    )
    msg = parse_message(data)
    assert isinstance(msg, Request)
    assert msg.top_via.transport == "TCP"
    assert msg.to.uri == msg.uri
    assert msg.from_.tag == "456248"
    assert msg.call_id == "0ha0isndaksdj@192.0.2.10"
    assert len(msg.contacts) == 1
    assert msg.headers.get_all("Supported") == ["timer", "100rel"]
    assert msg.content_type == "application/sdp"
    assert msg.body == b"v=0\r\n"
    # names stay as received on the way out; Content-Length is recomputed in long form
    out = msg.serialize()
    assert b"\r\nv: SIP/2.0/TCP" in out
    assert b"\r\ni: 0ha0isndaksdj" in out
    assert b"\r\nl:" not in out
    assert out.endswith(b"\r\nContent-Length: 5\r\n\r\nv=0\r\n")


def test_header_names_are_case_insensitive() -> None:
    msg = parse_message(
        request_with(
            "VIA: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKcase",
            "call-id: lower@case",
            "cSeQ: 1 OPTIONS",
            "X-Kiosk-Site: Saint-Lô",
        )
    )
    assert msg.call_id == "lower@case"
    assert msg.headers.get("Call-ID") == msg.headers.get("I") == "lower@case"
    assert msg.headers.get("x-kiosk-site") == "Saint-Lô"
    assert "x-KIOSK-site" in msg.headers
    assert "Subject" not in msg.headers
    assert ("VIA", "SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKcase") in list(msg.headers.items())


def test_folded_header_lines_are_joined() -> None:
    data = crlf(
        """OPTIONS sip:caf@visio-relais.example SIP/2.0
Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKfold
To: <sip:caf@visio-relais.example>
From: <sip:kiosk-050@visio-relais.example>
 ;tag=folded1
Call-ID: fold@192.0.2.10
CSeq:
\t 7
\t OPTIONS
Subject: a subject
   spread over
\tthree lines

"""
    )
    msg = parse_message(data)
    assert msg.from_.tag == "folded1"
    assert msg.cseq == CSeq(7, "OPTIONS")
    assert msg.headers.get("subject") == "a subject spread over three lines"


def test_comma_separated_and_repeated_list_headers() -> None:
    data = request_with(
        "Via: SIP/2.0/UDP first.example.com:4000;branch=z9hG4bKfirst, "
        "SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKsecond",
        "Via: SIP/2.0/TCP third.example.com;branch=z9hG4bKthird",
        'Contact: "Doe, John" <sip:john@192.0.2.1>;q=0.5, <sip:john@192.0.2.2;transport=tcp>',
        "Contact: sip:john@192.0.2.3;expires=60",
        "Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>",
        "Route: <sip:p3.example.com;lr>",
        "Allow: INVITE, ACK,CANCEL , BYE",
    )
    msg = parse_message(data)
    assert [v.branch for v in msg.vias] == ["z9hG4bKfirst", "z9hG4bKsecond", "z9hG4bKthird"]
    assert msg.vias[1].host == "[2001:db8::9]"
    assert msg.vias[1].port == 5070
    assert msg.top_via.host == "first.example.com"
    contacts = msg.contacts
    assert [c.display for c in contacts] == ['"Doe, John"', None, None]
    assert contacts[0].params == {"q": "0.5"}
    assert contacts[2].params == {"expires": "60"}  # addr-spec: header parameter (20.10)
    assert msg.headers.get_all("route") == [
        "<sip:p1.example.com;lr>",
        "<sip:p2.example.com;lr>",
        "<sip:p3.example.com;lr>",
    ]
    assert msg.headers.get_all("allow") == ["INVITE", "ACK", "CANCEL", "BYE"]


def test_non_list_headers_are_not_split_on_commas() -> None:
    msg = parse_message(
        request_with(
            'Authorization: Digest username="kiosk-050", realm="visio-relais.example", '
            'nonce="84a4cc6f3082121f32b42a2187831a9e", uri="sip:caf@visio-relais.example"',
            "Subject: Hello, world",
            "Subject: again",
        )
    )
    assert len(msg.headers.get_all("authorization")) == 1
    assert msg.headers.get_all("subject") == ["Hello, world", "again"]


def test_split_list_quotes_escapes_and_brackets() -> None:
    assert split_list('"a\\", b" <sip:x@y>, <sip:z@w;p=1,2>, ') == [
        '"a\\", b" <sip:x@y>',
        "<sip:z@w;p=1,2>",
    ]
    assert split_list("  ") == []
    assert split_list(" one ") == ["one"]


def test_bare_lf_line_ends_are_tolerated() -> None:
    head, body = INVITE.split(b"\r\n\r\n", 1)
    msg = parse_message(head.replace(b"\r\n", b"\n") + b"\n\n" + body)
    assert isinstance(msg, Request)
    assert msg.call_id == "a84b4c76e66710@192.0.2.10"
    assert msg.from_.tag == "1928301774"
    assert msg.body == SDP.encode()
    assert msg.serialize() == INVITE


def test_bare_lf_message_with_exact_length() -> None:
    body = b"v=0\n"
    data = request_with("Content-Length: 4", body=body).replace(b"\r\n", b"\n")
    msg = parse_message(data)
    assert msg.body == body
    assert parse_message(msg.serialize()).body == body


def test_mixed_line_ends_give_separate_headers() -> None:
    # A peer mixing CRLF and bare LF must not smuggle a header inside another's value.
    data = request_with("Subject: hi").replace(
        b"Subject: hi\r\n", b"Subject: hi\nX-Smuggled: 1\r\n"
    )
    msg = parse_message(data)
    assert msg.headers.get("subject") == "hi"
    assert msg.headers.get("x-smuggled") == "1"


def test_leading_crlf_before_start_line_is_skipped() -> None:
    msg = parse_message(b"\r\n\r\n" + INVITE)
    assert isinstance(msg, Request)


# -- odd but valid (RFC 4475 3.1.1 spirit) ------------------------------------------------


ODD_BUT_VALID = {
    "unknown method with body": (
        request_with(
            "Content-Type: text/plain", "Content-Length: 5", method="NEWMETHOD", body=b"hello"
        ),
        "NEWMETHOD",
    ),
    "escaped and semicolon user in request uri": (
        request_with().replace(
            b"OPTIONS sip:caf@visio-relais.example",
            b"OPTIONS sip:%63af;site=%40manche@visio-relais.example",
        ),
        "OPTIONS",
    ),
    "tel request uri": (
        request_with().replace(
            b"OPTIONS sip:caf@visio-relais.example", b"OPTIONS tel:+33233000000"
        ),
        "OPTIONS",
    ),
    "lower-case method is normalised": (
        request_with(method="OPTIONS").replace(b"OPTIONS sip:", b"options sip:"),
        "OPTIONS",
    ),
    "empty and unknown headers": (
        request_with("Subject:", "X-Nothing:   ", "P-Odd-Header: ~!%*_+`'"),
        "OPTIONS",
    ),
    "whitespace around colons and values": (
        request_with("Call-ID   :   spaced@host   ", "CSeq\t:\t1   OPTIONS", "Max-Forwards :0"),
        "OPTIONS",
    ),
    "display names with specials": (
        request_with(
            'To: "caf <accueil>; \\"urgent\\", ok" <sip:caf@visio-relais.example>',
            'From: "Élodie" <sip:kiosk-050@visio-relais.example;user=ip>;tag=x;foo="a=b"',
        ),
        "OPTIONS",
    ),
    "addr-spec from with tag": (
        request_with("From: sip:kiosk-050@visio-relais.example;tag=plain"),
        "OPTIONS",
    ),
    "via with ipv6, received and odd spacing": (
        request_with(
            "Via: SIP / 2.0 / UDP   [2001:db8::10] : 5070 ;branch=z9hG4bKv6;received=2001:db8::1"
        ),
        "OPTIONS",
    ),
    "utf-8 values": (request_with("Subject: Démarche CAF – numéro d'allocataire"), "OPTIONS"),
    "huge cseq just in range": (request_with(f"CSeq: {2**31 - 1} OPTIONS"), "OPTIONS"),
}


@pytest.mark.parametrize("data", [v[0] for v in ODD_BUT_VALID.values()], ids=list(ODD_BUT_VALID))
def test_odd_but_valid_messages_parse(data: bytes) -> None:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    # every mandatory header parses and the round trip is stable
    again = parse_message(msg.serialize())
    assert isinstance(again, Request)
    assert again.method == msg.method
    assert list(again.headers.items()) == [
        (n, v) for n, v in msg.headers.items() if canonical_name(n) != "content-length"
    ] + [("Content-Length", str(len(msg.body)))]
    assert again.body == msg.body


def test_odd_values_are_understood() -> None:
    msg = parse_message(ODD_BUT_VALID["escaped and semicolon user in request uri"][0])
    assert isinstance(msg, Request) and isinstance(msg.uri, SipUri)
    assert msg.uri.user_unescaped == "caf;site=@manche"
    assert msg.uri.host == "visio-relais.example"
    msg = parse_message(ODD_BUT_VALID["whitespace around colons and values"][0])
    assert msg.call_id == "spaced@host"
    assert msg.cseq == CSeq(1, "OPTIONS")
    msg = parse_message(ODD_BUT_VALID["display names with specials"][0])
    assert msg.to.display == '"caf <accueil>; \\"urgent\\", ok"'
    assert msg.from_.params == {"tag": "x", "foo": '"a=b"'}
    msg = parse_message(ODD_BUT_VALID["via with ipv6, received and odd spacing"][0])
    assert msg.top_via.host == "[2001:db8::10]"
    assert msg.top_via.port == 5070
    assert msg.top_via.response_address() == ("2001:db8::1", 5070)


def test_response_with_empty_or_utf8_reason() -> None:
    head = "\r\n".join(request_with().decode().split("\r\n")[1:])
    for start, reason in [
        ("SIP/2.0 200", ""),
        ("SIP/2.0 200 ", ""),
        ("SIP/2.0 403 Accès refusé", "Accès refusé"),
        ("SIP/2.0 699 Whatever Really", "Whatever Really"),
    ]:
        msg = parse_message(f"{start}\r\n{head}".encode())
        assert isinstance(msg, Response)
        assert msg.reason == reason


def test_datagram_body_longer_than_content_length_is_truncated() -> None:
    msg = parse_message(request_with("Content-Length: 3", body=b"abcdef"))
    assert msg.body == b"abc"


def test_datagram_without_content_length_takes_the_rest() -> None:
    msg = parse_message(request_with(body=b"abcdef"))
    assert msg.body == b"abcdef"
    assert msg.serialize().endswith(b"Content-Length: 6\r\n\r\nabcdef")


# -- invalid messages and their status codes (RFC 4475 3.1.2 spirit) --------------------


INVALID = {
    "content-length larger than body": (
        request_with("Content-Length: 10", body=b"short"),
        400,
        "exceeds",
    ),
    "content-length not a number": (request_with("Content-Length: ten"), 400, "Content-Length"),
    "negative content-length": (request_with("l: -5"), 400, "Content-Length"),
    "content-length with unicode digits": (
        request_with("Content-Length: ²"),
        400,
        "Content-Length",
    ),
    "content-length over the limit": (
        request_with(f"Content-Length: {MAX_BODY_BYTES + 1}"),
        413,
        "too large",
    ),
    "missing via": (without("Via"), 400, "missing Via"),
    "missing from": (without("From"), 400, "missing From"),
    "missing to": (without("To"), 400, "missing To"),
    "missing call-id": (without("Call-ID"), 400, "missing Call-ID"),
    "missing cseq": (without("CSeq"), 400, "missing CSeq"),
    "empty call-id": (request_with("Call-ID:"), 400, "missing Call-ID"),
    "cseq method mismatch": (request_with("CSeq: 1 INVITE"), 400, "does not match"),
    "cseq not a number": (request_with("CSeq: one OPTIONS"), 400, "malformed CSeq"),
    "cseq unicode digits": (request_with("CSeq: ١٢ OPTIONS"), 400, "CSeq"),
    "cseq superscript digit": (request_with("CSeq: ² OPTIONS"), 400, "CSeq"),
    "cseq without method": (request_with("CSeq: 1"), 400, "CSeq"),
    "cseq out of range": (request_with(f"CSeq: {2**31} OPTIONS"), 400, "out of range"),
    "cseq too long": (request_with("CSeq: 00000000001 OPTIONS"), 400, "malformed CSeq"),
    "max-forwards not a number": (request_with("Max-Forwards: many"), 400, "Max-Forwards"),
    "max-forwards superscript": (request_with("Max-Forwards: ²"), 400, "Max-Forwards"),
    "max-forwards over 255": (request_with("Max-Forwards: 256"), 400, "Max-Forwards"),
    "request version 7.0": (
        request_with().replace(b"SIP/2.0\r\nVia", b"SIP/7.0\r\nVia"),
        505,
        "unsupported version SIP/7.0",
    ),
    "unsupported request-uri scheme": (
        request_with().replace(b"sip:caf@visio-relais.example SIP", b"http://caf.example/ SIP"),
        416,
        "unsupported URI scheme",
    ),
    "malformed request-uri": (
        request_with().replace(b"sip:caf@visio-relais.example SIP", b"sip:caf@ SIP"),
        400,
        "malformed URI",
    ),
    "two spaces in request line": (
        request_with().replace(b"OPTIONS sip:", b"OPTIONS  sip:"),
        400,
        "malformed request line",
    ),
    "request line without version": (
        request_with().replace(b" SIP/2.0\r\nVia", b"\r\nVia"),
        400,
        "malformed request line",
    ),
    "method with bad characters": (
        request_with().replace(b"OPTIONS sip:", b"OPT@ONS sip:"),
        400,
        "malformed request line",
    ),
    "header line without colon": (request_with("This is not a header"), 400, "without colon"),
    "header name with space": (request_with("Bad Name: x"), 400, "invalid header name"),
    "empty header name": (request_with(": value"), 400, "invalid header name"),
    "nul byte in value": (request_with("Subject: a\x00b"), 400, "NUL"),
    "non utf-8 header": (
        request_with("Subject: caf\xe9").replace(b"caf\xc3\xa9", b"caf\xe9"),
        400,
        "UTF-8",
    ),
    "malformed via": (
        request_with("Via: SIP/2.0 192.0.2.10;branch=z9hG4bKx"),
        400,
        "malformed Via",
    ),
    "via port out of range": (
        request_with("Via: SIP/2.0/UDP 192.0.2.10:70000;branch=z9hG4bKx"),
        400,
        "Via port",
    ),
    "via rport not a number": (
        request_with("Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKx;rport=abc"),
        400,
        "rport",
    ),
    "via empty parameter": (
        request_with("Via: SIP/2.0/UDP 192.0.2.10;;branch=z9hG4bKx"),
        400,
        "Via",
    ),
    "from without uri": (request_with("From: ;tag=1"), 400, "URI"),
    "to with unterminated bracket": (request_with("To: <sip:caf@visio-relais.example"), 400, "'<'"),
    "empty message": (b"\r\n\r\n", 400, "empty message"),
}


@pytest.mark.parametrize(("data", "status", "reason"), list(INVALID.values()), ids=list(INVALID))
def test_invalid_messages_raise_with_status(data: bytes, status: int, reason: str) -> None:
    with pytest.raises(SipParseError, match=reason) as info:
        parse_message(data)
    assert info.value.status == status
    assert info.value.reason == str(info.value)


@pytest.mark.parametrize(
    ("start", "status"),
    [
        ("SIP/7.0 200 OK", 505),
        ("SIP/2.0 2000 OK", 400),
        ("SIP/2.0 099 Too Low", 400),
        ("SIP/2.0 700 Too High", 400),
        ("SIP/2.0 20x OK", 400),
        ("SIP/2.0", 400),
    ],
)
def test_invalid_status_lines(start: str, status: int) -> None:
    head = "\r\n".join(request_with().decode().split("\r\n")[1:])
    with pytest.raises(SipParseError) as info:
        parse_message(f"{start}\r\n{head}".encode())
    assert info.value.status == status


def test_huge_header_section_is_413() -> None:
    filler = "X-Filler: " + "a" * 1000
    data = request_with(*[filler] * (MAX_HEADER_BYTES // 1000 + 1))
    with pytest.raises(SipParseError, match="too large") as info:
        parse_message(data)
    assert info.value.status == 413


def test_header_section_just_under_the_limit_parses() -> None:
    base = len(request_with("X-Filler: "))
    data = request_with("X-Filler: " + "a" * (MAX_HEADER_BYTES - base))
    assert len(data) - 4 <= MAX_HEADER_BYTES
    assert parse_message(data).headers.get("x-filler") is not None


# -- serialise ----------------------------------------------------------------------------


@pytest.mark.parametrize("data", [INVITE, *[v[0] for v in ODD_BUT_VALID.values()]])
def test_serialize_keeps_every_header_in_order(data: bytes) -> None:
    msg = parse_message(data)
    out = msg.serialize()
    lines = out.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")
    expected = [
        f"{n}: {v}" for n, v in msg.headers.items() if canonical_name(n) != "content-length"
    ]
    assert lines[1:] == [*expected, f"Content-Length: {len(msg.body)}"]


def test_serialize_computes_content_length_for_new_messages() -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP gw.example;branch=z9hG4bKnew"),
            ("From", "<sip:gw@gw.example>;tag=1"),
            ("To", "<sip:caf@visio-relais.example>"),
            ("Call-ID", "new@gw.example"),
            ("CSeq", "1 MESSAGE"),
            ("Content-Length", "999"),  # stale: replaced
        ]
    )
    req = Request("MESSAGE", "sip:caf@visio-relais.example", headers, b"bonjour")
    out = req.serialize()
    assert out.startswith(b"MESSAGE sip:caf@visio-relais.example SIP/2.0\r\n")
    assert out.count(b"Content-Length") == 1
    assert out.endswith(b"Content-Length: 7\r\n\r\nbonjour")
    parsed = parse_message(out)
    assert parsed.body == b"bonjour"


def test_request_from_uri_object_keeps_it() -> None:
    uri = SipUri("sip", "caf", "visio-relais.example", 5080, {"transport": "tcp"})
    req = Request("OPTIONS", uri)
    assert req.uri is uri
    assert req.uri_text == "sip:caf@visio-relais.example:5080;transport=tcp"


def test_response_defaults_and_range() -> None:
    assert Response(486).reason == "Busy Here"
    assert Response(299).reason == "Unknown"
    assert Response(200, "Très bien").serialize().startswith("SIP/2.0 200 Très bien\r\n".encode())
    for bad in (99, 700):
        with pytest.raises(SipUsageError):
            Response(bad)


# -- Headers and Via ----------------------------------------------------------------------


def test_headers_mutation() -> None:
    h = Headers([("Via", "a"), ("Subject", "s"), ("v", "b"), ("Route", "<sip:r>")])
    assert len(h) == 4
    assert h.get_all("via") == ["a", "b"]
    h.prepend("Via", "top")
    assert h.get("v") == "top"
    h.set("Subject", "t1")
    assert h.get_all("subject") == ["t1"]
    h.set("Via", "only")
    assert h.get_all("via") == ["only"]
    assert next(iter(h.items())) == ("Via", "only")  # at the place of the first
    h.set("Priority", "urgent")
    assert list(h.items())[-1] == ("Priority", "urgent")
    copy = h.copy()
    copy.remove("route")
    assert "Route" in h
    assert "Route" not in copy
    assert 42 not in h
    h.add("l", "0")
    assert h.get("Content-Length") == "0"


def test_via_parse_and_str() -> None:
    via = Via.parse("SIP/2.0/udp PC33.Atlanta.com:5066;branch=z9hG4bK77ef;rport;received=192.0.2.4")
    assert via.transport == "UDP"
    assert via.host == "pc33.atlanta.com"
    assert via.port == 5066
    assert via.branch == "z9hG4bK77ef"
    assert via.rport_requested
    assert via.response_address() == ("192.0.2.4", 5066)
    stamped = via.with_params(rport="6000")
    assert stamped.response_address() == ("192.0.2.4", 6000)
    assert (
        str(stamped)
        == "SIP/2.0/UDP pc33.atlanta.com:5066;branch=z9hG4bK77ef;rport=6000;received=192.0.2.4"
    )
    assert Via.parse(str(stamped)) == stamped
    assert Via.parse("SIP/2.0/TLS [2001:db8::1];branch=z9hG4bKx").response_address(5061) == (
        "2001:db8::1",
        5061,
    )


def test_set_top_via_stamps_received_and_keeps_the_others() -> None:
    data = request_with(
        "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKtop;rport, "
        "SIP/2.0/UDP proxy.example;branch=z9hG4bKp"
    )
    msg = parse_message(data)
    msg.set_top_via(msg.top_via.with_params(received="198.51.100.7", rport="40000"))
    assert msg.top_via.params["received"] == "198.51.100.7"
    assert [v.branch for v in msg.vias] == ["z9hG4bKtop", "z9hG4bKp"]
    again = parse_message(msg.serialize())
    assert again.top_via.response_address() == ("198.51.100.7", 40000)
    assert len(again.vias) == 2


# -- make_response (8.2.6) -----------------------------------------------------------------


def test_make_response_copies_the_mandatory_headers_and_adds_the_to_tag() -> None:
    data = request_with(
        "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKtop;rport=5062;received=198.51.100.2, "
        "SIP/2.0/TCP proxy.example;branch=z9hG4bKp",
        "Via: SIP/2.0/UDP edge.example;branch=z9hG4bKe",
        method="INVITE",
    )
    req = parse_message(data)
    assert isinstance(req, Request)
    resp = make_response(req, 486, to_tag="callee-tag", extra=[("Retry-After", "60")])
    assert resp.status == 486 and resp.reason == "Busy Here"
    assert resp.headers.get_all("via") == req.headers.get_all("via")
    assert resp.headers.get("from") == req.headers.get("from")
    assert resp.to.tag == "callee-tag"
    assert resp.to.uri == req.to.uri
    assert resp.call_id == req.call_id
    assert resp.cseq == req.cseq
    assert resp.headers.get("retry-after") == "60"
    wire = parse_message(resp.serialize())
    assert isinstance(wire, Response)
    assert wire.status == 486
    assert [v.branch for v in wire.vias] == ["z9hG4bKtop", "z9hG4bKp", "z9hG4bKe"]
    assert wire.to.tag == "callee-tag"


def test_make_response_100_never_gets_a_tag() -> None:
    req = parse_message(request_with(method="INVITE"))
    assert isinstance(req, Request)
    assert make_response(req, 100, to_tag="t").to.tag is None


def test_make_response_keeps_an_existing_to_tag() -> None:
    req = parse_message(
        request_with("To: <sip:caf@visio-relais.example>;tag=already", method="BYE")
    )
    assert isinstance(req, Request)
    resp = make_response(req, 200, to_tag="other")
    assert resp.to.tag == "already"
    assert resp.headers.get("to") == "<sip:caf@visio-relais.example>;tag=already"


def test_make_response_with_addr_spec_to_and_body() -> None:
    req = parse_message(request_with("To: sip:caf@visio-relais.example"))
    assert isinstance(req, Request)
    resp = make_response(req, 200, "Fine", to_tag="t1", body=b"v=0\r\n")
    wire = parse_message(resp.serialize())
    assert isinstance(wire, Response)
    assert wire.reason == "Fine"
    assert wire.to.tag == "t1"
    assert wire.body == b"v=0\r\n"


# -- salvage_error_response (21.4.1) --------------------------------------------------------


def test_salvage_answers_a_request_with_a_bad_header() -> None:
    data = request_with(
        "Max-Forwards: lots",
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKs, SIP/2.0/UDP p.example;branch=z9hG4bKq",
    )
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    reply = salvage_error_response(data, info.value.status, info.value.reason)
    assert reply is not None
    resp = parse_message(reply)
    assert isinstance(resp, Response)
    assert resp.status == 400
    assert [v.branch for v in resp.vias] == ["z9hG4bKs", "z9hG4bKq"]
    assert resp.call_id == "987asjd97y7atg"
    assert resp.cseq == CSeq(1, "OPTIONS")
    assert resp.from_.tag == "88sja8x"
    assert "lots" in resp.reason


def test_salvage_keeps_the_status_of_the_error() -> None:
    data = INVALID["request version 7.0"][0]
    reply = salvage_error_response(data, 505, "Version Not Supported")
    assert reply is not None
    resp = parse_message(reply)
    assert isinstance(resp, Response) and resp.status == 505


def test_salvage_cleans_the_reason_phrase() -> None:
    reply = salvage_error_response(request_with(), 400, "bad\r\nInjected: yes\x00 " + "x" * 500)
    assert reply is not None
    resp = parse_message(reply)
    assert isinstance(resp, Response)
    assert "Injected" not in resp.headers
    assert len(resp.reason) <= 120


def test_salvage_gives_up_on_responses() -> None:
    data = b"SIP/2.0 200 OK\r\n" + request_with().split(b"\r\n", 1)[1]
    assert salvage_error_response(data, 400, "x") is None
    assert salvage_error_response(b"\r\n" + data, 400, "x") is None


@pytest.mark.parametrize("header", ["Via", "From", "To", "Call-ID", "CSeq"])
def test_salvage_needs_every_mandatory_header(header: str) -> None:
    assert salvage_error_response(without(header), 400, "Missing header") is None


def test_salvage_ignores_header_lookalikes_in_the_body() -> None:
    # A NOTIFY for REFER carries a message/sipfrag body that looks like SIP headers.
    body = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP evil.example;branch=z9hG4bKbody\r\n"
    data = request_with(
        "Event: refer",
        "Max-Forwards: x",
        "Content-Type: message/sipfrag",
        method="NOTIFY",
        body=body,
    )
    reply = salvage_error_response(data, 400, "Bad Max-Forwards")
    assert reply is not None
    resp = parse_message(reply)
    assert [v.host for v in resp.vias] == ["192.0.2.10"]


def test_salvage_refuses_to_echo_unparseable_headers() -> None:
    # The From it would copy is itself broken: the answer could not be parsed either.
    data = request_with("From: <sip:kiosk@visio-relais.example;tag=1")
    with pytest.raises(SipParseError) as info:
        parse_message(data)
    assert salvage_error_response(data, info.value.status, info.value.reason) is None


# -- captured messages ----------------------------------------------------------------------


def test_every_capture_yields_messages() -> None:
    by_file: dict[str, int] = {}
    for v in load_vectors():
        by_file[v.source] = by_file.get(v.source, 0) + 1
    assert by_file == {
        "sip_basic_do_183.pcapng": 5,
        "sip_basic_eo_180.pcapng": 5,
        "sip_dtmf_info.pcapng": 31,
        "sip_dtmf_nte_rfc4733.pcapng": 5,
        "sip_hold_resume.pcapng": 23,
        "sip_options_oob.pcapng": 2,
        "sip_prack_eo_180.pcapng": 7,
        "sip_refer_transfer.pcapng": 21,
        "tandberg-TE4.1.1-INVITE-h264-h263-bfcp.sip": 1,
    }


def test_captured_message_parses_and_round_trips(sip_vector: SipVector) -> None:
    msg = parse_message(sip_vector.data)
    # what the capture says must be what we read
    first_line = sip_vector.data.split(b"\r\n", 1)[0].decode()
    if isinstance(msg, Request):
        assert first_line.startswith(f"{msg.method} {msg.uri_text} ")
        assert msg.cseq.method == msg.method
    else:
        assert first_line.startswith(f"SIP/2.0 {msg.status}")
    declared = msg.headers.get("content-length")
    assert declared is not None and int(declared) == len(msg.body)
    assert msg.top_via.branch  # SIPp writes "branch=1": RFC 2543 style, still a branch

    again = parse_message(msg.serialize())
    assert type(again) is type(msg)
    assert again.serialize() == msg.serialize()
    if isinstance(msg, Request):
        assert isinstance(again, Request)
        assert (again.method, again.uri_text) == (msg.method, msg.uri_text)
    else:
        assert isinstance(again, Response)
        assert (again.status, again.reason) == (msg.status, msg.reason)
    assert list(again.headers.items()) == [
        (n, v) for n, v in msg.headers.items() if canonical_name(n) != "content-length"
    ] + [("Content-Length", str(len(msg.body)))]
    assert again.body == msg.body
    assert again.vias == msg.vias
    assert (again.from_, again.to, again.call_id, again.cseq) == (
        msg.from_,
        msg.to,
        msg.call_id,
        msg.cseq,
    )
    assert again.contacts == msg.contacts


def test_response_cseq_needs_a_method() -> None:
    head = "\r\n".join(request_with("CSeq: 1").decode().split("\r\n")[1:])
    with pytest.raises(SipParseError, match="malformed CSeq"):
        parse_message(f"SIP/2.0 200 OK\r\n{head}".encode())
