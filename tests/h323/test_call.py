"""One H.323 call (gateway/h323/call.py) with a fake clock and no socket.

Most tests put two engines face to face, a caller and a callee, carrying the TPKT
payloads between them; the others feed hand-built Q.931 messages to check the Q.931 5.8
error handling and the timers of Q.931 9.1.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from gateway.h323 import asn1, h245, messages, q931
from gateway.h323.call import (
    Alerted,
    CallState,
    Connected,
    DigitReceived,
    Event,
    FastUpdateRequested,
    H323Call,
    MediaReady,
    Offered,
    OpenH245Connection,
    Paused,
    Proceeding,
    Progressed,
    Released,
)
from gateway.h323.errors import H323UsageError
from gateway.h323.q931 import MessageType
from gateway.model.causes import Cause
from gateway.model.sdp import SessionDescription

CALLER_ADDRESS = ("192.0.2.1", 1720)
CALLEE_ADDRESS = ("192.0.2.2", 1720)


def sdp(port: int, ip: str, *, video: bool = False, extra: str = "") -> SessionDescription:
    text = (
        f"v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a=fmtp:101 0-15\r\n{extra}"
    )
    if video:
        # QCIF stated: capabilities.common_formats does not apply RFC 4587's default
        text += f"m=video {port + 2} RTP/AVP 31\r\na=fmtp:31 QCIF=1\r\n"
    return SessionDescription.parse(text.encode())


def counter_bytes(seed: int) -> Callable[[int], bytes]:
    numbers = itertools.count(seed)
    return lambda n: bytes(next(numbers) & 0xFF for _ in range(n))


def new_pair() -> tuple[H323Call, H323Call]:
    caller = H323Call(
        outgoing=True, local_address=CALLER_ADDRESS, now=0, random_bytes=counter_bytes(1)
    )
    callee = H323Call(
        outgoing=False, local_address=CALLEE_ADDRESS, now=0, random_bytes=counter_bytes(77)
    )
    return caller, callee


Transform = Callable[[bytes], bytes]


def carry(
    a: H323Call, b: H323Call, now: float, *, to_b: Transform | None = None
) -> list[q931.Q931Message]:
    """Move every queued payload both ways until both are quiet; the messages moved."""
    moved: list[q931.Q931Message] = []
    for _ in range(30):
        busy = False
        for src, dst, change in ((a, b, to_b), (b, a, None)):
            for payload in src.data_to_send():
                busy = True
                if change is not None:
                    payload = change(payload)
                moved.append(q931.decode(payload))
                dst.receive(payload, now)
        if not busy:
            return moved
    raise AssertionError("the calls never went quiet")


def uuie(msg: q931.Q931Message) -> dict[str, Any]:
    assert msg.user_user is not None
    return asn1.decode_uuie(msg.user_user)["h323-uu-pdu"]


def without_fast_start(payload: bytes) -> bytes:
    """The same message with the fastStart of its UUIE taken out (a slow-start peer)."""
    msg = q931.decode(payload)
    if msg.user_user is None:
        return payload
    value = asn1.decode_uuie(msg.user_user)
    value["h323-uu-pdu"]["h323-message-body"][1].pop("fastStart", None)
    ies = [
        q931.UserUser(asn1.encode_uuie(value)) if isinstance(ie, q931.UserUser) else ie
        for ie in msg.ies
    ]
    return q931.Q931Message(
        msg.message_type, msg.call_reference, msg.from_originator, tuple(ies)
    ).encode()


def of(events: list[Event], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def start_call(caller: H323Call, callee: H323Call, offer: SessionDescription | None) -> None:
    caller.setup(
        destination="station",
        destination_address=CALLEE_ADDRESS,
        offer=offer,
        display="Mairie de Saint-Lô",
        now=0,
    )


# --- fastStart ----------------------------------------------------------------------------


def test_fast_start_call_between_two_engines() -> None:
    caller, callee = new_pair()
    start_call(caller, callee, sdp(40000, "192.0.2.1", video=True))
    (setup,) = carry(caller, callee, 0)
    assert setup.message_type == MessageType.SETUP and setup.from_originator
    assert setup.find(q931.Display) == q931.Display("Mairie de Saint-Lô")
    pdu = uuie(setup)
    assert pdu["h245Tunnelling"] is True
    assert "h245Address" not in pdu["h323-message-body"][1]
    assert len(pdu["h323-message-body"][1]["fastStart"]) == 6  # PCMA, PCMU, H.261 x 2
    (offered,) = callee.events()
    assert isinstance(offered, Offered)
    assert offered.destination == "station" and offered.calling == "vrgw"
    assert offered.source_address == CALLER_ADDRESS
    assert offered.offer is not None and [m.port for m in offered.offer.media] == [40000, 40002]

    callee.proceeding(1)
    callee.alerting(1)
    carry(caller, callee, 1)
    assert caller.events() == [Proceeding(), Alerted()]
    assert caller.state is CallState.CALL_DELIVERED
    callee.connect(sdp(6000, "192.0.2.2", extra="a=sendrecv\r\n"), 2)  # audio only
    (connect,) = carry(caller, callee, 2)
    assert len(uuie(connect)["h323-message-body"][1]["fastStart"]) == 2
    (connected,) = caller.events()
    assert isinstance(connected, Connected) and connected.answer is not None
    audio, video = connected.answer.media
    assert (audio.port, audio.formats) == (6000, ["8"])
    assert video.port == 0  # the callee took no video
    assert connected.answer.connection is not None
    assert connected.answer.connection.address == "192.0.2.2"
    assert caller.state is CallState.ACTIVE and callee.state is CallState.ACTIVE
    assert caller.session is None and callee.session is None  # no H.245 at all
    assert caller.next_deadline() is None

    caller.release(Cause.NORMAL_CLEARING, 3)
    (release,) = carry(caller, callee, 3)
    assert release.message_type == MessageType.RELEASE_COMPLETE
    assert release.cause == q931.CauseIE(16)
    assert callee.events() == [Released(Cause.NORMAL_CLEARING, None)]
    assert caller.ended and callee.ended


def test_fast_start_accepted_in_alerting_gives_early_media() -> None:
    caller, callee = new_pair()
    start_call(caller, callee, sdp(40000, "192.0.2.1"))
    carry(caller, callee, 0)
    callee.events()
    # a peer that accepts fastStart in Alerting with in-band progress (H.323 8.1.7.2)
    read = [
        r
        for r in (
            h245.read_fast_start(olc, proposer=False)
            for olc in h245.fast_start_proposals(sdp(40000, "192.0.2.1"))
        )
        if r is not None
    ]
    elements, _ = h245.accept_proposals(read, sdp(7000, "192.0.2.2"))
    body = messages.alerting(
        call_id=caller.call_id, fast_start=[asn1.encode_olc(e) for e in elements]
    )
    alerting = q931.message(
        MessageType.ALERTING,
        caller.call_reference,
        [q931.ProgressIndicator(8), q931.UserUser(asn1.encode_uuie(messages.uu_pdu(body)))],
        from_originator=False,
    )
    caller.receive(alerting.encode(), 1)
    alerted, progressed = caller.events()
    assert isinstance(alerted, Alerted) and isinstance(progressed, Progressed)
    assert progressed.early_media is not None and progressed.early_media.media[0].port == 7000
    # the Connect that follows carries no fastStart: the media stay those of Alerting
    connect = q931.message(
        MessageType.CONNECT,
        caller.call_reference,
        [
            q931.UserUser(
                asn1.encode_uuie(
                    messages.uu_pdu(
                        messages.connect(call_id=caller.call_id, conference_id=caller.conference_id)
                    )
                )
            )
        ],
        from_originator=False,
    )
    caller.receive(connect.encode(), 2)
    (connected,) = caller.events()
    assert isinstance(connected, Connected) and connected.answer is not None
    assert connected.answer.media[0].port == 7000
    assert caller.session is None


def test_the_callee_gives_early_media_in_progress_and_keeps_it_at_connect() -> None:
    # The gateway as callee (a queued H.323 kiosk hears the announcement): Progress with
    # in-band information and the accepted proposals, then a Connect that neither repeats
    # nor refuses fastStart (H.323 8.1.7.2).
    caller, callee = new_pair()
    start_call(caller, callee, sdp(40000, "192.0.2.1"))
    carry(caller, callee, 0)
    callee.events()
    callee.proceeding(0)
    callee.progress(sdp(7000, "192.0.2.2"), 0)
    moved = carry(caller, callee, 0)
    assert [m.message_type for m in moved] == [MessageType.CALL_PROCEEDING, MessageType.PROGRESS]
    indicator = moved[1].find(q931.ProgressIndicator)
    assert indicator is not None and indicator.description == 8
    (progressed,) = of(caller.events(), Progressed)
    assert progressed.early_media is not None and progressed.early_media.media[0].port == 7000
    callee.progress(sdp(7000, "192.0.2.2"), 0)  # repeated while waiting: nothing new
    callee.connect(sdp(7000, "192.0.2.2"), 1)
    moved = carry(caller, callee, 1)
    assert [m.message_type for m in moved] == [MessageType.PROGRESS, MessageType.CONNECT]
    body = uuie(moved[1])["h323-message-body"][1]
    assert "fastStart" not in body and "fastConnectRefused" not in body
    (connected,) = of(caller.events(), Connected)
    assert connected.answer is not None and connected.answer.media[0].port == 7000
    assert caller.session is None and callee.session is None  # no H.245 was needed


def test_keypad_digits_without_h245() -> None:
    caller, callee = new_pair()
    start_call(caller, callee, sdp(40000, "192.0.2.1"))
    carry(caller, callee, 0)
    callee.connect(sdp(6000, "192.0.2.2"), 1)
    carry(caller, callee, 1)
    caller.events()
    callee.events()
    caller.send_digit("5", 250, 2)
    (info,) = carry(caller, callee, 2)
    assert info.message_type == MessageType.INFORMATION
    assert info.find(q931.KeypadFacility) == q931.KeypadFacility("5")
    assert callee.events() == [DigitReceived("5", None)]
    # H323Plus ends the digits with a NUL
    msg = q931.message(
        MessageType.INFORMATION,
        callee.call_reference,
        [q931.KeypadFacility("7\x00")],
        from_originator=False,
    )
    caller.receive(msg.encode(), 3)
    assert caller.events() == [DigitReceived("7", None)]


# --- slow start and H.245 -------------------------------------------------------------------


def slow_call(video: bool = False) -> tuple[H323Call, H323Call]:
    caller, callee = new_pair()
    start_call(caller, callee, sdp(40000, "192.0.2.1", video=video))
    carry(caller, callee, 0, to_b=without_fast_start)
    (offered,) = callee.events()
    assert isinstance(offered, Offered) and offered.offer is None
    callee.alerting(1)
    callee.connect(sdp(6000, "192.0.2.2", video=video), 1)
    moved = carry(caller, callee, 1, to_b=without_fast_start)
    connect = next(m for m in moved if m.message_type == MessageType.CONNECT)
    # the callee's TCS and MSD ride in the Connect itself (H.323 8.2.1)
    control = uuie(connect).get("h245Control", [])
    kinds = [asn1.decode_h245(c)[1][0] for c in control]
    assert kinds == ["terminalCapabilitySet", "masterSlaveDetermination"]
    return caller, callee


def test_slow_start_with_tunnelled_h245() -> None:
    caller, callee = slow_call()
    events = caller.events()
    assert events[:2] == [Alerted(), Connected(None)]
    (ready,) = of(events, MediaReady)
    assert ready.sdp.media[0].port == 6000
    assert ready.sdp.media[0].formats[0] == "8"
    (theirs,) = of(callee.events(), MediaReady)
    assert theirs.sdp.media[0].port == 40000
    assert caller.session is not None and caller.session.msd_done


def test_digits_and_fast_update_over_h245() -> None:
    caller, callee = slow_call(video=True)
    caller.events()
    callee.events()
    caller.send_digit("#", 180, 5)
    moved = carry(caller, callee, 5)
    assert [m.message_type for m in moved] == [MessageType.FACILITY]
    assert callee.events() == [DigitReceived("#", 180)]
    callee.request_fast_update(6)
    carry(caller, callee, 6)
    assert caller.events() == [FastUpdateRequested()]


def test_hold_and_resume_by_empty_capability_set() -> None:
    caller, callee = slow_call()
    caller.events()
    callee.events()
    caller.update_media(sdp(40000, "192.0.2.1", extra="a=sendonly\r\n"), 10)
    carry(caller, callee, 10)
    assert of(callee.events(), Paused)
    caller.update_media(sdp(40000, "192.0.2.1"), 11)
    carry(caller, callee, 11)
    resumed = [e for e in callee.events() if type(e).__name__ == "Resumed"]
    assert resumed and resumed[0].sdp.media[0].port == 40000
    assert of(caller.events(), MediaReady)


def test_end_session_command_releases_the_call() -> None:
    caller, callee = slow_call()
    caller.events()
    callee.events()
    session = callee.session
    assert session is not None
    session.end_session()
    callee._flush_h245()  # what an H.245-only hang-up looks like on the wire
    carry(caller, callee, 20)
    assert caller.events() == [Released(Cause.NORMAL_CLEARING, "endSessionCommand")]
    assert of(callee.events(), Released)
    assert caller.ended and callee.ended


def test_separate_h245_connection() -> None:
    caller = H323Call(
        outgoing=True, local_address=CALLER_ADDRESS, now=0, random_bytes=counter_bytes(5)
    )
    caller.setup(
        destination="1234", destination_address=CALLEE_ADDRESS, offer=sdp(40000, "192.0.2.1"), now=0
    )
    (setup_bytes,) = caller.data_to_send()
    setup = q931.decode(setup_bytes)
    assert setup.find(q931.CalledPartyNumber) == q931.CalledPartyNumber("1234")
    dest = uuie(setup)["h323-message-body"][1]["destinationAddress"]
    assert dest == [("dialledDigits", "1234")]
    body = messages.connect(
        call_id=caller.call_id, conference_id=caller.conference_id, h245_address=("192.0.2.2", 4000)
    )
    connect = q931.message(
        MessageType.CONNECT,
        caller.call_reference,
        [q931.UserUser(asn1.encode_uuie(messages.uu_pdu(body, h245_tunnelling=False)))],
        from_originator=False,
    )
    caller.receive(connect.encode(), 1)
    assert caller.events() == [OpenH245Connection(("192.0.2.2", 4000)), Connected(None)]
    assert caller.h245_data_to_send() == []
    caller.h245_connected(2)
    sent = [asn1.decode_h245(p)[1][0] for p in caller.h245_data_to_send()]
    assert sent == ["terminalCapabilitySet", "masterSlaveDetermination"]
    assert caller.data_to_send() == []  # nothing tunnelled
    peer = h245.H245Session(now=2, local=sdp(6000, "192.0.2.2"), random_bytes=counter_bytes(200))
    peer.start(2)
    for _ in range(6):
        for message in peer.outgoing():
            caller.receive_h245(asn1.encode_h245(message), 3)
        for payload in caller.h245_data_to_send():
            peer.receive(asn1.decode_h245(payload), 3)
    (ready,) = of(caller.events(), MediaReady)
    assert ready.sdp.media[0].port == 6000
    caller.release(Cause.USER_BUSY, 4)
    assert [asn1.decode_h245(p)[1][0] for p in caller.h245_data_to_send()] == ["endSessionCommand"]
    (release_bytes,) = caller.data_to_send()
    release = q931.decode(release_bytes)
    assert release.cause == q931.CauseIE(17)
    assert uuie(release)["h323-message-body"][1]["reason"] == ("inConf", 0)


# --- timers -------------------------------------------------------------------------------


def test_t303_no_answer_to_setup() -> None:
    caller, _ = new_pair()
    caller.setup(destination="station", destination_address=CALLEE_ADDRESS, offer=None, now=100)
    caller.data_to_send()
    assert caller.next_deadline() == 104
    caller.on_timer(103.9)
    assert caller.events() == []
    caller.on_timer(104)
    assert caller.events() == [Released(Cause.RECOVERY_ON_TIMER_EXPIRY, "T303 expired")]
    (release,) = caller.data_to_send()
    assert q931.decode(release).cause == q931.CauseIE(102)
    assert caller.ended and caller.next_deadline() is None


@pytest.mark.parametrize(
    ("answer", "timer", "cause"),
    [
        (MessageType.CALL_PROCEEDING, 30.0, Cause.RECOVERY_ON_TIMER_EXPIRY),
        (MessageType.ALERTING, 180.0, Cause.NO_ANSWER),
    ],
)
def test_t310_and_t301(answer: MessageType, timer: float, cause: Cause) -> None:
    caller, callee = new_pair()
    start_call(caller, callee, sdp(40000, "192.0.2.1"))
    carry(caller, callee, 0)
    callee.events()
    if answer == MessageType.CALL_PROCEEDING:
        callee.proceeding(1)
    else:
        callee.alerting(1)
    carry(caller, callee, 1)
    assert caller.next_deadline() == 1 + timer
    caller.on_timer(1 + timer)
    (released,) = of(caller.events(), Released)
    assert released.cause is cause
    carry(caller, callee, 2)
    assert callee.events() == [Released(cause, None)]


# --- Q.931 5.8 ------------------------------------------------------------------------------


def active_call() -> tuple[H323Call, H323Call]:
    caller, callee = new_pair()
    start_call(caller, callee, sdp(40000, "192.0.2.1"))
    carry(caller, callee, 0)
    callee.connect(sdp(6000, "192.0.2.2"), 1)
    carry(caller, callee, 1)
    caller.events()
    callee.events()
    return caller, callee


def test_status_enquiry_is_answered_with_the_call_state() -> None:
    caller, _ = active_call()
    enquiry = q931.message(
        MessageType.STATUS_ENQUIRY, caller.call_reference, [], from_originator=False
    )
    caller.receive(enquiry.encode(), 5)
    (status_bytes,) = caller.data_to_send()
    status = q931.decode(status_bytes)
    assert status.message_type == MessageType.STATUS
    assert status.cause == q931.CauseIE(30)
    assert status.find(q931.CallState) == q931.CallState(10)
    assert not caller.ended


def test_unknown_and_unexpected_messages_get_status() -> None:
    caller, _ = active_call()
    odd = q931.Q931Message(0x6F, caller.call_reference, False, ())
    caller.receive(odd.encode(), 5)
    (status,) = caller.data_to_send()
    assert q931.decode(status).cause == q931.CauseIE(97)
    alerting = q931.message(MessageType.ALERTING, caller.call_reference, [], from_originator=False)
    caller.receive(alerting.encode(), 5)
    (status,) = caller.data_to_send()
    assert q931.decode(status).cause == q931.CauseIE(101)
    assert not caller.ended and caller.notes


def test_garbage_never_raises() -> None:
    caller, _ = active_call()
    for junk in (
        b"",
        b"\x08",
        b"\x09\x02\x00\x01\x07",
        b"\x08\x02\x80\x01\x07\x7e\x00\x05\x05\xff\xff\xff\xff",
    ):
        caller.receive(junk, 5)
    assert not caller.ended
    notes = " ".join(caller.notes)
    assert "unreadable" in notes or "bad" in notes


def test_unreadable_setup_is_released() -> None:
    callee = H323Call(outgoing=False, local_address=CALLEE_ADDRESS, now=0)
    setup = q931.message(
        MessageType.SETUP, 42, [q931.UserUser(b"\xff\xff\xff\x00")], from_originator=True
    )
    callee.receive(setup.encode(), 0)
    (release_bytes,) = callee.data_to_send()
    release = q931.decode(release_bytes)
    assert release.message_type == MessageType.RELEASE_COMPLETE
    assert release.call_reference == 42 and not release.from_originator
    assert release.cause == q931.CauseIE(95)
    (released,) = callee.events()
    assert isinstance(released, Released) and callee.ended
    # a Setup without its User-user element: mandatory element missing
    callee = H323Call(outgoing=False, local_address=CALLEE_ADDRESS, now=0)
    callee.receive(q931.message(MessageType.SETUP, 43, []).encode(), 0)
    (release_bytes,) = callee.data_to_send()
    assert q931.decode(release_bytes).cause == q931.CauseIE(96)


def test_wrong_call_reference_is_answered_81() -> None:
    caller, _ = active_call()
    stray = q931.message(
        MessageType.CONNECT, (caller.call_reference + 1) & 0x7FFF, [], from_originator=False
    )
    caller.receive(stray.encode(), 5)
    (release_bytes,) = caller.data_to_send()
    release = q931.decode(release_bytes)
    assert release.cause == q931.CauseIE(81)
    assert release.call_reference == stray.call_reference
    assert not caller.ended


def test_release_complete_reason_without_cause() -> None:
    caller, _ = new_pair()
    caller.setup(destination="station", destination_address=CALLEE_ADDRESS, offer=None, now=0)
    body = messages.release_complete(call_id=caller.call_id, reason="calledPartyNotRegistered")
    msg = q931.message(
        MessageType.RELEASE_COMPLETE,
        caller.call_reference,
        [q931.UserUser(asn1.encode_uuie(messages.uu_pdu(body)))],
        from_originator=False,
    )
    caller.receive(msg.encode(), 1)
    assert caller.events() == [Released(Cause.SUBSCRIBER_ABSENT, "calledPartyNotRegistered")]


def test_status_reporting_null_state_ends_the_call() -> None:
    caller, _ = active_call()
    status = q931.message(
        MessageType.STATUS,
        caller.call_reference,
        [q931.CauseIE(101), q931.CallState(0)],
        from_originator=False,
    )
    caller.receive(status.encode(), 5)
    (released,) = caller.events()
    assert released.cause is Cause.MESSAGE_NOT_COMPATIBLE_WITH_CALL_STATE and caller.ended


def test_connection_lost_and_misuse() -> None:
    caller, _ = active_call()
    caller.connection_lost("reset", 9)
    assert caller.events() == [Released(Cause.NORMAL_UNSPECIFIED, "reset")]
    caller.release(Cause.NORMAL_CLEARING, 10)  # after the end: nothing
    assert caller.data_to_send() == []
    callee = H323Call(outgoing=False, local_address=CALLEE_ADDRESS, now=0)
    with pytest.raises(H323UsageError):
        callee.connect(None, 0)
    with pytest.raises(H323UsageError):
        callee.setup(destination=None, destination_address=CALLER_ADDRESS, offer=None, now=0)


def test_random_bytes_make_calls_reproducible() -> None:
    one = H323Call(
        outgoing=True, local_address=CALLER_ADDRESS, now=0, random_bytes=counter_bytes(9)
    )
    two = H323Call(
        outgoing=True, local_address=CALLER_ADDRESS, now=0, random_bytes=counter_bytes(9)
    )
    assert (one.call_reference, one.call_id, one.conference_id) == (
        two.call_reference,
        two.call_id,
        two.conference_id,
    )
    for call in (one, two):
        call.setup(
            destination="x", destination_address=CALLEE_ADDRESS, offer=sdp(1000, "192.0.2.1"), now=0
        )
    assert one.data_to_send() == two.data_to_send()


def test_hold_and_resume_after_fast_start_starts_h245() -> None:
    caller, callee = active_call()  # fastStart, no H.245 yet
    assert caller.session is None
    caller.update_media(sdp(40000, "192.0.2.1", extra="a=inactive\r\n"), 10)
    carry(caller, callee, 10)
    assert of(callee.events(), Paused)
    assert caller.events() == []
    caller.update_media(sdp(40000, "192.0.2.1"), 11)
    carry(caller, callee, 11)
    (ready,) = of(caller.events(), MediaReady)
    assert ready.sdp.media[0].port == 6000
    resumed = [e for e in callee.events() if type(e).__name__ == "Resumed"]
    assert resumed and resumed[0].sdp.media[0].port == 40000


def test_unreadable_uuie_in_alerting_gets_status_and_the_call_goes_on() -> None:
    caller, callee = new_pair()
    start_call(caller, callee, sdp(40000, "192.0.2.1"))
    caller.data_to_send()
    alerting = q931.message(
        MessageType.ALERTING,
        caller.call_reference,
        [q931.UserUser(b"\xff\xff\xff\x00")],
        from_originator=False,
    )
    caller.receive(alerting.encode(), 1)
    (status,) = caller.data_to_send()
    assert q931.decode(status).message_type == MessageType.STATUS
    assert q931.decode(status).cause == q931.CauseIE(95)
    assert not caller.ended and caller.state is CallState.CALL_INITIATED
