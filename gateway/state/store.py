"""Shared state behind one interface: registrations today, station states and queues next.

The in-memory store is the default (one node, nothing to install); a Redis store with the
same interface lets several nodes share state. Everything a node writes carries an
expiry, so what a dead node held disappears by lease instead of by clean-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an address-of-record (RFC 3261 10.3)."""

    aor: str
    contact: str
    source: Address
    transport: str
    expires_at: float  # wall-clock seconds since the epoch
    call_id: str
    cseq: int
    user_agent: str = ""

    def remaining(self, now: float) -> int:
        """Seconds left before the binding expires (never negative)."""
        return max(0, int(self.expires_at - now))


class Store(Protocol):
    """The state interface every node shares."""

    async def set_binding(self, binding: Binding) -> None:
        """Add or refresh a binding (keyed by AOR and contact URI)."""

    async def remove_binding(self, aor: str, contact: str) -> None:
        """Remove one binding."""

    async def clear_bindings(self, aor: str) -> None:
        """Remove every binding of an AOR (Contact: *, 10.3 step 6)."""

    async def get_bindings(self, aor: str) -> list[Binding]:
        """The live bindings of an AOR, most recently registered first."""

    async def binding_count(self) -> int:
        """How many live bindings exist in all (for metrics)."""

    async def all_bindings(self) -> list[Binding]:
        """Every live binding of every AOR (for the admin API), by AOR."""

    async def close(self) -> None:
        """Release connections."""


class MemoryStore:
    """The embedded default: dictionaries with lazy expiry."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._bindings: dict[str, dict[str, Binding]] = {}

    def _live(self, aor: str) -> dict[str, Binding]:
        table = self._bindings.get(aor)
        if not table:
            return {}
        now = self._clock()
        expired = [c for c, b in table.items() if b.expires_at <= now]
        for contact in expired:
            del table[contact]
        if not table:
            del self._bindings[aor]
        return table

    async def set_binding(self, binding: Binding) -> None:
        """Add or refresh a binding."""
        table = self._bindings.setdefault(binding.aor, {})
        table.pop(binding.contact, None)
        table[binding.contact] = binding

    async def remove_binding(self, aor: str, contact: str) -> None:
        """Remove one binding."""
        table = self._bindings.get(aor)
        if table is not None:
            table.pop(contact, None)
            if not table:
                del self._bindings[aor]

    async def clear_bindings(self, aor: str) -> None:
        """Remove every binding of an AOR."""
        self._bindings.pop(aor, None)

    async def get_bindings(self, aor: str) -> list[Binding]:
        """The live bindings of an AOR, most recently registered first."""
        return list(reversed(self._live(aor).values()))

    async def binding_count(self) -> int:
        """How many live bindings exist in all."""
        return sum(len(self._live(aor)) for aor in list(self._bindings))

    async def all_bindings(self) -> list[Binding]:
        """Every live binding, by AOR, each AOR's most recent first."""
        found: list[Binding] = []
        for aor in sorted(self._bindings):
            found.extend(reversed(self._live(aor).values()))
        return found

    async def close(self) -> None:
        """Nothing to release."""
