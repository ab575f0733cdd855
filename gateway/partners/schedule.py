"""Opening hours: weekly and monthly slots, closures and French public holidays.

Sans-IO and deterministic: the caller gives the time. Slots are local wall-clock times
of the schedule's zone (Europe/Paris by default), so a 09:00 slot stays at 09:00 across
daylight-saving changes. Public holidays come from the ``holidays`` library (France,
with the Alsace-Moselle subdivision, code 57, for its two extra days).
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo

import holidays as holidays_lib

SlotKind = Literal["walk_in", "appointment"]
HolidayRules = Literal["france", "alsace-moselle", "none"]
HORIZON_DAYS = 400  # how far next_opening looks ahead


def _check_times(start: time, end: time) -> None:
    if end <= start:
        raise ValueError(f"a slot must end after it starts ({start} - {end})")


@dataclass(frozen=True, slots=True)
class WeeklySlot:
    """Every week on ``days`` (0 = Monday), from ``start`` to ``end`` (end excluded)."""

    days: frozenset[int]
    start: time
    end: time
    kind: SlotKind = "walk_in"

    def __post_init__(self) -> None:
        if not self.days or any(not 0 <= d <= 6 for d in self.days):
            raise ValueError(f"weekdays are 0 (Monday) to 6 (Sunday), got {sorted(self.days)}")
        _check_times(self.start, self.end)

    def applies(self, day: date) -> bool:
        """Whether the slot exists on ``day``."""
        return day.weekday() in self.days


@dataclass(frozen=True, slots=True)
class MonthlySlot:
    """The ``nth`` ``day`` of every month (nth 1..5, or -1 for the last one)."""

    nth: int
    day: int
    start: time
    end: time
    kind: SlotKind = "walk_in"

    def __post_init__(self) -> None:
        if self.nth not in (1, 2, 3, 4, 5, -1):
            raise ValueError(f"nth must be 1 to 5 or -1, got {self.nth}")
        if not 0 <= self.day <= 6:
            raise ValueError(f"weekday must be 0 (Monday) to 6 (Sunday), got {self.day}")
        _check_times(self.start, self.end)

    def applies(self, day: date) -> bool:
        """Whether ``day`` is the nth such weekday of its month."""
        if day.weekday() != self.day:
            return False
        if self.nth == -1:
            return day.day + 7 > calendar.monthrange(day.year, day.month)[1]
        return (day.day - 1) // 7 + 1 == self.nth


@dataclass(frozen=True, slots=True)
class Closure:
    """Exceptional closure, whole days, ``first`` and ``last`` included."""

    first: date
    last: date
    reason: str = ""


class ClosedReason(StrEnum):
    """Why a schedule is closed at some moment."""

    OUTSIDE_HOURS = "outside_hours"
    HOLIDAY = "holiday"
    CLOSURE = "closure"


@dataclass(frozen=True, slots=True)
class Opening:
    """One open stretch: aware start and end, and whether it is walk-in or by appointment."""

    start: datetime
    end: datetime
    kind: SlotKind


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """The schedule at one moment, with the reasons as data."""

    open: bool
    kind: SlotKind | None
    closes_at: datetime | None
    reason: ClosedReason | None
    detail: str
    next_opening: Opening | None


class Schedule:
    """A partner's permanences or a site's opening hours."""

    def __init__(
        self,
        *,
        weekly: Sequence[WeeklySlot] = (),
        monthly: Sequence[MonthlySlot] = (),
        closures: Sequence[Closure] = (),
        holidays: HolidayRules = "france",
        tz: str = "Europe/Paris",
        always_open: bool = False,
    ) -> None:
        self.weekly = tuple(weekly)
        self.monthly = tuple(monthly)
        self.closures = tuple(closures)
        self.holiday_rules = holidays
        self.tz = ZoneInfo(tz)
        self.always_open = always_open
        self._holidays: dict[int, dict[date, str]] = {}
        self._days: dict[date, tuple[Opening, ...]] = {}

    @classmethod
    def always(cls) -> Schedule:
        """Open at every moment (a partner without a schedule)."""
        return cls(always_open=True, holidays="none")

    # -- calendar ---------------------------------------------------------------------
    def holiday(self, day: date) -> str | None:
        """The French name of the public holiday on ``day``, or None."""
        if self.holiday_rules == "none":
            return None
        table = self._holidays.get(day.year)
        if table is None:
            subdiv = "57" if self.holiday_rules == "alsace-moselle" else None
            found = holidays_lib.country_holidays(
                "FR", subdiv=subdiv, years=day.year, language="fr"
            )
            table = {d: str(name) for d, name in found.items()}
            self._holidays[day.year] = table
        return table.get(day)

    def closure(self, day: date) -> Closure | None:
        """The closure covering ``day``, if any."""
        for c in self.closures:
            if c.first <= day <= c.last:
                return c
        return None

    def openings(self, day: date) -> list[Opening]:
        """Open stretches of a local date, merged, holidays and closures removed."""
        cached = self._days.get(day)
        if cached is None:
            cached = self._compute(day)
            if len(self._days) > 2048:
                self._days.clear()
            self._days[day] = cached
        return list(cached)

    def _compute(self, day: date) -> tuple[Opening, ...]:
        if self.always_open:
            return ()
        if self.holiday(day) is not None or self.closure(day) is not None:
            return ()
        candidates: list[WeeklySlot | MonthlySlot] = [*self.weekly, *self.monthly]
        slots = [s for s in candidates if s.applies(day)]
        if not slots:
            return ()
        # Minute-level merge: walk-in wins where slots of both kinds overlap.
        points = sorted({s.start for s in slots} | {s.end for s in slots})
        stretches: list[tuple[time, time, SlotKind]] = []
        for a, b in itertools.pairwise(points):
            covering = [s.kind for s in slots if s.start <= a and b <= s.end]
            if not covering:
                continue
            kind: SlotKind = "walk_in" if "walk_in" in covering else "appointment"
            if stretches and stretches[-1][1] == a and stretches[-1][2] == kind:
                stretches[-1] = (stretches[-1][0], b, kind)
            else:
                stretches.append((a, b, kind))
        return tuple(Opening(self._at(day, a), self._at(day, b), kind) for a, b, kind in stretches)

    def _at(self, day: date, moment: time) -> datetime:
        return datetime.combine(day, moment, tzinfo=self.tz)

    # -- queries ----------------------------------------------------------------------
    def state_at(self, when: datetime) -> ScheduleState:
        """Open or closed at ``when`` (timezone-aware), with why and what comes next."""
        local = self._local(when)
        if self.always_open:
            return ScheduleState(True, "walk_in", None, None, "", None)
        for opening in self.openings(local.date()):
            if opening.start <= local < opening.end:
                return ScheduleState(True, opening.kind, opening.end, None, "", None)
        day = local.date()
        name = self.holiday(day)
        closure = self.closure(day)
        if name is not None:
            reason, detail = ClosedReason.HOLIDAY, name
        elif closure is not None:
            reason, detail = ClosedReason.CLOSURE, closure.reason
        else:
            reason, detail = ClosedReason.OUTSIDE_HOURS, ""
        return ScheduleState(False, None, None, reason, detail, self.next_opening(local))

    def next_opening(self, after: datetime, *, kind: SlotKind | None = None) -> Opening | None:
        """The next open stretch starting strictly after ``after`` (of ``kind`` if given)."""
        local = self._local(after)
        if self.always_open:
            return None
        day = local.date()
        for offset in range(HORIZON_DAYS):
            for opening in self.openings(day + timedelta(days=offset)):
                if opening.start > local and (kind is None or opening.kind == kind):
                    return opening
        return None

    def _local(self, when: datetime) -> datetime:
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("schedules need an aware datetime")
        return when.astimezone(self.tz)
