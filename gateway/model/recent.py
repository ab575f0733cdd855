"""A bounded table of state per key, the least recently touched key forgotten first.

The SIP guards follow one thing per source address or login (failed logins, a token
bucket, the logins a scanner tried, a challenge waiting for its answer). Every source
of the internet can write into such a table, forged ones included, so each is bounded
the same way: a key touched again moves to the young end, and a full table forgets its
oldest key before it takes a new one. Sans-IO and clock-free: callers keep their own
times in the values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class RecentTable(Generic[K, V]):
    """At most ``max_entries`` values by key, in the order they were last touched."""

    __slots__ = ("_items", "max_entries")

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: dict[K, V] = {}  # a dict keeps insertion order: oldest first

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: K) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[K]:
        return iter(self._items)

    def touch(self, key: K, new: Callable[[], V]) -> V:
        """The value of ``key`` (made by ``new`` when absent), now the most recent one."""
        items = self._items
        if key in items:
            value = items.pop(key)
        else:
            value = new()
            if len(items) >= self.max_entries:
                del items[next(iter(items))]
        items[key] = value
        return value

    def add(self, key: K, value: V) -> None:
        """Keep ``value`` for a new ``key`` (a present key keeps its value and place)."""
        items = self._items
        if key in items:
            return
        if len(items) >= self.max_entries:
            del items[next(iter(items))]
        items[key] = value

    def get(self, key: K) -> V | None:
        """The value of ``key`` without touching it."""
        return self._items.get(key)

    def pop(self, key: K) -> V | None:
        """Forget ``key``; its value, or None."""
        return self._items.pop(key, None)

    def oldest(self) -> tuple[K, V] | None:
        """The least recently touched key and its value, or None when empty."""
        return next(iter(self._items.items()), None)

    def items(self) -> list[tuple[K, V]]:
        """A snapshot of the pairs, oldest first (the caller may change the table)."""
        return list(self._items.items())
