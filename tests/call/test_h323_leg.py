"""H323Leg in memory: H.323 call events become neutral ones, commands become Q.931.

The H.323 call under the leg is the real sans-IO engine; only the connection is a
stand-in (no socket), so what the leg makes the engine send is read back as Q.931.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness import ROOT

from gateway.call.h323_leg import H323Acceptor, H323Dialer, H323Leg, display_of
from gateway.call.leg import CallLeg, OutgoingCall, Target
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


# --- admission by a partner's gatekeeper (ARQ/ACF/ARJ, DRQ) ------------------------------


@dataclass
class FakeSignalling:
    """The dialer's edge without sockets: what it dialled, and where."""

    dialled: list[tuple[tuple[str, int], FakeConnection]] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", 1720)

    def now(self) -> float:
        return 0.0

    def dial(self, call: H323Call, address: tuple[str, int], handler: H323Leg) -> FakeConnection:
        conn = FakeConnection(call, address)
        self.dialled.append((address, conn))
        return conn


@dataclass
class FakeAdmission:
    """A gatekeeper client that answers when the test says."""

    asked: list[tuple[str, str, tuple[str, int]]] = field(default_factory=list)
    done: list[Callable[[tuple[str, int] | None, str], None]] = field(default_factory=list)
    dropped: list[Callable[[], None]] = field(default_factory=list)
    disengaged: list[str] = field(default_factory=list)

    def admit(
        self,
        gatekeeper: str,
        call: H323Call,
        alias: str,
        dest: tuple[str, int],
        done: Callable[[tuple[str, int] | None, str], None],
        dropped: Callable[[], None],
    ) -> None:
        self.asked.append((gatekeeper, alias, dest))
        self.done.append(done)
        self.dropped.append(dropped)

    def disengage(self, gatekeeper: str, call: H323Call) -> None:
        self.disengaged.append(gatekeeper)


def gatekeeper_dial() -> tuple[H323Leg, Sink, FakeSignalling, FakeAdmission]:
    edge, admission, sink = FakeSignalling(), FakeAdmission(), Sink()
    dialer = H323Dialer(edge, aliases=("vrgw",), admission=admission)
    target = Target("caf-gk", "h323", "agent-caf", ("127.0.0.1", 1730), "tcp", admission="gk")
    call = OutgoingCall("lessay", "MSP de Lessay", "caf", SDP, (("kiosk", "lessay"),), 70)
    return dialer.dial(target, call, "call-9", sink), sink, edge, admission


def test_a_gatekeepers_unit_is_called_once_admitted_where_the_acf_says() -> None:
    leg, _, edge, admission = gatekeeper_dial()
    assert admission.asked == [("gk", "agent-caf", ("127.0.0.1", 1730))]
    assert edge.dialled == []  # no Setup before the ACF
    admission.done[0](("127.0.0.1", 1740), "")
    assert [address for address, _ in edge.dialled] == [("127.0.0.1", 1740)]
    assert sent_types(edge.dialled[0][1].call) == [q931.MessageType.SETUP]
    leg.hangup()
    leg.hangup()
    assert admission.disengaged == ["gk"]  # one DRQ when the call ends


def test_a_refused_admission_fails_the_station_with_a_cause() -> None:
    leg, sink, edge, admission = gatekeeper_dial()
    admission.done[0](None, "calledPartyNotRegistered")
    assert sink.events == [Failed(Cause.SUBSCRIBER_ABSENT, "gatekeeper: calledPartyNotRegistered")]
    assert leg.ended and edge.dialled == [] and admission.disengaged == []
    _, sink2, _, admission2 = gatekeeper_dial()
    admission2.done[0](None, "timeout")
    assert sink2.events == [Failed(Cause.TEMPORARY_FAILURE, "gatekeeper: timeout")]


def test_a_call_given_up_before_the_acf_is_disengaged_and_never_set_up() -> None:
    leg, sink, edge, admission = gatekeeper_dial()
    leg.hangup(Cause.NORMAL_CLEARING)  # the kiosk left while the gatekeeper thought
    admission.done[0](("127.0.0.1", 1740), "")
    assert edge.dialled == [] and admission.disengaged == ["gk"] and sink.events == []


def test_the_gatekeeper_ending_a_call_releases_the_unit() -> None:
    _, sink, edge, admission = gatekeeper_dial()
    admission.done[0](("127.0.0.1", 1740), "")
    conn = edge.dialled[0][1]
    conn.call.data_to_send()
    admission.dropped[0]()
    assert sent_types(conn.call) == [q931.MessageType.RELEASE_COMPLETE]
    assert sink.events == [Failed(Cause.CALL_REJECTED, "ended by the gatekeeper")]
    assert admission.disengaged == []  # its own DRQ was answered: none of ours
