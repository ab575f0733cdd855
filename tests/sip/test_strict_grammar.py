"""The strict grammar of RFC 3261 25.1 where the torture set (RFC 4475 3.1.2) relies on it.

Sans-IO: :func:`parse_message` must refuse with a 400 what RFC 3261 calls malformed
(spaces in an addr-spec, a display name that is neither tokens nor quoted, URI headers
in a Request-URI or in an unbracketed URI, a Date that is not RFC 1123 in GMT, an
Expires out of range), and keep accepting the legal look-alikes. A response copies the
CSeq as received.
"""

from __future__ import annotations

import pytest

from gateway.sip.errors import SipParseError
from gateway.sip.message import Request, make_response, parse_message
from gateway.sip.uri import SipUri, parse_name_addr, parse_uri


def options(*extra: str, uri: str = "sip:gw@visio.example", method: str = "OPTIONS") -> bytes:
    lines = [
        f"{method} {uri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKsg1",
        "Max-Forwards: 70",
        "Call-ID: strict-1@192.0.2.7",
        f"CSeq: 4 {method}",
        *extra,
    ]
    if not any(e.startswith("From:") for e in extra):
        lines.append("From: <sip:kiosk@visio.example>;tag=a")
    if not any(e.startswith("To:") for e in extra):
        lines.append("To: <sip:gw@visio.example>")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


MALFORMED = {
    "space in a bracketed addr-spec": options("To: <sip:agent @visio.example>"),
    "space in an unbracketed addr-spec": options("To: sip:agent @visio.example"),
    "space in the Contact URI": options("Contact: <sip:kiosk@192.0.2.7 ;transport=udp>"),
    "tab in the Request-URI user": options(uri="sip:ag\tent@visio.example"),
    "at sign in an unquoted display name": options(
        "From: Mairie@Lessay <sip:k@visio.example>;tag=a"
    ),
    "colon in an unquoted display name": options("From: Accueil: CAF <sip:k@visio.example>;tag=a"),
    "text after a quoted display name": options(
        'From: "Mairie" annexe <sip:k@visio.example>;tag=a'
    ),
    "escaped headers in the Request-URI": options(uri="sip:caf@visio.example?Subject=x"),
    "unbracketed Contact with URI headers": options("Contact: sip:k@192.0.2.7?Route=%3Csip:x%3E"),
    "unbracketed From with URI headers": options("From: sip:k@visio.example?Subject=x;tag=a"),
    "Date in a local time zone": options("Date: Fri, 04 Dec 2026 15:00:00 CET"),
    "Date in ISO 8601": options("Date: 2026-12-04T14:00:00Z"),
    "Date with an impossible hour": options("Date: Fri, 04 Dec 2026 25:00:00 GMT"),
    "Expires out of range": options(f"Expires: {2**32}"),
    "Expires negative": options("Expires: -1"),
}


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_requests_get_400(data: bytes) -> None:
    with pytest.raises(SipParseError) as err:
        parse_message(data)
    assert err.value.status == 400


LEGAL = {
    "token display name of several words": options(
        "From: Mairie de Lessay <sip:k@visio.example>;tag=a"
    ),
    "quoted display name with specials": options(
        'From: "Mairie: annexe @ Lessay \\"2\\"" <sip:k@visio.example>;tag=a'
    ),
    "bracketed Contact with URI headers": options("Contact: <sip:k@192.0.2.7?Subject=x>"),
    "unbracketed Contact with header parameters": options("Contact: sip:k@192.0.2.7;expires=60"),
    "wildcard Contact": options("Contact: *", "Expires: 0", method="REGISTER"),
    "Date in RFC 1123 GMT": options("Date: Fri, 04 Dec 2026 14:00:00 GMT"),
    "largest Expires": options(f"Expires: {2**32 - 1}"),
    "user-unreserved characters in the Request-URI user": options(
        uri="sip:a.b_(c)!~*'&=+$,;?/:p&=+$,@visio.example;lr"
    ),
}


@pytest.mark.parametrize("data", list(LEGAL.values()), ids=list(LEGAL))
def test_legal_look_alikes_parse(data: bytes) -> None:
    assert isinstance(parse_message(data), Request)


def test_unbracketed_parameters_belong_to_the_header() -> None:
    """RFC 3261 20.10: without brackets, ;expires is a Contact parameter, not the URI's."""
    contact = parse_name_addr("sip:k@192.0.2.7;transport=udp;expires=60")
    assert isinstance(contact.uri, SipUri)
    assert dict(contact.uri.params) == {}
    assert dict(contact.params) == {"transport": "udp", "expires": "60"}


def test_a_user_with_reserved_characters_is_read_as_userinfo() -> None:
    uri = parse_uri("sip:a.b_(c)!~*'&=+$,;?/:p&=+$,@visio.example;lr")
    assert isinstance(uri, SipUri)
    assert (uri.user, uri.password, uri.host) == ("a.b_(c)!~*'&=+$,;?/", "p&=+$,", "visio.example")
    assert dict(uri.params) == {"lr": None}
    # The lenient reading still comes first: an "@" in a headers part is not userinfo.
    refer = parse_uri("sip:agent@visio.example?Replaces=abc@192.0.2.7")
    assert isinstance(refer, SipUri)
    assert (refer.user, refer.host, refer.headers) == (
        "agent",
        "visio.example",
        "Replaces=abc@192.0.2.7",
    )


def test_a_response_copies_the_cseq_as_received() -> None:
    """8.2.6.2: the client matches on the CSeq method as it spelt it (17.1.3)."""
    request = parse_message(options(method="Odd.Method~1"))
    assert isinstance(request, Request)
    response = parse_message(make_response(request, 501).serialize())
    assert response.headers.get("cseq") == "4 Odd.Method~1"
