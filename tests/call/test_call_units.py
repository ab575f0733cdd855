"""Sans-IO pieces of the call layer: causes (RFC 3398/3326), INFO bodies, session timers
(RFC 4028) and dialogs (RFC 3261 12), with no socket and no clock."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.model.events import Dtmf, FastUpdate
from gateway.sip.causes import parse_reason, q850_from_sip, reason_header, sip_from_q850
from gateway.sip.dialog import Dialog, _strip_tag
from gateway.sip.info import FAST_UPDATE_BODY, MEDIA_CONTROL, dtmf_relay_body, parse_info
from gateway.sip.message import Request, Response, parse_message
from gateway.sip.session_timer import (
    Refresher,
    TooSmall,
    negotiate_as_uac,
    negotiate_as_uas,
    parse_session_expires,
)

# -- causes -----------------------------------------------------------------------


def test_rfc3398_mappings_both_ways() -> None:
    # RFC 3398 8.2.6.1 (SIP -> ISUP) and 7.2.4.1 (ISUP -> SIP), values from its tables.
    assert [q850_from_sip(s) for s in (404, 480, 486, 408, 503, 603, 484)] == [
        1,
        18,
        17,
        102,
        41,
        21,
        28,
    ]
    assert [sip_from_q850(c) for c in (1, 17, 18, 19, 21, 34, 102)] == [
        404,
        486,
        408,
        480,
        403,
        503,
        504,
    ]
    assert q850_from_sip(200) == 16
    assert q850_from_sip(499) == 31


def test_reason_header_round_trip_and_escaping() -> None:
    value = reason_header(17, 'station "occupée"')
    assert '"' not in value.split("text=", 1)[1].strip('"')
    assert parse_reason(value) == (17, "station 'occupée'")
    assert parse_reason('SIP;cause=200;text="x", Q.850;cause=16') == (16, "")
    assert parse_reason("SIP;cause=486") is None
    assert parse_reason(None) is None


# -- INFO bodies ------------------------------------------------------------------


def test_dtmf_relay_bodies() -> None:
    assert parse_info("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n") == Dtmf("5", 160)
    assert parse_info("application/dtmf-relay", b"Signal=#\r\n") == Dtmf("#", 250)
    # RFC 4733 3.2 event codes: 10 is '*', 11 is '#', 12-15 are A-D.
    assert parse_info("application/dtmf-relay", b"Signal=11\r\n") == Dtmf("#", 250)
    assert parse_info("application/dtmf-relay", b"Signal=15\r\n") == Dtmf("D", 250)
    assert parse_info("application/dtmf", b"7") == Dtmf("7", 250)
    assert parse_info("application/dtmf", b"77") is None
    round_trip = parse_info("application/dtmf-relay", dtmf_relay_body(Dtmf("*", 100)))
    assert round_trip == Dtmf("*", 100)


def test_fast_update_and_unknown_bodies() -> None:
    assert parse_info(MEDIA_CONTROL, FAST_UPDATE_BODY) == FastUpdate()
    assert parse_info("text/plain", b"Signal=5") is None
    assert parse_info(None, b"") is None


@given(
    st.sampled_from(["application/dtmf-relay", "application/dtmf", MEDIA_CONTROL, None]),
    st.binary(max_size=200),
)
def test_info_garbage_never_raises(content_type: str | None, body: bytes) -> None:
    result = parse_info(content_type, body)
    assert result is None or isinstance(result, Dtmf | FastUpdate)


# -- session timers (RFC 4028) --------------------------------------------------------


def invite(extra: str = "") -> Request:
    raw = (
        "INVITE sip:caf@gw SIP/2.0\r\nVia: SIP/2.0/UDP k:5060;branch=z9hG4bK1\r\n"
        "From: <sip:k@d>;tag=a\r\nTo: <sip:caf@d>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        "Contact: <sip:k@10.0.0.1:5062>\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\n"
        f"{extra}Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    return msg


def test_uas_negotiation() -> None:
    timer = negotiate_as_uas(invite("Supported: timer\r\n"), expires=1800, min_se=90)
    assert not isinstance(timer, TooSmall)
    assert (timer.interval, timer.refresher, timer.we_refresh) == (1800, Refresher.UAC, False)
    timer = negotiate_as_uas(invite(), expires=1800, min_se=90)
    assert not isinstance(timer, TooSmall)
    assert timer.refresher is Refresher.UAS and timer.we_refresh
    small = negotiate_as_uas(invite("Session-Expires: 60\r\n"), expires=1800, min_se=90)
    assert small == TooSmall(90)
    asked = negotiate_as_uas(
        invite("Supported: timer\r\nSession-Expires: 600;refresher=uas\r\n"),
        expires=1800,
        min_se=90,
    )
    assert not isinstance(asked, TooSmall)
    assert (asked.interval, asked.refresher, asked.header()) == (
        600,
        Refresher.UAS,
        "600;refresher=uas",
    )
    # RFC 4028 10: refresh at half, give up at interval - min(32, interval/3).
    assert asked.refresh_after == 300 and asked.expire_after == 568


def test_uac_negotiation_and_bad_values() -> None:
    ok = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP gw;branch=z9hG4bK2\r\nFrom: <sip:a@b>;tag=1\r\n"
        b"To: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nSession-Expires: 90\r\n\r\n"
    )
    assert isinstance(ok, Response)
    timer = negotiate_as_uac(ok)
    assert timer is not None and timer.we_refresh and timer.expire_after == 60
    assert parse_session_expires("abc;refresher=uac") is None
    assert parse_session_expires("120;refresher=xyz") == (120, None)


# -- dialogs (RFC 3261 12) ------------------------------------------------------------


def test_uas_dialog_and_in_dialog_requests() -> None:
    request = invite()
    dialog = Dialog.as_uas(request, "ourtag", ("10.0.0.1", 5062), "udp")
    assert dialog.route_set == ["<sip:p1;lr>", "<sip:p2;lr>"]  # 12.1.1: kept in order
    assert dialog.remote_target == "sip:k@10.0.0.1:5062"
    assert dialog.local_uri == "<sip:caf@d>" and dialog.remote_uri == "<sip:k@d>"
    bye = dialog.new_request("BYE", "SIP/2.0/UDP gw:5060;branch=z9hG4bKb")
    assert bye.cseq.seq == 1 and bye.headers.get_all("route") == dialog.route_set
    assert bye.from_.tag == "ourtag" and bye.to.tag == "a"
    assert dialog.new_request("INFO", "SIP/2.0/UDP gw;branch=z9hG4bKc").cseq.seq == 2
    assert str(dialog.next_hop()) == "sip:p1;lr"  # loose routing: first route

    # 12.2.2: a CSeq not above the last one is out of order; a higher one moves it on.
    def in_dialog(seq: int) -> Request:
        raw = (
            "INFO sip:gw SIP/2.0\r\nVia: SIP/2.0/UDP k;branch=z9hG4bK9\r\n"
            "From: <sip:k@d>;tag=a\r\nTo: <sip:caf@d>;tag=ourtag\r\nCall-ID: c1\r\n"
            f"CSeq: {seq} INFO\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        msg = parse_message(raw)
        assert isinstance(msg, Request)
        return msg

    assert not dialog.check_remote_cseq(in_dialog(1))
    assert dialog.check_remote_cseq(in_dialog(2)) and dialog.remote_seq == 2
    assert not dialog.check_remote_cseq(in_dialog(2))


def test_uac_dialog_reverses_routes_and_acks_with_invite_cseq() -> None:
    request = invite()
    ok = parse_message(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP k:5060;branch=z9hG4bK1\r\nFrom: <sip:k@d>;tag=a\r\n"
        b"To: <sip:caf@d>;tag=st\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
        b"Contact: <sip:station@10.0.0.9>\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\n\r\n"
    )
    assert isinstance(ok, Response)
    dialog = Dialog.as_uac(request, ok, ("10.0.0.9", 5060), "udp")
    assert dialog.route_set == ["<sip:p2;lr>", "<sip:p1;lr>"]  # 12.1.2: reversed
    assert dialog.remote_tag == "st" and dialog.remote_target == "sip:station@10.0.0.9"
    ack = dialog.ack_for_2xx(1, "gw", 5060)
    assert ack.cseq.seq == 1 and ack.method == "ACK"
    assert ack.top_via.branch != request.top_via.branch  # 13.2.2.4: a new transaction


def test_strip_tag_only_removes_the_header_parameter() -> None:
    assert _strip_tag('"K" <sip:k@d;tag=uri>;tag=abc;x=1', "abc") == '"K" <sip:k@d;tag=uri>;x=1'
    assert _strip_tag("<sip:k@d>", None) == "<sip:k@d>"
