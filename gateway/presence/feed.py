"""The availability event feed behind ``GET /api/v1/availability/events`` (server-sent events).

Each listener gets the ids of the partners whose availability may have changed, at
most once per loop turn; the HTTP handler renders what its kiosk is allowed to see.
"""

from __future__ import annotations

import asyncio


class AvailabilityFeed:
    """Fans partner changes out to the connected event streams."""

    def __init__(self) -> None:
        self.listeners: set[asyncio.Queue[set[str]]] = set()
        self._dirty: set[str] = set()
        self._handle: asyncio.Handle | None = None

    def listen(self) -> asyncio.Queue[set[str]]:
        """A new listener's queue (bounded: a stalled client loses events, not memory)."""
        queue: asyncio.Queue[set[str]] = asyncio.Queue(maxsize=64)
        self.listeners.add(queue)
        return queue

    def leave(self, queue: asyncio.Queue[set[str]]) -> None:
        """A client went away."""
        self.listeners.discard(queue)

    def changed(self, partner: str) -> None:
        """``partner`` may look different now."""
        if not self.listeners:
            return
        self._dirty.add(partner)
        if self._handle is None:
            self._handle = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._handle = None
        dirty, self._dirty = self._dirty, set()
        for queue in list(self.listeners):
            if queue.full():
                continue  # the client re-syncs from the next event, which carries full state
            queue.put_nowait(set(dirty))
