"""received and rport stamping of a request's top Via (RFC 3261 18.2.1, RFC 3581 4).

The sans-IO side: :meth:`Via.stamped` on its own, then the transaction layer, whose
responses copy the stamped Via (8.2.6.2) so that a client behind NAT learns the
address and port the gateway saw. No sockets: the layer is fed parsed bytes and a
source address.
"""

from __future__ import annotations

import pytest

from gateway.sip.message import (
    Request,
    Via,
    make_response,
    parse_message,
    salvage_error_response,
)
from gateway.sip.transaction import RequestReceived, TransactionLayer


def via(text: str) -> Via:
    return Via.parse(text)


@pytest.mark.parametrize(
    ("sent", "source", "expected"),
    [
        # sent-by is the source address and no rport: nothing to add (18.2.1)
        ("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKa1", ("192.0.2.7", 5060), None),
        # another address: received (a NAT rewrote the source)
        (
            "SIP/2.0/UDP 10.0.0.4:5060;branch=z9hG4bKa2",
            ("198.51.100.3", 5060),
            {"branch": "z9hG4bKa2", "received": "198.51.100.3"},
        ),
        # a host name is never the source address: received always
        (
            "SIP/2.0/UDP kiosk.lessay.example:5060;branch=z9hG4bKa3",
            ("192.0.2.7", 5060),
            {"branch": "z9hG4bKa3", "received": "192.0.2.7"},
        ),
        # an empty rport: received even for the same address, rport = source port (RFC 3581 4)
        (
            "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKa4;rport",
            ("192.0.2.7", 61002),
            {"branch": "z9hG4bKa4", "rport": "61002", "received": "192.0.2.7"},
        ),
        # behind NAT with rport: both
        (
            "SIP/2.0/UDP 10.0.0.4:5062;rport;branch=z9hG4bKa5",
            ("198.51.100.3", 40000),
            {"rport": "40000", "branch": "z9hG4bKa5", "received": "198.51.100.3"},
        ),
        # an IPv6 literal spelt otherwise is the same address
        ("SIP/2.0/UDP [2001:DB8:0::1]:5060;branch=z9hG4bKa6", ("2001:db8::1", 5060), None),
        (
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bKa7",
            ("2001:db8::2", 5060),
            {"branch": "z9hG4bKa7", "received": "2001:db8::2"},
        ),
        # a stale received from the client is replaced by what the server saw
        (
            "SIP/2.0/UDP 10.0.0.4;received=10.9.9.9;branch=z9hG4bKa8",
            ("198.51.100.3", 5060),
            {"received": "198.51.100.3", "branch": "z9hG4bKa8"},
        ),
    ],
)
def test_stamped(sent: str, source: tuple[str, int], expected: dict[str, str] | None) -> None:
    original = via(sent)
    stamped = original.stamped(source)
    if expected is None:
        assert stamped is original
        return
    assert dict(stamped.params) == expected
    assert (stamped.transport, stamped.host, stamped.port) == (
        original.transport,
        original.host,
        original.port,
    )
    # The stamped text parses back to the same value, and responses go to the source.
    again = via(str(stamped))
    assert dict(again.params) == expected
    if "rport" in expected:
        assert again.response_address() == source


def test_a_filled_rport_from_the_client_is_left_as_is() -> None:
    """RFC 3581 4 fills only an empty rport; received still says where it came from."""
    stamped = via("SIP/2.0/UDP 10.0.0.4:5060;rport=5060;branch=z9hG4bKb1").stamped(
        ("198.51.100.3", 40000)
    )
    assert stamped.params.get("rport") == "5060"
    assert stamped.params.get("received") == "198.51.100.3"


# -- through the transaction layer: what the client reads in the response ------------------


def incoming(top_via: str, method: str = "OPTIONS", more_vias: tuple[str, ...] = ()) -> Request:
    vias = "".join(f"Via: {v}\r\n" for v in (top_via, *more_vias))
    raw = (
        f"{method} sip:gw@192.0.2.20 SIP/2.0\r\n{vias}"
        "Max-Forwards: 70\r\n"
        "From: <sip:kiosk-lessay@visio.example>;tag=f1\r\n"
        "To: <sip:gw@visio.example>\r\n"
        "Call-ID: nat-1@10.0.0.4\r\n"
        f"CSeq: 7 {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(raw)
    assert isinstance(message, Request)
    return message


def answer(
    layer: TransactionLayer, req: Request, source: tuple[str, int], transport: str = "udp"
) -> tuple[bytes, tuple[str, int]]:
    layer.receive(req, source, transport, 0.0)
    event = layer.next_event()
    assert isinstance(event, RequestReceived) and event.key is not None
    layer.send_response(event.key, make_response(event.request, 200), 0.0)
    (out,) = layer.datagrams_to_send()
    return out.data, out.dest


def test_response_tells_a_natted_client_its_public_address() -> None:
    layer = TransactionLayer()
    req = incoming(
        "SIP/2.0/UDP 10.0.0.4:5062;branch=z9hG4bKc1;rport",
        more_vias=("SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKc0",),
    )
    data, dest = answer(layer, req, ("198.51.100.3", 40001))
    response = parse_message(data)
    top, second = response.vias
    assert dict(top.params) == {
        "branch": "z9hG4bKc1",
        "rport": "40001",
        "received": "198.51.100.3",
    }
    assert (
        b"Via: SIP/2.0/UDP 10.0.0.4:5062;branch=z9hG4bKc1;rport=40001;received=198.51.100.3\r\n"
        in data
    )
    # Only the top Via is the server transport's business (18.2.1).
    assert dict(second.params) == {"branch": "z9hG4bKc0"}
    assert dest == ("198.51.100.3", 40001)


def test_without_rport_a_natted_client_gets_received_and_its_via_port() -> None:
    layer = TransactionLayer()
    data, dest = answer(
        layer, incoming("SIP/2.0/UDP 10.0.0.4:5062;branch=z9hG4bKc2"), ("198.51.100.3", 40001)
    )
    top = parse_message(data).top_via
    assert dict(top.params) == {"branch": "z9hG4bKc2", "received": "198.51.100.3"}
    assert dest == ("198.51.100.3", 5062)  # 18.2.2: the received address, the sent-by port


def test_a_client_on_its_own_address_gets_its_via_back_untouched() -> None:
    layer = TransactionLayer()
    text = "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKc3"
    data, _ = answer(layer, incoming(text), ("192.0.2.7", 5060))
    assert f"Via: {text}\r\n".encode() in data


def test_tcp_requests_are_stamped_too() -> None:
    """18.2.1 applies to any transport; the response goes back on the connection."""
    layer = TransactionLayer()
    req = incoming("SIP/2.0/TCP 10.0.0.4:5062;branch=z9hG4bKc4;rport")
    data, dest = answer(layer, req, ("198.51.100.3", 40002), "tcp")
    assert dict(parse_message(data).top_via.params) == {
        "branch": "z9hG4bKc4",
        "rport": "40002",
        "received": "198.51.100.3",
    }
    assert dest == ("198.51.100.3", 40002)


def test_a_retransmission_is_matched_to_the_stamped_transaction() -> None:
    """Stamping leaves the transaction key alone: the repeat gets the same response."""
    layer = TransactionLayer()
    text = "SIP/2.0/UDP 10.0.0.4:5062;branch=z9hG4bKc5;rport"
    data, _ = answer(layer, incoming(text), ("198.51.100.3", 40003))
    layer.receive(incoming(text), ("198.51.100.3", 40003), "udp", 0.1)
    assert layer.next_event() is None
    (repeat,) = layer.datagrams_to_send()
    assert repeat.data == data


def test_a_400_to_a_malformed_request_is_stamped_too() -> None:
    """The 400 built from raw lines (21.4.1) tells the client its address as well."""
    raw = (
        b"OPTIONS sip:gw@192.0.2.20 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 10.0.0.4:5062;branch=z9hG4bKd1;rport, SIP/2.0/UDP 10.0.0.9\r\n"
        b"Max-Forwards: 70\r\n"
        b"From: <sip:kiosk-lessay@visio.example>;tag=f1\r\n"
        b"To: <sip:gw@visio.example>\r\n"
        b"Call-ID: nat-2@10.0.0.4\r\n"
        b"CSeq: 7 OPTIONS\r\n"
        b"Date: yesterday\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    reply = salvage_error_response(raw, 400, "bad Date", ("198.51.100.3", 40004))
    assert reply is not None and reply.startswith(b"SIP/2.0 400 ")
    top, second = parse_message(reply).vias
    assert dict(top.params) == {
        "branch": "z9hG4bKd1",
        "rport": "40004",
        "received": "198.51.100.3",
    }
    assert (second.host, dict(second.params)) == ("10.0.0.9", {})
    # An unparsable Via is copied as it came: no stamp, no crash.
    broken = raw.replace(b"Via: SIP/2.0/UDP 10.0.0.4:5062", b"Via: SIP/2.0/UDP 10.0.0.4:99999")
    assert salvage_error_response(broken, 400, "x", ("198.51.100.3", 1)) is None
