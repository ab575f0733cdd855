"""H323Leg in memory: H.323 call events become neutral ones, commands become Q.931.

The H.323 call under the leg is the real sans-IO engine; only the connection is a
stand-in (no socket), so what the leg makes the engine send is read back as Q.931.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness import ROOT

from gateway.call.h323_leg import H323Acceptor, H323Leg, display_of
from gateway.call.leg import CallLeg, OutgoingCall
from gateway.dialplan import load_dialplan
from gateway.h323 import q931
from gateway.h323.call import (
    Alerted,
    Connected,
    DigitReceived,
    FastUpdateRequested,
    H323Call,
    MediaReady,
    Offered,
    Released,
)
from gateway.model.causes import Cause
from gateway.model.events import (
    Answered,
    CallAttempt,
    CallEvent,
    Disconnected,
    Dtmf,
    Failed,
    FastUpdate,
    LateAnswer,
    MediaUpdate,
    MediaUpdateAnswer,
    Ringing,
    Side,
)
from gateway.model.sdp import SessionDescription

SDP = SessionDescription.parse(
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 20000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n"
)


@dataclass
class FakeConnection:
    """The edge's part, without sockets: the clock and a count of pumps."""

    call: H323Call
    peer: tuple[str, int] | None = ("127.0.0.1", 40000)
    pumps: int = 0

    def now(self) -> float:
        return 0.0

    def pump(self) -> None:
        self.pumps += 1


@dataclass
class Sink:
    events: list[CallEvent] = field(default_factory=list)

    def __call__(self, leg: CallLeg, event: CallEvent) -> None:
        self.events.append(event)


def station_leg() -> tuple[H323Leg, Sink, FakeConnection]:
    sink = Sink()
    leg = H323Leg(Side.B, "call-1", sink)
    conn = FakeConnection(H323Call(outgoing=True, local_address=("127.0.0.1", 1720), now=0))
    leg.conn = conn
    return leg, sink, conn


def incoming_setup(offer: SessionDescription | None) -> tuple[H323Call, list[object]]:
    """A callee engine that received a real Setup (from a caller engine), and its events."""
    caller = H323Call(outgoing=True, local_address=("127.0.0.1", 40000), now=0)
    caller.setup(destination="bench", destination_address=("127.0.0.1", 1720), offer=offer, now=0)
    callee = H323Call(outgoing=False, local_address=("127.0.0.1", 1720), now=0)
    for payload in caller.data_to_send():
        callee.receive(payload, 0)
    return callee, list(callee.events())


def slow_started_call() -> H323Call:
    """An outgoing engine whose Setup went out (update_media needs a live call)."""
    call = H323Call(outgoing=True, local_address=("127.0.0.1", 1720), now=0)
    call.setup(destination="agent", destination_address=("127.0.0.1", 1730), offer=SDP, now=0)
    call.data_to_send()
    return call


def sent_types(call: H323Call) -> list[int]:
    return [q931.decode(payload).message_type for payload in call.data_to_send()]


def test_station_answering_by_fast_start() -> None:
    leg, sink, _ = station_leg()
    leg.on_h323_events([Alerted(), Connected(SDP)])
    assert sink.events == [Ringing(None), Answered(SDP)]
    assert not leg.ended


def test_slow_start_answers_when_the_media_are_ready() -> None:
    leg, sink, _ = station_leg()
    leg.on_h323_events([Connected(None)])
    assert sink.events == []  # H.245 still at work
    leg.on_h323_events([MediaReady(SDP)])
    assert sink.events == [Answered(SDP)]


def test_a_busy_station_fails_with_its_cause_and_an_answered_one_disconnects() -> None:
    leg, sink, _ = station_leg()
    leg.on_h323_events([Released(Cause.USER_BUSY, None)])
    assert sink.events == [Failed(Cause.USER_BUSY, "")] and leg.ended
    leg, sink, _ = station_leg()
    leg.on_h323_events([Connected(SDP), Released(Cause.NORMAL_CLEARING, "bye")])
    assert sink.events[-1] == Disconnected(Cause.NORMAL_CLEARING, "bye")


def test_a_lost_connection_before_answer_is_an_unreachable_station() -> None:
    leg, sink, _ = station_leg()
    leg.on_connection_lost("connection refused")
    assert sink.events == [Failed(Cause.DESTINATION_OUT_OF_ORDER, "connection refused")]


def test_digits_and_picture_requests_reach_the_controller() -> None:
    leg, sink, _ = station_leg()
    leg.on_h323_events([Connected(SDP), DigitReceived("5", None), FastUpdateRequested()])
    assert sink.events[1:] == [Dtmf("5", 250), FastUpdate()]


def test_hangup_sends_release_complete_once_with_the_cause() -> None:
    sink = Sink()
    leg = H323Leg(Side.A, "call-2", sink)
    call = H323Call(outgoing=False, local_address=("127.0.0.1", 1720), now=0)
    leg.conn = FakeConnection(call)
    leg.hangup(Cause.CALL_REJECTED)
    leg.hangup(Cause.NORMAL_CLEARING)
    assert sent_types(call) == [q931.MessageType.RELEASE_COMPLETE]
    assert leg.ended and sink.events == []


def test_a_kiosk_without_fast_start_gets_the_station_offer_and_answers_late() -> None:
    sink = Sink()
    leg = H323Leg(Side.A, "call-3", sink)
    offered: list[Offered] = []
    leg.on_offered = lambda _leg, event: offered.append(event)
    call, events = incoming_setup(None)  # slow start: no fastStart proposals
    leg.conn = FakeConnection(call)
    leg.on_h323_events(events)  # type: ignore[arg-type]
    assert offered and offered[0].offer is None and offered[0].destination == "bench"
    leg.answer(SDP)  # the station's offer (late offer): H.245 carries it to the kiosk
    assert sink.events == []
    assert q931.MessageType.CONNECT in sent_types(call)
    leg.on_h323_events([MediaReady(SDP)])
    assert sink.events == [LateAnswer(SDP)]


@dataclass
class Controller:
    attempts: list[CallAttempt] = field(default_factory=list)

    def on_attempt(self, leg: CallLeg, attempt: CallAttempt) -> None:
        self.attempts.append(attempt)


def test_the_acceptor_knows_kiosks_by_address_and_refuses_strangers() -> None:
    plan = load_dialplan(ROOT / "dialplans" / "loadtest.yaml", env={})
    controller = Controller()
    acceptor = H323Acceptor(lambda: plan, controller)
    call, events = incoming_setup(SDP)
    leg = acceptor.incoming(FakeConnection(call, peer=("127.0.0.1", 40000)))
    leg.on_h323_events(events)  # type: ignore[arg-type]
    [attempt] = controller.attempts
    assert (attempt.kiosk, attempt.service) == ("bench-uac", "bench")
    assert attempt.offer is not None and attempt.offer.media[0].formats  # from fastStart
    assert sent_types(call) == [q931.MessageType.CALL_PROCEEDING]

    stranger, events = incoming_setup(SDP)
    leg = acceptor.incoming(FakeConnection(stranger, peer=("192.0.2.9", 40000)))
    leg.on_h323_events(events)  # type: ignore[arg-type]
    assert len(controller.attempts) == 1 and leg.ended
    [refusal] = [q931.decode(payload) for payload in stranger.data_to_send()]
    assert refusal.message_type == q931.MessageType.RELEASE_COMPLETE
    cause = refusal.cause
    assert cause is not None and cause.cause is Cause.CALL_REJECTED


def test_the_display_names_the_kiosk_and_what_was_typed_in_ascii() -> None:
    call = OutgoingCall(
        caller="lessay",
        caller_name="Mairie de Périers",
        service="caf",
        offer=None,
        context=(
            ("kiosk", "lessay"),
            ("site", "Périers"),
            ("context", "allocataire=1234567"),
            ("dossier", "A-12"),
        ),
        hops=69,
    )
    assert display_of(call) == "Mairie de Periers - Allocataire 1234567 - dossier A-12"
    long = OutgoingCall("k", "x" * 100, "caf", None, (), 69)
    assert len(display_of(long)) == 82


def test_hold_is_answered_at_once_with_the_units_media_mirrored() -> None:
    # H.323 gives no answer to an empty capability set: the kiosk's re-INVITE must not
    # wait for one (it did: the hold never completed).
    leg, sink, _ = station_leg()
    leg.conn = FakeConnection(slow_started_call())
    leg.on_h323_events([Connected(SDP)])
    held = SDP.copy()
    held.media[0].set_direction("sendonly")
    leg.update(held)
    answer = sink.events[-1]
    assert isinstance(answer, MediaUpdateAnswer) and answer.answer is not None
    assert answer.answer.effective_direction(answer.answer.media[0]).value == "recvonly"
    assert answer.answer.media[0].port == SDP.media[0].port


def test_a_unit_reopening_its_channels_elsewhere_is_a_media_update() -> None:
    leg, sink, _ = station_leg()
    leg.on_h323_events([Connected(SDP)])
    moved = SDP.copy()
    moved.media[0].port = 20002
    leg.on_h323_events([MediaReady(SDP)])  # same place: nothing to tell
    assert sink.events == [Answered(SDP)]
    leg.on_h323_events([MediaReady(moved)])
    assert sink.events[-1] == MediaUpdate(moved)
