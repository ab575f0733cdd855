"""The one scheduler the call layer runs on: the time, timers, and steps that await.

The controller, the legs and the station monitor never reach for an event loop; they
are handed a :class:`Scheduler`. The gateway gives them :class:`LoopScheduler` (the
asyncio loop and the gateway's clock); tests give them a fake clock that moves only
when told, so that a queue timeout or a ring-out runs in microseconds and in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

log = logging.getLogger(__name__)

Step = Coroutine[Any, Any, None]


class Timer(Protocol):
    """A scheduled callback that may still be called off."""

    def cancel(self) -> None:
        """Call it off; harmless once it ran."""


class Scheduler(Protocol):
    """Time, timers and background steps for the call layer."""

    def now(self) -> float:
        """Wall-clock time in epoch seconds (schedules, call records)."""

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """Run ``callback(*args)`` after ``delay`` seconds."""

    def spawn(self, step: Step) -> None:
        """Run a step that awaits (the media engine, the store) to its end."""


class LoopScheduler:
    """The asyncio loop as a :class:`Scheduler`, with the gateway's (adjustable) clock."""

    def __init__(
        self, clock: Callable[[], float], loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.now = clock
        self._loop = loop
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, taken on first use (the gateway is built before it runs)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer:
        """:meth:`asyncio.loop.call_later`."""
        return self.loop.call_later(delay, callback, *args)

    def spawn(self, step: Step) -> None:
        """A task of its own; kept referenced until done, its failure logged."""
        task = self.loop.create_task(step)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A call-logic bug must not go unseen, nor take the transaction layer down.
            log.error("call step failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the steps under way (shutdown)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))
