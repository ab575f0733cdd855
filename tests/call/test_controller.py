"""The controller in memory: fake legs, a fake media engine, a fake clock, no socket.

Every test drives gateway/call/b2bua.py through the neutral call vocabulary only, as a
SIP or an H.323 leg would, and reads what the legs, the media engine and the partner's
desk were told. Time moves only by ``sched.advance``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fakes import (
    ANSWER,
    OFFER,
    RELAY_HOST,
    FakeDialer,
    FakeLeg,
    FakeMedia,
    FakeScheduler,
    static_targets,
)

from gateway.call.b2bua import B2BUA, CallState
from gateway.dialplan import Dialplan, load_dialplan
from gateway.model.causes import Cause, Refusal
from gateway.model.events import (
    Answered,
    CallAttempt,
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
from gateway.partners.desk import StationState

MONDAY_10H = datetime(2026, 9, 21, 10, 0, tzinfo=ZoneInfo("Europe/Paris")).timestamp()

DIALPLAN = """
version: 1
domain: visio.test
timezone: Europe/Paris
auth: {realm: test}
media: {bind: 127.0.0.1, port_min: 30000, port_max: 30099, timeout: 0}
kiosks:
  - {id: lessay, site: Lessay, label: Lessay, username: null, addresses: [127.0.0.11],
     services: all}
  - {id: gavray, site: Gavray, label: Gavray, username: null, addresses: [127.0.0.12],
     services: [caf, solo]}
services:
  - {name: caf, number: "1001", partner: caf, label: CAF}
  - {name: solo, number: "1002", partner: solo, label: Solo}
  - {name: ringing, number: "1003", partner: ringing, label: Ringing}
  - {name: ft, number: "1004", partner: ft, label: France Travail}
partners:
  - id: caf
    name: CAF
    wrap_up: 30
    pause_after: 1
    stations:
      - {id: caf-1, address: "127.0.0.21:5060"}
      - {id: caf-2, address: "127.0.0.22:5060"}
  - id: solo
    name: One station
    wrap_up: 30
    queue: {max_length: 2, max_wait: 600, waiting: announcement}
    stations:
      - {id: solo-1, address: "127.0.0.23:5060"}
  - id: ringing
    name: Ringing queue
    queue: {max_length: 3, waiting: ringing}
    stations:
      - {id: ringing-1, address: "127.0.0.24:5060"}
  - id: ft
    name: France Travail
    schedule:
      weekly:
        - {days: [wed], from: "09:00", to: "12:00"}
    stations:
      - {id: ft-1, address: "127.0.0.25:5060"}
"""


class World:
    """The controller wired to fakes, with every station reachable."""

    def __init__(self, dialplan: Dialplan, *, ring_timeout: float = 60.0) -> None:
        self.sched = FakeScheduler(MONDAY_10H)
        self.media = FakeMedia()
        self.dialer = FakeDialer()
        self.targets = static_targets(dialplan)
        self.b2bua = B2BUA(
            dialplan,
            self.media,
            self.sched,
            {"sip": self.dialer},
            self.targets.get,
            ring_timeout=ring_timeout,
        )
        for sid in self.targets:
            self.b2bua.station_reachable(sid, True)

    def call(
        self,
        service: str,
        kiosk: str = "lessay",
        *,
        offer: bool = True,
        appointment: bool = False,
        context: tuple[tuple[str, str], ...] = (),
    ) -> FakeLeg:
        leg = FakeLeg(Side.A)
        attempt = CallAttempt(
            kiosk, service, OFFER if offer else None, context, appointment=appointment
        )
        self.b2bua.on_attempt(leg, attempt)
        self.sched.settle()
        return leg

    def station_leg(self, station: str, index: int = -1) -> FakeLeg:
        legs = self.dialer.to(station)
        assert legs, f"nothing was dialled to {station}"
        return legs[index]

    def emit(self, leg: FakeLeg, event: object) -> None:
        leg.emit(event)  # type: ignore[arg-type]
        self.sched.settle()

    def connect(self, service: str, station: str, kiosk: str = "lessay") -> tuple[FakeLeg, FakeLeg]:
        a = self.call(service, kiosk)
        b = self.station_leg(station)
        self.emit(b, Answered(ANSWER))
        assert a.names()[-1] == "answer", a.names()
        return a, b

    def state(self, station: str) -> StationState:
        desk = self.b2bua.desk_of_station(station)
        assert desk is not None
        return desk.stations[station].state(self.sched.now())

    def records(self) -> list[tuple[str, str, Cause]]:
        return [(r.service, r.outcome, r.cause) for r in self.b2bua.records]


@pytest.fixture
def dialplan_file(tmp_path: Path) -> Path:
    path = tmp_path / "controller.yaml"
    path.write_text(DIALPLAN)
    return path


@pytest.fixture
def world(dialplan_file: Path) -> Iterator[World]:
    w = World(load_dialplan(dialplan_file))
    yield w
    # Whatever a test did, nothing it left must still hold media or wait on a step.
    w.sched.settle()


def test_answer_bridges_both_legs_and_the_media(world: World) -> None:
    a = world.call("caf", context=(("allocataire", "1234567"), ("kiosk", "spoofed")))
    b = world.station_leg("caf-1")
    assert world.media.calls["offer"] == 1  # anchored when the station was offered
    assert b.call is not None and b.call.offer is not None
    assert b.call.offer.connection is not None
    assert b.call.offer.connection.address == RELAY_HOST
    assert [k for k, _ in b.call.context].count("kiosk") == 1  # the kiosk's copy dropped
    assert dict(b.call.context) == {
        "kiosk": "lessay",
        "site": "Lessay",
        "service": "caf",
        "allocataire": "1234567",
    }
    world.emit(b, Ringing())
    assert a.commands == [("ring", None)]
    world.emit(b, Answered(ANSWER))
    answer = a.last("answer")
    assert answer is not None and answer.connection.address == RELAY_HOST
    assert world.state("caf-1") is StationState.BUSY
    assert world.media.calls["request_keyframe"] == 0  # no announcement: nothing to refresh
    world.emit(a, Dtmf("5"))
    world.emit(b, FastUpdate())
    assert b.last("send_dtmf") == Dtmf("5") and "fast_update" in a.names()
    world.emit(a, Disconnected(Cause.NORMAL_CLEARING))
    assert b.names()[-1] == "hangup"
    assert world.records() == [("caf", "completed", Cause.NORMAL_CLEARING)]
    assert world.b2bua.calls == {} and world.media.sessions == set()
    assert world.state("caf-1") is StationState.WRAP_UP


def test_what_the_media_engine_ends_in_band_goes_on_through_the_other_leg(world: World) -> None:
    """An RFC 4733 digit or a PLI the engine kept from one side's media (the other side
    cannot take it in band) reaches the other leg like the same event from the leg; a
    key-frame request goes in RTCP to a side that negotiated PLI/FIR, else by signalling."""
    a, b = world.connect("caf", "caf-1")
    handler = world.media.event_handler
    assert handler is not None
    call_id = b.label
    handler(call_id, Side.A, Dtmf("7", 120))
    world.sched.settle()
    assert b.last("send_dtmf") == Dtmf("7", 120)
    handler(call_id, Side.B, FastUpdate())
    world.sched.settle()
    assert "fast_update" in a.names()  # side A took no RTCP feedback: SIP INFO
    asked = world.media.calls["request_keyframe"]
    world.media.keyframe_sides.add(Side.B)
    handler(call_id, Side.A, FastUpdate())
    world.sched.settle()
    assert world.media.calls["request_keyframe"] == asked + 1
    assert "fast_update" not in b.names()  # the engine sent the station a PLI
    handler("no-such-call", Side.A, Dtmf("1"))  # a late report for a call gone: ignored
    world.sched.settle()
    assert [n for n in b.names() if n == "send_dtmf"] == ["send_dtmf"]


def test_a_busy_station_is_hunted_past_and_not_paused(world: World) -> None:
    # pause_after is 1 for the CAF: a refusal must not count as a missed offer (an
    # H.323 station says "user busy" with cause 17, a SIP one with 486: same cause).
    a = world.call("caf")
    world.emit(world.station_leg("caf-1"), Failed(Cause.USER_BUSY, "busy"))
    b2 = world.station_leg("caf-2")
    assert world.state("caf-1") is not StationState.PAUSED
    assert world.media.calls["offer"] == 1  # the second offer reuses the anchored media
    world.emit(b2, Answered(ANSWER))
    assert a.names() == ["answer"]


def test_a_final_cause_is_not_hunted(world: World) -> None:
    a = world.call("caf")
    world.emit(world.station_leg("caf-1"), Failed(Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED))
    assert world.dialer.to("caf-2") == []
    failure = a.last("reject")
    assert failure.cause is Cause.BEARER_CAPABILITY_NOT_IMPLEMENTED
    assert world.media.sessions == set()


def test_ring_out_pauses_the_station_and_moves_to_the_next(world: World) -> None:
    world.call("caf")
    b1 = world.station_leg("caf-1")
    world.sched.advance(60)
    assert b1.commands == [("hangup", Cause.NO_ANSWER)]
    assert world.state("caf-1") is StationState.PAUSED
    b2 = world.station_leg("caf-2")
    assert b2.call is not None
    world.emit(b2, Answered(ANSWER))
    assert world.b2bua.calls and next(iter(world.b2bua.calls.values())).last_station == "caf-2"


def test_queue_then_connect_with_announcement(world: World) -> None:
    first_a, _ = world.connect("solo", "solo-1")
    waiting = world.call("solo", "gavray")
    early = waiting.last("ring")
    assert early is not None and early.connection.address == RELAY_HOST  # 183 early media
    call_id = waiting.label
    assert world.media.playing == {call_id: "attente"}
    assert len(world.dialer.to("solo-1")) == 1
    world.emit(first_a, Disconnected())
    assert len(world.dialer.to("solo-1")) == 1  # the agent's wrap-up comes first
    world.sched.advance(30)
    b = world.station_leg("solo-1")
    assert b.call is not None and b.call.offer is not None
    # The station gets only the formats the 183 already promised the kiosk.
    assert [m.kind for m in b.call.offer.media] == [m.kind for m in early.media]
    assert ("waited", "30") in b.call.context
    world.media.keyframe_sides.add(Side.A)  # the kiosk negotiated PLI, the station not
    world.emit(b, Answered(ANSWER))
    assert call_id not in world.media.playing
    assert waiting.last("answer") is early  # the 200 repeats the 183's answer
    # Bridged after the announcement: both video senders asked for a key frame, the
    # kiosk in RTCP through the engine, the station in its signalling.
    asked = [what for verb, cid, what in world.media.log if verb == "request_keyframe"]
    assert sorted(asked) == [Side.A, Side.B]
    assert "fast_update" in b.names() and "fast_update" not in waiting.names()
    [record] = [r for r in world.b2bua.records if r.kiosk == "lessay"]
    assert record.outcome == "completed"


def test_cancel_while_queued_leaves_nothing(world: World) -> None:
    world.connect("solo", "solo-1")
    waiting = world.call("solo", "gavray")
    desk = world.b2bua.desks["solo"]
    assert [w.kiosk for w in desk.queue] == ["gavray"]
    world.emit(waiting, Disconnected(Cause.NORMAL_CLEARING, "cancelled by caller"))
    assert list(desk.queue) == []
    assert waiting.label not in world.media.sessions
    [record] = [r for r in world.b2bua.records if r.kiosk == "gavray"]
    assert (record.outcome, record.queued) == ("abandoned", True)


@pytest.mark.parametrize(
    ("service", "kiosk", "refusal"),
    [
        ("ft", "lessay", Refusal.CLOSED),  # Monday: France Travail opens on Wednesdays
        ("nothing", "lessay", Refusal.UNKNOWN_SERVICE),
        ("ringing", "gavray", Refusal.NOT_OFFERED),
    ],
)
def test_a_refused_call_binds_no_media(
    world: World, service: str, kiosk: str, refusal: Refusal
) -> None:
    a = world.call(service, kiosk)
    failure = a.last("reject")
    assert failure.cause is refusal.cause
    assert world.media.calls == {}
    assert world.b2bua.records[-1].refusal is refusal
    if refusal is Refusal.CLOSED:
        assert failure.retry_after == 2 * 24 * 3600 - 3600  # Wednesday 09:00, in 47 hours


def test_a_full_queue_refuses_without_media(world: World) -> None:
    world.connect("ringing", "ringing-1")
    offers = world.media.calls["offer"]
    waiting = [world.call("ringing") for _ in range(3)]  # ringing policy: no announcement
    assert all(leg.names() == ["ring"] for leg in waiting)
    refused = world.call("ringing")
    assert refused.last("reject").cause is Cause.USER_BUSY
    assert world.media.calls["offer"] == offers  # neither the queued nor the refused
    assert world.b2bua.records[-1].refusal is Refusal.QUEUE_FULL


def test_media_failure_refuses_the_caller(world: World) -> None:
    world.media.fail_offer = True
    a = world.call("caf")
    assert a.last("reject").cause is Cause.RESOURCE_UNAVAILABLE
    assert world.b2bua.calls == {}
    assert world.state("caf-1") is StationState.IDLE  # the offer was withdrawn


def test_reinvite_is_relayed_through_the_media(world: World) -> None:
    a, b = world.connect("caf", "caf-1")
    world.emit(a, MediaUpdate(OFFER))
    assert ("offer", a.label, Side.A) in world.media.log
    offer = b.last("update")
    assert offer.connection.address == RELAY_HOST
    world.emit(b, MediaUpdateAnswer(ANSWER))
    result = a.last("update_answer")
    assert result.answer is not None and result.answer.connection.address == RELAY_HOST
    world.emit(b, MediaUpdate(ANSWER))
    world.emit(a, MediaUpdateAnswer(None, refused=Cause.TEMPORARY_FAILURE))
    assert b.last("update_answer") == MediaUpdateAnswer(None, refused=Cause.TEMPORARY_FAILURE)


def test_late_offer_station_offers_and_the_kiosk_answers(world: World) -> None:
    a = world.call("caf", offer=False)
    b = world.station_leg("caf-1")
    assert b.call is not None and b.call.offer is None
    assert world.media.calls == {}  # nothing to anchor before the station offers
    world.emit(b, Ringing())
    world.emit(b, Answered(ANSWER))  # the station's offer rides its answer
    offer = a.last("answer")
    assert offer is not None and offer.connection.address == RELAY_HOST
    assert ("offer", a.label, Side.B) in world.media.log
    world.emit(a, LateAnswer(OFFER))  # the kiosk's answer rides its ACK
    assert ("answer", a.label, Side.A) in world.media.log
    completed = b.last("complete")
    assert completed.connection.address == RELAY_HOST
    world.emit(b, Disconnected())
    assert world.media.sessions == set()
    assert world.records() == [("caf", "completed", Cause.NORMAL_CLEARING)]


def test_late_offer_caller_waits_with_ringing(world: World) -> None:
    world.connect("solo", "solo-1")
    waiting = world.call("solo", "gavray", offer=False)
    assert waiting.commands == [("ring", None)]  # no offer of the kiosk's to answer early


def test_queue_timeout_releases_the_caller(world: World) -> None:
    world.connect("solo", "solo-1")
    waiting = world.call("solo", "gavray")
    world.sched.advance(600)
    assert waiting.last("reject").cause is Refusal.QUEUE_TIMEOUT.cause
    assert waiting.label not in world.media.sessions
    record = world.b2bua.records[-1]
    assert (record.refusal, record.waited) == (Refusal.QUEUE_TIMEOUT, 600)


def test_reload_mid_queue_keeps_the_callers_place(world: World, dialplan_file: Path) -> None:
    """A ringing appointment caller whose offer fails after a reload keeps its priority.

    The desk rebuilt by a reload used to carry the queue and the offers but not who the
    ringing callers were: a failed offer then re-queued the caller with an empty kiosk
    and as a walk-in, behind callers who came later.
    """
    first_a, _ = world.connect("solo", "solo-1")
    booked = world.call("solo", "gavray", appointment=True)
    walk_in = world.call("solo", "lessay")
    desk = world.b2bua.desks["solo"]
    assert [(w.kiosk, w.appointment) for w in desk.queue] == [("gavray", True), ("lessay", False)]
    world.emit(first_a, Disconnected())
    world.sched.advance(30)  # wrap-up over: the booked caller is offered the station
    offered = world.station_leg("solo-1")
    assert offered.label == booked.label
    world.b2bua.set_dialplan(load_dialplan(dialplan_file))  # the operator reloads
    world.emit(offered, Failed(Cause.USER_BUSY))
    desk = world.b2bua.desks["solo"]
    assert [(w.kiosk, w.appointment) for w in desk.queue] == [("gavray", True), ("lessay", False)]
    assert walk_in.label in world.b2bua.calls


def test_station_hangup_ends_the_call(world: World) -> None:
    a, b = world.connect("caf", "caf-1")
    world.emit(b, Disconnected(Cause.NORMAL_CLEARING, "agent hung up"))
    assert a.last("hangup") is Cause.NORMAL_CLEARING
    assert world.b2bua.calls == {}


def test_media_timeout_releases_both_legs(world: World) -> None:
    a, b = world.connect("caf", "caf-1")
    assert world.media.timeout_handler is not None
    world.media.timeout_handler(a.label)
    world.sched.settle()
    assert a.last("hangup") is b.last("hangup") is Cause.RECOVERY_ON_TIMER_EXPIRY
    assert world.records()[-1] == ("caf", "completed", Cause.RECOVERY_ON_TIMER_EXPIRY)


def test_an_answer_from_a_withdrawn_offer_is_released(world: World) -> None:
    world.call("caf")
    b1 = world.station_leg("caf-1")
    world.emit(b1, Failed(Cause.USER_BUSY))
    b2 = world.station_leg("caf-2")
    world.emit(b1, Answered(ANSWER))  # a late 200 from the leg already given up
    assert b1.last("hangup") is Cause.NORMAL_CLEARING or b1.ended
    world.emit(b2, Answered(ANSWER))
    call = next(iter(world.b2bua.calls.values()))
    assert call.state is CallState.CONNECTED and call.last_station == "caf-2"


def test_close_ends_every_call(world: World) -> None:
    a, b = world.connect("caf", "caf-1")
    queued = world.call("solo")
    import asyncio

    asyncio.run(world.b2bua.close())
    world.sched.settle()
    assert world.b2bua.calls == {}
    assert "hangup" in a.names() and "hangup" in b.names() and queued.ended
    assert world.media.sessions == set()


def test_an_operator_ends_a_connected_call_and_a_queued_one(world: World) -> None:
    a, b = world.connect("solo", "solo-1")
    waiting = world.call("solo", "gavray")
    desk = world.b2bua.desks["solo"]
    assert [w.kiosk for w in desk.queue] == ["gavray"]
    assert world.b2bua.end_call(waiting.label, "removed from the queue by an operator")
    assert list(desk.queue) == [] and waiting.names()[-1] == "hangup"
    assert waiting.last("hangup") is Cause.NORMAL_CLEARING
    assert world.b2bua.end_call(a.label)
    assert a.last("hangup") is Cause.NORMAL_CLEARING
    assert b.names()[-1] == "hangup"
    assert not world.b2bua.end_call(a.label) and not world.b2bua.end_call("no-such-call")
    world.sched.settle()
    outcomes = sorted((r.kiosk, r.outcome) for r in world.b2bua.records)
    assert outcomes == [("gavray", "failed"), ("lessay", "completed")]
    assert world.b2bua.calls == {} and world.media.sessions == set()
