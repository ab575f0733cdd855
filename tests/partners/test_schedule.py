"""Schedules on fixed dates: French holidays, weekly and monthly slots, closures, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.partners.schedule import (
    ClosedReason,
    Closure,
    MonthlySlot,
    Schedule,
    WeeklySlot,
)

PARIS = ZoneInfo("Europe/Paris")
WED, THU, FRI = 2, 3, 4


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=PARIS)


# Facts: the French public holidays of 2026 and 2027 (Code du travail L3133-1).
HOLIDAYS_2026 = {
    date(2026, 1, 1),
    date(2026, 4, 6),  # Easter Monday
    date(2026, 5, 1),
    date(2026, 5, 8),
    date(2026, 5, 14),  # Ascension
    date(2026, 5, 25),  # Whit Monday
    date(2026, 7, 14),
    date(2026, 8, 15),
    date(2026, 11, 1),
    date(2026, 11, 11),
    date(2026, 12, 25),
}


def test_french_holidays_of_2026_are_all_found() -> None:
    s = Schedule()
    found = {date(2026, 1, 1) + timedelta(days=i) for i in range(365)}
    found = {d for d in found if s.holiday(d) is not None}
    assert found == HOLIDAYS_2026
    assert s.holiday(date(2026, 5, 14)) == "Ascension"
    assert s.holiday(date(2026, 5, 25)) == "Lundi de Pentecôte"


@pytest.mark.parametrize(
    "day",
    [date(2027, 3, 29), date(2027, 5, 6), date(2027, 5, 17), date(2038, 4, 26)],
)
def test_moving_holidays_of_other_years(day: date) -> None:
    assert Schedule().holiday(day) is not None


def test_alsace_moselle_adds_good_friday_and_saint_stephen() -> None:
    alsace = Schedule(holidays="alsace-moselle")
    assert alsace.holiday(date(2026, 4, 3)) is not None  # Good Friday
    assert alsace.holiday(date(2026, 12, 26)) is not None
    assert Schedule().holiday(date(2026, 4, 3)) is None
    assert Schedule(holidays="none").holiday(date(2026, 12, 25)) is None


FRANCE_TRAVAIL = Schedule(weekly=[WeeklySlot(frozenset({WED, THU}), time(9), time(12))])


def test_wednesday_and_thursday_mornings() -> None:
    s = FRANCE_TRAVAIL
    inside = s.state_at(at(2026, 11, 25, 10))  # Wednesday
    assert inside.open and inside.kind == "walk_in"
    assert inside.closes_at == at(2026, 11, 25, 12)
    assert not s.state_at(at(2026, 11, 25, 12)).open  # the end is excluded
    early = s.state_at(at(2026, 11, 25, 8, 59))
    assert not early.open and early.reason is ClosedReason.OUTSIDE_HOURS
    assert early.next_opening is not None and early.next_opening.start == at(2026, 11, 25, 9)
    after_thursday = s.state_at(at(2026, 11, 26, 13))
    assert after_thursday.next_opening is not None
    assert after_thursday.next_opening.start == at(2026, 12, 2, 9)
    tuesday_night = s.next_opening(at(2026, 11, 24, 20))
    assert tuesday_night is not None and tuesday_night.start == at(2026, 11, 25, 9)


def test_fourth_friday_of_the_month() -> None:
    msa = Schedule(monthly=[MonthlySlot(4, FRI, time(9), time(17))])
    fridays = [
        d for d in (date(2026, 1, 1) + timedelta(days=i) for i in range(365)) if msa.openings(d)
    ]
    assert date(2026, 11, 27) in fridays and date(2026, 11, 20) not in fridays
    # December's 4th Friday is Christmas Day 2026: that permanence does not take place.
    assert len(fridays) == 11 and date(2026, 12, 25) not in fridays
    assert all(d.weekday() == FRI and 22 <= d.day <= 28 for d in fridays)


def test_last_and_fifth_weekday_rules() -> None:
    last = Schedule(monthly=[MonthlySlot(-1, FRI, time(9), time(12))])
    assert last.openings(date(2026, 1, 30))  # January 2026 has five Fridays
    assert not last.openings(date(2026, 1, 23))
    fifth = Schedule(monthly=[MonthlySlot(5, FRI, time(9), time(12))])
    assert fifth.openings(date(2026, 1, 30))
    assert not any(fifth.openings(date(2026, 2, d)) for d in range(1, 29))  # only four


def test_holiday_inside_a_slot_closes_it_and_is_skipped() -> None:
    thursday = Schedule(weekly=[WeeklySlot(frozenset({THU}), time(9), time(12))])
    state = thursday.state_at(at(2026, 5, 14, 10))  # Ascension Thursday
    assert not state.open and state.reason is ClosedReason.HOLIDAY
    assert state.detail == "Ascension"
    assert state.next_opening is not None and state.next_opening.start == at(2026, 5, 21, 9)


def test_closures_and_appointment_slots() -> None:
    s = Schedule(
        weekly=[
            WeeklySlot(frozenset({WED}), time(9), time(12)),
            WeeklySlot(frozenset({WED}), time(11), time(14), "appointment"),
        ],
        closures=[Closure(date(2026, 12, 2), date(2026, 12, 9), "Inventaire")],
    )
    opens = s.openings(date(2026, 11, 25))
    assert [(o.start.hour, o.end.hour, o.kind) for o in opens] == [
        (9, 12, "walk_in"),  # walk-in wins over the overlapping appointment hour
        (12, 14, "appointment"),
    ]
    assert s.state_at(at(2026, 11, 25, 13)).kind == "appointment"
    closed = s.state_at(at(2026, 12, 2, 10))
    assert closed.reason is ClosedReason.CLOSURE and closed.detail == "Inventaire"
    walk_in = s.next_opening(at(2026, 11, 25, 12, 30), kind="walk_in")
    assert walk_in is not None and walk_in.start == at(2026, 12, 16, 9)


def test_daylight_saving_keeps_local_times() -> None:
    s = FRANCE_TRAVAIL
    before = s.openings(date(2026, 3, 26))[0].start  # Thursday, winter time
    after = s.openings(date(2026, 4, 1))[0].start  # Wednesday, summer time
    assert (before.hour, after.hour) == (9, 9)
    assert before.utcoffset() == timedelta(hours=1)
    assert after.utcoffset() == timedelta(hours=2)
    autumn = s.openings(date(2026, 10, 28))[0].start
    assert autumn.hour == 9 and autumn.utcoffset() == timedelta(hours=1)


def test_utc_input_naive_refused_invalid_slots_refused() -> None:
    utc = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)  # 10:30 in Paris
    assert FRANCE_TRAVAIL.state_at(utc).open
    with pytest.raises(ValueError):
        FRANCE_TRAVAIL.state_at(datetime(2026, 11, 25, 10))
    with pytest.raises(ValueError):
        WeeklySlot(frozenset({WED}), time(12), time(9))
    with pytest.raises(ValueError):
        MonthlySlot(6, FRI, time(9), time(12))
    with pytest.raises(ValueError):
        WeeklySlot(frozenset({7}), time(9), time(12))


def test_always_open_and_empty_schedule() -> None:
    always = Schedule.always().state_at(at(2026, 12, 25, 3))
    assert always.open and always.closes_at is None
    never = Schedule()
    state = never.state_at(at(2026, 11, 25, 10))
    assert not state.open and state.next_opening is None


MIXED = Schedule(
    weekly=[
        WeeklySlot(frozenset({WED, THU}), time(9), time(12)),
        WeeklySlot(frozenset({1}), time(14), time(16), "appointment"),
    ],
    monthly=[MonthlySlot(4, FRI, time(9), time(17))],
    closures=[Closure(date(2026, 12, 24), date(2027, 1, 1))],
)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=3 * 365 * 24 * 60))
def test_next_opening_is_open_and_in_the_future(minutes: int) -> None:
    t = at(2026, 1, 1) + timedelta(minutes=minutes)
    state = MIXED.state_at(t)
    if state.open:
        assert state.closes_at is not None and state.closes_at > t
        assert not MIXED.state_at(state.closes_at).open or (
            MIXED.state_at(state.closes_at).kind != state.kind
        )
    elif state.next_opening is not None:
        assert state.next_opening.start > t
        assert MIXED.state_at(state.next_opening.start).open
        # Nothing opens in between.
        probe = t + timedelta(minutes=30)
        while probe < state.next_opening.start:
            assert not MIXED.state_at(probe).open
            probe += timedelta(hours=6)
