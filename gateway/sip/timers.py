"""A bucketed timer store for the transaction layer, sans-IO.

RFC 3261 section 17 arms many timers per call and cancels most of them: Timer A or E
stops at the first response, B, F and C (three minutes) outlive the answer, and the
wait timers D, J, K, L and M (RFC 6026) run for up to 32 s. At a hundred calls a
second a binary heap of those deadlines holds tens of thousands of entries, most of
them stale, and each push and pop walks it.

Here deadlines are kept in buckets of ``tick`` seconds, found by a dict lookup; a
small heap orders the bucket numbers only. Arming costs an append, cancelling costs
nothing (the owner recognises a stale entry when it comes due), and a bucket is looked
at once, when it is due. Deadlines stay exact: :meth:`pop_due` hands out only the
entries due at the time given, in deadline order, and :meth:`next_deadline` is never
later than the earliest entry.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_TICK = 0.05  # seconds; the edge (TIMER_GRID) wakes on this grid as well


class _Bucket(Generic[T]):
    __slots__ = ("earliest", "entries")

    def __init__(self, earliest: float, entries: list[tuple[float, int, T]]) -> None:
        self.earliest = earliest  # a lower bound of the deadlines below
        self.entries = entries


class TimerWheel(Generic[T]):
    """Items due at absolute times, handed back in deadline order (ties: arming order)."""

    __slots__ = ("_buckets", "_numbers", "_seq", "_tick")

    def __init__(self, tick: float = DEFAULT_TICK) -> None:
        if tick <= 0:
            raise ValueError("tick must be positive")
        self._tick = tick
        self._buckets: dict[int, _Bucket[T]] = {}
        self._numbers: list[int] = []  # heap of the keys of _buckets
        self._seq = itertools.count()

    def __len__(self) -> int:
        """Entries held, stale ones included."""
        return sum(len(b.entries) for b in self._buckets.values())

    def arm(self, when: float, item: T) -> None:
        """Keep ``item`` until ``when``."""
        number = int(when // self._tick)
        bucket = self._buckets.get(number)
        entry = (when, next(self._seq), item)
        if bucket is None:
            self._buckets[number] = _Bucket(when, [entry])
            heapq.heappush(self._numbers, number)
        else:
            bucket.entries.append(entry)
            if when < bucket.earliest:
                bucket.earliest = when

    def next_deadline(self) -> float | None:
        """The earliest deadline held (possibly of a stale entry), or ``None`` if empty."""
        if not self._numbers:
            return None
        return self._buckets[self._numbers[0]].earliest

    def pop_due(self, now: float) -> list[T]:
        """Remove and return the items whose deadline is ``now`` or earlier."""
        due: list[tuple[float, int, T]] = []
        numbers = self._numbers
        buckets = self._buckets
        last = now // self._tick
        while numbers and numbers[0] <= last:
            number = numbers[0]
            bucket = buckets[number]
            if bucket.earliest > now:
                break  # the bucket now's time falls in, none of it due yet
            later: list[tuple[float, int, T]] = []
            for entry in bucket.entries:
                (due if entry[0] <= now else later).append(entry)
            if later:
                bucket.entries = later
                bucket.earliest = min(e[0] for e in later)
                break  # only now's own bucket can hold entries after now
            heapq.heappop(numbers)
            del buckets[number]
        due.sort()
        return [item for _, _, item in due]

    def clear(self) -> None:
        """Forget every entry."""
        self._buckets.clear()
        self._numbers.clear()
