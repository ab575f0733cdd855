"""The partner desk on a fake clock: station states, the queue, availability, a whole day."""

from __future__ import annotations

import random
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model.causes import Cause, Refusal
from gateway.partners.desk import (
    DeskSettings,
    Offer,
    PartnerDesk,
    PauseReason,
    Queued,
    QueueSettings,
    Refused,
    StationState,
    Status,
)
from gateway.partners.schedule import ClosedReason, MonthlySlot, Schedule, WeeklySlot

PARIS = ZoneInfo("Europe/Paris")
T0 = datetime(2026, 11, 25, 10, 0, tzinfo=PARIS).timestamp()  # a Wednesday, 10:00


def desk(
    stations: int = 1, *, wrap_up: float = 30, max_length: int = 5, pause_after: int = 3
) -> PartnerDesk:
    d = PartnerDesk(
        "msa",
        [(f"s{i + 1}", 1) for i in range(stations)],
        settings=DeskSettings(
            wrap_up=wrap_up,
            pause_after=pause_after,
            holdoff=5,
            queue=QueueSettings(max_length=max_length, max_wait=600),
        ),
    )
    for i in range(stations):
        d.set_reachable(f"s{i + 1}", True, T0 - 100 + i)
    return d


def test_first_caller_gets_the_idle_station_second_waits() -> None:
    d = desk()
    first = d.arrive("a", "k1", appointment=False, now=T0)
    assert first == Offer("a", "s1", 0.0)
    assert d.stations["s1"].state(T0) is StationState.RINGING
    d.answered("a", T0 + 5)
    assert d.stations["s1"].state(T0 + 5) is StationState.BUSY
    second = d.arrive("b", "k2", appointment=False, now=T0 + 10)
    assert isinstance(second, Queued) and second.position == 1
    assert second.estimated_wait == 600 + 30  # typical call plus wrap-up: nothing measured yet
    av = d.availability(T0 + 10)
    assert av.status is Status.BUSY and av.queue_length == 1
    assert av.estimated_wait == 2 * 630  # for a caller joining now, behind the one waiting


def test_station_freed_after_wrap_up_takes_the_head_of_the_queue() -> None:
    d = desk(wrap_up=30)
    d.arrive("a", "k1", appointment=False, now=T0)
    d.answered("a", T0 + 1)
    d.arrive("b", "k2", appointment=False, now=T0 + 2)
    assert d.ended("a", T0 + 100) == []  # wrap-up: nothing offered yet
    assert d.stations["s1"].state(T0 + 100) is StationState.WRAP_UP
    assert d.next_deadline() == T0 + 130
    assert d.tick(T0 + 129) == []
    decisions = d.tick(T0 + 130)
    assert decisions == [Offer("b", "s1", 128.0)]
    d.answered("b", T0 + 131)
    assert list(d.waits)[-1] == pytest.approx(129.0)


def test_a_station_never_gets_a_second_call() -> None:
    d = desk(stations=1)
    d.arrive("a", "k1", appointment=False, now=T0)  # ringing
    assert isinstance(d.arrive("b", "k2", appointment=False, now=T0), Queued)
    d.answered("a", T0 + 1)
    assert isinstance(d.arrive("c", "k3", appointment=False, now=T0 + 2), Queued)
    assert d.stations["s1"].ringing == set() and d.stations["s1"].connected == {"a"}


def test_appointments_go_first_fifo_within_each_class() -> None:
    d = desk(max_length=10)
    d.arrive("a", "k1", appointment=False, now=T0)
    d.answered("a", T0)
    for i, appt in enumerate([False, True, False, True]):
        d.arrive(f"c{i}", f"k{i}", appointment=appt, now=T0 + i)
    assert [w.call_id for w in d.queue] == ["c1", "c3", "c0", "c2"]


def test_caller_hanging_up_leaves_the_queue_at_once() -> None:
    d = desk()
    d.arrive("a", "k1", appointment=False, now=T0)
    d.answered("a", T0)
    d.arrive("b", "k2", appointment=False, now=T0 + 1)
    d.arrive("c", "k3", appointment=False, now=T0 + 2)
    d.ended("b", T0 + 3)
    assert [w.call_id for w in d.queue] == ["c"]
    assert d.position("c") == 1


def test_queue_full_is_486_and_max_wait_is_480() -> None:
    d = desk(max_length=1)
    d.arrive("a", "k1", appointment=False, now=T0)
    d.answered("a", T0)
    d.arrive("b", "k2", appointment=False, now=T0)
    full = d.arrive("c", "k3", appointment=False, now=T0)
    assert isinstance(full, Refused) and full.refusal is Refusal.QUEUE_FULL
    assert full.refusal.cause is Cause.USER_BUSY  # 486 for a SIP kiosk (RFC 3398 7.2.4.1)
    expired = d.tick(T0 + 600)
    assert len(expired) == 1 and isinstance(expired[0], Refused)
    assert expired[0].refusal is Refusal.QUEUE_TIMEOUT
    assert expired[0].refusal.cause is Cause.NO_ANSWER
    assert expired[0].waited == 600


def test_a_caller_whose_offer_failed_goes_back_first_even_to_a_full_queue() -> None:
    """Arrivals are refused once the queue holds ``max_length`` callers, but a caller whose
    station did not answer goes back to its head even then: the queue filled up behind
    them while they rang. (Hypothesis found 6 waiting with ``max_length`` 5 in a CI run,
    against an invariant that had forgotten this.)"""
    d = desk(max_length=2)
    assert d.arrive("a", "k1", appointment=False, now=T0) == Offer("a", "s1", 0.0)
    d.arrive("b", "k2", appointment=False, now=T0 + 1)
    d.arrive("c", "k3", appointment=False, now=T0 + 2)
    full = d.arrive("d", "k4", appointment=False, now=T0 + 3)
    assert isinstance(full, Refused) and full.refusal is Refusal.QUEUE_FULL
    back = d.offer_failed("a", missed=True, now=T0 + 30)
    assert back == [Queued("a", 1, d.estimated_wait(1))]
    assert [w.call_id for w in d.queue] == ["a", "b", "c"]
    still_full = d.arrive("e", "k5", appointment=False, now=T0 + 31)
    assert isinstance(still_full, Refused) and still_full.refusal is Refusal.QUEUE_FULL


def test_unanswered_offers_pause_the_station_and_the_call_moves_on() -> None:
    d = desk(stations=2, pause_after=2)
    first = d.arrive("a", "k1", appointment=False, now=T0)
    assert first == Offer("a", "s1", 0.0)  # s1 has been idle longest
    moved = d.offer_failed("a", missed=True, now=T0 + 30)
    assert moved == [Offer("a", "s2", 0.0)]
    assert d.stations["s1"].missed == 1 and d.stations["s1"].paused is None
    # s2 misses too, 5 s after s1 missed: s1 is still held off, the caller waits first.
    back = d.offer_failed("a", missed=True, now=T0 + 32)
    assert back == [Queued("a", 1, d.estimated_wait(1))]
    assert d.position("a") == 1
    # After its hold-off s1 is offered the call again, misses a second time: paused.
    assert d.tick(T0 + 35) == [Offer("a", "s1", 3.0)]
    moved_on = d.offer_failed("a", missed=True, now=T0 + 65)
    assert d.stations["s1"].paused is PauseReason.NO_ANSWER
    assert d.stations["s1"].state(T0 + 65) is StationState.PAUSED
    # s2 (one miss, its hold-off over) takes the call at once.
    assert moved_on == [Offer("a", "s2", 33.0)]


def test_refusal_holds_a_station_off_without_counting_a_miss() -> None:
    d = desk(stations=1)
    d.arrive("a", "k1", appointment=False, now=T0)
    back = d.offer_failed("a", missed=False, now=T0 + 1)
    assert back == [Queued("a", 1, d.estimated_wait(1))]
    assert d.stations["s1"].missed == 0
    assert d.tick(T0 + 2) == []
    assert d.tick(T0 + 6) == [Offer("a", "s1", 5.0)]


def test_no_queue_partner_answers_busy_at_once() -> None:
    d = desk(stations=1, max_length=0)
    d.arrive("a", "k1", appointment=False, now=T0)
    refused = d.offer_failed("a", missed=False, now=T0 + 1)
    assert len(refused) == 1 and isinstance(refused[0], Refused)
    assert refused[0].refusal is Refusal.ALL_BUSY and refused[0].refusal.cause is Cause.USER_BUSY
    assert d.calls == {}


def test_unlimited_station_is_not_held_off_and_its_refusal_ends_the_call() -> None:
    d = PartnerDesk("bench", [("uas", 0)], settings=DeskSettings(holdoff=5))
    d.set_reachable("uas", True, T0)
    assert d.arrive("a", "k", appointment=False, now=T0) == Offer("a", "uas", 0.0)
    assert d.arrive("b", "k", appointment=False, now=T0) == Offer("b", "uas", 0.0)
    refused = d.offer_failed("a", missed=False, now=T0 + 1)
    assert len(refused) == 1 and isinstance(refused[0], Refused)
    assert refused[0].refusal is Refusal.ALL_BUSY
    # No hold-off: the next caller is offered the station at once.
    assert d.arrive("c", "k", appointment=False, now=T0 + 1) == Offer("c", "uas", 0.0)


def test_offline_and_admin_pause() -> None:
    d = desk(stations=1)
    d.set_reachable("s1", False, T0)
    assert d.availability(T0).status is Status.OFFLINE
    r = d.arrive("a", "k1", appointment=False, now=T0)
    assert isinstance(r, Refused) and r.refusal is Refusal.NO_STATION
    assert r.refusal.cause is Cause.SUBSCRIBER_ABSENT
    d.set_reachable("s1", True, T0 + 1)
    assert d.availability(T0 + 1).status is Status.OPEN
    d.arrive("b", "k1", appointment=False, now=T0 + 2)
    d.answered("b", T0 + 2)
    d.arrive("c", "k2", appointment=False, now=T0 + 3)
    # The agent is paused by the operator: waiting callers are told nobody is there.
    released = d.pause("s1", T0 + 4)
    assert [x.call_id for x in released] == ["c"]
    assert d.stations["s1"].state(T0 + 4) is StationState.BUSY  # its call goes on
    d.ended("b", T0 + 5)
    assert d.stations["s1"].state(T0 + 100) is StationState.PAUSED
    d.resume("s1", T0 + 101)
    assert d.availability(T0 + 101).status is Status.OPEN


def test_closed_outside_schedule_with_retry_after_and_next_opening() -> None:
    schedule = Schedule(weekly=[WeeklySlot(frozenset({2, 3}), time(9), time(12))])
    d = PartnerDesk("ft", [("s1", 1)], schedule=schedule)
    d.set_reachable("s1", True, T0)
    afternoon = datetime(2026, 11, 25, 14, 0, tzinfo=PARIS).timestamp()
    r = d.arrive("a", "k1", appointment=False, now=afternoon)
    assert isinstance(r, Refused) and r.refusal is Refusal.CLOSED
    assert r.refusal.cause is Cause.NORMAL_UNSPECIFIED
    opens = datetime(2026, 11, 26, 9, 0, tzinfo=PARIS).timestamp()
    assert r.retry_after == int(opens - afternoon)
    av = d.availability(afternoon)
    assert av.status is Status.CLOSED and av.closed_reason is ClosedReason.OUTSIDE_HOURS
    assert av.next_opening is not None and av.next_opening.timestamp() == opens


def test_appointment_only_slot_refuses_walk_in_callers() -> None:
    schedule = Schedule(
        weekly=[WeeklySlot(frozenset({2}), time(9), time(12), "appointment")],
        monthly=[MonthlySlot(4, 4, time(9), time(12))],
    )
    d = PartnerDesk("msa", [("s1", 1)], schedule=schedule)
    d.set_reachable("s1", True, T0)
    walk_in = d.arrive("a", "k1", appointment=False, now=T0)
    assert isinstance(walk_in, Refused) and walk_in.refusal is Refusal.APPOINTMENT_ONLY
    # The next walk-in slot is the 4th Friday, 27 November 2026.
    friday = datetime(2026, 11, 27, 9, 0, tzinfo=PARIS).timestamp()
    assert walk_in.retry_after == int(friday - T0)
    booked = d.arrive("b", "k1", appointment=True, now=T0)
    assert isinstance(booked, Offer)
    assert d.availability(T0 + 1).appointment_only


def test_a_simulated_day_twenty_kiosks_two_stations() -> None:
    """Acceptance 4 on a fake clock: 09:00-17:00, random arrivals, nobody lost or doubled."""
    rng = random.Random(20261122)
    d = desk(stations=2, wrap_up=60, max_length=20)
    d.settings = DeskSettings(
        wrap_up=60, pause_after=3, queue=QueueSettings(max_length=20, max_wait=4 * 3600)
    )
    start = datetime(2026, 11, 25, 9, 0, tzinfo=PARIS).timestamp()
    arrivals = sorted(start + rng.uniform(0, 6 * 3600) for _ in range(60))
    durations = {f"c{i}": rng.uniform(300, 1200) for i in range(len(arrivals))}
    events: list[tuple[float, str, str]] = [(t, "arrive", f"c{i}") for i, t in enumerate(arrivals)]
    served: dict[str, str] = {}
    offered_order: list[str] = []
    arrival_of = {f"c{i}": t for i, t in enumerate(arrivals)}
    busy: dict[str, str] = {}

    def handle(decisions: list[object], now: float) -> None:
        for x in decisions:
            if isinstance(x, Offer):
                assert x.call_id not in served, "served twice"
                assert x.station not in busy.values(), "a station got a second call"
                served[x.call_id] = x.station
                offered_order.append(x.call_id)
                d.answered(x.call_id, now)
                busy[x.call_id] = x.station
                events.append((now + durations[x.call_id], "end", x.call_id))
            else:
                assert not isinstance(x, Refused), x

    now = start
    while events or d.next_deadline() is not None:
        events.sort()
        deadline = d.next_deadline()
        if events and (deadline is None or events[0][0] <= deadline):
            now, kind, call = events.pop(0)
            if kind == "arrive":
                decision = d.arrive(call, f"k{int(call[1:]) % 20}", appointment=False, now=now)
                handle([decision, *d.take_pending()], now)
            else:
                busy.pop(call)
                d.call_duration(durations[call])
                handle(d.ended(call, now), now)
        else:
            assert deadline is not None
            now = deadline
            handle(d.tick(now), now)
    assert len(served) == len(arrivals), "a caller was lost"
    assert offered_order == sorted(offered_order, key=lambda c: arrival_of[c]), "FIFO broken"
    assert set(served.values()) == {"s1", "s2"}
    assert len(d.waits) == min(100, len(arrivals)) and max(d.waits) > 0
    assert d.queue == type(d.queue)()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["arrive", "answer", "end", "fail", "tick", "leave"]), max_size=60))
def test_random_operations_keep_the_invariants(ops: list[str]) -> None:
    """Whatever happens, a station holds at most one call and nobody is both queued and offered."""
    d = desk(stations=2, wrap_up=10, max_length=5)
    now = T0
    counter = 0
    for op in ops:
        now += 3
        if op == "arrive":
            counter += 1
            d.arrive(f"c{counter}", "k", appointment=counter % 4 == 0, now=now)
            d.take_pending()
        elif op == "answer" and (ringing := _ringing(d)):
            d.answered(ringing[0], now)
        elif op == "end":
            live = [c for s in d.stations.values() for c in (*s.connected, *s.ringing)]
            if live:
                d.ended(live[0], now)
        elif op == "fail" and (ringing := _ringing(d)):
            d.offer_failed(ringing[0], missed=True, now=now)
        elif op == "tick":
            d.tick(now)
        elif op == "leave" and d.queue:
            d.ended(d.queue[-1].call_id, now)
        queued = {w.call_id for w in d.queue}
        # One record per call the desk still handles: queued or ringing, nothing else.
        assert set(d.calls) == queued | set(_ringing(d))
        for s in d.stations.values():
            assert len(s.ringing) + len(s.connected) <= 1
            assert not (queued & (s.ringing | s.connected))
        # Arrivals stop at max_length; a caller a station did not answer goes back to the
        # head past it, one at most per station (test_a_caller_whose_offer_failed_...)
        assert len(d.queue) <= 5 + len(d.stations)
        appts = [w.appointment for w in d.queue]
        assert appts == sorted(appts, reverse=True), "appointments first"


def _ringing(d: PartnerDesk) -> list[str]:
    """The calls a desk has offered to a station and not yet seen answered."""
    return [c for c, record in d.calls.items() if record.station is not None]
